/* cmd_metadata_hash.c - placeholder until this subcommand lands; it says so and fails. */
#include <stdio.h>

#include "commands.h"

int cmd_metadata_hash(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "projection-worker %s: not available in this build\n", argv[0]);
    return 2;
}
