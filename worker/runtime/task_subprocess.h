/* task_subprocess.h - run one task in a child process (projection-worker-task).
 *
 * The consumer binary stays small (RabbitMQ, JSON, threads): tasks that need the heavy
 * libraries - PostgreSQL, libcurl, OpenBLAS - run in `projection-worker-task task`, one
 * process per task.  An idle worker therefore maps none of them, a crash in a task
 * cannot take the consumer down, and every byte a projection allocated goes back to the
 * system when its process exits.
 *
 * Protocol: the child gets the task message as one JSON object on stdin
 * ({"id", "task", "args", "kwargs", "retries", "root_id", "parent_id", "last_try",
 * and "give_up" when env->give_up is set}) and answers with one JSON object on stdout:
 *   {"ok": true, "result": <value>, "stats": {...}}
 *   {"ok": false, "exc_type": "...", "exc_module": "..."|null, "message": "...",
 *    "revoked": bool, "retry": bool, "stats": {...}}
 * ("stats", optional: task_outcome.stats).  While the child runs its pid is in
 * *env->child_pid (when given).
 * Its stderr is the worker's (JSON log lines).  The environment is inherited.
 * When the cancel flag rises (hard time limit) the child gets SIGUSR1, which it turns
 * into its own cancel flag (SIGUSR2 when the flag is TASK_CANCEL_REVOKED: revoke
 * --terminate, the run is recorded cancelled; a child that has not stopped 0.3 s later
 * is killed and a second run with "revoked": true records the cancellation instead,
 * so a revoke ends the work within a second whatever phase it is in); SIGKILL follows after
 * kill_grace_s.  The child runs in its own process group and dies with the consumer
 * (PR_SET_PDEATHSIG). A child that dies without an answer of a signal we did not send (the OOM
 * killer) gives out->retry with out->killed_by = the signal: nothing was decided, the consumer
 * requeues and counts.  task_subprocess_death_reason() words such a death
 * ("killed by signal 9, likely out of memory"). */
#ifndef PW_TASK_SUBPROCESS_H
#define PW_TASK_SUBPROCESS_H

#include "sibling_bin.h"
#include "tasks.h"

struct task_subprocess_config {
    const char *task_bin; /* path of projection-worker-task */
    double kill_grace_s;  /* SIGTERM -> SIGKILL delay */
};

/* A task_fn: env->app must point to a struct task_subprocess_config. */
int task_subprocess_run(const struct task_env *env, struct task_outcome *out, struct pw_error *err);

void task_subprocess_death_reason(int signo, char *buf, size_t cap);

/* Finds projection-worker-task: $PW_TASK_BIN, else next to /proc/self/exe.  Writes
 * the path into buf.  PW_ENOTFOUND when it is not an executable file. */
int task_subprocess_find_bin(char *buf, size_t cap, struct pw_error *err);

#endif
