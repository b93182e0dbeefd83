/* umap_sgd.c - UMAP's edge-sampled SGD (see umap_sgd.h and, for how it is parallel
 * yet deterministic, umap.h).
 *
 * Vertices advance eight at a time, one per vector lane; the a/b curve's power is a
 * polynomial approximation and the negative samples' draws have an AVX-512 twin that
 * gives the same integers. */
#include "umap_sgd.h"

#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <stdlib.h>
#include <string.h>

#include "dense.h"
#include "rng.h"
#include "stopwatch.h"

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
#define V8F(x)    ((v8f){(x), (x), (x), (x), (x), (x), (x), (x)})
#define V8I(x)    ((v8i){(x), (x), (x), (x), (x), (x), (x), (x)})
#define LANES     8 /* vertices advanced side by side, one per vector lane */
#define NEG_CHUNK 8 /* negative samples pushed from one position before it moves */

static inline v8f v8_sel(v8i mask, v8f a, v8f b)
{
    return (v8f)(((v8i)a & mask) | ((v8i)b & ~mask));
}

static inline v8f v8_clip4(v8f v)
{
    v8f lo = V8F(-4.0f), hi = V8F(4.0f);
    return v8_sel(v > hi, hi, v8_sel(v < lo, lo, v));
}

/* x^b for normal x > 0 on 8 lanes within ~1e-5 relative: exp2(b log2 x).  x = 2^e m
 * with m in [2/3, 4/3) by integer arithmetic on the bits, log2 m by a degree-6
 * polynomial in m - 1, then b log2 x = n + f with n the nearest integer (the 1.5 2^23
 * rounding trick) and exp2 f, f in [-1/2, 1/2], by a degree-4 polynomial (both fitted on
 * Chebyshev nodes, 2.1e-6 and 2.7e-6 absolute).  No division, no branch; libm's powf is
 * several times slower and its last bits do not matter to SGD, whose gradients are
 * clipped. */
__attribute__((always_inline)) static inline v8f v8_powf(v8f x, float b)
{
    const v8f round = V8F(12582912.0f); /* 1.5 2^23 */
    v8i xi = (v8i)x;
    v8i e = (xi - V8I(0x3f2aaaab)) >> 23; /* 0x3f2aaaab: 2/3 */
    v8f u = (v8f)(xi - (e << 23)) - V8F(1.0f);
    v8f lg =
        V8F(2.6460876e-07f) +
        u * (V8F(1.4427319f) +
             u * (V8F(-0.72142273f) +
                  u * (V8F(0.47829878f) +
                       u * (V8F(-0.35736024f) + u * (V8F(0.33358303f) + u * V8F(-0.286169f))))));
    v8f y = V8F(b) * (__builtin_convertvector(e, v8f) + lg);
    y = v8_sel(y < V8F(-126.0f), V8F(-126.0f), y);
    y = v8_sel(y > V8F(126.0f), V8F(126.0f), y);
    v8f r = y + round;
    v8i n = (v8i)r - (v8i)round;
    v8f f = y - (r - round);
    v8f p = V8F(1.0000001f) +
            f * (V8F(0.69312102f) +
                 f * (V8F(0.24022107f) + f * (V8F(0.055922035f) + f * V8F(0.0096760374f))));
    return p * (v8f)((n + V8I(127)) << 23);
}

/* Negative samples p0 .. p0 + pc - 1 (pc <= NEG_CHUNK) of every lane: the snapshot
 * position of each draw, and -1 where the draw counts (below the lane's count nneg and
 * not the lane's own vertex).  Draw p of a lane is half (low, then high 32 bits) of
 * rng_mix(base + p / 2), scaled to [0, n) by Lemire's multiply-shift. */
typedef void (*neg_draws_fn)(const uint64_t *base, const int *nneg, const size_t *vert,
                             const float *snap, size_t n, int p0, int pc, float (*nx)[LANES],
                             float (*ny)[LANES], int32_t (*w)[LANES]);

