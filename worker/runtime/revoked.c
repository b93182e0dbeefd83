/* revoked.c - Celery's LimitedSet of revoked ids and the state file (see header).
 *
 * Entries live in insertion order in a ring (for eviction and expiry, oldest first)
 * and in a POSIX search tree (tsearch) for lookups, so a delivery's check and a peer's
 * 50000 ids at mingle both stay cheap.  Revoking an id again refreshes its time in
 * place; expiry then reaches it in ring order, and lookups check the time themselves. */
#include "revoked.h"

#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

struct revoked_entry {
    double when;
    char id[];
};

struct revoked {
    struct revoked_entry **ring; /* ring[(head + i) % cap], i < n: oldest first */
    int cap, head, n;
    void *tree; /* tsearch root over the same entries, ordered by id */
    char *statedb;
};

static int by_id(const void *a, const void *b)
{
    return strcmp(((const struct revoked_entry *)a)->id, ((const struct revoked_entry *)b)->id);
}

int revoked_create(struct revoked **out, const char *statedb, struct pw_error *err)
{
    struct revoked *r = calloc(1, sizeof *r);

    *out = NULL;
    if (!r || (statedb && !(r->statedb = strdup(statedb)))) {
        free(r);
        return pw_error_set(err, PW_ENOMEM, "out of memory");
    }
    *out = r;
    return 0;
}

static struct revoked_entry **at(struct revoked *r, int i)
{
    return &r->ring[(r->head + i) % r->cap];
}

static void drop_oldest(struct revoked *r)
{
    struct revoked_entry *e = *at(r, 0);

    tdelete(e, &r->tree, by_id);
    free(e);
    r->head = (r->head + 1) % r->cap;
    r->n--;
}

void revoked_free(struct revoked *r)
{
    if (!r)
        return;
    while (r->n)
        drop_oldest(r);
    free(r->ring);
    free(r->statedb);
    free(r);
}

static double cutoff(void)
{
    return pw_wall_now() - REVOKED_EXPIRES_S;
}

/* Forgets the oldest entries while they are expired. */
static void purge(struct revoked *r)
{
    double oldest = cutoff();

    while (r->n && (*at(r, 0))->when < oldest)
        drop_oldest(r);
}

static struct revoked_entry *find(struct revoked *r, const char *id)
{
    size_t len = strlen(id);
    struct revoked_entry *key = malloc(sizeof *key + len + 1), **hit;

    if (!key)
        return NULL;
    memcpy(key->id, id, len + 1);
    hit = tfind(key, &r->tree, by_id);
    free(key);
    return hit ? *hit : NULL;
}

static int grow(struct revoked *r)
{
    int cap = r->cap ? r->cap * 2 : 64;
    struct revoked_entry **ring;

    if (cap > REVOKED_MAXLEN)
        cap = REVOKED_MAXLEN;
    ring = malloc((size_t)cap * sizeof *ring);
    if (!ring)
        return PW_ENOMEM;
    for (int i = 0; i < r->n; i++)
        ring[i] = *at(r, i);
    free(r->ring);
    r->ring = ring;
    r->cap = cap;
    r->head = 0;
    return 0;
}

int revoked_add(struct revoked *r, const char *id, double when)
{
    struct revoked_entry *e = find(r, id);
    size_t len = strlen(id);

    if (when <= 0)
        when = pw_wall_now();
    if (e) {
        if (when > e->when)
            e->when = when;
        return 0;
    }
    purge(r);
    if (r->n == REVOKED_MAXLEN)
        drop_oldest(r);
    if ((r->n == r->cap && grow(r)) || !(e = malloc(sizeof *e + len + 1)))
        return PW_ENOMEM;
    e->when = when;
    memcpy(e->id, id, len + 1);
    if (!tsearch(e, &r->tree, by_id)) {
        free(e);
        return PW_ENOMEM;
    }
    *at(r, r->n) = e;
    r->n++;
    return 0;
}

int revoked_contains(struct revoked *r, const char *id)
{
    struct revoked_entry *e = id ? find(r, id) : NULL;

    return e && e->when >= cutoff();
}

void revoked_merge(struct revoked *r, json_t *ids)
{
    const char *id;
    json_t *when;

    json_object_foreach(ids, id, when)
    {
        if (json_is_array(when)) /* LimitedSet also accepts (time, ...) pairs */
            when = json_array_get(when, 0);
        revoked_add(r, id, json_is_number(when) ? json_number_value(when) : 0);
    }
}

json_t *revoked_list(struct revoked *r)
{
    json_t *a = json_array();
    double oldest = cutoff();

    purge(r);
    for (int i = 0; a && i < r->n; i++)
        if ((*at(r, i))->when >= oldest)
            json_array_append_new(a, json_string((*at(r, i))->id));
    return a;
}

json_t *revoked_map(struct revoked *r)
{
    json_t *o = json_object();
    double oldest = cutoff();

    purge(r);
    for (int i = 0; o && i < r->n; i++)
        if ((*at(r, i))->when >= oldest)
            json_object_set_new(o, (*at(r, i))->id, json_real((*at(r, i))->when));
    return o;
}

int revoked_load(struct revoked *r, unsigned long *clock, struct pw_error *err)
{
    json_error_t jerr;
    json_t *o, *ids;

    if (!r->statedb)
        return 0;
    o = json_load_file(r->statedb, 0, &jerr);
    if (!o) {
        FILE *f = fopen(r->statedb, "r");
        if (!f && errno == ENOENT)
            return 0; /* first start */
        if (f)
            fclose(f);
        return pw_error_set(err, PW_EINVAL, "state file %s is not readable JSON: %s", r->statedb,
                            jerr.text);
    }
    ids = json_object_get(o, "revoked");
    if (!json_is_object(o) || !json_is_object(ids)) {
        json_decref(o);
        return pw_error_set(err, PW_EINVAL, "state file %s has no \"revoked\" object", r->statedb);
    }
    revoked_merge(r, ids);
    if (json_is_integer(json_object_get(o, "clock")))
        *clock = (unsigned long)json_integer_value(json_object_get(o, "clock"));
    json_decref(o);
    return 0;
}

int revoked_save(struct revoked *r, unsigned long clock, struct pw_error *err)
{
    char tmp[4096];
    json_t *o;
    int rc;

    if (!r->statedb)
        return 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", r->statedb);
    o = json_pack("{s:o, s:I}", "revoked", revoked_map(r), "clock", (json_int_t)clock);
    rc = o ? json_dump_file(o, tmp, JSON_COMPACT) : -1;
    json_decref(o);
    if (rc || rename(tmp, r->statedb))
        return pw_error_set(err, PW_EIO, "cannot write state file %s: %s", r->statedb,
                            strerror(errno));
    return 0;
}
