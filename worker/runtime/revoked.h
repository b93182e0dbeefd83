/* revoked.h - the ids of revoked tasks, bounded and expiring like Celery's LimitedSet
 * (celery.worker.state.revoked: at most 50000 ids, each forgotten 10800 s after it was
 * revoked), and optionally kept across restarts in a state file (--statedb).
 *
 * The state file is our own format (Celery's is a Python shelve): one JSON object
 * {"revoked": {"<task id>": <unix time revoked>, ...}, "clock": <Lamport clock>},
 * written to FILE.tmp and renamed over FILE, so a crash leaves the old or the new file,
 * never half of one.  The consumer writes it after every revoke command and at exit
 * (revoked_save); an entry already expired when the file is read is dropped.
 *
 * A struct revoked belongs to the consumer (revoked_create/revoked_free).  Functions
 * return 0 or a negative PW_E* code with err filled (revoked_load: a missing file is
 * not an error; a file that is not ours is PW_EINVAL). */
#ifndef PW_REVOKED_H
#define PW_REVOKED_H

#include <jansson.h>

#include "pw_error.h"

#define REVOKED_MAXLEN    50000
#define REVOKED_EXPIRES_S 10800.0

struct revoked;

int revoked_create(struct revoked **out, const char *statedb, struct pw_error *err);
void revoked_free(struct revoked *r);

/* Adds (or refreshes) id as revoked at unix time `when` (0 = now). */
int revoked_add(struct revoked *r, const char *id, double when);
int revoked_contains(struct revoked *r, const char *id);
/* Merges {"id": time, ...} (a peer's mingle reply or our state file); non-float times
 * are taken as now. */
void revoked_merge(struct revoked *r, json_t *ids);
/* ["id", ...] oldest first, and {"id": time, ...}: new references. */
json_t *revoked_list(struct revoked *r);
json_t *revoked_map(struct revoked *r);

/* The state file (no-op without --statedb); *clock is read back / written with it. */
int revoked_load(struct revoked *r, unsigned long *clock, struct pw_error *err);
int revoked_save(struct revoked *r, unsigned long clock, struct pw_error *err);

#endif
