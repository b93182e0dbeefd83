/* test_data.h - deterministic synthetic data for the compute/ unit tests:
 * Gaussian clusters around random centres (an xorshift generator local to the test,
 * independent of compute/rng.h so the data does not come from the code under test), and
 * the double-precision distances the k-NN tests compare with. */
#ifndef PW_TEST_DATA_H
#define PW_TEST_DATA_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static inline double td_uniform(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
}

static inline double td_normal(uint64_t *s)
{
    double u = td_uniform(s), v = td_uniform(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* n points in d dims, `clusters` centres with N(0, 4) coordinates, unit noise. */
static inline float *td_clusters(size_t n, size_t d, size_t clusters, uint64_t seed)
{
    uint64_t s = seed * 2654435761u + 88172645463325252ull;
    float *centres = malloc(clusters * d * sizeof *centres);
    float *x = malloc(n * d * sizeof *x);
    for (size_t i = 0; i < clusters * d; i++)
        centres[i] = (float)(2.0 * td_normal(&s));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = centres[(i % clusters) * d + j] + (float)td_normal(&s);
    free(centres);
    return x;
}

/* Rows a and b of x (d values each) in double, written independently of compute/:
 * cosine distance 1 - a.b / (|a| |b|), or the squared euclidean distance. */
static inline double td_ref_dist(const float *x, size_t d, int cosine, size_t a, size_t b)
{
    double s = 0, dot = 0, na = 0, nb = 0;
    for (size_t t = 0; t < d; t++) {
        double u = x[a * d + t], v = x[b * d + t];
        s += (u - v) * (u - v);
        dot += u * v;
        na += u * u;
        nb += v * v;
    }
    return cosine ? 1.0 - dot / sqrt(na * nb) : s;
}

/* A pw_progress input_done callback that overwrites the input with NaN: a run given it
 * must end as a run without it if the input is not read after the call. */
struct td_poison {
    float *x;
    size_t len;
    int calls;
};

static inline void td_poison_input(void *ctx)
{
    struct td_poison *p = ctx;
    p->calls++;
    for (size_t i = 0; i < p->len; i++)
        p->x[i] = NAN;
}

#endif
