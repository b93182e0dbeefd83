/* knn.c - exact (BLAS) and approximate (k-means cells or RP forest, then NN-descent)
 * k-NN graphs: the API (knn.h) and the path from the options to a graph; the steps are
 * in knn_metric.c, knn_descent.c, knn_cells.c and knn_join.c (knn_internal.h).
 *
 * Both paths keep, per point, a bounded max-heap of (distance, index) ordered with
 * the index as tie-break so every comparison is total and results reproducible.
 *
 * Determinism of the approximate path: work is split into jobs (a tree leaf, or a
 * point's local join).  Jobs of a block run in parallel and only *propose* updates
 * (target, candidate, distance) into per-job buffers, reading heaps that nobody
 * writes meanwhile; then each thread applies the proposals for its own range of
 * targets, scanning the buffers in job order.  The order of pushes into any heap is
 * therefore fixed by the input and the seed alone. */
#include "knn.h"

#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas_fixed.h"
#include "knn_cells.h"
#include "knn_descent.h"
#include "knn_heap.h"
#include "knn_probe.h"
#include "rng.h"

/* The values knn.h documents; a field not named is 0 (n_trees, leaf_size, n_iters,
 * max_candidates, list_rows: "pick from n and k"), which is also how a field added later
 * keeps its old behaviour. */
void knn_options_default(struct knn_options *opt)
{
    *opt = (struct knn_options){
        .metric = KNN_EUCLIDEAN,
        .method = KNN_AUTO,
        .exact_max_n = 0,
        .part_size = 4096,
        .spill = 0.1,
        .delta = 0.001, /* pynndescent 0.5 default */
        .recall_target = 0.97,
        .seed = 42,
        .threads = 0,
        .amx = 1,
        .screen = 1,
    };
}

int knn_parse_metric(const char *name, enum knn_metric *out, struct pw_error *err)
{
    if (name && !strcmp(name, "euclidean")) {
        *out = KNN_EUCLIDEAN;
        return 0;
    }
    if (name && !strcmp(name, "cosine")) {
        *out = KNN_COSINE;
        return 0;
    }
    return pw_error_set(err, PW_EINVAL, "unsupported metric '%s' (expected euclidean or cosine)",
                        name ? name : "(null)");
}

void knn_free(struct knn_graph *g)
{
    if (!g)
        return;
    free(g->idx);
    free(g->dist);
    g->idx = NULL;
    g->dist = NULL;
    g->n = g->k = 0;
}

/* Whether the selection's scans may use AVX-512 on this CPU. */
void knn_nnd_scan_init(struct nnd *s)
{
#ifdef KNN_SCAN_AVX512
    __builtin_cpu_init();
    s->avx512 = __builtin_cpu_supports("avx512f");
#else
    s->avx512 = 0;
#endif
}

/* The exact graph: knn_whole_join, then every distance computed again directly (unless the
 * pre-screen left them exact).  g's arrays hold cap slots a row.  Progress reports run
 * from p0 to 1. */
static int knn_exact(const struct metric_ctx *m, size_t n, size_t k, const struct knn_options *o,
                     int threads, double p0, struct knn_graph *g,
                     const struct pw_progress *progress, struct pw_error *err)
{
    struct nnd s = {.m = m,
                    .n = n,
                    .k = k,
                    .hd = g->dist,
                    .hi = g->idx,
                    .kb = flag_bytes(k),
                    .threads = threads,
                    .pool_rows = o->screen_rows};
    knn_nnd_scan_init(&s);
    int rc = knn_whole_join(&s, o->amx, o->screen, p0, progress, err);
    if (!rc) /* the dots' distances again directly; the pre-screen's are already */
        knn_finish_rows(m, g, NULL, !s.exact_dist, threads);
    g->rejoined = s.rejoined;
    g->screened = s.screened;
    g->built = KNN_BUILT_EXACT;
    g->recall_estimate = 1.0;
    return rc;
}

/* Rows whose exact neighbours measure the approximate graph (knn_probe.h): 256 rows give
 * 3,840 neighbour pairs at k = 15, a standard error under 0.005 near recall 0.97. */
