/* knn_cells.c - the k-NN's k-means cells (knn_cells.h): cells of about part_size rows,
 * the rows near a border spilled into a second cell, every cell joined exactly
 * (knn_join.h); or the whole set as one cell for the exact graph. */
#include <malloc.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gram.h"
#include "kmeans.h"
#include "knn_cells.h"
#include "knn_heap.h"
#include "knn_join.h"
#include "knn_screen_gate.h"

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

static float median3(float a, float b, float c)
{
    if (a > b) {
        float t = a;
        a = b;
        b = t;
    }
    return c < a ? a : c > b ? b : c;
}

/* The q-th smallest of v[0..n) (q < n), the value a sort would put at v[q]; v is
 * reordered.  Quickselect with three-way partitions (runs of equal borders, +inf for
 * the cut cells' rows, end in one step) and median-of-three pivots: linear time where a
 * sort of the 200k borders took ~20 ms on one thread each time.  Past SELECT_ROUNDS
 * rounds (inputs that defeat the pivots) the range left is sorted. */
#define SELECT_ROUNDS 64
static float select_nth(float *v, size_t n, size_t q)
{
    size_t lo = 0, hi = n; /* the answer is in v[lo..hi) */
    for (int round = 0; hi - lo > 1; round++) {
        if (round == SELECT_ROUNDS) {
            qsort(v + lo, hi - lo, sizeof *v, cmp_float);
            return v[q];
        }
        float p = median3(v[lo], v[lo + (hi - lo) / 2], v[hi - 1]);
        size_t lt = lo, i = lo, gt = hi; /* [lo, lt) < p, [lt, i) == p, [gt, hi) > p */
        while (i < gt) {
            float x = v[i];
            if (x < p) {
                v[i++] = v[lt];
                v[lt++] = x;
            } else if (x > p) {
                v[i] = v[--gt];
                v[gt] = x;
            } else {
                i++;
            }
        }
        if (q < lt)
            hi = lt;
        else if (q >= gt)
            lo = gt;
        else
            return p;
    }
    return v[q];
}

/* Last resort for cells k-means cannot split (duplicate rows, one tight blob): rows of a
 * cell still over 2 part_size are dealt, in index order, into new cells of part_size;
 * they do not spill, and the NN-descent rounds see all their pairs across the cuts.
 * Without it 200k identical rows would be one cell: 614 MB gathered and n^2 products. */
static int cut_cells(struct kmeans_cells *cells, size_t n, size_t part_size, struct pw_error *err)
{
    size_t c = cells->c, *count = calloc(c, sizeof *count), *seen = calloc(c, sizeof *seen);
    int32_t *cur = malloc(c * sizeof *cur); /* the cell a row of cell a now goes to */
    if (!count || !seen || !cur) {
        free(count);
        free(seen);
        free(cur);
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means cells");
    }
    for (size_t i = 0; i < n; i++)
        count[cells->first[i]]++;
    for (size_t a = 0; a < c; a++)
        cur[a] = (int32_t)a;
    size_t next = c;
    for (size_t i = 0; i < n; i++) {
        size_t a = (size_t)cells->first[i];
        if (count[a] <= 2 * part_size)
            continue;
        if (seen[a] > 0 && seen[a] % part_size == 0)
            cur[a] = (int32_t)next++;
        seen[a]++;
        cells->first[i] = cur[a];
        cells->second[i] = cur[a];
        cells->border[i] = INFINITY;
    }
    cells->c = next;
    free(count);
    free(seen);
    free(cur);
    return 0;
}

/* Cells of about part_size rows: k-means with n / part_size centroids, then every cell
 * of over 3/2 part_size rows split by k-means on its own rows and all rows assigned
 * again to the nearest of the centroids (twice at most).  k-means alone makes uneven
 * cells: 968 to 11783 rows on the 50k benchmark set for a target of 4096, and a cell's
 * join costs the square of its size and holds its rows. */
#define CELL_SPLITS 2

