/* test_secrets.c - every secret a process holds is scrubbed from what it writes. */
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "pw_test.h"
#include "secrets.h"

/* text scrubbed of the given secrets (a NULL-terminated list), in a static buffer */
static const char *scrubbed(const char *const *values, const char *text)
{
    static char out[256];
    struct secrets s;
    struct pw_error err;

    secrets_init(&s);
    for (; *values; values++)
        CHECK(secrets_add(&s, *values, &err) == 0);
    snprintf(out, sizeof out, "%s", text);
    secrets_scrub(&s, out);
    secrets_free(&s);
    return out;
}

static void test_scrubs_every_occurrence_of_an_api_key(void)
{
    CHECK_STR(scrubbed((const char *[]){"K3y-marker", NULL},
                       "HTTP 403: Invalid api-key 'K3y-marker' (sent K3y-marker)"),
              "HTTP 403: Invalid api-key '***' (sent ***)");
}

static void test_longer_secret_is_scrubbed_whole_before_one_it_contains(void)
{
    CHECK_STR(scrubbed((const char *[]){"abcd", "abcdefgh", NULL}, "a=abcd b=abcdefgh"),
              "a=*** b=***");
}

static void test_values_shorter_than_four_characters_are_not_held(void)
{
    CHECK_STR(scrubbed((const char *[]){"pw", "abc", NULL}, "pw_log wrote abc"),
              "pw_log wrote abc");
}

static void test_database_url_passwords_in_every_spelling(void)
{
    struct secrets s;
    struct pw_error err;
    char text[] = "p%40ss:1 p@ss:1 qsecret1 it's me plainpw1";

    secrets_init(&s);
    CHECK(secrets_add_url_password(&s, "postgresql://u:p%40ss:1@db:5432/x", &err) == 0);
    CHECK(secrets_add_url_password(&s, "postgresql://db/x?user=u&password=qsecret1", &err) == 0);
    CHECK(secrets_add_url_password(&s, "host=db password = 'it\\'s me' user=u", &err) == 0);
    CHECK(secrets_add_url_password(&s, "host=db password=plainpw1", &err) == 0);
    secrets_scrub(&s, text);
    CHECK_STR(text, "*** *** *** *** ***");
    secrets_free(&s);
}

static void test_broker_password_from_the_environment(void)
{
    struct secrets s;
    struct pw_error err;
    char text[] = "amqp error for br0ker-pass and qdrant-key-1 and db-secret";

    setenv("CELERY_BROKER_URL", "amqp://user:br0ker-pass@rabbit:5672//", 1);
    setenv("QDRANT_API_KEY", "qdrant-key-1", 1);
    setenv("DATABASE_URL", "postgresql://u:db-secret@db/x", 1);
    CHECK(secrets_from_env(&s, &err) == 0);
    secrets_scrub(&s, text);
    CHECK_STR(text, "amqp error for *** and *** and ***");
    secrets_free(&s);
    unsetenv("CELERY_BROKER_URL");
    unsetenv("QDRANT_API_KEY");
    unsetenv("DATABASE_URL");
}

static void test_log_lines_are_scrubbed_in_msg_and_nested_fields(void)
{
    struct secrets s;
    struct pw_error err;
    struct pw_log log = {-1, PW_LOG_DEBUG, &s};
    json_t *shared = json_pack("{s:s}", "body", "echo K3y-marker");
    char line[1024] = "";
    int fds[2];
    ssize_t n;

    secrets_init(&s);
    CHECK(secrets_add(&s, "K3y-marker", &err) == 0);
    CHECK(pipe(fds) == 0);
    log.fd = fds[1];
    pw_log_event(&log, PW_LOG_ERROR, "failed",
                 json_pack("{s:O, s:[s]}", "detail", shared, "list", "K3y-marker!"),
                 "refused: K3y-marker");
    n = read(fds[0], line, sizeof line - 1);
    CHECK(n > 0);
    CHECK(strstr(line, "K3y-marker") == NULL);
    CHECK(strstr(line, "\"msg\":\"refused: ***\"") != NULL);
    CHECK(strstr(line, "\"body\":\"echo ***\"") != NULL);
    CHECK(strstr(line, "\"list\":[\"***!\"]") != NULL);
    /* the caller's own value is left as it was */
    CHECK_STR(json_string_value(json_object_get(shared, "body")), "echo K3y-marker");
    close(fds[0]);
    close(fds[1]);
    json_decref(shared);
    secrets_free(&s);
}

int main(void)
{
    RUN(test_scrubs_every_occurrence_of_an_api_key);
    RUN(test_longer_secret_is_scrubbed_whole_before_one_it_contains);
    RUN(test_values_shorter_than_four_characters_are_not_held);
    RUN(test_database_url_passwords_in_every_spelling);
    RUN(test_broker_password_from_the_environment);
    RUN(test_log_lines_are_scrubbed_in_msg_and_nested_fields);
    PW_TEST_MAIN();
}