#define KNN_PROBE_ROWS 256

/* NN-descent's rounds stop once the probe's estimate reaches this (and the target):
 * the rounds after it add little (Fashion-MNIST 20k, k = 91: the last three of five
 * moved it from 0.9956 to 0.9994) and cost a round each. */
#define KNN_RECALL_ENOUGH 0.98

/* Fraction of the probe's (row, exact neighbour) pairs that share a cell, a spilled row
 * counting in both of its cells: the recall the cells' exact joins alone would give. */
static double cells_hold(const struct kmeans_cells *cl, float thr, const struct knn_probe *p)
{
    size_t hit = 0, all = 0;
    for (size_t r = 0; r < p->count; r++) {
        int32_t i = p->rows[r];
        int32_t a0 = cl->first[i], a1 = cl->border[i] < thr ? cl->second[i] : a0;
        for (size_t e = 0; e < p->k; e++) {
            int32_t j = p->idx[r * p->k + e];
            if (j < 0)
                continue;
            int32_t b0 = cl->first[j], b1 = cl->border[j] < thr ? cl->second[j] : b0;
            all++;
            hit += a0 == b0 || a0 == b1 || a1 == b0 || a1 == b1;
        }
    }
    return all ? (double)hit / (double)all : 1.0;
}

/* Above this local intrinsic dimension (knn_probe.h) NN-descent's rounds do not repair
 * what part_size cells cut: a neighbour's neighbour is then barely more likely to be a
 * neighbour.  Measured from cells of 4,096 (k 14 cosine and 91 euclidean): Fashion-MNIST
 * 20k and 70k (15-22) went from 0.93-0.99 to 0.985-0.999 in two rounds; isotropic rows
 * of 96 and 768 values and 5 clusters isotropic inside in 768-d (47-195) gained under
 * 0.01 a round from 0.16-0.30.  Between them (isotropic 24-d and 48-d rows, 19-35) the
 * rounds stall too; there they are still tried, as everywhere below the bound. */
#define KNN_LID_ROUNDS 40.0

/* What the cells hold of the probe's neighbours (cells_hold) with the `spill` fraction
 * of rows spilled into *hold.  A larger spill spills a superset of the rows, so it holds
 * at least as much. */
static int spill_hold(const struct kmeans_cells *cells, double spill, const struct knn_probe *p,
                      double *hold, struct pw_error *err)
{
    float thr;
    int rc = knn_spill_threshold(cells, spill, &thr, err);
    if (!rc)
        *hold = cells_hold(cells, thr, p);
    return rc;
}

/* The smallest spill fraction of {0, spill / 2, spill} whose cells hold the target of
 * the probe's neighbours into *chosen, what they hold into *hold; the full spill (and
 * what it holds) when none does.  A spilled row joins two cells: the join's work grows
 * with the square of (1 + spill). */
static int cheapest_spill(const struct kmeans_cells *cells, double spill, const struct knn_probe *p,
                          double target, double *chosen, double *hold, struct pw_error *err)
{
    const double tries[3] = {0.0, spill / 2.0, spill};
    for (int t = 0; t < 3; t++) {
        int rc = spill_hold(cells, tries[t], p, hold, err);
        if (rc)
            return rc;
        *chosen = tries[t];
        if (*hold >= target)
            break;
    }
    return 0;
}

/* Before the exact graph (n^2 d / 2 multiply-adds) when NN-descent stalled below the
 * target: the exact joins inside larger k-means cells, of n/16, n/8 or n/4 rows (each a
 * sixteenth to a quarter of the exact graph's work), the smallest whose cells hold
 * recall_target of the probe's neighbours, with the least spill that holds them
 * (cheapest_spill).  That is data whose clusters are bigger than part_size cells and of
 * high intrinsic dimension inside, where the rounds cannot cross a cell border; cells
 * that would not hold them are not joined (a k-means each to know).
 * The heaps are rebuilt from the chosen cells, perm gets their visiting order and *rec
 * the probe's estimate of the new graph; *rec is unchanged when no size qualifies. */
