/* knn_cell_centre.c - a k-NN cell's centre and its members' lengths from it (knn_join.h),
 * which the int8 gate (knn_screen_gate.c) and the joins (knn_join.c) measure from. */
#include "knn_join.h"

/* |row f - centre|^2 in double as LEN_LANES partial sums (dim u into sum u mod
 * LEN_LANES, the last d mod LEN_LANES into sum 0) added in order: independent chains
 * the compiler keeps in vector registers, where one running sum waits on every add.
 * The order is written out, so the value is the same on every CPU. */
#define LEN_LANES 8

PW_CLONES_V4 static double centred_sqlen(const float *row, float f, const float *centre, size_t d)
{
    double acc[LEN_LANES] = {0};
    size_t body = d - d % LEN_LANES;
    for (size_t u = 0; u < body; u += LEN_LANES)
        for (size_t l = 0; l < LEN_LANES; l++) {
            double v = (double)row[u + l] * f - centre[u + l];
            acc[l] += v * v;
        }
    for (size_t u = body; u < d; u++) {
        double v = (double)row[u] * f - centre[u];
        acc[0] += v * v;
    }
    double q = 0.0;
    for (size_t l = 0; l < LEN_LANES; l++)
        q += acc[l];
    return q;
}

/* knn_cell_centre's parts, on a team (team.h): each value is summed in the order of the
 * sequential loop, whatever the number of threads. */
struct centre_job {
    const struct metric_ctx *m;
    const int32_t *mem;
    size_t cnt;
    struct cell_scratch *cs;
    int unit, centred;
};

/* Share t of the dims: the members' (unit) rows summed, member by member. */
static void centre_sums(void *arg, int t, int T)
{
    const struct centre_job *j = arg;
    const struct metric_ctx *m = j->m;
    size_t d = m->d, lo = d * (size_t)t / (size_t)T, hi = d * (size_t)(t + 1) / (size_t)T;
    double *sum = j->cs->sum;
    for (size_t u = lo; u < hi; u++)
        sum[u] = 0.0;
    for (size_t a = 0; a < j->cnt; a++) {
        const float *row = m->x + (size_t)j->mem[a] * d;
        float f = j->unit ? m->inv_norm[j->mem[a]] : 1.0f;
        for (size_t u = lo; u < hi; u++)
            sum[u] += row[u] * f;
    }
}

/* Share t of the members: their inverse norms (cosine rows as they are) or their
 * squared lengths from the centre and, where the int8 pre-screen is set up (cs->bound),
 * their int8 scales (gram_i8_scale, as knn_screen_bounds reads them), from the row while
 * it is in cache. */
static void centre_lengths(void *arg, int t, int T)
{
    const struct centre_job *j = arg;
    const struct metric_ctx *m = j->m;
    size_t d = m->d, lo = j->cnt * (size_t)t / (size_t)T, hi = j->cnt * (size_t)(t + 1) / (size_t)T;
    const float *centre = j->cs->centre;
    for (size_t a = lo; a < hi; a++) {
        size_t i = (size_t)j->mem[a];
        if (!j->centred) {
            j->cs->g[a] = m->metric == KNN_COSINE ? m->inv_norm[i] : m->sqnorm[i];
            continue;
        }
        const float *row = m->x + i * d;
        float f = j->unit ? m->inv_norm[i] : 1.0f;
        j->cs->g[a] = (float)centred_sqlen(row, f, centre, d);
        if (j->cs->bound)
            j->cs->bound[a] = gram_i8_scale(row, f, centre, d);
    }
}

/* The cell's mean taken off its rows (cs->centre; unit: of the unit rows) and the
 * members' squared lengths from it in cs->g, for euclidean rows and unit ones, with their
 * int8 scales in cs->bound when it exists; cosine rows otherwise keep their inverse
 * norms in cs->g. */
void knn_cell_centre(const struct nnd *s, const int32_t *mem, size_t cnt, struct cell_scratch *cs,
                     int unit, struct team *tm)
{
    const struct metric_ctx *m = s->m;
    struct centre_job job = {m, mem, cnt, cs, unit, m->metric != KNN_COSINE || unit};
    if (job.centred) {
        /* |a|^2 + |b|^2 - 2 a.b loses the digits the rows share: measured from the
         * cell's mean (euclidean distances stay the same), the dots' error is relative
         * to the rows' spread rather than to their lengths. */
        team_run(tm, centre_sums, &job);
        for (size_t u = 0; u < m->d; u++)
            cs->centre[u] = (float)(cs->sum[u] / (double)cnt);
    }
    team_run(tm, centre_lengths, &job);
}
