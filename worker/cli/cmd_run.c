/* cmd_run.c - `projection-worker run`: configuration, signals, then the consumer loop.
 *
 * Settings come from the environment (names as Celery and libpq users know them) and
 * flags override them.  This function owns every piece of state of the run and frees
 * it before returning; nothing below it calls exit(). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "broker_url.h"
#include "commands.h"
#include "consumer.h"
#include "health_http.h"
#include "log.h"
#include "metrics.h"
#include "secrets.h"
#include "task_subprocess.h"
#include "signals.h"
#include "tasks.h"

#define MAX_QUEUES 32

struct run_settings {
    struct consumer_config consumer;
    struct task_subprocess_config tasks;
    char task_bin[4096];
    char *queues_buf;
    const char *queues[MAX_QUEUES];
    char hostname[256];
    struct pw_log log;
    const char *metrics_address; /* NULL = no HTTP server */
    const char *heartbeat_file;  /* NULL = none */
    double healthz_max_age_s;
};

/* Long-only options, numbered past every character a short option could use. */
enum {
    OPT_MAX_RETRIES = 1000,
    OPT_RETRY_BACKOFF,
    OPT_RETRY_BACKOFF_MAX,
    OPT_SOFT_SHUTDOWN_TIMEOUT,
    OPT_METRICS_ADDRESS,
    OPT_HEARTBEAT_FILE,
    OPT_HEALTHZ_MAX_AGE,
    OPT_RECONNECT_MAX,
};

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: projection-worker run [OPTIONS]\n"
        "\n"
        "Consume Celery tasks from RabbitMQ (Celery protocol 1 and 2, JSON only).\n"
        "\n"
        "  -b, --broker URL             CELERY_BROKER_URL   amqp[s]://user:pass@host:port/vhost\n"
        "                                                  (default "
        "amqp://guest:guest@localhost:5672//)\n"
        "      --result-backend B       CELERY_RESULT_BACKEND  rpc:// (default) or disabled\n"
        "  -Q, --queues A,B             PROJECTION_QUEUE    queues to consume (default celery)\n"
        "      --queue-type T           PW_QUEUE_TYPE       classic|quorum for queues not yet\n"
        "                                                  declared (default classic)\n"
        "  -c, --concurrency N          PW_CONCURRENCY      task threads (default: CPU count)\n"
        "      --prefetch-multiplier M  PW_PREFETCH_MULTIPLIER  qos = N*M (default 4)\n"
        "      --track-started          PW_TRACK_STARTED=1  publish STARTED results\n"
        "      --shutdown-timeout S     PW_SHUTDOWN_TIMEOUT seconds to finish running tasks\n"
        "                                                  on SIGTERM (default 60)\n"
        "      --soft-shutdown-timeout S  PW_SOFT_SHUTDOWN_TIMEOUT  before a cold shutdown\n"
        "                                                  (SIGQUIT, second signal, warm "
        "deadline)\n"
        "                                                  running tasks may finish (default 0)\n"
        "      --heartbeat S            PW_BROKER_HEARTBEAT AMQP heartbeat (default 60, 0 = off)\n"
        "      --reconnect-max S        PW_BROKER_RECONNECT_MAX  cap of the reconnect backoff\n"
        "                                                  (0.5 s doubling; default 30)\n"
        "      --max-retries N          PW_MAX_RETRIES      Celery retries of a task meeting a\n"
        "                                                  transient fault (default 3)\n"
        "      --retry-backoff S        PW_RETRY_BACKOFF    backoff factor, seconds (default 1;\n"
        "                                                  PW_RETRY_JITTER=0 turns jitter off)\n"
        "      --retry-backoff-max S    PW_RETRY_BACKOFF_MAX  backoff cap (default 600)\n"
        "      --metrics-address H:P    PW_METRICS_ADDRESS  serve /metrics /healthz /readyz (off)\n"
        "      --healthz-max-age S      PW_HEALTHZ_MAX_AGE  /healthz fails when the main loop\n"
        "                                                  has not turned for S s (default 60)\n"
        "      --heartbeat-file PATH    PW_HEARTBEAT_FILE   touched every second by the main loop\n"
        "      --max-task-deaths N      PW_MAX_TASK_DEATHS  task-process deaths (e.g. OOM kills) "
        "of\n"
        "                                                  one message before its task fails\n"
        "                                                  (default 3)\n"
        "  -n, --hostname NAME          PW_HOSTNAME         node name (default "
        "projection-worker@HOST)\n"
        "      --broker-ca FILE         PW_BROKER_CA_FILE   CA bundle for amqps://\n"
        "  -E, --events                 PW_TASK_EVENTS=1    send task events (celery events, "
        "Flower)\n"
        "      --without-heartbeat      PW_WITHOUT_HEARTBEAT=1  no worker-online/heartbeat "
        "events\n"
        "      --without-mingle         PW_WITHOUT_MINGLE=1 do not ask peers for revoked ids at "
        "start\n"
        "      --statedb FILE           PW_STATEDB          keep revoked ids across restarts\n"
        "  -l, --log-level LEVEL        PW_LOG_LEVEL        debug|info|warning|error (default "
        "info)\n"
        "\n"
        "Projection settings (passed to the task processes):\n"
        "      --database-url URL       DATABASE_URL        PostgreSQL libpq URI (required for "
        "projections)\n"
        "      --data-dir DIR           DATA_DIR            artifacts root (default ./data)\n"
        "      --qdrant-url URL         QDRANT_URL          Qdrant REST endpoint (default "
        "http://localhost:6333)\n"
        "      --vector-name NAME       PW_VECTOR_NAME      named vector to project (default: "
        "first non-null)\n"
        "      --threads N              PW_COMPUTE_THREADS  threads of one computation (default:\n"
        "                                                  cores / concurrency; 0 = all cores)\n"
        "      --lock-wait S            PW_LOCK_WAIT        seconds a duplicate request waits "
        "(default 900)\n"
        "\n"
        "Registered tasks:");
    for (const char *const *n = tasks_names(); *n; n++)
        fprintf(out, " %s", *n);
    fprintf(out, "\n");
}

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

