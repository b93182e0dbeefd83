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

int backfill_decide(PGconn *conn, const struct backfill_request *r, const struct collection *c,
                    int force, struct backfill_decision *d, struct pw_error *err)
{
    struct run_in_flight f;
    int found = 0, rc;

    memset(d, 0, sizeof *d);
    if ((rc = backfill_request_hash(r, c, d->hash, err)))
        return rc;
    if (!force) {
        struct run src;
        if ((rc = runs_find_reusable(conn, c->id, d->hash, NULL, &src, &found, err)))
            return rc;
        if (found) {
            d->action = BACKFILL_UP_TO_DATE;
            snprintf(d->run_uuid, sizeof d->run_uuid, "%s", src.uuid);
            runs_free(&src);
            return 0;
        }
    }
    if ((rc = runs_find_in_flight(conn, c->id, d->hash, &f, &found, err)))
        return rc;
    d->action = BACKFILL_ENQUEUE;
    if (found) {
        d->action = f.unpublished ? BACKFILL_REPUBLISH : BACKFILL_IN_FLIGHT;
        snprintf(d->run_uuid, sizeof d->run_uuid, "%s", f.uuid);
        snprintf(d->operation_uuid, sizeof d->operation_uuid, "%s", f.operation_uuid);
    }
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
    if (rc || (rc = broker_wait_confirms(b, 30000, err)))
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
