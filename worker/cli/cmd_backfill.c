/* cmd_backfill.c - `projection-worker backfill`: enqueue the projections that are stale.
 *
 *   projection-worker backfill (--all | --collection ID ...) [--status STATUS]
 *       [--reducer R] [--config JSON] [--color-by F] [--sample-limit N] [--force]
 *       [--dry-run] [--max-in-flight N] [--wait]
 *
 * For each selected collection it asks backfill_decide() (worker/pipeline/backfill.h)
 * whether the request is up to date, in flight or to be enqueued, and enqueues through
 * backfill_enqueue().  --max-in-flight and --wait poll the statuses of the runs it
 * started or found in flight (backfill_tracker), so they need no result backend.
 * Progress goes to stderr: a bar on a terminal, JSON lines otherwise.  stdout carries one
 * line, the summary.  Exit 0 when nothing failed, 1 when something did, 2 on usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "backfill.h"
#include "clock.h"
#include "commands.h"
#include "log.h"
#include "pg.h"
#include "pg_url.h"

#define POLL_INTERVAL_US 200000

struct backfill_args {
    int all, force, dry_run, wait;
    long long max_in_flight; /* 0: no limit */
    const char **ids;
    size_t n_ids;
    const char *status;
    struct backfill_options_in request;
};

struct backfill_counts {
    size_t total, considered, up_to_date, in_flight, enqueued, completed, failed;
};

struct backfill_cmd {
    struct backfill_args a;
    const char *db_url, *broker_url;
    char queue[256];
    struct pw_log log;
    struct secrets secrets;
    int tty, quorum; /* quorum: PW_QUEUE_TYPE, as `run` declares a missing queue */
    double bar_at;
    PGconn *conn;
    struct broker *b;
    struct backfill_request req;
    struct backfill_tracker tracker;
    struct backfill_counts n;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: projection-worker backfill (--all | --collection ID ...) [--status STATUS]\n"
            "         [--reducer R] [--config JSON] [--color-by F] [--sample-limit N] [--force]\n"
            "         [--dry-run] [--max-in-flight N] [--wait]\n"
            "  --all               every collection\n"
            "  --collection ID     this collection (repeatable)\n"
            "  --status STATUS     only collections in this status (ready, degraded, ...)\n"
            "  --reducer R         umap (default, as the API), pca, tsne\n"
            "  --config JSON       the reducer config object, normalised as the API does\n"
            "  --color-by F        document_id (default), source_dir, filetype, age_bucket\n"
            "  --sample-limit N    at most N points per projection (config sample_size)\n"
            "  --force             enqueue even collections that are up to date\n"
            "  --dry-run           report what would be enqueued; write nothing\n"
            "  --max-in-flight N   at most N of its runs pending or running at a time\n"
            "  --wait              wait until every run it enqueued or found in flight ends\n"
            "environment: DATABASE_URL, CELERY_BROKER_URL, PROJECTION_QUEUE (as for run)\n");
}

static int usage_error(const char *fmt, const char *what)
{
    fprintf(stderr, "projection-worker backfill: ");
    fprintf(stderr, fmt, what);
    fprintf(stderr, "\n");
    usage(stderr);
    return 2;
}

static int parse_count(const char *flag, const char *v, long long min, long long *out)
{
    char *end;
    long long n = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || n < min || n > 1000000000LL)
        return usage_error("bad value for %s", flag);
    *out = n;
    return 0;
}

/* The value of a flag at argv[*i] ("--flag VALUE"); NULL when missing. */
static const char *value_of(int argc, char **argv, int *i)
{
    return *i + 1 < argc ? argv[++*i] : NULL;
}

