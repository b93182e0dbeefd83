/* umap_sgd_rounds.c - the planning and the rounds of one epoch of UMAP's SGD on a chunk
 * of vertices (see umap_sgd_rounds.h), portable and on AVX-512.
 *
 * The gradient formulas are umap-learn's optimize_layout_euclidean: attraction
 * -2ab d^(2(b-1)) / (1 + a d^(2b)) towards the other endpoint, repulsion
 * 2 gamma b / ((0.001 + d^2)(1 + a d^(2b))) from each negative sample, every component
 * clipped to [-4, 4], 4 when a negative sample coincides with the point.  The power is
 * a polynomial approximation (umap_pow); negative sample p of a due edge is half (low,
 * then high 32 bits) of rng_mix(base + p / 2) with base = rng_mix(epoch_key + edge),
 * scaled to [0, n) by Lemire's multiply-shift, and skipped when it is the
 * point itself.  Up to NEG_CHUNK negative samples push from the same position (umap-learn
 * moves the point between them; see umap.h). */
#include "umap_sgd_rounds.h"

#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "rng.h"

#define NEG_CHUNK 8 /* negative samples pushed from one position before it moves */

/* ---- portable ---- */

/* x^b for normal x > 0 within ~1e-5 relative: exp2(b log2 x).  x = 2^e m with m in
 * [2/3, 4/3) by integer arithmetic on the bits, log2 m by a degree-6 polynomial in
 * m - 1, then b log2 x = n + f with n the nearest integer and exp2 f, f in [-1/2, 1/2],
 * by a degree-4 polynomial (both fitted on Chebyshev nodes, 2.1e-6 and 2.7e-6
 * absolute).  No division, no branch; its last bits do not matter to SGD, whose
 * gradients are clipped. */
static inline float umap_pow(float x, float b)
{
    int32_t xi, e;
    memcpy(&xi, &x, sizeof xi);
    e = (xi - 0x3f2aaaab) >> 23; /* 0x3f2aaaab: 2/3 */
    int32_t mi = xi - (int32_t)((uint32_t)e << 23);
    float m;
    memcpy(&m, &mi, sizeof m);
    float u = m - 1.0f;
    float lg =
        2.6460876e-07f +
        u * (1.4427319f +
             u * (-0.72142273f +
                  u * (0.47829878f + u * (-0.35736024f + u * (0.33358303f + u * -0.286169f)))));
    float y = b * ((float)e + lg);
    y = y < -126.0f ? -126.0f : y > 126.0f ? 126.0f : y;
    float n = nearbyintf(y), f = y - n;
    float p =
        1.0000001f + f * (0.69312102f + f * (0.24022107f + f * (0.055922035f + f * 0.0096760374f)));
    int32_t si = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &si, sizeof s);
    return p * s;
}

/* The random stream of an epoch: edge e's negative samples draw from
 * rng_mix(epoch_key + e). */
static inline uint64_t epoch_key(const struct umap_sgd_step *s)
{
    return rng_mix(s->seed ^ rng_mix(s->epoch));
}

static inline float clip4(float v)
{
    return v > 4.0f ? 4.0f : v < -4.0f ? -4.0f : v;
}

void umap_sgd_plan(const size_t *rowptr, const int32_t *col, const struct umap_sgd_schedule *sch,
                   size_t hi, float fe, struct umap_sgd_due *d)
{
    float f0 = fe >= 1.0f ? fe - 1.0f : 0.0f; /* nothing is due at epoch 0 */
    uint32_t nd = 0;
    for (size_t v = d->lo; v < hi; v++) {
        d->first[v - d->lo] = nd;
        for (size_t e = rowptr[v]; e < rowptr[v + 1]; e++) {
            float k = floorf(fe * sch->rate[e]);
            if (!(k > floorf(f0 * sch->rate[e])))
                continue;
            d->col[nd] = col[e];
            d->nneg[nd] = (int)(floorf(k * sch->neg_rate) - floorf((k - 1.0f) * sch->neg_rate));
            d->edge[nd] = (uint32_t)(e - d->e0);
            nd++;
        }
        d->count[v - d->lo] = nd - d->first[v - d->lo];
    }
    d->n_due = nd;
}