static int larger_cells(struct nnd *s, const struct knn_options *o, const struct knn_probe *p,
                        int32_t *perm, const struct pw_progress *progress, double *rec,
                        struct pw_error *err)
{
    size_t n = s->n;
    /* the cells report no progress of their own: "knn" stays where the rounds left it */
    struct pw_progress quiet = {progress ? progress->cancel : NULL, NULL, NULL, NULL, NULL};
    for (size_t div = 16; div >= 4; div /= 2) {
        size_t part = n / div;
        if (part < 2 * o->part_size)
            continue;
        struct kmeans_cells cells;
        double spill = o->spill, hold = 0.0;
        int rc = knn_make_cells(s->m, n, part, o->seed, s->threads, &cells, &quiet, err);
        if (!rc)
            rc = cheapest_spill(&cells, o->spill, p, o->recall_target, &spill, &hold, err);
        if (rc || hold < o->recall_target) {
            kmeans_cells_free(&cells);
            if (rc)
                return rc;
            continue;
        }
        /* the cells just measured are the ones joined, from empty heaps */
        s->rejoined = s->screened = 0;
        rc = knn_partition_seed(s, &cells, spill, o->amx, o->screen, perm, 0.0, &quiet, err);
        kmeans_cells_free(&cells);
        if (rc)
            return rc;
        *rec = knn_probe_recall(p, s->hi, s->k);
        return 0;
    }
    return 0;
}

/* NN-descent's scratch: the jobs' proposal buffers, the heaps' flags, the candidate lists.
 * Released as soon as the rounds are over when a fallback follows (graph and scratch are
 * not held at once), else at the end. */
struct rounds {
    struct propbuf *bufs;
    size_t njobs;
    uint8_t *flags;
    int32_t *newc, *oldc, *cand;
    float *newp, *oldp;
};

static void rounds_free(struct rounds *r)
{
    if (r->bufs)
        for (size_t b = 0; b < r->njobs; b++)
            free(r->bufs[b].p);
    free(r->bufs);
    free(r->flags);
    free(r->newc);
    free(r->oldc);
    free(r->newp);
    free(r->oldp);
    free(r->cand);
    *r = (struct rounds){.njobs = r->njobs};
}

/* 1 when the rounds left will not bring the estimate from rec to target: a round's gain
 * shrinks round after round (by a factor q = gain / previous gain), so what is left to
 * gain is at most gain q / (1 - q), and never more than KNN_ROUNDS_AHEAD times the last
 * gain.  Then the larger cells or the exact graph beat more rounds: a round compares each
 * point with its candidates' candidates, scattered rows pair by pair, while the larger
 * cells join blocks of rows (at most a quarter of the exact graph's pairs); rounds that
 * would need more than three more to get there cost more than those.  Data of high
 * intrinsic dimension stall this way: NN-descent gains under 0.01 a round there, far from
 * 0.95; low-dimensional isotropic clouds and clusters (24- and 32-d) gain 0.03-0.08 a
 * round from cells that hold 0.3-0.5. */
#define KNN_ROUNDS_AHEAD 3
static int rounds_fall_short(double rec, double gain, double prev_gain, size_t left, double target)
{
    double more = gain * (double)(left < KNN_ROUNDS_AHEAD ? left : KNN_ROUNDS_AHEAD);
    if (prev_gain > 0.0 && gain < prev_gain) {
        double q = gain / prev_gain;
        if (gain * q / (1.0 - q) < more)
            more = gain * q / (1.0 - q);
    }
    return rec + (more > 0.0 ? more : 0.0) < target;
}

