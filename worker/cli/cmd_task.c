/* cmd_task.c - `projection-worker-task task`: run one heavy task for the consumer.
 *
 * The consumer (task_subprocess.c) writes the task message as JSON on stdin and reads
 * one JSON outcome from stdout; logs go to stderr.  SIGUSR1 raises the task's cancel
 * flag (a watcher thread turns the signal pipe into the flag), so a time limit stops
 * the computation at its next check and the run is marked failed; SIGUSR2 (revoke
 * --terminate) raises it as TASK_CANCEL_REVOKED and the run is marked cancelled.  If the consumer
 * dies, the kernel kills this process (PR_SET_PDEATHSIG) and the run is left for the
 * redelivery. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "log.h"
#include "projection_task.h"
#include "secrets.h"
#include "signals.h"
#include "tasks.h"

struct cancel_watch {
    int fd;
    atomic_int *cancel;
};

static void *watch_signals(void *arg)
{
    struct cancel_watch *w = arg;
    struct pollfd p = {w->fd, POLLIN, 0};

    /* The signal pipe is non-blocking: wait for it with poll(). */
    for (;;) {
        int signo;
        if (poll(&p, 1, -1) > 0 && (signo = signals_next(w->fd)) > 0) {
            atomic_store(w->cancel, signo == SIGUSR2 ? TASK_CANCEL_REVOKED : TASK_CANCEL_STOP);
            return NULL;
        }
    }
}

/* The message, in *give_up (malloc'ed, NULL when absent) the reason to give up, in
 * *last_try whether a Celery retry may follow, and in *record_revoked whether to record
 * a revoke instead of running. */
static int read_message(struct celery_task_msg *m, char **give_up, int *last_try,
                        int *record_revoked, struct pw_error *err)
{
    json_error_t jerr;
    json_t *o = json_loadf(stdin, JSON_ALLOW_NUL, &jerr); /* the task judges its arguments */

    memset(m, 0, sizeof *m);
    if (!json_is_object(o)) {
        json_decref(o);
        return pw_error_set(err, PW_EINVAL, "task message on stdin is not a JSON object: %s",
                            jerr.text);
    }
    m->protocol = 2;
    m->id = json_is_string(json_object_get(o, "id"))
                ? strdup(json_string_value(json_object_get(o, "id")))
                : NULL;
    m->task = json_is_string(json_object_get(o, "task"))
                  ? strdup(json_string_value(json_object_get(o, "task")))
                  : NULL;
    m->args = json_is_array(json_object_get(o, "args")) ? json_incref(json_object_get(o, "args"))
                                                        : json_array();
    m->kwargs = json_is_object(json_object_get(o, "kwargs"))
                    ? json_incref(json_object_get(o, "kwargs"))
                    : json_object();
    m->retries = (int)json_integer_value(json_object_get(o, "retries"));
    *last_try = json_is_true(json_object_get(o, "last_try"));
    *give_up = json_is_string(json_object_get(o, "give_up"))
                   ? strdup(json_string_value(json_object_get(o, "give_up")))
                   : NULL;
    *record_revoked = json_is_true(json_object_get(o, "revoked"));
    json_decref(o);
    if (!m->id || !m->task)
        return pw_error_set(err, PW_EINVAL, "task message lacks id or task");
    return 0;
}

/* The outcome on stdout; its strings scrubbed of the process's secrets, since the
 * consumer publishes the message as the task's result. */
static void print_outcome(int rc, const struct task_outcome *out, const struct pw_error *err,
                          const struct secrets *secrets)
{
    json_t *o = rc == 0 ? json_pack("{s:b, s:O?, s:O?}", "ok", 1, "result", out->result, "stats",
                                    out->stats)
                        : json_pack("{s:b, s:s, s:s?, s:s, s:b, s:b, s:O?}", "ok", 0, "exc_type",
                                    out->exc_type ? out->exc_type : "RuntimeError", "exc_module",
                                    out->exc_module, "message", err->msg, "revoked", out->revoked,
                                    "retry", out->retry, "stats", out->stats);
    char *text;

    o = secrets_scrub_json(secrets, o);
    text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (text) {
        fputs(text, stdout);
        fputc('\n', stdout);
        fflush(stdout);
    }
    free(text);
    json_decref(o);
}

int cmd_task(int argc, char **argv)
{
    static const int cancel_signals[] = {SIGUSR1, SIGUSR2};
    struct pw_log log = {2, PW_LOG_INFO, NULL};
    struct secrets secrets;
    struct projection_app app;
    struct celery_task_msg msg;
    struct task_outcome out;
    struct pw_error err;
    struct cancel_watch watch;
    atomic_int cancel = 0;
    pthread_t watcher;
    task_fn test_task;
    char *give_up = NULL;
    int sfd = -1, last_try = 0, record_revoked = 0, rc;

    (void)argc;
    (void)argv;
    /* If the consumer dies, die at once without touching the run: its message goes back
     * to the broker and the redelivery finishes the run (SIGTERM would mark it failed). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    setenv("PW_TASK_PROCESS", "1", 1); /* fault points tell the task process by it */
    memset(&out, 0, sizeof out);
    pw_error_clear(&err);
    if (getenv("PW_LOG_LEVEL"))
        pw_log_parse_level(getenv("PW_LOG_LEVEL"), &log.min_level);
    /* The consumer cancels with SIGUSR1 or SIGUSR2.  SIGTERM/SIGINT are ignored: a service
     * manager or a terminal signalling the whole group must not fail the run while the
     * consumer drains gracefully (it lets running tasks finish). */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    rc = secrets_from_env(&secrets, &err);
    log.secrets = &secrets;
    if (rc || (rc = signals_install_set(cancel_signals, 2, &sfd, &err)) ||
        (rc = read_message(&msg, &give_up, &last_try, &record_revoked, &err)) ||
        (rc = projection_app_from_env(&app, &err))) {
        out.exc_type = "ValueError";
        out.exc_module = "builtins";
        print_outcome(rc, &out, &err, &secrets);
        celery_message_free(&msg);
        free(give_up);
        secrets_free(&secrets);
        return 1;
    }
    app.secrets = &secrets;
    watch.fd = sfd;
    watch.cancel = &cancel;
    pthread_create(&watcher, NULL, watch_signals, &watch);
    pthread_detach(watcher);
    {
        struct task_env env = {&msg, &cancel, &log, &app, give_up, last_try, NULL, record_revoked};
        if (!strcmp(msg.task, "webui.tasks.compute_projection")) {
            rc = projection_task_run(&env, &out, &err);
        } else if (record_revoked) { /* test tasks keep no state to record it in */
            out.revoked = 1;
            rc = pw_error_set(&err, PW_ECANCELED, "revoked");
        } else if ((test_task = tasks_in_task_process(msg.task))) {
            rc = test_task(&env, &out, &err);
        } else {
            out.exc_type = "ValueError";
            out.exc_module = "builtins";
            rc = pw_error_set(&err, PW_EINVAL, "projection-worker-task does not run %.100s",
                              msg.task);
        }
    }
    print_outcome(rc, &out, &err, &secrets);
    json_decref(out.result);
    json_decref(out.stats);
    celery_message_free(&msg);
    free(give_up);
    secrets_free(&secrets);
    return 0;
}
