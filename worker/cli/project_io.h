/* project_io.h - the files of `projection-worker project`: vector input, artifacts out.
 *
 * Input: raw little-endian float32 rows (the row length must be given), or a .npy
 * file (float32 or float64, C order, 2-D), recognised by its magic bytes, never by
 * name.  float64 is converted to float32 while reading, in chunks, so the peak memory
 * is the float32 matrix.  Output: x.f32.bin / y.f32.bin (little-endian float32, one
 * value per point) and meta.json, each written to a temporary name, fsynced and
 * renamed, so a reader never sees half a file.
 *
 * project_io_read_vectors fills a struct project_io_matrix: float32 data is mapped
 * read-only from the file (no copy), float64 is converted into an allocated buffer;
 * either way the caller releases it with project_io_release (project_io_drop_pages
 * gives a mapping's pages back earlier).  All functions return 0
 * or a negative PW_E* code with a one-line message in err. */
#ifndef PW_PROJECT_IO_H
#define PW_PROJECT_IO_H

#include <jansson.h>
#include <stddef.h>

#include "pw_error.h"

struct project_io_matrix {
    const float *x; /* n x d, row-major */
    size_t n, d;
    void *map; /* the file mapping, or NULL */
    size_t map_len;
    float *owned; /* the allocated buffer, or NULL */
};

/* dim: the row length for raw files (0 = unknown: only .npy then); for .npy it must
 * be 0 or equal to the file's second dimension. */
int project_io_read_vectors(const char *path, size_t dim, struct project_io_matrix *out,
                            struct pw_error *err);
void project_io_release(struct project_io_matrix *m);
/* For pw_progress's input_done (ctx: the matrix): a mapped file's pages are dropped
 * from memory (MADV_DONTNEED; read again from the file if touched); a matrix read into
 * memory is kept. */
void project_io_drop_pages(void *matrix);

/* Writes x.f32.bin, y.f32.bin from the n x 2 layout and meta.json (sorted keys,
 * indent 2) into dir, creating dir if needed. */
int project_io_write_artifacts(const char *dir, const float *layout, size_t n, json_t *meta,
                               struct pw_error *err);

#endif