static int parse_int(const char *text, int lo, int hi, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi)
        return PW_EINVAL;
    *out = (int)v;
    return 0;
}

static int parse_seconds(const char *text, double *out)
{
    char *end;
    double v = strtod(text, &end);

    if (end == text || *end || v < 0 || v > 86400 * 7)
        return PW_EINVAL;
    *out = v;
    return 0;
}

static int split_queues(struct run_settings *s, const char *list, struct pw_error *err)
{
    char *save = NULL, *tok;

    free(s->queues_buf);
    s->queues_buf = strdup(list);
    s->consumer.n_queues = 0;
    if (!s->queues_buf)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    for (tok = strtok_r(s->queues_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        if (s->consumer.n_queues == MAX_QUEUES)
            return pw_error_set(err, PW_EINVAL, "at most %d queues", MAX_QUEUES);
        if (strlen(tok) > 255)
            return pw_error_set(err, PW_EINVAL, "queue name longer than 255 bytes");
        s->queues[s->consumer.n_queues++] = tok;
    }
    if (s->consumer.n_queues == 0)
        return pw_error_set(err, PW_EINVAL, "no queue given");
    s->consumer.queues = s->queues;
    return 0;
}

static int set_backend(struct run_settings *s, const char *backend, struct pw_error *err)
{
    if (!strncmp(backend, "rpc://", 6) || !strcmp(backend, "rpc"))
        s->consumer.results_enabled = 1;
    else if (!strcmp(backend, "disabled") || !strcmp(backend, "none"))
        s->consumer.results_enabled = 0;
    else
        return pw_error_set(err, PW_EINVAL,
                            "result backend '%.64s' is not supported (use rpc:// or disabled)",
                            backend);
    return 0;
}

static int set_queue_type(struct run_settings *s, const char *type, struct pw_error *err)
{
    return broker_parse_queue_type(type, &s->consumer.quorum_queues, err);
}

static const struct option run_options[] = {
    {"broker", required_argument, NULL, 'b'},
    {"result-backend", required_argument, NULL, 'R'},
    {"queues", required_argument, NULL, 'Q'},
    {"queue-type", required_argument, NULL, 'Y'},
    {"concurrency", required_argument, NULL, 'c'},
    {"prefetch-multiplier", required_argument, NULL, 'P'},
    {"track-started", no_argument, NULL, 'T'},
    {"shutdown-timeout", required_argument, NULL, 'S'},
    {"heartbeat", required_argument, NULL, 'H'},
    {"max-task-deaths", required_argument, NULL, 'M'},
    {"hostname", required_argument, NULL, 'n'},
    {"broker-ca", required_argument, NULL, 'A'},
    {"events", no_argument, NULL, 'E'},
    {"without-heartbeat", no_argument, NULL, 'B'},
    {"without-mingle", no_argument, NULL, 'G'},
    {"statedb", required_argument, NULL, 'F'},
    {"log-level", required_argument, NULL, 'l'},
    {"database-url", required_argument, NULL, 'D'},
    {"data-dir", required_argument, NULL, 'd'},
    {"qdrant-url", required_argument, NULL, 'q'},
    {"vector-name", required_argument, NULL, 'V'},
    {"threads", required_argument, NULL, 't'},
    {"lock-wait", required_argument, NULL, 'W'},
    {"max-retries", required_argument, NULL, OPT_MAX_RETRIES},
    {"retry-backoff", required_argument, NULL, OPT_RETRY_BACKOFF},
    {"retry-backoff-max", required_argument, NULL, OPT_RETRY_BACKOFF_MAX},
    {"soft-shutdown-timeout", required_argument, NULL, OPT_SOFT_SHUTDOWN_TIMEOUT},
    {"metrics-address", required_argument, NULL, OPT_METRICS_ADDRESS},
    {"heartbeat-file", required_argument, NULL, OPT_HEARTBEAT_FILE},
    {"healthz-max-age", required_argument, NULL, OPT_HEALTHZ_MAX_AGE},
    {"reconnect-max", required_argument, NULL, OPT_RECONNECT_MAX},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* One operations setting (retries, soft shutdown, metrics) from a flag or the
 * environment variable `from` names (for the message). */
static int apply_ops_setting(struct run_settings *s, int opt, const char *v, const char *from,
                             struct pw_error *err)
{
    struct consumer_config *cc = &s->consumer;
    int bad = 0;

    switch (opt) {
    case OPT_MAX_RETRIES:
        bad = parse_int(v, 0, 1000, &cc->retry.max_retries);
        break;
    case OPT_RETRY_BACKOFF:
        bad = parse_seconds(v, &cc->retry.backoff_s);
        break;
    case OPT_RETRY_BACKOFF_MAX:
        bad = parse_seconds(v, &cc->retry.backoff_max_s);
        break;
    case OPT_SOFT_SHUTDOWN_TIMEOUT:
        bad = parse_seconds(v, &cc->soft_shutdown_timeout_s);
        break;
    case OPT_METRICS_ADDRESS:
        s->metrics_address = *v ? v : NULL;
        break;
    case OPT_HEARTBEAT_FILE:
        s->heartbeat_file = *v ? v : NULL;
        break;
    case OPT_HEALTHZ_MAX_AGE:
        bad = parse_seconds(v, &s->healthz_max_age_s) || s->healthz_max_age_s <= 0;
        break;
    case OPT_RECONNECT_MAX:
        bad = parse_seconds(v, &cc->reconnect_max_s) || cc->reconnect_max_s < 0.5;
        break;
    default:
        return 1;
    }
    return bad ? pw_error_set(err, PW_EINVAL, "%s: invalid value '%.64s'", from, v) : 0;
}

/* Celery's retry defaults (autoretry with retry_backoff=True), then the environment. */
static int ops_settings_from_env(struct run_settings *s, struct pw_error *err)
{
    static const struct {
        int opt;
        const char *env;
    } vars[] = {{OPT_MAX_RETRIES, "PW_MAX_RETRIES"},
                {OPT_RETRY_BACKOFF, "PW_RETRY_BACKOFF"},
                {OPT_RETRY_BACKOFF_MAX, "PW_RETRY_BACKOFF_MAX"},
                {OPT_SOFT_SHUTDOWN_TIMEOUT, "PW_SOFT_SHUTDOWN_TIMEOUT"},
                {OPT_METRICS_ADDRESS, "PW_METRICS_ADDRESS"},
                {OPT_HEARTBEAT_FILE, "PW_HEARTBEAT_FILE"},
                {OPT_HEALTHZ_MAX_AGE, "PW_HEALTHZ_MAX_AGE"},
                {OPT_RECONNECT_MAX, "PW_BROKER_RECONNECT_MAX"}};
    int rc;

    s->consumer.retry.max_retries = 3;     /* Celery Task.max_retries */
    s->consumer.retry.backoff_s = 1;       /* retry_backoff=True */
    s->consumer.retry.backoff_max_s = 600; /* retry_backoff_max */
    s->consumer.retry.jitter = !getenv("PW_RETRY_JITTER") || strcmp(getenv("PW_RETRY_JITTER"), "0");
    s->healthz_max_age_s = 60;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i].env) &&
            (rc = apply_ops_setting(s, vars[i].opt, getenv(vars[i].env), vars[i].env, err)))
            return rc;
    return 0;
}

