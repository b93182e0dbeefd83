/* dispatch.c - the one command-line dispatcher the three binaries share. */
#include <stdio.h>
#include <string.h>

#include "commands.h"

static void usage(FILE *out, const struct cli_command *commands, size_t n)
{
    fprintf(out, "usage: projection-worker COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].help);
    fprintf(out, "\n'projection-worker COMMAND --help' describes a command's options.\n");
}

int cli_dispatch(const struct cli_command *commands, size_t n, int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr, commands, n);
        return 2;
    }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(stdout, commands, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "projection-worker: unknown command '%s'\n", argv[1]);
    usage(stderr, commands, n);
    return 2;
}
