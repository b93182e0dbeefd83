/* test_knn_order.c - the breadth-first renumbering of a k-NN graph: a permutation in
 * breadth-first order, and a renumbered graph that is the same graph (every edge and
 * its distance kept, rows moved, the optional per-point array moved along). */
#include <stdlib.h>
#include <string.h>

#include "knn_order.h"
#include "pw_test.h"
#include "rng.h"

/* n points, k random distinct neighbours each (never the point itself); a few -1
 * slots (unfilled rows) at the ends of some rows. */
static struct knn_graph random_graph(size_t n, size_t k, uint64_t seed)
{
    struct knn_graph g = {.n = n,
                          .k = k,
                          .idx = malloc(n * k * sizeof(int32_t)),
                          .dist = malloc(n * k * sizeof(float))};
    for (size_t i = 0; i < n; i++)
        for (size_t e = 0; e < k; e++) {
            int32_t j;
            int dup;
            size_t tries = 0;
            do {
                j = (int32_t)rng_below(seed, i, e + 1000 * tries++, n);
                dup = (size_t)j == i;
                for (size_t f = 0; f < e; f++)
                    dup |= g.idx[i * k + f] == j;
            } while (dup);
            g.idx[i * k + e] = i % 7 == 3 && e == k - 1 ? -1 : j;
            g.dist[i * k + e] = (float)(i * 1000 + (size_t)j);
        }
    return g;
}

static void test_bfs_order_is_a_breadth_first_permutation(void)
{
    size_t n = 500, k = 4;
    struct knn_graph g = random_graph(n, k, 1);
    int32_t *order = malloc(n * sizeof *order), *inv = malloc(n * sizeof *inv);
    knn_bfs_order(&g, order, inv);
    char *seen = calloc(n, 1);
    int perm = 1;
    for (size_t r = 0; r < n; r++) {
        perm &= order[r] >= 0 && (size_t)order[r] < n && !seen[order[r]];
        if (order[r] >= 0 && (size_t)order[r] < n)
            seen[order[r]] = 1;
    }
    CHECK(perm);
    CHECK(order[0] == 0);
    /* breadth-first: the neighbours of the point numbered r are numbered at most one
     * "level" later, i.e. every neighbour is numbered before the children of any later
     * point - equivalently, the first time a point appears as a neighbour (scanning
     * the numbered points in order) it is given the next free number */
    size_t next = 1;
    int bfs = 1;
    memset(seen, 0, n);
    seen[order[0]] = 1;
    for (size_t r = 0; r < n; r++) {
        if (!seen[order[r]]) { /* a new component starts at the lowest unreached point */
            bfs &= next == r;
            for (size_t s = 0; s < (size_t)order[r]; s++)
                bfs &= seen[s];
            seen[order[r]] = 1;
            next = r + 1;
        }
        for (size_t e = 0; e < k; e++) {
            int32_t j = g.idx[(size_t)order[r] * k + e];
            if (j >= 0 && !seen[j]) {
                bfs &= next < n && order[next] == j;
                seen[j] = 1;
                next++;
            }
        }
    }
    CHECK(bfs);
    free(seen);
    free(order);
    free(inv);
    knn_free(&g);
}

static void test_renumber_keeps_every_edge_and_moves_rows(void)
{
    size_t n = 700, k = 5;
    struct knn_graph g = random_graph(n, k, 2), h = random_graph(n, k, 2);
    float *y = malloc(3 * n * sizeof *y);
    for (size_t q = 0; q < 3 * n; q++)
        y[q] = (float)q;
    int32_t *order = malloc(n * sizeof *order), *inv = malloc(n * sizeof *inv);
    struct pw_error err;
    knn_bfs_order(&g, order, inv);
    CHECK(knn_renumber(&g, order, inv, y, 3, &err) == 0);
    int same = 1;
    for (size_t r = 0; r < n; r++) {
        size_t old = (size_t)order[r];
        same &= (size_t)inv[old] == r;
        for (size_t e = 0; e < k; e++) {
            int32_t j = g.idx[r * k + e], oj = h.idx[old * k + e];
            same &= oj < 0 ? j == oj : j >= 0 && order[j] == oj;
            same &= g.dist[r * k + e] == h.dist[old * k + e];
        }
        for (size_t c = 0; c < 3; c++)
            same &= y[r * 3 + c] == (float)(old * 3 + c);
    }
    CHECK(same);
    free(y);
    free(order);
    free(inv);
    knn_free(&g);
    knn_free(&h);
}

int main(void)
{
    RUN(test_bfs_order_is_a_breadth_first_permutation);
    RUN(test_renumber_keeps_every_edge_and_moves_rows);
    PW_TEST_MAIN();
}
