/* tsne.c - t-SNE (sklearn 1.2's objective and optimiser) with FFT-interpolated repulsion.
 *
 * Shaped for memory first: the PCA init runs before the k-NN (its scratch is gone before
 * the k-NN lists exist), the k-NN lists become the conditional P in place, and P is
 * symmetrised in place too (tsne_affinity.h): each unordered pair {i, j} is kept once, in the row
 * of the endpoint that listed the other (the smaller index when both did), with value C_ij + C_ji.
 * So P costs nothing beyond the k-NN graph, and the attraction loop evaluates each pair once and
 * applies it to both points.  Those scattered updates go to TSNE_PAIR_BLOCKS private force buffers
 * (a fixed partition of the rows by pair count), summed in block order: the result does not depend
 * on the thread count.  The layout, update and gains are float32, as in sklearn.
 *
 * Between the k-NN and the affinities the points are renumbered breadth-first along the
 * graph (knn_order.h) and numbered back at the end: a pair's two points then mostly lie
 * close in Y and in the force buffers, so the attraction reads them from cache rather
 * than from memory. */
#include "tsne.h"

#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "knn_order.h"
#include "pca.h"
#include "rng.h"
#include "stopwatch.h"
#include "team.h"
#include "tsne_affinity.h"
#include "tsne_forces.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#include <immintrin.h>
#define TSNE_AVX512 1
#endif

#define ADAPT_PERIOD  100    /* iterations between thread-count probes */
#define ADAPT_PROBE   3      /* iterations timed on one thread, then on all */
#define ITER_SPIN     100e-6 /* seconds the iteration's threads poll for a job (team.h) */
#define UPDATE_CHUNKS 8      /* the gradient step's tasks */

/* The values tsne.h documents; a field not named is 0, which is how a field added later
 * keeps its old behaviour.  Seed, threads and the k-NN switch are knn.h's defaults, the
 * FFT's options tsne_forces.h's. */
void tsne_options_default(struct tsne_options *opt)
{
    struct knn_options knn;
    knn_options_default(&knn);
    struct tsne_fft_options fft;
    tsne_fft_options_default(&fft);
    *opt = (struct tsne_options){
        .perplexity = 30.0,
        .learning_rate = 200.0,
        .n_iter = 1000,
        .metric = KNN_EUCLIDEAN,
        .init = TSNE_INIT_PCA,
        .early_exaggeration = 12.0,
        .exploration_iters = 250,
        .min_gain = 0.01,
        .seed = knn.seed,
        .threads = knn.threads,
        .knn_method = knn.method,
        .knn_exact_max_n = knn.exact_max_n,
        .interp_points = fft.interp_points,
        .min_intervals = fft.min_intervals,
        .interval_width = fft.interval_width,
    };
}

/* Exact repulsion up to this n: below it the n^2 sums on one thread cost less than the
 * FFT's smallest grid. */
#define EXACT_MAX_N_AUTO 3000

/* ---- affinities ---- */

/* glibc's libmvec has vector exp; math.h declares it only under -ffast-math.  Declared
 * here, the `omp simd` loop below calls it 8 (AVX-512), 4 or 2 lanes at a time. */
__attribute__((simd("notinbranch"))) double exp(double);

/* Clones for AVX-512, AVX2 and baseline: the attraction loop, which vectorises with
 * AVX-512's gather and scatter. */
#define TSNE_CLONES PW_CLONES_V4

/* F = the attraction sum_j P_ij q_ij (y_i - y_j) of block b's pairs (rows [lo, hi)), over
 * the block's span; F is not touched elsewhere. */
