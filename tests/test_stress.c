/*
 * Concurrency stress through the public API only: several writer threads
 * on disjoint clients that share channels and users, readers that check
 * every query result against the rules that hold at any instant, an
 * expirer and closer that also saves and loads the registry, a thread
 * that subscribes and unsubscribes without pause, and one subscriber
 * whose event log is replayed at the end and compared with the final
 * registry.
 *
 * It is built to find, under ThreadSanitizer, the unlocked reads of shared
 * state that a single-threaded test cannot see, and in any build that
 * dead subscriptions pile up while events keep flowing.
 *
 * Worker threads never call cmocka (it is not thread-safe): they record
 * the first problem, and the main thread asserts.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WRITERS 4
#define READERS 2
#define CLIENTS 24          /* per writer */
#define HANDLE_CLIENTS 6    /* the first ones of each writer: by handle */
#define USERS 8             /* shared by every writer */
#define SHARED_CHANNELS 16  /* "s0".."s15", default namespace */
#define TTL_CHANNELS 4      /* "ttl:t0".., TTL 30 ms */
#define WIDE_CHANNELS 96    /* "p0".., one client joins all, then goes */
#define GROWTH_MAX 800      /* per writer: channels that stay ("g<t>-<n>") */
#define WRITER_OPS 12000    /* per writer */
#define SUB_PAIRS 2000      /* subscribe + unsubscribe, at least: the
                               churn goes on while the writers do */
/* Removed subscriptions that may stay allocated at any instant: the one
 * that delivery stands on, with room to spare. Keeping them until
 * delivery pauses lets thousands pile up under load. */
#define SUB_KEPT_MAX 4

/* ---- the shared state of one run ----------------------------------------- */

typedef struct logged {
    char channel[16];
    char client[16];
    char user[8];
    char info;     /* first byte of chan_info, 0 for none */
    unsigned char kind;
    unsigned char reason;
    uint64_t seq;
    size_t num_clients;
    size_t num_users;
    size_t order;  /* delivery order, to sort stably */
} logged;

typedef struct run {
    presence_registry *reg;
    test_alloc alloc;
    fake_clock clock;

    pthread_mutex_t log_lock;
    logged *log;
    size_t log_len;
    size_t log_cap;
    atomic_int in_callback;
    atomic_ulong concurrent_callbacks;
    unsigned fan_out_sink;

    atomic_int go;
    atomic_int writers_left;
    atomic_int churn_done;
    atomic_ulong churn_pairs;
    atomic_ulong churn_calls;
    atomic_long churn_kept_max; /* removed subscriptions still allocated */
    char watched_channel[208];

    /* Users online as their online/offline events say: u0..u7, then "g". */
    int online[USERS + 1];
    unsigned long user_events;

    atomic_ulong errors;
    atomic_ulong saves; /* saved and loaded while the writers ran */
    atomic_int have_error;
    char first_error[256];
} run;

static void problem(run *r, const char *fmt, ...) TEST_PRINTF(2, 3);

static void problem(run *r, const char *fmt, ...)
{
    if (atomic_exchange(&r->have_error, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->first_error, sizeof(r->first_error), fmt, ap);
        va_end(ap);
    }
    atomic_fetch_add(&r->errors, 1);
}

static void expect(run *r, int got, int want, const char *what,
                   const char *name)
{
    if (got != want) {
        problem(r, "%s(%s) returned %s, expected %s", what, name,
             presence_error_name(got), presence_error_name(want));
    }
}

static uint64_t next_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

static void wait_for_start(run *r)
{
    while (atomic_load(&r->go) == 0) {
        sched_yield();
    }
}

/* ---- the subscriber whose log is replayed ------------------------------ */

static void copy_name(char *dst, size_t size, const char *src, run *r)
{
    if (strlen(src) >= size) {
        problem(r, "name too long for the log: %s", src);
    }
    snprintf(dst, size, "%s", src);
}

static void log_event(presence_registry *reg, const presence_event *e,
                      void *user_data)
{
    run *r = user_data;
    (void)reg;
    if (atomic_exchange(&r->in_callback, 1) != 0) {
        atomic_fetch_add(&r->concurrent_callbacks, 1);
    }
    pthread_mutex_lock(&r->log_lock);
    if (r->log_len == r->log_cap) {
        size_t cap = r->log_cap != 0 ? r->log_cap * 2 : 4096;
        logged *log = realloc(r->log, cap * sizeof *log);
        if (log == NULL) {
            abort();
        }
        r->log = log;
        r->log_cap = cap;
    }
    logged *l = &r->log[r->log_len];
    memset(l, 0, sizeof *l);
    copy_name(l->channel, sizeof l->channel, e->channel, r);
    copy_name(l->client, sizeof l->client, e->client_id, r);
    copy_name(l->user, sizeof l->user, e->user_id, r);
    l->info = e->chan_info_len > 0 ? *(const char *)e->chan_info : 0;
    l->kind = (unsigned char)e->kind;
    l->reason = (unsigned char)e->reason;
    l->seq = e->seq;
    l->num_clients = e->stats.num_clients;
    l->num_users = e->stats.num_users;
    l->order = r->log_len++;
    pthread_mutex_unlock(&r->log_lock);
    atomic_store(&r->in_callback, 0);
}

/* A subscriber that does a server's fan-out work per event, so that
 * delivery is not free and the queue rarely runs dry under load. */
