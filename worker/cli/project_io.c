/* project_io.c - reading vector files and writing projection artifacts (see project_io.h).
 *
 * The .npy parser accepts exactly what numpy.save writes for a 2-D float array:
 * versions 1.0 / 2.0 / 3.0, descr '<f4' or '<f8', fortran_order False.  Anything else
 * is refused with a message that says what was found. */
#include "project_io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "project_io.c reads and writes little-endian floats as they are in memory"
#endif

static int read_exact(FILE *f, void *buf, size_t len)
{
    return fread(buf, 1, len, f) == len ? 0 : -1;
}

static int parse_npy_header(const char *h, int *is_f64, size_t *rows, size_t *cols,
                            struct pw_error *err)
{
    const char *descr = strstr(h, "'descr'");
    const char *fortran = strstr(h, "'fortran_order'");
    const char *shape = strstr(h, "'shape'");
    if (!descr || !fortran || !shape)
        return pw_error_set(err, PW_EINVAL, ".npy header lacks descr/fortran_order/shape");
    const char *dq = strchr(descr + strlen("'descr'"), '\'');
    if (dq && !strncmp(dq, "'<f4'", 5))
        *is_f64 = 0;
    else if (dq && !strncmp(dq, "'<f8'", 5))
        *is_f64 = 1;
    else
        return pw_error_set(err, PW_EINVAL, ".npy dtype must be little-endian float32 or float64");
    const char *fv = fortran + strlen("'fortran_order'");
    fv += strspn(fv, ": ");
    if (strncmp(fv, "False", 5) != 0)
        return pw_error_set(err, PW_EINVAL, ".npy array must be C-ordered (fortran_order False)");
    const char *p = strchr(shape, '(');
    if (!p)
        return pw_error_set(err, PW_EINVAL, ".npy shape is malformed");
    char *end;
    errno = 0;
    unsigned long long r = strtoull(p + 1, &end, 10);
    if (errno || end == p + 1 || *end != ',')
        return pw_error_set(err, PW_EINVAL, ".npy array must be 2-D");
    p = end + 1;
    p += strspn(p, " ");
    unsigned long long c = strtoull(p, &end, 10);
    if (errno || end == p)
        return pw_error_set(err, PW_EINVAL, ".npy array must be 2-D");
    end += strspn(end, " ,");
    if (*end != ')')
        return pw_error_set(err, PW_EINVAL, ".npy array must be 2-D");
    *rows = (size_t)r;
    *cols = (size_t)c;
    return 0;
}

void project_io_release(struct project_io_matrix *m)
{
    if (m->map)
        munmap(m->map, m->map_len);
    free(m->owned);
    memset(m, 0, sizeof *m);
}

void project_io_drop_pages(void *matrix)
{
    struct project_io_matrix *m = matrix;
    if (m->map) /* private, read-only and never written: the file still has every byte */
        madvise(m->map, m->map_len, MADV_DONTNEED);
}

