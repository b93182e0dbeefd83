/* cmd_project.c - `projection-worker project`: one projection of a vector file, no services.
 *
 *   projection-worker project --input FILE [--dim D] [--reducer NAME]
 *                             [--config JSON] [--seed S] [--threads T] --out DIR
 *
 * The reduction is the task's own step (reducer.h): the same --config keys, Python
 * conversions and defaults, and the same fall-back to PCA when the requested reducer
 * (or an unknown name) fails, reported in meta.json's fallback_reason and in one
 * warning line on stderr.  The request bounds are the task's too: PW_MAX_N_NEIGHBORS,
 * PW_MAX_PERPLEXITY and PW_MAX_N_ITER from the environment, else reducer.h's defaults;
 * a bound applied goes to meta.json's limits_applied and one warning line.  One key
 * only this command reads: "knn_method" (auto, exact or approx).  Writes x.f32.bin, y.f32.bin and
 * meta.json (reducer_params, PCA's explained_variance_ratio and singular_values, t-SNE's
 * kl_divergence, UMAP's fit, per-phase timings) into DIR. Exit status: 0 done, 2 bad arguments or
 * input (one line on stderr), 1 the computation failed, 130 interrupted (SIGINT/SIGTERM cancel the
 * computation). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "progress.h"
#include "project_io.h"
#include "reducer.h"

static atomic_int project_cancel; /* owned by this command; set by its signal handler */

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&project_cancel, 1);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

struct tty_progress {
    const char *phase;
    int last_permille;
};

static void show_progress(void *ctx, const char *phase, double fraction)
{
    struct tty_progress *t = ctx;
    int pm = (int)(fraction * 1000);
    if (t->phase && strcmp(t->phase, phase) != 0)
        fputc('\n', stderr);
    else if (t->phase && pm == t->last_permille)
        return;
    t->phase = phase;
    t->last_permille = pm;
    fprintf(stderr, "\r%-14s %5.1f%%", phase, pm / 10.0);
    fflush(stderr);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: projection-worker project --input FILE [--dim D] [--reducer NAME]\n"
            "         [--config JSON] [--seed S] [--threads T] --out DIR\n"
            "  --input    raw little-endian float32 rows (needs --dim) or a .npy float32/float64 "
            "2-D array\n"
            "  --reducer  pca (default), umap or tsne; when it fails (or for another name) PCA\n"
            "             runs instead and meta.json says why, as in the Python task\n"
            "  --config   reducer parameters as in the Python task, e.g. "
            "'{\"n_neighbors\": 30}'\n");
}

struct project_args {
    const char *input, *outdir, *reducer, *config_text;
    long long dim, seed, threads;
};