/* Celery's defaults, then the environment. */
static int settings_from_env(struct run_settings *s, struct pw_error *err)
{
    struct consumer_config *cc = &s->consumer;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    char host[200] = "localhost";
    int rc;

    cc->broker_url = env_or("CELERY_BROKER_URL", "amqp://guest:guest@localhost:5672//");
    cc->concurrency = ncpu > 0 ? (int)ncpu : 1; /* Celery default: CPU count */
    cc->prefetch_multiplier = 4;                /* Celery worker_prefetch_multiplier */
    cc->heartbeat_s = 60;          /* Celery asks 120; RabbitMQ caps it at its own 60 */
    cc->connect_timeout_ms = 4000; /* Celery broker_connection_timeout */
    cc->shutdown_timeout_s = 60;
    cc->reconnect_max_s = 30;
    cc->max_task_deaths = 3;
    cc->tls_ca_file = env_or("PW_BROKER_CA_FILE", NULL);
    cc->track_started = !strcmp(env_or("PW_TRACK_STARTED", "0"), "1");
    cc->task_events = !strcmp(env_or("PW_TASK_EVENTS", "0"), "1");
    cc->without_heartbeat = !strcmp(env_or("PW_WITHOUT_HEARTBEAT", "0"), "1");
    cc->without_mingle = !strcmp(env_or("PW_WITHOUT_MINGLE", "0"), "1");
    cc->statedb = env_or("PW_STATEDB", NULL);
    s->log.fd = 2;
    s->log.min_level = PW_LOG_INFO;
    gethostname(host, sizeof host - 1);
    snprintf(s->hostname, sizeof s->hostname, "%s", env_or("PW_HOSTNAME", ""));
    if (!s->hostname[0])
        snprintf(s->hostname, sizeof s->hostname, "projection-worker@%s", host);
    if ((rc = set_backend(s, env_or("CELERY_RESULT_BACKEND", "rpc://"), err)) ||
        (rc = split_queues(s, env_or("PROJECTION_QUEUE", "celery"), err)) ||
        (rc = set_queue_type(s, env_or("PW_QUEUE_TYPE", "classic"), err)))
        return rc;
    if (getenv("PW_CONCURRENCY") && parse_int(getenv("PW_CONCURRENCY"), 1, 1024, &cc->concurrency))
        return pw_error_set(err, PW_EINVAL, "PW_CONCURRENCY must be an integer in 1..1024");
    if (getenv("PW_PREFETCH_MULTIPLIER") &&
        parse_int(getenv("PW_PREFETCH_MULTIPLIER"), 1, 1000, &cc->prefetch_multiplier))
        return pw_error_set(err, PW_EINVAL, "PW_PREFETCH_MULTIPLIER must be an integer in 1..1000");
    if (getenv("PW_SHUTDOWN_TIMEOUT") &&
        parse_seconds(getenv("PW_SHUTDOWN_TIMEOUT"), &cc->shutdown_timeout_s))
        return pw_error_set(err, PW_EINVAL, "PW_SHUTDOWN_TIMEOUT must be seconds");
    if (getenv("PW_BROKER_HEARTBEAT") &&
        parse_int(getenv("PW_BROKER_HEARTBEAT"), 0, 3600, &cc->heartbeat_s))
        return pw_error_set(err, PW_EINVAL, "PW_BROKER_HEARTBEAT must be seconds (0..3600)");
    if (getenv("PW_MAX_TASK_DEATHS") &&
        parse_int(getenv("PW_MAX_TASK_DEATHS"), 1, 1000, &cc->max_task_deaths))
        return pw_error_set(err, PW_EINVAL, "PW_MAX_TASK_DEATHS must be an integer in 1..1000");
    if (getenv("PW_LOG_LEVEL") && pw_log_parse_level(getenv("PW_LOG_LEVEL"), &s->log.min_level))
        return pw_error_set(err, PW_EINVAL, "PW_LOG_LEVEL must be debug|info|warning|error");
    return ops_settings_from_env(s, err);
}

