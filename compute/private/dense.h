/* dense.h - checks and small kernels on row-major float32 matrices.
 *
 * dense_validate() is the one place that turns bad input (n < 2, d < 2, NaN or
 * Inf, a NULL pointer) into a PW_EINVAL message naming the problem; every
 * compute/ entry point calls it first.  The kernels (dot products, squared
 * distances, row norms) are vectorised for the host CPU at run time and never
 * allocate. */
#ifndef PW_DENSE_H
#define PW_DENSE_H

#include <stddef.h>

#include "pw_error.h"

/* Compile a hot function for AVX2+FMA and for baseline x86-64, picked at load time by an
 * ifunc resolver.  Not under ASan or TSan: their runtimes are not set up yet when the
 * resolvers run (TSan crashes there), and one plain build of a function is what they
 * should check anyway. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                             \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define PW_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
/* ... and for AVX-512 as well, where the wider registers pay */
#define PW_CLONES_V4 __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
/* ... with a * b + c fused into one FMA wherever it appears (sums whose rounding the
 * caller does not compare across builds: every clone is deterministic on its own) */
#define PW_CLONES_V4_FMA                                                                           \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"),                   \
                   optimize("fp-contract=fast")))
#else
#define PW_CLONES
#define PW_CLONES_V4
#define PW_CLONES_V4_FMA
#endif

/* A per-row loop that must be inlined into its callers: each caller (or target clone)
 * vectorises it for its own arguments. */
#define PW_ALWAYS_INLINE static inline __attribute__((always_inline))

/* 0, or PW_EINVAL naming the first problem: NULL x, n < 2, d < 2, a non-finite
 * value (with its row and column).  `what` prefixes the message ("umap"). */
int dense_validate(const char *what, const float *x, size_t n, size_t d, struct pw_error *err);
/* dense_validate, then PW_EINVAL "<what>: no output buffer" for a NULL `out`: the checks
 * every reducer's fit starts with. */
int dense_validate_fit(const char *what, const float *x, size_t n, size_t d, const float *out,
                       struct pw_error *err);
/* Only the NULL, n and d checks: for callers that meet every value in a pass of their
 * own and call dense_validate for the message when a sum comes out non-finite. */
int dense_validate_shape(const char *what, const float *x, size_t n, size_t d,
                         struct pw_error *err);

/* a . b and |a - b|^2, summed in the order below (dense_dots). */
float dense_dot(const float *a, const float *b, size_t d);
float dense_sqdist(const float *a, const float *b, size_t d);
/* out[i * ldo + a] = x_i . c_a (dense_dots) or |x_i - c_a|^2 (dense_sqdists) for the
 * nr rows of x against the nc rows of c, all d wide.  Each value is summed in one
 * order, dense_dot's and dense_sqdist's too: eight partial sums (element j into sum
 * j mod 8, the last d mod 8 elements into sum 0), then the eight added in order to 0,
 * without fused multiply-adds (ISO C: no contraction).  It is the order GCC's
 * vectorised reduction of the plain loop takes on AVX2, written out so that the bytes
 * depend only on the two rows, in any build and for any blocking.  Rows and centroids
 * are taken two and four at a time: each load serves several products and eight
 * independent sums hide the adds' latency, where one dense_dot is a single dependent
 * chain. */
void dense_dots(const float *x, size_t nr, const float *c, size_t nc, size_t d, float *out,
                size_t ldo);
void dense_sqdists(const float *x, size_t nr, const float *c, size_t nc, size_t d, float *out,
                   size_t ldo);
/* (x - mean) . v without a centred copy of x (PCA's projection). */
float dense_centred_dot(const float *x, const float *mean, const float *v, size_t d);

/* norms[i] = |x_i| for every row (computed in double, stored as float). */
void dense_row_norms(const float *x, size_t n, size_t d, float *norms, int threads);

/* A thread count the caller can trust: <= 0 means "all cores". */
int dense_threads(int requested);

#endif