TSNE_CLONES static void attract_rows(const struct tsne_pairs *P, const float *Y, size_t b, float *F)
{
    size_t lo = P->blk[b], hi = P->blk[b + 1];
    memset(F + 2 * P->span[b][0], 0, 2 * (P->span[b][1] - P->span[b][0]) * sizeof *F);
    for (size_t i = lo; i < hi; i++) {
        const int32_t *col = P->col + P->rowptr[i];
        const float *val = P->val + P->rowptr[i];
        size_t len = P->rowptr[i + 1] - P->rowptr[i];
        float xi = Y[2 * i], yi = Y[2 * i + 1], fx = 0, fy = 0;
        /* the columns of a row are distinct and differ from i: no two lanes collide */
#pragma omp simd reduction(+ : fx, fy)
        for (size_t e = 0; e < len; e++) {
            size_t j = (size_t)col[e];
            float dx = xi - Y[2 * j], dy = yi - Y[2 * j + 1];
            float pq = val[e] / (1.0f + dx * dx + dy * dy);
            fx += pq * dx;
            fy += pq * dy;
            F[2 * j] -= pq * dx;
            F[2 * j + 1] -= pq * dy;
        }
        F[2 * i] += fx;
        F[2 * i + 1] += fy;
    }
}

#ifdef TSNE_AVX512
/* attract_rows with AVX-512 by hand: a point's (x, y) is gathered and its force pair
 * scattered as one 64-bit element, 8 pairs per vector - half the gather/scatter element
 * operations of the compiler's float-by-float version, which bound that loop. */
__attribute__((target("avx512f,avx512dq,avx512vl"))) static void
attract_rows_avx512(const struct tsne_pairs *P, const float *Y, size_t b, float *F)
{
    size_t lo = P->blk[b], hi = P->blk[b + 1];
    memset(F + 2 * P->span[b][0], 0, 2 * (P->span[b][1] - P->span[b][0]) * sizeof *F);
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = lo; i < hi; i++) {
        const int32_t *col = P->col + P->rowptr[i];
        const float *val = P->val + P->rowptr[i];
        size_t len = P->rowptr[i + 1] - P->rowptr[i];
        double yid;
        memcpy(&yid, Y + 2 * i, sizeof yid);
        __m512 yi = _mm512_castpd_ps(_mm512_set1_pd(yid)), acc = _mm512_setzero_ps();
        for (size_t e = 0; e < len; e += 8) {
            __mmask8 m = len - e >= 8 ? 0xff : (__mmask8)((1u << (len - e)) - 1);
            __m256i idx = _mm256_maskz_loadu_epi32(m, col + e);
            __m512d yj = _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m, idx, Y, 8);
            __m512 d = _mm512_sub_ps(yi, _mm512_castpd_ps(yj)); /* (dx, dy) per pair */
            __m512 d2 = _mm512_mul_ps(d, d);
            d2 = _mm512_add_ps(d2, _mm512_permute_ps(d2, 0xb1)); /* dx^2 + dy^2, twice */
            __m512 v = _mm512_permutexvar_ps(
                dup, _mm512_castps256_ps512(_mm256_maskz_loadu_ps(m, val + e)));
            __m512 f = _mm512_mul_ps(_mm512_div_ps(v, _mm512_add_ps(one, d2)), d);
            acc = _mm512_add_ps(acc, f);
            __m512d fj = _mm512_mask_i32gather_pd(_mm512_setzero_pd(), m, idx, F, 8);
            fj = _mm512_castps_pd(_mm512_sub_ps(_mm512_castpd_ps(fj), f));
            _mm512_mask_i32scatter_pd(F, m, idx, fj, 8);
        }
        float a[16], fx = 0, fy = 0;
        _mm512_storeu_ps(a, acc);
        for (int l = 0; l < 16; l += 2) {
            fx += a[l];
            fy += a[l + 1];
        }
        F[2 * i] += fx;
        F[2 * i + 1] += fy;
    }
}
#endif

struct attract_ctx {
    const struct tsne_pairs *P;
    const float *Y;
    float *buf; /* TSNE_PAIR_BLOCKS x 2n */
    int avx512;
};

