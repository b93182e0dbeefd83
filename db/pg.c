/* pg.c - libpq connections with retry, and statements that report errors safely.
 *
 * Every statement goes through PQexecParams in text mode; results are checked in one
 * place (result_error) so that SQLSTATE classification and message sanitizing are the
 * same for every caller.  Waiting uses nanosleep: this runs on the task's thread, and a
 * connection is not shared between threads. */
#include "pg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg_url.h"

void pg_connect_options_default(struct pg_connect_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->attempts = 6;
    opt->initial_delay_ms = 250;
    opt->max_delay_ms = 5000;
    opt->connect_timeout_s = 10;
    opt->application_name = "projection-worker";
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int pg_sqlstate_code(const char *s)
{
    if (!s || strlen(s) != 5)
        return PW_EIO;
    if (!strncmp(s, "08", 2) || !strcmp(s, "57P01") || !strcmp(s, "57P02") || !strcmp(s, "57P03") ||
        !strcmp(s, "40001") || !strcmp(s, "40P01") || !strcmp(s, "53300"))
        return PW_EUNAVAIL;
    if (!strncmp(s, "28", 2) || !strcmp(s, "42501"))
        return PW_EDENIED;
    if (!strcmp(s, "55P03") || !strcmp(s, "57014"))
        return PW_ETIMEOUT;
    return PW_EIO;
}

int pg_session_lost(PGconn *conn, const struct pw_error *err)
{
    static const char prefix[] = "PostgreSQL ";
    const char *state;

    if (!conn || PQstatus(conn) == CONNECTION_BAD)
        return 1;
    if (!err || err->code != PW_EUNAVAIL || strncmp(err->msg, prefix, sizeof prefix - 1))
        return 0;
    state = err->msg + sizeof prefix - 1; /* result_error's "PostgreSQL SQLSTATE: ..." */
    return !strncmp(state, "08", 2) || !strncmp(state, "57P01", 5) || !strncmp(state, "57P02", 5) ||
           !strncmp(state, "57P03", 5);
}

/* First line of a libpq message, without "FATAL:  " style prefixes handled by libpq. */
static void first_line(char *dst, size_t n, const char *src)
{
    size_t len = src ? strcspn(src, "\n") : 0;
    if (len >= n)
        len = n - 1;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

/* The decoded password of a connection string, to scrub it from libpq's messages. */
static void password_of(const char *url, char *out, size_t n)
{
    char *errmsg = NULL;
    out[0] = '\0';
    PQconninfoOption *opts = PQconninfoParse(url, &errmsg);
    PQfreemem(errmsg);
    if (!opts)
        return;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (!strcmp(o->keyword, "password") && o->val) {
            size_t len = strlen(o->val);
            if (len < n) {
                memcpy(out, o->val, len + 1);
            } else {
                out[0] = '\0';
            }
        }
    PQconninfoFree(opts);
}

/* libpq's default prints notices raw to stderr, which would break JSON-lines logs. */
static void notice_processor(void *arg, const char *message)
{
    const struct pg_connect_options *opt = arg;
    char line[256];
    if (!opt || !opt->on_notice)
        return;
    first_line(line, sizeof line, message);
    opt->on_notice(opt->ctx, line);
}

static int try_connect(const char *url, const struct pg_connect_options *opt, PGconn **out,
                       const char *password, struct pw_error *err)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", opt->connect_timeout_s);
    /* Defaults first: with expand_dbname the URL's own settings override them. */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {timeout, opt->application_name, url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c)
        return pw_error_set(err, PW_ENOMEM, "out of memory creating a PostgreSQL connection");
    if (PQstatus(c) == CONNECTION_OK) {
        /* opt must outlive the connection when it carries on_notice (documented) */
        PQsetNoticeProcessor(c, notice_processor, opt->on_notice ? (void *)opt : NULL);
        *out = c;
        return 0;
    }
    char msg[200];
    first_line(msg, sizeof msg, PQerrorMessage(c));
    pg_url_scrub_secret(msg, password);
    int code = PW_EUNAVAIL;
    if (strstr(msg, "password authentication failed") || strstr(msg, "no password supplied") ||
        strstr(msg, "authentication failed") || PQconnectionNeedsPassword(c))
        code = PW_EDENIED;
    else if (strstr(msg, "does not exist"))
        code = PW_ENOTFOUND; /* database or role missing: retrying will not help */
    PQfinish(c);
    return pw_error_set(err, code, "PostgreSQL connection failed: %s", msg);
}

int pg_connect(const char *url, const struct pg_connect_options *opt, PGconn **out,
               struct pw_error *err)
{
    struct pg_connect_options defaults;
    char password[256], *perr = NULL;
    int rc = 0;
    if (!opt) {
        pg_connect_options_default(&defaults);
        opt = &defaults;
    }
    *out = NULL;
    if (!url || !*url)
        return pw_error_set(err, PW_EINVAL, "no database URL given (set DATABASE_URL)");
    PQconninfoOption *parsed = PQconninfoParse(url, &perr);
    if (!parsed) {
        PQfreemem(perr); /* libpq's text may quote the string: not shown */
        return pw_error_set(err, PW_EINVAL, "database URL is not a valid libpq connection string");
    }
    PQconninfoFree(parsed);
    password_of(url, password, sizeof password);

    int delay = opt->initial_delay_ms;
    for (int attempt = 1;; attempt++) {
        rc = try_connect(url, opt, out, password, err);
        if (rc == 0 || rc != PW_EUNAVAIL || attempt >= opt->attempts)
            break;
        if (opt->on_retry)
            opt->on_retry(opt->ctx, attempt, delay, err);
        sleep_ms(delay);
        delay = delay * 2 > opt->max_delay_ms ? opt->max_delay_ms : delay * 2;
    }
    memset(password, 0, sizeof password);
    return rc;
}

void pg_close(PGconn *conn)
{
    if (conn)
        PQfinish(conn);
}

static int result_error(PGconn *conn, PGresult *res, struct pw_error *err)
{
    char msg[200];
    if (!res) {
        first_line(msg, sizeof msg, PQerrorMessage(conn));
        return pw_error_set(err, PQstatus(conn) == CONNECTION_OK ? PW_EIO : PW_EUNAVAIL,
                            "PostgreSQL: %s", msg[0] ? msg : "no result");
    }
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (!primary)
        first_line(msg, sizeof msg, PQerrorMessage(conn));
    else
        first_line(msg, sizeof msg, primary);
    int code = state ? pg_sqlstate_code(state) : PW_EIO;
    if (PQstatus(conn) != CONNECTION_OK)
        code = PW_EUNAVAIL;
    return pw_error_set(err, code, "PostgreSQL %s: %s", state ? state : "error", msg);
}

int pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
            PGresult **res_out, struct pw_error *err)
{
    if (res_out)
        *res_out = NULL;
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = result_error(conn, res, err);
        PQclear(res);
        return rc;
    }
    if (res_out)
        *res_out = res;
    else
        PQclear(res);
    return 0;
}

