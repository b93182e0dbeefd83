/* test_project_io.c - project_io_drop_pages: a mapped input's pages leave the process's
 * resident set and come back unchanged from the file when read again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "project_io.h"
#include "pw_test.h"

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static float value_at(size_t i)
{
    return (float)(i % 1000003) * 0.25f - 7.0f;
}

static void test_dropped_pages_leave_rss_and_read_back_unchanged(void)
{
    size_t n = 65536, d = 128; /* 32 MiB */
    char path[] = "/tmp/pw-project-io-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    float row[128];
    for (size_t i = 0; i < n; i++) {
        for (size_t t = 0; t < d; t++)
            row[t] = value_at(i * d + t);
        CHECK(fwrite(row, sizeof row, 1, f) == 1);
    }
    CHECK(fclose(f) == 0);

    struct project_io_matrix m = {0};
    struct pw_error err;
    CHECK(project_io_read_vectors(path, d, &m, &err) == 0);
    CHECK(m.map != NULL && m.n == n && m.d == d);
    long before = rss_kib();
    project_io_drop_pages(&m);
    long after = rss_kib();
    printf("     VmRSS %ld -> %ld KiB\n", before, after);
    CHECK(before - after >= 24 * 1024);
    size_t bad = 0;
    for (size_t i = 0; i < n * d; i++)
        bad += m.x[i] != value_at(i);
    CHECK(bad == 0);
    project_io_release(&m);
    unlink(path);
}

int main(void)
{
    RUN(test_dropped_pages_leave_rss_and_read_back_unchanged);
    PW_TEST_MAIN();
}
