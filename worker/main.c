/* main.c - entry point of projection-worker: picks the subcommand and runs it. */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "commands.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"run", cmd_run, "consume webui.tasks.compute_projection (and celery.ping) from RabbitMQ"},
    {"migrate", cmd_migrate, "apply the SQL migrations to DATABASE_URL"},
    {"metadata-hash", cmd_metadata_hash,
     "read metadata-hash cases (JSON lines) on stdin, print hashes"},
    {"project", cmd_project, "project a file of float32 vectors to 2-D without any service"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: projection-worker COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n'projection-worker COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            int rc;
            /* libcurl's global state must be set up before any thread exists. */
            if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                fprintf(stderr, "projection-worker: libcurl initialisation failed\n");
                return 1;
            }
            rc = commands[i].fn(argc - 1, argv + 1);
            curl_global_cleanup();
            return rc;
        }
    }
    fprintf(stderr, "projection-worker: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