static void neg_draws(const uint64_t *base, const int *nneg, const size_t *vert, const float *snap,
                      size_t n, int p0, int pc, float (*nx)[LANES], float (*ny)[LANES],
                      int32_t (*w)[LANES])
{
    for (int l = 0; l < LANES; l++) {
        int cnt = nneg[l] - p0 < pc ? nneg[l] - p0 : pc;
        for (int p = 0; p < pc; p += 2) { /* two draws per 64-bit hash */
            uint64_t h = rng_mix(base[l] + (uint64_t)((p0 + p) >> 1));
            for (int t = 0; t < 2 && p + t < pc; t++) {
                uint32_t h32 = t ? (uint32_t)(h >> 32) : (uint32_t)h;
                size_t kk = (size_t)(((uint64_t)h32 * n) >> 32); /* Lemire: h n / 2^32 */
                /* draws past this lane's count, and the point itself, are skipped */
                int use = p + t < cnt && kk != vert[l];
                nx[p + t][l] = snap[2 * kk];
                ny[p + t][l] = snap[2 * kk + 1];
                w[p + t][l] = -use;
            }
        }
    }
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define UMAP_DRAWS_AVX512 1
/* The same draws for the 8 lanes at once: rng_mix on 64-bit lanes (AVX-512DQ's
 * multiply), one 64-bit gather of each (x, y) pair.  Same integers, same bytes. */
__attribute__((target("avx512f,avx512vl,avx512dq"))) static void
neg_draws_avx512(const uint64_t *base, const int *nneg, const size_t *vert, const float *snap,
                 size_t n, int p0, int pc, float (*nx)[LANES], float (*ny)[LANES],
                 int32_t (*w)[LANES])
{
    __m512i vb = _mm512_loadu_si512((const void *)base);
    __m512i vv = _mm512_loadu_si512((const void *)vert);
    __m256i vneg = _mm256_loadu_si256((const void *)nneg);
    __m512i vn = _mm512_set1_epi64((long long)n), lo32 = _mm512_set1_epi64(0xffffffffLL);
    for (int p = 0; p < pc; p += 2) {
        __m512i z = _mm512_add_epi64(vb, _mm512_set1_epi64((long long)((p0 + p) >> 1)));
        z = _mm512_add_epi64(z, _mm512_set1_epi64((long long)0x9e3779b97f4a7c15ULL));
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)),
                               _mm512_set1_epi64((long long)0xbf58476d1ce4e5b9ULL));
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)),
                               _mm512_set1_epi64((long long)0x94d049bb133111ebULL));
        z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
        for (int t = 0; t < 2 && p + t < pc; t++) {
            __m512i h32 = t ? _mm512_srli_epi64(z, 32) : _mm512_and_si512(z, lo32);
            __m512i kk = _mm512_srli_epi64(_mm512_mul_epu32(h32, vn), 32);
            __mmask8 use = _mm256_cmpgt_epi32_mask(vneg, _mm256_set1_epi32(p0 + p + t)) &
                           _mm512_cmpneq_epi64_mask(kk, vv);
            __m512i xy = _mm512_i64gather_epi64(kk, (const void *)snap, 8);
            _mm256_storeu_si256((void *)nx[p + t], _mm512_cvtepi64_epi32(xy));
            _mm256_storeu_si256((void *)ny[p + t],
                                _mm512_cvtepi64_epi32(_mm512_srli_epi64(xy, 32)));
            _mm256_storeu_si256((void *)w[p + t], _mm256_movm_epi32(use));
        }
    }
}
#endif

struct sgd {
    const struct umap_graph *g;
    float *Y, *snap;
    float *eps, *eons, *epns, *epneg; /* per edge, as umap-learn's arrays */
    float a, b, gamma;
    uint64_t seed;
    neg_draws_fn draws; /* neg_draws or its AVX-512 twin */
};

/* The SGD of one epoch for vertices [lo, hi).  umap-learn moves both ends of a sampled
 * edge (move_other).  The fuzzy graph is symmetric with equal weights both ways, so
 * edge (i, k) and its reverse (k, i) are sampled in the same epochs, and the tail move
 * that (k, i) gives i is taken here from i's side: it equals i's head move along
 * (i, k), so i moves by twice that.  A vertex then only reads the snapshot and writes
 * its own position: vertices are independent within an epoch, and LANES of them
 * advance side by side, each lane walking its vertex's active edges in order, the
 * arithmetic of one positive sample plus its negative samples running on all lanes at
 * once.  The result of a vertex does not depend on its lane, its batch or the thread. */
