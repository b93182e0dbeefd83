/* Broker URLs parse as kombu reads them and never leak passwords into logs. */
#include "broker_url.h"
#include "pw_test.h"

static void test_celery_default_url_means_vhost_slash(void)
{
    struct broker_url u;
    struct pw_error err;

    CHECK(broker_url_parse("amqp://guest:guest@127.0.0.1:5672//", &u, &err) == 0);
    CHECK_STR(u.user, "guest");
    CHECK_STR(u.password, "guest");
    CHECK_STR(u.host, "127.0.0.1");
    CHECK(u.port == 5672);
    CHECK_STR(u.vhost, "/");
    CHECK(!u.tls);
    broker_url_free(&u);
}

static void test_named_vhost_and_percent_encoded_password(void)
{
    struct broker_url u;
    struct pw_error err;

    CHECK(broker_url_parse("amqps://svc:p%40ss%3Aword@mq.example:5671/prod", &u, &err) == 0);
    CHECK_STR(u.password, "p@ss:word");
    CHECK_STR(u.vhost, "prod");
    CHECK(u.tls);
    CHECK(u.port == 5671);
    broker_url_free(&u);
}

static void test_empty_vhost_means_slash(void)
{
    struct broker_url u;
    struct pw_error err;

    CHECK(broker_url_parse("amqp://h:5672/", &u, &err) == 0);
    CHECK_STR(u.vhost, "/");
    broker_url_free(&u);
    CHECK(broker_url_parse("amqp://h", &u, &err) == 0);
    CHECK_STR(u.vhost, "/");
    CHECK(u.port == 5672);
    broker_url_free(&u);
}

static void test_rejects_non_amqp_url_without_echoing_password(void)
{
    struct broker_url u;
    struct pw_error err;

    CHECK(broker_url_parse("redis://user:hunter2@h:6379/0", &u, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "hunter2") == NULL);
    CHECK(strstr(err.msg, "***") != NULL);
    CHECK(broker_url_parse("", &u, &err) == PW_EINVAL);
}

static void test_mask_hides_password_only(void)
{
    char out[256];

    broker_url_mask("amqp://guest:s3cret@host:5672//", out, sizeof out);
    CHECK_STR(out, "amqp://guest:***@host:5672//");
    broker_url_mask("postgresql://pw:pw-test-secret@127.0.0.1:5432/pw", out, sizeof out);
    CHECK_STR(out, "postgresql://pw:***@127.0.0.1:5432/pw");
    broker_url_mask("amqp://guest@host//", out, sizeof out);
    CHECK_STR(out, "amqp://guest@host//");
    broker_url_mask("amqp://host//", out, sizeof out);
    CHECK_STR(out, "amqp://host//");
    broker_url_mask("amqp://u:p@ss@host/v", out, sizeof out);
    CHECK(strstr(out, "ss@") == NULL);
}

int main(void)
{
    RUN(test_celery_default_url_means_vhost_slash);
    RUN(test_named_vhost_and_percent_encoded_password);
    RUN(test_empty_vhost_means_slash);
    RUN(test_rejects_non_amqp_url_without_echoing_password);
    RUN(test_mask_hides_password_only);
    PW_TEST_MAIN();
}
