/* team.c - helpers parked on a condition variable between jobs (see team.h). */
#include "team.h"

#include <pthread.h>
#include <stdlib.h>

struct team {
    int threads;
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    unsigned long round; /* bumped by team_run; helpers run each round once */
    int pending;         /* helpers still running the current round */
    int quit;
    team_fn fn;
    void *arg;
};

struct helper {
    struct team *tm;
    int t;
};

static void *helper_main(void *p)
{
    struct helper h = *(struct helper *)p;
    free(p);
    struct team *tm = h.tm;
    unsigned long seen = 0;
    pthread_mutex_lock(&tm->mu);
    for (;;) {
        while (tm->round == seen && !tm->quit)
            pthread_cond_wait(&tm->go, &tm->mu);
        if (tm->quit)
            break;
        seen = tm->round;
        team_fn fn = tm->fn;
        void *arg = tm->arg;
        pthread_mutex_unlock(&tm->mu);
        fn(arg, h.t, tm->threads);
        pthread_mutex_lock(&tm->mu);
        if (--tm->pending == 0)
            pthread_cond_signal(&tm->done);
    }
    pthread_mutex_unlock(&tm->mu);
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

void team_run(struct team *tm, team_fn fn, void *arg)
{
    if (tm->threads > 1) {
        pthread_mutex_lock(&tm->mu);
        tm->fn = fn;
        tm->arg = arg;
        tm->pending = tm->threads - 1;
        tm->round++;
        pthread_cond_broadcast(&tm->go);
        pthread_mutex_unlock(&tm->mu);
    }
    fn(arg, 0, tm->threads);
    if (tm->threads > 1) {
        pthread_mutex_lock(&tm->mu);
        while (tm->pending > 0)
            pthread_cond_wait(&tm->done, &tm->mu);
        pthread_mutex_unlock(&tm->mu);
    }
}

void team_stop(struct team *tm)
{
    if (!tm)
        return;
    pthread_mutex_lock(&tm->mu);
    tm->quit = 1;
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