/* One due edge of one vertex: the attraction (twice: the head's move and the tail move
 * of the reverse edge, see umap.h), then its negative samples. */
static void portable_edge(const struct umap_sgd_step *s, const struct umap_sgd_due *d, uint32_t i,
                          size_t vert, float *cx, float *cy)
{
    const float *snap = s->snap;
    size_t k = (size_t)d->col[i];
    float dx = *cx - snap[2 * k], dy = *cy - snap[2 * k + 1], d2 = dx * dx + dy * dy;
    if (d2 > 0.0f) {
        float pb = umap_pow(d2, s->b); /* pow(d2, b - 1) = pow(d2, b) / d2 */
        float gc = (-2.0f * s->a * s->b * pb) / (d2 * (s->a * pb + 1.0f));
        *cx += 2.0f * (clip4(gc * dx) * s->alpha);
        *cy += 2.0f * (clip4(gc * dy) * s->alpha);
    }
    uint64_t base = rng_mix(epoch_key(s) + d->e0 + d->edge[i]);
    int nneg = d->nneg[i];
    for (int p0 = 0; p0 < nneg; p0 += NEG_CHUNK) {
        float mx = 0.0f, my = 0.0f;
        for (int p = p0; p < nneg && p < p0 + NEG_CHUNK; p++) {
            uint64_t h = rng_mix(base + (uint64_t)(p >> 1));
            uint32_t h32 = p & 1 ? (uint32_t)(h >> 32) : (uint32_t)h;
            size_t kk = (size_t)(((uint64_t)h32 * s->n) >> 32);
            if (kk == vert)
                continue;
            float ex = *cx - snap[2 * kk], ey = *cy - snap[2 * kk + 1], e2 = ex * ex + ey * ey;
            if (e2 > 0.0f) {
                float c =
                    2.0f * s->gamma * s->b / ((0.001f + e2) * (s->a * umap_pow(e2, s->b) + 1.0f));
                mx += clip4(c * ex);
                my += clip4(c * ey);
            } else {
                mx += 4.0f;
                my += 4.0f;
            }
        }
        *cx += mx * s->alpha;
        *cy += my * s->alpha;
    }
}

void umap_sgd_rounds(const struct umap_sgd_step *s, struct umap_sgd_due *d)
{
    for (uint32_t j = 0; j < d->n_slots; j++) {
        uint32_t v = d->vertex[j];
        float cx = d->px[j], cy = d->py[j];
        for (uint32_t r = 0; r < d->count[v]; r++)
            portable_edge(s, d, d->start[j] + r, d->lo + v, &cx, &cy);
        d->px[j] = cx;
        d->py[j] = cy;
    }
}

/* ---- buffers, slots, a chunk's epoch ---- */

void umap_sgd_due_free(struct umap_sgd_due *d)
{
    free(d->col);
    free(d->nneg);
    free(d->edge);
    free(d->count);
    free(d->first);
    free(d->vertex);
    free(d->start);
    free(d->active);
    free(d->px);
    free(d->py);
    free(d->next);
    free(d->block_due);
    free(d->block_before);
    memset(d, 0, sizeof *d);
}

int umap_sgd_due_alloc(struct umap_sgd_due *d, size_t max_vertices, size_t max_edges,
                       size_t max_degree)
{
    memset(d, 0, sizeof *d);
    size_t slots = max_vertices + UMAP_SGD_LANES, due = max_edges + UMAP_SGD_LANES;
    d->col = malloc(due * sizeof *d->col);
    d->nneg = malloc(due * sizeof *d->nneg);
    d->edge = malloc(due * sizeof *d->edge);
    d->count = malloc(slots * sizeof *d->count);
    d->first = malloc(slots * sizeof *d->first);
    d->vertex = calloc(slots, sizeof *d->vertex);
    d->start = calloc(slots, sizeof *d->start);
    d->active = malloc((max_degree + 2) * sizeof *d->active);
    d->px = calloc(slots, sizeof *d->px);
    d->py = calloc(slots, sizeof *d->py);
    d->next = malloc((max_degree + 2) * sizeof *d->next);
    d->block_due = malloc((max_edges / 16 + 2) * sizeof *d->block_due);
    d->block_before = malloc((max_edges / 16 + 2) * sizeof *d->block_before);
    if (d->col && d->nneg && d->edge && d->count && d->first && d->vertex && d->start &&
        d->active && d->px && d->py && d->next && d->block_due && d->block_before)
        return 0;
    umap_sgd_due_free(d);
    return -1;
}