static void fan_out_event(presence_registry *reg, const presence_event *e,
                          void *user_data)
{
    (void)reg;
    volatile unsigned *sink = user_data;
    unsigned h = 2166136261u;
    for (int copy = 0; copy < 32; copy++) {
        for (const char *p = e->client_id; *p != '\0'; p++) {
            h = (h ^ (unsigned char)*p) * 16777619u;
        }
    }
    *sink = h;
}

/* ---- writers: each owns its clients and knows their exact state --------- */

typedef struct own_client {
    char id[16];
    int user;            /* index into the shared users */
    uint32_t channels;   /* bit j: in "s<j>" */
    char info[SHARED_CHANNELS];
    bool maybe_ttl;      /* joined a TTL channel since its last disconnect */
    presence_client *h;  /* open handle, for the first HANDLE_CLIENTS */
} own_client;

typedef struct writer {
    run *r;
    int t;
    pthread_t thread;
    uint64_t rng;
    own_client clients[CLIENTS];
    int grown;
    unsigned long ops;
} writer;

static void shared_name(char *buf, size_t size, int j)
{
    snprintf(buf, size, "s%d", j);
}

static void user_name(char *buf, size_t size, int u)
{
    snprintf(buf, size, "u%d", u);
}

static int popcount32(uint32_t v)
{
    int n = 0;
    for (; v != 0; v &= v - 1) {
        n++;
    }
    return n;
}

/* What presence_client_channels() says of one of the writer's clients
 * must be exactly what the writer did (TTL channels aside: they may have
 * expired or been closed). */
static void writer_verify(writer *w, const own_client *c)
{
    run *r = w->r;
    presence_snapshot *snap = NULL;
    int rc = presence_client_channels(r->reg, c->id, &snap);
    if (rc == PRESENCE_ERR_NOT_FOUND) {
        if (c->channels != 0) {
            problem(r, "%s: not found, in %d channels", c->id,
                 popcount32(c->channels));
        }
        return;
    }
    expect(r, rc, PRESENCE_OK, "client_channels", c->id);
    if (rc != PRESENCE_OK) {
        return;
    }
    char user[8];
    user_name(user, sizeof user, c->user);
    uint32_t seen = 0;
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        if (strcmp(m->client_id, c->id) != 0 ||
            strcmp(m->user_id, user) != 0) {
            problem(r, "%s: entry of %s/%s", c->id, m->client_id, m->user_id);
            continue;
        }
        int j;
        if (sscanf(m->channel, "s%d", &j) == 1 && j >= 0 &&
            j < SHARED_CHANNELS) {
            char want = c->info[j];
            char got = m->chan_info_len > 0 ? *(const char *)m->chan_info
                                            : 0;
            if ((seen & (1u << j)) != 0 || got != want) {
                problem(r, "%s in %s: twice or info %d, expected %d", c->id,
                     m->channel, got, want);
            }
            seen |= 1u << j;
        } else if (strncmp(m->channel, "ttl:", 4) != 0 || !c->maybe_ttl) {
            problem(r, "%s: unexpected channel %s", c->id, m->channel);
        }
    }
    if (seen != c->channels) {
        problem(r, "%s: channels %#x, expected %#x", c->id, seen, c->channels);
    }
    presence_snapshot_free(snap);
}

static void handle_open(writer *w, own_client *c)
{
    char user[8];
    user_name(user, sizeof user, c->user);
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = c->id;
    o.user_id = user;
    o.app = c;
    expect(w->r, presence_client_open(w->r->reg, &o, &c->h), PRESENCE_OK,
           "client_open", c->id);
}

static void writer_join(writer *w, own_client *c, int j)
{
    static const char infos[] = {0, 'a', 'b'};
    char channel[16], user[8];
    shared_name(channel, sizeof channel, j);
    user_name(user, sizeof user, c->user);
    char info = infos[next_random(&w->rng) % 3];
    const void *bytes = info != 0 ? &info : NULL;
    size_t len = info != 0 ? 1 : 0;
    if (c->h != NULL) {
        presence_change ch;
        int rc = presence_client_join(w->r->reg, c->h, channel, bytes, len,
                                      &ch);
        expect(w->r, rc, PRESENCE_OK, "client_join", channel);
        bool was_in = (c->channels & (1u << j)) != 0;
        presence_change_kind want =
            !was_in ? PRESENCE_CHANGE_JOINED
            : c->info[j] == info ? PRESENCE_CHANGE_NONE
                                 : PRESENCE_CHANGE_UPDATED;
        if (rc == PRESENCE_OK &&
            (ch.kind != want || ch.stats.num_clients == 0 ||
             ch.stats.epoch == 0)) {
            problem(w->r, "%s join %s: change %d, expected %d", c->id,
                    channel, (int)ch.kind, (int)want);
        }
    } else {
        expect(w->r,
               presence_join(w->r->reg, channel, c->id, user, NULL, 0, bytes,
                             len),
               PRESENCE_OK, "join", channel);
    }
    c->channels |= 1u << j;
    c->info[j] = info;
}

/* Three shared channels at once by handle, all or nothing (nothing here
 * can fail). */
