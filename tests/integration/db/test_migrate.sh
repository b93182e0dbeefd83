#!/usr/bin/env bash
# test_migrate.sh TEST - integration tests of `projection-worker migrate` against the
# PostgreSQL started by tests/harness/services.sh.  Each test creates its own database
# (unique name) and drops it at the end, so tests never see each other's state.
set -euo pipefail

test_name=${1:?usage: test_migrate.sh TEST}
# shellcheck disable=SC1090
source "${PW_SERVICES_ENV:?PW_SERVICES_ENV not set}"
: "${PW_WORKER_BIN:?PW_WORKER_BIN not set}"
export PGCONNECT_TIMEOUT=10
ADMIN_URL=$DATABASE_URL
SECRET=pw-test-secret
work=$(mktemp -d)
db="pwt_$(echo "$test_name" | tr -c 'a-z0-9\n' '_' | cut -c1-30)_$$"
DB_URL="${ADMIN_URL%/*}/$db"

cleanup() {
    psql "$ADMIN_URL" -qAt -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

fail() {
    echo "FAIL $test_name: $*" >&2
    exit 1
}

psql "$ADMIN_URL" -qAt -c "CREATE DATABASE $db" >/dev/null

migrate() { # migrate LOGFILE [args...]
    local log=$1
    shift
    "$PW_WORKER_BIN" migrate --database-url "$DB_URL" "$@" 2>"$log"
}

# pg_dump >= 15.14 wraps its output in \restrict lines with a random key: dropped.
dump() { pg_dump --schema-only --no-owner "$DB_URL" "$@" | grep -v -e '^--' -e '^$' -e '^\\restrict' -e '^\\unrestrict'; }
sql() { psql "$DB_URL" -qAt -v ON_ERROR_STOP=1 -c "$1"; }
nfiles=$(ls "$(dirname "$0")/../../../migrations/"*.sql | wc -l)

check_logs_are_json_without_secret() {
    for f in "$@"; do
        if grep -q -- "$SECRET" "$f"; then fail "password appears in $f"; fi
        /usr/bin/python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$f" ||
            fail "$f has a line that is not JSON"
    done
}

case "$test_name" in
migrate_twice_leaves_schema_unchanged)
    migrate "$work/1.log" || fail "first migrate failed: $(cat "$work/1.log")"
    dump >"$work/a.sql"
    migrate "$work/2.log" || fail "second migrate failed: $(cat "$work/2.log")"
    dump >"$work/b.sql"
    diff -u "$work/a.sql" "$work/b.sql" || fail "schema changed on the second run"
    [ "$(sql 'SELECT count(*), count(DISTINCT version) FROM projection_worker_migrations')" = "$nfiles|$nfiles" ] ||
        fail "expected one row per migration file ($nfiles)"
    grep -q '"event":"migrate_done".*"applied":0,"skipped":'"$nfiles" "$work/2.log" ||
        fail "second run did not report everything skipped"
    check_logs_are_json_without_secret "$work/1.log" "$work/2.log"
    ;;
migrations_reapplied_over_existing_objects_change_nothing)
    migrate "$work/1.log" || fail "first migrate failed"
    dump >"$work/a.sql"
    sql 'DELETE FROM projection_worker_migrations' # forget them: every file runs again
    migrate "$work/2.log" || fail "re-applying the SQL failed: $(cat "$work/2.log")"
    dump >"$work/b.sql"
    diff -u "$work/a.sql" "$work/b.sql" || fail "re-applied migrations changed the schema"
    ;;
concurrent_migrate_processes_apply_each_file_once)
    migrate "$work/1.log" &
    p1=$!
    migrate "$work/2.log" &
    p2=$!
    rc1=0 rc2=0
    wait $p1 || rc1=$?
    wait $p2 || rc2=$?
    [ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] || fail "exit codes $rc1 $rc2: $(cat "$work/1.log" "$work/2.log")"
    applied=$(cat "$work/1.log" "$work/2.log" | grep -c '"event":"migration_applied"' || true)
    [ "$applied" -eq "$nfiles" ] || fail "$applied applications for $nfiles files"
    [ "$(sql 'SELECT count(*) FROM projection_worker_migrations')" = "$nfiles" ] || fail "wrong row count"
    check_logs_are_json_without_secret "$work/1.log" "$work/2.log"
    ;;
