/* tasks.h - the task registry: Celery task name -> C handler.
 *
 * A handler runs on a pool thread with the decoded message (read-only) and a cancel
 * flag it must poll at least once a second (set on revoke, hard time limit or
 * shutdown).  It returns 0 with a new reference in out->result (the task's return
 * value, any JSON), or a negative code with out->exc_type / exc_module naming the
 * exception the Python client will raise and err holding its message.
 *
 * tasks_lookup() finds a registered task; the table is static and read-only.
 * Registered: celery.ping, webui.tasks.compute_projection, and in test builds
 * (PW_TEST_TASKS) pw.test.sleep(seconds) which sleeps cancellably and
 * pw.test.process(seconds=0, die=false, retry_file=None, retries=0), which runs in a
 * task process like a projection: it dies of SIGKILL when `die`, answers retry while
 * the counter in retry_file is below `retries` (counting up), else sleeps.
 *
 * tasks_in_task_process() is the table of projection-worker-task: the handler a task
 * process runs for a name (test tasks only; the projection is linked there directly). */
#ifndef PW_TASKS_H
#define PW_TASKS_H

#include <jansson.h>
#include <stdatomic.h>

#include "celery_message.h"
#include "log.h"
#include "pw_error.h"

/* Values of the cancel flag: any non-zero value means stop; TASK_CANCEL_REVOKED says
 * the task was revoked with terminate (the work is to be recorded as cancelled, not
 * failed). */
#define TASK_CANCEL_STOP    1
#define TASK_CANCEL_REVOKED 2

struct task_env {
    const struct celery_task_msg *msg;
    atomic_int *cancel; /* non-zero: stop as soon as possible, return PW_ECANCELED */
    const struct pw_log *log;
    void *app; /* the command's shared, read-only context (database URLs etc.) */
    /* non-NULL: earlier attempts of this message died (e.g. "killed by signal 9, likely
     * out of memory" after the bounded number of deaths): record the failure with this
     * reason where the task keeps state, and do not run the work again */
    const char *give_up;
    /* no Celery retry follows this attempt (its retries reached max_retries): a task that
     * can record a transient failure (Qdrant still failing) records it instead of
     * answering retry */
    int last_try;
    /* non-NULL: a task that runs in a child process stores the child's pid here while
     * it runs (0 otherwise), for a cold shutdown to stop it and for its memory metric */
    atomic_int *child_pid;
    /* non-zero: an attempt of this message was revoked with terminate and killed before
     * it stopped by itself: record the work as cancelled (and clean up after it) where
     * the task keeps state, and do not run it */
    int record_revoked;
};

struct task_outcome {
    json_t *result;         /* success value (new reference) */
    const char *exc_type;   /* on failure: e.g. "ValueError" (static string) */
    const char *exc_module; /* on failure: e.g. "builtins"; NULL = synthesised class */
    int revoked;            /* on failure: report REVOKED (the work was cancelled) */
    int retry;     /* on failure: transient (a service unreachable), nothing was decided: the
                    * message is delivered again later instead of being answered FAILURE */
    int killed_by; /* with retry: the task's process died of this signal, which the worker
                    * did not send (the OOM killer's SIGKILL); the consumer counts deaths */
    /* what the work measured, for metrics (new reference or NULL, success or failure):
     * {"reducer": "umap", "reused": bool, "points": n, "vector_bytes": n,
     *  "phases": {"fetch": s, "categories": s, "reduce": s, "publish": s}} */
    json_t *stats;
};

typedef int (*task_fn)(const struct task_env *env, struct task_outcome *out, struct pw_error *err);

struct task_def {
    const char *name;
    task_fn run;
};

const struct task_def *tasks_lookup(const char *name);
/* Names of all registered tasks, NULL-terminated (for logs and `inspect registered`). */
const char *const *tasks_names(void);
task_fn tasks_in_task_process(const char *name);

#endif