static void writer_join_many(writer *w, own_client *c, int j)
{
    if (c->h == NULL) {
        writer_join(w, c, j);
        return;
    }
    char names[3][16];
    char infos[3];
    presence_join_item items[3];
    for (int i = 0; i < 3; i++) {
        int k = (j + i * 5) % SHARED_CHANNELS;
        shared_name(names[i], sizeof names[i], k);
        infos[i] = (char)('a' + (int)(next_random(&w->rng) % 2));
        items[i] = (presence_join_item){names[i], &infos[i], 1};
    }
    presence_change results[3];
    size_t failed = 99;
    expect(w->r,
           presence_client_join_many(w->r->reg, c->h, items, 3, results,
                                     &failed),
           PRESENCE_OK, "client_join_many", names[0]);
    for (int i = 0; i < 3; i++) {
        int k = (j + i * 5) % SHARED_CHANNELS;
        c->channels |= 1u << k;
        c->info[k] = infos[i];
    }
}

static void writer_leave(writer *w, own_client *c, int j)
{
    char channel[16];
    shared_name(channel, sizeof channel, j);
    bool in = (c->channels & (1u << j)) != 0;
    int rc = c->h != NULL
                 ? presence_client_leave(w->r->reg, c->h, channel, NULL)
                 : presence_leave(w->r->reg, channel, c->id);
    expect(w->r, rc, in ? PRESENCE_OK : PRESENCE_ERR_NOT_FOUND, "leave",
           channel);
    c->channels &= ~(1u << j);
    c->info[j] = 0;
}

static void writer_update(writer *w, own_client *c, int j)
{
    char channel[16];
    shared_name(channel, sizeof channel, j);
    bool in = (c->channels & (1u << j)) != 0;
    char info = (char)('c' + (int)(next_random(&w->rng) % 2));
    int rc = c->h != NULL ? presence_client_update(w->r->reg, c->h, channel,
                                                   &info, 1, NULL)
                          : presence_update(w->r->reg, channel, c->id,
                                            &info, 1);
    expect(w->r, rc, in ? PRESENCE_OK : PRESENCE_ERR_NOT_FOUND, "update",
           channel);
    if (in) {
        c->info[j] = info;
    }
}

static void writer_disconnect(writer *w, own_client *c)
{
    size_t left = 0;
    if (c->h != NULL && next_random(&w->rng) % 2 == 0) {
        expect(w->r, presence_client_close(w->r->reg, c->h, &left),
               PRESENCE_OK, "client_close", c->id);
        c->h = NULL;
    } else if (c->h != NULL) {
        expect(w->r, presence_client_close_many(w->r->reg, &c->h, 1, &left),
               PRESENCE_OK, "client_close_many", c->id);
        c->h = NULL;
    } else {
        expect(w->r, presence_disconnect(w->r->reg, c->id, &left),
               PRESENCE_OK, "disconnect", c->id);
    }
    size_t least = (size_t)popcount32(c->channels);
    size_t most = least + (c->maybe_ttl ? TTL_CHANNELS : 0);
    if (left < least || left > most) {
        problem(w->r, "%s: disconnect left %zu, expected %zu..%zu", c->id, left,
             least, most);
    }
    c->channels = 0;
    memset(c->info, 0, sizeof c->info);
    c->maybe_ttl = false;
    /* In no channel, the client is forgotten: it may come back as
     * another user, which makes a fresh client record of that user. */
    /* Half come back as user u0: a crowd in the shared channels, more
     * members than a user keeps side by side (memberset.h). */
    uint64_t pick = next_random(&w->rng);
    c->user = pick % 2 ? 0 : (int)(pick / 2 % USERS);
    if (c - w->clients < HANDLE_CLIENTS && atomic_load(&w->r->have_error) == 0) {
        handle_open(w, c); /* a new connection, perhaps another user */
    }
}

static void writer_join_ttl(writer *w, own_client *c)
{
    char channel[16], user[8];
    snprintf(channel, sizeof channel, "ttl:t%d",
             (int)(next_random(&w->rng) % TTL_CHANNELS));
    user_name(user, sizeof user, c->user);
    expect(w->r,
           c->h != NULL
               ? presence_client_join(w->r->reg, c->h, channel, NULL, 0, NULL)
               : presence_join(w->r->reg, channel, c->id, user, NULL, 0, NULL,
                               0),
           PRESENCE_OK, "join", channel);
    c->maybe_ttl = true;
}

/* One client in many channels, then gone: a disconnect that walks many
 * shards while other threads grow their channel tables. */
static void writer_wide(writer *w)
{
    char client[16], user[8], channel[16];
    snprintf(client, sizeof client, "w%dwide", w->t);
    user_name(user, sizeof user, w->t % USERS);
    for (int j = 0; j < WIDE_CHANNELS; j++) {
        snprintf(channel, sizeof channel, "p%d", j);
        expect(w->r,
               presence_join(w->r->reg, channel, client, user, NULL, 0, NULL,
                             0),
               PRESENCE_OK, "join", channel);
    }
    size_t left = 0;
    expect(w->r, presence_disconnect(w->r->reg, client, &left), PRESENCE_OK,
           "disconnect", client);
    if (left != WIDE_CHANNELS) {
        problem(w->r, "%s left %zu channels, expected %d", client, left,
             WIDE_CHANNELS);
    }
}

/* A channel that stays: the channel tables keep growing. */
static void writer_grow(writer *w)
{
    if (w->grown == GROWTH_MAX) {
        return;
    }
    char client[16], channel[16];
    snprintf(client, sizeof client, "w%dg%d", w->t, w->grown);
    snprintf(channel, sizeof channel, "g%d-%d", w->t, w->grown);
    expect(w->r,
           presence_join(w->r->reg, channel, client, "g", NULL, 0, NULL, 0),
           PRESENCE_OK, "join", channel);
    w->grown++;
}

