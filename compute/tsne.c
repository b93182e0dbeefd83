/* tsne.c - Barnes-Hut t-SNE (van der Maaten 2014) as scikit-learn 1.2 runs it.
 *
 * Layout of one iteration: build a quadtree of the current layout (sequential, cheap),
 * then in parallel for every point: the attractive force over its row of the sparse P
 * and the repulsive force and partial normaliser Z_i from a tree walk.  Z = sum Z_i is
 * added in point order, so nothing depends on the thread count.  The tree is rebuilt
 * into one growing node array (indices, not pointers) to avoid per-iteration mallocs. */
#include "tsne.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dense.h"
#include "pca.h"
#include "rng.h"

void tsne_options_default(struct tsne_options *opt)
{
    opt->perplexity = 30.0;
    opt->learning_rate = 200.0;
    opt->n_iter = 1000;
    opt->metric = KNN_EUCLIDEAN;
    opt->init = TSNE_INIT_PCA;
    opt->early_exaggeration = 12.0;
    opt->exploration_iters = 250;
    opt->theta = 0.5;
    opt->min_gain = 0.01;
    opt->seed = 42;
    opt->threads = 0;
    opt->knn_method = KNN_AUTO;
    opt->knn_exact_max_n = 20000;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- affinities ---- */

/* sklearn's _binary_search_perplexity for one row of squared distances.  Distances are
 * shifted by their minimum first: P and the entropy are unchanged, exp() stays finite. */
static void perplexity_row(const float *sqd, size_t k, double perplexity, float *p)
{
    const double tol = 1e-5, eps = 1e-8;
    double desired = log(perplexity), beta = 1.0, beta_min = -INFINITY, beta_max = INFINITY;
    double dmin = INFINITY;
    for (size_t j = 0; j < k; j++)
        dmin = sqd[j] < dmin ? sqd[j] : dmin;
    double pj[1024], *buf = k <= 1024 ? pj : malloc(k * sizeof *buf);
    if (!buf) { /* degrade to uniform rather than fail deep in a worker thread */
        for (size_t j = 0; j < k; j++)
            p[j] = (float)(1.0 / (double)k);
        return;
    }
    for (int step = 0; step < 100; step++) {
        double sum = 0.0, sdp = 0.0;
        for (size_t j = 0; j < k; j++) {
            buf[j] = exp(-(sqd[j] - dmin) * beta);
            sum += buf[j];
        }
        if (sum == 0.0)
            sum = eps;
        for (size_t j = 0; j < k; j++) {
            buf[j] /= sum;
            sdp += (sqd[j] - dmin) * buf[j];
        }
        double diff = log(sum) + beta * sdp - desired;
        if (fabs(diff) <= tol)
            break;
        if (diff > 0) {
            beta_min = beta;
            beta = isinf(beta_max) ? beta * 2.0 : (beta + beta_max) / 2.0;
        } else {
            beta_max = beta;
            beta = isinf(beta_min) ? beta / 2.0 : (beta + beta_min) / 2.0;
        }
    }
    for (size_t j = 0; j < k; j++)
        p[j] = (float)buf[j];
    if (buf != pj)
        free(buf);
}

struct sparse {
    size_t n, nnz;
    size_t *rowptr;
    int32_t *col;
    float *val; /* sklearn keeps P in float32 too */
};

struct ptri {
    int32_t col;
    float val;
};

static int ptri_cmp(const void *pa, const void *pb)
{
    const struct ptri *a = pa, *b = pb;
    return a->col < b->col ? -1 : a->col > b->col;
}

/* P = (C + C^T) / sum(C + C^T) for the conditional matrix C (n x k rows). */
static int symmetrize(const struct knn_graph *g, const float *cond, int threads, struct sparse *P)
{
    size_t n = g->n, k = g->k;
    size_t *cnt = calloc(n + 1, sizeof *cnt), *fill = malloc(n * sizeof *fill);
    size_t *outc = malloc(n * sizeof *outc);
    struct ptri *t = malloc(2 * n * k * sizeof *t);
    int rc = -1;
    memset(P, 0, sizeof *P);
    if (!cnt || !fill || !outc || !t)
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < k; s++) {
            cnt[i + 1]++;
            cnt[(size_t)g->idx[i * k + s] + 1]++;
        }
    for (size_t i = 0; i < n; i++)
        cnt[i + 1] += cnt[i];
    memcpy(fill, cnt, n * sizeof *fill);
    for (size_t i = 0; i < n; i++)
        for (size_t s = 0; s < k; s++) {
            int32_t j = g->idx[i * k + s];
            t[fill[i]++] = (struct ptri){j, cond[i * k + s]};
            t[fill[j]++] = (struct ptri){(int32_t)i, cond[i * k + s]};
        }
#pragma omp parallel for schedule(dynamic, 256) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        struct ptri *row = t + cnt[i];
        size_t len = cnt[i + 1] - cnt[i], w = 0;
        qsort(row, len, sizeof *row, ptri_cmp);
        for (size_t r = 0; r < len;) {
            int32_t c = row[r].col;
            double v = 0;
            for (; r < len && row[r].col == c; r++)
                v += row[r].val;
            row[w++] = (struct ptri){c, (float)v};
        }
        outc[i] = w;
    }
    size_t nnz = 0;
    for (size_t i = 0; i < n; i++)
        nnz += outc[i];
    P->n = n;
    P->nnz = nnz;
    P->rowptr = malloc((n + 1) * sizeof *P->rowptr);
    P->col = malloc(nnz * sizeof *P->col);
    P->val = malloc(nnz * sizeof *P->val);
    if (!P->rowptr || !P->col || !P->val)
        goto cleanup;
    double sum = 0;
    size_t e = 0; /* sum in double, store the normalised values in float */
    for (size_t i = 0; i < n; i++) {
        P->rowptr[i] = e;
        for (size_t s = 0; s < outc[i]; s++) {
            P->col[e] = t[cnt[i] + s].col;
            P->val[e] = t[cnt[i] + s].val;
            sum += P->val[e++];
        }
    }
    P->rowptr[n] = e;
    sum = sum > 2.220446049250313e-16 ? sum : 2.220446049250313e-16; /* MACHINE_EPSILON */
    for (size_t q = 0; q < nnz; q++)
        P->val[q] = (float)(P->val[q] / sum);
    rc = 0;
