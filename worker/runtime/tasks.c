/* tasks.c - registry of the tasks this worker serves (see header).
 * The projection pipeline (projection_task.c) runs in a child process per task
 * (task_subprocess.c), so the consumer never loads its libraries. */
#include "tasks.h"

#include "task_subprocess.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int task_ping(const struct task_env *env, struct task_outcome *out, struct pw_error *err)
{
    (void)env;
    (void)err;
    out->result = json_string("pong");
    return 0;
}

#ifdef PW_TEST_TASKS
/* Sleeps in 20 ms steps, honouring the cancel flag. */
static int sleep_cancellably(const struct task_env *env, double seconds, struct task_outcome *out,
                             struct pw_error *err)
{
    struct timespec step = {0, 20 * 1000 * 1000};

    for (double slept = 0; slept < seconds; slept += 0.02) {
        if (atomic_load(env->cancel)) {
            out->exc_type = "RuntimeError";
            out->exc_module = "builtins";
            return pw_error_set(err, PW_ECANCELED, "sleep cancelled");
        }
        nanosleep(&step, NULL);
    }
    out->result = json_real(seconds);
    return 0;
}

/* pw.test.sleep(seconds) */
static int task_test_sleep(const struct task_env *env, struct task_outcome *out,
                           struct pw_error *err)
{
    json_t *v = json_array_get(env->msg->args, 0);

    return sleep_cancellably(env, json_is_number(v) ? json_number_value(v) : 0.0, out, err);
}

/* Adds one to the decimal counter in `path` (missing = 0); returns the new value, or -1
 * when the file cannot be written. */
static int bump_counter(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0;

    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = 0;
        fclose(f);
    }
    if (!(f = fopen(path, "w")))
        return -1;
    fprintf(f, "%d\n", ++n);
    fclose(f);
    return n;
}

/* pw.test.process, run inside projection-worker-task (see header). */
static int task_test_process(const struct task_env *env, struct task_outcome *out,
                             struct pw_error *err)
{
    json_t *kw = env->msg->kwargs, *seconds = json_object_get(kw, "seconds");
    const char *file = json_string_value(json_object_get(kw, "retry_file"));
    int attempt;

    out->exc_type = "RuntimeError";
    out->exc_module = "builtins";
    if (env->give_up) /* as a real task records it, then fails with the reason */
        return pw_error_set(err, PW_EINTERNAL, "gave up: %s", env->give_up);
    if (json_is_true(json_object_get(kw, "die")))
        raise(SIGKILL);
    if (file &&
        (attempt = bump_counter(file)) <= json_integer_value(json_object_get(kw, "retries"))) {
        out->exc_type = "ConnectionError";
        out->retry = 1;
        return pw_error_set(err, PW_EUNAVAIL, "test service unavailable (attempt %d)", attempt);
    }
    out->exc_type = NULL;
    out->exc_module = NULL;
    return sleep_cancellably(env, json_is_number(seconds) ? json_number_value(seconds) : 0.0, out,
                             err);
}
#endif

static const struct task_def registry[] = {
    {"celery.ping", task_ping},
    {"webui.tasks.compute_projection", task_subprocess_run},
#ifdef PW_TEST_TASKS
    {"pw.test.sleep", task_test_sleep},
    {"pw.test.process", task_subprocess_run},
#endif
};

static const char *const registry_names[] = {
    "celery.ping",
    "webui.tasks.compute_projection",
#ifdef PW_TEST_TASKS
    "pw.test.sleep",
    "pw.test.process",
#endif
    NULL,
};

const struct task_def *tasks_lookup(const char *name)
{
    for (size_t i = 0; name && i < sizeof registry / sizeof registry[0]; i++)
        if (!strcmp(registry[i].name, name))
            return &registry[i];
    return NULL;
}

const char *const *tasks_names(void)
{
    return registry_names;
}

task_fn tasks_in_task_process(const char *name)
{
#ifdef PW_TEST_TASKS
    if (name && !strcmp(name, "pw.test.process"))
        return task_test_process;
#endif
    (void)name;
    return NULL;
}