__attribute__((optimize("fp-contract=fast"))) PW_CLONES_V4 static void
sgd_range(struct sgd *s, size_t lo, size_t hi, size_t epoch, float alpha, uint32_t *act,
          uint32_t *aptr)
{
    const struct umap_graph *g = s->g;
    const size_t n = g->n;
    const float fe = (float)epoch;
    const float *snap = s->snap;
    float *Y = s->Y;
    const v8f va = V8F(s->a), vpos = V8F(-2.0f * s->a * s->b), vneg = V8F(2.0f * s->gamma * s->b);
    const v8f valpha = V8F(alpha);
    size_t vert[LANES], e[LANES], end[LANES];
    float cx[LANES], cy[LANES], ox[LANES], oy[LANES];
    int nneg[LANES];
    uint64_t base[LANES];
    /* The chunk's edges sampled this epoch, found without branches: act holds their
     * offsets from rowptr[lo], aptr[v - lo] where vertex v's start. */
    const size_t e0 = g->rowptr[lo];
    uint32_t na = 0;
    for (size_t v = lo; v < hi; v++) {
        aptr[v - lo] = na;
        for (size_t ee = g->rowptr[v]; ee < g->rowptr[v + 1]; ee++) {
            act[na] = (uint32_t)(ee - e0);
            na += s->eons[ee] <= fe;
        }
    }
    aptr[hi - lo] = na;
    size_t next = lo;
    for (int l = 0; l < LANES; l++) {
        vert[l] = SIZE_MAX;
        e[l] = end[l] = 0;
        cx[l] = cy[l] = 0.0f;
    }
    for (;;) {
        /* every lane to its vertex's next active edge, or to the next vertex */
        int live = 0, maxneg = 0;
        for (int l = 0; l < LANES; l++) {
            size_t ee = e[l];
            for (;;) {
                if (ee < end[l])
                    break;
                if (vert[l] != SIZE_MAX) {
                    Y[2 * vert[l]] = cx[l];
                    Y[2 * vert[l] + 1] = cy[l];
                    vert[l] = SIZE_MAX;
                }
                if (next >= hi)
                    break;
                vert[l] = next++;
                ee = aptr[vert[l] - lo];
                end[l] = aptr[vert[l] + 1 - lo];
                cx[l] = Y[2 * vert[l]];
                cy[l] = Y[2 * vert[l] + 1];
            }
            e[l] = ee;
            if (vert[l] == SIZE_MAX) { /* idle lane: zero force, no negative samples */
                ox[l] = cx[l];
                oy[l] = cy[l];
                nneg[l] = 0;
                continue;
            }
            live = 1;
            e[l] = ee + 1;
            if (ee + 2 < end[l]) { /* this lane's edge after next: its fields */
                size_t f2 = e0 + act[ee + 2];
                __builtin_prefetch(&g->col[f2]);
                __builtin_prefetch(&s->eps[f2]);
                __builtin_prefetch(&s->epns[f2]);
                __builtin_prefetch(&s->epneg[f2]);
            }
            if (ee + 1 < end[l]) /* the next edge: its other endpoint's position */
                __builtin_prefetch(&snap[2 * (size_t)g->col[e0 + act[ee + 1]]]);
            ee = e0 + act[ee];
            size_t k = (size_t)g->col[ee];
            ox[l] = snap[2 * k];
            oy[l] = snap[2 * k + 1];
            s->eons[ee] += s->eps[ee];
            int nn = (int)((fe - s->epns[ee]) / s->epneg[ee]);
            s->epns[ee] += (float)nn * s->epneg[ee];
            nneg[l] = nn;
            maxneg = nn > maxneg ? nn : maxneg;
            base[l] = rng_mix(rng_mix(s->seed + ee) ^ epoch);
        }
        if (!live)
            break;
        /* the positive sample: attraction to the other endpoint's snapshot position */
        v8f vcx, vcy, vox, voy;
        memcpy(&vcx, cx, sizeof vcx);
        memcpy(&vcy, cy, sizeof vcy);
        memcpy(&vox, ox, sizeof vox);
        memcpy(&voy, oy, sizeof voy);
        v8f dx = vcx - vox, dy = vcy - voy, d2 = dx * dx + dy * dy;
        v8i pos = d2 > V8F(0.0f);
        v8f q = v8_sel(pos, d2, V8F(1.0f));
        v8f pb = v8_powf(q, s->b); /* pow(d2, b - 1) = pow(d2, b) / d2 */
        v8f gc = v8_sel(pos, (vpos * pb) / (q * (va * pb + V8F(1.0f))), V8F(0.0f));
        v8f vgx = v8_clip4(gc * dx) * valpha, vgy = v8_clip4(gc * dy) * valpha;
        vcx += V8F(2.0f) * vgx; /* the head's move and the tail move of the reverse edge */
        vcy += V8F(2.0f) * vgy;
        /* Negative samples: a chunk of them all push from the same current position
         * (umap-learn moves `current` after each one); draws are a function of (seed,
         * edge, epoch, draw number). */
        for (int p0 = 0; p0 < maxneg; p0 += NEG_CHUNK) {
            float nx[NEG_CHUNK][LANES], ny[NEG_CHUNK][LANES];
            int32_t w[NEG_CHUNK][LANES];
            int pc = maxneg - p0 < NEG_CHUNK ? maxneg - p0 : NEG_CHUNK;
            s->draws(base, nneg, vert, snap, n, p0, pc, nx, ny, w);
            v8f mx = V8F(0.0f), my = V8F(0.0f);
            for (int p = 0; p < pc; p++) {
                v8f vnx, vny;
                v8i vw;
                memcpy(&vnx, nx[p], sizeof vnx);
                memcpy(&vny, ny[p], sizeof vny);
                memcpy(&vw, w[p], sizeof vw);
                v8f ex = vcx - vnx, ey = vcy - vny, e2 = ex * ex + ey * ey;
                v8i pn = e2 > V8F(0.0f);
                v8f qn = v8_sel(pn, e2, V8F(1.0f));
                v8f c = vneg / ((V8F(0.001f) + qn) * (va * v8_powf(qn, s->b) + V8F(1.0f)));
                /* umap-learn: grad_d = 4 when the points coincide */
                v8f fx = v8_sel(pn, v8_clip4(c * ex), V8F(4.0f));
                v8f fy = v8_sel(pn, v8_clip4(c * ey), V8F(4.0f));
                mx += v8_sel(vw, fx, V8F(0.0f));
                my += v8_sel(vw, fy, V8F(0.0f));
            }
            vcx += mx * valpha;
            vcy += my * valpha;
        }
        memcpy(cx, &vcx, sizeof cx);
        memcpy(cy, &vcy, sizeof cy);
    }
}