cleanup:
    free(cnt);
    free(fill);
    free(outc);
    free(t);
    return rc;
}

static void sparse_free(struct sparse *P)
{
    free(P->rowptr);
    free(P->col);
    free(P->val);
    memset(P, 0, sizeof *P);
}

/* ---- quadtree ---- */

struct qnode {
    float x0, y0;     /* lower corner of the cell */
    float cx, cy;     /* centre of mass */
    float w2;         /* squared cell width */
    int32_t count;    /* points below */
    int32_t point;    /* >= 0: the leaf's only point; -1 internal; -2 leaf of duplicates */
    int32_t lo;       /* leaves: first index in the permutation */
    int32_t child[4]; /* -1 when empty */
};

struct qtree {
    struct qnode *nodes;
    size_t len, cap;
    int32_t *perm, *tmp;
    const double *Y;
    float *Yf; /* float copy of Y for the force pass */
};

static int32_t qt_new(struct qtree *t)
{
    if (t->len == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 1024;
        struct qnode *p = realloc(t->nodes, cap * sizeof *p);
        if (!p)
            return -1;
        t->nodes = p;
        t->cap = cap;
    }
    return (int32_t)t->len++;
}

static int32_t qt_build(struct qtree *t, size_t lo, size_t hi, double x0, double y0, double w,
                        int depth)
{
    int32_t id = qt_new(t);
    if (id < 0)
        return -1;
    struct qnode nd;
    nd.x0 = (float)x0;
    nd.y0 = (float)y0;
    nd.w2 = (float)(w * w);
    nd.count = (int32_t)(hi - lo);
    nd.lo = (int32_t)lo;
    nd.child[0] = nd.child[1] = nd.child[2] = nd.child[3] = -1;
    double sx = 0, sy = 0;
    for (size_t s = lo; s < hi; s++) {
        sx += t->Y[2 * (size_t)t->perm[s]];
        sy += t->Y[2 * (size_t)t->perm[s] + 1];
    }
    nd.cx = (float)(sx / (double)(hi - lo));
    nd.cy = (float)(sy / (double)(hi - lo));
    nd.point = hi - lo == 1 ? t->perm[lo] : -2;
    if (hi - lo > 1 && depth < 50) {
        nd.point = -1;
        double mx = x0 + w / 2, my = y0 + w / 2;
        size_t c[4] = {0, 0, 0, 0}, off[5];
        for (size_t s = lo; s < hi; s++) {
            const double *p = t->Y + 2 * (size_t)t->perm[s];
            c[(p[0] >= mx) + 2 * (p[1] >= my)]++;
        }
        off[0] = lo;
        for (int q = 0; q < 4; q++)
            off[q + 1] = off[q] + c[q];
        size_t pos[4] = {off[0], off[1], off[2], off[3]};
        for (size_t s = lo; s < hi; s++) {
            const double *p = t->Y + 2 * (size_t)t->perm[s];
            t->tmp[pos[(p[0] >= mx) + 2 * (p[1] >= my)]++] = t->perm[s];
        }
        memcpy(t->perm + lo, t->tmp + lo, (hi - lo) * sizeof *t->perm);
        for (int q = 0; q < 4; q++) {
            if (!c[q])
                continue;
            int32_t ch =
                qt_build(t, off[q], off[q + 1], q & 1 ? mx : x0, q & 2 ? my : y0, w / 2, depth + 1);
            if (ch < 0)
                return -1;
            nd.child[q] = ch;
        }
    }
    t->nodes[id] = nd;
    return id;
}

