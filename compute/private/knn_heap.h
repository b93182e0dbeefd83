/* knn_heap.h - the k-NN paths' bounded max-heap of (distance, index) pairs.
 *
 * A row of k slots is a max-heap ordered by (distance, index), the index breaking ties,
 * so every comparison is total and a heap offered the same pairs in any order ends with
 * the same k smallest.  Empty slots hold index -1 and distance +inf.  NN-descent's two
 * flag bits per slot (FLAG_NEW, FLAG_PENDING) ride along when hf is not NULL.  Internal
 * to knn*.c: everything is static inline. */
#ifndef PW_KNN_HEAP_H
#define PW_KNN_HEAP_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* NN-descent's flags ride along as two bits per slot (FLAG_NEW, FLAG_PENDING; see
 * sample_lists); a row's bits start on a byte of their own (flag_bytes), so threads that
 * own different rows never share a byte.  Two bits rather than a byte per slot keep the
 * flags a quarter of the size, which counts at t-SNE's k = 91. */
#define FLAG_NEW     1
#define FLAG_PENDING 2

static inline size_t flag_bytes(size_t k)
{
    return (2 * k + 7) / 8;
}

static inline int flag_get(const uint8_t *hf, size_t s)
{
    return hf[s >> 2] >> (2 * (s & 3)) & 3;
}

static inline void flag_put(uint8_t *hf, size_t s, int v)
{
    unsigned sh = 2 * (unsigned)(s & 3);
    hf[s >> 2] = (uint8_t)((hf[s >> 2] & ~(3u << sh)) | ((unsigned)v << sh));
}

static inline int heap_greater(float da, int32_t ia, float db, int32_t ib)
{
    return da > db || (da == db && ia > ib);
}

/* The entry at pos moves down to its place: the larger child moves up into the hole
 * until neither child is larger, then the entry is written once (the same heap as
 * swapping level by level, with a third of the stores). */
static inline void heap_sift_down(float *hd, int32_t *hi, uint8_t *hf, size_t k, size_t pos)
{
    float d = hd[pos];
    int32_t j = hi[pos];
    int f = hf ? flag_get(hf, pos) : 0;
    for (;;) {
        size_t c = 2 * pos + 1;
        if (c >= k)
            break;
        if (c + 1 < k && heap_greater(hd[c + 1], hi[c + 1], hd[c], hi[c]))
            c++;
        if (!heap_greater(hd[c], hi[c], d, j))
            break;
        hd[pos] = hd[c];
        hi[pos] = hi[c];
        if (hf)
            flag_put(hf, pos, flag_get(hf, c));
        pos = c;
    }
    hd[pos] = d;
    hi[pos] = j;
    if (hf)
        flag_put(hf, pos, f);
}

/* Replace the root if (d, j) is smaller; 1 when pushed.  For callers that know j is not
 * in the heap yet. */
static inline int heap_push_new(float *hd, int32_t *hi, uint8_t *hf, size_t k, float d, int32_t j,
                                uint8_t flag)
{
    if (!heap_greater(hd[0], hi[0], d, j))
        return 0;
    hd[0] = d;
    hi[0] = j;
    if (hf)
        flag_put(hf, 0, flag);
    heap_sift_down(hd, hi, hf, k, 0);
    return 1;
}

/* Replace the root if (d, j) is smaller and j is not already present; 1 when pushed. */
static inline int heap_push(float *hd, int32_t *hi, uint8_t *hf, size_t k, float d, int32_t j,
                            uint8_t flag)
{
    if (!heap_greater(hd[0], hi[0], d, j))
        return 0;
    for (size_t s = 0; s < k; s++)
        if (hi[s] == j)
            return 0;
    return heap_push_new(hd, hi, hf, k, d, j, flag);
}

/* Sort a row ascending by (dist, idx): heap-sort in place (root is the largest). */
static inline void heap_sort_row(float *hd, int32_t *hi, size_t k)
{
    for (size_t end = k; end > 1; end--) {
        float td = hd[0];
        hd[0] = hd[end - 1];
        hd[end - 1] = td;
        int32_t ti = hi[0];
        hi[0] = hi[end - 1];
        hi[end - 1] = ti;
        heap_sift_down(hd, hi, NULL, end - 1, 0);
    }
}

static inline void heap_init(float *hd, int32_t *hi, size_t count)
{
    for (size_t s = 0; s < count; s++) {
        hd[s] = INFINITY;
        hi[s] = -1;
    }
}

#endif
