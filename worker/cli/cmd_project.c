/* cmd_project.c - `projection-worker project`: one projection of a vector file, no services.
 *
 *   projection-worker project --input FILE [--dim D] [--reducer pca|umap|tsne]
 *                             [--config JSON] [--seed S] [--threads T] --out DIR
 *
 * The --config keys and their defaults are the Python task's (projection.py):
 * umap n_neighbors 15, min_dist 0.1, metric "cosine"; tsne perplexity 30,
 * learning_rate 200, n_iter 1000, metric "euclidean", init "pca" (anything but
 * pca|random means pca).  Unknown keys are ignored, as in Python.  Writes x.f32.bin,
 * y.f32.bin and meta.json (reducer_params, PCA's explained_variance_ratio and
 * singular_values, t-SNE's kl_divergence, per-phase timings) into DIR.
 * Exit status: 0 done, 2 bad arguments or input (one line on stderr), 1 the
 * computation failed, 130 interrupted (SIGINT/SIGTERM cancel the computation). */
#include <cblas.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "knn.h"
#include "pca.h"
#include "progress.h"
#include "project_io.h"
#include "tsne.h"
#include "umap.h"

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
            "usage: projection-worker project --input FILE [--dim D] [--reducer pca|umap|tsne]\n"
            "         [--config JSON] [--seed S] [--threads T] --out DIR\n"
            "  --input    raw little-endian float32 rows (needs --dim) or a .npy float32/float64 "
            "2-D array\n"
            "  --config   reducer parameters as in the Python task, e.g. "
            "'{\"n_neighbors\": 30}'\n");
}

/* Python's int(params.get(key, def)) / float(...) for JSON numbers. */
static int config_number(json_t *cfg, const char *key, double def, double *out)
{
    json_t *v = json_object_get(cfg, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) { /* float("0.5") works in Python too */
        char *end;
        errno = 0;
        double d = strtod(json_string_value(v), &end);
        if (!errno && end != json_string_value(v) && *end == '\0') {
            *out = d;
            return 0;
        }
    }
    fprintf(stderr, "projection-worker project: config key '%s' must be a number\n", key);
    return -1;
}

static const char *config_string(json_t *cfg, const char *key, const char *def)
{
    json_t *v = json_object_get(cfg, key);
    return json_is_string(v) ? json_string_value(v) : def;
}

/* Extension (not in projection.py): "knn_method": "auto" | "exact" | "approx". */
static int config_knn_method(json_t *cfg, enum knn_method *out)
{
    const char *m = config_string(cfg, "knn_method", "auto");
    if (!strcmp(m, "auto"))
        *out = KNN_AUTO;
    else if (!strcmp(m, "exact"))
        *out = KNN_EXACT;
    else if (!strcmp(m, "approx"))
        *out = KNN_APPROX;
    else {
        fprintf(stderr, "projection-worker project: knn_method must be auto, exact or approx\n");
        return -1;
    }
    return 0;
}

