/* test_revoked.c - the revoked-id set behaves like Celery's LimitedSet (bounded at
 * 50000, entries forgotten after 10800 s) and survives a restart through the state
 * file, which an unrelated file cannot replace silently. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "pw_test.h"
#include "revoked.h"

static char *temp_path(void)
{
    static char path[64];

    snprintf(path, sizeof path, "/tmp/pw-revoked-%d.json", (int)getpid());
    unlink(path);
    return path;
}

static void test_added_ids_are_found_and_listed_in_revoke_order(void)
{
    struct revoked *r;
    struct pw_error err;
    json_t *list;

    CHECK(revoked_create(&r, NULL, &err) == 0);
    CHECK(revoked_add(r, "a", 0) == 0);
    CHECK(revoked_add(r, "b", 0) == 0);
    CHECK(revoked_add(r, "a", 0) == 0); /* re-revoked: refreshed, not duplicated */
    CHECK(revoked_contains(r, "a") && revoked_contains(r, "b") && !revoked_contains(r, "c"));
    list = revoked_list(r);
    CHECK(json_array_size(list) == 2);
    CHECK_STR(json_string_value(json_array_get(list, 0)), "a");
    CHECK_STR(json_string_value(json_array_get(list, 1)), "b");
    json_decref(list);
    revoked_free(r);
}

static void test_holds_at_most_maxlen_dropping_the_oldest(void)
{
    struct revoked *r;
    struct pw_error err;
    char id[32];

    CHECK(revoked_create(&r, NULL, &err) == 0);
    for (int i = 0; i < REVOKED_MAXLEN + 10; i++) {
        snprintf(id, sizeof id, "id-%d", i);
        CHECK(revoked_add(r, id, 0) == 0);
    }
    CHECK(!revoked_contains(r, "id-0") && !revoked_contains(r, "id-9"));
    CHECK(revoked_contains(r, "id-10"));
    snprintf(id, sizeof id, "id-%d", REVOKED_MAXLEN + 9);
    CHECK(revoked_contains(r, id));
    json_t *list = revoked_list(r);
    CHECK(json_array_size(list) == REVOKED_MAXLEN);
    json_decref(list);
    revoked_free(r);
}

static void test_entries_older_than_expires_are_forgotten(void)
{
    struct revoked *r;
    struct pw_error err;
    double now = pw_wall_now();

    CHECK(revoked_create(&r, NULL, &err) == 0);
    CHECK(revoked_add(r, "old", now - REVOKED_EXPIRES_S - 5) == 0);
    CHECK(revoked_add(r, "recent", now - REVOKED_EXPIRES_S + 60) == 0);
    CHECK(!revoked_contains(r, "old") && revoked_contains(r, "recent"));
    /* refreshed in place while an expired entry sits before it in revoke order */
    CHECK(revoked_add(r, "later", now - REVOKED_EXPIRES_S - 5) == 0);
    CHECK(revoked_add(r, "later", now) == 0);
    CHECK(revoked_contains(r, "later"));
    CHECK(revoked_add(r, "gone", now - REVOKED_EXPIRES_S + 60) == 0);
    CHECK(revoked_add(r, "gone", now - REVOKED_EXPIRES_S - 60) == 0); /* older: ignored */
    CHECK(revoked_contains(r, "gone"));
    revoked_free(r);
}

static void test_state_file_round_trip_keeps_ids_times_and_clock(void)
{
    const char *path = temp_path();
    struct revoked *r;
    struct pw_error err;
    unsigned long clock = 0;
    double when = pw_wall_now() - 100;
    json_t *map;

    CHECK(revoked_create(&r, path, &err) == 0);
    CHECK(revoked_load(r, &clock, &err) == 0 && clock == 0); /* no file yet */
    CHECK(revoked_add(r, "kept", when) == 0);
    CHECK(revoked_save(r, 42, &err) == 0);
    revoked_free(r);

    CHECK(revoked_create(&r, path, &err) == 0);
    CHECK(revoked_load(r, &clock, &err) == 0);
    CHECK(clock == 42 && revoked_contains(r, "kept"));
    map = revoked_map(r);
    CHECK(json_is_real(json_object_get(map, "kept")) &&
          (long)json_real_value(json_object_get(map, "kept")) == (long)when);
    json_decref(map);
    revoked_free(r);
    unlink(path);
}

static void test_a_file_that_is_not_a_state_file_is_refused(void)
{
    const char *path = temp_path();
    struct revoked *r;
    struct pw_error err;
    unsigned long clock = 0;
    FILE *f = fopen(path, "w");

    fputs("[1, 2, 3]", f);
    fclose(f);
    CHECK(revoked_create(&r, path, &err) == 0);
    CHECK(revoked_load(r, &clock, &err) == PW_EINVAL);
    revoked_free(r);
    unlink(path);
}

static void test_merge_takes_a_peers_map_and_pairs(void)
{
    struct revoked *r;
    struct pw_error err;
    json_t *peer = json_pack("{s:f, s:[f,i]}", "x", pw_wall_now(), "y", pw_wall_now(), 1);

    CHECK(revoked_create(&r, NULL, &err) == 0);
    revoked_merge(r, peer);
    CHECK(revoked_contains(r, "x") && revoked_contains(r, "y"));
    json_decref(peer);
    revoked_free(r);
}

int main(void)
{
    RUN(test_added_ids_are_found_and_listed_in_revoke_order);
    RUN(test_holds_at_most_maxlen_dropping_the_oldest);
    RUN(test_entries_older_than_expires_are_forgotten);
    RUN(test_state_file_round_trip_keeps_ids_times_and_clock);
    RUN(test_a_file_that_is_not_a_state_file_is_refused);
    RUN(test_merge_takes_a_peers_map_and_pairs);
    PW_TEST_MAIN();
}
