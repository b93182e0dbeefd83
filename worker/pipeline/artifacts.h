/* artifacts.h - a projection run's files on disk, published atomically.
 *
 * A run directory is {data_dir}/semantik/projections/{collection_id}/{run_uuid} (the
 * Python task's run_dir) holding x.f32.bin, y.f32.bin (float32 LE), ids.i32.bin (int32 LE),
 * cat.u8.bin (uint8), one value per point in the same order, and meta.json.
 *
 * Publishing builds everything in a sibling temporary directory
 * ({collection dir}/.tmp-{run_uuid}-{pid}-{random}), fsyncs each file and the directory,
 * then renames it over the final name and fsyncs the collection directory.  An existing
 * run directory (redelivery after a crash between rename and DB commit, or a recompute)
 * is swapped atomically with renameat2(RENAME_EXCHANGE) and the old contents removed
 * afterwards; without EXCHANGE support the old directory is renamed aside first (a
 * reader then briefly sees no directory, never a half-written one).  On failure the
 * temporary directory is removed and any existing run directory is left as it was.
 * A worker killed mid-publish leaves a .tmp-* directory: artifacts_remove_stale_temps.
 *
 * Identifiers come from the database and are checked before any path is built:
 * run_uuid is a 36-character UUID (8-4-4-4-12 hex digits, either case), collection_id is
 * 1-128 characters of [A-Za-z0-9_-].
 *
 * Memory: inputs are only read.  artifacts_run_dir's *abs_out / *rel_out are malloc'd and
 * owned by the caller (free()); both NULL on failure.  No global state; functions are
 * safe to call from several threads (distinct runs; the caller's advisory lock keeps two
 * workers off the same run).
 * Errors: PW_EINVAL bad identifier, path or argument (err->msg names the field and echoes
 * at most 64 characters of it); PW_ENOTFOUND reuse source missing or incomplete (compute
 * instead); PW_EUNAVAIL the disk is full, read-only or not writable by us (fixable by
 * the operator: the same call succeeds afterwards); PW_EIO other file-system failures
 * (err->msg has the operation, path part and errno text); PW_ENOMEM. */
#ifndef PW_ARTIFACTS_H
#define PW_ARTIFACTS_H

#include <stddef.h>
#include <stdint.h>

#include "pw_error.h"

#define ARTIFACTS_X_FILE    "x.f32.bin"
#define ARTIFACTS_Y_FILE    "y.f32.bin"
#define ARTIFACTS_IDS_FILE  "ids.i32.bin"
#define ARTIFACTS_CAT_FILE  "cat.u8.bin"
#define ARTIFACTS_META_FILE "meta.json"

/* flags for artifacts_publish / artifacts_publish_reuse; 0 in production. */
#define ARTIFACTS_FORCE_COPY  0x1u /* reuse: copy the .bin files instead of hard-linking */
#define ARTIFACTS_NO_EXCHANGE 0x2u /* replace via rename-aside, as when EXCHANGE is missing */

struct artifacts {
    size_t n;              /* number of points; the arrays below hold n values each */
    const float *x, *y;    /* may be NULL only when n == 0 */
    const int32_t *ids;    /* may be NULL only when n == 0 */
    const uint8_t *cat;    /* may be NULL only when n == 0 */
    const char *meta_json; /* written verbatim as meta.json (py_json_dumps(.., 2, ..)) */
};

/* 0 when both identifiers are plain ids, PW_EINVAL otherwise. */
int artifacts_check_ids(const char *collection_id, const char *run_uuid, struct pw_error *err);

/* {data_dir}/semantik/projections/{collection_id}/{run_uuid} into *abs_out (absolute when
 * data_dir is) and semantik/projections/{collection_id}/{run_uuid} into *rel_out (the
 * storage_path the Python task stores).  Either output may be NULL.  Trailing slashes of
 * data_dir are dropped.  Nothing is touched on disk. */
int artifacts_run_dir(const char *data_dir, const char *collection_id, const char *run_uuid,
                      char **abs_out, char **rel_out, struct pw_error *err);

/* Writes a's files as the run directory, creating missing parents (mode 0755), replacing an
 * existing run directory atomically.  Files are created 0644 (minus umask). */
int artifacts_publish(const char *data_dir, const char *collection_id, const char *run_uuid,
                      const struct artifacts *a, unsigned flags, struct pw_error *err);

/* Idempotent reuse: the four .bin files of the run directory at src_rel_path (relative to
 * data_dir, exactly semantik/projections/{collection_id}/{run_uuid} of a valid source run)
 * are hard-linked (copied when link() fails with EXDEV, EPERM, EMLINK, ENOTSUP or EACCES,
 * or with ARTIFACTS_FORCE_COPY) into a new run directory for collection_id/run_uuid with
 * meta_json as its meta.json, published like artifacts_publish; meta_json NULL links the
 * source's meta.json too (reuse in O(1) of the collection size).  A missing source
 * directory or file, or .bin files whose sizes disagree on the point count, give
 * PW_ENOTFOUND. */
int artifacts_publish_reuse(const char *data_dir, const char *src_rel_path,
                            const char *collection_id, const char *run_uuid, const char *meta_json,
                            unsigned flags, struct pw_error *err);

/* Removes .tmp-* directories in the collection's directory whose modification time is more
 * than older_than_s seconds ago (publishing takes seconds; pass minutes or more), and those
 * of own_run_uuid (.tmp-{own_run_uuid}-*) whatever their age: the caller holds that run's
 * lock, so they are left by an attempt that died (own_run_uuid may be NULL).  A missing
 * collection directory is not an error. */
int artifacts_remove_stale_temps(const char *data_dir, const char *collection_id,
                                 const char *own_run_uuid, double older_than_s,
                                 struct pw_error *err);

#endif
