/* test_artifacts.c - run directories: identifier checks, exact bytes on disk, atomic
 * replacement, nothing left behind on failure, reuse by hard link or copy, stale temps.
 *
 * Every test works in its own mkdtemp directory under /tmp.  Failures mid-publish are
 * injected with RLIMIT_FSIZE (write() then fails with EFBIG, also for root, for whom
 * chmod would not block anything).  Expected bytes are written out literally
 * (python3: struct.pack("<3f", 1.0, -2.5, 0.1).hex() etc.). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "artifacts.h"
#include "pw_test.h"

#define CID  "9c5d7e2a-4b3c-4d5e-9f6a-7b8c9d0e1f2a"
#define UUID "0b1f6a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
#define SRC  "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d"

static const float X3[3] = {1.0f, -2.5f, 0.1f};
static const float Y3[3] = {0.0f, -0.0f, 3.4028234663852886e38f};
static const int32_t IDS3[3] = {1, -1, 258};
static const uint8_t CAT3[3] = {0, 7, 255};
static const unsigned char X3_LE[12] = {0x00, 0x00, 0x80, 0x3f, 0x00, 0x00,
                                        0x20, 0xc0, 0xcd, 0xcc, 0xcc, 0x3d};
static const unsigned char Y3_LE[12] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                        0x00, 0x80, 0xff, 0xff, 0x7f, 0x7f};
static const unsigned char IDS3_LE[12] = {0x01, 0x00, 0x00, 0x00, 0xff, 0xff,
                                          0xff, 0xff, 0x02, 0x01, 0x00, 0x00};
static const char META1[] = "{\n  \"point_count\": 3\n}";
static const char META2[] = "{\n  \"idempotent_reuse\": true\n}";

/* ---------------------------------------------------------------- helpers */

static char base[64];

static void setup(void)
{
    strcpy(base, "/tmp/pw-artifacts-XXXXXX");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        exit(2);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *pathf(const char *fmt, const char *a, const char *b)
{
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ % 4];
    int n = snprintf(p, sizeof buf[0], "%s/", base);
    snprintf(p + n, sizeof buf[0] - (size_t)n, fmt, a ? a : "", b ? b : "");
    return p;
}

/* Reads a whole file (<= 4096 bytes); returns its length or -1. */
static long slurp(const char *path, unsigned char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap);
    close(fd);
    return (long)n;
}

static int file_equals(const char *path, const void *want, size_t len)
{
    unsigned char buf[4096];
    long n = slurp(path, buf, sizeof buf);
    return n == (long)len && memcmp(buf, want, len) == 0;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Entries of dir other than . and ..; those starting with prefix when prefix is given. */
static int count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (!prefix || !strncmp(de->d_name, prefix, strlen(prefix)))
            n++;
    }
    closedir(d);
    return n;
}

static struct artifacts three_points(const char *meta)
{
    struct artifacts a = {.n = 3, .x = X3, .y = Y3, .ids = IDS3, .cat = CAT3, .meta_json = meta};
    return a;
}

static int publish3(const char *cid, const char *uuid, const char *meta, unsigned flags,
                    struct pw_error *err)
{
    struct artifacts a = three_points(meta);
    return artifacts_publish(base, cid, uuid, &a, flags, err);
}

/* Lowers the file-size limit so that writes beyond `bytes` fail with EFBIG. */
static struct rlimit limit_file_size(rlim_t bytes)
{
    struct rlimit old, lim;
    signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &lim);
    return old;
}

static int run_dir_has_exact_three_points(const char *cid, const char *uuid, const char *meta)
{
    return file_equals(pathf("semantik/projections/%s/%s/x.f32.bin", cid, uuid), X3_LE, 12) &&
           file_equals(pathf("semantik/projections/%s/%s/y.f32.bin", cid, uuid), Y3_LE, 12) &&
           file_equals(pathf("semantik/projections/%s/%s/ids.i32.bin", cid, uuid), IDS3_LE, 12) &&
           file_equals(pathf("semantik/projections/%s/%s/cat.u8.bin", cid, uuid), CAT3, 3) &&
           file_equals(pathf("semantik/projections/%s/%s/meta.json", cid, uuid), meta,
                       strlen(meta));
}