static int knn_approx(const struct metric_ctx *m, size_t n, size_t k, const struct knn_options *o,
                      int threads, struct knn_graph *g, const struct pw_progress *progress,
                      struct pw_error *err)
{
    size_t d = m->d;
    size_t n_trees = o->n_trees, leaf = o->leaf_size, iters = o->n_iters, maxc = o->max_candidates;
    if (!n_trees) {
        n_trees = 5 + (size_t)llround(pow((double)n, 0.25));
        if (n_trees > 16)
            n_trees = 16;
    }
    if (!leaf)
        leaf = k > 10 ? k : 10;
    size_t forest = o->part_size ? 0 : n_trees; /* trees built (none when seeding by cells) */
    if (!iters) {
        iters = (size_t)llround(log2((double)n));
        if (iters < 5)
            iters = 5;
    } else if (iters == KNN_NO_ROUNDS) {
        iters = 0;
    }
    double seeded = forest ? 0.2 : 0.6; /* progress fraction once the heaps are seeded */
    /* Candidates per point per iteration; the local join costs their square.  Small k
     * (UMAP's 14) needs 2k candidates for recall >= 0.95 on clustered embeddings, while
     * t-SNE's k = 91 reaches 0.999 with 16 (bench/compute/RESULTS.md, k-NN recall). */
    if (!maxc)
        maxc = k <= 30 ? 2 * k : 16;
    size_t kb = flag_bytes(k), lblock = o->list_rows ? o->list_rows : knn_list_block(n, d, maxc);
    if (lblock > n)
        lblock = n;
    struct nnd s = {.m = m,
                    .n = n,
                    .k = k,
                    .hd = g->dist,
                    .hi = g->idx,
                    .kb = kb,
                    .threads = threads,
                    .pool_rows = o->screen_rows};
    knn_nnd_scan_init(&s);
    int rc = 0, oom = 0;
    struct knn_probe probe = {0};
    double rec = 1.0, rec_prev = 0.0, done = 0.0; /* done: progress when the rounds end */
    int futile = 0; /* the part_size cells would not hold the neighbours, nor rounds repair */
    size_t njobs = n_trees > (size_t)threads ? n_trees : (size_t)threads;
    if (njobs < 64)
        njobs = 64;
    struct rounds r = {.njobs = njobs, .bufs = calloc(njobs, sizeof *r.bufs)};
    int32_t *perm = malloc((forest ? forest : 1) * n * sizeof *perm);
    int sketch = forest && d > 2 * KNN_SKETCH_D;
    size_t sd = sketch ? KNN_SKETCH_D : d;
    float *normals = malloc((forest ? forest : 1) * sd * sizeof *normals);
    float *sk = sketch ? malloc(n * sd * sizeof *sk) : NULL;
    float *R = sketch ? malloc(d * sd * sizeof *R) : NULL;
    r.flags = malloc(n * kb);
    size_t nc = iters ? lblock * maxc : 1; /* candidate lists: only when NN-descent runs */
    r.newc = malloc(nc * sizeof *r.newc);
    r.oldc = malloc(nc * sizeof *r.oldc);
    r.newp = malloc(nc * sizeof *r.newp);
    r.oldp = malloc(nc * sizeof *r.oldp);
    r.cand = malloc(njobs * 3 * maxc * sizeof *r.cand);
    int32_t *slot = malloc((iters ? n : 1) * sizeof *slot);
    if (!r.bufs || !perm || !normals || !r.flags || !r.newc || !r.oldc || !r.newp || !r.oldp ||
        !r.cand || !slot || (sketch && (!sk || !R))) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for NN-descent (n = %zu)", n);
        goto cleanup;
    }
    s.hf = r.flags;
    if (o->recall_target > 0.0) {
        size_t pc = n < KNN_PROBE_ROWS ? n : KNN_PROBE_ROWS;
        if ((rc = knn_probe_build(m->x, n, d, k, m->metric == KNN_COSINE, m->inv_norm, m->sqnorm,
                                  pc, o->seed, threads, &probe, err)))
            goto cleanup;
        malloc_trim(0); /* the probe's scratch: before the seeds place theirs */
    }
    /* The cells fill the heaps after their k-means (knn_partition_seed) and set every flag
     * at their end: neither array is resident before it is needed. */
    if (!o->part_size) {
        heap_init(g->dist, g->idx, n * k);
        memset(r.flags, 0, n * kb);
    }
    if (o->part_size) {
        /* 1. exact neighbours inside k-means cells */
        struct kmeans_cells cells;
        if ((rc = knn_make_cells(m, n, o->part_size, o->seed, threads, &cells, progress, err)))
            goto cleanup;
        /* Cells that cut the neighbours on data the rounds cannot repair are not joined:
         * straight to the larger cells or the exact graph (below).  They would be joined
         * with the full spill, which holds the most, so its hold decides. */
        double hold = 1.0;
        if (probe.count && probe.lid > KNN_LID_ROUNDS &&
            !(rc = spill_hold(&cells, o->spill, &probe, &hold, err)))
            futile = hold < o->recall_target;
        if (!rc && !futile)
            rc = knn_partition_seed(&s, &cells, o->spill, o->amx, o->screen, perm, seeded, progress,
                                    err);
        kmeans_cells_free(&cells);
        if (rc)
            goto cleanup;
        if (futile) {
            rec = hold;
            done = seeded;
            goto fallback;
        }
    } else {
        struct metric_ctx sm = *m;
        if (sketch) {
            knn_sketch(m->x, n, d, o->seed, R, sk, threads);
            sm.x = sk;
            sm.d = sd;
            free(R);
            R = NULL;
        }

        /* 1. (pynndescent) random projection forest: one job per tree, leaves propose all their
         * pairs */
        for (size_t t0 = 0; t0 < n_trees; t0 += (size_t)threads) {
            if ((rc = pw_progress_check(progress, err, "knn")))
                goto cleanup;
            size_t t1 = t0 + (size_t)threads < n_trees ? t0 + (size_t)threads : n_trees;
#pragma omp parallel for schedule(static, 1) num_threads(threads)
            for (size_t t = t0; t < t1; t++) {
                int32_t *p = perm + t * n;
                for (size_t i = 0; i < n; i++)
                    p[i] = (int32_t)i;
                struct rptree_job job = {
                    m, &sm, p, n, leaf, o->seed, t, normals + t * sd, &r.bufs[t - t0], g->dist, k};
                knn_rptree_split(&job, p, n, 0, 0);
            }
            knn_apply_proposals(&s, r.bufs, t1 - t0, &oom);
            pw_progress_report(progress, "knn", seeded * (double)t1 / (double)n_trees);
        }
        free(sk); /* only the trees use the sketch: not held through NN-descent's peak */
        sk = NULL;
        int32_t *first = realloc(perm, n * sizeof *perm); /* the first tree's order is kept */
        if (first)
            perm = first;
    }
    /* Fill rows a tiny leaf or cell left short with random points. */
    for (size_t i = 0; i < n; i++)
        for (uint64_t tries = 0; g->idx[i * k] < 0 && tries < 64 * k; tries++) {
            size_t j = rng_below(o->seed, 0xf111 + i, tries, n);
            if (j != i)
                heap_push(g->dist + i * k, g->idx + i * k, nnd_hf(&s, i), k, pair_dist(m, i, j),
                          (int32_t)j, FLAG_NEW);
        }

    /* 2. NN-descent.  Points are joined in the first tree's leaf order (or the cells'):
     * consecutive points share candidates, whose rows then come from cache rather than
     * memory.  Each round takes the points lblock at a time in that order: their
     * candidate lists are sampled from the graph as it stands, then joined.  A later
     * block's lists see what the earlier blocks found. */
    const int32_t *order = perm;
    if (iters)
        for (size_t t = 0; t < n; t++)
            slot[order[t]] = (int32_t)t;
    done = seeded;
    if (probe.count) {
        rec = knn_probe_recall(&probe, g->idx, k);
        rec_prev = rec;
        if (rec >= KNN_RECALL_ENOUGH && rec >= o->recall_target)
            iters = 0; /* the cells alone did: no round would be kept */
    }
    for (size_t it = 0; it < iters; it++) {
        size_t changed = 0;
        for (size_t l0 = 0; l0 < n; l0 += lblock) {
            size_t l1 = l0 + lblock < n ? l0 + lblock : n;
            if ((rc = pw_progress_check(progress, err, "knn")))
                goto cleanup;
            knn_sample_lists(&s, r.flags, slot, l0, l1, maxc, o->seed, 0x1000 + it, r.newc, r.newp,
                             r.oldc, r.oldp);
            /* local joins, a block of points at a time */
            size_t block = njobs * JOIN_BLOCK_ROWS;
            for (size_t b0 = l0; b0 < l1; b0 += block) {
                if ((rc = pw_progress_check(progress, err, "knn")))
                    goto cleanup;
                size_t b1 = b0 + block < l1 ? b0 + block : l1;
#pragma omp parallel for schedule(static, 1) num_threads(threads)
                for (size_t jb = 0; jb < njobs; jb++) {
                    size_t lo = b0 + (b1 - b0) * jb / njobs, hi = b0 + (b1 - b0) * (jb + 1) / njobs;
                    for (size_t t = lo; t < hi; t++)
                        knn_local_join(m, g, r.newc + (t - l0) * maxc, r.oldc + (t - l0) * maxc,
                                       maxc, r.cand + jb * 3 * maxc, &r.bufs[jb]);
                }
                changed += knn_apply_proposals(&s, r.bufs, njobs, &oom);
                pw_progress_report(progress, "knn",
                                   seeded + (1.0 - seeded) * ((double)it + (double)b1 / (double)n) /
                                                (double)iters);
            }
        }
        if (oom) {
            rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for NN-descent proposals");
            goto cleanup;
        }
        done = seeded + (1.0 - seeded) * (double)(it + 1) / (double)iters;
        g->rounds = it + 1;
        if (probe.count) {
            double gain = rec - rec_prev;
            rec_prev = rec;
            rec = knn_probe_recall(&probe, g->idx, k);
            if (rec >= KNN_RECALL_ENOUGH && rec >= o->recall_target)
                break;
            if (rounds_fall_short(rec, rec - rec_prev, gain, iters - it - 1, o->recall_target))
                break;
        }
        if ((double)changed <= o->delta * (double)k * (double)n)
            break;
    }
