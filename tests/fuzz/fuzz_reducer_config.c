/* fuzz_reducer_config.c - libFuzzer target: reading a run's reducer name and config
 * (worker/reducer/reducer.h, reducer_run) the way the Python task does, dispatching,
 * and falling back to PCA, on a fixed 12 x 3 matrix with one thread.
 *
 * Input layout (tests/fuzz/make_seeds.py writes the seeds this way): the reducer name up
 * to the first newline, then the config as JSON text (jansson, any type: reducer_run
 * reads a non-object as {}).  Without a newline the whole input is the config and the
 * name is NULL ("pca").  The name may start with flags, stripped before the call: '#'
 * runs on a matrix whose rows are all equal (the degenerate case), '!' lets UMAP and
 * t-SNE optimise the layout.
 * Time per input: under ASan the optimisation alone takes about 100 ms even on 12
 * points (t-SNE's 250-iteration floor, UMAP's 500 epochs), so without '!' the run is
 * cancelled once the config has been read, clamped and used for the k-NN (and UMAP's
 * fuzzy graph): at t-SNE's input_done, at UMAP's "umap_init" report.  With '!', a t-SNE
 * request above MAX_TSNE_ITER iterations is cancelled there too, and the progress hook
 * cancels anything still running after CANCEL_AFTER_S (compute/ looks every 0.2 s).
 * Checked beyond ASan/UBSan/LSan: the return code is 0, PW_EINVAL, PW_ENOMEM or
 * PW_ECANCELED; a success gives finite coordinates from "pca", "umap" or "tsne", the
 * requested one unless it fell back (then "pca", with a reason); params is a dict. */
#include "reducer.h"
#include "pycompat.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
void openblas_set_num_threads(int n);

#define N_ROWS         12
#define N_DIMS         3
#define MAX_TSNE_ITER  1000 /* projection.py's default (tsne_fit raises it to >= 250) */
#define CANCEL_AFTER_S 0.05

static float X[N_ROWS * N_DIMS], X_SAME[N_ROWS * N_DIMS];

struct watch {
    atomic_int cancel;
    int stop_early; /* 1: cancel before the layout is initialised and optimised */
    struct timespec start;
};

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void on_progress(void *ctx, const char *phase, double fraction)
{
    struct watch *w = ctx;
    (void)fraction;
    if ((w->stop_early && !strcmp(phase, "umap_init")) || since(&w->start) > CANCEL_AFTER_S)
        atomic_store(&w->cancel, 1);
}

static void on_input_done(void *ctx)
{
    struct watch *w = ctx;
    if (w->stop_early)
        atomic_store(&w->cancel, 1);
}

static void fail(const char *what, int rc, const struct pw_error *err)
{
    fprintf(stderr, "fuzz_reducer_config: %s (rc %d, \"%s\")\n", what, rc, err->msg);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    openblas_set_num_threads(1);
    for (int i = 0; i < N_ROWS; i++) /* three loose clusters, fixed */
        for (int j = 0; j < N_DIMS; j++) {
            X[i * N_DIMS + j] = (float)((i % 3) * 4 + j) + 0.37f * (float)((i * 7 + j * 5) % 11);
            X_SAME[i * N_DIMS + j] = 1.5f + (float)j;
        }
    return 0;
}

/* Whether reducer_run would run t-SNE for more than MAX_TSNE_ITER iterations: the
 * harness reads n_iter with the same Python int() rule reducer.c uses. */
static int too_long(const char *name, const json_t *config)
{
    char lower[8] = "";
    size_t i;
    for (i = 0; name && name[i] && i < sizeof lower - 1; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    lower[i] = '\0';
    if (!name || strcmp(lower, "tsne") != 0 || strlen(name) != 4 || !json_is_object(config))
        return 0;
    const json_t *v = json_object_get(config, "n_iter");
    long long n_iter;
    return v && py_int(v, &n_iter) == 0 && n_iter > MAX_TSNE_ITER;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', size);
    char *name = NULL;
    const float *x = X;
    int optimise = 0;
    if (nl) {
        name = strndup(text, (size_t)(nl - text)); /* stops at a NUL byte, as C strings do */
        if (!name)
            return 0;
        size -= (size_t)(nl - text) + 1;
        text = nl + 1;
        while (name[0] == '#' || name[0] == '!') {
            if (name[0] == '#')
                x = X_SAME;
            else
                optimise = 1;
            memmove(name, name + 1, strlen(name));
        }
    }
    json_t *config = json_loadb(text, size, JSON_DECODE_ANY, NULL);

    struct watch w = {0};
    clock_gettime(CLOCK_MONOTONIC, &w.start);
    w.stop_early = !optimise || too_long(name, config);
    struct pw_progress progress = {.cancel = &w.cancel,
                                   .report = on_progress,
                                   .ctx = &w,
                                   .input_done = on_input_done,
                                   .input_ctx = &w};
    struct reducer_env env;
    reducer_env_default(&env);
    env.threads = 1;
    env.progress = &progress;

    struct reducer_result r;
    struct pw_error err = {0, ""};
    int rc = reducer_run(name, config, x, N_ROWS, N_DIMS, &env, &r, &err);
    if (rc != 0 && rc != PW_EINVAL && rc != PW_ENOMEM && rc != PW_ECANCELED)
        fail("unexpected return code", rc, &err);
    if (rc != 0 && !err.msg[0])
        fail("error without a message", rc, &err);
    if (!json_is_object(r.params))
        fail("params is not a dict", rc, &err);
    for (const char *p = r.requested; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            fail("requested name not lower-cased", rc, &err);
    if (rc == 0) {
        for (int i = 0; i < 2 * N_ROWS; i++)
            if (!isfinite(r.xy[i]))
                fail("non-finite coordinate", rc, &err);
        if (strcmp(r.used, "pca") && strcmp(r.used, "umap") && strcmp(r.used, "tsne"))
            fail("unknown reducer used", rc, &err);
        if (r.fell_back && (strcmp(r.used, "pca") || !r.fallback_reason[0]))
            fail("fallback without PCA or without a reason", rc, &err);
        if (!r.fell_back && strcmp(r.used, r.requested))
            fail("ran another reducer than requested without falling back", rc, &err);
    }
    reducer_result_free(&r);
    json_decref(config);
    free(name);
    return 0;
}