/* ---- grouped Barnes-Hut: one walk per small cell, then a dense loop per point ----
 *
 * The points of a cell with at most GROUP_MAX points share one tree walk; a node is
 * summarised when its width is below theta times its distance to the *nearest point of
 * the cell's box*, which implies the per-point criterion for every member (so the
 * approximation is at least as accurate as per-point Barnes-Hut).  The walk yields two
 * lists - summaries (centre, count) and single points - and each member then runs over
 * them in a branch-free loop the compiler vectorises. */
#define GROUP_MAX 32

struct walk_buf {
    float *fx, *fy, *fc; /* summaries: centre and count */
    size_t nf, capf;
    int32_t *pts; /* single points */
    size_t np, capp;
    int oom;
};

static void wb_far(struct walk_buf *b, float x, float y, float c)
{
    if (b->nf == b->capf) {
        size_t cap = b->capf ? 2 * b->capf : 1024;
        float *a = realloc(b->fx, cap * sizeof *a),
              *bb = a ? realloc(b->fy, cap * sizeof *bb) : NULL;
        float *cc = bb ? realloc(b->fc, cap * sizeof *cc) : NULL;
        if (a)
            b->fx = a;
        if (bb)
            b->fy = bb;
        if (!cc) {
            b->oom = 1;
            return;
        }
        b->fc = cc;
        b->capf = cap;
    }
    b->fx[b->nf] = x;
    b->fy[b->nf] = y;
    b->fc[b->nf++] = c;
}

static void wb_point(struct walk_buf *b, int32_t p)
{
    if (b->np == b->capp) {
        size_t cap = b->capp ? 2 * b->capp : 1024;
        int32_t *a = realloc(b->pts, cap * sizeof *a);
        if (!a) {
            b->oom = 1;
            return;
        }
        b->pts = a;
        b->capp = cap;
    }
    b->pts[b->np++] = p;
}