fallback:
    g->built = KNN_BUILT_APPROX;
    g->recall_estimate = probe.count ? rec : -1.0;
    if (probe.count && rec < o->recall_target) {
        /* The rounds' scratch goes before a fallback's is placed: they hold the graph and
         * their own at once. */
        rounds_free(&r);
        s.hf = NULL;
        malloc_trim(0);
    }
    if (probe.count && rec < o->recall_target && o->part_size) {
        if ((rc = larger_cells(&s, o, &probe, perm, progress, &rec, err)))
            goto cleanup;
        if (rec >= o->recall_target) {
            g->built = KNN_BUILT_LARGER_CELLS;
            g->recall_estimate = rec;
        }
    }
    g->rejoined = s.rejoined;
    g->screened = s.screened;
    if (probe.count && rec < o->recall_target) {
        if ((rc = knn_exact(m, n, k, o, threads, done, g, progress, err)))
            goto cleanup;
    } else {
        /* Every distance here was computed from differences or centred rows (cells: the
         * cell's mean taken off; NN-descent and the trees: knn_pair4x4), so the rows are only
         * sorted: computing them again would be a fifth of t-SNE's k-NN time. */
        knn_finish_rows(m, g, perm, 0, threads);
    }
    pw_progress_report(progress, "knn", 1.0);

