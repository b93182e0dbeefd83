/* rng.h - counter-based random numbers for deterministic parallel numerics.
 *
 * Every random draw in compute/ is a pure function of (seed, stream, counter):
 * rng_u64(seed, a, b) mixes its arguments with SplitMix64 finalisers.  Because no
 * generator state is shared or carried between threads, results do not depend on
 * how work is split over threads, and a run can be replayed exactly from its seed.
 * Header-only, no allocation, no errors. */
#ifndef PW_RNG_H
#define PW_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t rng_mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A 64-bit random value for the draw numbered `b` of stream `a`. */
static inline uint64_t rng_u64(uint64_t seed, uint64_t a, uint64_t b)
{
    return rng_mix(rng_mix(rng_mix(seed) ^ a) ^ b);
}

/* Uniform in [0, 1). */
static inline double rng_unit(uint64_t seed, uint64_t a, uint64_t b)
{
    return (double)(rng_u64(seed, a, b) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n) (n > 0); the modulo bias is below 2^-32 for n < 2^32. */
static inline uint64_t rng_below(uint64_t seed, uint64_t a, uint64_t b, uint64_t n)
{
    return rng_u64(seed, a, b) % n;
}

/* Standard normal (Box-Muller on two draws of the stream). */
static inline double rng_normal(uint64_t seed, uint64_t a, uint64_t b)
{
    double u1 = rng_unit(seed, a, 2 * b), u2 = rng_unit(seed, a, 2 * b + 1);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
