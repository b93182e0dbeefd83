/* backfill.h - what a backfill does for one collection, and following what it started.
 *
 * backfill_decide() answers, for one collection and request, what the worker itself
 * would find (after backfill_plan() hashed the request over every collection): UP_TO_DATE when a
 * completed, non-degraded run with the request's metadata hash exists (runs_find_reusable, the
 * lookup the task's reuse step makes - the hash covers the collection's state: embedding model,
 * vector count, updated_at), IN_FLIGHT when a pending or running run with that hash exists (it is
 * not enqueued twice), REPUBLISH when that run is one a backfill created but died before
 * publishing, and ENQUEUE otherwise.  --force skips the UP_TO_DATE answer only.
 *
 * backfill_enqueue() carries an ENQUEUE or REPUBLISH out in this order: (1) the run and
 * its operation, committed (ENQUEUE only); (2) the Celery message
 * webui.tasks.compute_projection args [run uuid], waited for until the broker confirms
 * it; (3) operations.task_id := the message's task id.  A crash before (1) leaves
 * nothing; between (1) and (3) a pending run whose operation has no task_id, which the
 * next backfill finds (REPUBLISH) and publishes instead of creating another run; after
 * (2) a message may be sent twice, which the worker's per-run idempotency absorbs.
 *
 * backfill_lock() takes the session advisory lock that keeps two backfills on one
 * database from both deciding ENQUEUE for a collection before either has committed:
 * key advisory_lock_key("", "backfill"), i.e. SHA-256 of "projection-worker::backfill"
 * (no request's key: collection ids are not empty).
 *
 * backfill_tracker follows the runs a backfill enqueued or found in flight by polling
 * their statuses (one SELECT per poll): --max-in-flight and --wait are built on it.
 *
 * Memory: the tracker owns its array (backfill_tracker_free()); nothing else allocates
 * beyond a call.  Errors: the codes of db/, queue/ and backfill_request.h. */
#ifndef PW_BACKFILL_H
#define PW_BACKFILL_H

#include <stddef.h>

#include <libpq-fe.h>

#include "backfill_request.h"
#include "broker.h"
#include "collections.h"
#include "pw_error.h"

#define BACKFILL_TASK_NAME "webui.tasks.compute_projection"
#define BACKFILL_ID_CAP    64

enum backfill_action {
    BACKFILL_UP_TO_DATE,
    BACKFILL_IN_FLIGHT,
    BACKFILL_REPUBLISH,
    BACKFILL_ENQUEUE
};

struct backfill_decision {
    enum backfill_action action;
    char hash[METADATA_HASH_HEX_LEN + 1];
    char run_uuid[BACKFILL_ID_CAP];       /* the completed, in-flight or new run */
    char operation_uuid[BACKFILL_ID_CAP]; /* REPUBLISH and ENQUEUE */
    char task_id[BACKFILL_ID_CAP];        /* after backfill_enqueue */
};

const char *backfill_action_name(enum backfill_action a);

/* PW_EUNAVAIL when another session holds the backfill lock. */
int backfill_lock(PGconn *conn, struct pw_error *err);

/* The hash of the request over each collection, and (one query per 1000 collections,
 * runs_hash_presence) which of those hashes have completed or in-flight runs at all:
 * the collections with neither are decided without another query.  items[i].hash_rc is
 * the hash's error for collection i (items[i].hash_err says why); it fails alone. */
struct backfill_item {
    char hash[METADATA_HASH_HEX_LEN + 1];
    int presence; /* RUNS_HAS_* flags */
    int hash_rc;
    struct pw_error hash_err;
};
int backfill_plan(PGconn *conn, const struct backfill_request *r, const struct collection *list,
                  size_t n, struct backfill_item *items, struct pw_error *err);

/* The decision for collection c with its planned item. */
int backfill_decide(PGconn *conn, const struct collection *c, const struct backfill_item *item,
                    int force, struct backfill_decision *d, struct pw_error *err);

int backfill_enqueue(PGconn *conn, struct broker *b, const char *queue,
                     const struct backfill_request *r, const struct collection *c,
                     struct backfill_decision *d, struct pw_error *err);

struct backfill_tracker {
    char (*runs)[BACKFILL_ID_CAP];
    size_t n, cap;
};

int backfill_tracker_add(struct backfill_tracker *t, const char *run_uuid, struct pw_error *err);
void backfill_tracker_free(struct backfill_tracker *t);

/* Reads the statuses of the tracked runs once and stops tracking the finished ones,
 * calling on_finished(ctx, run, status) for each: status completed, failed, cancelled,
 * or "" for a run that no longer exists. */
int backfill_tracker_poll(PGconn *conn, struct backfill_tracker *t,
                          void (*on_finished)(void *ctx, const char *run, const char *status),
                          void *ctx, struct pw_error *err);

#endif
