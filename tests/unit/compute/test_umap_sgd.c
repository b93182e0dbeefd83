/* test_umap_sgd.c - the SGD's per-chunk epoch (umap_sgd_rounds.h): the schedule samples
 * each edge its share of the epochs with the negative-sample rate per sample, and the
 * AVX-512 plan and rounds compute what the portable ones do. */
#include <math.h>
#include <stdlib.h>

#include "pw_test.h"
#include "test_data.h"
#include "umap_sgd_rounds.h"

enum { N = 300, HALF = 4, DEG = 2 * HALF, NNZ = N * DEG };

/* A ring: vertex i joined to i +- 1 .. HALF, weight 1 / distance (symmetric), columns
 * sorted. */
struct ring {
    size_t rowptr[N + 1];
    int32_t col[NNZ];
    float rate[NNZ]; /* weight / max weight */
};

static void ring_build(struct ring *r)
{
    size_t e = 0;
    for (int i = 0; i < N; i++) {
        r->rowptr[i] = e;
        int cols[DEG];
        int m = 0;
        for (int dlt = -HALF; dlt <= HALF; dlt++)
            if (dlt != 0)
                cols[m++] = ((i + dlt) % N + N) % N;
        for (int a = 1; a < DEG; a++) /* insertion sort of the columns */
            for (int b = a; b > 0 && cols[b - 1] > cols[b]; b--) {
                int t = cols[b];
                cols[b] = cols[b - 1];
                cols[b - 1] = t;
            }
        for (int k = 0; k < DEG; k++) {
            int dist = abs(cols[k] - i);
            dist = dist > N / 2 ? N - dist : dist;
            r->col[e] = cols[k];
            r->rate[e] = 1.0f / (float)dist;
            e++;
        }
    }
    r->rowptr[N] = e;
}

static void test_umap_sgd_samples_each_edge_its_share_of_epochs(void)
{
    static struct ring r;
    ring_build(&r);
    struct umap_sgd_schedule sch = {.rate = r.rate, .neg_rate = 2.5f};
    struct umap_sgd_due d;
    CHECK(umap_sgd_due_alloc(&d, N, NNZ, DEG) == 0);
    int samples[NNZ] = {0}, negatives[NNZ] = {0};
    const int epochs = 200;
    for (int t = 0; t < epochs; t++) {
        d.lo = 0;
        d.e0 = 0;
        umap_sgd_plan(r.rowptr, r.col, &sch, N, (float)t, &d);
        for (uint32_t i = 0; i < d.n_due; i++) {
            samples[d.edge[i]]++;
            negatives[d.edge[i]] += d.nneg[i];
        }
    }
    for (int e = 0; e < NNZ; e++) {
        /* umap-learn: sampled at the epochs t >= k epochs_per_sample, k = 1, 2, ... */
        int k = (int)floorf((float)(epochs - 1) * r.rate[e]);
        CHECK(samples[e] == k);
        CHECK(negatives[e] == (int)floorf((float)k * 2.5f));
    }
    umap_sgd_due_free(&d);
}

static void test_umap_sgd_avx512_plan_matches_portable(void)
{
    if (!umap_sgd_have_avx512())
        return; /* nothing to compare on this CPU */
    static struct ring r;
    ring_build(&r);
    struct umap_sgd_schedule sch = {.rate = r.rate, .neg_rate = 5.0f};
    struct umap_sgd_due a, b;
    CHECK(umap_sgd_due_alloc(&a, N, NNZ, DEG) == 0);
    CHECK(umap_sgd_due_alloc(&b, N, NNZ, DEG) == 0);
    for (int t = 0; t < 60; t++) {
        a.lo = b.lo = 37;
        a.e0 = b.e0 = r.rowptr[37];
        umap_sgd_plan(r.rowptr, r.col, &sch, 251, (float)t, &a);
        umap_sgd_plan_avx512(r.rowptr, r.col, &sch, 251, (float)t, &b);
        CHECK(a.n_due == b.n_due);
        CHECK(memcmp(a.col, b.col, a.n_due * sizeof *a.col) == 0);
        CHECK(memcmp(a.nneg, b.nneg, a.n_due * sizeof *a.nneg) == 0);
        CHECK(memcmp(a.edge, b.edge, a.n_due * sizeof *a.edge) == 0);
        CHECK(memcmp(a.count, b.count, (251 - 37) * sizeof *a.count) == 0);
        CHECK(memcmp(a.first, b.first, (251 - 37) * sizeof *a.first) == 0);
    }
    umap_sgd_due_free(&a);
    umap_sgd_due_free(&b);
}

/* One epoch of vertices [lo, hi) on a random layout, portable or AVX-512. */
static void one_epoch(const struct ring *r, int avx512, float *Y, const float *snap)
{
    struct umap_sgd_schedule sch = {.rate = r->rate, .neg_rate = 5.0f};
    struct umap_sgd_step step = {
        .snap = snap,
        .n = N,
        .a = 1.577f,
        .b = 0.895f,
        .gamma = 1.0f,
        .alpha = 0.8f,
        .seed = 7,
        .epoch = 12, /* every edge of rate >= 1/4 is due */
    };
    struct umap_sgd_due d;
    CHECK(umap_sgd_due_alloc(&d, N, NNZ, DEG) == 0);
    umap_sgd_chunk(r->rowptr, r->col, &sch, 100, 200, &step, Y, avx512, &d);
    umap_sgd_due_free(&d);
}

static void test_umap_sgd_avx512_rounds_match_portable_to_rounding(void)
{
    if (!umap_sgd_have_avx512())
        return;
    static struct ring r;
    ring_build(&r);
    static float snap[2 * N], ya[2 * N], yb[2 * N];
    uint64_t s = 11;
    for (int i = 0; i < 2 * N; i++)
        snap[i] = ya[i] = yb[i] = (float)(10.0 * td_uniform(&s));
    one_epoch(&r, 0, ya, snap);
    one_epoch(&r, 1, yb, snap);
    double moved = 0, diff = 0;
    int off = 0; /* coordinates further apart than rounding */
    for (int i = 0; i < 2 * N; i++) {
        moved += fabs((double)ya[i] - snap[i]);
        diff = fmax(diff, fabs((double)ya[i] - yb[i]));
        off += fabs((double)ya[i] - yb[i]) > 1e-4;
        if (i < 200 || i >= 400) /* rows outside the chunk are not written */
            CHECK(ya[i] == snap[i] && yb[i] == snap[i]);
    }
    /* The two differ by fused multiply-adds; a repulsion at a few hundredths, whose
     * gradient is steep, turns that into ~1e-3 on a coordinate or two.  A wrong draw or
     * formula would move most of the chunk's 200 coordinates by tenths. */
    CHECK(moved > 1.0);
    CHECK(off <= 4);
    CHECK(diff < 1e-2);
}

int main(void)
{
    RUN(test_umap_sgd_samples_each_edge_its_share_of_epochs);
    RUN(test_umap_sgd_avx512_plan_matches_portable);
    RUN(test_umap_sgd_avx512_rounds_match_portable_to_rounding);
    PW_TEST_MAIN();
}
