/* advisory_lock.h - the per-request PostgreSQL advisory lock of DESIGN.md step 2.
 *
 * One session-level advisory lock per (collection_id, metadata_hash) serializes the
 * workers that would compute the same projection: the winner computes, the others wait
 * and then find its completed run.  The lock belongs to the connection: it is released
 * by advisory_lock_release() or when the connection closes (a crashed worker never
 * leaves it held).
 *
 * The key is computed client-side so any other program can take the same lock:
 *   key = first 8 bytes, big-endian, signed, of
 *         SHA-256("projection-worker:" collection_id ":" metadata_hash)
 *   Python: int.from_bytes(hashlib.sha256(f"projection-worker:{c}:{h}".encode())
 *                          .digest()[:8], "big", signed=True)
 *
 * Errors: pg.h's codes; PW_ETIMEOUT when acquire() waited timeout_ms in vain;
 * PW_EINVAL when acquire() is called inside an open transaction. */
#ifndef PW_ADVISORY_LOCK_H
#define PW_ADVISORY_LOCK_H

#include <stdint.h>

#include <libpq-fe.h>

#include "pw_error.h"

int advisory_lock_key(const char *collection_id, const char *metadata_hash, int64_t *key_out,
                      struct pw_error *err);

/* Takes the lock if free; *acquired = 1 when taken, 0 when another session holds it. */
int advisory_lock_try(PGconn *conn, int64_t key, int *acquired, struct pw_error *err);

/* Waits up to timeout_ms (0 = forever) for the lock. */
int advisory_lock_acquire(PGconn *conn, int64_t key, int timeout_ms, struct pw_error *err);

/* Releases one hold of the lock; PW_EINTERNAL when this session did not hold it. */
int advisory_lock_release(PGconn *conn, int64_t key, struct pw_error *err);

#endif