/* ---------------------------------------------------------------- identifiers */

static void test_check_ids_refuses_non_plain_collection_ids(void)
{
    char long_id[130];
    memset(long_id, 'a', 129);
    long_id[129] = '\0';
    const char *bad[] = {"../x", "a/b", ".", "..", "", "a b", "a.b", "x\n", long_id, "ä"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pw_error err = {0};
        CHECK(artifacts_check_ids(bad[i], UUID, &err) == PW_EINVAL);
        CHECK(err.code == PW_EINVAL);
        CHECK(strstr(err.msg, "collection_id") != NULL);
    }
    struct pw_error err = {0};
    CHECK(artifacts_check_ids(NULL, UUID, &err) == PW_EINVAL);
}

static void test_check_ids_refuses_bad_run_uuids(void)
{
    const char *bad[] = {"",
                         "0b1f6a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5",   /* 35 chars */
                         "0b1f6a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b0", /* 37 chars */
                         "0b1f6a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5g",  /* non-hex */
                         "0b1f6a7e1-c2d-4e5f-8a9b-0c1d2e3f4a5b",  /* dash misplaced */
                         "0b1f6a7e-1c2d-4e5f-8a9b/0c1d2e3f4a5b",  /* slash */
                         "../../../../../../../../../../../../",  /* 36 chars */
                         "0b1f6a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b/",
                         "0b1f6a7e1c2d4e5f8a9b0c1d2e3f4a5b",
                         "{0b1f6a7e-1c2d-4e5f-8a9b-0c1d2e3f4a5b}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pw_error err = {0};
        CHECK(artifacts_check_ids(CID, bad[i], &err) == PW_EINVAL);
        CHECK(strstr(err.msg, "run_uuid") != NULL);
    }
    struct pw_error err = {0};
    CHECK(artifacts_check_ids(CID, NULL, &err) == PW_EINVAL);
}

static void test_check_ids_accepts_uuids_and_128_char_collection_ids(void)
{
    char id128[129];
    memset(id128, 'Z', 128);
    id128[128] = '\0';
    id128[5] = '_';
    id128[6] = '-';
    struct pw_error err = {0};
    CHECK(artifacts_check_ids(CID, UUID, &err) == 0);
    CHECK(artifacts_check_ids(id128, UUID, &err) == 0);
    CHECK(artifacts_check_ids("col_1", "0B1F6A7E-1C2D-4E5F-8A9B-0C1D2E3F4A5B", &err) == 0);
}

static void test_check_ids_error_echoes_at_most_64_characters(void)
{
    char id[300];
    memset(id, 'q', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    id[250] = '/';
    struct pw_error err = {0};
    CHECK(artifacts_check_ids(id, UUID, &err) == PW_EINVAL);
    char run65[66];
    memset(run65, 'q', 65);
    run65[65] = '\0';
    CHECK(strstr(err.msg, "collection_id") != NULL);
    CHECK(strstr(err.msg, run65) == NULL);
    memset(run65, 'q', 64);
    run65[64] = '\0';
    CHECK(strstr(err.msg, run65) != NULL); /* the echo is there, cut at 64 */
}

static void test_run_dir_builds_absolute_and_relative_paths(void)
{
    char *abs = NULL, *rel = NULL;
    struct pw_error err = {0};
    CHECK(artifacts_run_dir("/data//", CID, UUID, &abs, &rel, &err) == 0);
    CHECK_STR(abs, "/data/semantik/projections/" CID "/" UUID);
    CHECK_STR(rel, "semantik/projections/" CID "/" UUID);
    free(abs);
    free(rel);
    CHECK(artifacts_run_dir("/", CID, UUID, &abs, NULL, &err) == 0);
    CHECK_STR(abs, "/semantik/projections/" CID "/" UUID);
    free(abs);
}

static void test_run_dir_refuses_bad_ids_without_output(void)
{
    char *abs = (char *)"x", *rel = (char *)"x";
    struct pw_error err = {0};
    CHECK(artifacts_run_dir("/data", "../etc", UUID, &abs, &rel, &err) == PW_EINVAL);
    CHECK(abs == NULL && rel == NULL);
    CHECK(artifacts_run_dir("/data", CID, "../" UUID, &abs, &rel, &err) == PW_EINVAL);
    CHECK(artifacts_run_dir("", CID, UUID, &abs, &rel, &err) == PW_EINVAL);
}

/* ---------------------------------------------------------------- publish */

static void test_publish_writes_exact_little_endian_bytes(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, UUID, META1, 0, &err) == 0);
    CHECK(run_dir_has_exact_three_points(CID, UUID, META1));
    CHECK(count_entries(pathf("semantik/projections/%s/%s", CID, UUID), NULL) == 5);
    teardown();
}