int pg_exec_script(PGconn *conn, const char *sql, struct pw_error *err)
{
    PGresult *res = PQexec(conn, sql);
    int rc = 0;
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
            rc = result_error(conn, res, err);
    PQclear(res);
    /* PQexec returns only the last result; an earlier failure aborts the rest and
     * is that last result, so checking it is enough. */
    return rc;
}

char *pg_strdup_value(const PGresult *res, int row, int col, int *nomem)
{
    if (PQgetisnull(res, row, col))
        return NULL;
    char *s = strdup(PQgetvalue(res, row, col));
    if (!s)
        *nomem = 1;
    return s;
}

char *pg_text_array(const char *const *items, size_t n)
{
    size_t cap = 3;
    for (size_t i = 0; i < n; i++)
        cap += 2 * strlen(items[i]) + 3;
    char *out = malloc(cap), *p = out;
    if (!out)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        *p++ = '"';
        for (const char *c = items[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return out;
}

int pg_begin(PGconn *conn, struct pw_error *err)
{
    return pg_exec(conn, "BEGIN", 0, NULL, NULL, err);
}

int pg_commit(PGconn *conn, struct pw_error *err)
{
    PGresult *res = NULL;
    int rc = pg_exec(conn, "COMMIT", 0, NULL, &res, err);
    /* COMMIT of a transaction that already failed succeeds as "ROLLBACK" */
    if (rc == 0 && strcmp(PQcmdStatus(res), "COMMIT") != 0)
        rc = pw_error_set(err, PW_EIO, "PostgreSQL: transaction was rolled back");
    PQclear(res);
    return rc;
}

void pg_rollback(PGconn *conn)
{
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PGresult *res = PQexec(conn, "ROLLBACK");
        PQclear(res);
    }
}