static void writer_step(writer *w)
{
    own_client *c = &w->clients[next_random(&w->rng) % CLIENTS];
    int j = (int)(next_random(&w->rng) % SHARED_CHANNELS);
    unsigned op = (unsigned)(next_random(&w->rng) % 100);
    if (op < 40) {
        writer_join(w, c, j);
    } else if (op < 55) {
        writer_leave(w, c, j);
    } else if (op < 65) {
        writer_update(w, c, j);
    } else if (op < 70) {
        char channel[16];
        shared_name(channel, sizeof channel, j);
        expect(w->r,
               c->h != NULL ? presence_client_touch(w->r->reg, c->h, channel)
                            : presence_touch(w->r->reg, channel, c->id),
               (c->channels & (1u << j)) != 0 ? PRESENCE_OK
                                              : PRESENCE_ERR_NOT_FOUND,
               "touch", channel);
    } else if (op < 76) {
        writer_disconnect(w, c);
    } else if (op < 81) {
        writer_join_ttl(w, c);
    } else if (op < 82) {
        writer_wide(w);
    } else if (op < 88) {
        writer_grow(w);
    } else if (op < 92) {
        writer_join_many(w, c, j);
    } else {
        writer_verify(w, c);
    }
}

static void *writer_main(void *arg)
{
    writer *w = arg;
    wait_for_start(w->r);
    for (int i = 0; i < HANDLE_CLIENTS; i++) {
        handle_open(w, &w->clients[i]);
    }
    while (w->ops < WRITER_OPS) {
        writer_step(w);
        w->ops++;
        if (atomic_load(&w->r->have_error) != 0) {
            break;
        }
    }
    /* Closed, all in one call while the other writers go on: what the
     * log replays is what the registry holds. */
    presence_client *open[HANDLE_CLIENTS];
    size_t n = 0;
    for (int i = 0; i < HANDLE_CLIENTS; i++) {
        own_client *c = &w->clients[i];
        if (c->h != NULL) {
            open[n++] = c->h;
            c->h = NULL;
            c->channels = 0;
            memset(c->info, 0, sizeof c->info);
        }
    }
    expect(w->r, presence_client_close_many(w->r->reg, open, n, NULL),
           PRESENCE_OK, "client_close_many", w->clients[0].id);
    atomic_fetch_sub(&w->r->writers_left, 1);
    return NULL;
}

/* ---- readers: what holds at every instant ------------------------------- */

typedef struct reader {
    run *r;
    pthread_t thread;
    uint64_t rng;
    unsigned long reads;
} reader;

static bool distinct_ids(const presence_snapshot *snap, bool users,
                         size_t *distinct)
{
    size_t n = 0;
    for (size_t i = 0; i < snap->count; i++) {
        const char *a = users ? snap->members[i].user_id
                              : snap->members[i].client_id;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++) {
            const char *b = users ? snap->members[k].user_id
                                  : snap->members[k].client_id;
            seen = strcmp(a, b) == 0;
        }
        n += !seen;
    }
    *distinct = n;
    return n == snap->count;
}

static void check_members(run *r, const presence_snapshot *snap,
                          const char *channel, const char *user)
{
    size_t distinct;
    if (!distinct_ids(snap, false, &distinct)) {
        problem(r, "%s: a client listed twice", channel);
    }
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        if (strcmp(m->channel, channel) != 0 ||
            (user != NULL && strcmp(m->user_id, user) != 0)) {
            problem(r, "%s: member %s of %s in %s", channel, m->client_id,
                 m->user_id, m->channel);
        }
    }
}

static void read_query(reader *rd, const char *channel)
{
    run *r = rd->r;
    presence_snapshot *snap = NULL;
    int rc = presence_query(r->reg, channel, presence_trusted(), &snap);
    expect(r, rc, PRESENCE_OK, "query", channel);
    if (rc != PRESENCE_OK) {
        return;
    }
    check_members(r, snap, channel, NULL);
    size_t users;
    (void)distinct_ids(snap, true, &users);
    if (snap->stats.num_clients != snap->count ||
        snap->stats.num_users != users || (snap->count > 0) != (snap->seq > 0)) {
        problem(r, "%s: %zu members of %zu users, stats %zu/%zu, seq %llu",
             channel, snap->count, users, snap->stats.num_clients,
             snap->stats.num_users, (unsigned long long)snap->seq);
    }
    presence_snapshot_free(snap);
}

static void read_user(reader *rd, const char *channel)
{
    run *r = rd->r;
    char user[8];
    user_name(user, sizeof user, (int)(next_random(&rd->rng) % USERS));
    presence_snapshot *snap = NULL;
    int rc = presence_user_connections(r->reg, channel, user, &snap);
    expect(r, rc, PRESENCE_OK, "user_connections", channel);
    if (rc == PRESENCE_OK) {
        check_members(r, snap, channel, user);
        if (snap->count > snap->stats.num_clients) {
            problem(r, "%s: %zu connections of %s, %zu members", channel,
                 snap->count, user, snap->stats.num_clients);
        }
        presence_snapshot_free(snap);
    }
    size_t n = 0;
    expect(r, presence_user_present(r->reg, channel, user, &n), PRESENCE_OK,
           "user_present", channel);
    if (n > (size_t)MAX_WRITERS * CLIENTS) {
        problem(r, "%s: %s present %zu times", channel, user, n);
    }
}