/* Projection settings travel to the task processes in the environment. */
static const struct {
    int opt;
    const char *env;
} task_env_flags[] = {{'D', "DATABASE_URL"},   {'d', "DATA_DIR"},           {'q', "QDRANT_URL"},
                      {'V', "PW_VECTOR_NAME"}, {'t', "PW_COMPUTE_THREADS"}, {'W', "PW_LOCK_WAIT"}};

static int apply_task_env_flag(int opt, const char *value)
{
    for (size_t i = 0; i < sizeof task_env_flags / sizeof task_env_flags[0]; i++)
        if (task_env_flags[i].opt == opt) {
            setenv(task_env_flags[i].env, value, 1);
            return 1;
        }
    return 0;
}

static const char *option_name(int opt)
{
    for (const struct option *o = run_options; o->name; o++)
        if (o->val == opt)
            return o->name;
    return "option";
}

/* One command-line option over the environment's value. */
static int apply_flag(struct run_settings *s, int opt, const char *arg, struct pw_error *err)
{
    struct consumer_config *cc = &s->consumer;

    int rc;

    if (apply_task_env_flag(opt, arg))
        return 0;
    if ((rc = apply_ops_setting(s, opt, arg, option_name(opt), err)) != 1)
        return rc;
    switch (opt) {
    case 'b':
        cc->broker_url = arg;
        return 0;
    case 'R':
        return set_backend(s, arg, err);
    case 'Q':
        return split_queues(s, arg, err);
    case 'Y':
        return set_queue_type(s, arg, err);
    case 'c':
        if (parse_int(arg, 1, 1024, &cc->concurrency))
            return pw_error_set(err, PW_EINVAL, "--concurrency must be an integer in 1..1024");
        return 0;
    case 'P':
        if (parse_int(arg, 1, 1000, &cc->prefetch_multiplier))
            return pw_error_set(err, PW_EINVAL, "--prefetch-multiplier must be in 1..1000");
        return 0;
    case 'T':
        cc->track_started = 1;
        return 0;
    case 'S':
        if (parse_seconds(arg, &cc->shutdown_timeout_s))
            return pw_error_set(err, PW_EINVAL, "--shutdown-timeout must be seconds");
        return 0;
    case 'H':
        if (parse_int(arg, 0, 3600, &cc->heartbeat_s))
            return pw_error_set(err, PW_EINVAL, "--heartbeat must be seconds (0..3600)");
        return 0;
    case 'M':
        if (parse_int(arg, 1, 1000, &cc->max_task_deaths))
            return pw_error_set(err, PW_EINVAL, "--max-task-deaths must be an integer in 1..1000");
        return 0;
    case 'n':
        snprintf(s->hostname, sizeof s->hostname, "%s", arg);
        return 0;
    case 'A':
        cc->tls_ca_file = arg;
        return 0;
    case 'E':
        cc->task_events = 1;
        return 0;
    case 'B':
        cc->without_heartbeat = 1;
        return 0;
    case 'G':
        cc->without_mingle = 1;
        return 0;
    case 'F':
        cc->statedb = arg;
        return 0;
    case 'l':
        if (pw_log_parse_level(arg, &s->log.min_level))
            return pw_error_set(err, PW_EINVAL, "--log-level must be debug|info|warning|error");
        return 0;
    default:
        return pw_error_set(err, PW_EINVAL, "unknown option (see run --help)");
    }
}