/* A counting sort by due count, most first. */
void umap_sgd_slots(struct umap_sgd_due *d, size_t nv)
{
    uint32_t maxc = 0;
    for (size_t v = 0; v < nv; v++)
        maxc = d->count[v] > maxc ? d->count[v] : maxc;
    memset(d->next, 0, (maxc + 2) * sizeof *d->next);
    for (size_t v = 0; v < nv; v++)
        d->next[d->count[v]]++;
    /* active[r] = vertices with more than r due edges; a vertex with c of them takes the
     * slots from active[c] on (those with more come first) */
    uint32_t above = 0;
    for (uint32_t c = maxc; c > 0; c--) {
        uint32_t here = d->next[c];
        d->next[c] = above;
        above += here;
        d->active[c - 1] = above;
    }
    d->n_rounds = maxc;
    d->n_slots = above;
    for (size_t v = 0; v < nv; v++) {
        uint32_t c = d->count[v];
        if (c == 0)
            continue;
        uint32_t j = d->next[c]++;
        d->vertex[j] = (uint32_t)v;
        d->start[j] = d->first[v];
    }
}

void umap_sgd_chunk(const size_t *rowptr, const int32_t *col, const struct umap_sgd_schedule *sch,
                    size_t lo, size_t hi, const struct umap_sgd_step *step, float *Y, int avx512,
                    struct umap_sgd_due *d)
{
    d->lo = lo;
    d->e0 = rowptr[lo];
    if (avx512)
        umap_sgd_plan_avx512(rowptr, col, sch, hi, (float)step->epoch, d);
    else
        umap_sgd_plan(rowptr, col, sch, hi, (float)step->epoch, d);
    umap_sgd_slots(d, hi - lo);
    for (uint32_t j = 0; j < d->n_slots; j++) {
        size_t v = lo + d->vertex[j];
        d->px[j] = Y[2 * v];
        d->py[j] = Y[2 * v + 1];
    }
    if (avx512)
        umap_sgd_rounds_avx512(step, d);
    else
        umap_sgd_rounds(step, d);
    for (uint32_t j = 0; j < d->n_slots; j++) {
        size_t v = lo + d->vertex[j];
        Y[2 * v] = d->px[j];
        Y[2 * v + 1] = d->py[j];
    }
}

/* ---- AVX-512 ---- */

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define AVX512 __attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,fma")))

int umap_sgd_have_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
}

AVX512 static inline __m512 floor16(__m512 x)
{
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
}

