/* knn_recall - time knn_build on raw float32 rows and measure its recall.
 *
 *   knn_recall FILE DIM K cosine|euclidean exact|approx|auto [QUERIES [THREADS]]
 *
 * Builds the whole graph with knn_build, then finds the exact K nearest neighbours of
 * QUERIES (default 2000) rows picked at even strides by brute force (sgemm against every
 * row, in double for the final order) and prints one JSON line: seconds of knn_build,
 * its CPU seconds (all threads), recall of the sampled rows (recall: the exact neighbours'
 * indices found; recall_dist: graph entries at most as far as the k-th exact neighbour,
 * as ANN benchmarks count it, which differs only where rows tie at that distance), peak RSS.
 * KNN_PART_SIZE, KNN_SPILL, KNN_ITERS, KNN_CANDIDATES, KNN_LIST_ROWS, KNN_DELTA, KNN_RECALL_TARGET,
 * KNN_SCREEN_ROWS, KNN_AMX and KNN_SCREEN (0, 1 or 2: KNN_SCREEN_ALWAYS) override the knn_options
 * of the same names. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "knn.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU seconds of every thread of the process so far. */
static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* Distance of rows a and b in double, as exact_row ranks them (cosine or squared euclidean). */
static double pair_dist(const float *x, size_t d, int cosine, size_t a, size_t b)
{
    const float *p = x + a * d, *r = x + b * d;
    double s = 0, dot = 0, na = 0, nb = 0;
    for (size_t t = 0; t < d; t++) {
        s += ((double)p[t] - r[t]) * ((double)p[t] - r[t]);
        dot += (double)p[t] * r[t];
        na += (double)p[t] * p[t];
        nb += (double)r[t] * r[t];
    }
    return cosine ? 1.0 - dot / sqrt(na * nb) : s;
}

/* The k smallest of dist[0..n) (excluding self), as indices, by repeated selection on
 * shortlist of the 4k+64 best by float dot products, ordered in double. */
