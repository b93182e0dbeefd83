/* tasks.c - registry of the tasks this worker serves (see header).
 *
 * The projection task lives in its own file once the pipeline lands; until then its
 * handler validates the argument and fails honestly. */
#include "tasks.h"

#include <ctype.h>
#include <string.h>
#include <time.h>

/* Accepts a canonical 8-4-4-4-12 hex UUID. */
static int is_uuid(const char *s)
{
    static const int dash[] = {8, 13, 18, 23};

    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int want_dash = i == dash[0] || i == dash[1] || i == dash[2] || i == dash[3];
        if (want_dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

static int task_ping(const struct task_env *env, struct task_outcome *out, struct pw_error *err)
{
    (void)env;
    (void)err;
    out->result = json_string("pong");
    return 0;
}

/* args [run_uuid] or kwargs {"projection_id": run_uuid}, as the Python task takes. */
static int projection_run_id(const struct celery_task_msg *m, const char **id,
                             struct task_outcome *out, struct pw_error *err)
{
    json_t *v = json_array_size(m->args) > 0 ? json_array_get(m->args, 0)
                                             : json_object_get(m->kwargs, "projection_id");

    out->exc_type = "ValueError";
    out->exc_module = "builtins";
    if (json_array_size(m->args) > 1 ||
        (json_array_size(m->args) == 1 && json_object_size(m->kwargs)))
        return pw_error_set(err, PW_EINVAL,
                            "compute_projection takes one argument, the projection run id");
    if (!json_is_string(v))
        return pw_error_set(err, PW_EINVAL,
                            "compute_projection needs the projection run id (args=[run_uuid] or "
                            "kwargs={\"projection_id\": run_uuid})");
    if (!is_uuid(json_string_value(v)))
        return pw_error_set(err, PW_EINVAL, "projection run id '%.64s' is not a UUID",
                            json_string_value(v));
    *id = json_string_value(v);
    return 0;
}

static int task_compute_projection(const struct task_env *env, struct task_outcome *out,
                                   struct pw_error *err)
{
    const char *run_id = NULL;
    int rc = projection_run_id(env->msg, &run_id, out, err);

    if (rc)
        return rc;
    out->exc_type = "NotImplementedError";
    out->exc_module = "builtins";
    return pw_error_set(err, PW_EUNAVAIL,
                        "projection run %s: webui.tasks.compute_projection is not available in "
                        "this build of projection-worker",
                        run_id);
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
    {"webui.tasks.compute_projection", task_compute_projection},
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
