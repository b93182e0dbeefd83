/* qdrant_scroll.c - the scroll loop of projection.py (pages of <= 1000 points until
 * sample_limit), with receiving and parsing on different cores.
 *
 * Why threads: one core receives a page at ~1 GB/s but parses it at ~0.4 GB/s, and a
 * scroll is strictly sequential (each request needs the previous page's
 * next_page_offset, which Qdrant writes after the points).  So the calling thread only
 * receives: each chunk of a 200 body is copied into the page's slot (fixed 1 MiB
 * blocks, never moved) and a parser thread parses it as it streams in, writing vectors
 * straight into the page's window of the final matrix (qdrant_window: rows
 * [base, base + asked) of m, no copy of the floats).  As soon as a body is complete its
 * tail is read for next_page_offset (qdrant_page_peek_next) and the next page is
 * requested while this one is still being parsed.  Windows are committed to the matrix
 * strictly in page order; the full parse of a page is authoritative, so a peeked offset
 * that differs from the parsed one (or a tail the peek does not recognise) costs only
 * time: later pages are dropped and the scroll goes on from the parsed offset.
 *
 * Until the vector dimension is known (collections whose named vectors differ in size
 * and no vector name given), and always with parse_threads == 1, a page is parsed
 * directly into the matrix on the calling thread as it arrives.
 *
 * Failures: a transport failure or a truncated body retries the page (qdrant.c's
 * retry loop; a sink drops the half-parsed page, which rolls its window back); any
 * other failure stops the scroll after the pages before it are committed, and the
 * error of the earliest failing page is returned. */
#include "qdrant.h"
#include "qdrant_http.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLOT_BLOCK       ((size_t)1 << 20)
#define SLOT_MAX_BLOCKS  1024 /* a page body above 1 GiB is refused */
#define TAIL_KEEP        512
#define MAX_PARSE_THREAD 8

struct scroll;

struct slot {
    struct scroll *s;
    int in_use;
    size_t seq, want;
    char offset[QDRANT_OFFSET_TEXT_MAX]; /* the request's offset ("" first page) */
    struct qdrant_window win;
    /* the body: written by the calling thread, read by a parser below `len` */
    char *blocks[SLOT_MAX_BLOCKS];
    size_t len;   /* guarded by s->mu */
    int body_end; /* guarded: 0 arriving, 1 complete, -1 attempt dropped */
    int queued;   /* guarded: waiting for a parser */
    int parsing;  /* guarded: a parser works on it */
    int parsed;   /* guarded: rc, err and page are final */
    int rc;
    struct pw_error err;
    struct qdrant_page page;
    char tail[TAIL_KEEP]; /* last bytes of the body (calling thread only) */
    size_t tail_len;
    int assumed_next; /* the continuation the next request used */
    char assumed_offset[QDRANT_OFFSET_TEXT_MAX];
};

struct scroll {
    pthread_mutex_t mu;
    pthread_cond_t work; /* parsers: a slot is queued, body bytes arrived, or stop */
    pthread_cond_t done; /* calling thread: a slot was parsed or dropped */
    int stop;
    pthread_t threads[MAX_PARSE_THREAD];
    size_t n_threads;
    struct slot *slots;
    size_t n_slots;
    struct qdrant_parse_opts po;
    struct qdrant_matrix *m;
};

/* ---- parser threads -------------------------------------------------------------- */

static struct slot *next_queued(struct scroll *s)
{
    struct slot *best = NULL;
    for (size_t i = 0; i < s->n_slots; i++)
        if (s->slots[i].queued && (!best || s->slots[i].seq < best->seq))
            best = &s->slots[i];
    return best;
}