cleanup:
    rounds_free(&r);
    free(perm);
    free(normals);
    free(sk);
    free(R);
    free(slot);
    knn_probe_free(&probe);
    return oom && !rc ? pw_error_set(err, PW_ENOMEM, "knn: out of memory") : rc;
}

/* The work rule of knn.h: the exact graph costs n / 2 pairs a row, each d multiply-adds
 * in blocked products plus EXACT_PAIR_D multiply-adds' worth of selection; the cells'
 * path about part_size pairs a row (a cell's part_size / 2 with the spilled rows, one or
 * two of NN-descent's rounds, the probe), each costing d plus APPROX_PAIR_D: scattered
 * rows, the rounds' pair-by-pair distances, k-means.  The constants put the crossover
 * where both paths' CPU time put it (2 threads, k 14 cosine and 91 euclidean, isotropic,
 * broad, tight and Fashion-MNIST rows): ~20k rows at d = 96, ~10k at d = 768.  Past
 * EXACT_MAX_CELLS cells' worth of rows the rule never picks the exact graph: no d is
 * small enough for its n^2 (and nothing below d = 64 was measured). */
#define EXACT_PAIR_D    32.0
#define APPROX_PAIR_D   224.0
#define EXACT_MAX_CELLS 6
/* With the RP forest's seed (part_size 0): umap-learn's switch (n < 4096 exact). */
#define FOREST_EXACT_MAX_N 4096

