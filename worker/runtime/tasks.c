/* tasks.c - registry of the tasks this worker serves (see header).
 * The projection pipeline (projection_task.c) runs in a child process per task
 * (task_subprocess.c), so the consumer never loads its libraries. */
#include "tasks.h"

#include "task_subprocess.h"

#include <ctype.h>
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
/* pw.test.sleep(seconds): sleeps in 20 ms steps, honouring the cancel flag. */
static int task_test_sleep(const struct task_env *env, struct task_outcome *out,
                           struct pw_error *err)
{
    json_t *v = json_array_get(env->msg->args, 0);
    double seconds = json_is_number(v) ? json_number_value(v) : 0.0;
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
#endif

static const struct task_def registry[] = {
    {"celery.ping", task_ping},
    {"webui.tasks.compute_projection", task_subprocess_run},
#ifdef PW_TEST_TASKS
    {"pw.test.sleep", task_test_sleep},
#endif
};

static const char *const registry_names[] = {
    "celery.ping",
    "webui.tasks.compute_projection",
#ifdef PW_TEST_TASKS
    "pw.test.sleep",
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