/* -1 when the command should run, else the exit status (help: 0, bad flags: 2). */
static int parse_args(int argc, char **argv, struct project_args *a)
{
    static const struct option longopts[] = {{"input", required_argument, NULL, 'i'},
                                             {"dim", required_argument, NULL, 'd'},
                                             {"reducer", required_argument, NULL, 'r'},
                                             {"config", required_argument, NULL, 'c'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"out", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    int ch;

    *a = (struct project_args){NULL, NULL, "pca", NULL, 0, 42, 0};
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end = NULL;
        long long v;
        switch (ch) {
        case 'i':
            a->input = optarg;
            break;
        case 'o':
            a->outdir = optarg;
            break;
        case 'r':
            a->reducer = optarg;
            break;
        case 'c':
            a->config_text = optarg;
            break;
        case 'd':
        case 's':
        case 't':
            errno = 0;
            v = strtoll(optarg, &end, 10);
            if (errno || !*optarg || *end || v < 0) {
                fprintf(stderr, "projection-worker project: --%s needs a non-negative integer\n",
                        ch == 'd'   ? "dim"
                        : ch == 's' ? "seed"
                                    : "threads");
                return 2;
            }
            *(ch == 'd' ? &a->dim : ch == 's' ? &a->seed : &a->threads) = v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!a->input || !a->outdir || optind != argc) {
        fprintf(stderr, "projection-worker project: --input and --out are required\n");
        usage(stderr);
        return 2;
    }
    return -1;
}

/* The config object ({} when absent or not an object, as projection.py) and its
 * "knn_method"; NULL after one line on stderr. */
static json_t *parse_config(const char *text, enum knn_method *method)
{
    json_error_t jerr;
    json_t *config = text ? json_loads(text, 0, &jerr) : json_object();
    json_t *m;

    if (!config) {
        fprintf(stderr, "projection-worker project: --config is not JSON: %s\n", jerr.text);
        return NULL;
    }
    if (!json_is_object(config)) {
        json_decref(config);
        config = json_object();
    }
    m = json_object_get(config, "knn_method");
    *method = KNN_AUTO;
    if (!m || (json_is_string(m) && !strcmp(json_string_value(m), "auto")))
        return config;
    if (json_is_string(m) && !strcmp(json_string_value(m), "exact"))
        *method = KNN_EXACT;
    else if (json_is_string(m) && !strcmp(json_string_value(m), "approx"))
        *method = KNN_APPROX;
    else {
        fprintf(stderr, "projection-worker project: knn_method must be auto, exact or approx\n");
        json_decref(config);
        return NULL;
    }
    return config;
}

/* The diagnostics the task does not publish: UMAP's fit and the compute phases. */
static void add_diagnostics(json_t *meta, json_t *timings, const struct reducer_result *r)
{
    if (!strcmp(r->used, "umap")) {
        const struct umap_result *u = &r->umap;
        json_object_set_new(meta, "umap",
                            json_pack("{s:f, s:f, s:I, s:I, s:I, s:b}", "a", (double)u->a, "b",
                                      (double)u->b, "n_epochs", (json_int_t)u->n_epochs, "n_edges",
                                      (json_int_t)u->n_edges, "graph_components",
                                      (json_int_t)u->n_graph_components, "spectral_init",
                                      u->spectral_ok));
        json_object_set_new(timings, "knn", json_real(u->seconds_knn));
        json_object_set_new(timings, "graph", json_real(u->seconds_graph));
        json_object_set_new(timings, "init", json_real(u->seconds_init));
        json_object_set_new(timings, "optimize", json_real(u->seconds_optimize));
    } else if (!strcmp(r->used, "tsne")) {
        json_object_set_new(timings, "knn", json_real(r->tsne.seconds_knn));
        json_object_set_new(timings, "affinity", json_real(r->tsne.seconds_affinity));
        json_object_set_new(timings, "optimize", json_real(r->tsne.seconds_optimize));
    }
}

/* meta.json: the reducer's fields as the task writes them plus this command's own. */
static json_t *build_meta(const struct project_args *a, size_t n, size_t d,
                          struct reducer_result *r, json_t *timings)
{
    json_t *meta = json_pack(
        "{s:s, s:s, s:O, s:I, s:I, s:i, s:I, s:I, s:{s:s, s:s}}", "reducer_requested", r->requested,
        "reducer_used", r->used, "reducer_params", r->params, "point_count", (json_int_t)n,
        "input_dim", (json_int_t)d, "dimensionality", 2, "seed", (json_int_t)a->seed, "threads",
        (json_int_t)a->threads, "files", "x", "x.f32.bin", "y", "y.f32.bin");

    if (!meta)
        return NULL;
    json_object_update(meta, r->extras);
    if (r->fell_back)
        json_object_set_new(meta, "fallback_reason", json_string(r->fallback_reason));
    if (json_array_size(r->limits_applied))
        json_object_set(meta, "limits_applied", r->limits_applied);
    add_diagnostics(meta, timings, r);
    json_object_set(meta, "timings", timings);
    return meta;
}

int cmd_project(int argc, char **argv)
{
    struct project_args a;
    struct project_io_matrix mat = {0};
    struct reducer_env env;
    struct reducer_result r;
    struct tty_progress tp = {NULL, -1};
    struct pw_progress progress = {.cancel = &project_cancel,
                                   .report = isatty(2) ? show_progress : NULL,
                                   .ctx = &tp,
                                   .input_done = project_io_drop_pages,
                                   .input_ctx = &mat};
    json_t *config = NULL, *meta = NULL, *timings = json_object();
    struct pw_error err = {0, ""};
    double t_start = now_seconds(), t_compute;
    int status = parse_args(argc, argv, &a), rc;

    memset(&r, 0, sizeof r);
    if (status >= 0)
        goto cleanup;
    status = 2;
    reducer_env_default(&env);
    if (!(config = parse_config(a.config_text, &env.knn_method)))
        goto cleanup;
    if (reducer_limits_from_env(&env.limits, &err) ||
        project_io_read_vectors(a.input, (size_t)a.dim, &mat, &err)) {
        fprintf(stderr, "projection-worker project: %s\n", err.msg);
        goto cleanup;
    }
    t_compute = now_seconds();
    json_object_set_new(timings, "read", json_real(t_compute - t_start));
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    env.threads = (int)a.threads;
    env.seed = (uint64_t)a.seed;
    env.progress = &progress;
    rc = reducer_run(a.reducer, config, mat.x, mat.n, mat.d, &env, &r, &err);
    if (progress.report && tp.phase)
        fputc('\n', stderr);
    if (rc) {
        fprintf(stderr, "projection-worker project: %s\n", err.msg);
        status = rc == PW_ECANCELED ? 130 : rc == PW_EINVAL ? 2 : 1;
        goto cleanup;
    }
    if (json_array_size(r.limits_applied)) {
        char reasons[512];
        reducer_limits_describe(&r, reasons, sizeof reasons);
        fprintf(stderr, "projection-worker project: warning: request limited: %s\n", reasons);
    }
    if (r.fell_back)
        fprintf(stderr, "projection-worker project: warning: %s failed (%s); used PCA instead\n",
                r.requested, r.fallback_reason);
    t_compute = now_seconds() - t_compute;
    json_object_set_new(timings, "compute", json_real(t_compute));
    if (!strcmp(r.used, "pca") && !r.fell_back)
        json_object_set_new(timings, "pca", json_real(t_compute));
    json_object_set_new(timings, "total", json_real(now_seconds() - t_start));
    status = 1;
    if (!(meta = build_meta(&a, mat.n, mat.d, &r, timings)))
        fprintf(stderr, "projection-worker project: out of memory\n");
    else if (project_io_write_artifacts(a.outdir, r.xy, mat.n, meta, &err))
        fprintf(stderr, "projection-worker project: %s\n", err.msg);
    else
        status = 0;

cleanup:
    project_io_release(&mat);
    reducer_result_free(&r);
    json_decref(config);
    json_decref(meta);
    json_decref(timings);
    return status;
}
