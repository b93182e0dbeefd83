/* main_task.c - `projection-worker-task`: every command, with PostgreSQL, libcurl and
 * OpenBLAS linked.  The consumer runs one task per process in it (`task`) and hands it
 * `migrate` and `metadata-hash`. */
#include <curl/curl.h>
#include <stdio.h>

#include "commands.h"

static const struct cli_command commands[] = {
    {"run", cmd_run, CLI_HELP_RUN},
    {"migrate", cmd_migrate, CLI_HELP_MIGRATE},
    {"metadata-hash", cmd_metadata_hash, CLI_HELP_METADATA_HASH},
    {"project", cmd_project, CLI_HELP_PROJECT},
    {"backfill", cmd_backfill, CLI_HELP_BACKFILL},
    {"task", cmd_task, CLI_HELP_TASK},
};

int main(int argc, char **argv)
{
    int rc;

    /* libcurl's global state must be set up before any thread exists. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "projection-worker: libcurl initialisation failed\n");
        return 1;
    }
    rc = cli_dispatch(commands, sizeof commands / sizeof commands[0], argc, argv);
    curl_global_cleanup();
    return rc;
}