static void test_publish_leaves_no_temporary_directory(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, UUID, META1, 0, &err) == 0);
    CHECK(publish3(CID, SRC, META1, 0, &err) == 0);
    CHECK(count_entries(pathf("semantik/projections/%s", CID, NULL), NULL) == 2);
    CHECK(count_entries(pathf("semantik/projections/%s", CID, NULL), ".tmp-") == 0);
    teardown();
}

static void test_publish_zero_points_writes_empty_arrays(void)
{
    setup();
    struct artifacts a = {.n = 0, .meta_json = "{}"};
    struct pw_error err = {0};
    CHECK(artifacts_publish(base, CID, UUID, &a, 0, &err) == 0);
    CHECK(file_equals(pathf("semantik/projections/%s/%s/x.f32.bin", CID, UUID), "", 0));
    CHECK(file_equals(pathf("semantik/projections/%s/%s/cat.u8.bin", CID, UUID), "", 0));
    CHECK(file_equals(pathf("semantik/projections/%s/%s/meta.json", CID, UUID), "{}", 2));
    teardown();
}

static void republish_replaces_completely(unsigned flags)
{
    setup();
    struct pw_error err = {0};
    float x1[1] = {42.0f};
    int32_t i1[1] = {7};
    uint8_t c1[1] = {1};
    struct artifacts old = {.n = 1, .x = x1, .y = x1, .ids = i1, .cat = c1, .meta_json = "{}"};
    CHECK(artifacts_publish(base, CID, UUID, &old, 0, &err) == 0);
    /* something only the old directory has */
    int fd =
        open(pathf("semantik/projections/%s/%s/stale.txt", CID, UUID), O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0);
    close(fd);
    CHECK(publish3(CID, UUID, META1, flags, &err) == 0);
    CHECK(run_dir_has_exact_three_points(CID, UUID, META1));
    CHECK(!exists(pathf("semantik/projections/%s/%s/stale.txt", CID, UUID)));
    CHECK(count_entries(pathf("semantik/projections/%s/%s", CID, UUID), NULL) == 5);
    CHECK(count_entries(pathf("semantik/projections/%s", CID, NULL), NULL) == 1);
    teardown();
}

static void test_republish_over_existing_run_dir_replaces_it_completely(void)
{
    republish_replaces_completely(0);
}

static void test_republish_without_rename_exchange_replaces_it_completely(void)
{
    republish_replaces_completely(ARTIFACTS_NO_EXCHANGE);
}