/* The task processes' compute threads when not set: the cores divided between the
 * slots, so that -c N slots computing at once do not oversubscribe the machine. */
static void default_compute_threads(const struct consumer_config *cc)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = ncpu > cc->concurrency ? (int)(ncpu / cc->concurrency) : 1;
    char text[24];

    if (getenv("PW_COMPUTE_THREADS") && *getenv("PW_COMPUTE_THREADS"))
        return;
    snprintf(text, sizeof text, "%d", threads);
    setenv("PW_COMPUTE_THREADS", text, 1);
}

/* What only the final settings can tell: combined limits, the task processes' own
 * settings (checked here so a typo fails at start, not in every task), the task binary,
 * the broker URL. */
static int check_settings(struct run_settings *s, struct pw_error *err)
{
    struct consumer_config *cc = &s->consumer;
    struct broker_url u;
    int threads, rc;
    double wait_s;

    if (cc->concurrency * cc->prefetch_multiplier > 65535)
        return pw_error_set(err, PW_EINVAL, "concurrency x prefetch multiplier exceeds 65535");
    cc->hostname = s->hostname;
    default_compute_threads(cc);
    if (getenv("PW_COMPUTE_THREADS") && parse_int(getenv("PW_COMPUTE_THREADS"), 0, 1024, &threads))
        return pw_error_set(err, PW_EINVAL, "--threads/PW_COMPUTE_THREADS must be 0..1024");
    if (getenv("PW_LOCK_WAIT") && parse_seconds(getenv("PW_LOCK_WAIT"), &wait_s))
        return pw_error_set(err, PW_EINVAL, "--lock-wait/PW_LOCK_WAIT must be seconds");
    s->tasks.kill_grace_s = 10;
    if ((rc = task_subprocess_find_bin(s->task_bin, sizeof s->task_bin, err)))
        return rc;
    s->tasks.task_bin = s->task_bin;
    if ((rc = broker_url_parse(cc->broker_url, &u, err)))
        return rc;
    broker_url_free(&u);
    return 0;
}

