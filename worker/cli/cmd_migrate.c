/* cmd_migrate.c - `projection-worker migrate`: apply migrations/NNNN_name.sql to DATABASE_URL.
 *
 *   projection-worker migrate [--database-url URL] [--migrations-dir DIR]
 *                             [--lock-timeout SECONDS]
 *
 * The SQL embedded at build time is used unless --migrations-dir names a directory.
 * Safe to run from every replica at start-up: an advisory lock serializes migrators and
 * applied versions are skipped.  Logs are JSON lines on stderr; the database URL is
 * always shown with its password masked.  Exit 0 on success, 1 on failure, 2 on usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "commands.h"
#include "migrate.h"
#include "pg.h"
#include "pg_url.h"

struct migrate_cmd {
    char masked_url[512];
};

static void log_line(const struct migrate_cmd *cmd, const char *level, const char *event,
                     json_t *fields /* stolen, may be NULL */)
{
    char ts[40];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(level));
    json_object_set_new(o, "event", json_string(event));
    json_object_set_new(o, "database", json_string(cmd->masked_url));
    if (fields)
        json_object_update(o, fields);
    json_decref(fields);
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text)
        fprintf(stderr, "%s\n", text);
    free(text);
    json_decref(o);
}

static void on_migrate_event(void *ctx, const char *level, const char *event, int version,
                             const char *name)
{
    json_t *f = json_object();
    if (version >= 0)
        json_object_set_new(f, "version", json_integer(version));
    if (name)
        json_object_set_new(f, "name", json_string(name));
    log_line(ctx, level, event, f);
}

static void on_connect_retry(void *ctx, int attempt, int delay_ms, const struct pw_error *why)
{
    log_line(
        ctx, "warning", "database_connect_retry",
        json_pack("{s:i, s:i, s:s}", "attempt", attempt, "delay_ms", delay_ms, "error", why->msg));
}

static void on_notice(void *ctx, const char *message)
{
    log_line(ctx, "debug", "database_notice", json_pack("{s:s}", "message", message));
}

static void usage(FILE *out)
{
    fprintf(out, "usage: projection-worker migrate [--database-url URL] [--migrations-dir DIR]\n"
                 "                                 [--lock-timeout SECONDS]\n"
                 "  --database-url URL     libpq URL (default: $DATABASE_URL)\n"
                 "  --migrations-dir DIR   read NNNN_name.sql files from DIR instead of the\n"
                 "                         copies built into the binary\n"
                 "  --lock-timeout SECONDS wait at most this long for another migrator\n"
                 "                         (default 300; 0 waits forever)\n");
}

int cmd_migrate(int argc, char **argv)
{
    struct migrate_cmd cmd;
    const char *url = getenv("DATABASE_URL"), *dir = NULL;
    int lock_timeout_s = 300, status = 1;
    struct pw_error err = {0};
    struct migration_list list = {0};
    struct migrate_result result = {0, 0};
    PGconn *conn = NULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--database-url") && i + 1 < argc) {
            url = argv[++i];
        } else if (!strncmp(a, "--database-url=", 15)) {
            url = a + 15;
        } else if (!strcmp(a, "--migrations-dir") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strncmp(a, "--migrations-dir=", 17)) {
            dir = a + 17;
        } else if ((!strcmp(a, "--lock-timeout") && i + 1 < argc) ||
                   !strncmp(a, "--lock-timeout=", 15)) {
            const char *v = a[14] == '=' ? a + 15 : argv[++i];
            char *end;
            long t = strtol(v, &end, 10);
            if (*end || t < 0 || t > 86400) {
                fprintf(stderr, "projection-worker migrate: bad --lock-timeout\n");
                return 2;
            }
            lock_timeout_s = (int)t;
        } else {
            fprintf(stderr, "projection-worker migrate: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    pg_url_mask(url, cmd.masked_url, sizeof cmd.masked_url);

    if (dir) {
        if (migrate_load_dir(dir, &list, &err) < 0)
            goto cleanup;
    } else {
        migrate_embedded(&list);
    }
    struct pg_connect_options copt;
    pg_connect_options_default(&copt);
    copt.on_retry = on_connect_retry;
    copt.on_notice = on_notice;
    copt.ctx = &cmd;
    if (pg_connect(url, &copt, &conn, &err) < 0)
        goto cleanup;
    log_line(&cmd, "info", "migrate_start",
             json_pack("{s:i, s:s}", "files", (int)list.count, "source",
                       dir ? "directory" : "embedded"));
    struct migrate_options mopt = {lock_timeout_s * 1000, on_migrate_event, &cmd};
    if (migrate_apply(conn, &list, &mopt, &result, &err) < 0)
        goto cleanup;
    log_line(&cmd, "info", "migrate_done",
             json_pack("{s:i, s:i}", "applied", result.applied, "skipped", result.skipped));
    status = 0;
cleanup:
    if (status != 0)
        log_line(&cmd, "error", "migrate_failed",
                 json_pack("{s:s, s:i}", "error", err.msg, "code", err.code));
    pg_close(conn);
    migrate_list_free(&list);
    return status;
}