int knn_auto_exact(size_t n, size_t d, const struct knn_options *opt)
{
    if (opt->exact_max_n || !opt->part_size)
        return n <= (opt->exact_max_n ? opt->exact_max_n : FOREST_EXACT_MAX_N);
    if (n > EXACT_MAX_CELLS * opt->part_size)
        return 0;
    double exact = 0.5 * (double)n * ((double)d + EXACT_PAIR_D);
    double approx = (double)opt->part_size * ((double)d + APPROX_PAIR_D);
    return exact <= approx;
}

int knn_build(const float *x, size_t n, size_t d, size_t k, const struct knn_options *opt,
              struct knn_graph *g, const struct pw_progress *progress, struct pw_error *err)
{
    struct knn_options defaults;
    if (!opt) {
        knn_options_default(&defaults);
        opt = &defaults;
    }
    g->idx = NULL;
    g->dist = NULL;
    g->n = g->k = 0;
    g->rejoined = g->screened = g->rounds = 0;
    int rc = dense_validate_shape("knn", x, n, d, err); /* the values: with the norms */
    if (rc)
        return rc;
    if (k < 1 || k >= n)
        return pw_error_set(err, PW_EINVAL, "knn: k must be in [1, n-1] = [1, %zu], got %zu", n - 1,
                            k);
    int threads = dense_threads(opt->threads), blas_saved = blas_fixed_enter();
    float *norms = malloc(n * sizeof *norms), *inv = malloc(n * sizeof *inv);
    float *sq = malloc(n * sizeof *sq);
    g->idx = malloc(n * k * sizeof *g->idx);
    g->dist = malloc(n * k * sizeof *g->dist);
    if (!norms || !inv || !sq || !g->idx || !g->dist) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory (n = %zu, k = %zu)", n, k);
        goto cleanup;
    }
    g->n = n;
    g->k = k;
    dense_row_norms(x, n, d, norms, threads);
    /* A row with an Inf or NaN has a non-finite norm (squares summed in double cannot
     * overflow), so the norms stand in for a pass over the input of its own; the values
     * are read again only for the message (a finite row may have an Inf norm too). */
    for (size_t i = 0; i < n; i++)
        if (!isfinite(norms[i])) {
            if ((rc = dense_validate("knn", x, n, d, err)))
                goto cleanup;
            break;
        }
    for (size_t i = 0; i < n; i++) {
        inv[i] = norms[i] > 0.0f ? 1.0f / norms[i] : 0.0f;
        sq[i] = norms[i] * norms[i];
    }
    struct metric_ctx m = {x, d, opt->metric, inv, sq};
    int exact = opt->method == KNN_EXACT || (opt->method == KNN_AUTO && knn_auto_exact(n, d, opt));
    pw_progress_report(progress, "knn", 0.0);
    rc = exact ? knn_exact(&m, n, k, opt, threads, 0.0, g, progress, err)
               : knn_approx(&m, n, k, opt, threads, g, progress, err);
cleanup:
    free(norms);
    free(inv);
    free(sq);
    blas_fixed_leave(blas_saved);
    if (rc)
        knn_free(g);
    return rc;
}

double knn_recall(const struct knn_graph *approx, const struct knn_graph *exact)
{
    size_t hit = 0, k = exact->k;
    for (size_t i = 0; i < exact->n; i++)
        for (size_t a = 0; a < k; a++)
            for (size_t b = 0; b < k; b++)
                if (approx->idx[i * k + a] == exact->idx[i * k + b]) {
                    hit++;
                    break;
                }
    return (double)hit / (double)(exact->n * k);
}