AVX512 void umap_sgd_plan_avx512(const size_t *rowptr, const int32_t *col,
                                 const struct umap_sgd_schedule *sch, size_t hi, float fe,
                                 struct umap_sgd_due *d)
{
    /* nothing is due at epoch 0 (umap-learn: epochs_per_sample >= 1) */
    const __m512 t1 = _mm512_set1_ps(fe), t0 = _mm512_set1_ps(fe >= 1.0f ? fe - 1.0f : 0.0f);
    const __m512 nr = _mm512_set1_ps(sch->neg_rate), one = _mm512_set1_ps(1.0f);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    /* the chunk's edges 16 at a time, whatever their rows: block b's due mask and the due
     * edges before it give each row's first due edge afterwards */
    const size_t e0 = d->e0, ne = rowptr[hi] - e0;
    uint32_t nd = 0;
    for (size_t b = 0; b * 16 < ne; b++) {
        size_t e = e0 + 16 * b, left = ne - 16 * b;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
        __m512 rate = _mm512_maskz_loadu_ps(m, sch->rate + e);
        __m512 k = floor16(_mm512_mul_ps(t1, rate));
        __mmask16 due = _mm512_mask_cmp_ps_mask(m, k, floor16(_mm512_mul_ps(t0, rate)), _CMP_GT_OQ);
        d->block_due[b] = due;
        d->block_before[b] = nd;
        __m512i nn = _mm512_cvtps_epi32(_mm512_sub_ps(
            floor16(_mm512_mul_ps(k, nr)), floor16(_mm512_mul_ps(_mm512_sub_ps(k, one), nr))));
        __m512i c = _mm512_maskz_loadu_epi32(due, col + e);
        __m512i en = _mm512_add_epi32(_mm512_set1_epi32((int)(16 * b)), iota);
        /* compressed in a register and stored whole: the due lists have room for 16 past
         * their end, and a compressing store to memory is slow on Zen 4 */
        _mm512_storeu_si512(d->col + nd, _mm512_maskz_compress_epi32(due, c));
        _mm512_storeu_si512(d->nneg + nd, _mm512_maskz_compress_epi32(due, nn));
        _mm512_storeu_si512(d->edge + nd, _mm512_maskz_compress_epi32(due, en));
        nd += (uint32_t)__builtin_popcount(due);
    }
    uint32_t prev = 0;
    for (size_t v = d->lo; v < hi; v++) {
        size_t o = rowptr[v + 1] - e0, b = o / 16; /* the row's end */
        uint32_t end = o == ne ? nd
                               : d->block_before[b] + (uint32_t)__builtin_popcount(
                                                          d->block_due[b] & ((1u << (o % 16)) - 1));
        d->first[v - d->lo] = prev;
        d->count[v - d->lo] = end - prev;
        prev = end;
    }
    d->n_due = nd;
}

/* umap_pow on w (<= NEG_GROUP) vectors of sixteen lanes, stage by stage: the vectors'
 * dependency chains interleave, which the out-of-order core cannot do on its own across
 * chains this long. */
#define NEG_GROUP 5
#define FOR_W     for (int u = 0; u < w; u++)
AVX512 __attribute__((always_inline)) static inline void pow16(const __m512 *x, __m512 vb,
                                                               __m512 *out, int w)
{
    __m512i e[NEG_GROUP];
    __m512 u_[NEG_GROUP], y[NEG_GROUP], n[NEG_GROUP];
    FOR_W
    {
        __m512i xi = _mm512_castps_si512(x[u]);
        e[u] = _mm512_srai_epi32(_mm512_sub_epi32(xi, _mm512_set1_epi32(0x3f2aaaab)), 23);
        u_[u] =
            _mm512_sub_ps(_mm512_castsi512_ps(_mm512_sub_epi32(xi, _mm512_slli_epi32(e[u], 23))),
                          _mm512_set1_ps(1.0f));
    }
    static const float lc[7] = {-0.286169f,   0.33358303f, -0.35736024f,  0.47829878f,
                                -0.72142273f, 1.4427319f,  2.6460876e-07f};
    FOR_W y[u] = _mm512_fmadd_ps(u_[u], _mm512_set1_ps(lc[0]), _mm512_set1_ps(lc[1]));
    for (int c = 2; c < 7; c++)
        FOR_W y[u] = _mm512_fmadd_ps(u_[u], y[u], _mm512_set1_ps(lc[c]));
    FOR_W
    {
        y[u] = _mm512_mul_ps(vb, _mm512_add_ps(_mm512_cvtepi32_ps(e[u]), y[u]));
        y[u] = _mm512_min_ps(_mm512_max_ps(y[u], _mm512_set1_ps(-126.0f)), _mm512_set1_ps(126.0f));
        n[u] = _mm512_roundscale_ps(y[u], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        y[u] = _mm512_sub_ps(y[u], n[u]);
    }
    static const float ec[5] = {0.0096760374f, 0.055922035f, 0.24022107f, 0.69312102f, 1.0000001f};
    FOR_W out[u] = _mm512_fmadd_ps(y[u], _mm512_set1_ps(ec[0]), _mm512_set1_ps(ec[1]));
    for (int c = 2; c < 5; c++)
        FOR_W out[u] = _mm512_fmadd_ps(y[u], out[u], _mm512_set1_ps(ec[c]));
    FOR_W out[u] = _mm512_scalef_ps(out[u], n[u]);
}

AVX512 static inline __m512 clip16(__m512 v)
{
    return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-4.0f)), _mm512_set1_ps(4.0f));
}

