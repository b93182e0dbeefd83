/* task_subprocess.c - one child process per heavy task (see header).
 *
 * posix_spawn keeps the multithreaded parent safe (no code runs between fork and exec);
 * the child's stdin gets the message, its stdout is read with poll() so the cancel flag
 * is checked every 100 ms while the task runs. */
#include "clock.h"
#include "sibling_bin.h"
#include "task_subprocess.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_OUTPUT (16u << 20) /* a result larger than this is a bug */
/* revoke --terminate: how long the task may take to stop by itself before it is killed
 * and the cancellation recorded by a second, short run (record_revoked) */
#define REVOKE_GRACE_S 0.3

int task_subprocess_find_bin(char *buf, size_t cap, struct pw_error *err)
{
    return sibling_bin_find(TASK_BIN_NAME, TASK_BIN_ENV, buf, cap, err);
}

void task_subprocess_death_reason(int signo, char *buf, size_t cap)
{
    const char *name = sigabbrev_np(signo);

    /* SIGKILL from outside is what the OOM killer sends; other signals say what they are. */
    if (signo == SIGKILL)
        snprintf(buf, cap, "killed by signal %d, likely out of memory", signo);
    else
        snprintf(buf, cap, "killed by signal %d (SIG%s)", signo, name ? name : "?");
}

static char *message_json(const struct task_env *env)
{
    const struct celery_task_msg *m = env->msg;
    json_t *o = json_pack("{s:s, s:s, s:O, s:O, s:i, s:s?, s:s?, s:s?, s:b, s:b}", "id", m->id,
                          "task", m->task, "args", m->args, "kwargs", m->kwargs, "retries",
                          m->retries, "root_id", m->root_id, "parent_id", m->parent_id, "give_up",
                          env->give_up, "last_try", env->last_try, "revoked", env->record_revoked);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

static int spawn_child(const char *bin, pid_t *pid, int *to_child, int *from_child,
                       struct pw_error *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, defaults;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, rc;
    char *argv[] = {(char *)bin, "task", NULL};

    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) {
        rc = pw_error_set(err, PW_EIO, "pipe: %s", strerror(errno));
        goto fail;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    /* Task threads block every signal; the child must start with none blocked (or it
     * would never see the SIGUSR1 that cancels it) and default dispositions. */
    posix_spawnattr_init(&attr);
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGUSR1);
    sigaddset(&defaults, SIGUSR2);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    /* its own process group: a terminal's ^C reaches the consumer only */
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    rc = posix_spawn(pid, bin, &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        rc = pw_error_set(err, PW_EIO, "cannot start %s: %s", bin, strerror(rc));
        goto fail;
    }
    close(in[0]);
    close(out[1]);
    *to_child = in[1];
    *from_child = out[0];
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
    }
    return rc;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads the child's stdout until EOF, signalling it when the task is cancelled
 * (*termed says whether it was). */
static int collect_output(const struct task_env *env, const struct task_subprocess_config *cfg,
                          pid_t pid, int fd, char **text, size_t *len, int *termed,
                          struct pw_error *err)
{
    size_t cap = 4096;
    double killed_at = 0;

    *len = 0;
    *text = malloc(cap);
    if (!*text)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 100);
        if (r < 0 && errno != EINTR)
            return pw_error_set(err, PW_EIO, "poll: %s", strerror(errno));
        if (atomic_load(env->cancel) && !*termed) {
            kill(pid, atomic_load(env->cancel) == TASK_CANCEL_REVOKED ? SIGUSR2 : SIGUSR1);
            *termed = 1;
            killed_at = pw_mono_now();
        }
        if (*termed && killed_at > 0 &&
            pw_mono_now() - killed_at > (atomic_load(env->cancel) == TASK_CANCEL_REVOKED
                                             ? REVOKE_GRACE_S
                                             : cfg->kill_grace_s)) {
            kill(pid, SIGKILL);
            pw_log_event(env->log, PW_LOG_WARNING, "task_process_killed",
                         json_pack("{s:s, s:f}", "task_id", env->msg->id, "after_s",
                                   pw_mono_now() - killed_at),
                         "the task did not stop when asked");
            killed_at = -1;
        }
        if (r > 0) {
            ssize_t n;
            if (*len + 4096 > cap) {
                char *bigger;
                if (cap >= MAX_OUTPUT)
                    return pw_error_set(err, PW_EPROTO, "task process wrote more than %u bytes",
                                        MAX_OUTPUT);
                bigger = realloc(*text, cap * 2);
                if (!bigger)
                    return pw_error_set(err, PW_ENOMEM, "out of memory");
                *text = bigger;
                cap *= 2;
            }
            n = read(fd, *text + *len, cap - *len - 1);
            if (n == 0)
                break;
            if (n > 0)
                *len += (size_t)n;
        }
    }
    (*text)[*len] = '\0';
    return 0;
}

