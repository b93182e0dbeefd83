/* main_project.c - `projection-worker-project`: the `project` command alone, linking
 * compute/ and jansson but none of PostgreSQL's, libcurl's and their TLS stacks'
 * libraries, whose pages would count in a projection's peak RSS. */
#include "commands.h"

static const struct cli_command commands[] = {
    {"project", cmd_project, CLI_HELP_PROJECT},
};

int main(int argc, char **argv)
{
    return cli_dispatch(commands, sizeof commands / sizeof commands[0], argc, argv);
}
