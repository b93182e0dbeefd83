/* migrate.c - the migrations runner (see migrate.h).
 *
 * Concurrency: a session-level advisory lock on MIGRATE_LOCK_KEY is held from before the
 * bookkeeping table is created until every file is applied, so N replicas started at
 * once apply each file exactly once and the others find the versions recorded.  Each
 * file runs in its own transaction together with its record, so a crash leaves either
 * both or neither.  The SQL files are idempotent as well (DESIGN.md), which makes a lost
 * record harmless. */
#include "migrate.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "pg.h"

/* Generated at build time from migrations/NNNN_name.sql (db/embed_migrations.cmake). */
extern const struct migration migrate_embedded_items[];
extern const size_t migrate_embedded_count;

void migrate_embedded(struct migration_list *out)
{
    out->items = (struct migration *)migrate_embedded_items;
    out->count = migrate_embedded_count;
    out->owned = 0;
}

int migrate_parse_filename(const char *file, int *version, char *name, size_t namesz)
{
    size_t digits = strspn(file, "0123456789");
    size_t len = strlen(file);
    if (digits == 0 || digits > 9 || file[digits] != '_' || len < digits + 6 ||
        strcmp(file + len - 4, ".sql") != 0)
        return PW_EINVAL;
    size_t nlen = len - digits - 1 - 4;
    if (nlen == 0 || nlen >= namesz)
        return PW_EINVAL;
    *version = atoi(file);
    memcpy(name, file + digits + 1, nlen);
    name[nlen] = '\0';
    return 0;
}

void migrate_list_free(struct migration_list *list)
{
    if (!list || !list->owned)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free((char *)list->items[i].name);
        free((char *)list->items[i].sql);
    }
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)len + 1);
        if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        } else if (buf) {
            buf[len] = '\0';
        }
    }
    fclose(f);
    return buf;
}

static int by_version(const void *a, const void *b)
{
    int x = ((const struct migration *)a)->version, y = ((const struct migration *)b)->version;
    return (x > y) - (x < y);
}

int migrate_load_dir(const char *dir, struct migration_list *out, struct pw_error *err)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = 0;
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    out->owned = 1;
    if (!d)
        return pw_error_set(err, PW_ENOTFOUND, "cannot open migrations directory %s", dir);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char name[256], path[4096];
        int version;
        if (len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        if (migrate_parse_filename(e->d_name, &version, name, sizeof name) < 0) {
            rc = pw_error_set(err, PW_EINVAL, "migration file %s is not named NNNN_name.sql",
                              e->d_name);
            goto cleanup;
        }
        if (out->count == cap) {
            cap = cap ? cap * 2 : 8;
            struct migration *items = realloc(out->items, cap * sizeof *items);
            if (!items) {
                rc = pw_error_set(err, PW_ENOMEM, "out of memory");
                goto cleanup;
            }
            out->items = items;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct migration *m = &out->items[out->count];
        m->version = version;
        m->name = strdup(name);
        m->sql = read_file(path);
        out->count++;
        if (!m->name || !m->sql) {
            rc = pw_error_set(err, PW_EIO, "cannot read migration %s", path);
            goto cleanup;
        }
    }
    if (out->count)
        qsort(out->items, out->count, sizeof *out->items, by_version);
    for (size_t i = 1; i < out->count; i++)
        if (out->items[i].version == out->items[i - 1].version) {
            rc = pw_error_set(err, PW_EINVAL, "two migration files have version %d",
                              out->items[i].version);
            goto cleanup;
        }
cleanup:
    closedir(d);
    if (rc < 0)
        migrate_list_free(out);
    return rc;
}

