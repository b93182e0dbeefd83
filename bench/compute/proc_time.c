/* proc_time - runs a command and writes how long it ran, its CPU time and its peak RSS.
 *
 *     proc_time RESULT_FILE COMMAND [ARG...]
 *
 * RESULT_FILE receives one JSON object:
 *     {"wall_s": W, "user_s": U, "sys_s": S, "maxrss_kb": R, "status": C}
 * wall_s runs from just before the command is spawned to the moment it has been reaped;
 * the rest is the command's rusage from wait4.  The command inherits stdin, stdout and
 * stderr.  proc_time exits with the command's status (128 + signal when killed), 127 when
 * the command could not be started, 125 on its own errors.
 *
 * The benchmarks time both sides (ours and the Python references) through this program
 * instead of /usr/bin/time -v from Python: a Python process holding the data sets costs
 * milliseconds to fork, and /usr/bin/time reports wall time in hundredths; a PCA of 6,000
 * rows runs in about ten milliseconds.  It is tiny, so the peak RSS it reports is the
 * command's own (the kernel keeps the larger of the image before and after exec). */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double seconds(struct timespec t)
{
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double tv_seconds(struct timeval t)
{
    return (double)t.tv_sec + (double)t.tv_usec * 1e-6;
}

static int exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 125;
}

static int write_result(const char *path, double wall, const struct rusage *ru, int code)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "proc_time: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "{\"wall_s\": %.6f, \"user_s\": %.6f, \"sys_s\": %.6f, \"maxrss_kb\": %ld, "
            "\"status\": %d}\n",
            wall, tv_seconds(ru->ru_utime), tv_seconds(ru->ru_stime), ru->ru_maxrss, code);
    return fclose(f) ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: proc_time RESULT_FILE COMMAND [ARG...]\n");
        return 125;
    }
    struct timespec t0, t1;
    pid_t pid;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = posix_spawnp(&pid, argv[2], NULL, NULL, argv + 2, environ);
    if (rc) {
        fprintf(stderr, "proc_time: cannot run %s: %s\n", argv[2], strerror(rc));
        return 127;
    }
    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "proc_time: wait4: %s\n", strerror(errno));
            return 125;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int code = exit_code(status);
    if (write_result(argv[1], seconds(t1) - seconds(t0), &ru, code))
        return 125;
    return code;
}