static void collect_groups(const struct qtree *t, int32_t id, int32_t *groups, size_t *ng)
{
    const struct qnode *nd = &t->nodes[id];
    if (nd->count <= GROUP_MAX || nd->point != -1) {
        groups[(*ng)++] = id;
        return;
    }
    for (int c = 0; c < 4; c++)
        if (nd->child[c] >= 0)
            collect_groups(t, nd->child[c], groups, ng);
}

/* Repulsion and Z_i for every point of group node g. */
PW_CLONES static void group_repulse(const struct qtree *t, int32_t g, float theta2,
                                    struct walk_buf *b, double *zi, double *rep)
{
    const struct qnode *gn = &t->nodes[g];
    float w = sqrtf(gn->w2), bx0 = gn->x0, by0 = gn->y0, bx1 = bx0 + w, by1 = by0 + w;
    int32_t stack[512];
    int sp = 0;
    b->nf = b->np = 0;
    stack[sp++] = 0;
    while (sp) {
        const struct qnode *nd = &t->nodes[stack[--sp]];
        if (nd->point != -1) { /* a leaf: its points interact exactly */
            for (int32_t s = nd->lo; s < nd->lo + nd->count; s++)
                wb_point(b, t->perm[s]);
            continue;
        }
        float dx = nd->cx < bx0 ? bx0 - nd->cx : nd->cx > bx1 ? nd->cx - bx1 : 0.0f;
        float dy = nd->cy < by0 ? by0 - nd->cy : nd->cy > by1 ? nd->cy - by1 : 0.0f;
        if (nd->w2 < theta2 * (dx * dx + dy * dy)) {
            wb_far(b, nd->cx, nd->cy, (float)nd->count);
        } else {
            for (int c = 0; c < 4; c++)
                if (nd->child[c] >= 0 && sp < 512)
                    stack[sp++] = nd->child[c];
        }
    }
    const float *Yf = t->Yf;
    for (int32_t s = gn->lo; s < gn->lo + gn->count; s++) {
        size_t i = (size_t)t->perm[s];
        float xi = Yf[2 * i], yi = Yf[2 * i + 1];
        float z = 0, fx = 0, fy = 0;
#pragma omp simd reduction(+ : z, fx, fy)
        for (size_t k = 0; k < b->nf; k++) {
            float dx = xi - b->fx[k], dy = yi - b->fy[k];
            float q = 1.0f / (1.0f + dx * dx + dy * dy), qc = b->fc[k] * q, qq = qc * q;
            z += qc;
            fx += qq * dx;
            fy += qq * dy;
        }
        for (size_t k = 0; k < b->np; k++) {
            size_t j = (size_t)b->pts[k];
            float dx = xi - Yf[2 * j], dy = yi - Yf[2 * j + 1];
            float q = j == i ? 0.0f : 1.0f / (1.0f + dx * dx + dy * dy);
            z += q;
            fx += q * q * dx;
            fy += q * q * dy;
        }
        zi[i] = z;
        rep[2 * i] = fx;
        rep[2 * i + 1] = fy;
    }
}

/* Rebuild the tree over the current layout t->Y (n points). */
static int qt_rebuild(struct qtree *t, size_t n)
{
    const double *Y = t->Y;
    for (size_t i = 0; i < 2 * n; i++)
        t->Yf[i] = (float)Y[i];
    double lo_x = INFINITY, lo_y = INFINITY, hi_x = -INFINITY, hi_y = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        lo_x = Y[2 * i] < lo_x ? Y[2 * i] : lo_x;
        hi_x = Y[2 * i] > hi_x ? Y[2 * i] : hi_x;
        lo_y = Y[2 * i + 1] < lo_y ? Y[2 * i + 1] : lo_y;
        hi_y = Y[2 * i + 1] > hi_y ? Y[2 * i + 1] : hi_y;
    }
    double w = hi_x - lo_x > hi_y - lo_y ? hi_x - lo_x : hi_y - lo_y;
    w = w > 0 ? w * (1.0 + 1e-9) + 1e-12 : 1e-12;
    t->len = 0;
    for (size_t i = 0; i < n; i++)
        t->perm[i] = (int32_t)i;
    return qt_build(t, 0, n, lo_x, lo_y, w, 0) < 0 ? -1 : 0;
}

