/* dense.c - input validation and vectorised row kernels shared by compute/.
 *
 * The kernels are compiled twice (AVX2+FMA and baseline x86-64) with GCC's
 * target_clones so one binary runs everywhere yet uses the wide units where they
 * exist; `omp simd` lets the compiler reorder the float reduction, which is still
 * deterministic for a given machine because the order is fixed at compile time. */
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

PW_CLONES float dense_dot(const float *a, const float *b, size_t d)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (size_t j = 0; j < d; j++)
        s += a[j] * b[j];
    return s;
}

PW_CLONES float dense_sqdist(const float *a, const float *b, size_t d)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (size_t j = 0; j < d; j++) {
        float t = a[j] - b[j];
        s += t * t;
    }
    return s;
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
