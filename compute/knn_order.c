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

int knn_renumber(struct knn_graph *g, int32_t *order, int32_t *inv, float *y, size_t ydim,
                 struct pw_error *err)
{
    size_t n = g->n, k = g->k;
    int32_t *ti = malloc(k * sizeof *ti);
    float *td = malloc(k * sizeof *td), *ty = malloc((ydim ? ydim : 1) * sizeof *ty);
    if (!ti || !td || !ty) {
        free(ti);
        free(td);
        free(ty);
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory to renumber the graph");
    }
    for (size_t i = 0; i < n; i++)
        inv[order[i]] = (int32_t)i;
    /* Row r takes old row order[r]: follow each cycle once from its lowest member,
     * marking the rows placed with ~order[r] (order >= 0 before, restored after). */
    for (size_t r0 = 0; r0 < n; r0++) {
        if (order[r0] < 0 || (size_t)order[r0] == r0)
            continue;
        memcpy(ti, g->idx + r0 * k, k * sizeof *ti);
        memcpy(td, g->dist + r0 * k, k * sizeof *td);
        if (ydim)
            memcpy(ty, y + r0 * ydim, ydim * sizeof *ty);
        size_t r = r0;
        for (;;) {
            size_t src = (size_t)order[r];
            order[r] = ~order[r];
            if (src == r0) {
                memcpy(g->idx + r * k, ti, k * sizeof *ti);
                memcpy(g->dist + r * k, td, k * sizeof *td);
                if (ydim)
                    memcpy(y + r * ydim, ty, ydim * sizeof *ty);
                break;
            }
            memcpy(g->idx + r * k, g->idx + src * k, k * sizeof *ti);
            memcpy(g->dist + r * k, g->dist + src * k, k * sizeof *td);
            if (ydim)
                memcpy(y + r * ydim, y + src * ydim, ydim * sizeof *ty);
            r = src;
        }
    }
    for (size_t r = 0; r < n; r++)
        if (order[r] < 0)
            order[r] = ~order[r];
    for (size_t e = 0; e < n * k; e++)
        if (g->idx[e] >= 0)
            g->idx[e] = inv[g->idx[e]];
    free(ti);
    free(td);
    free(ty);
    return 0;
}
