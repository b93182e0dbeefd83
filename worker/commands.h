/* commands.h - the subcommands of the projection-worker binary.
 *
 * `projection-worker` (light: RabbitMQ + JSON only) runs `run` itself and hands the
 * other commands to `projection-worker-task` beside it (execv), which links PostgreSQL,
 * libcurl, OpenBLAS and runs them all.
 *
 * Each takes the arguments after its own name (argv[0] is the subcommand name) and
 * returns the process exit status.  main() owns nothing else: every command parses
 * its own flags, builds its own state and frees it before returning. */
#ifndef PW_COMMANDS_H
#define PW_COMMANDS_H

/* consume Celery tasks (worker/cmd_run.c) */
int cmd_run(int argc, char **argv);
/* apply migrations/ (worker/cmd_migrate.c) */
int cmd_migrate(int argc, char **argv);
/* hash JSON-lines cases (worker/cmd_metadata_hash.c) */
int cmd_metadata_hash(int argc, char **argv);
/* project a vector file (worker/cmd_project.c) */
int cmd_project(int argc, char **argv);
/* run one task message from stdin for the consumer (worker/cmd_task.c) */
int cmd_task(int argc, char **argv);

#endif