migrate_on_alembic_schema_only_adds_metadata_hash)
    psql "$DB_URL" -q -v ON_ERROR_STOP=1 -f "$(dirname "$0")/../../fixtures/db/semantik_alembic_schema.sql" >/dev/null
    dump >"$work/before.sql"
    migrate "$work/1.log" || fail "migrate failed on the app schema: $(cat "$work/1.log")"
    dump --exclude-table=projection_worker_migrations >"$work/after.sql"
    # A new column moves the comma of the previous one; compare without trailing commas.
    sed 's/,$//' "$work/before.sql" >"$work/b"
    sed 's/,$//' "$work/after.sql" >"$work/a"
    diff "$work/b" "$work/a" | grep '^[<>]' >"$work/diff" || true
    if grep -q '^<' "$work/diff"; then fail "migrate removed or changed something: $(cat "$work/diff")"; fi
    grep -v 'metadata_hash' "$work/diff" | grep -v '^> *ON projection_runs' | grep -q . &&
        fail "migrate added more than metadata_hash and its index: $(cat "$work/diff")"
    grep -q '^> *metadata_hash text' "$work/diff" || fail "metadata_hash column missing"
    grep -q 'CREATE INDEX ix_projection_runs_collection_id_metadata_hash ON public.projection_runs USING btree (collection_id, metadata_hash)' "$work/after.sql" ||
        fail "index on (collection_id, metadata_hash) missing"
    [ "$(sql "SELECT count(*) FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typname = 'operation_type'")" = 6 ] ||
        fail "operation_type values changed"
    ;;
migrate_failure_reports_error_without_password)
    rc=0
    "$PW_WORKER_BIN" migrate --database-url "${ADMIN_URL%/*}/no_such_db_$$" 2>"$work/1.log" || rc=$?
    [ $rc -eq 1 ] || fail "exit status $rc, want 1"
    grep -q '"event":"migrate_failed"' "$work/1.log" || fail "no migrate_failed event"
    rc=0
    DATABASE_URL="postgresql://pw:wrong-$SECRET@${ADMIN_URL#*@}" "$PW_WORKER_BIN" migrate 2>"$work/2.log" || rc=$?
    [ $rc -eq 1 ] || fail "wrong password: exit status $rc, want 1"
    grep -q 'password authentication failed' "$work/2.log" || fail "no auth failure reported"
    check_logs_are_json_without_secret "$work/1.log" "$work/2.log"
    ;;
changed_migration_is_reported_not_reapplied)
    migrate "$work/1.log" || fail "first migrate failed"
    mkdir "$work/migrations"
    cp "$(dirname "$0")/../../../migrations/"*.sql "$work/migrations/"
    echo "-- edited after release" >>"$work/migrations/0002_metadata_hash.sql"
    migrate "$work/2.log" --migrations-dir "$work/migrations" || fail "second migrate failed"
    grep -q '"event":"migration_checksum_mismatch".*"version":2' "$work/2.log" ||
        fail "edited migration not reported: $(cat "$work/2.log")"
    [ "$(sql 'SELECT count(*) FROM projection_worker_migrations')" = "$nfiles" ] || fail "row count changed"
    check_logs_are_json_without_secret "$work/2.log"
    ;;
migrate_gives_up_when_another_migrator_holds_the_lock)
    key=$(printf '%d' 0x70775f6d69677231) # MIGRATE_LOCK_KEY in db/migrate.h
    mkfifo "$work/hold"
    # A session that holds the lock until we close its input.
    psql "$DB_URL" -qAt -v ON_ERROR_STOP=1 <"$work/hold" >"$work/holder.out" 2>&1 &
    holder=$!
    exec 3>"$work/hold"
    echo "SELECT pg_advisory_lock($key); SELECT 'locked';" >&3
    for _ in $(seq 1 100); do grep -q locked "$work/holder.out" && break; sleep 0.1; done
    grep -q locked "$work/holder.out" || fail "helper session did not take the lock"
    rc=0
    migrate "$work/1.log" --lock-timeout 1 || rc=$?
    exec 3>&-
    wait $holder || true
    [ $rc -eq 1 ] || fail "exit status $rc while the lock was held, want 1"
    grep -q '"event":"migration_lock_wait"' "$work/1.log" || fail "no lock wait logged"
    grep -q 'migration lock' "$work/1.log" || fail "failure does not name the lock: $(cat "$work/1.log")"
    [ "$(sql "SELECT to_regclass('projection_runs') IS NULL")" = t ] || fail "migrated without the lock"
    migrate "$work/2.log" || fail "migrate after the lock was released failed"
    ;;
*)
    fail "unknown test"
    ;;
esac
echo "ok   $test_name"