static int optimize_layout(struct sgd *s, size_t n_epochs, float alpha0, int threads,
                           const struct pw_progress *progress, struct pw_error *err)
{
    if (s->g->n < 8192)
        threads = 1; /* a barrier per epoch costs more than it saves on small graphs */
    const struct umap_graph *g = s->g;
    size_t n = g->n, chunk = 1024;
    /* per chunk: its active edges (act + rowptr[c0]) and vertex starts (aptr + c0 + c0/chunk) */
    uint32_t *act = malloc((g->nnz + 1) * sizeof *act);
    uint32_t *aptr = malloc((n + n / chunk + 2) * sizeof *aptr);
    int rc = 0;
    if (!act || !aptr) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the optimiser");
        goto cleanup;
    }
    double last = stopwatch_now();
    float alpha = alpha0;
    for (size_t epoch = 0; epoch < n_epochs; epoch++) {
        memcpy(s->snap, s->Y, 2 * n * sizeof *s->Y);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (size_t c0 = 0; c0 < n; c0 += chunk)
            sgd_range(s, c0, c0 + chunk < n ? c0 + chunk : n, epoch, alpha, act + g->rowptr[c0],
                      aptr + c0 + c0 / chunk);
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
    free(act);
    free(aptr);
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
    s.draws = neg_draws;
#ifdef UMAP_DRAWS_AVX512
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq"))
        s.draws = neg_draws_avx512;
#endif
    s.snap = malloc(2 * n * sizeof *s.snap);
    s.eps = malloc((nnz + 1) * sizeof *s.eps);
    s.eons = malloc((nnz + 1) * sizeof *s.eons);
    s.epns = malloc((nnz + 1) * sizeof *s.epns);
    s.epneg = malloc((nnz + 1) * sizeof *s.epneg);
    if (!s.snap || !s.eps || !s.eons || !s.epns || !s.epneg) {
        rc = pw_error_set(err, PW_ENOMEM, "umap: out of memory for the optimiser");
        goto cleanup;
    }
    float wmax = 0;
    for (size_t e = 0; e < nnz; e++)
        wmax = g->val[e] > wmax ? g->val[e] : wmax;
    for (size_t e = 0; e < nnz; e++) {
        double ns = (double)p->n_epochs * (g->val[e] / wmax);
        s.eps[e] = ns > 0 ? (float)((double)p->n_epochs / ns) : -1.0f;
        s.eons[e] = s.eps[e];
        s.epneg[e] = p->negative_sample_rate > 0 ? s.eps[e] / p->negative_sample_rate : INFINITY;
        s.epns[e] = s.epneg[e];
    }
    /* The optimiser relies on every edge (i, j) having a reverse (j, i) of the same weight
     * (they are then sampled in the same epochs; see sgd_range). */
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
    free(s.eps);
    free(s.eons);
    free(s.epns);
    free(s.epneg);
    return rc;
}
