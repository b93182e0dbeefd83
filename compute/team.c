/* team.c - helpers parked on a condition variable between jobs (see team.h).
 *
 * The job's round number and the helpers' pending count are atomics, so that a member
 * that polls (team_set_spin) sees a new job or the end of one without the mutex; the
 * mutex and condition variables are taken only to sleep and to wake a sleeper.  A sleeper
 * checks the atomic under the mutex, and the other side changes it before taking the
 * mutex to signal, so no wake-up is lost. */
#include "team.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct team {
    int threads;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong round; /* bumped by team_run; helpers run each round once */
    atomic_int pending; /* helpers still running the current round */
    atomic_int quit;
    atomic_long spin_ns; /* poll this long before sleeping; 0: sleep at once */
    team_fn fn;          /* written before round is bumped, read after it is seen */
    void *arg;
};

struct helper {
    struct team *tm;
    int t;
};

static long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int round_moved(struct team *tm, unsigned long seen)
{
    return atomic_load_explicit(&tm->round, memory_order_acquire) != seen ||
           atomic_load_explicit(&tm->quit, memory_order_relaxed);
}

static int all_done(struct team *tm, unsigned long unused)
{
    (void)unused;
    return atomic_load_explicit(&tm->pending, memory_order_acquire) == 0;
}

/* Polls ready(tm, arg) for up to spin_ns (the clock read every 64 turns); 1 once it holds,
 * 0 when the time is up or spinning is off: the caller then sleeps on a condition. */
static int poll_until(struct team *tm, int (*ready)(struct team *, unsigned long),
                      unsigned long arg)
{
    long spin = atomic_load_explicit(&tm->spin_ns, memory_order_relaxed);
    if (spin <= 0)
        return 0;
    long end = now_ns() + spin;
    for (int i = 0;; i++) {
        if (ready(tm, arg))
            return 1;
        cpu_relax();
        if ((i & 63) == 63 && now_ns() > end)
            return 0;
    }
}

static void *helper_main(void *p)
{
    struct helper h = *(struct helper *)p;
    free(p);
    struct team *tm = h.tm;
    unsigned long seen = 0;
    for (;;) {
        if (!poll_until(tm, round_moved, seen)) {
            pthread_mutex_lock(&tm->mu);
            while (atomic_load(&tm->round) == seen && !atomic_load(&tm->quit))
                pthread_cond_wait(&tm->go, &tm->mu);
            pthread_mutex_unlock(&tm->mu);
        }
        if (atomic_load(&tm->quit))
            break;
        seen = atomic_load_explicit(&tm->round, memory_order_acquire);
        tm->fn(tm->arg, h.t, tm->threads);
        if (atomic_fetch_sub_explicit(&tm->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&tm->mu);
            pthread_cond_signal(&tm->done);
            pthread_mutex_unlock(&tm->mu);
        }
    }
    return NULL;
}

int team_start(int threads, struct team **out, struct pw_error *err)
{
    *out = NULL;
    struct team *tm = calloc(1, sizeof *tm);
    if (threads < 1)
        threads = 1;
    if (!tm || !(tm->tid = calloc((size_t)threads, sizeof *tm->tid))) {
        free(tm);
        return pw_error_set(err, PW_ENOMEM, "out of memory for a team of %d threads", threads);
    }
    tm->threads = 1;
    atomic_init(&tm->round, 0);
    atomic_init(&tm->pending, 0);
    atomic_init(&tm->quit, 0);
    atomic_init(&tm->spin_ns, 0);
    pthread_mutex_init(&tm->mu, NULL);
    pthread_cond_init(&tm->go, NULL);
    pthread_cond_init(&tm->done, NULL);
    for (int t = 1; t < threads; t++) {
        struct helper *h = malloc(sizeof *h);
        if (!h)
            break;
        *h = (struct helper){tm, t};
        if (pthread_create(&tm->tid[t], NULL, helper_main, h)) {
            free(h);
            break;
        }
        tm->threads++;
    }
    /* Fewer helpers than asked (no memory or thread limit) only costs speed: the work
     * is split by the team's real size. */
    *out = tm;
    return 0;
}

void team_set_spin(struct team *tm, double seconds)
{
    if (tm)
        atomic_store_explicit(&tm->spin_ns, seconds > 0 ? (long)(seconds * 1e9) : 0,
                              memory_order_relaxed);
}

int team_threads(const struct team *tm)
{
    return tm ? tm->threads : 1;
}

void team_run(struct team *tm, team_fn fn, void *arg)
{
    if (tm->threads > 1) {
        tm->fn = fn;
        tm->arg = arg;
        atomic_store_explicit(&tm->pending, tm->threads - 1, memory_order_relaxed);
        pthread_mutex_lock(&tm->mu);
        atomic_fetch_add_explicit(&tm->round, 1, memory_order_release);
        pthread_cond_broadcast(&tm->go);
        pthread_mutex_unlock(&tm->mu);
    }
    fn(arg, 0, tm->threads);
    if (tm->threads > 1 && !poll_until(tm, all_done, 0)) {
        pthread_mutex_lock(&tm->mu);
        while (atomic_load(&tm->pending) > 0)
            pthread_cond_wait(&tm->done, &tm->mu);
        pthread_mutex_unlock(&tm->mu);
    }
}

struct team_for_job {
    atomic_size_t next;
    size_t ntasks;
    void (*task)(void *ctx, size_t i);
    void *ctx;
};

static void team_for_member(void *arg, int t, int nthreads)
{
    (void)t;
    (void)nthreads;
    struct team_for_job *j = arg;
    for (;;) {
        size_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
        if (i >= j->ntasks)
            return;
        j->task(j->ctx, i);
    }
}

void team_for(struct team *tm, size_t ntasks, void (*task)(void *ctx, size_t i), void *ctx)
{
    if (!tm || tm->threads == 1 || ntasks <= 1) {
        for (size_t i = 0; i < ntasks; i++)
            task(ctx, i);
        return;
    }
    struct team_for_job j = {.ntasks = ntasks, .task = task, .ctx = ctx};
    atomic_init(&j.next, 0);
    team_run(tm, team_for_member, &j);
}

void team_stop(struct team *tm)
{
    if (!tm)
        return;
    pthread_mutex_lock(&tm->mu);
    atomic_store(&tm->quit, 1);
    pthread_cond_broadcast(&tm->go);
    pthread_mutex_unlock(&tm->mu);
    for (int t = 1; t < tm->threads; t++)
        pthread_join(tm->tid[t], NULL);
    pthread_mutex_destroy(&tm->mu);
    pthread_cond_destroy(&tm->go);
    pthread_cond_destroy(&tm->done);
    free(tm->tid);
    free(tm);
}
