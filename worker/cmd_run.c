/* cmd_run.c - placeholder (being written). */
#include <stdio.h>

#include "commands.h"

int cmd_run(int argc, char **argv)
{
    (void)argc;
    fprintf(stderr, "projection-worker %s: not available in this build\n", argv[0]);
    return 2;
}
