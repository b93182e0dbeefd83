/* umap_sgd.c - UMAP's edge-sampled SGD (see umap_sgd.h and, for how it is parallel
 * yet deterministic, umap.h): the schedule, the epochs and the chunks of vertices.
 *
 * Each epoch copies the layout to a snapshot and runs fixed chunks of CHUNK vertices,
 * in any order on any thread: a vertex reads the snapshot and writes only its own
 * position, so a chunk's result does not depend on the others.  A chunk's epoch is
 * planned (its due edges and slots) and then run in rounds by umap_sgd_rounds.c. */
#include "umap_sgd.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "stopwatch.h"
#include "umap_sgd_rounds.h"

#define CHUNK 1024 /* vertices per chunk: a fixed partition of the vertices */

struct sgd {
    const struct umap_graph *g;
    float *Y, *snap;
    float *rate; /* per edge: w / w_max */
    struct umap_sgd_schedule sch;
    float a, b, gamma;
    uint64_t seed;
    int avx512; /* the AVX-512 plan and rounds */
};

/* One thread's buffers for the chunks it runs (struct umap_sgd_due's). */
struct sgd_work {
    struct umap_sgd_due d;
    uint32_t *next; /* per due count: the next slot of a vertex with that count */
};

static void sgd_work_free(struct sgd_work *w)
{
    free(w->d.col);
    free(w->d.nneg);
    free(w->d.edge);
    free(w->d.count);
    free(w->d.first);
    free(w->d.vertex);
    free(w->d.start);
    free(w->d.active);
    free(w->d.px);
    free(w->d.py);
    free(w->next);
}

/* Buffers for chunks of up to max_edges edges and vertices of up to max_degree edges. */
static int sgd_work_alloc(struct sgd_work *w, size_t max_edges, size_t max_degree)
{
    memset(w, 0, sizeof *w);
    size_t slots = CHUNK + UMAP_SGD_LANES;
    w->d.col = malloc((max_edges + UMAP_SGD_LANES) * sizeof *w->d.col);
    w->d.nneg = malloc((max_edges + UMAP_SGD_LANES) * sizeof *w->d.nneg);
    w->d.edge = malloc((max_edges + UMAP_SGD_LANES) * sizeof *w->d.edge);
    w->d.count = malloc(slots * sizeof *w->d.count);
    w->d.first = malloc(slots * sizeof *w->d.first);
    w->d.vertex = calloc(slots, sizeof *w->d.vertex);
    w->d.start = calloc(slots, sizeof *w->d.start);
    w->d.active = malloc((max_degree + 2) * sizeof *w->d.active);
    w->d.px = calloc(slots, sizeof *w->d.px);
    w->d.py = calloc(slots, sizeof *w->d.py);
    w->next = malloc((max_degree + 2) * sizeof *w->next);
    return w->d.col && w->d.nneg && w->d.edge && w->d.count && w->d.first && w->d.vertex &&
           w->d.start && w->d.active && w->d.px && w->d.py && w->next;
}

/* The slots of a planned chunk of nv vertices: the vertices with a due edge, most due
 * edges first, by vertex number among equals (a counting sort), and per round the
 * number of slots that take part. */
static void sgd_slots(struct sgd_work *w, size_t nv)
{
    struct umap_sgd_due *d = &w->d;
    uint32_t maxc = 0;
    for (size_t v = 0; v < nv; v++)
        maxc = d->count[v] > maxc ? d->count[v] : maxc;
    memset(w->next, 0, (maxc + 2) * sizeof *w->next);
    for (size_t v = 0; v < nv; v++)
        w->next[d->count[v]]++;
    /* active[r] = vertices with more than r due edges; a vertex with c of them takes the
     * slots from active[c] on (those with more come first) */
    uint32_t above = 0;
    for (uint32_t c = maxc; c > 0; c--) {
        uint32_t here = w->next[c];
        w->next[c] = above;
        above += here;
        d->active[c - 1] = above;
    }
    d->n_rounds = maxc;
    d->n_slots = above;
    for (size_t v = 0; v < nv; v++) {
        uint32_t c = d->count[v];
        if (c == 0)
            continue;
        uint32_t j = w->next[c]++;
        d->vertex[j] = (uint32_t)v;
        d->start[j] = d->first[v];
    }
}

/* One epoch of vertices [lo, hi). */
static void sgd_chunk(struct sgd *s, struct sgd_work *w, size_t lo, size_t hi,
                      const struct umap_sgd_step *step)
{
    const struct umap_graph *g = s->g;
    struct umap_sgd_due *d = &w->d;
    d->lo = lo;
    d->e0 = g->rowptr[lo];
    if (s->avx512)
        umap_sgd_plan_avx512(g->rowptr, g->col, &s->sch, hi, (float)step->epoch, d);
    else
        umap_sgd_plan(g->rowptr, g->col, &s->sch, hi, (float)step->epoch, d);
    sgd_slots(w, hi - lo);
    for (uint32_t j = 0; j < d->n_slots; j++) {
        size_t v = lo + d->vertex[j];
        d->px[j] = s->Y[2 * v];
        d->py[j] = s->Y[2 * v + 1];
    }
    if (s->avx512)
        umap_sgd_rounds_avx512(step, d);
    else
        umap_sgd_rounds(step, d);
    for (uint32_t j = 0; j < d->n_slots; j++) {
        size_t v = lo + d->vertex[j];
        s->Y[2 * v] = d->px[j];
        s->Y[2 * v + 1] = d->py[j];
    }
}

