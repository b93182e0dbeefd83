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

/* Where the rows are in a file: shape, element type, offset of the first value. */
struct file_layout {
    size_t rows, cols, data_off;
    int is_f64;
};

/* The .npy header after its 8 magic bytes. */
static int npy_layout(FILE *f, const char *path, const unsigned char magic[8], off_t size,
                      size_t dim, struct file_layout *l, struct pw_error *err)
{
    unsigned char b[4];
    char *header = NULL;
    size_t hlen, len_bytes = magic[6] == 1 ? 2 : 4;
    int rc;

    if (magic[6] < 1 || magic[6] > 3)
        return pw_error_set(err, PW_EINVAL, "%s: unsupported .npy version %d", path, magic[6]);
    if (read_exact(f, b, len_bytes))
        return pw_error_set(err, PW_EINVAL, "%s: truncated .npy header", path);
    hlen = (size_t)b[0] | (size_t)b[1] << 8;
    if (len_bytes == 4)
        hlen |= (size_t)b[2] << 16 | (size_t)b[3] << 24;
    l->data_off = 8 + len_bytes + hlen;
    if (hlen > (1u << 20) || !(header = malloc(hlen + 1)) || read_exact(f, header, hlen)) {
        free(header);
        return pw_error_set(err, PW_EINVAL, "%s: bad .npy header", path);
    }
    header[hlen] = '\0';
    rc = parse_npy_header(header, &l->is_f64, &l->rows, &l->cols, err);
    free(header);
    if (rc)
        return rc;
    if (dim && dim != l->cols)
        return pw_error_set(err, PW_EINVAL, "%s: --dim %zu but the .npy rows have %zu values", path,
                            dim, l->cols);
    if (l->cols && l->rows > ((size_t)size - l->data_off) / (l->cols * (l->is_f64 ? 8 : 4)))
        return pw_error_set(err, PW_EINVAL, "%s: .npy data shorter than its shape (%zu x %zu)",
                            path, l->rows, l->cols);
    return 0;
}

/* A raw file: float32 rows of --dim values, nothing else. */
static int raw_layout(const char *path, off_t size, size_t dim, struct file_layout *l,
                      struct pw_error *err)
{
    if (!dim)
        return pw_error_set(err, PW_EINVAL, "%s: raw float32 input needs --dim", path);
    if ((size_t)size % (dim * 4) != 0)
        return pw_error_set(err, PW_EINVAL,
                            "%s: size %lld is not a multiple of %zu (float32 rows of --dim %zu)",
                            path, (long long)size, dim * 4, dim);
    l->rows = (size_t)size / (dim * 4);
    l->cols = dim;
    l->data_off = 0;
    l->is_f64 = 0;
    return 0;
}

/* float32 on disk is already the matrix: map it instead of copying it.  Read-only and
 * private; the file must not be truncated while we run (SIGBUS). */
static int map_f32(FILE *f, const char *path, const struct file_layout *l,
                   struct project_io_matrix *out, struct pw_error *err)
{
    size_t len = l->data_off + l->rows * l->cols * sizeof(float);
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fileno(f), 0);

    if (map == MAP_FAILED)
        return pw_error_set(err, PW_EIO, "%s: mmap failed: %s", path, strerror(errno));
    out->x = (const float *)((const char *)map + l->data_off);
    out->n = l->rows;
    out->d = l->cols;
    out->map = map;
    out->map_len = len;
    out->owned = NULL;
    return 0;
}

/* float64 values converted to float32 a chunk at a time. */
static int read_f64(FILE *f, const char *path, float *x, size_t total, struct pw_error *err)
{
    size_t per = 1 << 16, done = 0;
    double *chunk = malloc(per * sizeof *chunk);
    int rc = 0;

    if (!chunk)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    while (done < total && !rc) {
        size_t m = total - done < per ? total - done : per;
        if (read_exact(f, chunk, m * 8))
            rc = pw_error_set(err, PW_EIO, "%s: short read", path);
        for (size_t i = 0; i < m && !rc; i++)
            x[done + i] = (float)chunk[i];
        done += m;
    }
    free(chunk);
    return rc;
}

/* Rows the mapping cannot serve (float64, or an unaligned float32 offset) copied into
 * memory of our own. */
static int read_copy(FILE *f, const char *path, const struct file_layout *l,
                     struct project_io_matrix *out, struct pw_error *err)
{
    size_t total = l->rows * l->cols;
    float *x = malloc(total * sizeof *x);
    int rc = 0;

    if (!x)
        return pw_error_set(err, PW_ENOMEM, "%s: cannot allocate %zu x %zu floats", path, l->rows,
                            l->cols);
    if (l->is_f64)
        rc = read_f64(f, path, x, total, err);
    else if (read_exact(f, x, total * 4))
        rc = pw_error_set(err, PW_EIO, "%s: short read", path);
    if (rc) {
        free(x);
        return rc;
    }
    out->x = x;
    out->owned = x;
    out->n = l->rows;
    out->d = l->cols;
    out->map = NULL;
    out->map_len = 0;
    return 0;
}

int project_io_read_vectors(const char *path, size_t dim, struct project_io_matrix *out,
                            struct pw_error *err)
{
    struct file_layout l = {0, 0, 0, 0};
    unsigned char magic[8];
    struct stat st;
    FILE *f = fopen(path, "rb");
    int rc;

    if (!f)
        return pw_error_set(err, PW_EIO, "cannot open input %s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0)
        rc = pw_error_set(err, PW_EIO, "cannot stat %s: %s", path, strerror(errno));
    else if (fread(magic, 1, sizeof magic, f) == 8 && !memcmp(magic, "\x93NUMPY", 6))
        rc = npy_layout(f, path, magic, st.st_size, dim, &l, err);
    else
        rc = raw_layout(path, st.st_size, dim, &l, err);
    if (!rc && (l.rows == 0 || l.cols == 0))
        rc = pw_error_set(err, PW_EINVAL, "%s: no vectors", path);
    if (!rc && fseek(f, (long)l.data_off, SEEK_SET) != 0)
        rc = pw_error_set(err, PW_EIO, "%s: seek failed", path);
    if (!rc)
        rc = !l.is_f64 && l.data_off % sizeof(float) == 0 ? map_f32(f, path, &l, out, err)
                                                          : read_copy(f, path, &l, out, err);
    fclose(f);
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