/* The (x, y) pairs of snap at 8 + 8 indices (64-bit lanes), split into x and y. */
AVX512 static inline void gather_xy64(const float *snap, __m512i klo, __m512i khi, __m512 *x,
                                      __m512 *y)
{
    __m512 lo = _mm512_castsi512_ps(_mm512_i64gather_epi64(klo, (const void *)snap, 8));
    __m512 hi = _mm512_castsi512_ps(_mm512_i64gather_epi64(khi, (const void *)snap, 8));
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    *x = _mm512_permutex2var_ps(lo, ev, hi);
    *y = _mm512_permutex2var_ps(lo, _mm512_add_epi32(ev, _mm512_set1_epi32(1)), hi);
}

AVX512 static inline __m512i mix64(__m512i z)
{
    z = _mm512_add_epi64(z, _mm512_set1_epi64((long long)0x9e3779b97f4a7c15ULL));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                           _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ULL));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                           _mm512_set1_epi64((long long)0x94d049bb133111ebULL));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/* Sixteen slots' state through one round. */
struct lanes16 {
    __m512 cx, cy;
    __m512i vert, nneg;
    __m512i base_lo, base_hi; /* the negative samples' random base, 8 + 8 lanes */
};

/* 1 / x to within a few float ulps: the 14-bit estimate and one Newton step (cheaper
 * than a vector division, whose last bit does not matter here). */
AVX512 static inline __m512 recip16(__m512 x)
{
    __m512 r = _mm512_rcp14_ps(x);
    return _mm512_mul_ps(r, _mm512_fnmadd_ps(x, r, _mm512_set1_ps(2.0f)));
}

/* The pushes of w (<= NEG_GROUP) negative samples (their snapshot indices klo/khi, the
 * lanes that use them), stage by stage, added to ax, ay. */
AVX512 __attribute__((always_inline)) static inline void
negative_forces(const struct umap_sgd_step *s, const struct lanes16 *l, const __m512i *klo,
                const __m512i *khi, const __mmask16 *use, int w, __m512 *ax, __m512 *ay)
{
    const __m512 va = _mm512_set1_ps(s->a), vb = _mm512_set1_ps(s->b);
    const __m512 vneg = _mm512_set1_ps(2.0f * s->gamma * s->b), one = _mm512_set1_ps(1.0f);
    __m512 ex[NEG_GROUP], ey[NEG_GROUP], qn[NEG_GROUP], pw[NEG_GROUP], c[NEG_GROUP];
    __mmask16 pn[NEG_GROUP];
    FOR_W
    {
        __m512 nx, ny;
        gather_xy64(s->snap, klo[u], khi[u], &nx, &ny);
        ex[u] = _mm512_sub_ps(l->cx, nx);
        ey[u] = _mm512_sub_ps(l->cy, ny);
    }
    FOR_W
    {
        __m512 e2 = _mm512_fmadd_ps(ex[u], ex[u], _mm512_mul_ps(ey[u], ey[u]));
        pn[u] = _mm512_cmp_ps_mask(e2, _mm512_setzero_ps(), _CMP_GT_OQ);
        qn[u] = _mm512_mask_blend_ps(pn[u], one, e2);
    }
    pow16(qn, vb, pw, w);
    FOR_W c[u] = _mm512_mul_ps(_mm512_add_ps(qn[u], _mm512_set1_ps(0.001f)),
                               _mm512_fmadd_ps(va, pw[u], one));
    FOR_W c[u] = _mm512_mul_ps(vneg, recip16(c[u]));
    FOR_W
    {
        /* umap-learn: the gradient is 4 when the points coincide */
        __m512 fx =
            _mm512_mask_blend_ps(pn[u], _mm512_set1_ps(4.0f), clip16(_mm512_mul_ps(c[u], ex[u])));
        __m512 fy =
            _mm512_mask_blend_ps(pn[u], _mm512_set1_ps(4.0f), clip16(_mm512_mul_ps(c[u], ey[u])));
        *ax = _mm512_mask_add_ps(*ax, use[u], *ax, fx);
        *ay = _mm512_mask_add_ps(*ay, use[u], *ay, fy);
    }
}