/* Side task b: block b's attraction into its own buffer. */
static void attract_block(void *ctx, size_t b)
{
    struct attract_ctx *a = ctx;
    float *F = a->buf + b * 2 * a->P->n;
#ifdef TSNE_AVX512
    if (a->avx512) {
        attract_rows_avx512(a->P, a->Y, b, F);
        return;
    }
#endif
    attract_rows(a->P, a->Y, b, F);
}

/* KL(P || Q) over the stored pairs (each stands for two entries), as sklearn's
 * compute_error, with Q's normaliser Z from the repulsion method. */
static double kl_divergence(const struct tsne_pairs *P, const float *Y, double Z)
{
    const double tiny = 1.1754943508222875e-38; /* FLOAT32_TINY */
    double c = 0;
    for (size_t i = 0; i < P->n; i++)
        for (size_t e = P->rowptr[i]; e < P->rowptr[i + 1]; e++) {
            size_t j = (size_t)P->col[e];
            double dx = (double)Y[2 * i] - Y[2 * j], dy = (double)Y[2 * i + 1] - Y[2 * j + 1];
            double q = 1.0 / (1.0 + dx * dx + dy * dy) / Z, p = P->val[e];
            c += 2.0 * p * log((p > tiny ? p : tiny) / (q > tiny ? q : tiny));
        }
    return c;
}

struct repulsion {
    struct tsne_fft *fft; /* NULL: exact */
    size_t n;
    struct team *tm; /* the iteration's threads; NULL: the caller's only */
    float *zi;       /* exact: tsne_exact_scratch(n) floats of scratch */
};

/* The repulsion into rep and Z, and the attraction blocks into abuf as side tasks of the
 * repulsion's parallel jobs (they fill its idle threads). */
static int forces(struct repulsion *r, const struct tsne_pairs *P, const float *Y, float *rep,
                  double *Z, float *abuf, struct pw_error *err)
{
    struct attract_ctx ac = {P, Y, abuf, 0};
#ifdef TSNE_AVX512
    ac.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                __builtin_cpu_supports("avx512vl");
#endif
    struct tsne_side_work side = {attract_block, &ac, TSNE_PAIR_BLOCKS};
    if (r->fft) {
        int rc = tsne_fft_repulsion(r->fft, r->tm, Y, rep, Z, &side, err);
        if (rc)
            return rc;
    } else {
        tsne_exact_repulsion(Y, r->n, r->tm, rep, r->zi, Z, &side);
    }
    *Z = *Z > 0 ? *Z : 1e-300;
    return 0;
}

/* One iteration's gradient step, for update_chunk. */
struct update_job {
    const struct tsne_pairs *P;
    float *abuf;
    const float *rep;
    float *upd, *gains, *Y;
    size_t n;
    float invz, exag, momentum, lr, min_gain;
};

/* Coordinates [c 2n / UPDATE_CHUNKS, (c + 1) 2n / UPDATE_CHUNKS): the attraction summed
 * into block 0's buffer (zero outside its span) in block order, then sklearn's gains,
 * momentum and step - the same sums whatever the chunk's thread. */
static void update_chunk(void *ctx, size_t c)
{
    struct update_job *u = ctx;
    const struct tsne_pairs *P = u->P;
    size_t n = u->n, q0 = 2 * n * c / UPDATE_CHUNKS, q1 = 2 * n * (c + 1) / UPDATE_CHUNKS;
    float *acc = u->abuf, *upd = u->upd, *gains = u->gains, *Y = u->Y;
    const float *rep = u->rep;
    for (size_t q = q0; q < q1; q++)
        if (q < 2 * P->span[0][0] || q >= 2 * P->span[0][1])
            acc[q] = 0.0f;
    for (size_t b = 1; b < TSNE_PAIR_BLOCKS; b++) {
        const float *fb = u->abuf + b * 2 * n;
        size_t a0 = 2 * P->span[b][0] > q0 ? 2 * P->span[b][0] : q0;
        size_t a1 = 2 * P->span[b][1] < q1 ? 2 * P->span[b][1] : q1;
        for (size_t q = a0; q < a1; q++)
            acc[q] += fb[q];
    }
    for (size_t q = q0; q < q1; q++) {
        float gq = 4.0f * (u->exag * acc[q] - rep[q] * u->invz); /* c = 2 (dof + 1) / dof */
        if (upd[q] * gq < 0.0f)
            gains[q] += 0.2f;
        else
            gains[q] *= 0.8f;
        if (gains[q] < u->min_gain)
            gains[q] = u->min_gain;
        upd[q] = u->momentum * upd[q] - u->lr * gains[q] * gq;
        Y[q] += upd[q];
    }
}

