/* test_migrate_files.c - migration naming, the embedded copies, SQLSTATE mapping. */
#include <stdlib.h>

#include "migrate.h"
#include "pg.h"
#include "pw_test.h"

static void test_parses_version_and_name_from_file_name(void)
{
    int v = 0;
    char name[64];
    CHECK(migrate_parse_filename("0002_metadata_hash.sql", &v, name, sizeof name) == 0);
    CHECK(v == 2);
    CHECK_STR(name, "metadata_hash");
    CHECK(migrate_parse_filename("0010_x.sql", &v, name, sizeof name) == 0);
    CHECK(v == 10); /* decimal, not octal */
}

static void test_rejects_badly_named_files(void)
{
    int v;
    char name[64];
    CHECK(migrate_parse_filename("metadata_hash.sql", &v, name, sizeof name) == PW_EINVAL);
    CHECK(migrate_parse_filename("0002-metadata.sql", &v, name, sizeof name) == PW_EINVAL);
    CHECK(migrate_parse_filename("0002_.sql", &v, name, sizeof name) == PW_EINVAL);
    CHECK(migrate_parse_filename("0002_x.txt", &v, name, sizeof name) == PW_EINVAL);
}

/* The build embeds exactly what migrations/ holds, in version order. */
static void test_embedded_migrations_equal_the_directory(void)
{
    struct migration_list emb, dir;
    struct pw_error err = {0};
    migrate_embedded(&emb);
    CHECK(migrate_load_dir("migrations", &dir, &err) == 0);
    CHECK(emb.count == dir.count);
    CHECK(emb.count >= 2);
    for (size_t i = 0; i < emb.count && i < dir.count; i++) {
        CHECK(emb.items[i].version == dir.items[i].version);
        CHECK_STR(emb.items[i].name, dir.items[i].name);
        CHECK_STR(emb.items[i].sql, dir.items[i].sql);
        if (i)
            CHECK(emb.items[i].version > emb.items[i - 1].version);
    }
    migrate_list_free(&dir);
}

static void test_missing_migrations_directory_is_not_found(void)
{
    struct migration_list dir;
    struct pw_error err = {0};
    CHECK(migrate_load_dir("/nonexistent/migrations", &dir, &err) == PW_ENOTFOUND);
}

static void test_classifies_sqlstates(void)
{
    CHECK(pg_sqlstate_code("08006") == PW_EUNAVAIL);
    CHECK(pg_sqlstate_code("40P01") == PW_EUNAVAIL);
    CHECK(pg_sqlstate_code("28P01") == PW_EDENIED);
    CHECK(pg_sqlstate_code("55P03") == PW_ETIMEOUT);
    CHECK(pg_sqlstate_code("23505") == PW_EIO);
}

static void test_connect_refuses_invalid_url_without_echoing_it(void)
{
    PGconn *c = NULL;
    struct pw_error err = {0};
    CHECK(pg_connect("postgresql://u:hunter2@host:notaport/db?bogus_option=1", NULL, &c, &err) ==
          PW_EINVAL);
    CHECK(c == NULL);
    CHECK(strstr(err.msg, "hunter2") == NULL);
}

int main(void)
{
    RUN(test_parses_version_and_name_from_file_name);
    RUN(test_rejects_badly_named_files);
    RUN(test_embedded_migrations_equal_the_directory);
    RUN(test_missing_migrations_directory_is_not_found);
    RUN(test_classifies_sqlstates);
    RUN(test_connect_refuses_invalid_url_without_echoing_it);
    PW_TEST_MAIN();
}