/* Defaults, then environment, then flags.  Returns 1 when --help was printed. */
static int load_settings(struct run_settings *s, int argc, char **argv, struct pw_error *err)
{
    int rc, opt;

    if ((rc = settings_from_env(s, err)))
        return rc;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "b:Q:c:n:l:Eh", run_options, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        }
        if ((rc = apply_flag(s, opt, optarg, err)))
            return rc;
    }
    if (optind < argc)
        return pw_error_set(err, PW_EINVAL, "unexpected argument '%s'", argv[optind]);
    return check_settings(s, err);
}

/* Metrics when something shows them: the HTTP server, the heartbeat file, or both. */
static int start_reporting(struct run_settings *s, struct metrics **m, struct health_http **http,
                           struct pw_error *err)
{
    int rc, port = 0;

    *m = NULL;
    *http = NULL;
    if (!s->metrics_address && !s->heartbeat_file)
        return 0;
    if ((rc = metrics_new(m, s->heartbeat_file, err)))
        return rc;
    s->consumer.metrics = *m;
    if (!s->metrics_address)
        return 0;
    if ((rc = health_http_start(http, s->metrics_address, *m, s->healthz_max_age_s, &port, err)))
        return rc;
    pw_log_event(&s->log, PW_LOG_INFO, "metrics_listening",
                 json_pack("{s:s, s:i}", "address", s->metrics_address, "port", port),
                 "/metrics /healthz /readyz");
    return 0;
}

