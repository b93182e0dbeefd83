/* main_consumer.c - `projection-worker-consumer`: the `run` command alone, linking
 * rabbitmq-c, jansson and libmicrohttpd, so an idle worker maps none of the heavy
 * libraries; each task runs in projection-worker-task (task_subprocess.h). */
#include "commands.h"

static const struct cli_command commands[] = {
    {"run", cmd_run, CLI_HELP_RUN},
};

int main(int argc, char **argv)
{
    return cli_dispatch(commands, sizeof commands / sizeof commands[0], argc, argv);
}