static int optimize_layout(struct sgd *s, size_t n_epochs, float alpha0, int threads,
                           const struct pw_progress *progress, struct pw_error *err)
{
    if (s->g->n < 8192)
        threads = 1; /* a barrier per epoch costs more than it saves on small graphs */
    const struct umap_graph *g = s->g;
    size_t n = g->n, max_edges = 0, max_degree = 0;
    for (size_t c0 = 0; c0 < n; c0 += CHUNK) {
        size_t c1 = c0 + CHUNK < n ? c0 + CHUNK : n;
        size_t ne = g->rowptr[c1] - g->rowptr[c0];
        max_edges = ne > max_edges ? ne : max_edges;
    }
    for (size_t v = 0; v < n; v++) {
        size_t dg = g->rowptr[v + 1] - g->rowptr[v];
        max_degree = dg > max_degree ? dg : max_degree;
    }
    int rc = 0;
    struct sgd_work *work = calloc((size_t)threads, sizeof *work);
    if (!work)
        return pw_error_set(err, PW_ENOMEM, "umap: out of memory for the optimiser");
    for (int t = 0; t < threads; t++)
        if (!sgd_work_alloc(&work[t], max_edges, max_degree)) {
            rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the optimiser");
            goto cleanup;
        }
    double last = stopwatch_now();
    float alpha = alpha0;
    for (size_t epoch = 0; epoch < n_epochs; epoch++) {
        memcpy(s->snap, s->Y, 2 * n * sizeof *s->Y);
        struct umap_sgd_step step = {
            .snap = s->snap,
            .n = n,
            .a = s->a,
            .b = s->b,
            .gamma = s->gamma,
            .alpha = alpha,
            .seed = s->seed,
            .epoch = epoch,
        };
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (size_t c0 = 0; c0 < n; c0 += CHUNK)
            sgd_chunk(s, &work[omp_get_thread_num()], c0, c0 + CHUNK < n ? c0 + CHUNK : n, &step);
        alpha = alpha0 * (1.0f - (float)epoch / (float)n_epochs);
        double t = stopwatch_now();
        if (t - last > 0.2) {
            last = t;
            if ((rc = pw_progress_check(progress, err, "umap")))
                goto cleanup;
            pw_progress_report(progress, "umap_optimize", (double)epoch / (double)n_epochs);
        }
    }
cleanup:
    for (int t = 0; t < threads; t++)
        sgd_work_free(&work[t]);
    free(work);
    return rc;
}

/* make_epochs_per_sample, the symmetry the optimiser relies on, then the epochs. */
int umap_sgd_optimize(const struct umap_graph *g, const struct umap_sgd_params *p, int threads,
                      float *Y, const struct pw_progress *progress, struct pw_error *err)
{
    size_t n = g->n;
    int rc = 0;
    struct sgd s;
    memset(&s, 0, sizeof s);
    size_t nnz = g->nnz;
    s.g = g;
    s.Y = Y;
    s.a = p->a;
    s.b = p->b;
    s.gamma = p->gamma;
    s.seed = p->seed;
    s.avx512 = umap_sgd_have_avx512();
    s.snap = malloc(2 * n * sizeof *s.snap);
    s.rate = malloc((nnz + 1) * sizeof *s.rate);
    if (!s.snap || !s.rate) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the optimiser");
        goto cleanup;
    }
    float wmax = 0;
    for (size_t e = 0; e < nnz; e++)
        wmax = g->val[e] > wmax ? g->val[e] : wmax;
    for (size_t e = 0; e < nnz; e++)
        s.rate[e] = g->val[e] / wmax;
    s.sch.rate = s.rate;
    s.sch.neg_rate = p->negative_sample_rate;
    /* The optimiser relies on every edge (i, j) having a reverse (j, i) of the same weight
     * (they are then sampled in the same epochs; see umap.h). */
    for (size_t i = 0; i < n; i++)
        for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
            size_t j = (size_t)g->col[e];
            size_t lo = g->rowptr[j], hi = g->rowptr[j + 1];
            while (lo < hi) { /* binary search for column i in row j */
                size_t mid = (lo + hi) / 2;
                if (g->col[mid] < (int32_t)i)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            if (lo >= g->rowptr[j + 1] || g->col[lo] != (int32_t)i || g->val[lo] != g->val[e]) {
                rc = pw_error_set(err, PW_EINTERNAL, "umap: fuzzy graph is not symmetric");
                goto cleanup;
            }
        }
    rc = optimize_layout(&s, p->n_epochs, p->learning_rate, threads, progress, err);
cleanup:
    free(s.snap);
    free(s.rate);
    return rc;
}