static void read_stats(reader *rd, const char *channel)
{
    run *r = rd->r;
    presence_channel_stats st;
    expect(r, presence_stats(r->reg, channel, presence_trusted(), &st), PRESENCE_OK,
           "stats", channel);
    if (st.num_users > st.num_clients ||
        (st.num_users == 0) != (st.num_clients == 0)) {
        problem(r, "%s: stats %zu clients, %zu users", channel, st.num_clients,
             st.num_users);
    }
}

static void read_pages(reader *rd, const char *channel)
{
    run *r = rd->r;
    uint64_t cursor = 0;
    for (int pages = 0; pages < 64; pages++) {
        presence_snapshot *snap = NULL;
        int rc = presence_query_page(r->reg, channel, presence_trusted(), cursor, 4, &snap);
        expect(r, rc, PRESENCE_OK, "query_page", channel);
        if (rc != PRESENCE_OK) {
            return;
        }
        check_members(r, snap, channel, NULL);
        if (snap->count > 4) {
            problem(r, "%s: page of %zu", channel, snap->count);
        }
        cursor = snap->next_cursor;
        presence_snapshot_free(snap);
        if (cursor == 0) {
            return;
        }
    }
}

/* The zero-copy reader: members distinct, handles' pointers their own. */
typedef struct visit_seen {
    run *r;
    const char *channel;
    char ids[MAX_WRITERS * CLIENTS + 8][16];
    size_t n;
} visit_seen;

static void visit_one(const presence_member *m, void *ud)
{
    visit_seen *vs = ud;
    if (m->app != NULL &&
        strcmp(((const own_client *)m->app)->id, m->client_id) != 0) {
        problem(vs->r, "%s: %s carries another client's pointer",
                vs->channel, m->client_id);
    }
    for (size_t i = 0; i < vs->n; i++) {
        if (strcmp(vs->ids[i], m->client_id) == 0) {
            problem(vs->r, "%s: %s visited twice", vs->channel, m->client_id);
        }
    }
    if (vs->n < sizeof vs->ids / sizeof vs->ids[0]) {
        copy_name(vs->ids[vs->n++], sizeof vs->ids[0], m->client_id, vs->r);
    }
}

static void read_visit(reader *rd, const char *channel)
{
    visit_seen *vs = calloc(1, sizeof *vs);
    if (vs == NULL) {
        return;
    }
    vs->r = rd->r;
    vs->channel = channel;
    presence_visit_info info;
    expect(rd->r,
           presence_visit(rd->r->reg, channel, presence_trusted(), 0, 0,
                          visit_one, vs, &info),
           PRESENCE_OK, "visit", channel);
    free(vs);
}

static void read_registry(reader *rd)
{
    run *r = rd->r;
    /* Totals add up shards read at different instants: no rule binds
     * them while writers run, but the call must hold up. */
    presence_counts counts;
    expect(r, presence_registry_counts(r->reg, &counts), PRESENCE_OK,
           "registry_counts", "");
    presence_channel_list *list = NULL;
    int rc = presence_channels(r->reg, "ttl", &list);
    expect(r, rc, PRESENCE_OK, "channels", "ttl");
    if (rc == PRESENCE_OK) {
        for (size_t i = 0; i < list->count; i++) {
            const presence_channel_entry *e = &list->channels[i];
            if (strncmp(e->channel, "ttl:", 4) != 0 ||
                e->stats.num_clients == 0 ||
                e->stats.num_users > e->stats.num_clients) {
                problem(r, "channels: %s with %zu/%zu", e->channel,
                     e->stats.num_clients, e->stats.num_users);
            }
        }
        presence_channel_list_free(list);
    }
}

static void *reader_main(void *arg)
{
    reader *rd = arg;
    wait_for_start(rd->r);
    char channel[16];
    while (atomic_load(&rd->r->writers_left) > 0 &&
           atomic_load(&rd->r->have_error) == 0) {
        unsigned op = (unsigned)(next_random(&rd->rng) % 100);
        int j = (int)(next_random(&rd->rng) % SHARED_CHANNELS);
        if (op < 5) {
            snprintf(channel, sizeof channel, "p%d", j);
        } else if (op < 10) {
            snprintf(channel, sizeof channel, "ttl:t%d", j % TTL_CHANNELS);
        } else {
            shared_name(channel, sizeof channel, j);
        }
        op = (unsigned)(next_random(&rd->rng) % 100);
        if (op < 30) {
            read_query(rd, channel);
        } else if (op < 65) {
            read_user(rd, channel);
        } else if (op < 85) {
            read_stats(rd, channel);
        } else if (op < 92) {
            read_pages(rd, channel);
        } else if (op < 99) {
            read_visit(rd, channel);
        } else {
            read_registry(rd);
        }
        rd->reads++;
    }
    return NULL;
}

/* ---- expiry and closes --------------------------------------------------- */

static void *expirer_main(void *arg)
{
    run *r = arg;
    wait_for_start(r);
    char channel[16];
    for (unsigned long i = 0; atomic_load(&r->writers_left) > 0; i++) {
        fake_clock_advance(&r->clock, 5);
        size_t expired = 0;
        expect(r,
               presence_expire(r->reg, fake_clock_get(&r->clock), &expired, NULL),
               PRESENCE_OK, "expire", "");
        if (i % 64 == 0) {
            snprintf(channel, sizeof channel, "ttl:t%lu",
                     (i / 64) % TTL_CHANNELS);
            expect(r, presence_channel_close(r->reg, channel, NULL),
                   PRESENCE_OK, "channel_close", channel);
        }
        if (i % 4 == 0) {
            /* A save is one instant: its load refuses anything half done. */
            expect(r, save_and_load(r->reg), PRESENCE_OK, "save and load",
                   "");
            atomic_fetch_add(&r->saves, 1);
        }
        sched_yield();
    }
    return NULL;
}