int knn_make_cells(const struct metric_ctx *m, size_t n, size_t part_size, uint64_t seed,
                   int threads, struct kmeans_cells *cells, const struct pw_progress *progress,
                   struct pw_error *err)
{
    size_t d = m->d, c = (n + part_size - 1) / part_size, limit = part_size + part_size / 2;
    int cosine = m->metric == KNN_COSINE;
    float *cent = malloc(c * d * sizeof *cent);
    size_t *count = NULL;
    int32_t *rows = NULL;
    memset(cells, 0, sizeof *cells);
    if (!cent)
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for %zu centroids", c);
    int rc = kmeans_fit(m->x, NULL, n, d, cosine, c, seed, threads, cent, progress, err);
    if (!rc)
        rc = kmeans_assign(m->x, n, d, cosine, cent, c, threads, cells, progress, err);
    for (int split = 0; split < CELL_SPLITS && !rc; split++) {
        free(count);
        if (!(count = calloc(c, sizeof *count)) || (!rows && !(rows = malloc(n * sizeof *rows)))) {
            rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means cells");
            break;
        }
        size_t more = 0;
        for (size_t i = 0; i < n; i++)
            count[cells->first[i]]++;
        for (size_t a = 0; a < c; a++)
            if (count[a] > limit)
                more += (count[a] + part_size - 1) / part_size - 1;
        if (!more)
            break;
        float *grown = realloc(cent, (c + more) * d * sizeof *cent);
        if (!grown) {
            rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for %zu centroids", c + more);
            break;
        }
        cent = grown;
        size_t next = c;
        for (size_t a = 0; a < c && !rc; a++) {
            if (count[a] <= limit)
                continue;
            size_t cnt = 0, c2 = (count[a] + part_size - 1) / part_size;
            for (size_t i = 0; i < n; i++)
                if ((size_t)cells->first[i] == a)
                    rows[cnt++] = (int32_t)i;
            /* centroid 0 of the split replaces the cell's, the others are appended */
            float *sub = malloc(c2 * d * sizeof *sub);
            if (!sub) {
                rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for %zu centroids", c2);
                break;
            }
            rc = kmeans_fit(m->x, rows, cnt, d, cosine, c2, seed + 0x5117 * (split + 1) + a,
                            threads, sub, progress, err);
            if (!rc) {
                memcpy(cent + a * d, sub, d * sizeof *cent);
                memcpy(cent + next * d, sub + d, (c2 - 1) * d * sizeof *cent);
                next += c2 - 1;
            }
            free(sub);
        }
        if (rc)
            break;
        c = next;
        kmeans_cells_free(cells);
        rc = kmeans_assign(m->x, n, d, cosine, cent, c, threads, cells, progress, err);
    }
    if (!rc)
        rc = cut_cells(cells, n, part_size, err);
    free(cent);
    free(count);
    free(rows);
    if (rc)
        kmeans_cells_free(cells);
    return rc;
}

/* Rows whose distance to their cell's border (kmeans_cells.border) is below *thr also
 * join their second cell: the `spill` fraction of rows nearest a border (-inf: none). */
int knn_spill_threshold(const struct kmeans_cells *cells, double spill, float *thr,
                        struct pw_error *err)
{
    size_t n = cells->n;
    *thr = -INFINITY;
    if (cells->c <= 1 || spill <= 0.0)
        return 0;
    float *tmp = malloc(n * sizeof *tmp);
    if (!tmp)
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means cells (n = %zu)", n);
    memcpy(tmp, cells->border, n * sizeof *tmp);
    size_t q = (size_t)(spill * (double)n);
    *thr = select_nth(tmp, n, q < n ? q : n - 1);
    free(tmp);
    return 0;
}

/* The pre-screen's pool (knn_screen.h: a pool the size of a cell joins it symmetrically,
 * each pair's int8 product once; a smaller one in ranges, each pair twice).  The k-NN's
 * own arrays, the graph and the pool, are kept within a quarter of the input's bytes,
 * with 1 MiB of pool at least, and no more pool than the biggest cell needs.  So the
 * pool is large where the graph is small against the rows: UMAP's k = 15 on 768-float
 * rows joins the exact graph of 20k rows at once.  t-SNE's k = 91 graph takes nearly the
 * quarter by itself on such rows: 910 rows of pool at 20k, 3,400 at 70k x 784. */
static size_t screen_pool_rows(const struct nnd *s, size_t biggest)
{
    size_t input = s->n * s->m->d * sizeof(float), graph = s->n * s->k * 2 * sizeof(float);
    size_t budget = input / 4 > graph ? input / 4 - graph : 0, least = (size_t)1 << 20;
    size_t rows = (budget > least ? budget : least) / (knn_screen_width(s->k) * 2 * sizeof(float));
    rows = s->pool_rows ? s->pool_rows : rows > 1 ? rows : 1;
    return rows < biggest ? rows : biggest;
}