/* The child's answer, or what its exit status says when it gave none; `termed`: we
 * signalled it (cancel), so a death by signal is ours, not a crash to retry. */
static int interpret(const char *text, int status, int termed, struct task_outcome *out,
                     struct pw_error *err)
{
    json_t *o = json_loads(text, JSON_DISABLE_EOF_CHECK, NULL);
    char reason[96];
    int rc = 0;

    if (!json_is_object(o)) {
        out->exc_type = "RuntimeError";
        out->exc_module = "builtins";
        if (WIFSIGNALED(status) && !termed) {
            out->retry = 1;
            out->killed_by = WTERMSIG(status);
            task_subprocess_death_reason(out->killed_by, reason, sizeof reason);
            rc = pw_error_set(err, PW_EINTERNAL, "task process %s", reason);
        } else if (WIFSIGNALED(status))
            rc = pw_error_set(err, PW_EINTERNAL, "task process died with signal %d",
                              WTERMSIG(status));
        else
            rc = pw_error_set(err, PW_EINTERNAL, "task process exited %d without a result",
                              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        json_decref(o);
        return rc;
    }
    if (json_is_object(json_object_get(o, "stats")))
        out->stats = json_incref(json_object_get(o, "stats"));
    if (json_is_true(json_object_get(o, "ok"))) {
        out->result = json_incref(json_object_get(o, "result"));
    } else {
        /* exc_type/module must outlive `o`: map them onto static names. */
        static const char *const known[] = {"ValueError",         "TimeoutError", "ConnectionError",
                                            "PermissionError",    "MemoryError",  "RuntimeError",
                                            "NotImplementedError"};
        const char *t = json_string_value(json_object_get(o, "exc_type"));
        out->exc_type = "RuntimeError";
        for (size_t i = 0; t && i < sizeof known / sizeof known[0]; i++)
            if (!strcmp(t, known[i]))
                out->exc_type = known[i];
        out->exc_module = "builtins";
        out->revoked = json_is_true(json_object_get(o, "revoked"));
        out->retry = json_is_true(json_object_get(o, "retry"));
        rc = pw_error_set(err, PW_EINVAL, "%s",
                          json_string_value(json_object_get(o, "message"))
                              ? json_string_value(json_object_get(o, "message"))
                              : "task failed");
        if (out->revoked)
            err->code = rc = PW_ECANCELED;
    }
    json_decref(o);
    return rc;
}

/* The task was revoked with terminate and had to be killed: a second run of the same
 * message, not cancellable, records the cancellation (env->record_revoked). */
static int record_revoked(const struct task_env *env, struct task_outcome *out,
                          struct pw_error *err)
{
    struct task_env again = *env;
    atomic_int not_cancelled = 0;

    again.cancel = &not_cancelled;
    again.record_revoked = 1;
    json_decref(out->result);
    memset(out, 0, sizeof *out);
    pw_error_clear(err);
    return task_subprocess_run(&again, out, err);
}

int task_subprocess_run(const struct task_env *env, struct task_outcome *out, struct pw_error *err)
{
    const struct task_subprocess_config *cfg = env->app;
    char *input = NULL, *output = NULL;
    size_t out_len = 0;
    int to_child = -1, from_child = -1, status = 0, termed = 0, rc;
    pid_t pid = -1;

    if (!cfg || !cfg->task_bin) {
        out->exc_type = "RuntimeError";
        out->exc_module = "builtins";
        return pw_error_set(err, PW_EINTERNAL, "no task binary configured");
    }
    input = message_json(env);
    if (!input) {
        rc = pw_error_set(err, PW_ENOMEM, "cannot encode the task message");
        goto done;
    }
    if ((rc = spawn_child(cfg->task_bin, &pid, &to_child, &from_child, err)))
        goto done;
    if (env->child_pid)
        atomic_store(env->child_pid, (int)pid);
    if (write_all(to_child, input, strlen(input))) {
        /* the child died before reading: its exit status tells why */
    }
    close(to_child);
    to_child = -1;
    rc = collect_output(env, cfg, pid, from_child, &output, &out_len, &termed, err);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (env->child_pid)
        atomic_store(env->child_pid, 0);
    pid = -1;
    if (!rc)
        rc = interpret(output, status, termed, out, err);
    if (termed && atomic_load(env->cancel) == TASK_CANCEL_REVOKED && WIFSIGNALED(status) &&
        WTERMSIG(status) == SIGKILL && !env->record_revoked)
        rc = record_revoked(env, out, err);
done:
    if (rc && !out->exc_type) {
        out->exc_type = "RuntimeError";
        out->exc_module = "builtins";
    }
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        if (env->child_pid)
            atomic_store(env->child_pid, 0);
    }
    if (to_child >= 0)
        close(to_child);
    if (from_child >= 0)
        close(from_child);
    free(input);
    free(output);
    return rc;
}
