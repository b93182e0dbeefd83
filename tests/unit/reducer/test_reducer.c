/* test_reducer.c - the task's reducer step and `projection-worker project` agree.
 *
 * Each config runs twice on the same points: through reducer_run, as the projection
 * task calls it, and through the project binary (argv[1]) with --config; reducer_used,
 * reducer_params, limits_applied, fallback_reason and the x/y bytes must be identical.
 * Both read the request bounds from the environment, as the task does.  The expected
 * parameters of each case are projection.py's rules written out here (int("15.5")
 * fails, perplexity clamped to n - 1, ...), not read from the code under test.
 * OpenBLAS and OpenMP run on one thread in both, so the bytes can be compared. */
#include <cblas.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pw_test.h"
#include "reducer.h"

#define N 80
#define D 6

static const char *project_bin;
static char dir[64];
static float points[N * D];

/* Three well-separated clusters, from a fixed LCG so both runs read the same file. */
static void make_points(void)
{
    uint64_t s = 12345;
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < D; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            points[i * D + j] = (float)((s >> 40) % 1000) / 1000.0f + (float)(i % 3) * 4.0f;
        }
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, len, f) == len;
    if (f)
        fclose(f);
    return ok ? 0 : -1;
}

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)size + 1)) && fread(buf, 1, (size_t)size, f) == (size_t)size) {
        buf[size] = '\0';
        *len = (size_t)size;
    } else {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

/* Runs the project binary on the points; its exit status. */
static int run_project(const char *reducer, const char *config, const char *out)
{
    char input[96], dim[16];
    int status;
    pid_t pid;

    snprintf(input, sizeof input, "%s/x.bin", dir);
    snprintf(dim, sizeof dim, "%d", D);
    pid = fork();
    if (pid == 0) {
        char *argv[] = {(char *)project_bin,
                        "project",
                        "--input",
                        input,
                        "--dim",
                        dim,
                        "--reducer",
                        (char *)reducer,
                        "--config",
                        (char *)config,
                        "--threads",
                        "1",
                        "--seed",
                        "42",
                        "--out",
                        (char *)out,
                        NULL};
        execv(project_bin, argv);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

/* Both paths on one config; returns the in-process result's params (new reference) for
 * the case's own checks, or NULL when the paths disagree or did not run.  limits, when
 * not NULL, receives the result's limits_applied (new reference) the same way. */
static json_t *both_paths(const char *reducer, const char *config_text, const char *reason,
                          json_t **limits)
{
    char out[96], path[128];
    json_t *config = json_loads(config_text, 0, NULL), *meta = NULL, *params = NULL;
    struct reducer_env env;
    struct reducer_result r;
    struct pw_error err;
    float *xs = NULL, *ys = NULL;
    size_t len_x = 0, len_y = 0;
    int same = 1;

    reducer_env_default(&env);
    CHECK(reducer_limits_from_env(&env.limits, &err) == 0);
    env.threads = 1;
    CHECK(reducer_run(reducer, config, points, N, D, &env, &r, &err) == 0);
    snprintf(out, sizeof out, "%s/out", dir);
    CHECK(run_project(reducer, config_text, out) == 0);
    snprintf(path, sizeof path, "%s/meta.json", out);
    meta = json_load_file(path, 0, NULL);
    snprintf(path, sizeof path, "%s/x.f32.bin", out);
    xs = read_file(path, &len_x);
    snprintf(path, sizeof path, "%s/y.f32.bin", out);
    ys = read_file(path, &len_y);
    CHECK(meta && xs && ys && len_x == N * sizeof(float) && len_y == N * sizeof(float));
    if (!meta || !xs || !ys || len_x != N * sizeof(float) || len_y != N * sizeof(float))
        same = 0;
    for (size_t i = 0; same && i < N; i++)
        same = !memcmp(&xs[i], &r.xy[2 * i], 4) && !memcmp(&ys[i], &r.xy[2 * i + 1], 4);
    CHECK(same);
    CHECK(json_equal(json_object_get(meta, "reducer_params"), r.params));
    CHECK_STR(json_string_value(json_object_get(meta, "reducer_used")), r.used);
    if (json_array_size(r.limits_applied))
        CHECK(json_equal(json_object_get(meta, "limits_applied"), r.limits_applied));
    else
        CHECK(json_object_get(meta, "limits_applied") == NULL);
    CHECK(r.fell_back == (reason != NULL));
    if (reason) {
        CHECK(strstr(r.fallback_reason, reason) != NULL);
        CHECK_STR(json_string_value(json_object_get(meta, "fallback_reason")), r.fallback_reason);
    } else {
        CHECK(json_object_get(meta, "fallback_reason") == NULL);
    }
    if (same && !pw_test_current_failed)
        params = json_incref(r.params);
    if (limits)
        *limits = same && !pw_test_current_failed ? json_incref(r.limits_applied) : NULL;
    reducer_result_free(&r);
    json_decref(config);
    json_decref(meta);
    free(xs);
    free(ys);
    return params;
}

static void test_pca_gives_the_same_layout_and_no_params(void)
{
    json_t *p = both_paths("pca", "{\"n_neighbors\": 5}", NULL, NULL);
    CHECK(p && json_object_size(p) == 0);
    json_decref(p);
}

static void test_umap_string_params_convert_as_python_int_and_float(void)
{
    json_t *p =
        both_paths("umap", "{\"n_neighbors\": \" 10 \", \"min_dist\": \"0.25\"}", NULL, NULL);
    CHECK(json_integer_value(json_object_get(p, "n_neighbors")) == 10);
    CHECK(json_real_value(json_object_get(p, "min_dist")) == 0.25);
    CHECK_STR(json_string_value(json_object_get(p, "metric")), "cosine");
    json_decref(p);
}

static void test_umap_float_n_neighbors_is_truncated(void)
{
    json_t *p =
        both_paths("UMAP", "{\"n_neighbors\": 10.9, \"metric\": \"euclidean\"}", NULL, NULL);
    CHECK(json_integer_value(json_object_get(p, "n_neighbors")) == 10);
    json_decref(p);
}

static void test_umap_n_neighbors_string_with_a_fraction_falls_back(void)
{
    json_t *p =
        both_paths("umap", "{\"n_neighbors\": \"15.5\"}", "invalid literal for int()", NULL);
    CHECK(p && json_object_size(p) == 0); /* nothing was read before int() failed */
    json_decref(p);
}

static void test_umap_non_string_metric_is_str_and_falls_back(void)
{
    json_t *p = both_paths("umap", "{\"metric\": 5, \"min_dist\": 1e-05}", "'5'", NULL);
    CHECK_STR(json_string_value(json_object_get(p, "metric")), "5");
    CHECK(json_integer_value(json_object_get(p, "n_neighbors")) == 15);
    json_decref(p);
}

static void test_umap_list_metric_is_its_python_repr(void)
{
    json_t *p =
        both_paths("umap", "{\"metric\": [\"it's\", 2.5, true, null, 1e16]}", "metric", NULL);
    CHECK_STR(json_string_value(json_object_get(p, "metric")),
              "[\"it's\", 2.5, True, None, 1e+16]");
    json_decref(p);
}

static void test_umap_too_many_neighbors_runs_and_reports_the_request(void)
{
    /* above n - 1 (compute/ clamps it) but within the default bound of 200 */
    json_t *p = both_paths("umap", "{\"n_neighbors\": 150}", NULL, NULL);
    CHECK(json_integer_value(json_object_get(p, "n_neighbors")) == 150);
    json_decref(p);
}

static void test_umap_n_neighbors_above_the_bound_runs_at_the_bound_and_says_why(void)
{
    json_t *limits = NULL;
    json_t *p = both_paths("umap", "{\"n_neighbors\": 1000000}", NULL, &limits);
    json_t *want =
        json_loads("[{\"param\": \"n_neighbors\", \"requested\": 1000000, \"used\": 200, "
                   "\"reason\": \"n_neighbors above PW_MAX_N_NEIGHBORS (200)\"}]",
                   0, NULL);
    CHECK(json_integer_value(json_object_get(p, "n_neighbors")) == 200);
    CHECK(json_equal(limits, want));
    json_decref(want);
    json_decref(limits);
    json_decref(p);
}

static void test_tsne_perplexity_and_n_iter_above_the_bounds_are_recorded(void)
{
    json_t *limits = NULL;
    json_t *p =
        both_paths("tsne", "{\"perplexity\": \"1e6\", \"n_iter\": 1000000000}", NULL, &limits);
    json_t *want =
        json_loads("[{\"param\": \"perplexity\", \"requested\": \"1e6\", \"used\": 100.0, "
                   "\"reason\": \"perplexity above PW_MAX_PERPLEXITY (100)\"}, "
                   "{\"param\": \"n_iter\", \"requested\": 1000000000, \"used\": 5000, "
                   "\"reason\": \"n_iter above PW_MAX_N_ITER (5000)\"}]",
                   0, NULL);
    CHECK(json_equal(limits, want));
    CHECK(json_real_value(json_object_get(p, "perplexity")) == N - 1); /* then compute/'s clamp */
    CHECK(json_integer_value(json_object_get(p, "n_iter")) <= 5000);
    json_decref(want);
    json_decref(limits);
    json_decref(p);
}

static void test_bounds_come_from_the_environment(void)
{
    struct reducer_limits l;
    struct pw_error err;
    json_t *limits = NULL, *p;

    setenv("PW_MAX_N_NEIGHBORS", "20", 1);
    CHECK(reducer_limits_from_env(&l, &err) == 0);
    CHECK(l.max_n_neighbors == 20 && l.max_perplexity == 100 && l.max_n_iter == 5000);
    p = both_paths("umap", "{\"n_neighbors\": 50}", NULL, &limits);
    CHECK(json_integer_value(json_object_get(p, "n_neighbors")) == 20);
    CHECK_STR(json_string_value(json_object_get(json_array_get(limits, 0), "reason")),
              "n_neighbors above PW_MAX_N_NEIGHBORS (20)");
    setenv("PW_MAX_N_NEIGHBORS", "1", 1); /* UMAP needs 2 */
    CHECK(reducer_limits_from_env(&l, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "PW_MAX_N_NEIGHBORS") != NULL);
    unsetenv("PW_MAX_N_NEIGHBORS");
    setenv("PW_MAX_N_ITER", "many", 1);
    CHECK(reducer_limits_from_env(&l, &err) == PW_EINVAL);
    CHECK(strstr(err.msg, "PW_MAX_N_ITER") != NULL);
    unsetenv("PW_MAX_N_ITER");
    json_decref(limits);
    json_decref(p);
}

static void test_tsne_reports_the_clamped_values(void)
{
    json_t *p = both_paths(
        "tsne", "{\"perplexity\": \"100\", \"learning_rate\": 5, \"n_iter\": 300, \"init\": 7}",
        NULL, NULL);
    CHECK(json_real_value(json_object_get(p, "perplexity")) == N - 1);
    CHECK(json_real_value(json_object_get(p, "learning_rate")) == 10.0);
    CHECK(json_integer_value(json_object_get(p, "n_iter")) == 299); /* sklearn's n_iter_ */
    CHECK_STR(json_string_value(json_object_get(p, "init")), "7");
    json_decref(p);
}

/* Found by tests/fuzz (fuzz_reducer_config): learning_rate 1e308 sent t-SNE's layout to
 * inf/NaN and reducer_run returned it as a success. */
static void test_tsne_diverging_to_non_finite_falls_back_to_pca(void)
{
    json_t *p = both_paths("tsne", "{\"learning_rate\": 1e308, \"n_iter\": 250}",
                           "tsne: the layout is not finite", NULL);
    CHECK(json_real_value(json_object_get(p, "learning_rate")) == 1e308);
    json_decref(p);
}

static void test_unsupported_reducer_reports_the_whole_config(void)
{
    json_t *p = both_paths("isomap", "{\"k\": [1, 2], \"metric\": 3}",
                           "Unsupported reducer 'isomap'", NULL);
    json_t *want = json_loads("{\"k\": [1, 2], \"metric\": 3}", 0, NULL);
    CHECK(json_equal(p, want));
    json_decref(want);
    json_decref(p);
}

int main(int argc, char **argv)
{
    char path[96];

    if (argc != 2) {
        fprintf(stderr, "usage: test_reducer PROJECT_BINARY\n");
        return 2;
    }
    project_bin = argv[1];
    openblas_set_num_threads(1);
    snprintf(dir, sizeof dir, "/tmp/test_reducer.XXXXXX");
    if (!mkdtemp(dir))
        return 2;
    make_points();
    snprintf(path, sizeof path, "%s/x.bin", dir);
    if (write_file(path, points, sizeof points))
        return 2;
    RUN(test_pca_gives_the_same_layout_and_no_params);
    RUN(test_umap_string_params_convert_as_python_int_and_float);
    RUN(test_umap_float_n_neighbors_is_truncated);
    RUN(test_umap_n_neighbors_string_with_a_fraction_falls_back);
    RUN(test_umap_non_string_metric_is_str_and_falls_back);
    RUN(test_umap_list_metric_is_its_python_repr);
    RUN(test_umap_too_many_neighbors_runs_and_reports_the_request);
    RUN(test_umap_n_neighbors_above_the_bound_runs_at_the_bound_and_says_why);
    RUN(test_tsne_perplexity_and_n_iter_above_the_bounds_are_recorded);
    RUN(test_bounds_come_from_the_environment);
    RUN(test_tsne_reports_the_clamped_values);
    RUN(test_tsne_diverging_to_non_finite_falls_back_to_pca);
    RUN(test_unsupported_reducer_reports_the_whole_config);
    {
        static const char *const files[] = {"out/x.f32.bin", "out/y.f32.bin", "out/meta.json",
                                            "out",           "x.bin",         ""};
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", dir, files[i]);
            remove(path);
        }
    }
    PW_TEST_MAIN();
}
