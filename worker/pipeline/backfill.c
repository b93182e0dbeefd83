/* backfill.c - one collection's backfill decision and enqueue, and the tracker of the
 * runs it started (see header for the order of writes that makes a crash safe). */
#include "backfill.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "advisory_lock.h"
#include "celery_send.h"
#include "fault.h"
#include "operations.h"
#include "runs.h"

const char *backfill_action_name(enum backfill_action a)
{
    switch (a) {
    case BACKFILL_UP_TO_DATE:
        return "up_to_date";
    case BACKFILL_IN_FLIGHT:
        return "in_flight";
    case BACKFILL_REPUBLISH:
        return "republish";
    case BACKFILL_ENQUEUE:
    default:
        return "enqueue";
    }
}

int backfill_lock(PGconn *conn, struct pw_error *err)
{
    int64_t key;
    int acquired = 0, rc;
    if ((rc = advisory_lock_key("", "backfill", &key, err)) ||
        (rc = advisory_lock_try(conn, key, &acquired, err)))
        return rc;
    return acquired
               ? 0
               : pw_error_set(err, PW_EUNAVAIL, "another backfill is running on this database");
}

#define PLAN_CHUNK 1000
/* How long the broker may take to confirm one message before the backfill stops (the
 * run then stays pending without a task id, and the next backfill republishes it). */
#define CONFIRM_TIMEOUT_MS 30000

int backfill_plan(PGconn *conn, const struct backfill_request *r, const struct collection *list,
                  size_t n, struct backfill_item *items, struct pw_error *err)
{
    const char *ids[PLAN_CHUNK], *hashes[PLAN_CHUNK];
    unsigned char flags[PLAN_CHUNK];
    size_t idx[PLAN_CHUNK];
    int rc;

    for (size_t i = 0; i < n; i++) {
        memset(&items[i], 0, sizeof items[i]);
        items[i].hash_rc = backfill_request_hash(r, &list[i], items[i].hash, &items[i].hash_err);
    }
    for (size_t start = 0; start < n;) {
        size_t k = 0;
        for (; start < n && k < PLAN_CHUNK; start++)
            if (items[start].hash_rc == 0) {
                ids[k] = list[start].id;
                hashes[k] = items[start].hash;
                idx[k++] = start;
            }
        if (k && (rc = runs_hash_presence(conn, ids, hashes, k, flags, err)))
            return rc;
        for (size_t j = 0; j < k; j++)
            items[idx[j]].presence = flags[j];
    }
    return 0;
}

/* The in-flight lookup comes before the reuse lookup: a run moves pending -> running ->
 * completed, so one that was in flight is seen by one of the two even if it completes in
 * between (the other order could miss it in both and enqueue the request twice). */
int backfill_decide(PGconn *conn, const struct collection *c, const struct backfill_item *item,
                    int force, struct backfill_decision *d, struct pw_error *err)
{
    struct run_in_flight f;
    struct run src;
    int in_flight = 0, reusable = 0, rc;

    memset(d, 0, sizeof *d);
    memset(&f, 0, sizeof f);
    snprintf(d->hash, sizeof d->hash, "%s", item->hash);
    if ((item->presence & RUNS_HAS_IN_FLIGHT) &&
        (rc = runs_find_in_flight(conn, c->id, d->hash, &f, &in_flight, err)))
        return rc;
    if (!force && item->presence &&
        (rc = runs_find_reusable(conn, c->id, d->hash, NULL, &src, &reusable, err)))
        return rc;
    if (in_flight && f.unpublished)
        d->action = BACKFILL_REPUBLISH;
    else if (reusable)
        d->action = BACKFILL_UP_TO_DATE;
    else
        d->action = in_flight ? BACKFILL_IN_FLIGHT : BACKFILL_ENQUEUE;
    if (reusable && d->action == BACKFILL_UP_TO_DATE)
        snprintf(d->run_uuid, sizeof d->run_uuid, "%s", src.uuid);
    else if (in_flight) {
        snprintf(d->run_uuid, sizeof d->run_uuid, "%s", f.uuid);
        snprintf(d->operation_uuid, sizeof d->operation_uuid, "%s", f.operation_uuid);
    }
    if (reusable)
        runs_free(&src);
    return 0;
}

