/* dense.c - input validation and vectorised row kernels shared by compute/.
 *
 * The kernels are compiled twice (AVX2+FMA and baseline x86-64) with GCC's
 * target_clones so one binary runs everywhere yet uses the wide units where they
 * exist; `omp simd` lets the compiler reorder the float reduction, which is still
 * deterministic for a given build because the order is fixed at compile time.  The dot
 * products and squared distances (dense_dot, dense_sqdist and their blocked forms
 * dense_dots, dense_sqdists) write their summation order out, so every build (AVX-512,
 * AVX2, baseline, optimised or not) gives the same bytes. */
#include "dense.h"

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <omp.h>

int dense_validate_shape(const char *what, const float *x, size_t n, size_t d, struct pw_error *err)
{
    if (!x)
        return pw_error_set(err, PW_EINVAL, "%s: no input matrix", what);
    if (n < 2)
        return pw_error_set(err, PW_EINVAL, "%s: need at least 2 points, got %zu", what, n);
    if (d < 2)
        return pw_error_set(err, PW_EINVAL, "%s: need at least 2 dimensions, got %zu", what, d);
    return 0;
}

int dense_validate(const char *what, const float *x, size_t n, size_t d, struct pw_error *err)
{
    int rc = dense_validate_shape(what, x, n, d, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        const float *row = x + i * d;
        uint32_t bad = 0;
        /* exponent bits all ones = Inf or NaN; branch-free so it vectorises: this pass reads
         * the whole input, hundreds of MB for the largest collections */
        for (size_t j = 0; j < d; j++) {
            uint32_t b;
            memcpy(&b, &row[j], sizeof b);
            bad |= (uint32_t)((b & 0x7f800000u) == 0x7f800000u);
        }
        if (!bad)
            continue;
        for (size_t j = 0; j < d; j++)
            if (!isfinite(row[j]))
                return pw_error_set(err, PW_EINVAL,
                                    "%s: non-finite value (%s) at row %zu, column %zu", what,
                                    isnan(row[j]) ? "NaN" : "Inf", i, j);
    }
    return 0;
}

int dense_validate_fit(const char *what, const float *x, size_t n, size_t d, const float *out,
                       struct pw_error *err)
{
    int rc = dense_validate(what, x, n, d, err);
    if (rc)
        return rc;
    if (!out)
        return pw_error_set(err, PW_EINVAL, "%s: no output buffer", what);
    return 0;
}

PW_CLONES float dense_centred_dot(const float *x, const float *mean, const float *v, size_t d)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (size_t j = 0; j < d; j++)
        s += (x[j] - mean[j]) * v[j];
    return s;
}

/* dense_dots and dense_sqdists: eight float lanes (GCC's vector extension, one AVX2
 * register or two SSE ones), a tile of TILE_ROWS rows by TILE_COLS centroids. */
typedef float dense_v8 __attribute__((vector_size(8 * sizeof(float))));
#define TILE_LANES 8
#define TILE_ROWS  2
#define TILE_COLS  4