/* ---- the fit ---- */

int tsne_fit(const float *x, size_t n, size_t d, const struct tsne_options *opt, float *out,
             struct tsne_result *res, const struct pw_progress *progress, struct pw_error *err)
{
    struct tsne_options o;
    tsne_options_default(&o);
    o = opt ? *opt : o;
    int rc = dense_validate_fit("tsne", x, n, d, out, err);
    if (rc)
        return rc;
    /* projection.py's rules, NaN included: Python's max(1.0, min(nan, n - 1)) is 1.0 and
     * max(10.0, nan) is 10.0. */
    double perp = isnan(o.perplexity) ? 1.0 : fmax(1.0, fmin(o.perplexity, (double)(n - 1)));
    double lr = isnan(o.learning_rate) ? 10.0 : fmax(10.0, o.learning_rate);
    if (isinf(lr) || isnan(o.early_exaggeration) || !(o.early_exaggeration >= 1.0) ||
        !(o.min_gain >= 0))
        return pw_error_set(err, PW_EINVAL,
                            "tsne: learning_rate must be finite, early_exaggeration >= 1, "
                            "min_gain >= 0");
    size_t n_iter = o.n_iter > 250 ? o.n_iter : 250;
    int threads = dense_threads(o.threads);
    size_t k = (size_t)(3.0 * perp + 1.0);
    k = k < n - 1 ? k : n - 1;
    size_t exact_max_n = o.exact_max_n ? o.exact_max_n : EXACT_MAX_N_AUTO;

    struct tsne_result r;
    memset(&r, 0, sizeof r);
    r.perplexity = perp;
    r.learning_rate = lr;
    struct knn_graph g = {0};
    struct tsne_pairs P = {0};
    /* The iterations start on all threads at every size: on an idle 2-core machine two
     * threads take a quarter to a third off the iterations from digits' 1,797 points
     * (exact sums) to 6k (the grid), and the probes below move to one thread while two
     * measure slower.  The threads are a team (team.h) whose members poll for ITER_SPIN
     * seconds before they sleep: an iteration is a few jobs of 0.05-1 ms with microseconds
     * between them, so the poll catches the next job on an idle machine, and on a busy one
     * a member whose partner was descheduled sleeps instead of spinning on a core the
     * partner needs (OpenMP's barriers spin for milliseconds). */
    struct team *team = NULL;
    struct repulsion rp = {NULL, n, NULL, NULL};
    float *Y = out, *upd = NULL, *gains = NULL, *rep = NULL, *abuf = NULL;
    int32_t *order = NULL, *inv = NULL; /* order[new] = the point's input row */
    struct tsne_fft_options fo = {o.interp_points, o.min_intervals, o.interval_width, 0};
    if (n > exact_max_n) {
        if ((rc = tsne_fft_new(n, &fo, &rp.fft, err)))
            return rc;
    } else if (!(rp.zi = malloc(tsne_exact_scratch(n) * sizeof *rp.zi))) {
        return pw_error_set(err, PW_ENOMEM, "tsne: out of memory");
    }
    double t0 = stopwatch_now();

