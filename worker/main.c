/* main.c - entry point of the three binaries.
 *
 * Built three times: as `projection-worker` (PW_LIGHT_MAIN: RabbitMQ + JSON only; runs
 * the consumer and hands every other command to another binary), as
 * `projection-worker-task` (everything, PostgreSQL, libcurl and OpenBLAS included) and as
 * `projection-worker-project` (PW_PROJECT_MAIN: the `project` command alone, compute/
 * and JSON: it maps none of PostgreSQL's, libcurl's and their TLS stacks' ~9 MB).
 * The split keeps an idle worker small; the command line is the same for users. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#ifdef PW_LIGHT_MAIN
#include "task_subprocess.h"
#elif !defined(PW_PROJECT_MAIN)
#include <curl/curl.h>
#endif

#ifdef PW_LIGHT_MAIN
/* OpenBLAS settings for the task binary, whose OpenBLAS reads them from the environment
 * when it loads; this binary runs before it and sets what the operator did not.
 * Kernels: OpenBLAS picks them from the CPU model and, on CPUs its tables do not know
 * (virtual machines report generic models), falls back to SSE3 kernels: half the sgemm
 * speed and a 4x slower PCA measured here, so OPENBLAS_CORETYPE is chosen by CPU
 * features. */
static void configure_openblas(void)
{
    /* OpenBLAS's idle threads spin (sched_yield) for 2^28 cycles, ~0.1 s, after every
     * call; compute/ alternates BLAS calls with its own threaded passes (k-NN cells, PCA
     * blocks), which the spinning slowed by 10-25%.  2^10 cycles: they sleep at once. */
    setenv("OPENBLAS_THREAD_TIMEOUT", "10", 0);
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
 * command. */
static int run_in(const char *name, const char *env_var, char **argv)
{
    char bin[4096];
    struct pw_error err;

    if (task_subprocess_find_named(name, env_var, bin, sizeof bin, &err)) {
        fprintf(stderr, "projection-worker: %s\n", err.msg);
        return 1;
    }
    argv[-1] = bin; /* argv[-1] is the original argv[0] slot */
    execv(bin, argv - 1);
    perror("projection-worker: execv");
    return 1;
}

static int run_in_task_binary(int argc, char **argv)
{
    (void)argc;
    return run_in(TASK_BIN_NAME, TASK_BIN_ENV, argv);
}

static int run_in_project_binary(int argc, char **argv)
{
    (void)argc;
    return run_in("projection-worker-project", "PW_PROJECT_BIN", argv);
}
#define HEAVY(fn)   run_in_task_binary
#define PROJECT(fn) run_in_project_binary
#else
#define HEAVY(fn)   fn
#define PROJECT(fn) fn
#endif

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
#ifndef PW_PROJECT_MAIN
    {"run", cmd_run, "consume webui.tasks.compute_projection (and celery.ping) from RabbitMQ"},
    {"migrate", HEAVY(cmd_migrate), "apply the SQL migrations to DATABASE_URL"},
    {"metadata-hash", HEAVY(cmd_metadata_hash),
     "read metadata-hash cases (JSON lines) on stdin, print hashes"},
#endif
    {"project", PROJECT(cmd_project),
     "project a file of float32 vectors to 2-D without any service"},
#ifndef PW_PROJECT_MAIN
    {"task", HEAVY(cmd_task), "run one task message from stdin (used by `run`)"},
#endif
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
#ifdef PW_LIGHT_MAIN
    configure_openblas();
#endif
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (!strcmp(argv[1], commands[i].name)) {
            int rc;
#if !defined(PW_LIGHT_MAIN) && !defined(PW_PROJECT_MAIN)
            /* libcurl's global state must be set up before any thread exists. */
            if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                fprintf(stderr, "projection-worker: libcurl initialisation failed\n");
                return 1;
            }
#endif
            rc = commands[i].fn(argc - 1, argv + 1);
#if !defined(PW_LIGHT_MAIN) && !defined(PW_PROJECT_MAIN)
            curl_global_cleanup();
#endif
            return rc;
        }
    }
    fprintf(stderr, "projection-worker: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