/* Parses one slot's body as it arrives.  Called without the lock. */
static void parse_slot(struct scroll *s, struct slot *sl)
{
    struct qdrant_page_parser *p = NULL;
    struct qdrant_parse_opts po = s->po;
    struct pw_error err = {0};
    size_t pos = 0;
    int rc, dropped = 0;

    po.limit = sl->want;
    rc = qdrant_page_parser_new(&p, &sl->win.w, &po, &err);
    while (rc == 0) {
        pthread_mutex_lock(&s->mu);
        while (sl->len == pos && sl->body_end == 0)
            pthread_cond_wait(&s->work, &s->mu);
        size_t len = sl->len;
        int end = sl->body_end;
        pthread_mutex_unlock(&s->mu);
        if (end < 0) {
            dropped = 1;
            break;
        }
        while (rc == 0 && pos < len) {
            size_t b = pos / SLOT_BLOCK, in = pos % SLOT_BLOCK;
            size_t n = SLOT_BLOCK - in < len - pos ? SLOT_BLOCK - in : len - pos;
            rc = qdrant_page_parser_feed(p, sl->blocks[b] + in, n, &err);
            pos += n;
        }
        if (rc == 0 && end > 0 && pos == len) {
            rc = qdrant_page_parser_finish(p, &sl->page, &err);
            break;
        }
    }
    qdrant_page_parser_free(p); /* rolls the window back unless finished */
    pthread_mutex_lock(&s->mu);
    sl->parsing = 0;
    if (!dropped) {
        sl->rc = rc;
        sl->err = err;
        sl->parsed = 1;
    }
    pthread_cond_broadcast(&s->done);
    pthread_mutex_unlock(&s->mu);
}

static void *parser_main(void *arg)
{
    struct scroll *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        struct slot *sl;
        while (!s->stop && !(sl = next_queued(s)))
            pthread_cond_wait(&s->work, &s->mu);
        if (s->stop)
            break;
        sl->queued = 0;
        sl->parsing = 1;
        pthread_mutex_unlock(&s->mu);
        parse_slot(s, sl);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* With s->mu held: unqueues the slot and waits until no parser holds its window, so
 * the calling thread may drop or reuse it. */
static void release_slot_locked(struct scroll *s, struct slot *sl)
{
    sl->queued = 0;
    while (sl->parsing)
        pthread_cond_wait(&s->done, &s->mu);
}

/* ---- the sink of a pipelined page (calling thread) ------------------------------- */

static int slot_start(void *ud, struct pw_error *err)
{
    struct slot *sl = ud;
    struct scroll *s = sl->s;
    int rc = qdrant_window_open(&sl->win, s->m, sl->win.base, sl->want, err);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&s->mu);
    sl->len = 0;
    sl->body_end = 0;
    sl->parsed = 0;
    sl->rc = 0;
    sl->queued = 1;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    sl->tail_len = 0;
    return 0;
}

static void keep_tail(struct slot *sl, const char *buf, size_t len)
{
    if (len >= TAIL_KEEP) {
        memcpy(sl->tail, buf + len - TAIL_KEEP, TAIL_KEEP);
        sl->tail_len = TAIL_KEEP;
        return;
    }
    if (sl->tail_len + len > TAIL_KEEP) {
        size_t drop = sl->tail_len + len - TAIL_KEEP;
        memmove(sl->tail, sl->tail + drop, sl->tail_len - drop);
        sl->tail_len -= drop;
    }
    memcpy(sl->tail + sl->tail_len, buf, len);
    sl->tail_len += len;
}

static int slot_data(void *ud, const char *buf, size_t len, struct pw_error *err)
{
    struct slot *sl = ud;
    size_t pos = sl->len; /* only this thread writes len */
    keep_tail(sl, buf, len);
    while (len > 0) {
        size_t b = pos / SLOT_BLOCK, in = pos % SLOT_BLOCK;
        if (b >= SLOT_MAX_BLOCKS)
            return pw_error_set(err, PW_EPROTO, "qdrant scroll: a page larger than %zu MiB",
                                SLOT_MAX_BLOCKS * SLOT_BLOCK >> 20);
        if (!sl->blocks[b] && !(sl->blocks[b] = malloc(SLOT_BLOCK)))
            return pw_error_set(err, PW_ENOMEM, "out of memory for a scroll page");
        size_t n = SLOT_BLOCK - in < len ? SLOT_BLOCK - in : len;
        memcpy(sl->blocks[b] + in, buf, n);
        buf += n;
        len -= n;
        pos += n;
    }
    pthread_mutex_lock(&sl->s->mu);
    sl->len = pos;
    pthread_cond_broadcast(&sl->s->work);
    pthread_mutex_unlock(&sl->s->mu);
    return 0;
}