/* 1 when some cell of the c is wide enough for int8 to pay (knn_screen_pays). */
static int any_cell_pays(const struct nnd *s, const size_t *start, size_t c, size_t pool)
{
    for (size_t a = 0; a < c; a++)
        if (knn_screen_pays(s, start[a + 1] - start[a], pool))
            return 1;
    return 0;
}

/* Which cells join on int8 (knn_screen_cell; screen as knn_options.screen) into
 * i8[0..c), with cs made ready for the pre-screen; when none does, *screen becomes 0 and
 * cs is freed (the joins then run on float with heaps of k).  When no cell can pay
 * (narrow rows), cs is not made at all. */
static int choose_cells(const struct nnd *s, const int32_t *mem, const size_t *start, size_t c,
                        uint8_t *i8, struct cell_scratch *cs, size_t biggest, int use_amx,
                        struct knn_screen *sc, int in_place, int *screen, struct team *tm,
                        struct pw_error *err)
{
    size_t pool = screen_pool_rows(s, biggest);
    if (*screen != KNN_SCREEN_ALWAYS && !any_cell_pays(s, start, c, pool)) {
        *screen = 0;
        return 0;
    }
    int rc = knn_cell_scratch_init(cs, s, biggest, use_amx, sc, in_place, err), any = 0;
    int cosine = s->m->metric == KNN_COSINE;
    for (size_t a = 0; a < c && !rc; a++) {
        size_t cnt = start[a + 1] - start[a];
        if (*screen != KNN_SCREEN_ALWAYS && !knn_screen_pays(s, cnt, pool))
            continue;
        knn_cell_centre(s, mem + start[a], cnt, cs, cosine, tm);
        i8[a] = (uint8_t)knn_screen_cell(s, mem + start[a], cnt, cs);
        any |= i8[a];
    }
    if (!rc && !any) {
        knn_cell_scratch_free(cs);
        *screen = 0;
    }
    return rc;
}

/* The joins of the cells mem[start[a]..start[a+1]) (c of them, the biggest of
 * `biggest` rows) into s's heaps, from empty heaps: on int8 products through the
 * pre-screen's pool of wide heaps, then ranked again exactly (screen: knn_screen.h),
 * else on AMX or sgemm.  Progress from p0 to p0 + share over the cells, unless the one
 * cell reports its own (in_place). */
static int join_cells(struct nnd *s, const int32_t *mem, const size_t *start, size_t c,
                      size_t biggest, int in_place, int use_amx, int screen, double p0,
                      double share, const struct pw_progress *progress, struct pw_error *err)
{
    struct cell_scratch cs = {0};
    struct knn_screen sc = {0};
    struct team *tm = NULL;
    size_t *counts = calloc(2 * (size_t)s->threads, sizeof *counts); /* knn_screen_job's */
    uint32_t *fin = NULL;
    /* int8 only where the CPU has AVX512-VNNI (its kernel has no other build) and AMX
     * does not take the products */
    screen = (use_amx && gram_amx_usable()) || !gram_vnni_usable() ? 0 : screen;
    uint8_t *i8 = screen ? calloc(c, 1) : NULL; /* the cells joined on int8 */
    int rc = counts && (i8 || !screen) ? 0 : pw_error_set(err, PW_ENOMEM, "knn: out of memory");
    heap_init(s->hd, s->hi, s->n * s->k);
    if (!rc)
        rc = team_start(s->threads, &tm, err);
    if (!rc && screen) /* each cell's choice first: with none on int8, no pool */
        rc = choose_cells(s, mem, start, c, i8, &cs, biggest, use_amx, &sc, in_place, &screen, tm,
                          err);
    if (!rc && screen && !(rc = knn_screen_init(&sc, screen_pool_rows(s, biggest), s->k, err)) &&
        !(fin = malloc(knn_screen_scratch(s->k) * (size_t)s->threads * sizeof *fin)))
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for a cell of %zu", biggest);
    if (!rc && !screen)
        rc = knn_cell_scratch_init(&cs, s, biggest, use_amx, NULL, in_place, err);
    cs.p0 = p0;
    cs.fin = fin;
    cs.counts = counts;
    for (size_t a = 0; a < c && !rc; a++) {
        rc = knn_cell_join(s, mem + start[a], start[a + 1] - start[a], screen && i8[a], &cs, tm,
                           progress, err);
        if (!rc && !in_place)
            pw_progress_report(progress, "knn", p0 + share * (double)(a + 1) / (double)c);
    }
    team_stop(tm);
    s->exact_dist = screen;
    for (int t = 0; t < s->threads && counts; t++) {
        s->rejoined += counts[2 * t];
        s->screened += counts[2 * t + 1];
    }
    knn_cell_scratch_free(&cs);
    knn_screen_free(&sc);
    free(fin);
    free(counts);
    free(i8);
    return rc;
}

