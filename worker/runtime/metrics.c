/* metrics.c - the worker's counters, gauges and liveness (see header).
 *
 * Labelled series live in small fixed tables (a worker serves a handful of task names
 * and reducers; a table that is full drops new label sets rather than grow without
 * bound).  Counters and histograms share one series type, so one lookup serves both.
 * Resident memory is read from /proc at render time, when a scrape asks for it. */
#include "clock.h"
#include "metrics_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* seconds: projections take from a fraction of a second to tens of minutes */
const double metrics_buckets[N_BUCKETS] = {0.05, 0.1, 0.25, 0.5, 1,   2.5, 5,
                                           10,   30,  60,   120, 300, 600, 1800};

int metrics_new(struct metrics **out, const char *heartbeat_path, struct pw_error *err)
{
    struct metrics *m = calloc(1, sizeof *m);

    if (!m || (heartbeat_path && !(m->heartbeat_path = strdup(heartbeat_path)))) {
        free(m);
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&m->mu, NULL);
    m->last_turn = pw_mono_now();
    *out = m;
    return 0;
}

static void table_free(struct table *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->s[i].a);
        free(t->s[i].b);
    }
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    table_free(&m->tasks);
    table_free(&m->retries);
    table_free(&m->durations);
    table_free(&m->phases);
    pthread_mutex_destroy(&m->mu);
    free(m->heartbeat_path);
    free(m);
}

/* The series labelled (a, b), added when new; NULL when the table is full. */
static struct series *series_at(struct table *t, const char *a, const char *b)
{
    struct series *s;

    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->s[i].a, a) && !strcmp(t->s[i].b, b))
            return &t->s[i];
    if (t->n == MAX_SERIES)
        return NULL;
    s = &t->s[t->n];
    s->a = strdup(a);
    s->b = strdup(b);
    if (!s->a || !s->b) {
        free(s->a);
        free(s->b);
        s->a = s->b = NULL;
        return NULL;
    }
    t->n++;
    return s;
}

static void count(struct table *t, const char *a, const char *b, double by)
{
    struct series *s = series_at(t, a, b);
    if (s)
        s->value += by;
}

static void observe(struct table *t, const char *a, const char *b, double v)
{
    struct series *s = series_at(t, a, b);

    if (!s)
        return;
    s->value += v;
    s->count++;
    for (size_t i = 0; i < N_BUCKETS; i++)
        if (v <= metrics_buckets[i])
            s->in_bucket[i]++;
}

/* mtime := now, at most once a second; the file is created when missing. */
static void touch_heartbeat(struct metrics *m, double now)
{
    int fd;

    if (!m->heartbeat_path || now - m->heartbeat_at < 1.0)
        return;
    m->heartbeat_at = now;
    if (utimensat(AT_FDCWD, m->heartbeat_path, NULL, 0) == 0 || errno != ENOENT)
        return;
    fd = open(m->heartbeat_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0)
        close(fd);
}

void metrics_loop_turn(struct metrics *m, const struct metrics_loop_state *s)
{
    double now = pw_mono_now();

    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->loop = *s;
    m->last_turn = now;
    pthread_mutex_unlock(&m->mu);
    touch_heartbeat(m, now); /* only the loop's thread touches heartbeat_at */
}

static void count_stats(struct metrics *m, const json_t *stats)
{
    const char *reducer = json_string_value(json_object_get(stats, "reducer"));
    const char *phase;
    json_t *v;

    if (!json_is_object(stats))
        return;
    if (json_is_true(json_object_get(stats, "reused")))
        m->reuses += 1;
    m->points += (double)json_integer_value(json_object_get(stats, "points"));
    m->vector_bytes += (double)json_integer_value(json_object_get(stats, "vector_bytes"));
    if (!reducer || json_is_true(json_object_get(stats, "reused")))
        return; /* a reuse ran no phase */
    json_object_foreach((json_t *)json_object_get(stats, "phases"), phase, v)
    {
        if (json_is_number(v) && json_number_value(v) > 0)
            observe(&m->phases, reducer, phase, json_number_value(v));
    }
}

void metrics_task_finished(struct metrics *m, const char *task, const char *state, double runtime_s,
                           const json_t *stats)
{
    if (!m || !task || !state)
        return;
    pthread_mutex_lock(&m->mu);
    count(&m->tasks, task, state, 1);
    observe(&m->durations, task, "", runtime_s);
    count_stats(m, stats);
    pthread_mutex_unlock(&m->mu);
}

void metrics_task_retried(struct metrics *m, const char *task)
{
    if (!m || !task)
        return;
    pthread_mutex_lock(&m->mu);
    count(&m->tasks, task, "RETRY", 1);
    count(&m->retries, task, "", 1);
    pthread_mutex_unlock(&m->mu);
}

void metrics_task_revoked(struct metrics *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->revokes += 1;
    pthread_mutex_unlock(&m->mu);
}

int metrics_alive(struct metrics *m, double max_age_s)
{
    int alive;

    if (!m)
        return 0;
    pthread_mutex_lock(&m->mu);
    alive = pw_mono_now() - m->last_turn <= max_age_s;
    pthread_mutex_unlock(&m->mu);
    return alive;
}

int metrics_ready(struct metrics *m)
{
    int ready;

    if (!m)
        return 0;
    pthread_mutex_lock(&m->mu);
    ready = m->loop.connected && m->loop.consuming;
    pthread_mutex_unlock(&m->mu);
    return ready;
}

char *metrics_render(struct metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    if (!m || !(f = open_memstream(&text, &len)))
        return NULL;
    pthread_mutex_lock(&m->mu);
    metrics_render_locked(m, f);
    pthread_mutex_unlock(&m->mu);
    if (fclose(f)) {
        free(text);
        return NULL;
    }
    return text;
}
