/* test_knn_screen.c - the int8 pre-screen's re-ranking (knn_screen_finish) on wide heaps
 * made by hand: rows whose bound vouches for their candidates, and rows joined again
 * with every member of the cell, against brute force in double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knn_heap.h"
#include "knn_screen.h"
#include "pw_test.h"
#include "test_data.h"

/* The `want` nearest of row i among cand[0..cnt) (i excluded), nearest first. */
static void nearest(const float *x, size_t d, int cosine, size_t i, const int32_t *cand, size_t cnt,
                    size_t want, int32_t *out)
{
    double *dist = malloc(cnt * sizeof *dist);
    for (size_t c = 0; c < cnt; c++)
        dist[c] = (size_t)cand[c] == i ? INFINITY : td_ref_dist(x, d, cosine, i, (size_t)cand[c]);
    for (size_t a = 0; a < want; a++) {
        size_t best = 0;
        for (size_t c = 1; c < cnt; c++)
            if (dist[c] < dist[best])
                best = c;
        out[a] = cand[best];
        dist[best] = INFINITY;
    }
    free(dist);
}

/* The graph's rows sorted, for comparisons. */
static void sorted_graph(const float *hd, const int32_t *hi, size_t n, size_t k, float *sd,
                         int32_t *si)
{
    memcpy(sd, hd, n * k * sizeof *sd);
    memcpy(si, hi, n * k * sizeof *si);
    for (size_t i = 0; i < n; i++)
        heap_sort_row(sd + i * k, si + i * k, k);
}

/* A cell of 240 of 300 isotropic rows (d = 100: sums with a tail past the 16-wide lanes),
 * in shuffled order, finished for its rows 30..230.  Every third row gets its true
 * nearest members as candidates and a bound that vouches for them; the others get the
 * farthest members and a bound that cannot (so they are joined again, many groups of
 * them).  Rows of even index had an earlier cell: their graph heaps hold their nearest
 * among the 60 rows outside this one.  Each finished row must end with its k nearest of
 * the members and that earlier cell, and the graph must not depend on the thread count. */