/* KL(P || Q) with Q's normaliser from the tree, as sklearn's compute_error. */
static double kl_divergence(const struct sparse *P, const double *Y, double Z)
{
    const double tiny = 1.1754943508222875e-38; /* FLOAT32_TINY */
    double c = 0;
    for (size_t i = 0; i < P->n; i++)
        for (size_t e = P->rowptr[i]; e < P->rowptr[i + 1]; e++) {
            size_t j = (size_t)P->col[e];
            double dx = Y[2 * i] - Y[2 * j], dy = Y[2 * i + 1] - Y[2 * j + 1];
            double q = 1.0 / (1.0 + dx * dx + dy * dy) / Z, p = P->val[e];
            c += p * log((p > tiny ? p : tiny) / (q > tiny ? q : tiny));
        }
    return c;
}

/* ---- optimisation ---- */

int tsne_fit(const float *x, size_t n, size_t d, const struct tsne_options *opt, float *out,
             struct tsne_result *res, const struct pw_progress *progress, struct pw_error *err)
{
    struct tsne_options o;
    if (opt)
        o = *opt;
    else
        tsne_options_default(&o);
    int rc = dense_validate("tsne", x, n, d, err);
    if (rc)
        return rc;
    if (!out)
        return pw_error_set(err, PW_EINVAL, "tsne: no output buffer");
    if (isnan(o.perplexity) || !isfinite(o.learning_rate) || isnan(o.early_exaggeration) ||
        !(o.early_exaggeration >= 1.0) || !(o.theta >= 0 && o.theta <= 1) || !(o.min_gain >= 0))
        return pw_error_set(err, PW_EINVAL,
                            "tsne: perplexity and learning_rate must be numbers, "
                            "early_exaggeration >= 1, theta in [0, 1], min_gain >= 0");
    /* projection.py's rules */
    double perp = o.perplexity < (double)(n - 1) ? o.perplexity : (double)(n - 1);
    perp = perp > 1.0 ? perp : 1.0;
    double lr = o.learning_rate > 10.0 ? o.learning_rate : 10.0;
    size_t n_iter = o.n_iter > 250 ? o.n_iter : 250;
    int threads = dense_threads(o.threads);
    size_t k = (size_t)(3.0 * perp + 1.0);
    k = k < n - 1 ? k : n - 1;

    struct tsne_result r;
    memset(&r, 0, sizeof r);
    r.perplexity = perp;
    r.learning_rate = lr;
    struct knn_graph g = {0};
    struct sparse P = {0};
    struct qtree tree = {0};
    int32_t *groups = NULL;
    float *cond = NULL;
    double *Y = NULL, *upd = NULL, *gains = NULL, *grad = NULL, *zi = NULL, *rep = NULL;
    double t0 = now_seconds();

    struct knn_options ko;
    knn_options_default(&ko);
    ko.metric = o.metric;
    ko.method = o.knn_method;
    ko.exact_max_n = o.knn_exact_max_n;
    ko.seed = o.seed;
    ko.threads = threads;
    if ((rc = knn_build(x, n, d, k, &ko, &g, progress, err)))
        goto cleanup;
    double t1 = now_seconds();
    r.seconds_knn = t1 - t0;

