/* progress.h - how a long computation is watched and stopped by its caller.
 *
 * Every compute/ entry point that can run for more than a moment takes a
 * `const struct pw_progress *` (NULL means "nobody is watching").  The cancel
 * flag is read at least once a second from the calling thread; when it is
 * non-zero the computation frees what it allocated and returns PW_ECANCELED.
 * The report callback is invoked from the calling thread only, never from a
 * worker thread, with a phase name (a string literal) and a fraction in [0, 1]
 * of that phase.  input_done, when set, is called at most once, from the calling
 * thread, once the computation will not read its input matrix again (t-SNE: after the
 * k-NN; UMAP: after the initial layout), so its owner may give the pages back.  The
 * struct and what it points to stay owned by the caller. */
#ifndef PW_PROGRESS_H
#define PW_PROGRESS_H

#include <stdatomic.h>
#include <stddef.h>

#include "pw_error.h"

typedef void (*pw_progress_fn)(void *ctx, const char *phase, double fraction);

struct pw_progress {
    const atomic_int *cancel;            /* may be NULL; set to non-zero (any thread) to stop */
    pw_progress_fn report;               /* may be NULL */
    void *ctx;                           /* passed back to report */
    void (*input_done)(void *input_ctx); /* may be NULL */
    void *input_ctx;                     /* passed back to input_done */
};

static inline int pw_progress_cancelled(const struct pw_progress *p)
{
    return p && p->cancel && atomic_load_explicit(p->cancel, memory_order_relaxed) != 0;
}

static inline void pw_progress_report(const struct pw_progress *p, const char *phase,
                                      double fraction)
{
    if (p && p->report)
        p->report(p->ctx, phase, fraction < 0 ? 0 : fraction > 1 ? 1 : fraction);
}

static inline void pw_progress_input_done(const struct pw_progress *p)
{
    if (p && p->input_done)
        p->input_done(p->input_ctx);
}

/* Returns PW_ECANCELED (filling err) when the caller asked to stop, else 0. */
static inline int pw_progress_check(const struct pw_progress *p, struct pw_error *err,
                                    const char *phase)
{
    if (pw_progress_cancelled(p))
        return pw_error_set(err, PW_ECANCELED, "%s: cancelled", phase);
    return 0;
}

#endif