static double exact_row(const float *x, size_t n, size_t d, size_t q, int cosine, const float *dots,
                        const float *sq, size_t k, int32_t *out)
{
    size_t cap = 4 * k + 64, len = 0;
    size_t *cand = malloc(cap * sizeof *cand);
    double *cd = malloc(cap * sizeof *cd);
    float *v = malloc(n * sizeof *v);
    for (size_t j = 0; j < n; j++)
        v[j] = cosine ? -dots[j] / sqrtf(sq[j] * sq[q]) : sq[j] - 2.0f * dots[j];
    v[q] = INFINITY;
    /* bounded max-heap of the cap smallest values */
    float *hv = malloc(cap * sizeof *hv);
    for (size_t j = 0; j < n; j++) {
        if (len == cap && !(v[j] < hv[0]))
            continue;
        size_t pos;
        if (len < cap) { /* sift up */
            pos = len++;
            while (pos > 0 && hv[(pos - 1) / 2] < v[j]) {
                hv[pos] = hv[(pos - 1) / 2];
                cand[pos] = cand[(pos - 1) / 2];
                pos = (pos - 1) / 2;
            }
        } else { /* replace the root, sift down */
            pos = 0;
            for (;;) {
                size_t c = 2 * pos + 1;
                if (c >= len)
                    break;
                if (c + 1 < len && hv[c + 1] > hv[c])
                    c++;
                if (!(hv[c] > v[j]))
                    break;
                hv[pos] = hv[c];
                cand[pos] = cand[c];
                pos = c;
            }
        }
        hv[pos] = v[j];
        cand[pos] = j;
    }
    free(hv);
    for (size_t a = 0; a < len; a++) /* exact distances in double */
        cd[a] = pair_dist(x, d, cosine, q, cand[a]);
    for (size_t a = 0; a < k; a++) {
        size_t best = a;
        for (size_t b = a + 1; b < len; b++)
            if (cd[b] < cd[best])
                best = b;
        double td = cd[a];
        size_t ti = cand[a];
        cd[a] = cd[best];
        cand[a] = cand[best];
        cd[best] = td;
        cand[best] = ti;
        out[a] = (int32_t)cand[a];
    }
    double kth = cd[k - 1];
    free(v);
    free(cand);
    free(cd);
    return kth;
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: knn_recall FILE DIM K cosine|euclidean exact|approx|auto "
                        "[QUERIES [THREADS]]\n");
        return 2;
    }
    size_t d = strtoul(argv[2], NULL, 10), k = strtoul(argv[3], NULL, 10);
    size_t nq = argc > 6 ? strtoul(argv[6], NULL, 10) : 2000;
    int threads = argc > 7 ? atoi(argv[7]) : 0;
    FILE *f = fopen(argv[1], "rb");
    if (!f || d < 2) {
        fprintf(stderr, "knn_recall: cannot open %s (or DIM < 2)\n", argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f) / (4 * d);
    fseek(f, 0, SEEK_SET);
    float *x = malloc(n * d * sizeof *x);
    if (!x || fread(x, 4 * d, n, f) != n) {
        fprintf(stderr, "knn_recall: cannot read %zu rows\n", n);
        return 1;
    }
    fclose(f);
    struct knn_options o;
    knn_options_default(&o);
    if (knn_parse_metric(argv[4], &o.metric, &(struct pw_error){0}))
        return 2;
    o.method = !strcmp(argv[5], "exact")    ? KNN_EXACT
               : !strcmp(argv[5], "approx") ? KNN_APPROX
                                            : KNN_AUTO;
    o.threads = threads;
    /* tuning knobs for experiments (defaults: knn_options_default) */
    if (getenv("KNN_PART_SIZE"))
        o.part_size = strtoul(getenv("KNN_PART_SIZE"), NULL, 10);
    if (getenv("KNN_SPILL"))
        o.spill = strtod(getenv("KNN_SPILL"), NULL);
    if (getenv("KNN_ITERS"))
        o.n_iters = !strcmp(getenv("KNN_ITERS"), "none") ? KNN_NO_ROUNDS
                                                         : strtoul(getenv("KNN_ITERS"), NULL, 10);
    if (getenv("KNN_AMX"))
        o.amx = atoi(getenv("KNN_AMX"));
    if (getenv("KNN_SCREEN"))
        o.screen = atoi(getenv("KNN_SCREEN"));
    if (getenv("KNN_SCREEN_ROWS"))
        o.screen_rows = strtoul(getenv("KNN_SCREEN_ROWS"), NULL, 10);
    if (getenv("KNN_LIST_ROWS"))
        o.list_rows = strtoul(getenv("KNN_LIST_ROWS"), NULL, 10);
    if (getenv("KNN_CANDIDATES"))
        o.max_candidates = strtoul(getenv("KNN_CANDIDATES"), NULL, 10);
    if (getenv("KNN_RECALL_TARGET"))
        o.recall_target = strtod(getenv("KNN_RECALL_TARGET"), NULL);
    if (getenv("KNN_DELTA"))
        o.delta = strtod(getenv("KNN_DELTA"), NULL);
    struct knn_graph g;
    struct pw_error err;
    double t0 = now(), c0 = cpu_now();
    if (knn_build(x, n, d, k, &o, &g, NULL, &err)) {
        fprintf(stderr, "knn_recall: %s\n", err.msg);
        return 1;
    }
    double secs = now() - t0, cpu = cpu_now() - c0;
    long rss = peak_rss_kib();
    if (nq > n)
        nq = n;
    float *sq = malloc(n * sizeof *sq), *dots = malloc(n * sizeof *dots);
    int32_t *want = malloc(k * sizeof *want);
    for (size_t i = 0; i < n; i++)
        sq[i] = cblas_sdot((int)d, x + i * d, 1, x + i * d, 1);
    size_t hit = 0, near = 0;
    for (size_t s = 0; s < nq; s++) {
        size_t q = s * n / nq;
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)d, 1.0f, x, (int)d, x + q * d, 1,
                    0.0f, dots, 1);
        double kth = exact_row(x, n, d, q, o.metric == KNN_COSINE, dots, sq, k, want);
        /* recall_dist: graph entries at most as far as the k-th exact neighbour (ties at
         * the k-th distance, duplicates, count whichever the graph lists) */
        for (size_t b = 0; b < k; b++)
            near += g.idx[q * k + b] >= 0 &&
                    pair_dist(x, d, o.metric == KNN_COSINE, q, (size_t)g.idx[q * k + b]) <=
                        kth + 1e-9 * fabs(kth);
        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < k; b++)
                if (g.idx[q * k + b] == want[a]) {
                    hit++;
                    break;
                }
    }
    printf("{\"file\": \"%s\", \"n\": %zu, \"d\": %zu, \"k\": %zu, \"metric\": \"%s\", "
           "\"method\": \"%s\", \"seconds\": %.3f, \"cpu_seconds\": %.3f, \"peak_rss_mib\": %.1f, "
           "\"queries\": %zu, \"built\": %d, \"screen\": %d, \"screened\": %zu, "
           "\"rejoined\": %zu, \"rounds\": %zu, "
           "\"recall\": %.4f, \"recall_dist\": %.4f}\n",
           argv[1], n, d, k, argv[4], argv[5], secs, cpu, (double)rss / 1024.0, nq, (int)g.built,
           o.screen, g.screened, g.rejoined, g.rounds, (double)hit / (double)(nq * k),
           (double)near / (double)(nq * k));
    knn_free(&g);
    free(x);
    free(sq);
    free(dots);
    free(want);
    return 0;
}
