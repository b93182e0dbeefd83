/* test_db_access.c - db/ against a real PostgreSQL (tests/harness/services.sh).
 *
 * Creates its own database (unique name), applies the embedded migrations to it, and
 * checks the access layer the task pipeline uses: loading runs and collections, the
 * advisory lock, the reuse lookup, status transitions and progress.  Drops the database
 * at the end.  Usage: test_db_access (reads $PW_SERVICES_ENV). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "advisory_lock.h"
#include "collections.h"
#include "metadata_hash.h"
#include "migrate.h"
#include "operations.h"
#include "pg.h"
#include "pw_test.h"
#include "runs.h"

static char g_url[512];
static PGconn *g_conn;

/* Test fixtures only: plain SQL text written here, no outside input. */
static void sql(const char *q)
{
    PGresult *r = PQexec(g_conn, q);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "setup SQL failed: %s\n%s\n", PQerrorMessage(g_conn), q);
        exit(2);
    }
    PQclear(r);
}

static char *sql_value(const char *q)
{
    static char buf[4096];
    PGresult *r = PQexec(g_conn, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fprintf(stderr, "query failed: %s\n%s\n", PQerrorMessage(g_conn), q);
        exit(2);
    }
    snprintf(buf, sizeof buf, "%s", PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
    PQclear(r);
    return buf;
}

static PGconn *connect_or_die(void)
{
    PGconn *c = NULL;
    struct pw_error err = {0};
    if (pg_connect(g_url, NULL, &c, &err) < 0) {
        fprintf(stderr, "connect: %s\n", err.msg);
        exit(2);
    }
    return c;
}

static void seed_collection(const char *id)
{
    char q[1024];
    snprintf(q, sizeof q,
             "INSERT INTO collections (id, name, owner_id, vector_store_name, embedding_model,"
             " vector_count, updated_at) VALUES ('%s', 'name-%s', 1, 'qdrant_%s',"
             " 'sentence-transformers/all-MiniLM-L6-v2', 7081780,"
             " '2024-06-03T06:46:46.040559+00:00')",
             id, id, id);
    sql(q);
}

/* A run with an operation; status and meta as given. */
static void seed_run(const char *uuid, const char *collection, const char *status, const char *hash,
                     const char *meta)
{
    char q[2048];
    snprintf(q, sizeof q,
             "INSERT INTO operations (uuid, collection_id, user_id, type, status, config)"
             " VALUES ('op-%s', '%s', 1, 'projection_build', 'pending', '{}');"
             "INSERT INTO projection_runs (uuid, collection_id, operation_uuid, status,"
             " dimensionality, reducer, config, meta, metadata_hash, completed_at)"
             " VALUES ('%s', '%s', 'op-%s', '%s', 2, 'UMAP',"
             " '{\"n_neighbors\": 61, \"min_dist\": 0.5, \"metric\": \"euclidean\","
             " \"color_by\": \"source_dir\", \"sample_size\": \"abc\", \"sample_limit\": null}',"
             " %s, %s, CASE WHEN '%s' = 'completed' THEN now() END)",
             uuid, collection, uuid, collection, uuid, status, meta ? meta : "NULL",
             hash ? hash : "NULL", status);
    sql(q);
}

static void test_loads_run_with_all_fields(void)
{
    struct run r;
    struct pw_error err = {0};
    seed_collection("c1");
    seed_run("run-load", "c1", "pending", "'abc'", "'{\"k\": 1}'");
    CHECK(runs_load(g_conn, "run-load", &r, &err) == 0);
    CHECK_STR(r.uuid, "run-load");
    CHECK_STR(r.collection_id, "c1");
    CHECK_STR(r.operation_uuid, "op-run-load");
    CHECK_STR(r.status, "pending");
    CHECK(r.dimensionality == 2);
    CHECK_STR(r.reducer, "UMAP");
    CHECK(r.storage_path == NULL);
    CHECK(r.point_count == -1);
    CHECK(r.config_json && strstr(r.config_json, "\"n_neighbors\": 61"));
    CHECK_STR(r.meta_json, "{\"k\": 1}");
    CHECK_STR(r.metadata_hash, "abc");
    CHECK(r.id > 0 && r.created_at_us > 1700000000000000LL);
    runs_free(&r);
}

static void test_load_missing_run_is_not_found(void)
{
    struct run r;
    struct pw_error err = {0};
    CHECK(runs_load(g_conn, "no-such-run", &r, &err) == PW_ENOTFOUND);
}

static void test_loads_collection_updated_at_as_exact_microseconds(void)
{
    struct collection c;
    struct pw_error err = {0};
    /* a session time zone with a 45-minute offset must not change the instant */
    sql("SET TimeZone = 'Asia/Kathmandu'");
    CHECK(collections_load(g_conn, "c1", &c, &err) == 0);
    CHECK_STR(c.name, "name-c1");
    CHECK_STR(c.vector_store_name, "qdrant_c1");
    CHECK_STR(c.embedding_model, "sentence-transformers/all-MiniLM-L6-v2");
    CHECK(c.vector_count == 7081780);
    /* Python: epoch_micros(datetime.fromisoformat("2024-06-03T06:46:46.040559+00:00")) */
    CHECK(c.updated_at_us == 1717397206040559LL);
    collections_free(&c);
    sql("INSERT INTO collections (id, name, owner_id, vector_store_name, embedding_model,"
        " updated_at) VALUES ('old', 'old', 1, 'q_old', 'm', '1969-12-31T23:59:59.999999Z')");
    CHECK(collections_load(g_conn, "old", &c, &err) == 0);
    CHECK(c.updated_at_us == -1);
    collections_free(&c);
    sql("RESET TimeZone");
    CHECK(collections_load(g_conn, "missing", &c, &err) == PW_ENOTFOUND);
}

/* Published vector case 1 stored as the API stores it reproduces its hash. */
static void test_hash_from_database_rows_matches_published_vector(void)
{
    struct run r;
    struct collection c;
    struct pw_error err = {0};
    char *canon = NULL, hex[METADATA_HASH_HEX_LEN + 1] = "";
    CHECK(runs_load(g_conn, "run-load", &r, &err) == 0);
    CHECK(collections_load(g_conn, r.collection_id, &c, &err) == 0);
    struct metadata_hash_input in = {r.collection_id, r.reducer,         r.dimensionality,
                                     r.config_json,   c.embedding_model, c.vector_count,
                                     c.updated_at_us};
    CHECK(metadata_hash_compute(&in, &canon, hex, &err) == 0);
    CHECK_STR(hex, "5be09199bfca5b2ff538cbec93ed31bd66f6de63d6e84ab863828e1307aeba67");
    free(canon);
    runs_free(&r);
    collections_free(&c);
}

static void test_advisory_lock_key_follows_documented_formula(void)
{
    int64_t key = 0;
    struct pw_error err = {0};
    CHECK(advisory_lock_key("c1", "ab", &key, &err) == 0);
    /* int.from_bytes(sha256(b"projection-worker:c1:ab").digest()[:8], "big", signed=True) */
    CHECK(key == 1134749677347823798LL);
}

static void test_advisory_lock_excludes_other_sessions_until_released(void)
{
    PGconn *other = connect_or_die();
    struct pw_error err = {0};
    int64_t key;
    int got = -1;
    advisory_lock_key("c1", "hash-x", &key, &err);
    CHECK(advisory_lock_try(g_conn, key, &got, &err) == 0 && got == 1);
    CHECK(advisory_lock_try(other, key, &got, &err) == 0 && got == 0);
    CHECK(advisory_lock_acquire(other, key, 100, &err) == PW_ETIMEOUT);
    CHECK(PQtransactionStatus(other) == PQTRANS_IDLE);
    CHECK(advisory_lock_release(g_conn, key, &err) == 0);
    CHECK(advisory_lock_acquire(other, key, 1000, &err) == 0);
    CHECK(advisory_lock_try(g_conn, key, &got, &err) == 0 && got == 0);
    CHECK(advisory_lock_release(other, key, &err) == 0);
    CHECK(advisory_lock_release(other, key, &err) == PW_EINTERNAL);
    pg_close(other);
}

static void test_advisory_lock_is_released_when_its_connection_closes(void)
{
    PGconn *holder = connect_or_die();
    struct pw_error err = {0};
    int64_t key;
    int got = -1;
    advisory_lock_key("c1", "hash-y", &key, &err);
    CHECK(advisory_lock_try(holder, key, &got, &err) == 0 && got == 1);
    pg_close(holder);
    /* the server notices the closed socket promptly; wait for it with the lock call */
    CHECK(advisory_lock_acquire(g_conn, key, 5000, &err) == 0);
    CHECK(advisory_lock_release(g_conn, key, &err) == 0);
}

static void test_finds_newest_completed_non_degraded_run_with_same_hash(void)
{
    struct run r;
    struct pw_error err = {0};
    int found = -1;
    seed_collection("c2");
    seed_collection("c3");
    seed_run("reuse-old", "c2", "completed", "'h1'", "'{}'");
    seed_run("reuse-good", "c2", "completed", "'h1'", "'{\"degraded\": false}'");
    seed_run("reuse-degraded", "c2", "completed", "'h1'", "'{\"degraded\": true}'");
    seed_run("reuse-degraded-artifacts", "c2", "completed", "'h1'",
             "'{\"projection_artifacts\": {\"degraded\": 1}}'");
    seed_run("reuse-failed", "c2", "failed", "'h1'", "NULL");
    seed_run("reuse-running", "c2", "running", "'h1'", "NULL");
    seed_run("reuse-other-hash", "c2", "completed", "'h2'", "NULL");
    seed_run("reuse-other-collection", "c3", "completed", "'h1'", "NULL");
    sql("UPDATE projection_runs SET completed_at = now() - interval '1 hour'"
        " WHERE uuid = 'reuse-old'");
    CHECK(runs_find_reusable(g_conn, "c2", "h1", "reuse-running", &r, &found, &err) == 0);
    CHECK(found == 1);
    CHECK_STR(r.uuid, "reuse-good");
    runs_free(&r);
    /* excluding the newest one leaves the older good run */
    CHECK(runs_find_reusable(g_conn, "c2", "h1", "reuse-good", &r, &found, &err) == 0);
    CHECK(found == 1);
    CHECK_STR(r.uuid, "reuse-old");
    runs_free(&r);
}

static void test_degraded_runs_are_never_reused(void)
{
    struct run r;
    struct pw_error err = {0};
    int found = -1;
    seed_collection("c4");
    seed_run("deg-1", "c4", "completed", "'h'", "'{\"degraded\": \"yes\"}'");
    seed_run("deg-2", "c4", "completed", "'h'",
             "'{\"projection_artifacts\": {\"degraded\": [0]}}'");
    CHECK(runs_find_reusable(g_conn, "c4", "h", NULL, &r, &found, &err) == 0);
    CHECK(found == 0);
}

static void test_mark_running_sets_started_at_and_operation_processing(void)
{
    struct pw_error err = {0};
    char st[32];
    seed_collection("c5");
    seed_run("run-start", "c5", "pending", "NULL", "NULL");
    CHECK(runs_mark_running(g_conn, "run-start", &err) == 0);
    CHECK_STR(sql_value("SELECT status || ' ' || (started_at IS NOT NULL) FROM projection_runs"
                        " WHERE uuid = 'run-start'"),
              "running true");
    CHECK(operations_get_status(g_conn, "op-run-start", st, sizeof st, &err) == 0);
    CHECK_STR(st, "processing");
    /* a redelivery finds it running and may start it again; started_at is kept */
    char *first =
        strdup(sql_value("SELECT started_at FROM projection_runs WHERE uuid = 'run-start'"));
    CHECK(runs_mark_running(g_conn, "run-start", &err) == 0);
    CHECK_STR(sql_value("SELECT started_at FROM projection_runs WHERE uuid = 'run-start'"), first);
    free(first);
}

static void test_mark_completed_updates_run_and_operation_together(void)
{
    struct pw_error err = {0};
    char st[32];
    seed_run("run-done", "c5", "running", "'old'", "'{\"keep\": 1, \"color_by\": \"x\"}'");
    struct run_completion c = {"semantik/projections/c5/run-done", 1234,
                               "{\"color_by\": \"filetype\", \"shown_count\": 1234}", "newhash",
                               NULL};
    CHECK(runs_mark_completed(g_conn, "run-done", &c, &err) == 0);
    CHECK_STR(sql_value("SELECT concat_ws(' ', status, storage_path, point_count, metadata_hash,"
                        " completed_at IS NOT NULL, error_message IS NULL)"
                        " FROM projection_runs WHERE uuid = 'run-done'"),
              "completed semantik/projections/c5/run-done 1234 newhash t t");
    /* shallow merge: untouched keys kept, patched keys replaced */
    CHECK_STR(sql_value("SELECT meta::jsonb = '{\"keep\": 1, \"color_by\": \"filetype\","
                        " \"shown_count\": 1234}'::jsonb FROM projection_runs"
                        " WHERE uuid = 'run-done'"),
              "t");
    CHECK(operations_get_status(g_conn, "op-run-done", st, sizeof st, &err) == 0);
    CHECK_STR(st, "completed");
}

static void test_completing_a_finished_run_is_refused_and_changes_nothing(void)
{
    struct pw_error err = {0};
    struct run_completion c = {"other/path", 1, NULL, NULL, NULL};
    CHECK(runs_mark_completed(g_conn, "run-done", &c, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "completed") != NULL);
    CHECK(runs_mark_failed(g_conn, "run-done", "late failure", &err) == PW_EINVAL);
    CHECK_STR(sql_value("SELECT status || ' ' || storage_path FROM projection_runs"
                        " WHERE uuid = 'run-done'"),
              "completed semantik/projections/c5/run-done");
    CHECK(runs_mark_running(g_conn, "no-such-run", &err) == PW_ENOTFOUND);
}

/* If the operation's update fails, the run's completion is rolled back with it. */
static void test_completion_is_one_transaction_with_the_operation(void)
{
    struct pw_error err = {0};
    seed_run("run-atomic", "c5", "running", "NULL", "NULL");
    sql("CREATE FUNCTION pw_test_refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$;"
        "CREATE TRIGGER pw_test_refuse BEFORE UPDATE ON operations FOR EACH ROW"
        " WHEN (OLD.uuid = 'op-run-atomic') EXECUTE FUNCTION pw_test_refuse()");
    struct run_completion c = {"p", 5, NULL, "h", NULL};
    CHECK(runs_mark_completed(g_conn, "run-atomic", &c, &err) < 0);
    CHECK(PQtransactionStatus(g_conn) == PQTRANS_IDLE);
    CHECK_STR(sql_value("SELECT status || ' ' || coalesce(storage_path, '-') FROM projection_runs"
                        " WHERE uuid = 'run-atomic'"),
              "running -");
    sql("DROP TRIGGER pw_test_refuse ON operations; DROP FUNCTION pw_test_refuse()");
}

static void test_mark_failed_stores_sanitized_message_on_run_and_operation(void)
{
    struct pw_error err = {0};
    seed_run("run-fail", "c5", "running", "NULL", "NULL");
    CHECK(runs_mark_failed(g_conn, "run-fail",
                           "qdrant down\nwhile using postgresql://pw:pw-test-secret@db/x",
                           &err) == 0);
    CHECK_STR(sql_value("SELECT status || '|' || error_message FROM projection_runs"
                        " WHERE uuid = 'run-fail'"),
              "failed|qdrant down while using postgresql://pw:***@db/x");
    CHECK_STR(sql_value("SELECT status || '|' || error_message FROM operations"
                        " WHERE uuid = 'op-run-fail'"),
              "failed|qdrant down while using postgresql://pw:***@db/x");
}

static void test_mark_cancelled_moves_run_and_operation(void)
{
    struct pw_error err = {0};
    char st[32];
    seed_run("run-cancel", "c5", "running", "NULL", "NULL");
    CHECK(runs_mark_cancelled(g_conn, "run-cancel", "revoked", &err) == 0);
    CHECK_STR(sql_value("SELECT status FROM projection_runs WHERE uuid = 'run-cancel'"),
              "cancelled");
    CHECK(operations_get_status(g_conn, "op-run-cancel", st, sizeof st, &err) == 0);
    CHECK_STR(st, "cancelled");
}

static void test_progress_is_merged_into_meta_only_while_running(void)
{
    struct pw_error err = {0};
    seed_run("run-progress", "c5", "running", "NULL", "'{\"a\": 1}'");
    CHECK(runs_update_progress(g_conn, "run-progress", "{\"progress\": {\"stage\": \"fetch\"}}",
                               &err) == 0);
    CHECK(runs_update_progress(g_conn, "run-progress", "{\"progress\": {\"stage\": \"reduce\"}}",
                               &err) == 0);
    CHECK_STR(sql_value("SELECT meta::jsonb = '{\"a\": 1, \"progress\": {\"stage\": \"reduce\"}}'"
                        "::jsonb FROM projection_runs WHERE uuid = 'run-progress'"),
              "t");
    CHECK(runs_update_progress(g_conn, "run-progress", "[1]", &err) == PW_EINVAL);
    CHECK(runs_update_progress(g_conn, "run-done", "{\"x\": 1}", &err) == PW_EINVAL);
}

static void test_storing_a_new_hash_keeps_the_requested_one_in_meta(void)
{
    struct pw_error err = {0};
    seed_run("run-hash", "c5", "pending", "'requested'", "'{\"a\": 1}'");
    seed_run("run-nohash", "c5", "pending", "NULL", "NULL");
    CHECK(runs_store_metadata_hash(g_conn, "run-hash", "recomputed", &err) == 0);
    CHECK_STR(sql_value("SELECT metadata_hash || ' ' || (meta->>'requested_metadata_hash')"
                        " || ' ' || (meta->>'a') FROM projection_runs WHERE uuid = 'run-hash'"),
              "recomputed requested 1");
    CHECK(runs_store_metadata_hash(g_conn, "run-nohash", "fresh", &err) == 0);
    CHECK_STR(sql_value("SELECT metadata_hash || ' ' || (meta IS NULL) FROM projection_runs"
                        " WHERE uuid = 'run-nohash'"),
              "fresh true");
}

static void test_connect_retries_unreachable_server_then_fails_without_password(void)
{
    struct pg_connect_options opt;
    struct pw_error err = {0};
    PGconn *c = NULL;
    pg_connect_options_default(&opt);
    opt.attempts = 2;
    opt.initial_delay_ms = 10;
    CHECK(pg_connect("postgresql://pw:pw-test-secret@127.0.0.1:1/pw", &opt, &c, &err) ==
          PW_EUNAVAIL);
    CHECK(c == NULL);
    CHECK(strstr(err.msg, "pw-test-secret") == NULL);
}

static void test_connect_with_wrong_password_is_denied(void)
{
    struct pw_error err = {0};
    PGconn *c = NULL;
    char bad[600];
    const char *at = strchr(g_url, '@');
    snprintf(bad, sizeof bad, "postgresql://pw:not-the-password%s", at);
    CHECK(pg_connect(bad, NULL, &c, &err) == PW_EDENIED);
    CHECK(strstr(err.msg, "not-the-password") == NULL);
}

/* Reads DATABASE_URL from $PW_SERVICES_ENV (shell syntax KEY=VALUE). */
static int services_database_url(char *out, size_t n)
{
    const char *path = getenv("PW_SERVICES_ENV");
    FILE *f = path ? fopen(path, "r") : NULL;
    char line[1024];
    int found = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "DATABASE_URL=", 13)) {
            line[strcspn(line, "\r\n")] = '\0';
            snprintf(out, n, "%.*s", (int)(n - 1), line + 13);
            found = 1;
        }
    fclose(f);
    return found ? 0 : -1;
}