static json_t *float_array(const float *v, size_t k)
{
    json_t *a = json_array();
    for (size_t i = 0; i < k; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

int cmd_project(int argc, char **argv)
{
    const char *input = NULL, *outdir = NULL, *reducer = "pca", *config_text = NULL;
    long long dim = 0, seed = 42, threads = 0;
    static const struct option longopts[] = {{"input", required_argument, NULL, 'i'},
                                             {"dim", required_argument, NULL, 'd'},
                                             {"reducer", required_argument, NULL, 'r'},
                                             {"config", required_argument, NULL, 'c'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"out", required_argument, NULL, 'o'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'i':
            input = optarg;
            break;
        case 'o':
            outdir = optarg;
            break;
        case 'r':
            reducer = optarg;
            break;
        case 'c':
            config_text = optarg;
            break;
        case 'd':
        case 's':
        case 't': {
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            if (errno || !*optarg || *end || v < 0) {
                fprintf(stderr, "projection-worker project: --%s needs a non-negative integer\n",
                        ch == 'd'   ? "dim"
                        : ch == 's' ? "seed"
                                    : "threads");
                return 2;
            }
            *(ch == 'd' ? &dim : ch == 's' ? &seed : &threads) = v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!input || !outdir || optind != argc) {
        fprintf(stderr, "projection-worker project: --input and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (strcmp(reducer, "pca") && strcmp(reducer, "umap") && strcmp(reducer, "tsne")) {
        fprintf(stderr, "projection-worker project: unknown reducer '%s' (pca, umap or tsne)\n",
                reducer);
        return 2;
    }

    int status = 2;
    struct project_io_matrix mat = {0};
    const float *x = NULL;
    float *layout = NULL;
    json_t *config = NULL, *meta = json_object(), *timings = json_object(), *params = json_object();
    size_t n = 0, d = 0;
    struct pw_error err = {0, ""};
    double t_start = now_seconds();

    if (config_text) {
        json_error_t jerr;
        config = json_loads(config_text, 0, &jerr);
        if (!config) {
            fprintf(stderr, "projection-worker project: --config is not JSON: %s\n", jerr.text);
            goto cleanup;
        }
    }
    if (!json_is_object(config)) { /* projection.py: config if isinstance(dict) else {} */
        json_decref(config);
        config = json_object();
    }

    if (project_io_read_vectors(input, (size_t)dim, &mat, &err)) {
        fprintf(stderr, "projection-worker project: %s\n", err.msg);
        goto cleanup;
    }
    x = mat.x;
    n = mat.n;
    d = mat.d;
    double t_read = now_seconds();
    json_object_set_new(timings, "read", json_real(t_read - t_start));

    struct tty_progress tp = {NULL, -1};
    struct pw_progress progress = {.cancel = &project_cancel,
                                   .report = isatty(2) ? show_progress : NULL,
                                   .ctx = &tp,
                                   .input_done = project_io_drop_pages,
                                   .input_ctx = &mat};
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (threads > 0)
        openblas_set_num_threads((int)threads);

    layout = malloc(n * 2 * sizeof *layout);
    if (!layout) {
        fprintf(stderr, "projection-worker project: out of memory\n");
        status = 1;
        goto cleanup;
    }
    int rc = 0;
    double t_compute = now_seconds();
    if (!strcmp(reducer, "pca")) {
        float comp_sv[2], evr[2];
        struct pca_options po;
        pca_options_default(&po);
        po.threads = (int)threads;
        struct pca_result pr = {NULL, NULL, comp_sv, evr};
        rc = pca_fit(x, n, d, &po, layout, &pr, &progress, &err);
        if (!rc) {
            json_object_set_new(meta, "explained_variance_ratio", float_array(evr, 2));
            json_object_set_new(meta, "singular_values", float_array(comp_sv, 2));
            json_object_set_new(timings, "pca", json_real(now_seconds() - t_compute));
        }
    } else if (!strcmp(reducer, "umap")) {
        struct umap_options uo;
        umap_options_default(&uo);
        double nn, md;
        const char *metric = config_string(config, "metric", "cosine");
        if (config_number(config, "n_neighbors", 15, &nn) ||
            config_number(config, "min_dist", 0.1, &md))
            goto cleanup;
        if (!isfinite(nn) || nn < 2 || nn > 1e6) {
            fprintf(stderr, "projection-worker project: n_neighbors must be an integer >= 2\n");
            goto cleanup;
        }
        if (config_knn_method(config, &uo.knn_method))
            goto cleanup;
        if (knn_parse_metric(metric, &uo.metric, &err)) {
            fprintf(stderr, "projection-worker project: umap: %s\n", err.msg);
            goto cleanup;
        }
        uo.n_neighbors = (size_t)nn; /* int() truncates */
        uo.min_dist = (float)md;
        uo.seed = (uint64_t)seed;
        uo.threads = (int)threads;
        json_object_set_new(params, "n_neighbors", json_integer((json_int_t)uo.n_neighbors));
        json_object_set_new(params, "min_dist", json_real(md));
        json_object_set_new(params, "metric", json_string(metric));
        struct umap_result ur;
        rc = umap_fit(x, n, d, &uo, layout, &ur, &progress, &err);
        if (!rc) {
            json_t *u = json_object();
            json_object_set_new(u, "a", json_real(ur.a));
            json_object_set_new(u, "b", json_real(ur.b));
            json_object_set_new(u, "n_epochs", json_integer((json_int_t)ur.n_epochs));
            json_object_set_new(u, "n_edges", json_integer((json_int_t)ur.n_edges));
            json_object_set_new(u, "graph_components",
                                json_integer((json_int_t)ur.n_graph_components));
            json_object_set_new(u, "spectral_init", json_boolean(ur.spectral_ok));
            json_object_set_new(meta, "umap", u);
            json_object_set_new(timings, "knn", json_real(ur.seconds_knn));
            json_object_set_new(timings, "graph", json_real(ur.seconds_graph));
            json_object_set_new(timings, "init", json_real(ur.seconds_init));
            json_object_set_new(timings, "optimize", json_real(ur.seconds_optimize));
        }
    } else {
        struct tsne_options to;
        tsne_options_default(&to);
        double perp, lr, iters;
        const char *metric = config_string(config, "metric", "euclidean");
        const char *init = config_string(config, "init", "pca");
        if (config_number(config, "perplexity", 30.0, &perp) ||
            config_number(config, "learning_rate", 200.0, &lr) ||
            config_number(config, "n_iter", 1000, &iters))
            goto cleanup;
        if (!isfinite(perp) || !isfinite(lr) || !isfinite(iters) || iters > 1e7) {
            fprintf(stderr, "projection-worker project: perplexity, learning_rate and n_iter must "
                            "be finite numbers (n_iter <= 1e7)\n");
            goto cleanup;
        }
        if (config_knn_method(config, &to.knn_method))
            goto cleanup;
        if (knn_parse_metric(metric, &to.metric, &err)) {
            fprintf(stderr, "projection-worker project: tsne: %s\n", err.msg);
            goto cleanup;
        }
        to.perplexity = perp;
        to.learning_rate = lr;
        to.n_iter = iters > 0 ? (size_t)iters : 0; /* raised to >= 250 by tsne_fit */
        to.init = !strcmp(init, "random") ? TSNE_INIT_RANDOM : TSNE_INIT_PCA;
        to.seed = (uint64_t)seed;
        to.threads = (int)threads;
        struct tsne_result tr;
        rc = tsne_fit(x, n, d, &to, layout, &tr, &progress, &err);
        if (!rc) {
            json_object_set_new(params, "perplexity", json_real(tr.perplexity));
            json_object_set_new(params, "learning_rate", json_real(tr.learning_rate));
            json_object_set_new(params, "n_iter", json_integer((json_int_t)tr.n_iter));
            json_object_set_new(params, "metric", json_string(metric));
            json_object_set_new(params, "init", json_string(init));
            json_object_set_new(meta, "kl_divergence", json_real(tr.kl_divergence));
            json_object_set_new(timings, "knn", json_real(tr.seconds_knn));
            json_object_set_new(timings, "affinity", json_real(tr.seconds_affinity));
            json_object_set_new(timings, "optimize", json_real(tr.seconds_optimize));
        }
    }
    if (progress.report && tp.phase)
        fputc('\n', stderr);
    if (rc) {
        fprintf(stderr, "projection-worker project: %s\n", err.msg);
        status = rc == PW_ECANCELED ? 130 : rc == PW_EINVAL ? 2 : 1;
        goto cleanup;
    }
    double t_done = now_seconds();
    json_object_set_new(timings, "compute", json_real(t_done - t_compute));

    json_object_set_new(meta, "reducer_requested", json_string(reducer));
    json_object_set_new(meta, "reducer_used", json_string(reducer));
    json_object_set_new(meta, "reducer_params", params);
    params = NULL;
    json_object_set_new(meta, "point_count", json_integer((json_int_t)n));
    json_object_set_new(meta, "input_dim", json_integer((json_int_t)d));
    json_object_set_new(meta, "dimensionality", json_integer(2));
    json_object_set_new(meta, "seed", json_integer((json_int_t)seed));
    json_object_set_new(meta, "threads", json_integer((json_int_t)threads));
    json_t *files = json_object();
    json_object_set_new(files, "x", json_string("x.f32.bin"));
    json_object_set_new(files, "y", json_string("y.f32.bin"));
    json_object_set_new(meta, "files", files);
    json_object_set_new(timings, "total", json_real(now_seconds() - t_start));
    json_object_set_new(meta, "timings", timings);
    timings = NULL;
    if (project_io_write_artifacts(outdir, layout, n, meta, &err)) {
        fprintf(stderr, "projection-worker project: %s\n", err.msg);
        status = 1;
        goto cleanup;
    }
    status = 0;

cleanup:
    project_io_release(&mat);
    free(layout);
    json_decref(config);
    json_decref(meta);
    json_decref(timings);
    json_decref(params);
    return status;
}