static int parse_one(struct backfill_args *a, int argc, char **argv, int *i)
{
    const char *f = argv[*i], *v;
    int *flag = !strcmp(f, "--all")       ? &a->all
                : !strcmp(f, "--force")   ? &a->force
                : !strcmp(f, "--dry-run") ? &a->dry_run
                : !strcmp(f, "--wait")    ? &a->wait
                                          : NULL;
    long long *count = !strcmp(f, "--sample-limit")    ? &a->request.sample_limit
                       : !strcmp(f, "--max-in-flight") ? &a->max_in_flight
                                                       : NULL;
    if (flag) {
        *flag = 1;
        return 0;
    }
    if (count)
        return parse_count(f, value_of(argc, argv, i), 1, count);
    const char **slot = !strcmp(f, "--status")     ? &a->status
                        : !strcmp(f, "--reducer")  ? &a->request.reducer
                        : !strcmp(f, "--config")   ? &a->request.config_json
                        : !strcmp(f, "--color-by") ? &a->request.color_by
                                                   : NULL;
    if (!slot && strcmp(f, "--collection"))
        return usage_error("unknown option '%s'", f);
    if (!(v = value_of(argc, argv, i)) || !*v)
        return usage_error("%s needs a value", f);
    if (slot)
        *slot = v;
    else
        a->ids[a->n_ids++] = v;
    return 0;
}

static int parse_args(struct backfill_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (parse_one(a, argc, argv, &i))
            return 2;
    if (a->all == (a->n_ids > 0))
        return usage_error("%s", "give either --all or --collection ID ...");
    return 0;
}

/* ---- progress ------------------------------------------------------------------------ */

static void draw_bar(struct backfill_cmd *c, int force)
{
    double now = pw_mono_now();
    if (!c->tty || (!force && now - c->bar_at < 0.1))
        return;
    c->bar_at = now;
    size_t total = c->n.total ? c->n.total : 1, width = 30;
    size_t filled = c->n.considered * width / total;
    char bar[64];
    for (size_t i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr,
            "\rbackfill [%s] %zu/%zu  up to date %zu  enqueued %zu  in flight %zu  completed %zu"
            "  failed %zu ",
            bar, c->n.considered, c->n.total, c->n.up_to_date, c->n.enqueued,
            c->n.in_flight + c->tracker.n, c->n.completed, c->n.failed);
    fflush(stderr);
}

/* A JSON line when stderr is not a terminal (the bar otherwise); steals fields. */
static void progress(struct backfill_cmd *c, int level, const char *event, json_t *fields,
                     const char *msg)
{
    if (c->tty && level < PW_LOG_WARNING) {
        json_decref(fields);
        draw_bar(c, 0);
        return;
    }
    if (c->tty)
        fprintf(stderr, "\n");
    pw_log_event(&c->log, level, event, fields, msg);
}

static void on_run_finished(void *ctx, const char *run, const char *status)
{
    struct backfill_cmd *c = ctx;
    int ok = !strcmp(status, "completed");
    if (ok)
        c->n.completed++;
    else
        c->n.failed++;
    progress(c, ok ? PW_LOG_INFO : PW_LOG_WARNING, "backfill_run_finished",
             json_pack("{s:s, s:s}", "run", run, "status", *status ? status : "missing"), NULL);
}

/* Polls until at most `limit` tracked runs are unfinished. */
static int wait_until(struct backfill_cmd *c, size_t limit, struct pw_error *err)
{
    int rc;
    while (c->tracker.n > limit) {
        usleep(POLL_INTERVAL_US);
        if ((rc = backfill_tracker_poll(c->conn, &c->tracker, on_run_finished, c, err)))
            return rc;
        draw_bar(c, 0);
    }
    return 0;
}

/* ---- one collection ------------------------------------------------------------------ */

static json_t *collection_fields(const struct collection *coll, const struct backfill_decision *d,
                                 const char *action)
{
    return json_pack("{s:s, s:s, s:s, s:s?}", "collection", coll->id, "action", action,
                     "metadata_hash", d->hash, "run", *d->run_uuid ? d->run_uuid : NULL);
}

static int track(struct backfill_cmd *c, const char *run, struct pw_error *err)
{
    if (!c->a.wait && !c->a.max_in_flight)
        return 0;
    return backfill_tracker_add(&c->tracker, run, err);
}

