/* pw_error.h - the one error type every module fills.
 *
 * Functions return 0 on success or a negative PW_E* code and, on failure,
 * write a human-readable message into a caller-provided struct pw_error.
 * The message never contains secrets; callers log it or turn it into a
 * Celery FAILURE result.  Header-only and dependency-free, so it lives in
 * the lowest layer (compute/) and every other module may include it. */
#ifndef PW_ERROR_H
#define PW_ERROR_H

#include <stdarg.h>
#include <stdio.h>

enum pw_errcode {
    PW_OK = 0,
    PW_EINVAL = -1,    /* bad input or parameter */
    PW_ENOMEM = -2,    /* allocation failed */
    PW_EIO = -3,       /* file system or network I/O failed */
    PW_EPROTO = -4,    /* peer spoke something we do not understand */
    PW_ENOTFOUND = -5, /* a named thing does not exist */
    PW_ECANCELED = -6, /* stopped on request (revoke, shutdown, time limit) */
    PW_ETIMEOUT = -7,  /* deadline passed */
    PW_EUNAVAIL = -8,  /* service unreachable or temporarily failing: retryable */
    PW_EDENIED = -9,   /* authentication or permission refused */
    PW_EINTERNAL = -10 /* a bug: an invariant did not hold */
};

struct pw_error {
    int code;
    char msg[256];
};

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline int
pw_error_set(struct pw_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return code;
}

static inline void pw_error_clear(struct pw_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

#endif