    cond = malloc(n * k * sizeof *cond);
    if (!cond) {
        rc = pw_error_set(err, PW_ENOMEM, "tsne: out of memory");
        goto cleanup;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        float sq[1024], *row = g.dist + i * k;
        float *s2 = k <= 1024 ? sq : row; /* k > 1024: square in place */
        for (size_t j = 0; j < k; j++)
            s2[j] = row[j] * row[j]; /* sklearn squares the k-NN distances, any metric */
        perplexity_row(s2, k, perp, cond + i * k);
    }
    if (symmetrize(&g, cond, threads, &P)) {
        rc = pw_error_set(err, PW_ENOMEM, "tsne: out of memory for P");
        goto cleanup;
    }
    knn_free(&g);
    free(cond);
    cond = NULL;
    double t2 = now_seconds();
    r.seconds_affinity = t2 - t1;

    Y = malloc(2 * n * sizeof *Y);
    upd = calloc(2 * n, sizeof *upd);
    gains = malloc(2 * n * sizeof *gains);
    grad = malloc(2 * n * sizeof *grad);
    zi = malloc(n * sizeof *zi);
    rep = malloc(2 * n * sizeof *rep);
    tree.perm = malloc(n * sizeof *tree.perm);
    tree.tmp = malloc(n * sizeof *tree.tmp);
    tree.Yf = malloc(2 * n * sizeof *tree.Yf);
    groups = malloc(n * sizeof *groups);
    if (!Y || !upd || !gains || !grad || !zi || !rep || !tree.perm || !tree.tmp || !tree.Yf ||
        !groups) {
        rc = pw_error_set(err, PW_ENOMEM, "tsne: out of memory");
        goto cleanup;
    }
    tree.Y = Y;
    for (size_t i = 0; i < 2 * n; i++)
        gains[i] = 1.0;
    if (o.init == TSNE_INIT_PCA) {
        struct pca_options po;
        pca_options_default(&po);
        po.threads = threads;
        if ((rc = pca_fit(x, n, d, &po, out, NULL, progress, err)))
            goto cleanup;
        double mean = 0, var = 0;
        for (size_t i = 0; i < n; i++)
            mean += out[2 * i];
        mean /= (double)n;
        for (size_t i = 0; i < n; i++)
            var += (out[2 * i] - mean) * (out[2 * i] - mean);
        double sd = sqrt(var / (double)n);
        for (size_t i = 0; i < 2 * n; i++)
            Y[i] = sd > 0 ? (double)out[i] / sd * 1e-4 : 1e-4 * rng_normal(o.seed, 0x715e, i);
    } else {
        for (size_t i = 0; i < 2 * n; i++)
            Y[i] = 1e-4 * rng_normal(o.seed, 0x715e, i);
    }
    for (size_t i = 0; i < 2 * n; i++) /* sklearn works in float32 */
        Y[i] = (double)(float)Y[i];