static void check_rejoins_give_exact_graph(int cosine)
{
    size_t n = 300, d = 100, k = 10, cnt = 240, r_lo = 30, count = 200;
    float *x = malloc(n * d * sizeof *x);
    uint64_t seed = 91;
    for (size_t v = 0; v < n * d; v++)
        x[v] = (float)td_normal(&seed);
    float *inv = malloc(n * sizeof *inv);
    for (size_t i = 0; i < n; i++) {
        double q = 0;
        for (size_t t = 0; t < d; t++)
            q += (double)x[i * d + t] * x[i * d + t];
        inv[i] = (float)(1.0 / sqrt(q));
    }
    int32_t all[300], *mem = all, *outside = all + cnt;
    for (size_t i = 0; i < n; i++)
        all[i] = (int32_t)i;
    for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = (size_t)(pw_test_rand(&seed) % (i + 1));
        int32_t t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    struct knn_screen sc;
    struct pw_error err;
    CHECK(knn_screen_init(&sc, count, k, &err) == 0);
    size_t w = sc.width;
    float *bound = malloc(count * sizeof *bound);
    int32_t *far = malloc(cnt * sizeof *far);
    size_t again = 0;
    for (size_t p = 0; p < count; p++) {
        size_t i = (size_t)mem[r_lo + p];
        float *wd = sc.hd + p * w;
        int32_t *wi = sc.hi + p * w;
        nearest(x, d, cosine, i, mem, cnt, cnt - 1, far); /* every member but i, nearest first */
        if (p % 3 == 0) {
            memcpy(wi, far, w * sizeof *wi);
            wd[0] = 1e30f; /* whatever the k-th exact distance, the bound vouches */
            bound[p] = 0.0f;
        } else {
            memcpy(wi, far + (cnt - 1 - w), w * sizeof *wi);
            wd[0] = 0.0f; /* the bound cannot vouch: joined again */
            bound[p] = 1.0f;
            again++;
        }
    }
    float *hd[3], *sd = malloc(n * k * sizeof *sd), *sd0 = malloc(n * k * sizeof *sd0);
    int32_t *hi[3], *si = malloc(n * k * sizeof *si), *si0 = malloc(n * k * sizeof *si0);
    uint8_t seen[300];
    for (size_t i = 0; i < n; i++)
        seen[i] = i % 2 == 0;
    for (int T = 1; T <= 3; T++) {
        hd[T - 1] = malloc(n * k * sizeof *hd[0]);
        hi[T - 1] = malloc(n * k * sizeof *hi[0]);
        heap_init(hd[T - 1], hi[T - 1], n * k);
        for (size_t i = 0; i < n; i += 2) { /* the earlier cell: the rows outside */
            int32_t prev[10];
            nearest(x, d, cosine, i, outside, n - cnt, k, prev);
            for (size_t s = 0; s < k; s++)
                heap_push(hd[T - 1] + i * k, hi[T - 1] + i * k, NULL, k,
                          (float)td_ref_dist(x, d, cosine, i, (size_t)prev[s]), prev[s], 0);
        }
        uint32_t *scratch = malloc(knn_screen_scratch(k) * (size_t)T * sizeof *scratch);
        size_t counts[6] = {0};
        struct knn_screen_job job = {.sc = &sc,
                                     .x = x,
                                     .d = d,
                                     .cosine = cosine,
                                     .inv_norm = inv,
                                     .mem = mem,
                                     .cnt = cnt,
                                     .rows = mem + r_lo,
                                     .count = count,
                                     .bound = bound,
                                     .hd = hd[T - 1],
                                     .hi = hi[T - 1],
                                     .seen = seen,
                                     .scratch = scratch,
                                     .counts = counts};
        for (int t = 0; t < T; t++) /* as the team runs it, one thread after another */
            knn_screen_finish(&job, t, T);
        size_t rejoined = 0, finished = 0;
        for (int t = 0; t < T; t++) {
            rejoined += counts[2 * t];
            finished += counts[2 * t + 1];
        }
        CHECK(rejoined == again && finished == count);
        free(scratch);
    }
    printf("     %s: %zu of %zu rows joined again\n", cosine ? "cosine" : "euclidean", again,
           count);
    sorted_graph(hd[0], hi[0], n, k, sd0, si0);
    size_t wrong = 0;
    double worst = 0.0;
    int32_t *pool = malloc((cnt + n - cnt) * sizeof *pool), want[10];
    for (size_t p = 0; p < count; p++) {
        size_t i = (size_t)mem[r_lo + p], m = cnt;
        memcpy(pool, mem, cnt * sizeof *pool);
        if (seen[i]) {
            memcpy(pool + cnt, outside, (n - cnt) * sizeof *pool);
            m = n;
        }
        nearest(x, d, cosine, i, pool, m, k, want);
        for (size_t s = 0; s < k; s++) {
            wrong += si0[i * k + s] != want[s];
            double e = fabs(sd0[i * k + s] - td_ref_dist(x, d, cosine, i, (size_t)want[s]));
            worst = e > worst ? e : worst;
        }
    }
    CHECK(wrong == 0);
    CHECK(worst < 1e-4);
    for (int T = 2; T <= 3; T++) {
        sorted_graph(hd[T - 1], hi[T - 1], n, k, sd, si);
        CHECK(memcmp(si, si0, n * k * sizeof *si) == 0);
        CHECK(memcmp(sd, sd0, n * k * sizeof *sd) == 0);
    }
    for (int T = 0; T < 3; T++) {
        free(hd[T]);
        free(hi[T]);
    }
    free(pool);
    free(sd);
    free(si);
    free(sd0);
    free(si0);
    free(far);
    free(bound);
    knn_screen_free(&sc);
    free(inv);
    free(x);
}

static void test_rejoined_rows_get_exact_neighbours_euclidean(void)
{
    check_rejoins_give_exact_graph(0);
}

static void test_rejoined_rows_get_exact_neighbours_cosine(void)
{
    check_rejoins_give_exact_graph(1);
}

int main(void)
{
    RUN(test_rejoined_rows_get_exact_neighbours_euclidean);
    RUN(test_rejoined_rows_get_exact_neighbours_cosine);
    PW_TEST_MAIN();
}