static void wait_parsed(struct scroll *s, struct slot *sl)
{
    pthread_mutex_lock(&s->mu);
    while (!sl->parsed)
        pthread_cond_wait(&s->done, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

static int slot_finish(void *ud, int complete, struct pw_error *err)
{
    struct slot *sl = ud;
    struct scroll *s = sl->s;
    pthread_mutex_lock(&s->mu);
    sl->body_end = complete ? 1 : -1;
    pthread_cond_broadcast(&s->work);
    if (!complete) { /* drop it: wait until no parser holds the window */
        release_slot_locked(s, sl);
        sl->parsed = 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (!complete)
        return 0;
    if (qdrant_page_peek_next(sl->tail, sl->tail_len, &sl->assumed_next, sl->assumed_offset))
        return 0;       /* request the next page now; the parse confirms it at commit */
    wait_parsed(s, sl); /* unusual tail (or truncated body): the parse decides */
    if (sl->rc < 0) {
        if (err)
            *err = sl->err;
        return sl->rc; /* PW_EUNAVAIL (truncated) makes qdrant.c retry the page */
    }
    sl->assumed_next = sl->page.has_next && sl->page.points > 0;
    memcpy(sl->assumed_offset, sl->page.next_offset, sizeof sl->assumed_offset);
    return 0;
}

/* ---- the sink of a page parsed on the calling thread ----------------------------- */

struct direct {
    struct qdrant_matrix *m;
    const struct qdrant_parse_opts *po;
    struct qdrant_page_parser *p;
    struct qdrant_page page;
};

static int direct_start(void *ud, struct pw_error *err)
{
    struct direct *d = ud;
    return qdrant_page_parser_new(&d->p, d->m, d->po, err);
}

static int direct_data(void *ud, const char *buf, size_t len, struct pw_error *err)
{
    struct direct *d = ud;
    return qdrant_page_parser_feed(d->p, buf, len, err);
}

static int direct_finish(void *ud, int complete, struct pw_error *err)
{
    struct direct *d = ud;
    int rc = complete ? qdrant_page_parser_finish(d->p, &d->page, err) : 0;
    qdrant_page_parser_free(d->p); /* rolls the matrix back unless finished */
    d->p = NULL;
    return rc;
}

/* ---- the scroll ------------------------------------------------------------------ */

static void json_escape(const char *s, char *out, size_t size)
{
    size_t k = 0;
    for (; *s && k + 7 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[k++] = '\\';
            out[k++] = (char)ch;
        } else if (ch < 0x20) {
            k += (size_t)snprintf(out + k, size - k, "\\u%04x", ch);
        } else {
            out[k++] = (char)ch;
        }
    }
    out[k] = '\0';
}

/* Dimension to preallocate for, from the collection config; 0 = learn from the data. */
static int choose_dim(const struct qdrant_collection_info *info, const char *vname,
                      const char *collection, size_t *dim, struct pw_error *err)
{
    *dim = 0;
    if (vname) {
        for (size_t i = 0; i < info->n_vectors; i++) {
            if (strcmp(info->vectors[i].name, vname) == 0) {
                if (info->vectors[i].multivector)
                    return pw_error_set(err, PW_EINVAL,
                                        "vector `%.64s` of `%.100s` is a multivector; "
                                        "projections need dense vectors",
                                        vname, collection);
                *dim = info->vectors[i].size;
                return 0;
            }
        }
        return pw_error_set(err, PW_EINVAL, "collection `%.100s` has no dense vector named `%.64s`",
                            collection, vname);
    }
    for (size_t i = 0; i < info->n_vectors; i++) {
        if (info->vectors[i].multivector)
            continue;
        if (*dim && info->vectors[i].size != *dim) { /* names differ in size: learn it */
            *dim = 0;
            return 0;
        }
        *dim = info->vectors[i].size;
    }
    return 0;
}

/* State of one qdrant_scroll_matrix call. */
struct run {
    struct qdrant_client *c;
    const struct qdrant_scroll_opts *o;
    struct qdrant_matrix *m;
    struct qdrant_scroll_stats st;
    struct scroll s;
    int pipeline;   /* parser threads and slots exist */
    size_t threads; /* parser threads wanted (1: parse on this thread) */
    size_t limit, batch, merge_seq, fetch_seq;
    const char *url;
    char what[160], with_vector[160];
    int more;                            /* the scroll goes on after the last request */
    char offset[QDRANT_OFFSET_TEXT_MAX]; /* ... from this offset */
};

static size_t threads_wanted(const struct qdrant_scroll_opts *o)
{
    long n = o->parse_threads > 0 ? o->parse_threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > MAX_PARSE_THREAD ? MAX_PARSE_THREAD : (size_t)n;
}

static int start_pipeline(struct run *r, struct pw_error *err)
{
    struct scroll *s = &r->s;
    size_t n = r->threads;
    s->m = r->m;
    s->po = (struct qdrant_parse_opts){.vector_name = r->o->vector_name,
                                       .keep_payload = !r->o->skip_payload};
    s->n_slots = n + 2; /* every parser busy, one page arriving, one waiting to commit */
    s->slots = calloc(s->n_slots, sizeof *s->slots);
    if (!s->slots)
        return pw_error_set(err, PW_ENOMEM, "out of memory for scroll pages");
    for (size_t i = 0; i < s->n_slots; i++)
        s->slots[i].s = s;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->done, NULL);
    r->pipeline = 1;
    for (; s->n_threads < n; s->n_threads++)
        if (pthread_create(&s->threads[s->n_threads], NULL, parser_main, s) != 0)
            break;
    if (s->n_threads == 0)
        return pw_error_set(err, PW_ENOMEM, "cannot start a page parser thread");
    return 0;
}

static void stop_pipeline(struct run *r)
{
    struct scroll *s = &r->s;
    if (!r->pipeline)
        return;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_slots; i++) /* no new page starts being parsed */
        s->slots[i].queued = 0;
    for (size_t i = 0; i < s->n_slots; i++) /* bodies are complete: parsers finish */
        release_slot_locked(s, &s->slots[i]);
    s->stop = 1;
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i], NULL);
    for (size_t i = 0; i < s->n_slots; i++) {
        qdrant_window_free(&s->slots[i].win);
        for (size_t b = 0; b < SLOT_MAX_BLOCKS && s->slots[i].blocks[b]; b++)
            free(s->slots[i].blocks[b]);
    }
    free(s->slots);
    pthread_cond_destroy(&s->done);
    pthread_cond_destroy(&s->work);
    pthread_mutex_destroy(&s->mu);
    r->pipeline = 0;
}