int project_io_read_vectors(const char *path, size_t dim, struct project_io_matrix *out,
                            struct pw_error *err)
{
    int rc = 0;
    float *x = NULL;
    char *header = NULL;
    double *chunk = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return pw_error_set(err, PW_EIO, "cannot open input %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        rc = pw_error_set(err, PW_EIO, "cannot stat %s: %s", path, strerror(errno));
        goto cleanup;
    }
    unsigned char magic[8];
    size_t got = fread(magic, 1, sizeof magic, f);
    size_t rows = 0, cols = 0, data_off = 0;
    int is_f64 = 0;
    if (got == 8 && !memcmp(magic, "\x93NUMPY", 6)) {
        size_t hlen;
        if (magic[6] == 1) {
            unsigned char b[2];
            if (read_exact(f, b, 2)) {
                rc = pw_error_set(err, PW_EINVAL, "%s: truncated .npy header", path);
                goto cleanup;
            }
            hlen = (size_t)b[0] | (size_t)b[1] << 8;
            data_off = 10 + hlen;
        } else if (magic[6] == 2 || magic[6] == 3) {
            unsigned char b[4];
            if (read_exact(f, b, 4)) {
                rc = pw_error_set(err, PW_EINVAL, "%s: truncated .npy header", path);
                goto cleanup;
            }
            hlen = (size_t)b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 | (size_t)b[3] << 24;
            data_off = 12 + hlen;
        } else {
            rc = pw_error_set(err, PW_EINVAL, "%s: unsupported .npy version %d", path, magic[6]);
            goto cleanup;
        }
        if (hlen > (1u << 20) || !(header = malloc(hlen + 1)) || read_exact(f, header, hlen)) {
            rc = pw_error_set(err, PW_EINVAL, "%s: bad .npy header", path);
            goto cleanup;
        }
        header[hlen] = '\0';
        if ((rc = parse_npy_header(header, &is_f64, &rows, &cols, err)))
            goto cleanup;
        if (dim && dim != cols) {
            rc = pw_error_set(err, PW_EINVAL, "%s: --dim %zu but the .npy rows have %zu values",
                              path, dim, cols);
            goto cleanup;
        }
        size_t esz = is_f64 ? 8 : 4;
        if (cols && rows > ((size_t)st.st_size - data_off) / (cols * esz)) {
            rc = pw_error_set(err, PW_EINVAL, "%s: .npy data shorter than its shape (%zu x %zu)",
                              path, rows, cols);
            goto cleanup;
        }
    } else {
        if (!dim) {
            rc = pw_error_set(err, PW_EINVAL, "%s: raw float32 input needs --dim", path);
            goto cleanup;
        }
        if ((size_t)st.st_size % (dim * 4) != 0) {
            rc = pw_error_set(err, PW_EINVAL,
                              "%s: size %lld is not a multiple of %zu (float32 rows of --dim %zu)",
                              path, (long long)st.st_size, dim * 4, dim);
            goto cleanup;
        }
        rows = (size_t)st.st_size / (dim * 4);
        cols = dim;
    }
    if (rows == 0 || cols == 0) {
        rc = pw_error_set(err, PW_EINVAL, "%s: no vectors", path);
        goto cleanup;
    }
    if (fseek(f, (long)data_off, SEEK_SET) != 0) {
        rc = pw_error_set(err, PW_EIO, "%s: seek failed", path);
        goto cleanup;
    }
    if (!is_f64 && data_off % sizeof(float) == 0) {
        /* float32 on disk is already the matrix: map it instead of copying it.  Read-only
         * and private; the file must not be truncated while we run (SIGBUS). */
        size_t len = data_off + rows * cols * sizeof(float);
        void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fileno(f), 0);
        if (map == MAP_FAILED) {
            rc = pw_error_set(err, PW_EIO, "%s: mmap failed: %s", path, strerror(errno));
            goto cleanup;
        }
        out->x = (const float *)((const char *)map + data_off);
        out->n = rows;
        out->d = cols;
        out->map = map;
        out->map_len = len;
        out->owned = NULL;
        goto cleanup;
    }
    x = malloc(rows * cols * sizeof *x);
    if (!x) {
        rc = pw_error_set(err, PW_ENOMEM, "%s: cannot allocate %zu x %zu floats", path, rows, cols);
        goto cleanup;
    }
    if (fseek(f, (long)data_off, SEEK_SET) != 0) {
        rc = pw_error_set(err, PW_EIO, "%s: seek failed", path);
        goto cleanup;
    }
    if (!is_f64) {
        if (read_exact(f, x, rows * cols * 4)) {
            rc = pw_error_set(err, PW_EIO, "%s: short read", path);
            goto cleanup;
        }
    } else {
        size_t per = 1 << 16, done = 0, total = rows * cols;
        chunk = malloc(per * sizeof *chunk);
        if (!chunk) {
            rc = pw_error_set(err, PW_ENOMEM, "out of memory");
            goto cleanup;
        }
        while (done < total) {
            size_t m = total - done < per ? total - done : per;
            if (read_exact(f, chunk, m * 8)) {
                rc = pw_error_set(err, PW_EIO, "%s: short read", path);
                goto cleanup;
            }
            for (size_t i = 0; i < m; i++)
                x[done + i] = (float)chunk[i];
            done += m;
        }
    }
    out->x = x;
    out->owned = x;
    out->n = rows;
    out->d = cols;
    out->map = NULL;
    out->map_len = 0;
    x = NULL;
cleanup:
    if (f)
        fclose(f);
    free(x);
    free(header);
    free(chunk);
    return rc;
}

static int write_file_atomic(const char *dir, const char *name, const void *data, size_t len,
                             struct pw_error *err)
{
    char tmp[4096], final[4096];
    if ((size_t)snprintf(final, sizeof final, "%s/%s", dir, name) >= sizeof final ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= sizeof tmp)
        return pw_error_set(err, PW_EINVAL, "output path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return pw_error_set(err, PW_EIO, "cannot create %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            unlink(tmp);
            return pw_error_set(err, PW_EIO, "cannot write %s: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        unlink(tmp);
        return pw_error_set(err, PW_EIO, "cannot sync %s: %s", tmp, strerror(errno));
    }
    if (rename(tmp, final) != 0) {
        unlink(tmp);
        return pw_error_set(err, PW_EIO, "cannot rename %s: %s", tmp, strerror(errno));
    }
    return 0;
}

int project_io_write_artifacts(const char *dir, const float *layout, size_t n, json_t *meta,
                               struct pw_error *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return pw_error_set(err, PW_EIO, "cannot create %s: %s", dir, strerror(errno));
    int rc = 0;
    char *text = NULL;
    float *col = malloc((n ? n : 1) * sizeof *col);
    if (!col)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    for (int c = 0; c < 2 && !rc; c++) {
        for (size_t i = 0; i < n; i++)
            col[i] = layout[2 * i + (size_t)c]; /* x86-64 and aarch64: already little-endian */
        rc = write_file_atomic(dir, c == 0 ? "x.f32.bin" : "y.f32.bin", col, n * sizeof *col, err);
    }
    if (!rc) {
        text = json_dumps(meta, JSON_SORT_KEYS | JSON_INDENT(2));
        if (!text)
            rc = pw_error_set(err, PW_ENOMEM, "cannot serialise meta.json");
        else {
            size_t len = strlen(text);
            text[len] = '\n';
            rc = write_file_atomic(dir, "meta.json", text, len + 1, err);
        }
    }
    free(col);
    free(text);
    return rc;
}