/* ---- subscription churn -------------------------------------------------- */

static void count_event(presence_registry *reg, const presence_event *e,
                        void *user_data)
{
    (void)reg;
    (void)e;
    atomic_fetch_add((atomic_ulong *)user_data, 1);
}

static void *churn_main(void *arg)
{
    run *r = arg;
    wait_for_start(r);
    for (unsigned long i = 0;
         i < SUB_PAIRS || atomic_load(&r->writers_left) > 0; i++) {
        presence_subscription sub = 0;
        int rc;
        switch (i % 3) {
        case 0:
            rc = presence_subscribe(r->reg, PRESENCE_SCOPE_ALL, NULL,
                                    PRESENCE_EVENTS_ALL, count_event,
                                    &r->churn_calls, &sub);
            break;
        case 1:
            rc = presence_subscribe(r->reg, PRESENCE_SCOPE_NAMESPACE, "",
                                    PRESENCE_EVENT_JOIN, count_event,
                                    &r->churn_calls, &sub);
            break;
        default:
            rc = presence_subscribe(r->reg, PRESENCE_SCOPE_CHANNEL,
                                    r->watched_channel, PRESENCE_EVENTS_ALL,
                                    count_event, &r->churn_calls, &sub);
            break;
        }
        expect(r, rc, PRESENCE_OK, "subscribe", "");
        expect(r, presence_unsubscribe(r->reg, sub), PRESENCE_OK,
               "unsubscribe", "");
        atomic_fetch_add(&r->churn_pairs, 1);
        /* Every watched subscription has been removed: none may stay
         * allocated but the one delivery may be standing on. */
        long kept = atomic_load(&r->alloc.watch_live);
        if (kept > atomic_load(&r->churn_kept_max)) {
            atomic_store(&r->churn_kept_max, kept);
        }
        if (kept > SUB_KEPT_MAX) {
            problem(r, "after %lu subscribe/unsubscribe pairs, %ld removed "
                       "subscriptions are still allocated",
                    i + 1, kept);
            break;
        }
        if (atomic_load(&r->have_error) != 0) {
            break;
        }
    }
    atomic_store(&r->churn_done, 1);
    return NULL;
}

/* The size of a subscription to r->watched_channel, learnt from the
 * allocator while nothing else runs, so that such records can be told
 * apart from every other allocation: the name's length makes it odd,
 * which no table of 4-, 8- or 16-byte slots is. */
static void watch_churn_subscriptions(run *r)
{
    for (size_t len = 200; len < 202; len++) {
        memset(r->watched_channel, 'w', len);
        r->watched_channel[len] = '\0';
        long long before = atomic_load(&r->alloc.live_bytes);
        presence_subscription sub;
        assert_ok(presence_subscribe(r->reg, PRESENCE_SCOPE_CHANNEL,
                                     r->watched_channel, PRESENCE_EVENTS_ALL,
                                     count_event, &r->churn_calls, &sub));
        long long size = atomic_load(&r->alloc.live_bytes) - before;
        assert_ok(presence_unsubscribe(r->reg, sub));
        assert_int_equal(atomic_load(&r->alloc.live_bytes), before);
        if (size % 2 == 1) {
            atomic_store(&r->alloc.watch_size, (size_t)size);
            return;
        }
    }
    fail_msg("no odd subscription size");
}

/* ---- replay: the event log against the final registry ------------------ */

static int by_channel_then_order(const void *a, const void *b)
{
    const logged *x = a;
    const logged *y = b;
    int c = strcmp(x->channel, y->channel);
    if (c != 0) {
        return c;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}

typedef struct replay_member {
    char client[16];
    char user[8];
    char info;
} replay_member;

typedef struct replay {
    replay_member *members;
    size_t count;
    size_t cap;
} replay;

static replay_member *replay_find(replay *rp, const char *client)
{
    for (size_t i = 0; i < rp->count; i++) {
        if (strcmp(rp->members[i].client, client) == 0) {
            return &rp->members[i];
        }
    }
    return NULL;
}

static size_t replay_user_count(const replay *rp, const char *user)
{
    size_t n = 0;
    for (size_t i = 0; i < rp->count; i++) {
        n += strcmp(rp->members[i].user, user) == 0;
    }
    return n;
}

static size_t replay_users(const replay *rp)
{
    size_t n = 0;
    for (size_t i = 0; i < rp->count; i++) {
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++) {
            seen = strcmp(rp->members[i].user, rp->members[k].user) == 0;
        }
        n += !seen;
    }
    return n;
}

/* Apply one client event; returns false when it cannot follow the ones
 * before it. */
