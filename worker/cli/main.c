/* main.c - `projection-worker`, the binary users and operators start.
 *
 * It links libc only and serves no command itself: each command replaces this process
 * (execv, same pid, same argv[0]) with the binary that links what the command needs, so
 * the command line is one for users and a short `project` or `migrate` does not load the
 * consumer's TLS stacks (~13 ms), nor does an idle consumer map OpenBLAS or libpq. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "commands.h"
#include "sibling_bin.h"

/* OpenBLAS settings for the task binary, whose OpenBLAS reads them from the environment
 * when it loads; this binary runs before it.
 * Threads: every BLAS and LAPACK call in compute/ runs on one OpenBLAS thread over fixed
 * blocks spread on compute's own threads (blas_fixed.h), so that the bytes do not depend
 * on the core count.  An OpenBLAS pool would never work, yet it starts when the library
 * loads and spins (sched_yield) for ~0.1 s beside compute's threads: a small projection
 * took twice as long.  So OPENBLAS_NUM_THREADS is 1 whatever the environment says.
 * Kernels: OpenBLAS picks them from the CPU model and, on CPUs its tables do not know
 * (virtual machines report generic models), falls back to SSE3 kernels at half the
 * sgemm speed, so OPENBLAS_CORETYPE is chosen by CPU features unless the operator set it. */
static void configure_openblas(void)
{
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    if (getenv("OPENBLAS_CORETYPE"))
        return;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        setenv("OPENBLAS_CORETYPE", "Haswell", 0);
}

/* Replaces this process with binary `name` ($env_var overrides) running the same
 * command line; argv[-1] is the original argv[0], kept so that `ps` shows what the
 * user typed. */
static int run_in(const char *name, const char *env_var, char **argv)
{
    char bin[4096];
    struct pw_error err;

    if (sibling_bin_find(name, env_var, bin, sizeof bin, &err)) {
        fprintf(stderr, "projection-worker: %s\n", err.msg);
        return 1;
    }
    execv(bin, argv - 1);
    perror("projection-worker: execv");
    return 1;
}

static int in_consumer_binary(int argc, char **argv)
{
    (void)argc;
    return run_in(CONSUMER_BIN_NAME, CONSUMER_BIN_ENV, argv);
}

static int in_task_binary(int argc, char **argv)
{
    (void)argc;
    return run_in(TASK_BIN_NAME, TASK_BIN_ENV, argv);
}

static int in_project_binary(int argc, char **argv)
{
    (void)argc;
    return run_in(PROJECT_BIN_NAME, PROJECT_BIN_ENV, argv);
}

static const struct cli_command commands[] = {
    {"run", in_consumer_binary, CLI_HELP_RUN},
    {"migrate", in_task_binary, CLI_HELP_MIGRATE},
    {"metadata-hash", in_task_binary, CLI_HELP_METADATA_HASH},
    {"project", in_project_binary, CLI_HELP_PROJECT},
    {"backfill", in_task_binary, CLI_HELP_BACKFILL},
    {"task", in_task_binary, CLI_HELP_TASK},
};

int main(int argc, char **argv)
{
    configure_openblas();
    return cli_dispatch(commands, sizeof commands / sizeof commands[0], argc, argv);
}