/* Seeds every heap with the exact neighbours inside its k-means cell (knn_make_cells); the
 * `spill` fraction of rows nearest a cell border also joins the neighbouring cell.
 * order receives the rows grouped by cell (NN-descent's visiting order). */
int knn_partition_seed(struct nnd *s, const struct kmeans_cells *cells_in, double spill,
                       int use_amx, int screen, int32_t *order, double share,
                       const struct pw_progress *progress, struct pw_error *err)
{
    size_t n = s->n, c;
    const struct kmeans_cells cells = *cells_in;
    int rc = 0;
    /* The k-means sample's heap pages go back before the graph's are touched. */
    malloc_trim(0);
    uint8_t *flags = s->hf; /* not kept by the joins: all set at the end, s->hf at done */
    s->hf = NULL;
    c = cells.c;
    float thr = -INFINITY;
    size_t *start = calloc(c + 1, sizeof *start), *fill = malloc(c * sizeof *fill);
    int32_t *mem = malloc(2 * n * sizeof *mem);
    if (!start || !fill || !mem) {
        rc = pw_error_set(err, PW_ENOMEM, "knn: out of memory for k-means cells (n = %zu)", n);
        goto done;
    }
    if ((rc = knn_spill_threshold(&cells, spill, &thr, err)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        start[cells.first[i] + 1]++;
        if (cells.border[i] < thr)
            start[cells.second[i] + 1]++;
    }
    size_t biggest = 0, o = 0;
    for (size_t a = 0; a < c; a++) {
        if (start[a + 1] > biggest)
            biggest = start[a + 1];
        start[a + 1] += start[a];
        fill[a] = start[a];
    }
    for (size_t i = 0; i < n; i++) {
        mem[fill[cells.first[i]]++] = (int32_t)i;
        if (cells.border[i] < thr)
            mem[fill[cells.second[i]]++] = (int32_t)i;
    }
    for (size_t a = 0; a < c; a++) /* visiting order: each row in its own cell's place */
        for (size_t p = start[a]; p < start[a + 1]; p++)
            if (cells.first[mem[p]] == (int32_t)a)
                order[o++] = mem[p];
    if ((rc = join_cells(s, mem, start, c, biggest, 0, use_amx, screen, 0.0, share, progress, err)))
        goto done;
    /* glibc keeps the freed scratch's pages resident inside its heaps (the threads' arenas
     * included); NN-descent's candidate lists and proposals would be placed elsewhere. */
    malloc_trim(0);
    /* NN-descent joins "new" entries only.  Two rows of one cell were compared there, so
     * a neighbour pair is news to the rounds only across cells: when the two rows' cells
     * differ or either row also sat in a second cell.  Leaving every entry new would cost
     * a full round that finds nothing on the benchmark sets. */
    for (size_t i = 0; i < n && !rc && flags; i++) {
        int bi = cells.border[i] < thr;
        uint8_t *fi = flags + i * s->kb;
        memset(fi, 0, s->kb);
        for (size_t e = 0; e < s->k; e++) {
            int32_t j = s->hi[i * s->k + e];
            if (j >= 0 && (bi || cells.border[j] < thr || cells.first[i] != cells.first[j]))
                flag_put(fi, e, FLAG_NEW);
        }
    }
done:
    s->hf = flags;
    free(start);
    free(fill);
    free(mem);
    return rc;
}

/* The exact k-NN of every row: the whole set as one cell (each pair's dot product once,
 * rows read in place, euclidean ones centred a chunk at a time), from empty heaps.  The
 * caller computes the distances again directly (knn_finish_rows). */
int knn_whole_join(struct nnd *s, int use_amx, int screen, double p0,
                   const struct pw_progress *progress, struct pw_error *err)
{
    size_t n = s->n, start[2] = {0, n};
    int32_t *mem = malloc(n * sizeof *mem);
    uint8_t *flags = s->hf;
    if (!mem)
        return pw_error_set(err, PW_ENOMEM, "knn: out of memory (n = %zu)", n);
    for (size_t i = 0; i < n; i++)
        mem[i] = (int32_t)i;
    s->hf = NULL;
    int rc = join_cells(s, mem, start, 1, n, 1, use_amx, screen, p0, 0.0, progress, err);
    s->hf = flags;
    free(mem);
    return rc;
}
