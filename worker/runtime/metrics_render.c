/* metrics_render.c - the Prometheus text exposition (format 0.0.4) of struct metrics.
 *
 * Kept apart from the bookkeeping in metrics.c: this file only formats.  The struct is
 * shared through metrics_internal.h; the caller of each function holds m->mu. */
#include "clock.h"
#include "metrics_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A label value as the format wants it: backslash, quote and newline escaped. */
static void put_label(FILE *f, const char *name, const char *value)
{
    fprintf(f, "%s=\"", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            fputc('\\', f);
        if (*p == '\n')
            fputs("\\n", f);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void labelled_counter(FILE *f, const char *name, const struct table *t, const char *la,
                             const char *lb, const char *help)
{
    head(f, name, "counter", help);
    for (int i = 0; i < t->n; i++) {
        fprintf(f, "%s_total{", name);
        put_label(f, la, t->s[i].a);
        if (lb) {
            fputc(',', f);
            put_label(f, lb, t->s[i].b);
        }
        fprintf(f, "} %.17g\n", t->s[i].value);
    }
}

static void series_labels(FILE *f, const struct series *s, const char *la, const char *lb)
{
    put_label(f, la, s->a);
    if (lb) {
        fputc(',', f);
        put_label(f, lb, s->b);
    }
}

static void histogram(FILE *f, const char *name, const struct table *t, const char *la,
                      const char *lb, const char *help)
{
    head(f, name, "histogram", help);
    for (int i = 0; i < t->n; i++) {
        const struct series *s = &t->s[i];
        for (size_t k = 0; k <= N_BUCKETS; k++) {
            fprintf(f, "%s_bucket{", name);
            series_labels(f, s, la, lb);
            if (k < N_BUCKETS)
                fprintf(f, ",le=\"%g\"} %llu\n", metrics_buckets[k], s->in_bucket[k]);
            else
                fprintf(f, ",le=\"+Inf\"} %llu\n", s->count);
        }
        fprintf(f, "%s_sum{", name);
        series_labels(f, s, la, lb);
        fprintf(f, "} %.17g\n%s_count{", s->value, name);
        series_labels(f, s, la, lb);
        fprintf(f, "} %llu\n", s->count);
    }
}

static void scalar(FILE *f, const char *name, const char *type, double v, const char *help)
{
    head(f, name, type, help);
    fprintf(f, "%s%s %.17g\n", name, strcmp(type, "counter") ? "" : "_total", v);
}

/* Resident set size of a process from /proc/PID/statm, in bytes; 0 when it is gone. */
static double rss_bytes(int pid)
{
    char path[64];
    unsigned long size = 0, resident = 0;
    FILE *f;

    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/statm", pid);
    else
        snprintf(path, sizeof path, "/proc/self/statm");
    if (!(f = fopen(path, "r")))
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static void gauges(FILE *f, const struct metrics *m)
{
    double task_rss = 0;

    for (int i = 0; i < m->loop.n_pids; i++)
        task_rss += rss_bytes(m->loop.pids[i]);
    scalar(f, "pw_running_tasks", "gauge", m->loop.running, "Tasks running now.");
    scalar(f, "pw_prefetched_messages", "gauge", m->loop.prefetched,
           "Messages received and not started (reserved or held for their eta).");
    scalar(f, "pw_broker_connected", "gauge", m->loop.connected, "1 when the broker is connected.");
    scalar(f, "pw_consuming", "gauge", m->loop.consuming,
           "1 when taking work (connected, not paused after a retry, not shutting down).");
    scalar(f, "pw_loop_age_seconds", "gauge", pw_mono_now() - m->last_turn,
           "Seconds since the main loop last turned.");
    scalar(f, "pw_consumer_resident_memory_bytes", "gauge", rss_bytes(0),
           "Resident memory of the consumer process.");
    scalar(f, "pw_task_processes", "gauge", m->loop.n_pids, "Task processes running now.");
    scalar(f, "pw_task_processes_resident_memory_bytes", "gauge", task_rss,
           "Resident memory of the running task processes, summed.");
}

void metrics_render_locked(const struct metrics *m, FILE *f)
{
    labelled_counter(f, "pw_tasks", &m->tasks, "task", "state",
                     "Tasks finished or retried, by task name and Celery state.");
    labelled_counter(f, "pw_task_retries", &m->retries, "task", NULL,
                     "Tasks published again for a Celery retry (transient service fault).");
    scalar(f, "pw_task_revokes", "counter", m->revokes,
           "Tasks revoked: discarded before running or terminated while running.");
    scalar(f, "pw_projection_reuses", "counter", m->reuses,
           "Projections completed by reusing an identical run's artifacts.");
    scalar(f, "pw_points_fetched", "counter", m->points, "Points fetched from Qdrant.");
    scalar(f, "pw_vector_bytes_fetched", "counter", m->vector_bytes,
           "Bytes of float32 vectors fetched from Qdrant (points x dimensions x 4).");
    histogram(f, "pw_task_duration_seconds", &m->durations, "task", NULL,
              "Run time of finished tasks.");
    histogram(f, "pw_projection_phase_duration_seconds", &m->phases, "reducer", "phase",
              "Duration of each pipeline phase of computed projections.");
    gauges(f, m);
}
