/* task_retry.h - the arithmetic of Celery's Task.retry, for the consumer.
 *
 * When a task answers retry (a service it needs is unreachable) the consumer publishes
 * the message again as Celery's Task.retry does: same id, `retries` + 1, and an `eta`
 * after an exponential backoff with full jitter.  task_retry_countdown() is
 * celery.utils.time.get_exponential_backoff_interval(factor, retries, maximum,
 * full_jitter) with Celery's autoretry defaults (retry_backoff = 1 s factor,
 * retry_backoff_max = 600 s, retry_jitter = true): min(maximum, factor * 2^retries),
 * then with jitter a whole number of seconds drawn uniformly from 0 to that, as
 * random.randrange(countdown + 1) does.  task_retry_eta() writes an absolute time as
 * the ISO-8601 text Celery puts in the `eta` header (UTC, "+00:00").
 * No allocation, no state. */
#ifndef PW_TASK_RETRY_H
#define PW_TASK_RETRY_H

#include <stddef.h>

struct task_retry_policy {
    int max_retries;      /* Celery Task.max_retries (default 3) */
    double backoff_s;     /* retry_backoff factor; 0 = retry at once */
    double backoff_max_s; /* retry_backoff_max */
    int jitter;           /* retry_jitter */
};

/* Seconds to wait before attempt number retries + 1 (retries = the failed attempt's). */
double task_retry_countdown(const struct task_retry_policy *p, int retries);

/* `unix_s` as "2026-12-07T04:40:01.250000+00:00"; buf of at least 40 bytes. */
void task_retry_eta(double unix_s, char *buf, size_t cap);

#endif
