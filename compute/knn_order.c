/* knn_order.c - breadth-first renumbering of a k-NN graph (see knn_order.h). */
#include "knn_order.h"

#include <stdlib.h>
#include <string.h>

void knn_bfs_order(const struct knn_graph *g, int32_t *order, int32_t *inv)
{
    size_t n = g->n, k = g->k, head = 0, tail = 0;
    for (size_t i = 0; i < n; i++)
        inv[i] = -1; /* not reached yet */
    for (size_t s = 0; s < n; s++) {
        if (inv[s] >= 0)
            continue;
        inv[s] = (int32_t)tail;
        order[tail++] = (int32_t)s;
        while (head < tail) { /* order doubles as the queue */
            const int32_t *row = g->idx + (size_t)order[head++] * k;
            for (size_t e = 0; e < k; e++)
                if (row[e] >= 0 && inv[row[e]] < 0) {
                    inv[row[e]] = (int32_t)tail;
                    order[tail++] = row[e];
                }
        }
    }
}

/* Moves row order[r] of base (n rows of `bytes` each) to row r, in place: each cycle of
 * the permutation is followed once from its lowest row, the rows placed are marked
 * ~order[r] (order >= 0 before) and unmarked at the end.  tmp holds one row. */
static void permute_rows(char *base, size_t bytes, int32_t *order, size_t n, char *tmp)
{
    for (size_t r0 = 0; r0 < n; r0++) {
        if (order[r0] < 0 || (size_t)order[r0] == r0)
            continue;
        memcpy(tmp, base + r0 * bytes, bytes);
        for (size_t r = r0;;) {
            size_t src = (size_t)order[r];
            order[r] = ~order[r];
            memcpy(base + r * bytes, src == r0 ? tmp : base + src * bytes, bytes);
            if (src == r0)
                break;
            r = src;
        }
    }
    for (size_t r = 0; r < n; r++)
        if (order[r] < 0)
            order[r] = ~order[r];
}

int knn_renumber(struct knn_graph *g, int32_t *order, int32_t *inv, float *y, size_t ydim,
                 struct pw_error *err)
{
    size_t n = g->n, k = g->k, widest = k > ydim ? k : ydim;
    char *tmp = malloc(widest * sizeof(float)); /* one row of idx, dist or y */
    if (!tmp)
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory to renumber the graph");
    for (size_t i = 0; i < n; i++)
        inv[order[i]] = (int32_t)i;
    permute_rows((char *)g->idx, k * sizeof *g->idx, order, n, tmp);
    permute_rows((char *)g->dist, k * sizeof *g->dist, order, n, tmp);
    if (ydim)
        permute_rows((char *)y, ydim * sizeof *y, order, n, tmp);
    for (size_t e = 0; e < n * k; e++)
        if (g->idx[e] >= 0)
            g->idx[e] = inv[g->idx[e]];
    free(tmp);
    return 0;
}