PW_ALWAYS_INLINE dense_v8 load8(const float *p)
{
    dense_v8 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* One tile of nr <= TILE_ROWS rows by nc <= TILE_COLS centroids, products (sq: squared
 * differences) summed in dense_dot's order (dense.h).  Inlined with constant nr, nc and
 * sq, the sums stay in registers. */
PW_ALWAYS_INLINE void tile(const float *x, size_t nr, const float *c, size_t nc, size_t d, int sq,
                           float *out, size_t ldo)
{
    dense_v8 acc[TILE_ROWS][TILE_COLS];
    size_t body = d - d % TILE_LANES;
    for (size_t r = 0; r < nr; r++)
        for (size_t a = 0; a < nc; a++)
            acc[r][a] = (dense_v8){0};
    for (size_t j = 0; j < body; j += TILE_LANES) {
        dense_v8 xv[TILE_ROWS];
        for (size_t r = 0; r < nr; r++)
            xv[r] = load8(x + r * d + j);
        for (size_t a = 0; a < nc; a++) {
            dense_v8 cv = load8(c + a * d + j);
            for (size_t r = 0; r < nr; r++) {
                dense_v8 t = sq ? xv[r] - cv : xv[r];
                acc[r][a] += t * (sq ? t : cv);
            }
        }
    }
    for (size_t j = body; j < d; j++)
        for (size_t r = 0; r < nr; r++)
            for (size_t a = 0; a < nc; a++) {
                float t = sq ? x[r * d + j] - c[a * d + j] : x[r * d + j];
                acc[r][a][0] += t * (sq ? t : c[a * d + j]);
            }
    for (size_t r = 0; r < nr; r++)
        for (size_t a = 0; a < nc; a++) {
            float s = 0.0f;
            for (size_t l = 0; l < TILE_LANES; l++)
                s += acc[r][a][l];
            out[r * ldo + a] = s;
        }
}

/* tile() for every shape a block can take, each with its own constants. */
PW_ALWAYS_INLINE void tile_any(const float *x, size_t nr, const float *c, size_t nc, size_t d,
                               int sq, float *out, size_t ldo)
{
    if (nr == TILE_ROWS && nc == 4)
        tile(x, TILE_ROWS, c, 4, d, sq, out, ldo);
    else if (nr == TILE_ROWS && nc == 3)
        tile(x, TILE_ROWS, c, 3, d, sq, out, ldo);
    else if (nr == TILE_ROWS && nc == 2)
        tile(x, TILE_ROWS, c, 2, d, sq, out, ldo);
    else if (nr == TILE_ROWS)
        tile(x, TILE_ROWS, c, 1, d, sq, out, ldo);
    else if (nc == 4)
        tile(x, 1, c, 4, d, sq, out, ldo);
    else if (nc == 3)
        tile(x, 1, c, 3, d, sq, out, ldo);
    else if (nc == 2)
        tile(x, 1, c, 2, d, sq, out, ldo);
    else
        tile(x, 1, c, 1, d, sq, out, ldo);
}

PW_ALWAYS_INLINE void tiles(const float *x, size_t nr, const float *c, size_t nc, size_t d, int sq,
                            float *out, size_t ldo)
{
    for (size_t i = 0; i < nr; i += TILE_ROWS) {
        size_t rows = nr - i < TILE_ROWS ? nr - i : TILE_ROWS;
        for (size_t a = 0; a < nc; a += TILE_COLS)
            tile_any(x + i * d, rows, c + a * d, nc - a < TILE_COLS ? nc - a : TILE_COLS, d, sq,
                     out + i * ldo + a, ldo);
    }
}

/* One row against one: the blocked kernels' order, so the bytes are the same in every
 * build (optimised or not, AVX2 or baseline) and for any blocking. */
PW_CLONES float dense_dot(const float *a, const float *b, size_t d)
{
    float s;
    tile(a, 1, b, 1, d, 0, &s, 1);
    return s;
}

PW_CLONES float dense_sqdist(const float *a, const float *b, size_t d)
{
    float s;
    tile(a, 1, b, 1, d, 1, &s, 1);
    return s;
}

PW_CLONES_V4 void dense_dots(const float *x, size_t nr, const float *c, size_t nc, size_t d,
                             float *out, size_t ldo)
{
    tiles(x, nr, c, nc, d, 0, out, ldo);
}

PW_CLONES_V4 void dense_sqdists(const float *x, size_t nr, const float *c, size_t nc, size_t d,
                                float *out, size_t ldo)
{
    tiles(x, nr, c, nc, d, 1, out, ldo);
}

void dense_row_norms(const float *x, size_t n, size_t d, float *norms, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        double s = 0.0;
        const float *row = x + i * d;
        for (size_t j = 0; j < d; j++)
            s += (double)row[j] * row[j];
        norms[i] = (float)sqrt(s);
    }
}

int dense_threads(int requested)
{
    if (requested > 0)
        return requested > 256 ? 256 : requested;
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
}