static void test_publish_failing_mid_array_leaves_nothing(void)
{
    setup();
    enum { N = 4096 };
    static float x[N], y[N];
    static int32_t ids[N];
    static uint8_t cat[N];
    struct artifacts a = {.n = N, .x = x, .y = y, .ids = ids, .cat = cat, .meta_json = "{}"};
    struct pw_error err = {0};
    struct rlimit old = limit_file_size(1000); /* x.f32.bin needs 16384 bytes */
    int rc = artifacts_publish(base, CID, UUID, &a, 0, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(rc == PW_EIO);
    CHECK(strstr(err.msg, "x.f32.bin") != NULL);
    CHECK(count_entries(pathf("semantik/projections/%s", CID, NULL), NULL) == 0);
    teardown();
}

static void test_failed_republish_at_last_file_keeps_previous_run_dir(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, UUID, META1, 0, &err) == 0);
    char big_meta[200];
    memset(big_meta, ' ', sizeof big_meta - 1);
    big_meta[sizeof big_meta - 1] = '\0';
    struct rlimit old = limit_file_size(100); /* .bin files are 12 bytes, meta.json 199 */
    int rc = publish3(CID, UUID, big_meta, 0, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(rc == PW_EIO);
    CHECK(strstr(err.msg, "meta.json") != NULL);
    CHECK(run_dir_has_exact_three_points(CID, UUID, META1));
    CHECK(count_entries(pathf("semantik/projections/%s", CID, NULL), NULL) == 1);
    teardown();
}

static void test_publish_into_data_dir_that_is_a_file_fails_cleanly(void)
{
    setup();
    char *file = pathf("datafile", NULL, NULL);
    int fd = open(file, O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0);
    close(fd);
    struct artifacts a = three_points(META1);
    struct pw_error err = {0};
    CHECK(artifacts_publish(file, CID, UUID, &a, 0, &err) == PW_EIO);
    CHECK(err.msg[0] != '\0');
    CHECK(count_entries(base, NULL) == 1);
    teardown();
}

static void test_publish_refuses_null_meta_and_bad_ids_before_touching_disk(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, UUID, NULL, 0, &err) == PW_EINVAL);
    CHECK(publish3("../evil", UUID, META1, 0, &err) == PW_EINVAL);
    CHECK(publish3(CID, "../" UUID, META1, 0, &err) == PW_EINVAL);
    struct artifacts a = {.n = 2, .meta_json = "{}"}; /* points but no arrays */
    CHECK(artifacts_publish(base, CID, UUID, &a, 0, &err) == PW_EINVAL);
    CHECK(count_entries(base, NULL) == 0);
    teardown();
}

/* ---------------------------------------------------------------- reuse */

static void test_reuse_hard_links_bins_and_writes_new_meta(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, SRC, META1, 0, &err) == 0);
    CHECK(artifacts_publish_reuse(base, "semantik/projections/" CID "/" SRC, CID, UUID, META2, 0,
                                  &err) == 0);
    CHECK(run_dir_has_exact_three_points(CID, UUID, META2));
    CHECK(run_dir_has_exact_three_points(CID, SRC, META1)); /* source meta untouched */
    const char *bins[] = {"x.f32.bin", "y.f32.bin", "ids.i32.bin", "cat.u8.bin"};
    for (int i = 0; i < 4; i++) {
        struct stat s, d;
        char rel[128];
        snprintf(rel, sizeof rel, "semantik/projections/%%s/%%s/%s", bins[i]);
        CHECK(stat(pathf(rel, CID, SRC), &s) == 0);
        CHECK(stat(pathf(rel, CID, UUID), &d) == 0);
        CHECK(s.st_ino == d.st_ino && s.st_dev == d.st_dev);
        CHECK(d.st_nlink == 2);
    }
    struct stat ms, md;
    CHECK(stat(pathf("semantik/projections/%s/%s/meta.json", CID, SRC), &ms) == 0);
    CHECK(stat(pathf("semantik/projections/%s/%s/meta.json", CID, UUID), &md) == 0);
    CHECK(ms.st_ino != md.st_ino);
    CHECK(count_entries(pathf("semantik/projections/%s", CID, NULL), ".tmp-") == 0);
    teardown();
}