static bool replay_apply(replay *rp, const logged *e, uint64_t *last_seq)
{
    uint64_t want = rp->count == 0 ? 1 : *last_seq + 1;
    if (e->seq != want) {
        print_error("%s: %s of %s has seq %llu, expected %llu\n", e->channel,
                    presence_event_kind_name(e->kind), e->client,
                    (unsigned long long)e->seq, (unsigned long long)want);
        return false;
    }
    *last_seq = e->seq;
    replay_member *m = replay_find(rp, e->client);
    switch (e->kind) {
    case PRESENCE_EVENT_JOIN:
        if (m != NULL) {
            print_error("%s: %s joined twice\n", e->channel, e->client);
            return false;
        }
        if (rp->count == rp->cap) {
            rp->cap = rp->cap != 0 ? rp->cap * 2 : 16;
            rp->members = realloc(rp->members, rp->cap * sizeof *rp->members);
            assert_non_null(rp->members);
        }
        m = &rp->members[rp->count++];
        snprintf(m->client, sizeof m->client, "%s", e->client);
        snprintf(m->user, sizeof m->user, "%s", e->user);
        m->info = e->info;
        return true;
    case PRESENCE_EVENT_UPDATE:
        if (m == NULL) {
            print_error("%s: update of absent %s\n", e->channel, e->client);
            return false;
        }
        m->info = e->info;
        return true;
    default: /* leave */
        if (m == NULL) {
            print_error("%s: leave of absent %s\n", e->channel, e->client);
            return false;
        }
        *m = rp->members[--rp->count];
        return true;
    }
}

/* One channel's events, in delivery order: each change follows the one
 * before it, each user event sits right after the client event that made
 * it, and the stats carried are the replay's. Then the replay must be
 * what the registry holds now. */
static void replay_channel(run *r, const logged *ev, size_t n)
{
    replay rp = {0};
    uint64_t seq = 0;
    for (size_t i = 0; i < n; i++) {
        const logged *e = &ev[i];
        bool user_event = e->kind == PRESENCE_EVENT_USER_JOIN ||
                          e->kind == PRESENCE_EVENT_USER_LEAVE;
        if (user_event) {
            /* Placed after the client event that caused it. */
            unsigned cause = e->kind == PRESENCE_EVENT_USER_JOIN
                                 ? PRESENCE_EVENT_JOIN
                                 : PRESENCE_EVENT_LEAVE;
            assert_true(i > 0);
            assert_int_equal(ev[i - 1].kind, cause);
            assert_int_equal(ev[i - 1].seq, e->seq);
            assert_string_equal(ev[i - 1].client, e->client);
            continue;
        }
        if (!replay_apply(&rp, e, &seq)) {
            fail_msg("the event log of %s does not replay", e->channel);
        }
        assert_int_equal(e->num_clients, rp.count);
        assert_int_equal(e->num_users, replay_users(&rp));
        /* A user event follows exactly when the user's count moved
         * between 0 and 1. */
        size_t of_user = replay_user_count(&rp, e->user);
        bool user_change = (e->kind == PRESENCE_EVENT_JOIN && of_user == 1) ||
                           (e->kind == PRESENCE_EVENT_LEAVE && of_user == 0);
        bool next_is_user =
            i + 1 < n && (ev[i + 1].kind == PRESENCE_EVENT_USER_JOIN ||
                          ev[i + 1].kind == PRESENCE_EVENT_USER_LEAVE);
        if (user_change != next_is_user) {
            fail_msg("%s: %s of %s (user %s) %s a user event", e->channel,
                     presence_event_kind_name(e->kind), e->client, e->user,
                     next_is_user ? "has" : "lacks");
        }
    }

    presence_snapshot *snap = NULL;
    assert_ok(presence_query(r->reg, ev[0].channel, presence_trusted(), &snap));
    if (snap->count != rp.count) {
        fail_msg("%s: %zu members, the log replays to %zu", ev[0].channel,
                 snap->count, rp.count);
    }
    assert_int_equal(snap->seq, rp.count > 0 ? seq : 0);
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        const replay_member *want = replay_find(&rp, m->client_id);
        assert_non_null(want);
        assert_string_equal(m->user_id, want->user);
        char info = m->chan_info_len > 0 ? *(const char *)m->chan_info : 0;
        assert_int_equal(info, want->info);
    }
    presence_snapshot_free(snap);
    free(rp.members);
}

static void replay_log(run *r)
{
    qsort(r->log, r->log_len, sizeof *r->log, by_channel_then_order);
    size_t channels_in_log = 0, nonempty = 0;
    for (size_t i = 0; i < r->log_len;) {
        size_t k = i;
        while (k < r->log_len &&
               strcmp(r->log[k].channel, r->log[i].channel) == 0) {
            k++;
        }
        replay_channel(r, &r->log[i], k - i);
        presence_channel_stats st = stats_of(r->reg, r->log[i].channel);
        nonempty += st.num_clients > 0;
        channels_in_log++;
        i = k;
    }
    /* No channel holds members that the log never announced. */
    presence_counts counts = counts_of(r->reg);
    assert_int_equal(counts.channels, nonempty);
    assert_true(channels_in_log >= SHARED_CHANNELS);
}

/* ---- the test ------------------------------------------------------------ */

/* Each user's online and offline events alternate, starting online. */
static void user_event(presence_registry *reg, const presence_event *e,
                       void *user_data)
{
    (void)reg;
    run *r = user_data;
    int u = USERS;
    if (strcmp(e->user_id, "g") != 0 && sscanf(e->user_id, "u%d", &u) != 1) {
        problem(r, "user event of %s", e->user_id);
        return;
    }
    bool online = e->kind == PRESENCE_EVENT_USER_ONLINE;
    if (u < 0 || u > USERS || r->online[u] != !online) {
        problem(r, "%s: %s while %s", e->user_id,
                presence_event_kind_name(e->kind),
                u >= 0 && u <= USERS && r->online[u] ? "online" : "offline");
        return;
    }
    r->online[u] = online;
    r->user_events++;
}