int cmd_run(int argc, char **argv)
{
    struct run_settings s;
    struct metrics *metrics = NULL;
    struct health_http *http = NULL;
    struct secrets secrets;
    struct pw_error err;
    char masked[512];
    int sfd = -1, rc;

    memset(&s, 0, sizeof s);
    pw_error_clear(&err);
    /* The environment's secrets first, so that even a configuration error is scrubbed;
     * then those the flags gave (--database-url is set into DATABASE_URL). */
    rc = secrets_from_env(&secrets, &err);
    s.log.secrets = &secrets;
    if (!rc && !(rc = load_settings(&s, argc, argv, &err)) &&
        !(rc = secrets_add_url_password(&secrets, getenv("DATABASE_URL"), &err)))
        rc = secrets_add_url_password(&secrets, s.consumer.broker_url, &err);
    if (rc) {
        free(s.queues_buf);
        if (rc != 1) {
            s.log.fd = 2;
            s.log.min_level = PW_LOG_DEBUG;
            pw_log_event(&s.log, PW_LOG_ERROR, "config_invalid", NULL, err.msg);
        }
        secrets_free(&secrets);
        return rc == 1 ? 0 : 2;
    }
    /* Signals arrive as bytes on a self-pipe read by the consumer loop. */
    if (signals_install(&sfd, &err)) {
        pw_log_event(&s.log, PW_LOG_CRITICAL, "signals_failed", NULL, err.msg);
        free(s.queues_buf);
        secrets_free(&secrets);
        return 1;
    }
    broker_url_mask(s.consumer.broker_url, masked, sizeof masked);
    pw_log_event(&s.log, PW_LOG_INFO, "worker_starting",
                 json_pack("{s:s, s:s, s:i, s:s, s:s, s:i, s:b, s:b, s:i}", "hostname", s.hostname,
                           "broker", masked, "concurrency", s.consumer.concurrency,
                           "compute_threads", getenv("PW_COMPUTE_THREADS"), "queue_type",
                           s.consumer.quorum_queues ? "quorum" : "classic", "prefetch_count",
                           s.consumer.concurrency * s.consumer.prefetch_multiplier, "results",
                           s.consumer.results_enabled, "track_started", s.consumer.track_started,
                           "pid", (int)getpid()),
                 NULL);
    if (getenv("PW_LOG_LEVEL") == NULL && s.log.min_level != PW_LOG_INFO) {
        /* task processes log at the same level */
        static const char *const names[] = {"debug", "info", "warning", "error", "critical"};
        setenv("PW_LOG_LEVEL", names[s.log.min_level / 10 - 1], 1);
    }
    rc = start_reporting(&s, &metrics, &http, &err);
    if (!rc)
        rc = consumer_run(&s.consumer, &s.log, &s.tasks, sfd, &err);
    if (rc)
        pw_log_event(&s.log, PW_LOG_CRITICAL, "worker_failed", NULL, err.msg);
    else
        pw_log_event(&s.log, PW_LOG_INFO, "worker_exit", NULL, NULL);
    health_http_stop(http);
    metrics_free(metrics);
    close(sfd);
    free(s.queues_buf);
    secrets_free(&secrets);
    return rc ? 1 : 0;
}