static void test_reuse_force_copy_copies_bytes_into_new_files(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, SRC, META1, 0, &err) == 0);
    CHECK(artifacts_publish_reuse(base, "semantik/projections/" CID "/" SRC, CID, UUID, META2,
                                  ARTIFACTS_FORCE_COPY, &err) == 0);
    CHECK(run_dir_has_exact_three_points(CID, UUID, META2));
    struct stat s, d;
    CHECK(stat(pathf("semantik/projections/%s/%s/x.f32.bin", CID, SRC), &s) == 0);
    CHECK(stat(pathf("semantik/projections/%s/%s/x.f32.bin", CID, UUID), &d) == 0);
    CHECK(s.st_ino != d.st_ino);
    CHECK(s.st_nlink == 1 && d.st_nlink == 1);
    teardown();
}

static void test_reuse_copy_failure_leaves_nothing(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, SRC, META1, 0, &err) == 0);
    struct rlimit old = limit_file_size(5); /* the 12-byte x.f32.bin copy fails */
    int rc = artifacts_publish_reuse(base, "semantik/projections/" CID "/" SRC, CID, UUID, META2,
                                     ARTIFACTS_FORCE_COPY, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK(rc == PW_EIO);
    CHECK(!exists(pathf("semantik/projections/%s/%s", CID, UUID)));
    CHECK(count_entries(pathf("semantik/projections/%s", CID, NULL), NULL) == 1);
    teardown();
}

static void test_reuse_missing_source_is_notfound(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(artifacts_publish_reuse(base, "semantik/projections/" CID "/" SRC, CID, UUID, META2, 0,
                                  &err) == PW_ENOTFOUND);
    CHECK(err.code == PW_ENOTFOUND);
    CHECK(!exists(pathf("semantik/projections/%s/%s", CID, UUID)));
    teardown();
}

static void test_reuse_source_missing_one_file_is_notfound(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, SRC, META1, 0, &err) == 0);
    CHECK(unlink(pathf("semantik/projections/%s/%s/cat.u8.bin", CID, SRC)) == 0);
    CHECK(artifacts_publish_reuse(base, "semantik/projections/" CID "/" SRC, CID, UUID, META2, 0,
                                  &err) == PW_ENOTFOUND);
    CHECK(strstr(err.msg, "cat.u8.bin") != NULL);
    CHECK(count_entries(pathf("semantik/projections/%s", CID, NULL), NULL) == 1);
    teardown();
}

static void test_reuse_source_with_truncated_file_is_notfound(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, SRC, META1, 0, &err) == 0);
    CHECK(truncate(pathf("semantik/projections/%s/%s/y.f32.bin", CID, SRC), 8) == 0);
    CHECK(artifacts_publish_reuse(base, "semantik/projections/" CID "/" SRC, CID, UUID, META2, 0,
                                  &err) == PW_ENOTFOUND);
    CHECK(!exists(pathf("semantik/projections/%s/%s", CID, UUID)));
    teardown();
}

static void test_reuse_refuses_source_paths_outside_projections(void)
{
    const char *bad[] = {"../" CID "/" SRC,
                         "/etc",
                         "semantik/projections/../../etc/" SRC,
                         "semantik/projections/" CID "/" SRC "/..",
                         "semantik/projections/" CID "/../" CID "/" SRC,
                         "semantik/other/" CID "/" SRC,
                         "semantik/projections/" CID,
                         "semantik/projections//" SRC,
                         "/semantik/projections/" CID "/" SRC,
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct pw_error err = {0};
        CHECK(artifacts_publish_reuse("/nonexistent-data", bad[i], CID, UUID, META2, 0, &err) ==
              PW_EINVAL);
        CHECK(strstr(err.msg, "src_rel_path") != NULL);
    }
}

/* ---------------------------------------------------------------- stale temps */

static void make_dir_aged(const char *path, time_t age_s)
{
    CHECK(mkdir(path, 0755) == 0);
    char file[600];
    snprintf(file, sizeof file, "%s/x.f32.bin", path);
    int fd = open(file, O_CREAT | O_WRONLY, 0644);
    CHECK(fd >= 0);
    close(fd);
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= age_s;
    t[1] = t[0];
    CHECK(utimensat(AT_FDCWD, path, t, 0) == 0);
}

