/* umap_sgd.c - UMAP's edge-sampled SGD (see umap_sgd.h and, for how it is parallel
 * yet deterministic, umap.h): the schedule, the epochs and the chunks of vertices.
 *
 * Each epoch copies the layout to a snapshot and runs fixed chunks of CHUNK vertices,
 * in any order on any thread: a vertex reads the snapshot and writes only its own
 * position, so a chunk's result does not depend on the others.  A chunk's epoch is
 * planned (its due edges and slots) and then run in rounds by umap_sgd_rounds.c. */
#include "umap_sgd.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "stopwatch.h"
#include "team.h"
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

/* One thread's buffers for the chunks it runs, apart from the other threads' (they
 * write the struct's counts). */
struct sgd_work {
    struct umap_sgd_due d;
    char apart[64];
};

/* One epoch on a team: threads take the next chunk until none is left.  Which thread
 * runs a chunk does not matter to its result. */
struct sgd_epoch {
    struct sgd *s;
    struct sgd_work *work; /* per thread */
    const struct umap_sgd_step *step;
    atomic_size_t next; /* the next chunk's first vertex */
};

static void sgd_epoch_run(void *arg, int t, int nthreads)
{
    (void)nthreads;
    struct sgd_epoch *ep = arg;
    const struct umap_graph *g = ep->s->g;
    for (;;) {
        size_t lo = atomic_fetch_add(&ep->next, CHUNK);
        if (lo >= g->n)
            break;
        size_t hi = lo + CHUNK < g->n ? lo + CHUNK : g->n;
        umap_sgd_chunk(g->rowptr, g->col, &ep->s->sch, lo, hi, ep->step, ep->s->Y, ep->s->avx512,
                       &ep->work[t].d);
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
    /* A team whose helpers sleep between epochs: on a busy machine a helper spinning at
     * the end of an epoch held the core its preempted partner needed to finish it. */
    struct team *tm = NULL;
    int rc = team_start(threads, &tm, err);
    if (rc)
        return rc;
    struct sgd_work *work = calloc((size_t)threads, sizeof *work);
    if (!work) {
        team_stop(tm);
        return pw_error_set(err, PW_ENOMEM, "umap: out of memory for the optimiser");
    }
    for (int t = 0; t < threads; t++)
        if (umap_sgd_due_alloc(&work[t].d, CHUNK, max_edges, max_degree)) {
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
        struct sgd_epoch ep = {.s = s, .work = work, .step = &step};
        atomic_init(&ep.next, 0);
        team_run(tm, sgd_epoch_run, &ep);
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
    team_stop(tm);
    for (int t = 0; t < threads; t++)
        umap_sgd_due_free(&work[t].d);
    free(work);
    return rc;
}

/* Whether every edge (i, j) of g has a reverse (j, i) of the same weight, in one pass:
 * rows are visited in order and columns are sorted, so the reverse of row i's edge to j
 * is the first entry of row j not yet matched (cursor[j], n entries of scratch). */
static int graph_is_symmetric(const struct umap_graph *g, size_t *cursor)
{
    for (size_t j = 0; j < g->n; j++)
        cursor[j] = g->rowptr[j];
    for (size_t i = 0; i < g->n; i++)
        for (size_t e = g->rowptr[i]; e < g->rowptr[i + 1]; e++) {
            size_t j = (size_t)g->col[e], r = cursor[j]++;
            if (r >= g->rowptr[j + 1] || (size_t)g->col[r] != i || g->val[r] != g->val[e])
                return 0;
        }
    for (size_t j = 0; j < g->n; j++)
        if (cursor[j] != g->rowptr[j + 1])
            return 0;
    return 1;
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
    size_t *cursor = malloc((n + 1) * sizeof *cursor);
    if (!cursor) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the optimiser");
        goto cleanup;
    }
    int symmetric = graph_is_symmetric(g, cursor);
    free(cursor);
    if (!symmetric) {
        rc = pw_error_set(err, PW_EINTERNAL, "umap: fuzzy graph is not symmetric");
        goto cleanup;
    }
    rc = optimize_layout(&s, p->n_epochs, p->learning_rate, threads, progress, err);
cleanup:
    free(s.snap);
    free(s.rate);
    return rc;
}