/* Negative samples p0 .. p0 + pc - 1 of the sixteen lanes: their summed push from the
 * current position.  The draws come first, all independent of each other, then the
 * forces. */
AVX512 static inline void negative_chunk(const struct umap_sgd_step *s, struct lanes16 *l, int p0,
                                         int pc, __m512 *mx, __m512 *my)
{
    const __m512i vn = _mm512_set1_epi64((long long)s->n), lo32 = _mm512_set1_epi64(0xffffffffLL);
    __m512i klo[NEG_CHUNK], khi[NEG_CHUNK];
    __mmask16 use[NEG_CHUNK];
    for (int p = 0; p < pc; p += 2) {
        __m512i q = _mm512_set1_epi64((long long)((p0 + p) >> 1));
        __m512i zlo = mix64(_mm512_add_epi64(l->base_lo, q));
        __m512i zhi = mix64(_mm512_add_epi64(l->base_hi, q));
        for (int t = 0; t < 2; t++) {
            __m512i hlo = t ? _mm512_srli_epi64(zlo, 32) : _mm512_and_si512(zlo, lo32);
            __m512i hhi = t ? _mm512_srli_epi64(zhi, 32) : _mm512_and_si512(zhi, lo32);
            klo[p + t] = _mm512_srli_epi64(_mm512_mul_epu32(hlo, vn), 32);
            khi[p + t] = _mm512_srli_epi64(_mm512_mul_epu32(hhi, vn), 32);
            __m512i k =
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(klo[p + t])),
                                   _mm512_cvtepi64_epi32(khi[p + t]), 1);
            use[p + t] = _mm512_cmpgt_epi32_mask(l->nneg, _mm512_set1_epi32(p0 + p + t)) &
                         _mm512_cmpneq_epi32_mask(k, l->vert);
        }
    }
    __m512 ax = _mm512_setzero_ps(), ay = _mm512_setzero_ps();
    for (int p = 0, w; p < pc; p += w) {
        int left = pc - p;
        w = left <= NEG_GROUP ? left : (left + 1) / 2; /* 5; 6 as 3 + 3 */
        switch (w) {
        case 1:
            negative_forces(s, l, klo + p, khi + p, use + p, 1, &ax, &ay);
            break;
        case 2:
            negative_forces(s, l, klo + p, khi + p, use + p, 2, &ax, &ay);
            break;
        case 3:
            negative_forces(s, l, klo + p, khi + p, use + p, 3, &ax, &ay);
            break;
        case 4:
            negative_forces(s, l, klo + p, khi + p, use + p, 4, &ax, &ay);
            break;
        default:
            negative_forces(s, l, klo + p, khi + p, use + p, 5, &ax, &ay);
            break;
        }
    }
    *mx = ax;
    *my = ay;
}