static void test_remove_stale_temps_removes_only_old_temp_dirs(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, UUID, META1, 0, &err) == 0);
    make_dir_aged(pathf("semantik/projections/%s/.tmp-%s-1-deadbeef", CID, SRC), 7200);
    make_dir_aged(pathf("semantik/projections/%s/.tmp-%s-2-cafebabe", CID, SRC), 10);
    make_dir_aged(pathf("semantik/projections/%s/%s", CID, SRC), 7200); /* a real old run */
    CHECK(artifacts_remove_stale_temps(base, CID, NULL, 3600, &err) == 0);
    CHECK(!exists(pathf("semantik/projections/%s/.tmp-%s-1-deadbeef", CID, SRC)));
    CHECK(exists(pathf("semantik/projections/%s/.tmp-%s-2-cafebabe", CID, SRC)));
    CHECK(exists(pathf("semantik/projections/%s/%s/x.f32.bin", CID, SRC)));
    CHECK(run_dir_has_exact_three_points(CID, UUID, META1));
    teardown();
}

static void test_remove_stale_temps_removes_the_own_runs_temps_at_once(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(publish3(CID, UUID, META1, 0, &err) == 0);
    make_dir_aged(pathf("semantik/projections/%s/.tmp-%s-1-deadbeef", CID, UUID), 1);
    make_dir_aged(pathf("semantik/projections/%s/.tmp-%s-2-cafebabe", CID, SRC), 1);
    CHECK(artifacts_remove_stale_temps(base, CID, UUID, 3600, &err) == 0);
    CHECK(!exists(pathf("semantik/projections/%s/.tmp-%s-1-deadbeef", CID, UUID)));
    CHECK(exists(pathf("semantik/projections/%s/.tmp-%s-2-cafebabe", CID, SRC)));
    CHECK(run_dir_has_exact_three_points(CID, UUID, META1));
    teardown();
}

static void test_remove_stale_temps_without_collection_dir_is_ok(void)
{
    setup();
    struct pw_error err = {0};
    CHECK(artifacts_remove_stale_temps(base, CID, NULL, 60, &err) == 0);
    CHECK(artifacts_remove_stale_temps(base, "../x", NULL, 60, &err) == PW_EINVAL);
    teardown();
}

int main(void)
{
    RUN(test_check_ids_refuses_non_plain_collection_ids);
    RUN(test_check_ids_refuses_bad_run_uuids);
    RUN(test_check_ids_accepts_uuids_and_128_char_collection_ids);
    RUN(test_check_ids_error_echoes_at_most_64_characters);
    RUN(test_run_dir_builds_absolute_and_relative_paths);
    RUN(test_run_dir_refuses_bad_ids_without_output);
    RUN(test_publish_writes_exact_little_endian_bytes);
    RUN(test_publish_leaves_no_temporary_directory);
    RUN(test_publish_zero_points_writes_empty_arrays);
    RUN(test_republish_over_existing_run_dir_replaces_it_completely);
    RUN(test_republish_without_rename_exchange_replaces_it_completely);
    RUN(test_publish_failing_mid_array_leaves_nothing);
    RUN(test_failed_republish_at_last_file_keeps_previous_run_dir);
    RUN(test_publish_into_data_dir_that_is_a_file_fails_cleanly);
    RUN(test_publish_refuses_null_meta_and_bad_ids_before_touching_disk);
    RUN(test_reuse_hard_links_bins_and_writes_new_meta);
    RUN(test_reuse_force_copy_copies_bytes_into_new_files);
    RUN(test_reuse_copy_failure_leaves_nothing);
    RUN(test_reuse_missing_source_is_notfound);
    RUN(test_reuse_source_missing_one_file_is_notfound);
    RUN(test_reuse_source_with_truncated_file_is_notfound);
    RUN(test_reuse_refuses_source_paths_outside_projections);
    RUN(test_remove_stale_temps_removes_only_old_temp_dirs);
    RUN(test_remove_stale_temps_removes_the_own_runs_temps_at_once);
    RUN(test_remove_stale_temps_without_collection_dir_is_ok);
    PW_TEST_MAIN();
}