static int enqueue(struct backfill_cmd *c, const struct collection *coll,
                   struct backfill_decision *d, struct pw_error *err)
{
    int republish = d->action == BACKFILL_REPUBLISH, rc;
    if (c->a.dry_run) {
        c->n.enqueued++;
        progress(c, PW_LOG_INFO, "backfill_collection",
                 collection_fields(coll, d, republish ? "would_republish" : "would_enqueue"), NULL);
        return 0;
    }
    if (c->a.max_in_flight && (rc = wait_until(c, (size_t)c->a.max_in_flight - 1, err)))
        return rc;
    if ((rc = backfill_enqueue(c->conn, c->b, c->queue, &c->req, coll, d, err)))
        return rc;
    c->n.enqueued++;
    progress(c, PW_LOG_INFO, "backfill_collection",
             collection_fields(coll, d, republish ? "republished" : "enqueued"), NULL);
    return track(c, d->run_uuid, err);
}

/* 0, or the error that should stop the backfill (a lost session or broker). */
static int process_collection(struct backfill_cmd *c, const struct collection *coll,
                              struct backfill_item *item, struct pw_error *err)
{
    struct backfill_decision d;
    int rc = item->hash_rc;
    if (rc)
        *err = item->hash_err;
    else
        rc = backfill_decide(c->conn, coll, item, c->a.force, &d, err);
    c->n.considered++;
    if (rc == 0 && d.action == BACKFILL_UP_TO_DATE) {
        c->n.up_to_date++;
        progress(c, PW_LOG_INFO, "backfill_collection", collection_fields(coll, &d, "up_to_date"),
                 NULL);
    } else if (rc == 0 && d.action == BACKFILL_IN_FLIGHT) {
        c->n.in_flight++;
        progress(c, PW_LOG_INFO, "backfill_collection", collection_fields(coll, &d, "in_flight"),
                 NULL);
        rc = track(c, d.run_uuid, err);
    } else if (rc == 0) {
        rc = enqueue(c, coll, &d, err);
    }
    if (rc == 0)
        return 0;
    c->n.failed++;
    progress(c, PW_LOG_ERROR, "backfill_collection_failed",
             json_pack("{s:s, s:s, s:i}", "collection", coll->id, "error", err->msg, "code", rc),
             NULL);
    /* A request the collection cannot hash (say a NaN in its state) fails alone; a lost
     * database session or broker connection stops the backfill. */
    return rc == PW_EINVAL || rc == PW_ENOTFOUND ? 0 : rc;
}

/* ---- the whole backfill -------------------------------------------------------------- */

static int status_matches(const struct collection *coll, const char *status)
{
    return !status || (coll->status && !strcasecmp(coll->status, status));
}

/* --all: one SELECT; --collection: each id, a missing one counted as failed. */
static int select_collections(struct backfill_cmd *c, struct collection **list, size_t *n,
                              struct pw_error *err)
{
    if (c->a.all)
        return collections_list(c->conn, c->a.status, list, n, err);
    *n = 0;
    if (!(*list = calloc(c->a.n_ids, sizeof **list)))
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    for (size_t i = 0; i < c->a.n_ids; i++) {
        int rc = collections_load(c->conn, c->a.ids[i], &(*list)[*n], err);
        if (rc == PW_ENOTFOUND) {
            c->n.failed++;
            progress(
                c, PW_LOG_ERROR, "backfill_collection_failed",
                json_pack("{s:s, s:s}", "collection", c->a.ids[i], "error", "collection not found"),
                NULL);
            continue;
        }
        if (rc)
            return rc;
        if (status_matches(&(*list)[*n], c->a.status))
            (*n)++;
        else
            collections_free(&(*list)[*n]);
    }
    return 0;
}

static int connect_services(struct backfill_cmd *c, struct pw_error *err)
{
    int rc = pg_connect(c->db_url, NULL, &c->conn, err);
    if (rc || c->a.dry_run) /* a dry run writes nothing: no lock, no broker */
        return rc;
    if ((rc = backfill_lock(c->conn, err)))
        return rc;
    struct broker_options bo = {
        .url = c->broker_url,
        .quorum = c->quorum,
        .connect_timeout_ms = 10000,
        .tls_ca_file = getenv("PW_BROKER_CA_FILE"),
    };
    if ((rc = broker_connect(&c->b, &bo, err)) ||
        (rc = broker_declare_queue(c->b, c->queue, bo.quorum, err)))
        return rc;
    return broker_confirm_select(c->b, err);
}