static struct slot *slot_of_seq(struct run *r, size_t seq)
{
    for (size_t i = 0; r->pipeline && i < r->s.n_slots; i++)
        if (r->s.slots[i].in_use && r->s.slots[i].seq == seq)
            return &r->s.slots[i];
    return NULL;
}

static size_t in_flight(struct run *r, size_t *wanted, size_t *end_row)
{
    size_t n = 0;
    *wanted = 0;
    *end_row = r->m->n;
    for (size_t i = 0; r->pipeline && i < r->s.n_slots; i++) {
        struct slot *sl = &r->s.slots[i];
        if (!sl->in_use)
            continue;
        n++;
        *wanted += sl->want;
        if (sl->win.base + sl->want > *end_row)
            *end_row = sl->win.base + sl->want;
    }
    return n;
}

/* After page `seq` was committed: the scroll goes on from `offset` (or ends). */
static void continue_after(struct run *r, size_t seq, int has_next, const char *offset)
{
    r->more = has_next;
    memcpy(r->offset, offset, sizeof r->offset);
    r->fetch_seq = seq + 1;
}

/* Common end of a committed page: stats, progress, and the end/advance checks. */
static int page_done(struct run *r, const char *req_offset, const struct qdrant_page *page,
                     int *goes_on, struct pw_error *err)
{
    const struct qdrant_scroll_opts *o = r->o;
    r->st.pages++;
    if (o->progress && o->progress(o->progress_ud, r->m->n, r->limit))
        return pw_error_set(err, PW_ECANCELED, "%s: cancelled after %zu points", r->what, r->m->n);
    *goes_on = page->points > 0 && page->has_next;
    if (*goes_on && strcmp(page->next_offset, req_offset) == 0)
        return pw_error_set(err, PW_EPROTO, "%s: next_page_offset %s did not advance", r->what,
                            req_offset);
    return 0;
}

