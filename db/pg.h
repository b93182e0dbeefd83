/* pg.h - PostgreSQL connections and parameterized statements for projection-worker.
 *
 * pg_connect() opens a libpq connection from a URL or key=value string, retrying with
 * exponential backoff while the server is unreachable; authentication failures and bad
 * URLs are not retried.  pg_exec() runs one statement with text parameters through
 * PQexecParams (never string-built SQL) and turns failures into a pw_error.
 *
 * Errors: PW_EINVAL bad URL; PW_EDENIED authentication/permission (SQLSTATE class 28,
 * 42501); PW_EUNAVAIL connection lost or refused, server shutting down, serialization
 * failure or deadlock (retry the transaction); PW_ETIMEOUT lock_timeout or
 * statement_timeout; PW_EIO any other SQL error.  Messages carry the SQLSTATE and the
 * server's primary message only: never the password, never DETAIL lines with row values.
 *
 * Memory: the caller owns the PGconn (pg_close) and each PGresult (PQclear). */
#ifndef PW_PG_H
#define PW_PG_H

#include <libpq-fe.h>

#include "pw_error.h"

struct pg_connect_options {
    int attempts;                 /* total tries; default 6 */
    int initial_delay_ms;         /* first wait between tries; default 250, doubled each time */
    int max_delay_ms;             /* cap on one wait; default 5000 */
    int connect_timeout_s;        /* libpq connect_timeout unless the URL sets one; default 10 */
    const char *application_name; /* default "projection-worker" unless the URL sets one */
    /* Called before each wait, with the reason of the failed try; may be NULL. */
    void (*on_retry)(void *ctx, int attempt, int delay_ms, const struct pw_error *why);
    /* Receives server NOTICE/WARNING text (one line) instead of libpq printing it to
     * stderr; NULL drops them.  When set, *opt must outlive the connection. */
    void (*on_notice)(void *ctx, const char *message);
    void *ctx;
};

void pg_connect_options_default(struct pg_connect_options *opt);

/* Opens *out.  opt may be NULL for the defaults. */
int pg_connect(const char *url, const struct pg_connect_options *opt, PGconn **out,
               struct pw_error *err);

void pg_close(PGconn *conn);

/* Runs sql with nparams text parameters (NULL entries are SQL NULL).  On success and
 * when res_out is non-NULL, *res_out holds the result (PQclear it); otherwise the result
 * is cleared here. */
int pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
            PGresult **res_out, struct pw_error *err);

/* Runs a script of several statements without parameters (migrations only: the text is
 * ours, embedded at build time). */
int pg_exec_script(PGconn *conn, const char *sql, struct pw_error *err);

int pg_begin(PGconn *conn, struct pw_error *err);
int pg_commit(PGconn *conn, struct pw_error *err);
/* Best effort; keeps err untouched so the error that caused the rollback survives. */
void pg_rollback(PGconn *conn);

/* SQL for a timestamptz column as exact integer microseconds since the Unix epoch, on
 * every PostgreSQL version (extract() returned double before 14): whole seconds of the
 * truncated value plus the microsecond part of the seconds field. */
#define PG_EPOCH_US(col)                                                                           \
    "(extract(epoch from date_trunc('second', " col "))::bigint * 1000000 + "                      \
    "extract(microseconds from " col ")::bigint % 1000000)"

/* Copies column c of row 0 into a malloc'd string; NULL when SQL NULL (or no memory:
 * *nomem is then set). */
char *pg_strdup_value(const PGresult *res, int row, int col, int *nomem);

/* items[0..n) as the text of a PostgreSQL array literal ({"a","b\"c"}), every element
 * double-quoted with '"' and '\' escaped, for one parameter cast to text[]:
 * `= ANY($1::text[])`, `unnest($1::text[], $2::text[])`.  malloc'd (free()); NULL when
 * out of memory. */
char *pg_text_array(const char *const *items, size_t n);

/* 1 when err (from a call on conn) means the session itself is gone: libpq reports the
 * connection bad, or the server said connection exception (SQLSTATE class 08) or admin
 * shutdown (57P01, 57P02, 57P03).  Whatever the session held (advisory locks, an open
 * transaction) went with it; a new connection is needed. */
int pg_session_lost(PGconn *conn, const struct pw_error *err);

/* Maps a SQLSTATE to a PW_E* code as described above. */
int pg_sqlstate_code(const char *sqlstate);

#endif
