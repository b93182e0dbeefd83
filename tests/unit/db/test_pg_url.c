/* test_pg_url.c - passwords never survive pg_url_mask / pg_url_scrub_secret. */
#include "pg_url.h"
#include "pw_test.h"

static char buf[512];

static void test_masks_password_in_uri_userinfo(void)
{
    CHECK_STR(pg_url_mask("postgresql://pw:pw-test-secret@127.0.0.1:5432/pw", buf, sizeof buf),
              "postgresql://pw:***@127.0.0.1:5432/pw");
}

static void test_keeps_uri_without_password_unchanged(void)
{
    CHECK_STR(pg_url_mask("postgres://pw@db.example:5432/pw?sslmode=require", buf, sizeof buf),
              "postgres://pw@db.example:5432/pw?sslmode=require");
}

static void test_masks_password_containing_at_sign(void)
{
    CHECK_STR(pg_url_mask("postgresql://u:p@ss@host/db", buf, sizeof buf),
              "postgresql://u:***@host/db");
}

static void test_masks_password_query_parameter(void)
{
    CHECK_STR(
        pg_url_mask("postgresql://host/db?user=u&password=s3cr3t&sslmode=disable", buf, sizeof buf),
        "postgresql://host/db?user=u&password=***&sslmode=disable");
}

static void test_masks_password_keyword_in_key_value_string(void)
{
    CHECK_STR(pg_url_mask("host=db user=u password=s3cr3t dbname=pw", buf, sizeof buf),
              "host=db user=u password=*** dbname=pw");
    CHECK_STR(pg_url_mask("host=db password='a b\\' c' dbname=pw", buf, sizeof buf),
              "host=db password=*** dbname=pw");
}

static void test_masks_whole_string_it_cannot_parse(void)
{
    CHECK_STR(pg_url_mask("host=db password='unterminated", buf, sizeof buf), "***");
}

static void test_truncates_to_buffer_without_overflow(void)
{
    char small[12];
    pg_url_mask("postgresql://pw:secret@127.0.0.1:5432/pw", small, sizeof small);
    CHECK(strlen(small) == sizeof small - 1);
    CHECK(strstr(small, "secret") == NULL);
}

static void test_scrubs_every_occurrence_of_secret_from_message(void)
{
    char msg[] = "auth failed for s3cr3t and again s3cr3t.";
    pg_url_scrub_secret(msg, "s3cr3t");
    CHECK_STR(msg, "auth failed for *** and again ***.");
    char stars[] = "x**y";
    pg_url_scrub_secret(stars, "**"); /* must terminate when the mask equals the secret */
    CHECK_STR(stars, "x**y");
}

static void test_sanitized_error_masks_urls_and_password_keywords(void)
{
    pg_url_sanitize_error("amqp://guest:guest@rabbit:5672// and postgresql://u:p4ss@db/x failed; "
                          "conninfo host=db password=s3cr3t user=u",
                          buf, sizeof buf);
    CHECK_STR(buf, "amqp://guest:***@rabbit:5672// and postgresql://u:***@db/x failed; "
                   "conninfo host=db password=*** user=u");
}

static void test_sanitized_error_replaces_control_characters(void)
{
    pg_url_sanitize_error("line one\nline\ttwo\x01", buf, sizeof buf);
    CHECK_STR(buf, "line one line two ");
}

static void test_sanitized_error_is_cut_on_a_utf8_boundary(void)
{
    char small[6];
    pg_url_sanitize_error("abc\xc3\xa9\xc3\xa9", small, sizeof small); /* "abcéé" */
    CHECK_STR(small, "abc\xc3\xa9");
    char tiny[5];
    pg_url_sanitize_error("abc\xc3\xa9", tiny, sizeof tiny);
    CHECK_STR(tiny, "abc");
}

int main(void)
{
    RUN(test_masks_password_in_uri_userinfo);
    RUN(test_keeps_uri_without_password_unchanged);
    RUN(test_masks_password_containing_at_sign);
    RUN(test_masks_password_query_parameter);
    RUN(test_masks_password_keyword_in_key_value_string);
    RUN(test_masks_whole_string_it_cannot_parse);
    RUN(test_truncates_to_buffer_without_overflow);
    RUN(test_scrubs_every_occurrence_of_secret_from_message);
    RUN(test_sanitized_error_masks_urls_and_password_keywords);
    RUN(test_sanitized_error_replaces_control_characters);
    RUN(test_sanitized_error_is_cut_on_a_utf8_boundary);
    PW_TEST_MAIN();
}