/* Commits every parsed page that is next in order. */
static int commit_ready(struct run *r, struct pw_error *err)
{
    struct slot *sl;
    while ((sl = slot_of_seq(r, r->merge_seq)) != NULL) {
        int parsed, goes_on;
        pthread_mutex_lock(&r->s.mu);
        parsed = sl->parsed;
        pthread_mutex_unlock(&r->s.mu);
        if (!parsed)
            return 0;
        sl->in_use = 0;
        if (sl->rc < 0) {
            if (err)
                *err = sl->err;
            return sl->rc;
        }
        int rc = qdrant_window_commit(&sl->win, r->m, err);
        if (rc == 0)
            rc = page_done(r, sl->offset, &sl->page, &goes_on, err);
        if (rc < 0)
            return rc;
        r->merge_seq++;
        if (goes_on != sl->assumed_next ||
            (goes_on && strcmp(sl->page.next_offset, sl->assumed_offset) != 0)) {
            /* the peeked continuation was wrong: drop later pages, go on from the parse */
            pthread_mutex_lock(&r->s.mu);
            for (size_t i = 0; i < r->s.n_slots; i++) {
                struct slot *o = &r->s.slots[i];
                if (!o->in_use)
                    continue;
                release_slot_locked(&r->s, o);
                o->in_use = 0;
            }
            pthread_mutex_unlock(&r->s.mu);
            continue_after(r, sl->seq, goes_on, sl->page.next_offset);
        }
    }
    return 0;
}

/* Waits until the oldest page in flight is parsed, then commits what is ready. */
static int commit_oldest(struct run *r, struct pw_error *err)
{
    struct slot *sl = slot_of_seq(r, r->merge_seq);
    if (sl)
        wait_parsed(&r->s, sl);
    return commit_ready(r, err);
}

static void request_body(struct run *r, size_t want, char *body, size_t size)
{
    snprintf(body, size, "{\"limit\":%zu,\"with_payload\":%s,\"with_vector\":%s%s%s}", want,
             r->o->skip_payload ? "false" : "true", r->with_vector,
             r->offset[0] ? ",\"offset\":" : "", r->offset);
}

/* One page parsed on this thread as it arrives (dimension not known yet, or no threads). */
static int fetch_direct(struct run *r, size_t want, struct pw_error *err)
{
    char body[512];
    struct qdrant_parse_opts po = {
        .vector_name = r->o->vector_name, .limit = r->limit, .keep_payload = !r->o->skip_payload};
    struct direct d = {.m = r->m, .po = &po};
    struct qdrant_sink sink = {direct_start, direct_data, direct_finish, &d};
    int goes_on = 0;
    request_body(r, want, body, sizeof body);
    int rc = qdrant_http_stream(r->c, r->what, r->url, body, &sink, &r->st.requests, &r->st.retries,
                                err);
    if (rc == 0)
        rc = page_done(r, r->offset, &d.page, &goes_on, err);
    if (rc < 0)
        return rc;
    continue_after(r, r->fetch_seq, goes_on, d.page.next_offset);
    r->merge_seq = r->fetch_seq;
    return 0;
}

/* One page received into a free slot and handed to the parsers. */
static int fetch_pipelined(struct run *r, size_t base, size_t want, struct pw_error *err)
{
    char body[512];
    struct slot *sl = NULL;
    for (size_t i = 0; i < r->s.n_slots && !sl; i++)
        if (!r->s.slots[i].in_use)
            sl = &r->s.slots[i];
    sl->in_use = 1;
    sl->seq = r->fetch_seq;
    sl->want = want;
    sl->win.base = base;
    memcpy(sl->offset, r->offset, sizeof sl->offset);
    struct qdrant_sink sink = {slot_start, slot_data, slot_finish, sl};
    request_body(r, want, body, sizeof body);
    int rc = qdrant_http_stream(r->c, r->what, r->url, body, &sink, &r->st.requests, &r->st.retries,
                                err);
    if (rc < 0) {
        pthread_mutex_lock(&r->s.mu); /* a parser may still read a body that failed late */
        release_slot_locked(&r->s, sl);
        pthread_mutex_unlock(&r->s.mu);
        sl->in_use = 0;
        return rc;
    }
    r->more = sl->assumed_next;
    memcpy(r->offset, sl->assumed_offset, sizeof r->offset);
    r->fetch_seq++;
    return 0;
}

