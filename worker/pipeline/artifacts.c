/* artifacts.c - writes a projection run's files so that readers and crashes never see a
 * half-written run directory.
 *
 * Everything goes into .tmp-{run_uuid}-{pid}-{random} next to the final directory and
 * becomes visible by one rename.  All work inside the collection directory goes through
 * a directory fd and *at() calls, so names are single components that were checked
 * (artifacts_check_ids) before any path was built, and symlinks inside are never
 * followed.  Replacing an existing run directory uses renameat2(RENAME_EXCHANGE): after it
 * the temporary name holds the old contents, which the common cleanup path then removes,
 * so success and failure share one cleanup.  Array files are encoded little-endian
 * explicitly (a copy through a small buffer) so the bytes do not depend on the host. */
#include "artifacts.h"
#include "fault.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROJECTIONS_REL "semantik/projections"
#define TMP_PREFIX      ".tmp-"
#define MAX_COLLECTION  128
#define ECHO_MAX        64
#define REMOVE_DEPTH    8 /* run directories are flat; anything deeper is not ours */

static const char *const bin_files[4] = {ARTIFACTS_X_FILE, ARTIFACTS_Y_FILE, ARTIFACTS_IDS_FILE,
                                         ARTIFACTS_CAT_FILE};

/* ---------------------------------------------------------------- errors */

/* A disk that is full, read-only or not ours to write is the operator's to fix, after
 * which the same request succeeds: PW_EUNAVAIL says so.  Other errno values: PW_EIO. */
static int sys_error(struct pw_error *err, const char *what, const char *name, int e)
{
    char buf[128];
    const char *text = strerror_r(e, buf, sizeof buf); /* GNU variant: returns the text */
    int code = e == ENOSPC || e == EDQUOT || e == EROFS || e == EACCES || e == EPERM ? PW_EUNAVAIL
                                                                                     : PW_EIO;
    return pw_error_set(err, code, "artifacts: %s %s: %s", what, name, text);
}

/* At most ECHO_MAX characters of s, non-printable bytes shown as '?'. */
static void echo_bounded(const char *s, char out[ECHO_MAX + 4])
{
    size_t i = 0;
    for (; s[i] && i < ECHO_MAX; i++)
        out[i] = (s[i] >= 0x20 && s[i] <= 0x7e) ? s[i] : '?';
    if (s[i]) {
        memcpy(out + i, "...", 3);
        i += 3;
    }
    out[i] = '\0';
}

/* ---------------------------------------------------------------- identifiers */

static int check_collection_id(const char *field, const char *cid, struct pw_error *err)
{
    char echo[ECHO_MAX + 4];
    size_t n = 0;
    if (!cid)
        return pw_error_set(err, PW_EINVAL, "artifacts: %s is missing", field);
    for (; cid[n] && n <= MAX_COLLECTION; n++) {
        char c = cid[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-')) {
            echo_bounded(cid, echo);
            return pw_error_set(err, PW_EINVAL,
                                "artifacts: %s \"%s\" has a character outside [A-Za-z0-9_-] "
                                "at offset %zu",
                                field, echo, n);
        }
    }
    if (n == 0)
        return pw_error_set(err, PW_EINVAL, "artifacts: %s is empty", field);
    if (n > MAX_COLLECTION) {
        echo_bounded(cid, echo);
        return pw_error_set(err, PW_EINVAL, "artifacts: %s \"%s\" is longer than %d characters",
                            field, echo, MAX_COLLECTION);
    }
    return 0;
}

static int check_uuid(const char *field, const char *uuid, struct pw_error *err)
{
    char echo[ECHO_MAX + 4];
    size_t i = 0;
    if (!uuid)
        return pw_error_set(err, PW_EINVAL, "artifacts: %s is missing", field);
    for (; i < 36 && uuid[i]; i++) {
        char c = uuid[i];
        bool dash = (i == 8 || i == 13 || i == 18 || i == 23);
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex)
            break;
    }
    if (i != 36 || uuid[36] != '\0') {
        echo_bounded(uuid, echo);
        return pw_error_set(err, PW_EINVAL,
                            "artifacts: %s \"%s\" is not a UUID (8-4-4-4-12 hex digits)", field,
                            echo);
    }
    return 0;
}