    /* Below ~8k points an iteration takes well under a millisecond per thread: three
     * OpenMP barriers per iteration would cost more than they save. */
    int iter_threads = n < 8192 ? 1 : threads;
    double theta2 = o.theta * o.theta, last = now_seconds(), kl = 0;
    size_t it;
    /* sklearn runs _gradient_descent twice: iterations [0, 250) exaggerated, then
     * [251, n_iter) - it skips 250 and restarts update and gains; n_iter_ is the last. */
    for (it = 0; it < n_iter; it++) {
        if (it == o.exploration_iters) {
            memset(upd, 0, 2 * n * sizeof *upd);
            for (size_t q = 0; q < 2 * n; q++)
                gains[q] = 1.0;
            continue;
        }
        int explore = it < o.exploration_iters;
        double exag = explore ? o.early_exaggeration : 1.0;
        double momentum = explore ? 0.5 : 0.8;
        if (qt_rebuild(&tree, n)) {
            rc = pw_error_set(err, PW_ENOMEM, "tsne: out of memory for the quadtree");
            goto cleanup;
        }
        size_t ng = 0;
        collect_groups(&tree, 0, groups, &ng);
        int oom = 0;
#pragma omp parallel num_threads(iter_threads) reduction(| : oom)
        {
            struct walk_buf b = {0};
#pragma omp for schedule(dynamic, 8)
            for (size_t gi = 0; gi < ng; gi++)
                group_repulse(&tree, groups[gi], (float)theta2, &b, zi, rep);
            oom |= b.oom;
            free(b.fx);
            free(b.fy);
            free(b.fc);
            free(b.pts);
        }
        if (oom) {
            rc = pw_error_set(err, PW_ENOMEM, "tsne: out of memory for the tree walk");
            goto cleanup;
        }
#pragma omp parallel for schedule(static) num_threads(iter_threads)
        for (size_t i = 0; i < n; i++) {
            const float *Yf = tree.Yf;
            float ax = 0, ay = 0, xi = Yf[2 * i], yi = Yf[2 * i + 1];
            for (size_t e = P.rowptr[i]; e < P.rowptr[i + 1]; e++) {
                size_t j = (size_t)P.col[e];
                float dx = xi - Yf[2 * j], dy = yi - Yf[2 * j + 1];
                float pq = P.val[e] / (1.0f + dx * dx + dy * dy);
                ax += pq * dx;
                ay += pq * dy;
            }
            grad[2 * i] = exag * ax;
            grad[2 * i + 1] = exag * ay;
        }
        double Z = 0;
        for (size_t i = 0; i < n; i++)
            Z += zi[i];
        Z = Z > 0 ? Z : 1e-300;
#pragma omp parallel for schedule(static) num_threads(iter_threads)
        for (size_t q = 0; q < 2 * n; q++) {
            double gq = 4.0 * (grad[q] - rep[q] / Z); /* c = 2 (dof + 1) / dof, dof = 1 */
            if (upd[q] * gq < 0.0)
                gains[q] += 0.2;
            else
                gains[q] *= 0.8;
            if (gains[q] < o.min_gain)
                gains[q] = o.min_gain;
            upd[q] = momentum * upd[q] - lr * gains[q] * gq;
            Y[q] += upd[q];
        }
        double t = now_seconds();
        if (t - last > 0.2) {
            last = t;
            if ((rc = pw_progress_check(progress, err, "tsne")))
                goto cleanup;
            pw_progress_report(progress, "tsne_optimize", (double)it / (double)n_iter);
        }
    }
    if (qt_rebuild(&tree, n)) {
        rc = pw_error_set(err, PW_ENOMEM, "tsne: out of memory for the quadtree");
        goto cleanup;
    }
    {
        size_t ng = 0;
        struct walk_buf b = {0};
        collect_groups(&tree, 0, groups, &ng);
        for (size_t gi = 0; gi < ng; gi++)
            group_repulse(&tree, groups[gi], (float)theta2, &b, zi, rep);
        free(b.fx);
        free(b.fy);
        free(b.fc);
        free(b.pts);
        if (b.oom) {
            rc = pw_error_set(err, PW_ENOMEM, "tsne: out of memory for the tree walk");
            goto cleanup;
        }
    }
    double Zf = 0;
    for (size_t i = 0; i < n; i++)
        Zf += zi[i];
    kl = kl_divergence(&P, Y, Zf > 0 ? Zf : 1e-300);
    for (size_t q = 0; q < 2 * n; q++)
        out[q] = (float)Y[q];
    r.n_iter = n_iter - 1; /* sklearn's n_iter_ */
    r.kl_divergence = kl;
    r.seconds_optimize = now_seconds() - t2;
    pw_progress_report(progress, "tsne_optimize", 1.0);
    if (res)
        *res = r;
    rc = 0;
cleanup:
    knn_free(&g);
    sparse_free(&P);
    free(cond);
    free(Y);
    free(upd);
    free(gains);
    free(grad);
    free(zi);
    free(rep);
    free(tree.nodes);
    free(tree.perm);
    free(tree.tmp);
    free(tree.Yf);
    free(groups);
    return rc;
}
