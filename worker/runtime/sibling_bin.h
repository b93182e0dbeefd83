/* sibling_bin.h - find one of projection-worker's binaries installed beside this one.
 *
 * The command line is one binary for users (`projection-worker COMMAND`), but each
 * command runs in the binary that links what it needs (docs/ARCHITECTURE.md): the front
 * execs it, the consumer spawns the task binary.  libc only, so the front that uses it
 * maps no other library.
 *
 * sibling_bin_find writes $env_var when set and non-empty, else `name` in the directory
 * of /proc/self/exe, into buf (cap bytes).  PW_EIO when /proc/self/exe cannot be read,
 * PW_ENOTFOUND when the path is not an executable file (err says which variable sets it). */
#ifndef PW_SIBLING_BIN_H
#define PW_SIBLING_BIN_H

#include <stddef.h>

#include "pw_error.h"

/* The binaries and the variables that override where each is. */
#define CONSUMER_BIN_NAME "projection-worker-consumer" /* `run` */
#define CONSUMER_BIN_ENV  "PW_CONSUMER_BIN"
#define TASK_BIN_NAME     "projection-worker-task" /* tasks, migrate, backfill, ... */
#define TASK_BIN_ENV      "PW_TASK_BIN"
#define PROJECT_BIN_NAME  "projection-worker-project" /* `project` */
#define PROJECT_BIN_ENV   "PW_PROJECT_BIN"

int sibling_bin_find(const char *name, const char *env_var, char *buf, size_t cap,
                     struct pw_error *err);

#endif
