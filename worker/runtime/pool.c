/* pool.c - task threads (see header).  One mutex guards both lists; an eventfd
 * carries "something is done" to the consumer's poll(). */
#include "clock.h"
#include "pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pool_job *todo_head, *todo_tail;
    struct pool_job *done_head, *done_tail;
    int stopping;
    int wake_fd;
    int n_threads;
    pthread_t *threads;
    const struct pw_log *log;
    void *app;
};

static void run_job(struct pool *p, struct pool_job *job)
{
    struct task_env env = {
        &job->msg,     &job->cancel,    p->log, p->app, job->give_up[0] ? job->give_up : NULL,
        job->last_try, &job->child_pid, 0};
    double t0 = pw_mono_now();

    pw_error_clear(&job->err);
    memset(&job->outcome, 0, sizeof job->outcome);
    job->rc = job->def->run(&env, &job->outcome, &job->err);
    if (job->rc && !job->outcome.exc_type) {
        job->outcome.exc_type = "RuntimeError";
        job->outcome.exc_module = "builtins";
    }
    job->runtime = pw_mono_now() - t0;
}

static void *worker_main(void *arg)
{
    struct pool *p = arg;
    uint64_t one = 1;

    for (;;) {
        struct pool_job *job;

        pthread_mutex_lock(&p->mu);
        while (!p->todo_head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (!p->todo_head) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        job = p->todo_head;
        p->todo_head = job->next;
        if (!p->todo_head)
            p->todo_tail = NULL;
        pthread_mutex_unlock(&p->mu);

        job->next = NULL;
        run_job(p, job);

        pthread_mutex_lock(&p->mu);
        if (p->done_tail)
            p->done_tail->next = job;
        else
            p->done_head = job;
        p->done_tail = job;
        pthread_mutex_unlock(&p->mu);
        if (write(p->wake_fd, &one, sizeof one) < 0) {
            /* eventfd counter cannot overflow here; nothing to do */
        }
    }
}

int pool_ensure_threads(struct pool *p, int n, struct pw_error *err)
{
    pthread_t *threads;
    sigset_t all, old;
    int rc = 0;

    if (n <= p->n_threads)
        return 0;
    threads = realloc(p->threads, (size_t)n * sizeof *p->threads);
    if (!threads)
        return pw_error_set(err, PW_ENOMEM, "cannot grow the thread table");
    p->threads = threads;
    /* Task threads never run the signal handler: it belongs to the consumer side. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; p->n_threads < n; p->n_threads++) {
        if (pthread_create(&p->threads[p->n_threads], NULL, worker_main, p)) {
            rc = pw_error_set(err, PW_ENOMEM, "cannot start task thread %d", p->n_threads);
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int pool_create(struct pool **out, int n_threads, const struct pw_log *log, void *app,
                struct pw_error *err)
{
    struct pool *p = calloc(1, sizeof *p);
    int rc = 0;

    *out = NULL;
    if (!p)
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->log = log;
    p->app = app;
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->wake_fd < 0) {
        rc = pw_error_set(err, PW_ENOMEM, "cannot create the pool wake-up fd");
        goto fail;
    }
    if ((rc = pool_ensure_threads(p, n_threads, err)))
        goto fail;
    *out = p;
    return 0;
fail:
    pool_destroy(p);
    return rc;
}

void pool_submit(struct pool *p, struct pool_job *job)
{
    job->next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->todo_tail)
        p->todo_tail->next = job;
    else
        p->todo_head = job;
    p->todo_tail = job;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

struct pool_job *pool_take_done(struct pool *p)
{
    struct pool_job *list;
    uint64_t count;

    if (read(p->wake_fd, &count, sizeof count) < 0) {
        /* EAGAIN: nothing signalled since the last call; the list is checked anyway */
    }
    pthread_mutex_lock(&p->mu);
    list = p->done_head;
    p->done_head = p->done_tail = NULL;
    pthread_mutex_unlock(&p->mu);
    return list;
}

int pool_wake_fd(struct pool *p)
{
    return p->wake_fd;
}

void pool_destroy(struct pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    if (p->wake_fd >= 0)
        close(p->wake_fd);
    free(p->threads);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