/* At the end: online by the events exactly when the registry says so. */
static void check_users_online(run *r)
{
    char user[8];
    for (int u = 0; u <= USERS; u++) {
        if (u < USERS) {
            user_name(user, sizeof user, u);
        } else {
            snprintf(user, sizeof user, "g");
        }
        size_t n = 0;
        assert_ok(presence_user_status(r->reg, user, &n));
        if ((n > 0) != (r->online[u] != 0)) {
            fail_msg("%s: %zu connections, but %s by its events", user, n,
                     r->online[u] ? "online" : "offline");
        }
    }
}

static void run_open(run *r)
{
    memset(r, 0, sizeof *r);
    test_alloc_init(&r->alloc, false); /* malloc: thread-safe counters */
    fake_clock_init(&r->clock, 1000);
    pthread_mutex_init(&r->log_lock, NULL);
    presence_config c;
    presence_config_init(&c);
    test_alloc_install(&r->alloc, &c, false);
    c.clock = fake_clock_read;
    c.clock_user_data = &r->clock;
    assert_ok(presence_registry_new(&c, &r->reg));
    ns_set(r->reg, "ttl", true, true, 30, 0);
    presence_subscription sub;
    assert_ok(presence_subscribe(r->reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL |
                                     PRESENCE_EVENTS_EVERY_NAMESPACE,
                                 log_event, r, &sub));
    assert_ok(presence_subscribe(r->reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, fan_out_event,
                                 &r->fan_out_sink, &sub));
    assert_ok(presence_subscribe(r->reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_USERS, user_event, r, &sub));
    watch_churn_subscriptions(r);
}

static void run_close(run *r)
{
    assert_ok(presence_registry_free(r->reg));
    test_alloc_assert_clean(&r->alloc);
    free(r->log);
    pthread_mutex_destroy(&r->log_lock);
}

static void stress(int nwriters, uint64_t seed)
{
    run *r = calloc(1, sizeof *r);
    writer *writers = calloc((size_t)nwriters, sizeof *writers);
    reader *readers = calloc(READERS, sizeof *readers);
    assert_non_null(r);
    assert_non_null(writers);
    assert_non_null(readers);
    run_open(r);
    atomic_store(&r->writers_left, nwriters);

    for (int t = 0; t < nwriters; t++) {
        writer *w = &writers[t];
        w->r = r;
        w->t = t;
        w->rng = seed + 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1);
        for (int i = 0; i < CLIENTS; i++) {
            snprintf(w->clients[i].id, sizeof w->clients[i].id, "w%dc%d", t,
                     i);
            w->clients[i].user = i % 2 ? 0 : (t + i) % USERS;
        }
        assert_int_equal(pthread_create(&w->thread, NULL, writer_main, w), 0);
    }
    for (int k = 0; k < READERS; k++) {
        readers[k].r = r;
        readers[k].rng = seed + 0xd1b54a32d192ed03ull * (uint64_t)(k + 1);
        assert_int_equal(
            pthread_create(&readers[k].thread, NULL, reader_main, &readers[k]),
            0);
    }
    pthread_t expirer, churn;
    assert_int_equal(pthread_create(&expirer, NULL, expirer_main, r), 0);
    assert_int_equal(pthread_create(&churn, NULL, churn_main, r), 0);
    atomic_store(&r->go, 1);

    assert_int_equal(pthread_join(churn, NULL), 0);
    for (int t = 0; t < nwriters; t++) {
        assert_int_equal(pthread_join(writers[t].thread, NULL), 0);
    }
    for (int k = 0; k < READERS; k++) {
        assert_int_equal(pthread_join(readers[k].thread, NULL), 0);
    }
    assert_int_equal(pthread_join(expirer, NULL), 0);

    unsigned long ops = 0, reads = 0;
    for (int t = 0; t < nwriters; t++) {
        ops += writers[t].ops;
    }
    for (int k = 0; k < READERS; k++) {
        reads += readers[k].reads;
    }
    print_message("stress, %d writers: %lu writes, %lu reads, %lu subscribe/unsubscribe "
                  "pairs (at most %ld removed ones kept), %zu events "
                  "logged, %lu saves loaded\n",
                  nwriters, ops, reads,
                  (unsigned long)atomic_load(&r->churn_pairs),
                  (long)atomic_load(&r->churn_kept_max), r->log_len,
                  (unsigned long)atomic_load(&r->saves));
    if (atomic_load(&r->errors) != 0) {
        fail_msg("%lu problems; first: %s",
                 (unsigned long)atomic_load(&r->errors), r->first_error);
    }
    assert_int_equal(atomic_load(&r->concurrent_callbacks), 0);
    assert_true(atomic_load(&r->churn_pairs) >= SUB_PAIRS);

    /* What each writer did to its own clients is what the registry holds. */
    for (int t = 0; t < nwriters; t++) {
        for (int i = 0; i < CLIENTS; i++) {
            writer_verify(&writers[t], &writers[t].clients[i]);
        }
    }
    assert_int_equal(atomic_load(&r->errors), 0);
    replay_log(r);
    check_users_online(r);
    assert_true(r->user_events > 0);

    run_close(r);
    free(readers);
    free(writers);
    free(r);
}

static void test_stress_two_writers(void **state)
{
    (void)state;
    stress(2, 1);
}

static void test_stress_three_writers(void **state)
{
    (void)state;
    stress(3, 2);
}

static void test_stress_four_writers(void **state)
{
    (void)state;
    stress(4, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_two_writers),
        cmocka_unit_test(test_stress_three_writers),
        cmocka_unit_test(test_stress_four_writers),
    };
    return cmocka_run_group_tests_name("stress", tests, NULL, NULL);
}