/* Slots j .. j + 15 (those below `active` under mask m) through round r. */
AVX512 static void round16(const struct umap_sgd_step *s, struct umap_sgd_due *d, uint32_t r,
                           uint32_t j, __mmask16 m)
{
    const __m512 va = _mm512_set1_ps(s->a), vb = _mm512_set1_ps(s->b);
    const __m512 vpos = _mm512_set1_ps(-2.0f * s->a * s->b), valpha = _mm512_set1_ps(s->alpha);
    struct lanes16 l;
    __m512i idx =
        _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, d->start + j), _mm512_set1_epi32((int)r));
    __m512i k = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, d->col, 4);
    l.nneg = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, d->nneg, 4);
    __m512i en = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, d->edge, 4);
    l.vert =
        _mm512_add_epi32(_mm512_maskz_loadu_epi32(m, d->vertex + j), _mm512_set1_epi32((int)d->lo));
    l.cx = _mm512_loadu_ps(d->px + j);
    l.cy = _mm512_loadu_ps(d->py + j);
    /* the positive sample: attraction to the other endpoint's snapshot position */
    __m512i klo = _mm512_cvtepu32_epi64(_mm512_castsi512_si256(k));
    __m512i khi = _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(k, 1));
    __m512 ox, oy;
    gather_xy64(s->snap, klo, khi, &ox, &oy);
    __m512 dx = _mm512_sub_ps(l.cx, ox), dy = _mm512_sub_ps(l.cy, oy);
    __m512 d2 = _mm512_fmadd_ps(dx, dx, _mm512_mul_ps(dy, dy));
    __mmask16 pos = _mm512_cmp_ps_mask(d2, _mm512_setzero_ps(), _CMP_GT_OQ);
    __m512 q = _mm512_mask_blend_ps(pos, _mm512_set1_ps(1.0f), d2);
    __m512 pb; /* pow(d2, b - 1) = pow(d2, b) / d2 */
    pow16(&q, vb, &pb, 1);
    __m512 gc =
        _mm512_mul_ps(_mm512_mul_ps(vpos, pb),
                      recip16(_mm512_mul_ps(q, _mm512_fmadd_ps(va, pb, _mm512_set1_ps(1.0f)))));
    gc = _mm512_maskz_mov_ps(pos, gc);
    __m512 two_alpha = _mm512_add_ps(valpha, valpha);
    l.cx = _mm512_fmadd_ps(clip16(_mm512_mul_ps(gc, dx)), two_alpha, l.cx);
    l.cy = _mm512_fmadd_ps(clip16(_mm512_mul_ps(gc, dy)), two_alpha, l.cy);
    /* the negative samples' random base: rng_mix(epoch_key(seed, epoch) + edge) */
    __m512i key = _mm512_set1_epi64((long long)(epoch_key(s) + d->e0));
    l.base_lo = mix64(_mm512_add_epi64(key, _mm512_cvtepu32_epi64(_mm512_castsi512_si256(en))));
    l.base_hi =
        mix64(_mm512_add_epi64(key, _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(en, 1))));
    int maxneg = _mm512_reduce_max_epi32(l.nneg);
    for (int p0 = 0; p0 < maxneg; p0 += NEG_CHUNK) {
        __m512 mx, my;
        negative_chunk(s, &l, p0, maxneg - p0 < NEG_CHUNK ? maxneg - p0 : NEG_CHUNK, &mx, &my);
        l.cx = _mm512_fmadd_ps(mx, valpha, l.cx);
        l.cy = _mm512_fmadd_ps(my, valpha, l.cy);
    }
    _mm512_mask_storeu_ps(d->px + j, m, l.cx);
    _mm512_mask_storeu_ps(d->py + j, m, l.cy);
}

AVX512 void umap_sgd_rounds_avx512(const struct umap_sgd_step *s, struct umap_sgd_due *d)
{
    for (uint32_t r = 0; r < d->n_rounds; r++) {
        uint32_t act = d->active[r];
        for (uint32_t j = 0; j < act; j += UMAP_SGD_LANES) {
            uint32_t left = act - j;
            __mmask16 m = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
            round16(s, d, r, j, m);
        }
    }
}

#else

int umap_sgd_have_avx512(void)
{
    return 0;
}

void umap_sgd_plan_avx512(const size_t *rowptr, const int32_t *col,
                          const struct umap_sgd_schedule *sch, size_t hi, float fe,
                          struct umap_sgd_due *d)
{
    umap_sgd_plan(rowptr, col, sch, hi, fe, d);
}

void umap_sgd_rounds_avx512(const struct umap_sgd_step *s, struct umap_sgd_due *d)
{
    umap_sgd_rounds(s, d);
}

#endif