static int scroll_pages(struct run *r, struct pw_error *err)
{
    struct qdrant_matrix *m = r->m;
    int rc = 0;
    r->more = 1;
    while (m->n < r->limit) {
        size_t wanted, end_row, busy = in_flight(r, &wanted, &end_row);
        if (!r->more || m->n + wanted >= r->limit || (busy && busy == r->s.n_slots)) {
            if (!busy)
                break; /* the scroll ran out of points */
            if ((rc = commit_oldest(r, err)) < 0)
                return rc;
            continue;
        }
        size_t left = r->limit - m->n - wanted;
        size_t want = left < r->batch ? left : r->batch;
        if (!m->dim || r->threads == 1) {
            if ((rc = fetch_direct(r, want, err)) < 0)
                return rc;
            continue;
        }
        if (end_row + want > m->cap || m->x_cap < m->cap * m->dim) {
            /* a low points_count estimate: grow, but only with no window open */
            if (busy) {
                if ((rc = commit_oldest(r, err)) < 0)
                    return rc;
                continue;
            }
            size_t rows = m->cap * 2 < r->limit ? m->cap * 2 : r->limit; /* as matrix_grow */
            if (rows < m->n + want)
                rows = m->n + want;
            if ((rc = qdrant_matrix_reserve(m, rows, 0, err)) < 0)
                return rc;
        }
        if (!r->pipeline && (rc = start_pipeline(r, err)) < 0)
            return rc;
        if ((rc = fetch_pipelined(r, end_row, want, err)) < 0) {
            struct pw_error first = {0}; /* an earlier page's failure is reported first */
            while (slot_of_seq(r, r->merge_seq))
                if (commit_oldest(r, &first) < 0) {
                    if (err)
                        *err = first;
                    return first.code;
                }
            return rc;
        }
        if ((rc = commit_ready(r, err)) < 0)
            return rc;
    }
    r->st.reached_end = !r->more;
    return 0;
}

int qdrant_scroll_matrix(struct qdrant_client *c, const struct qdrant_scroll_opts *o,
                         struct qdrant_matrix *m, struct qdrant_scroll_stats *stats,
                         struct pw_error *err)
{
    struct qdrant_collection_info info;
    struct run r = {.c = c, .o = o, .m = m};
    char esc[140], *url = NULL;
    size_t dim = 0;
    int rc;

    r.st.points_count = -1;
    if (!o || !o->collection || !*o->collection) {
        rc = pw_error_set(err, PW_EINVAL, "no collection name");
        goto cleanup;
    }
    if (o->vector_name && strlen(o->vector_name) >= QDRANT_NAME_MAX) {
        rc = pw_error_set(err, PW_EINVAL, "vector name longer than %d bytes", QDRANT_NAME_MAX - 1);
        goto cleanup;
    }
    r.limit = o->sample_limit ? o->sample_limit : QDRANT_SAMPLE_LIMIT;
    r.batch = o->batch && o->batch < QDRANT_SCROLL_BATCH ? o->batch : QDRANT_SCROLL_BATCH;
    r.threads = threads_wanted(o); /* sysconf reads /sys: once per scroll, not per page */

    rc = qdrant_http_collection_info(c, o->collection, &info, &r.st.requests, &r.st.retries, err);
    if (rc < 0)
        goto cleanup;
    r.st.points_count = info.points_count;
    rc = choose_dim(&info, o->vector_name, o->collection, &dim, err);
    if (rc < 0)
        goto cleanup;
    size_t n_max = r.limit;
    if (info.points_count >= 0 && (uint64_t)info.points_count < n_max)
        n_max = (size_t)info.points_count; /* approximate: the matrix grows if it is low */
    rc = qdrant_matrix_reserve(m, n_max ? n_max : 1, dim, err);
    if (rc < 0)
        goto cleanup;

    if (o->vector_name) {
        json_escape(o->vector_name, esc, sizeof esc);
        snprintf(r.with_vector, sizeof r.with_vector, "[\"%s\"]", esc);
    } else {
        snprintf(r.with_vector, sizeof r.with_vector, "true");
    }
    snprintf(r.what, sizeof r.what, "scroll of `%.100s`", o->collection);
    url = qdrant_http_collection_url(c, o->collection, "/points/scroll");
    if (!url) {
        rc = pw_error_set(err, PW_ENOMEM, "out of memory");
        goto cleanup;
    }
    r.url = url;
    rc = scroll_pages(&r, err);
cleanup:
    stop_pipeline(&r);
    if (stats)
        *stats = r.st;
    free(url);
    return rc;
}