static int run_backfill(struct backfill_cmd *c, struct pw_error *err)
{
    struct collection *list = NULL;
    struct backfill_item *items = NULL;
    size_t n = 0;
    char masked[512];
    int rc;

    if ((rc = connect_services(c, err)) || (rc = select_collections(c, &list, &n, err)))
        goto done;
    if (n && !(items = calloc(n, sizeof *items))) {
        rc = pw_error_set(err, PW_ENOMEM, "out of memory");
        goto done;
    }
    c->n.total = n;
    pg_url_mask(c->db_url, masked, sizeof masked);
    progress(c, PW_LOG_INFO, "backfill_start",
             json_pack("{s:i, s:s, s:s, s:s, s:b, s:b}", "collections", (int)n, "queue", c->queue,
                       "database", masked, "reducer", c->req.reducer, "dry_run", c->a.dry_run,
                       "force", c->a.force),
             NULL);
    if ((rc = backfill_plan(c->conn, &c->req, list, n, items, err)))
        goto done;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = process_collection(c, &list[i], &items[i], err);
    if (rc == 0 && c->a.wait && c->a.dry_run == 0)
        rc = wait_until(c, 0, err);
done:
    free(items);
    collections_free_list(list, n);
    return rc;
}

static void print_summary(struct backfill_cmd *c)
{
    draw_bar(c, 1);
    if (c->tty)
        fprintf(stderr, "\n");
    printf("{\"event\": \"backfill_summary\", \"considered\": %zu, \"up_to_date\": %zu, "
           "\"enqueued\": %zu, \"completed\": %zu, \"failed\": %zu}\n",
           c->n.considered, c->n.up_to_date, c->n.enqueued, c->n.completed, c->n.failed);
    fflush(stdout);
}

/* PROJECTION_QUEUE as `run` reads it; a backfill publishes to the first queue named. */
static void queue_from_env(char *out, size_t cap)
{
    const char *q = getenv("PROJECTION_QUEUE");
    snprintf(out, cap, "%s", q && *q ? q : "celery");
    out[strcspn(out, ",")] = '\0';
}

int cmd_backfill(int argc, char **argv)
{
    struct backfill_cmd c;
    struct pw_error err = {0};
    int rc, status;

    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        }
    memset(&c, 0, sizeof c);
    c.log = (struct pw_log){2, PW_LOG_INFO, NULL};
    if (!(c.a.ids = calloc((size_t)argc, sizeof *c.a.ids)))
        return 1;
    if ((status = parse_args(&c.a, argc, argv)))
        goto out;
    if ((rc = backfill_request_build(&c.a.request, &c.req, &err))) {
        status = usage_error("%s", err.msg);
        goto out;
    }
    c.db_url = getenv("DATABASE_URL");
    c.broker_url = getenv("CELERY_BROKER_URL") ? getenv("CELERY_BROKER_URL")
                                               : "amqp://guest:guest@localhost:5672//";
    if (!c.db_url || !*c.db_url) {
        status = usage_error("%s", "DATABASE_URL is not set");
        goto out;
    }
    queue_from_env(c.queue, sizeof c.queue);
    if (broker_parse_queue_type(getenv("PW_QUEUE_TYPE"), &c.quorum, &err)) {
        status = usage_error("PW_QUEUE_TYPE: %s", err.msg);
        goto out;
    }
    c.tty = isatty(2);
    if (secrets_from_env(&c.secrets, &err) == 0)
        c.log.secrets = &c.secrets;
    rc = run_backfill(&c, &err);
    if (rc)
        progress(&c, PW_LOG_ERROR, "backfill_stopped",
                 json_pack("{s:s, s:i}", "error", err.msg, "code", rc), NULL);
    print_summary(&c);
    status = rc || c.n.failed ? 1 : 0;
out:
    broker_free(c.b);
    pg_close(c.conn);
    backfill_tracker_free(&c.tracker);
    backfill_request_free(&c.req);
    secrets_free(&c.secrets);
    free(c.a.ids);
    return status;
}