int artifacts_check_ids(const char *collection_id, const char *run_uuid, struct pw_error *err)
{
    int rc = check_collection_id("collection_id", collection_id, err);
    if (rc == 0)
        rc = check_uuid("run_uuid", run_uuid, err);
    return rc;
}

/* ---------------------------------------------------------------- paths */

/* data_dir without trailing slashes ("/" stays "/"): length to use. */
static size_t data_dir_len(const char *data_dir)
{
    size_t n = strlen(data_dir);
    while (n > 1 && data_dir[n - 1] == '/')
        n--;
    return n;
}

/* "{data_dir}/semantik/projections/{cid}" (+ "/{uuid}" when uuid is not NULL), malloc'd. */
static char *join_path(const char *data_dir, const char *cid, const char *uuid)
{
    size_t dn = data_dir_len(data_dir);
    const char *sep = (dn == 1 && data_dir[0] == '/') ? "" : "/";
    char *p = NULL;
    int n = uuid
                ? asprintf(&p, "%.*s%s%s/%s/%s", (int)dn, data_dir, sep, PROJECTIONS_REL, cid, uuid)
                : asprintf(&p, "%.*s%s%s/%s", (int)dn, data_dir, sep, PROJECTIONS_REL, cid);
    return n < 0 ? NULL : p;
}

static int check_data_dir(const char *data_dir, struct pw_error *err)
{
    if (!data_dir || !data_dir[0])
        return pw_error_set(err, PW_EINVAL, "artifacts: data_dir is empty");
    return 0;
}

int artifacts_run_dir(const char *data_dir, const char *collection_id, const char *run_uuid,
                      char **abs_out, char **rel_out, struct pw_error *err)
{
    char *abs = NULL, *rel = NULL;
    int rc;
    if (abs_out)
        *abs_out = NULL;
    if (rel_out)
        *rel_out = NULL;
    if ((rc = check_data_dir(data_dir, err)) < 0 ||
        (rc = artifacts_check_ids(collection_id, run_uuid, err)) < 0)
        goto cleanup;
    if (abs_out && !(abs = join_path(data_dir, collection_id, run_uuid))) {
        rc = pw_error_set(err, PW_ENOMEM, "artifacts: out of memory building a path");
        goto cleanup;
    }
    if (rel_out && asprintf(&rel, "%s/%s/%s", PROJECTIONS_REL, collection_id, run_uuid) < 0) {
        rel = NULL;
        rc = pw_error_set(err, PW_ENOMEM, "artifacts: out of memory building a path");
        goto cleanup;
    }
    if (abs_out)
        *abs_out = abs;
    if (rel_out)
        *rel_out = rel;
    abs = rel = NULL;
cleanup:
    free(abs);
    free(rel);
    return rc;
}

/* ---------------------------------------------------------------- file-system helpers */

static int fsync_path_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return r;
}

/* mkdir -p path (0755), fsyncing the parent of every directory it creates. */
static int make_dirs(const char *path, struct pw_error *err)
{
    char *buf = strdup(path);
    int rc = 0;
    if (!buf)
        return pw_error_set(err, PW_ENOMEM, "artifacts: out of memory");
    size_t len = strlen(buf);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/') /* "//" */
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) == 0) {
            char *slash = strrchr(buf, '/');
            int r;
            if (!slash) {
                r = fsync_path_dir(".");
            } else if (slash == buf) {
                r = fsync_path_dir("/");
            } else {
                *slash = '\0';
                r = fsync_path_dir(buf);
                *slash = '/';
            }
            if (r < 0) {
                rc = sys_error(err, "fsync parent of", buf, errno);
                goto cleanup;
            }
        } else if (errno != EEXIST) {
            rc = sys_error(err, "mkdir", buf, errno);
            goto cleanup;
        }
        buf[i] = saved;
    }