static int sha256_hex(const char *s, char hex[65], struct pw_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        return pw_error_set(err, PW_EINTERNAL, "SHA-256 failed in libcrypto");
    for (unsigned int i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

static void log_event(const struct migrate_options *opt, const char *level, const char *event,
                      const struct migration *m)
{
    if (opt && opt->log)
        opt->log(opt->ctx, level, event, m ? m->version : -1, m ? m->name : NULL);
}

static int take_lock(PGconn *conn, const struct migrate_options *opt, struct pw_error *err)
{
    char key[32], timeout[32];
    PGresult *res = NULL;
    snprintf(key, sizeof key, "%lld", (long long)MIGRATE_LOCK_KEY);
    snprintf(timeout, sizeof timeout, "%dms", opt ? opt->lock_timeout_ms : 0);
    const char *p_timeout[] = {timeout};
    const char *p_key[] = {key};
    /* lock_timeout also bounds the DDL's waits for table locks held by the app */
    int rc = pg_exec(conn, "SELECT set_config('lock_timeout', $1, false)", 1, p_timeout, NULL, err);
    if (rc < 0)
        return rc;
    rc = pg_exec(conn, "SELECT pg_try_advisory_lock($1::bigint)", 1, p_key, &res, err);
    if (rc < 0)
        return rc;
    int got = !strcmp(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    if (got)
        return 0;
    log_event(opt, "info", "migration_lock_wait", NULL);
    rc = pg_exec(conn, "SELECT pg_advisory_lock($1::bigint)", 1, p_key, NULL, err);
    if (rc == PW_ETIMEOUT)
        pw_error_set(err, PW_ETIMEOUT, "another migrator held the migration lock for %d ms",
                     opt->lock_timeout_ms);
    return rc;
}

/* Leaves the session as it was: no transaction, no lock, default lock_timeout. */
static void release_lock(PGconn *conn, int locked)
{
    char key[32];
    const char *p_key[] = {key};
    snprintf(key, sizeof key, "%lld", (long long)MIGRATE_LOCK_KEY);
    pg_rollback(conn);
    if (locked)
        pg_exec(conn, "SELECT pg_advisory_unlock($1::bigint)", 1, p_key, NULL, NULL);
    pg_exec(conn, "RESET lock_timeout", 0, NULL, NULL, NULL);
}

/* The recorded checksum of version v, or NULL when v was never applied. */
static const char *recorded_checksum(PGresult *applied, int v)
{
    for (int i = 0; i < PQntuples(applied); i++)
        if (atoi(PQgetvalue(applied, i, 0)) == v)
            return PQgetvalue(applied, i, 1);
    return NULL;
}

static int apply_one(PGconn *conn, const struct migration *m, const char *checksum,
                     struct pw_error *err)
{
    char version[16];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[] = {version, m->name, checksum};
    int rc = pg_begin(conn, err);
    if (rc == 0)
        rc = pg_exec_script(conn, m->sql, err);
    if (rc == 0)
        rc = pg_exec(conn,
                     "INSERT INTO projection_worker_migrations (version, name, checksum) "
                     "VALUES ($1::integer, $2, $3)",
                     3, params, NULL, err);
    if (rc == 0)
        rc = pg_commit(conn, err);
    if (rc < 0) {
        pg_rollback(conn);
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        pw_error_set(err, rc, "migration %04d_%s failed: %s", m->version, m->name, why);
    }
    return rc;
}

int migrate_apply(PGconn *conn, const struct migration_list *list,
                  const struct migrate_options *opt, struct migrate_result *result,
                  struct pw_error *err)
{
    PGresult *applied = NULL;
    int locked = 0, rc;
    struct migrate_result r = {0, 0};

    if ((rc = take_lock(conn, opt, err)) < 0)
        goto cleanup;
    locked = 1;
    rc = pg_exec(conn,
                 "CREATE TABLE IF NOT EXISTS projection_worker_migrations ("
                 " version integer PRIMARY KEY,"
                 " name text NOT NULL,"
                 " checksum text NOT NULL,"
                 " applied_at timestamp with time zone NOT NULL DEFAULT now())",
                 0, NULL, NULL, err);
    if (rc < 0)
        goto cleanup;
    rc = pg_exec(conn, "SELECT version, checksum FROM projection_worker_migrations", 0, NULL,
                 &applied, err);
    if (rc < 0)
        goto cleanup;
    for (size_t i = 0; i < list->count; i++) {
        const struct migration *m = &list->items[i];
        char checksum[65];
        if ((rc = sha256_hex(m->sql, checksum, err)) < 0)
            goto cleanup;
        const char *recorded = recorded_checksum(applied, m->version);
        if (recorded) {
            r.skipped++;
            if (strcmp(recorded, checksum) != 0)
                log_event(opt, "warning", "migration_checksum_mismatch", m);
            else
                log_event(opt, "debug", "migration_skipped", m);
            continue;
        }
        if ((rc = apply_one(conn, m, checksum, err)) < 0)
            goto cleanup;
        r.applied++;
        log_event(opt, "info", "migration_applied", m);
    }
cleanup:
    PQclear(applied);
    release_lock(conn, locked);
    if (result)
        *result = r;
    return rc;
}
