/* commands.h - the subcommands of projection-worker and the table that dispatches them.
 *
 * Four binaries share one command line (see docs/ARCHITECTURE.md):
 *   projection-worker           main.c: libc only; hands every command to the binary
 *                               that has it (execv);
 *   projection-worker-consumer  main_consumer.c: `run` alone (RabbitMQ, JSON, HTTP);
 *   projection-worker-task      main_task.c: every command, PostgreSQL, libcurl and
 *                               OpenBLAS linked; runs one task per process for `run`;
 *   projection-worker-project   main_project.c: `project` alone, compute/ and JSON.
 *
 * Each command takes the arguments after its own name (argv[0] is the command name) and
 * returns the process exit status.  It parses its own flags, builds its own state and
 * frees it before returning. */
#ifndef PW_COMMANDS_H
#define PW_COMMANDS_H

#include <stddef.h>

struct cli_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
};

/* usage on -h/--help/help; the named command's status; 2 for an unknown command. */
int cli_dispatch(const struct cli_command *commands, size_t n, int argc, char **argv);

/* consume Celery tasks (cmd_run.c) */
int cmd_run(int argc, char **argv);
/* apply migrations/ (cmd_migrate.c) */
int cmd_migrate(int argc, char **argv);
/* hash JSON-lines cases (cmd_metadata_hash.c) */
int cmd_metadata_hash(int argc, char **argv);
/* project a vector file (cmd_project.c) */
int cmd_project(int argc, char **argv);
/* enqueue the stale projections of many collections (cmd_backfill.c) */
int cmd_backfill(int argc, char **argv);
/* run one task message from stdin for the consumer (cmd_task.c) */
int cmd_task(int argc, char **argv);

#define CLI_HELP_RUN           "consume webui.tasks.compute_projection (and celery.ping) from RabbitMQ"
#define CLI_HELP_MIGRATE       "apply the SQL migrations to DATABASE_URL"
#define CLI_HELP_METADATA_HASH "read metadata-hash cases (JSON lines) on stdin, print hashes"
#define CLI_HELP_PROJECT       "project a file of float32 vectors to 2-D without any service"
#define CLI_HELP_BACKFILL      "enqueue projections that are not up to date for many collections"
#define CLI_HELP_TASK          "run one task message from stdin (used by `run`)"

#endif