int main(void)
{
    char admin_url[512], dbname[64], q[256];
    struct pw_error err = {0};
    if (services_database_url(admin_url, sizeof admin_url) < 0) {
        fprintf(stderr, "no DATABASE_URL in $PW_SERVICES_ENV\n");
        return 2;
    }
    PGconn *admin = NULL;
    if (pg_connect(admin_url, NULL, &admin, &err) < 0) {
        fprintf(stderr, "connect: %s\n", err.msg);
        return 2;
    }
    snprintf(dbname, sizeof dbname, "pwt_db_access_%ld", (long)getpid());
    snprintf(q, sizeof q, "CREATE DATABASE %s", dbname);
    PQclear(PQexec(admin, q));
    snprintf(g_url, sizeof g_url, "%.*s/%s", (int)(strrchr(admin_url, '/') - admin_url), admin_url,
             dbname);
    g_conn = connect_or_die();
    struct migration_list list;
    migrate_embedded(&list);
    if (migrate_apply(g_conn, &list, NULL, NULL, &err) < 0) {
        fprintf(stderr, "migrate: %s\n", err.msg);
        return 2;
    }

    RUN(test_loads_run_with_all_fields);
    RUN(test_load_missing_run_is_not_found);
    RUN(test_loads_collection_updated_at_as_exact_microseconds);
    RUN(test_hash_from_database_rows_matches_published_vector);
    RUN(test_advisory_lock_key_follows_documented_formula);
    RUN(test_advisory_lock_excludes_other_sessions_until_released);
    RUN(test_advisory_lock_is_released_when_its_connection_closes);
    RUN(test_finds_newest_completed_non_degraded_run_with_same_hash);
    RUN(test_degraded_runs_are_never_reused);
    RUN(test_mark_running_sets_started_at_and_operation_processing);
    RUN(test_mark_completed_updates_run_and_operation_together);
    RUN(test_completing_a_finished_run_is_refused_and_changes_nothing);
    RUN(test_completion_is_one_transaction_with_the_operation);
    RUN(test_mark_failed_stores_sanitized_message_on_run_and_operation);
    RUN(test_mark_cancelled_moves_run_and_operation);
    RUN(test_progress_is_merged_into_meta_only_while_running);
    RUN(test_storing_a_new_hash_keeps_the_requested_one_in_meta);
    RUN(test_connect_retries_unreachable_server_then_fails_without_password);
    RUN(test_connect_with_wrong_password_is_denied);

    pg_close(g_conn);
    snprintf(q, sizeof q, "DROP DATABASE IF EXISTS %s WITH (FORCE)", dbname);
    PQclear(PQexec(admin, q));
    pg_close(admin);
    PW_TEST_MAIN();
}