    /* The init first: PCA's scratch is freed before the k-NN lists exist. */
    if (o.init == TSNE_INIT_PCA) {
        struct pca_options po;
        pca_options_default(&po);
        po.threads = threads;
        if ((rc = pca_fit(x, n, d, &po, Y, NULL, progress, err)))
            goto cleanup;
        double mean = 0, var = 0;
        for (size_t i = 0; i < n; i++)
            mean += Y[2 * i];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++)
            var += (Y[2 * i] - mean) * (Y[2 * i] - mean);
        double sd = sqrt(var / (double)n);
        for (size_t i = 0; i < 2 * n; i++)
            Y[i] =
                (float)(sd > 0 ? (double)Y[i] / sd * 1e-4 : 1e-4 * rng_normal(o.seed, 0x715e, i));
    } else {
        for (size_t i = 0; i < 2 * n; i++)
            Y[i] = (float)(1e-4 * rng_normal(o.seed, 0x715e, i));
    }
    double t_init = stopwatch_now() - t0;

    struct knn_options ko;
    knn_options_default(&ko);
    ko.metric = o.metric;
    ko.method = o.knn_method;
    ko.exact_max_n = o.knn_exact_max_n;
    ko.seed = o.seed;
    ko.threads = threads;
    double t1 = stopwatch_now();
    if ((rc = knn_build(x, n, d, k, &ko, &g, progress, err)))
        goto cleanup;
    double t2 = stopwatch_now();
    r.seconds_knn = t2 - t1;
    pw_progress_input_done(progress); /* the PCA init and the k-NN were its last readers */
    if ((rc = pw_progress_check(progress, err, "tsne")))
        goto cleanup;
    order = malloc(n * sizeof *order);
    inv = malloc(n * sizeof *inv);
    if (!order || !inv) {
        rc = pw_error_set(err, PW_ENOMEM, "tsne: out of memory");
        goto cleanup;
    }
    knn_bfs_order(&g, order, inv);
    if ((rc = knn_renumber(&g, order, inv, Y, 2, err)))
        goto cleanup;
    free(inv);
    inv = NULL;

    tsne_conditional_p(&g, perp, threads);
    if ((rc = pw_progress_check(progress, err, "tsne")))
        goto cleanup;
    if (tsne_symmetrize(&g, threads, &P)) {
        rc = pw_error_set(err, PW_ENOMEM, "tsne: out of memory for P");
        goto cleanup;
    }
    /* P's pairs fill the front of the graph's arrays (a mutual pair is kept once): give
     * the rest back before the iterations (a third of 36 MB at 50k).  A failed shrink
     * leaves the arrays as they were. */
    int32_t *idx2 = realloc(g.idx, (P.nnz ? P.nnz : 1) * sizeof *g.idx);
    if (idx2)
        g.idx = idx2;
    float *dist2 = realloc(g.dist, (P.nnz ? P.nnz : 1) * sizeof *g.dist);
    if (dist2)
        g.dist = dist2;
    P.col = g.idx;
    P.val = g.dist;
    /* The k-NN's scratch was freed, but glibc keeps free pages inside its heaps resident
     * (only the top of a heap shrinks by itself): hand them back before the
     * iterations' arrays are placed (20k: 10 MB of the iterations' RSS). */
    malloc_trim(0);
    double t3 = stopwatch_now();
    r.seconds_affinity = t3 - t2;

    upd = calloc(2 * n, sizeof *upd);
    gains = malloc(2 * n * sizeof *gains);
    rep = malloc(2 * n * sizeof *rep);
    abuf = malloc(TSNE_PAIR_BLOCKS * 2 * n * sizeof *abuf);
    if (!upd || !gains || !rep || !abuf) {
        rc = pw_error_set(err, PW_ENOMEM, "tsne: out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < 2 * n; i++)
        gains[i] = 1.0f;
    if (threads > 1) {
        if ((rc = team_start(threads, &team, err)))
            goto cleanup;
        team_set_spin(team, ITER_SPIN);
    }

    /* The iteration's thread count is re-chosen every ADAPT_PERIOD iterations by timing
     * ADAPT_PROBE iterations on one thread against as many on `threads`: on a shared
     * machine the threads' partner may be descheduled while they wait for it at the end of
     * a job, and two threads can be slower than one.  Between probes, an iteration on
     * `threads` that takes 1.5 times as long as the probe's one-thread iterations did sends
     * the rest of the period to one thread: the machine got busier (the margin is for the
     * grid's growth within a period).
     * When two threads do pay, the probes' 30 one-thread iterations in 1000 cost about 2 %
     * of the optimisation.  The layout does not depend on the thread count, so this changes
     * only the time. */
    int adaptive = team_threads(team) > 1, cur = team_threads(team);
    rp.tm = team;
    double probe_t0 = 0, probe_one = 0, it_t0 = 0;
    double last = stopwatch_now(), Z = 1;
    float min_gain = (float)o.min_gain;
    /* sklearn runs _gradient_descent twice: iterations [0, 250) exaggerated, then
     * [251, n_iter) - it skips 250 and restarts update and gains; n_iter_ is the last. */
    for (size_t it = 0; it < n_iter; it++) {
        if (it == o.exploration_iters) {
            memset(upd, 0, 2 * n * sizeof *upd);
            for (size_t q = 0; q < 2 * n; q++)
                gains[q] = 1.0f;
            continue;
        }
        int explore = it < o.exploration_iters;
        float exag = (float)(explore ? o.early_exaggeration : 1.0);
        float momentum = explore ? 0.5f : 0.8f, lrf = (float)lr;
        if (adaptive) {
            size_t ph = it % ADAPT_PERIOD;
            double now = stopwatch_now();
            if (cur > 1 && ph > 2 * ADAPT_PROBE && now - it_t0 > 1.5 * probe_one / ADAPT_PROBE) {
                cur = 1;
                rp.tm = NULL;
            }
            it_t0 = now;
            if (ph == 0 || ph == ADAPT_PROBE || ph == 2 * ADAPT_PROBE) {
                double t = stopwatch_now();
                if (ph == ADAPT_PROBE)
                    probe_one = t - probe_t0;
                int all = ph == ADAPT_PROBE || t - probe_t0 < probe_one;
                cur = ph > 0 && all ? team_threads(team) : 1;
                probe_t0 = t;
                rp.tm = cur > 1 ? team : NULL;
            }
        }
        if ((rc = forces(&rp, &P, Y, rep, &Z, abuf, err)))
            goto cleanup;
        struct update_job uj = {&P,   abuf,     rep, upd,     gains, Y, n, (float)(1.0 / Z),
                                exag, momentum, lrf, min_gain};
        team_for(rp.tm, UPDATE_CHUNKS, update_chunk, &uj);
        double t = stopwatch_now();
        if (t - last > 0.2) {
            last = t;
            if ((rc = pw_progress_check(progress, err, "tsne")))
                goto cleanup;
            pw_progress_report(progress, "tsne_optimize", (double)it / (double)n_iter);
        }
    }
    if ((rc = forces(&rp, &P, Y, rep, &Z, abuf, err)))
        goto cleanup;
    r.kl_divergence = kl_divergence(&P, Y, Z);
    for (size_t i = 0; i < n; i++) { /* back to the input's numbering */
        rep[2 * (size_t)order[i]] = Y[2 * i];
        rep[2 * (size_t)order[i] + 1] = Y[2 * i + 1];
    }
    memcpy(Y, rep, 2 * n * sizeof *Y);
    r.n_iter = n_iter - 1; /* sklearn's n_iter_ */
    r.seconds_optimize = stopwatch_now() - t3 + t_init;
    pw_progress_report(progress, "tsne_optimize", 1.0);
    if (res)
        *res = r;
    rc = 0;
cleanup:
    knn_free(&g);
    free(P.rowptr);
    free(order);
    free(inv);
    team_stop(team);
    tsne_fft_free(rp.fft);
    free(rp.zi);
    free(upd);
    free(gains);
    free(rep);
    free(abuf);
    return rc;
}