cleanup:
    free(buf);
    return rc;
}

/* Opens (creating when asked) {data_dir}/semantik/projections/{cid}. */
static int open_collection_dir(const char *data_dir, const char *cid, bool create, int *fd_out,
                               struct pw_error *err)
{
    char *path = join_path(data_dir, cid, NULL);
    int rc = 0;
    *fd_out = -1;
    if (!path)
        return pw_error_set(err, PW_ENOMEM, "artifacts: out of memory building a path");
    if (create && (rc = make_dirs(path, err)) < 0)
        goto cleanup;
    *fd_out = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd_out < 0) {
        int e = errno;
        rc = (e == ENOENT && !create) ? pw_error_set(err, PW_ENOTFOUND, "artifacts: no %s", path)
                                      : sys_error(err, "open directory", path, e);
    }
cleanup:
    free(path);
    return rc;
}

/* Removes name (a file, or a directory tree at most `depth` levels deep) below dfd without
 * following symlinks.  Missing is fine.  Returns 0 or -errno of the first failure. */
static int remove_tree_at(int dfd, const char *name, int depth)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISDIR(st.st_mode))
        return (unlinkat(dfd, name, 0) < 0 && errno != ENOENT) ? -errno : 0;
    if (depth <= 0)
        return -ELOOP;
    int first = 0;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        first = -errno;
        close(fd);
        return first;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        int r = remove_tree_at(fd, de->d_name, depth - 1);
        if (r < 0 && !first)
            first = r;
    }
    closedir(d);
    if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !first)
        first = -errno;
    return first;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Creates dfd/name (0644, must not exist) with `count` items of `size` bytes (1 or 4) from
 * data, 4-byte items stored little-endian; fsyncs and closes it. */
static int write_file(int dfd, const char *name, const void *data, size_t count, size_t size,
                      struct pw_error *err)
{
    unsigned char chunk[16384];
    const unsigned char *src = data;
    int rc = 0;
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return sys_error(err, "create", name, errno);
    if (size == 1) {
        if (count > 0 && write_all(fd, data, count) < 0) {
            rc = sys_error(err, "write", name, errno);
            goto cleanup;
        }
    } else {
        for (size_t i = 0; i < count;) {
            size_t k = 0;
            for (; i < count && k + 4 <= sizeof chunk; i++, k += 4) {
                uint32_t u;
                memcpy(&u, src + i * 4, 4);
                chunk[k] = (unsigned char)u;
                chunk[k + 1] = (unsigned char)(u >> 8);
                chunk[k + 2] = (unsigned char)(u >> 16);
                chunk[k + 3] = (unsigned char)(u >> 24);
            }
            if (write_all(fd, chunk, k) < 0) {
                rc = sys_error(err, "write", name, errno);
                goto cleanup;
            }
        }
    }
    if (fsync(fd) < 0)
        rc = sys_error(err, "fsync", name, errno);
cleanup:
    if (close(fd) < 0 && rc == 0)
        rc = sys_error(err, "close", name, errno);
    return rc;
}

/* Copies srcdfd/name to dstdfd/name (new file, 0644), fsynced. */
static int copy_file(int srcdfd, int dstdfd, const char *name, struct pw_error *err)
{
    unsigned char buf[65536];
    int rc = 0, in = -1, out = -1;
    in = openat(srcdfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0) {
        rc = errno == ENOENT
                 ? pw_error_set(err, PW_ENOTFOUND, "artifacts: reuse source lost %s", name)
                 : sys_error(err, "open source", name, errno);
        goto cleanup;
    }
    out = openat(dstdfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0) {
        rc = sys_error(err, "create", name, errno);
        goto cleanup;
    }
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = sys_error(err, "read source", name, errno);
            goto cleanup;
        }
        if (r == 0)
            break;
        if (write_all(out, buf, (size_t)r) < 0) {
            rc = sys_error(err, "write", name, errno);
            goto cleanup;
        }
    }
    if (fsync(out) < 0)
        rc = sys_error(err, "fsync", name, errno);