/* Step (1): the rows, with new ids. */
static int create_rows(PGconn *conn, const struct backfill_request *r, const struct collection *c,
                       struct backfill_decision *d, struct pw_error *err)
{
    int rc;

    if ((rc = celery_send_new_id(d->run_uuid, err)) ||
        (rc = celery_send_new_id(d->operation_uuid, err)))
        return rc;
    struct run_request req = {d->run_uuid, d->operation_uuid,       c->id,          c->owner_id,
                              r->reducer,  BACKFILL_DIMENSIONALITY, r->config_text, d->hash};
    return runs_create_with_operation(conn, &req, err);
}

int backfill_enqueue(PGconn *conn, struct broker *b, const char *queue,
                     const struct backfill_request *r, const struct collection *c,
                     struct backfill_decision *d, struct pw_error *err)
{
    int rc;

    if (d->action != BACKFILL_ENQUEUE && d->action != BACKFILL_REPUBLISH)
        return pw_error_set(err, PW_EINVAL, "nothing to enqueue for a run that is %s",
                            backfill_action_name(d->action));
    if (d->action == BACKFILL_ENQUEUE && (rc = create_rows(conn, r, c, d, err)))
        return rc;
    pw_fault_point("backfill_rows_committed");
    if ((rc = celery_send_new_id(d->task_id, err)))
        return rc;
    json_t *args = json_pack("[s]", d->run_uuid);
    struct celery_send_task t = {BACKFILL_TASK_NAME, d->task_id, args, NULL, NULL};
    rc = args ? celery_send(b, queue, &t, err) : pw_error_set(err, PW_ENOMEM, "out of memory");
    json_decref(args);
    if (rc || (rc = broker_wait_confirms(b, CONFIRM_TIMEOUT_MS, err)))
        return rc;
    pw_fault_point("backfill_published");
    return operations_set_task_id(conn, d->operation_uuid, d->task_id, err);
}

int backfill_tracker_add(struct backfill_tracker *t, const char *run_uuid, struct pw_error *err)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        void *p = realloc(t->runs, cap * sizeof *t->runs);
        if (!p)
            return pw_error_set(err, PW_ENOMEM, "out of memory");
        t->runs = p;
        t->cap = cap;
    }
    snprintf(t->runs[t->n++], BACKFILL_ID_CAP, "%s", run_uuid);
    return 0;
}

void backfill_tracker_free(struct backfill_tracker *t)
{
    free(t->runs);
    memset(t, 0, sizeof *t);
}

static int is_finished(const char *status)
{
    return !*status || !strcmp(status, "completed") || !strcmp(status, "failed") ||
           !strcmp(status, "cancelled");
}

int backfill_tracker_poll(PGconn *conn, struct backfill_tracker *t,
                          void (*on_finished)(void *ctx, const char *run, const char *status),
                          void *ctx, struct pw_error *err)
{
    if (t->n == 0)
        return 0;
    const char **ids = malloc(t->n * sizeof *ids);
    char(*status)[16] = malloc(t->n * sizeof *status);
    int rc = 0;
    size_t kept = 0;

    if (!ids || !status) {
        rc = pw_error_set(err, PW_ENOMEM, "out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < t->n; i++)
        ids[i] = t->runs[i];
    if ((rc = runs_statuses(conn, ids, t->n, status, err)))
        goto cleanup;
    for (size_t i = 0; i < t->n; i++) {
        if (is_finished(status[i]))
            on_finished(ctx, t->runs[i], status[i]);
        else if (kept != i)
            memcpy(t->runs[kept++], t->runs[i], BACKFILL_ID_CAP);
        else
            kept++;
    }
    t->n = kept;
cleanup:
    free(ids);
    free(status);
    return rc;
}