cleanup:
    if (in >= 0)
        close(in);
    if (out >= 0 && close(out) < 0 && rc == 0)
        rc = sys_error(err, "close", name, errno);
    return rc;
}

static int fsync_at(int dfd, const char *name, struct pw_error *err)
{
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sys_error(err, "open", name, errno);
    int r = fsync(fd), e = errno;
    close(fd);
    return r < 0 ? sys_error(err, "fsync", name, e) : 0;
}

/* Creates .tmp-{uuid}-{pid}-{random} in cfd; name receives it, *fd_out an fd on it. */
static int make_temp_dir(int cfd, const char *uuid, char *name, size_t name_size, int *fd_out,
                         struct pw_error *err)
{
    *fd_out = -1;
    for (int attempt = 0; attempt < 16; attempt++) {
        uint32_t rnd = 0;
        if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
            rnd ^= (uint32_t)clock() * 2654435761u ^ (uint32_t)attempt;
        snprintf(name, name_size, TMP_PREFIX "%s-%ld-%08x", uuid, (long)getpid(), (unsigned)rnd);
        if (mkdirat(cfd, name, 0755) == 0) {
            *fd_out = openat(cfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (*fd_out < 0) {
                int e = errno;
                unlinkat(cfd, name, AT_REMOVEDIR);
                name[0] = '\0';
                return sys_error(err, "open", "temporary directory", e);
            }
            return 0;
        }
        if (errno != EEXIST) {
            int e = errno;
            name[0] = '\0';
            return sys_error(err, "mkdir", "temporary directory", e);
        }
    }
    name[0] = '\0';
    return pw_error_set(err, PW_EIO, "artifacts: no free temporary directory name");
}

static bool exchange_unsupported(int e)
{
    return e == EINVAL || e == ENOSYS || e == ENOTSUP || e == EOPNOTSUPP;
}

/* Makes cfd/tmp the run directory `final`.  Afterwards cfd/tmp is either gone or holds the
 * previous run directory (EXCHANGE), which the caller removes like any temporary. */
static int install_dir(int cfd, const char *tmp, const char *final, unsigned flags,
                       struct pw_error *err)
{
    char aside[300];
    int e, r;
    if (!(flags & ARTIFACTS_NO_EXCHANGE)) {
        for (int attempt = 0; attempt < 3; attempt++) {
            if (renameat2(cfd, tmp, cfd, final, RENAME_NOREPLACE) == 0)
                return 0;
            e = errno;
            if (exchange_unsupported(e))
                break;
            if (e != EEXIST)
                return sys_error(err, "rename into place", final, e);
            if (renameat2(cfd, tmp, cfd, final, RENAME_EXCHANGE) == 0)
                return 0;
            e = errno;
            if (exchange_unsupported(e))
                break;
            if (e != ENOENT) /* ENOENT: the old directory vanished meanwhile; try again */
                return sys_error(err, "exchange with", final, e);
        }
    }
    /* Without renameat2: a plain rename replaces a missing or empty directory. */
    if (renameat(cfd, tmp, cfd, final) == 0)
        return 0;
    e = errno;
    if (e != ENOTEMPTY && e != EEXIST && e != ENOTDIR && e != EISDIR)
        return sys_error(err, "rename into place", final, e);
    snprintf(aside, sizeof aside, "%s-old", tmp);
    if (renameat(cfd, final, cfd, aside) < 0)
        return sys_error(err, "rename aside", final, errno);
    if (renameat(cfd, tmp, cfd, final) < 0) {
        e = errno;
        renameat(cfd, aside, cfd, final); /* put the previous run back */
        return sys_error(err, "rename into place", final, e);
    }
    r = remove_tree_at(cfd, aside, REMOVE_DEPTH);
    (void)r; /* a leftover .tmp-*-old is removed by artifacts_remove_stale_temps */
    return 0;
}

/* ---------------------------------------------------------------- publishing */

/* What publish and reuse share: the temporary directory's life cycle around fill(). */
struct fill_ctx {
    const struct artifacts *a; /* publish */
    int srcfd;                 /* reuse */
    const char *meta_json;     /* reuse */
    unsigned flags;
};

static int fill_publish(int tfd, const struct fill_ctx *c, struct pw_error *err)
{
    const struct artifacts *a = c->a;
    int rc;
    if ((rc = write_file(tfd, ARTIFACTS_X_FILE, a->x, a->n, 4, err)) < 0 ||
        (rc = write_file(tfd, ARTIFACTS_Y_FILE, a->y, a->n, 4, err)) < 0 ||
        (rc = write_file(tfd, ARTIFACTS_IDS_FILE, a->ids, a->n, 4, err)) < 0 ||
        (rc = write_file(tfd, ARTIFACTS_CAT_FILE, a->cat, a->n, 1, err)) < 0)
        return rc;
    return write_file(tfd, ARTIFACTS_META_FILE, a->meta_json, strlen(a->meta_json), 1, err);
}

static bool link_refused(int e)
{
    return e == EXDEV || e == EPERM || e == EMLINK || e == ENOTSUP || e == EOPNOTSUPP ||
           e == EACCES;
}

static int fill_reuse(int tfd, const struct fill_ctx *c, struct pw_error *err)
{
    int rc;
    /* meta_json NULL: meta.json is linked like the arrays (the reuse keeps the source's
     * metadata file byte for byte, which is what readers fall back to). */
    int n_files = c->meta_json ? 4 : 5;
    for (int i = 0; i < n_files; i++) {
        const char *name = i < 4 ? bin_files[i] : ARTIFACTS_META_FILE;
        if (!(c->flags & ARTIFACTS_FORCE_COPY)) {
            if (linkat(c->srcfd, name, tfd, name, 0) == 0) {
                /* The source may come from the Python task, which never fsyncs. */
                if ((rc = fsync_at(tfd, name, err)) < 0)
                    return rc;
                continue;
            }
            int e = errno;
            if (e == ENOENT)
                return pw_error_set(err, PW_ENOTFOUND, "artifacts: reuse source lost %s", name);
            if (!link_refused(e))
                return sys_error(err, "link", name, e);
        }
        if ((rc = copy_file(c->srcfd, tfd, name, err)) < 0)
            return rc;
    }
    if (!c->meta_json)
        return 0;
    return write_file(tfd, ARTIFACTS_META_FILE, c->meta_json, strlen(c->meta_json), 1, err);
}

static int publish_common(const char *data_dir, const char *cid, const char *uuid,
                          int (*fill)(int, const struct fill_ctx *, struct pw_error *),
                          const struct fill_ctx *ctx, struct pw_error *err)
{
    char tmp[256] = "";
    int cfd = -1, tfd = -1, rc;
    if ((rc = open_collection_dir(data_dir, cid, true, &cfd, err)) < 0)
        goto cleanup;
    if ((rc = make_temp_dir(cfd, uuid, tmp, sizeof tmp, &tfd, err)) < 0)
        goto cleanup;
    if ((rc = fill(tfd, ctx, err)) < 0)
        goto cleanup;
    if (fsync(tfd) < 0) {
        rc = sys_error(err, "fsync", "temporary directory", errno);
        goto cleanup;
    }
    if ((rc = install_dir(cfd, tmp, uuid, ctx->flags, err)) < 0)
        goto cleanup;
    pw_fault_point("after_rename");
    if (fsync(cfd) < 0)
        rc = sys_error(err, "fsync", "collection directory", errno);
cleanup:
    if (tfd >= 0)
        close(tfd);
    if (tmp[0]) /* the unfinished temporary, or the previous run after an exchange */
        remove_tree_at(cfd, tmp, REMOVE_DEPTH);
    if (cfd >= 0)
        close(cfd);
    return rc;
}

int artifacts_publish(const char *data_dir, const char *collection_id, const char *run_uuid,
                      const struct artifacts *a, unsigned flags, struct pw_error *err)
{
    int rc;
    if ((rc = check_data_dir(data_dir, err)) < 0 ||
        (rc = artifacts_check_ids(collection_id, run_uuid, err)) < 0)
        return rc;
    if (!a || !a->meta_json)
        return pw_error_set(err, PW_EINVAL, "artifacts: no artifacts or no meta_json");
    if (a->n > 0 && (!a->x || !a->y || !a->ids || !a->cat))
        return pw_error_set(err, PW_EINVAL, "artifacts: %zu points but a NULL array", a->n);
    if (a->n > SIZE_MAX / 4)
        return pw_error_set(err, PW_EINVAL, "artifacts: %zu points is too many", a->n);
    struct fill_ctx ctx = {.a = a, .srcfd = -1, .flags = flags};
    return publish_common(data_dir, collection_id, run_uuid, fill_publish, &ctx, err);
}

/* src_rel must be exactly semantik/projections/{collection id}/{uuid}. */
static int check_src_rel(const char *src_rel, struct pw_error *err)
{
    char cid[MAX_COLLECTION + 2], echo[ECHO_MAX + 4];
    static const char prefix[] = PROJECTIONS_REL "/";
    if (!src_rel)
        return pw_error_set(err, PW_EINVAL, "artifacts: src_rel_path is missing");
    const char *rest = NULL, *slash = NULL;
    if (strncmp(src_rel, prefix, sizeof prefix - 1) == 0) {
        rest = src_rel + sizeof prefix - 1;
        slash = strchr(rest, '/');
    }
    if (!slash || (size_t)(slash - rest) > MAX_COLLECTION) {
        echo_bounded(src_rel, echo);
        return pw_error_set(err, PW_EINVAL,
                            "artifacts: src_rel_path \"%s\" is not " PROJECTIONS_REL
                            "/{collection_id}/{run_uuid}",
                            echo);
    }
    memcpy(cid, rest, (size_t)(slash - rest));
    cid[slash - rest] = '\0';
    int rc = check_collection_id("src_rel_path collection id", cid, err);
    if (rc == 0)
        rc = check_uuid("src_rel_path run uuid", slash + 1, err);
    return rc;
}

int artifacts_publish_reuse(const char *data_dir, const char *src_rel_path,
                            const char *collection_id, const char *run_uuid, const char *meta_json,
                            unsigned flags, struct pw_error *err)
{
    char *src = NULL;
    int srcfd = -1, rc;
    off_t sizes[4];
    if ((rc = check_data_dir(data_dir, err)) < 0 ||
        (rc = artifacts_check_ids(collection_id, run_uuid, err)) < 0 ||
        (rc = check_src_rel(src_rel_path, err)) < 0)
        goto cleanup;
    size_t dn = data_dir_len(data_dir);
    const char *sep = (dn == 1 && data_dir[0] == '/') ? "" : "/";
    if (asprintf(&src, "%.*s%s%s", (int)dn, data_dir, sep, src_rel_path) < 0) {
        src = NULL;
        rc = pw_error_set(err, PW_ENOMEM, "artifacts: out of memory building a path");
        goto cleanup;
    }
    srcfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (srcfd < 0) {
        int e = errno;
        rc = (e == ENOENT || e == ENOTDIR)
                 ? pw_error_set(err, PW_ENOTFOUND, "artifacts: reuse source %s does not exist",
                                src_rel_path)
                 : sys_error(err, "open reuse source", src_rel_path, e);
        goto cleanup;
    }
    for (int i = 0; i < 4; i++) {
        struct stat st;
        if (fstatat(srcfd, bin_files[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            int e = errno;
            rc = e == ENOENT
                     ? pw_error_set(err, PW_ENOTFOUND, "artifacts: reuse source %s has no %s",
                                    src_rel_path, bin_files[i])
                     : sys_error(err, "stat reuse source", bin_files[i], e);
            goto cleanup;
        }
        if (!S_ISREG(st.st_mode)) {
            rc = pw_error_set(err, PW_ENOTFOUND, "artifacts: reuse source %s: %s is not a file",
                              src_rel_path, bin_files[i]);
            goto cleanup;
        }
        sizes[i] = st.st_size;
    }
    /* x, y, ids: 4 bytes per point; cat: 1 byte per point. */
    if (sizes[0] != sizes[1] || sizes[0] != sizes[2] || sizes[0] != 4 * sizes[3]) {
        rc = pw_error_set(err, PW_ENOTFOUND,
                          "artifacts: reuse source %s is incomplete (sizes %lld/%lld/%lld/%lld)",
                          src_rel_path, (long long)sizes[0], (long long)sizes[1],
                          (long long)sizes[2], (long long)sizes[3]);
        goto cleanup;
    }
    struct fill_ctx ctx = {.srcfd = srcfd, .meta_json = meta_json, .flags = flags};
    rc = publish_common(data_dir, collection_id, run_uuid, fill_reuse, &ctx, err);
cleanup:
    if (srcfd >= 0)
        close(srcfd);
    free(src);
    return rc;
}

/* 1 when name is a temporary of run_uuid: .tmp-{run_uuid}-... */
static bool is_temp_of(const char *name, const char *run_uuid)
{
    const char *rest = name + sizeof TMP_PREFIX - 1; /* name starts with TMP_PREFIX */
    size_t n = strlen(run_uuid);

    return n && !strncmp(rest, run_uuid, n) && rest[n] == '-';
}

int artifacts_remove_stale_temps(const char *data_dir, const char *collection_id,
                                 const char *own_run_uuid, double older_than_s,
                                 struct pw_error *err)
{
    int cfd = -1, rc;
    DIR *d = NULL;
    struct timespec now;
    if ((rc = check_data_dir(data_dir, err)) < 0 ||
        (rc = check_collection_id("collection_id", collection_id, err)) < 0)
        goto cleanup;
    if (!(older_than_s >= 0)) {
        rc = pw_error_set(err, PW_EINVAL, "artifacts: older_than_s must be >= 0");
        goto cleanup;
    }
    rc = open_collection_dir(data_dir, collection_id, false, &cfd, err);
    if (rc == PW_ENOTFOUND) {
        pw_error_clear(err);
        rc = 0;
        goto cleanup;
    }
    if (rc < 0)
        goto cleanup;
    int lfd = dup(cfd);
    if (lfd < 0 || !(d = fdopendir(lfd))) {
        int e = errno;
        if (lfd >= 0)
            close(lfd);
        rc = sys_error(err, "list", "collection directory", e);
        goto cleanup;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (strncmp(de->d_name, TMP_PREFIX, sizeof TMP_PREFIX - 1) != 0)
            continue;
        if (fstatat(cfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
            continue;
        double age = (double)(now.tv_sec - st.st_mtim.tv_sec) +
                     (double)(now.tv_nsec - st.st_mtim.tv_nsec) * 1e-9;
        if (age <= older_than_s && !(own_run_uuid && is_temp_of(de->d_name, own_run_uuid)))
            continue;
        int r = remove_tree_at(cfd, de->d_name, REMOVE_DEPTH);
        if (r < 0 && rc == 0)
            rc = sys_error(err, "remove stale", de->d_name, -r);
    }
cleanup:
    if (d)
        closedir(d);
    if (cfd >= 0)
        close(cfd);
    return rc;
}
