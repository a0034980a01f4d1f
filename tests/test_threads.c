/*
 * Many threads on one registry: joins, leaves, updates, touches, queries,
 * stats and expiry on shared and private channels. Checks exact final
 * counts, exactly-once expiry, per-channel event order (sequence numbers
 * without gaps), that callbacks never run at once, and that a save taken
 * meanwhile (a thread saves and loads throughout) is one instant.
 *
 * Worker threads never call cmocka (it is not thread-safe): they count
 * problems, and the main thread asserts.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 4

/* ---- event checker ------------------------------------------------------ */

typedef struct item {
    unsigned kind;
    uint64_t seq;
    size_t num_clients;
    char client[32];
} item;

typedef struct stream {
    char channel[64];
    item *items;
    size_t count;
    size_t cap;
} stream;

#define MAX_STREAMS 256

typedef struct checker {
    pthread_mutex_t lock;
    atomic_int in_callback;
    atomic_ulong concurrent;   /* a callback started while one ran */
    atomic_ulong by_kind[5];
    atomic_ulong by_reason[7];
    /* nodes (test_nodes_race_local_churn): clients "na-*" and "nb-*" are
     * nodes na's and nb's, every other one local */
    atomic_ulong bad_node;       /* an event with the wrong node_id */
    atomic_ulong remote_expired; /* a remote member expired here */
    atomic_ulong node_down_leaves;
    stream streams[MAX_STREAMS];
    size_t nstreams;
    unsigned long overflow;
    /* re-entrant callback work (test_reentrant_threads) */
    bool echo;
    atomic_ulong echo_ok;
    atomic_ulong echo_gone;
    atomic_ulong echo_bad;
} checker;

static int kind_index(unsigned kind)
{
    for (int i = 0; i < 5; i++) {
        if (kind == (1u << i)) {
            return i;
        }
    }
    return -1;
}

static void checker_init(checker *c)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    atomic_init(&c->in_callback, 0);
    atomic_init(&c->concurrent, 0);
    for (int i = 0; i < 5; i++) {
        atomic_init(&c->by_kind[i], 0);
    }
    for (int i = 0; i < 7; i++) {
        atomic_init(&c->by_reason[i], 0);
    }
    atomic_init(&c->bad_node, 0);
    atomic_init(&c->remote_expired, 0);
    atomic_init(&c->node_down_leaves, 0);
    atomic_init(&c->echo_ok, 0);
    atomic_init(&c->echo_gone, 0);
    atomic_init(&c->echo_bad, 0);
}

static void checker_free(checker *c)
{
    for (size_t i = 0; i < c->nstreams; i++) {
        free(c->streams[i].items);
    }
    pthread_mutex_destroy(&c->lock);
}

static stream *stream_for(checker *c, const char *channel)
{
    for (size_t i = 0; i < c->nstreams; i++) {
        if (strcmp(c->streams[i].channel, channel) == 0) {
            return &c->streams[i];
        }
    }
    if (c->nstreams == MAX_STREAMS) {
        return NULL;
    }
    stream *s = &c->streams[c->nstreams++];
    snprintf(s->channel, sizeof(s->channel), "%s", channel);
    return s;
}

static void checker_cb(presence_registry *r, const presence_event *e,
                       void *ud)
{
    checker *c = ud;
    if (atomic_exchange(&c->in_callback, 1) != 0) {
        atomic_fetch_add(&c->concurrent, 1);
    }
    int k = kind_index((unsigned)e->kind);
    if (k >= 0) {
        atomic_fetch_add(&c->by_kind[k], 1);
    }
    int reason = (int)e->reason;
    if (reason >= 0 && reason < 7) {
        atomic_fetch_add(&c->by_reason[reason], 1);
    }
    const char *node = strncmp(e->client_id, "na-", 3) == 0   ? "na"
                       : strncmp(e->client_id, "nb-", 3) == 0 ? "nb"
                                                              : "";
    if (e->node_id == NULL || strcmp(e->node_id, node) != 0) {
        atomic_fetch_add(&c->bad_node, 1);
    }
    if (node[0] != '\0' && e->reason == PRESENCE_LEAVE_EXPIRED) {
        atomic_fetch_add(&c->remote_expired, 1);
    }
    if (e->kind == PRESENCE_EVENT_LEAVE &&
        e->reason == PRESENCE_LEAVE_NODE_DOWN) {
        atomic_fetch_add(&c->node_down_leaves, 1);
    }
    pthread_mutex_lock(&c->lock);
    stream *s = stream_for(c, e->channel);
    if (s == NULL) {
        c->overflow++;
    } else {
        if (s->count == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 64;
            item *items = realloc(s->items, cap * sizeof(*items));
            if (items == NULL) {
                abort();
            }
            s->items = items;
            s->cap = cap;
        }
        item *it = &s->items[s->count++];
        it->kind = (unsigned)e->kind;
        it->seq = e->seq;
        it->num_clients = e->stats.num_clients;
        snprintf(it->client, sizeof(it->client), "%s", e->client_id);
    }
    pthread_mutex_unlock(&c->lock);

    if (c->echo && e->kind == PRESENCE_EVENT_JOIN) {
        /* From inside a callback, on any thread: the member may have left
         * already (its owner thread moves on), which is fine. */
        int rc = presence_update(r, e->channel, e->client_id, "echo", 4);
        if (rc == PRESENCE_OK) {
            atomic_fetch_add(&c->echo_ok, 1);
        } else if (rc == PRESENCE_ERR_NOT_FOUND) {
            atomic_fetch_add(&c->echo_gone, 1);
        } else {
            atomic_fetch_add(&c->echo_bad, 1);
        }
    }
    atomic_store(&c->in_callback, 0);
}

/* Per channel, in delivery order: client events numbered 1, 2, 3...,
 * restarting at 1 on the join that follows an emptying; each user event
 * next to the client event of its change (same seq, same client). */
static void checker_verify(checker *c)
{
    assert_int_equal(c->overflow, 0);
    assert_int_equal(atomic_load(&c->concurrent), 0);
    for (size_t si = 0; si < c->nstreams; si++) {
        const stream *s = &c->streams[si];
        uint64_t last = 0;
        size_t members = 0;
        for (size_t i = 0; i < s->count; i++) {
            const item *it = &s->items[i];
            if (it->kind == PRESENCE_EVENT_USER_JOIN ||
                it->kind == PRESENCE_EVENT_USER_LEAVE) {
                unsigned want = it->kind == PRESENCE_EVENT_USER_JOIN
                                    ? PRESENCE_EVENT_JOIN
                                    : PRESENCE_EVENT_LEAVE;
                bool ok = false;
                if (i > 0) {
                    const item *p = &s->items[i - 1];
                    ok = p->kind == want && p->seq == it->seq &&
                         strcmp(p->client, it->client) == 0;
                }
                if (!ok && i + 1 < s->count) {
                    const item *n = &s->items[i + 1];
                    ok = n->kind == want && n->seq == it->seq &&
                         strcmp(n->client, it->client) == 0;
                }
                if (!ok) {
                    print_error("%s: user event seq %llu not next to its "
                                "change\n",
                                s->channel, (unsigned long long)it->seq);
                }
                assert_true(ok);
                continue;
            }
            uint64_t want = members == 0 ? 1 : last + 1;
            if (it->seq != want) {
                print_error("%s: event %zu (%s %s) has seq %llu, expected "
                            "%llu\n",
                            s->channel, i, presence_event_kind_name(it->kind), it->client,
                            (unsigned long long)it->seq,
                            (unsigned long long)want);
            }
            assert_int_equal(it->seq, want);
            last = it->seq;
            if (it->kind == PRESENCE_EVENT_JOIN) {
                members++;
            } else if (it->kind == PRESENCE_EVENT_LEAVE) {
                assert_true(members > 0);
                members--;
            }
            assert_int_equal(it->num_clients, members);
        }
    }
}

/* ---- shared setup ------------------------------------------------------- */

typedef struct shared {
    presence_registry *reg;
    test_alloc alloc;
    fake_clock clock;
    checker check;
    atomic_ulong errors;
    atomic_ulong expired;
    char first_error[256];
    atomic_int have_error;
    atomic_int go; /* start line: workers spin until every one exists */
} shared;

static void shared_open(shared *sh, bool echo)
{
    memset(sh, 0, sizeof(*sh));
    test_alloc_init(&sh->alloc, false); /* malloc: thread-safe counters */
    fake_clock_init(&sh->clock, 1000);
    checker_init(&sh->check);
    sh->check.echo = echo;
    atomic_init(&sh->errors, 0);
    atomic_init(&sh->expired, 0);
    atomic_init(&sh->have_error, 0);
    atomic_init(&sh->go, 0);
    presence_config c;
    presence_config_init(&c);
    test_alloc_install(&sh->alloc, &c, false);
    c.clock = fake_clock_read;
    c.clock_user_data = &sh->clock;
    assert_ok(presence_registry_new(&c, &sh->reg));
    presence_subscription s;
    assert_ok(presence_subscribe(sh->reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, checker_cb, &sh->check,
                                 &s));
    ns_set(sh->reg, "tt", true, true, 1000, 0);
}

static void shared_close(shared *sh)
{
    assert_ok(presence_registry_free(sh->reg));
    checker_free(&sh->check);
    test_alloc_assert_clean(&sh->alloc);
}

static void expect_rc(shared *sh, int got, int want, const char *what)
{
    if (got != want) {
        if (atomic_exchange(&sh->have_error, 1) == 0) {
            snprintf(sh->first_error, sizeof(sh->first_error),
                     "%s returned %s, expected %s", what,
                     presence_error_name(got), presence_error_name(want));
        }
        atomic_fetch_add(&sh->errors, 1);
    }
}

static void assert_no_worker_errors(shared *sh)
{
    if (atomic_load(&sh->errors) != 0) {
        print_error("%lu worker errors; first: %s\n",
                    (unsigned long)atomic_load(&sh->errors),
                    sh->first_error);
    }
    assert_int_equal(atomic_load(&sh->errors), 0);
}

typedef struct worker {
    shared *sh;
    int t;
    void *(*fn)(void *);
    pthread_t thread;
} worker;

static void *worker_start(void *arg)
{
    worker *w = arg;
    while (atomic_load(&w->sh->go) == 0) {
        /* spin: start together, to interleave as much as possible */
    }
    return w->fn(arg);
}

/* Saves taken while the workers run: each must be one instant, which a
 * load checks (two clients with one id, a member twice, a count that
 * does not add up are all refused). */
typedef struct saver {
    shared *sh;
    atomic_int stop;
    unsigned long loads;
} saver;

static void *saver_main(void *arg)
{
    saver *sv = arg;
    while (atomic_load(&sv->stop) == 0 || sv->loads == 0) {
        expect_rc(sv->sh, save_and_load(sv->sh->reg), PRESENCE_OK,
                  "save and load");
        sv->loads++;
    }
    return NULL;
}

static void run_workers(shared *sh, void *(*fn)(void *))
{
    worker w[THREADS];
    saver sv = {.sh = sh};
    pthread_t saver_thread;
    atomic_store(&sh->go, 0);
    atomic_init(&sv.stop, 0);
    for (int t = 0; t < THREADS; t++) {
        w[t].sh = sh;
        w[t].t = t;
        w[t].fn = fn;
        assert_int_equal(
            pthread_create(&w[t].thread, NULL, worker_start, &w[t]), 0);
    }
    assert_int_equal(pthread_create(&saver_thread, NULL, saver_main, &sv), 0);
    atomic_store(&sh->go, 1);
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(w[t].thread, NULL), 0);
    }
    atomic_store(&sv.stop, 1);
    assert_int_equal(pthread_join(saver_thread, NULL), 0);
    assert_true(sv.loads > 0);
}

/* ---- mixed workload ----------------------------------------------------- */

#define CLIENTS 1000

static void names_for(int t, int i, char *cl, char *us, char *own,
                      char *shr, char *ttl)
{
    snprintf(cl, 32, "t%dc%d", t, i);
    snprintf(us, 32, "t%du%d", t, i / 2);
    snprintf(own, 32, "own%d-%d", t, i % 10);
    snprintf(shr, 32, "shared-%d", i % 5);
    snprintf(ttl, 32, "tt:%d", i % 3);
}

static void *mixed_phase_a(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    presence_registry *r = sh->reg;
    char cl[32], us[32], own[32], shr[32], ttl[32], conn[48];
    for (int i = 0; i < CLIENTS; i++) {
        names_for(w->t, i, cl, us, own, shr, ttl);
        snprintf(conn, sizeof(conn), "conn-%s", cl);
        expect_rc(sh, join_info(r, own, cl, us, conn, NULL), PRESENCE_OK,
                  "join own");
        expect_rc(sh, join_info(r, shr, cl, us, conn, NULL), PRESENCE_OK,
                  "join shared");
        expect_rc(sh, join_info(r, ttl, cl, us, conn, NULL), PRESENCE_OK,
                  "join ttl");
        if (i % 4 == 0) {
            expect_rc(sh, presence_update(r, shr, cl, "v1", 2), PRESENCE_OK,
                      "update");
        }
        /* Reads and no-op writes, on shared channels. */
        presence_channel_stats st;
        expect_rc(sh, presence_stats(r, shr, presence_trusted(), &st), PRESENCE_OK,
                  "stats");
        if (st.num_clients == 0 || st.num_users > st.num_clients) {
            atomic_fetch_add(&sh->errors, 1);
        }
        if (i % 7 == 0) {
            presence_snapshot *snap = NULL;
            expect_rc(sh, presence_query(r, shr, REQ(cl), &snap), PRESENCE_OK,
                      "query");
            if (snap != NULL) {
                if (snap->count != snap->stats.num_clients) {
                    atomic_fetch_add(&sh->errors, 1);
                }
                presence_snapshot_free(snap);
            }
            presence_channel_list *list = NULL;
            expect_rc(sh, presence_channels(r, NULL, &list), PRESENCE_OK,
                      "channels");
            presence_channel_list_free(list);
            snap = NULL;
            expect_rc(sh, presence_query_page(r, ttl, presence_trusted(), 0, 5, &snap),
                      PRESENCE_OK, "query_page");
            presence_snapshot_free(snap);
        }
        expect_rc(sh, presence_touch(r, ttl, cl), PRESENCE_OK, "touch");
        expect_rc(sh, presence_touch_client(r, cl), PRESENCE_OK,
                  "touch_client");
        size_t n = 0;
        /* The clock stands at 1000, TTL 1000: nothing is due. */
        expect_rc(sh, presence_expire(r, presence_now_ms(r), &n, NULL), PRESENCE_OK,
                  "expire");
        if (n != 0) {
            atomic_fetch_add(&sh->errors, 1);
        }
        presence_counts counts;
        expect_rc(sh, presence_registry_counts(r, &counts), PRESENCE_OK,
                  "counts");
        (void)presence_next_deadline_ms(r);
    }
    for (int i = 0; i < CLIENTS; i++) {
        names_for(w->t, i, cl, us, own, shr, ttl);
        if (i % 4 == 1) {
            expect_rc(sh, presence_leave(r, own, cl), PRESENCE_OK, "leave");
        } else if (i % 4 == 3) {
            size_t left = 0;
            expect_rc(sh, presence_disconnect(r, cl, &left), PRESENCE_OK,
                      "disconnect");
            if (left != 3) {
                atomic_fetch_add(&sh->errors, 1);
            }
        }
    }
    return NULL;
}

static void *mixed_phase_b(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    size_t n = 0;
    presence_channel_stats st;
    expect_rc(sh, presence_stats(sh->reg, "shared-0", presence_trusted(), &st), PRESENCE_OK,
              "stats");
    expect_rc(sh, presence_expire(sh->reg, 2000, &n, NULL), PRESENCE_OK, "expire");
    atomic_fetch_add(&sh->expired, n);
    return NULL;
}

static void test_mixed_workload(void **state)
{
    (void)state;
    shared *sh = calloc(1, sizeof(*sh));
    assert_non_null(sh);
    shared_open(sh, false);
    run_workers(sh, mixed_phase_a);
    assert_no_worker_errors(sh);
    assert_int_equal(presence_next_deadline_ms(sh->reg), 2000);
    fake_clock_set(&sh->clock, 2000);
    run_workers(sh, mixed_phase_b);
    assert_no_worker_errors(sh);

    /* The model. */
    size_t kept_ttl = 0;
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < CLIENTS; i++) {
            kept_ttl += i % 4 != 3;
        }
    }
    assert_int_equal(atomic_load(&sh->expired), kept_ttl);
    assert_int_equal(presence_next_deadline_ms(sh->reg), PRESENCE_NO_DEADLINE);

    size_t memberships = 0, clients = 0;
    for (int t = 0; t < THREADS; t++) {
        for (int i = 0; i < CLIENTS; i++) {
            bool own = i % 4 == 0 || i % 4 == 2;
            bool shr = i % 4 != 3;
            memberships += own + shr;
            clients += own || shr;
        }
    }
    /* Every user keeps its even client: all users stay. */
    assert_counts(sh->reg, THREADS * 5 + 5, clients, THREADS * CLIENTS / 2,
                  memberships);
    char ch[32];
    for (int s = 0; s < 5; s++) {
        size_t nc = 0, nu = 0;
        for (int t = 0; t < THREADS; t++) {
            for (int i = 0; i < CLIENTS; i++) {
                if (i % 5 == s && i % 4 != 3) {
                    nc++;
                    /* users (t, i/2): clients 2k, 2k+1 never share a
                     * shared-* channel (i % 5 differs) */
                    nu++;
                }
            }
        }
        snprintf(ch, sizeof(ch), "shared-%d", s);
        assert_stats(sh->reg, ch, nc, nu);
    }
    for (int t = 0; t < THREADS; t++) {
        for (int j = 0; j < 10; j++) {
            snprintf(ch, sizeof(ch), "own%d-%d", t, j);
            assert_stats(sh->reg, ch, j % 2 == 0 ? CLIENTS / 10 : 0,
                         j % 2 == 0 ? CLIENTS / 10 : 0);
        }
    }

    /* Events: every membership is its user's only connection in its
     * channel, so user events mirror client events. */
    checker *c = &sh->check;
    size_t joins = 3 * CLIENTS * THREADS;
    size_t updates = CLIENTS / 4 * THREADS;
    size_t explicit_leaves = CLIENTS / 4 * THREADS;
    size_t disconnects = 3 * (CLIENTS / 4) * THREADS;
    size_t leaves = explicit_leaves + disconnects + kept_ttl;
    assert_int_equal(atomic_load(&c->by_kind[0]), joins);
    assert_int_equal(atomic_load(&c->by_kind[1]), leaves);
    assert_int_equal(atomic_load(&c->by_kind[2]), updates);
    assert_int_equal(atomic_load(&c->by_kind[3]), joins);
    assert_int_equal(atomic_load(&c->by_kind[4]), leaves);
    assert_int_equal(atomic_load(&c->by_reason[PRESENCE_LEAVE_EXPLICIT]),
                     2 * explicit_leaves);
    assert_int_equal(atomic_load(&c->by_reason[PRESENCE_LEAVE_DISCONNECT]),
                     2 * disconnects);
    assert_int_equal(atomic_load(&c->by_reason[PRESENCE_LEAVE_EXPIRED]),
                     2 * kept_ttl);
    checker_verify(c);
    shared_close(sh);
    free(sh);
}

/* ---- one hot channel ---------------------------------------------------- */

#define ROUNDS 300
#define PER_ROUND 20

static void *hot_worker(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    presence_registry *r = sh->reg;
    char cl[32], us[32];
    snprintf(us, sizeof(us), "hu%d", w->t);
    for (int round = 0; round < ROUNDS; round++) {
        for (int j = 0; j < PER_ROUND; j++) {
            snprintf(cl, sizeof(cl), "h%d-%d", w->t, j);
            expect_rc(sh, join_simple(r, "hot", cl, us), PRESENCE_OK, "join");
            if (j % 5 == 0) {
                presence_snapshot *snap = NULL;
                expect_rc(sh, presence_query_page(r, "hot", REQ(cl), 0, 8, &snap),
                          PRESENCE_OK, "query_page");
                presence_snapshot_free(snap);
                size_t n = 0;
                expect_rc(sh, presence_user_present(r, "hot", us, &n),
                          PRESENCE_OK, "user_present");
                if (n != (size_t)j + 1) {
                    atomic_fetch_add(&sh->errors, 1);
                }
            }
        }
        for (int j = 0; j < PER_ROUND; j++) {
            snprintf(cl, sizeof(cl), "h%d-%d", w->t, j);
            if (j % 2) {
                expect_rc(sh, presence_leave(r, "hot", cl), PRESENCE_OK,
                          "leave");
            } else {
                expect_rc(sh, presence_disconnect(r, cl, NULL), PRESENCE_OK,
                          "disconnect");
            }
        }
    }
    return NULL;
}

static void test_hot_channel(void **state)
{
    (void)state;
    shared *sh = calloc(1, sizeof(*sh));
    assert_non_null(sh);
    shared_open(sh, false);
    run_workers(sh, hot_worker);
    assert_no_worker_errors(sh);
    assert_counts(sh->reg, 0, 0, 0, 0);
    checker *c = &sh->check;
    size_t n = (size_t)THREADS * ROUNDS * PER_ROUND;
    assert_int_equal(atomic_load(&c->by_kind[0]), n);
    assert_int_equal(atomic_load(&c->by_kind[1]), n);
    assert_int_equal(atomic_load(&c->by_kind[2]), 0);
    assert_int_equal(atomic_load(&c->by_kind[3]), THREADS * ROUNDS);
    assert_int_equal(atomic_load(&c->by_kind[4]), THREADS * ROUNDS);
    checker_verify(c);
    shared_close(sh);
    free(sh);
}

/* ---- callbacks that change the registry, with many threads -------------- */

static void *echo_worker(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    char cl[32], ch[32];
    for (int i = 0; i < 300; i++) {
        snprintf(cl, sizeof(cl), "e%d-%d", w->t, i);
        snprintf(ch, sizeof(ch), "echo-%d", i % 3);
        expect_rc(sh, join_simple(sh->reg, ch, cl, "eu"), PRESENCE_OK,
                  "join");
        if (i % 2) {
            expect_rc(sh, presence_leave(sh->reg, ch, cl), PRESENCE_OK,
                      "leave");
        }
    }
    return NULL;
}

static void test_reentrant_threads(void **state)
{
    (void)state;
    shared *sh = calloc(1, sizeof(*sh));
    assert_non_null(sh);
    shared_open(sh, true);
    run_workers(sh, echo_worker);
    assert_no_worker_errors(sh);
    checker *c = &sh->check;
    size_t joins = (size_t)THREADS * 300;
    assert_int_equal(atomic_load(&c->by_kind[0]), joins);
    assert_int_equal(atomic_load(&c->by_kind[1]), joins / 2);
    assert_int_equal(atomic_load(&c->echo_bad), 0);
    assert_int_equal(atomic_load(&c->echo_ok) + atomic_load(&c->echo_gone),
                     joins);
    /* Every successful echo is one UPDATE, delivered. */
    assert_int_equal(atomic_load(&c->by_kind[2]), atomic_load(&c->echo_ok));
    assert_counts(sh->reg, 3, joins / 2, 1, joins / 2);
    /* The members that stayed carry the echo. */
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(sh->reg, "echo-0", presence_trusted(), &snap));
    for (size_t i = 0; i < snap->count; i++) {
        assert_int_equal(snap->members[i].chan_info_len, 4);
        assert_memory_equal(snap->members[i].chan_info, "echo", 4);
    }
    presence_snapshot_free(snap);
    checker_verify(c);
    shared_close(sh);
    free(sh);
}

/* ---- a close racing with joins ------------------------------------------ */

#define ORIGINALS 3000
#define NEWCOMERS 400

static atomic_int newcomer_joins;
static atomic_int close_done;

static void *close_race_worker(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    if (w->t == 0) {
        /* Start once the joiners are under way. */
        while (atomic_load(&newcomer_joins) < 30) {
            sched_yield();
        }
        size_t removed = 0;
        expect_rc(sh, presence_channel_close(sh->reg, "arena", &removed),
                  PRESENCE_OK, "close");
        atomic_store(&close_done, 1);
        return NULL;
    }
    char cl[32];
    /* Keep joining while the close runs (at least NEWCOMERS each). */
    for (int i = 0; i < NEWCOMERS || (atomic_load(&close_done) == 0 &&
                                      i < 20 * NEWCOMERS);
         i++) {
        snprintf(cl, sizeof(cl), "n%d-%d", w->t, i);
        expect_rc(sh, join_simple(sh->reg, "arena", cl, cl), PRESENCE_OK,
                  "join");
        atomic_fetch_add(&newcomer_joins, 1);
    }
    return NULL;
}

/* Joins made while a close runs may survive it; every member there was
 * when it started must leave, exactly once. */
static void test_close_races_joins(void **state)
{
    (void)state;
    shared *sh = calloc(1, sizeof(*sh));
    assert_non_null(sh);
    shared_open(sh, false);
    char cl[32];
    for (int i = 0; i < ORIGINALS; i++) {
        snprintf(cl, sizeof(cl), "orig%d", i);
        assert_ok(join_simple(sh->reg, "arena", cl, cl));
    }
    atomic_store(&newcomer_joins, 0);
    atomic_store(&close_done, 0);
    run_workers(sh, close_race_worker);
    assert_no_worker_errors(sh);

    const stream *st = NULL;
    for (size_t i = 0; i < sh->check.nstreams; i++) {
        if (strcmp(sh->check.streams[i].channel, "arena") == 0) {
            st = &sh->check.streams[i];
        }
    }
    assert_non_null(st);
    unsigned char *left = calloc(ORIGINALS, 1);
    assert_non_null(left);
    size_t originals_left = 0, newcomers_left = 0, newcomers_joined = 0;
    for (size_t i = 0; i < st->count; i++) {
        const item *it = &st->items[i];
        bool orig = strncmp(it->client, "orig", 4) == 0;
        if (it->kind == PRESENCE_EVENT_LEAVE) {
            if (orig) {
                int k = atoi(it->client + 4);
                assert_int_equal(left[k], 0);
                left[k] = 1;
                originals_left++;
            } else {
                newcomers_left++;
            }
        } else if (it->kind == PRESENCE_EVENT_JOIN && !orig) {
            newcomers_joined++;
        }
    }
    free(left);
    presence_channel_stats stats = stats_of(sh->reg, "arena");
    if (originals_left != ORIGINALS) {
        print_error("after the close, %zu of %d original members had left; "
                    "%zu newcomers left, %zu members remain\n",
                    originals_left, ORIGINALS, newcomers_left,
                    stats.num_clients);
    }
    checker_verify(&sh->check);
    /* Free first, so that a failure below leaks nothing. */
    shared_close(sh);
    free(sh);
    assert_int_equal(originals_left, ORIGINALS);
    assert_int_equal(newcomers_joined,
                     (size_t)atomic_load(&newcomer_joins));
    assert_int_equal(stats.num_clients, newcomers_joined - newcomers_left);
}

/* ---- many closes at once against joins by name -------------------------- */

/*
 * presence_client_close_many() reserves its events before the first close;
 * a join by name of one of its clients (same id and user: it joins the
 * open client) must not come between and go without its leave. Even
 * threads open handles, join them and close them all in one call; odd
 * threads join the same ids by name meanwhile, then disconnect them. Every
 * stream must stay whole (no seq skipped, counts right), end empty, and
 * the registry too.
 */
#define BATCH_CLIENTS 16
#define BATCH_ROUNDS 300

static void *close_many_worker(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    char id[32], channel[16];
    int owner = w->t & ~1;
    for (int r = 0; r < BATCH_ROUNDS; r++) {
        if (w->t == owner) {
            presence_client *h[BATCH_CLIENTS];
            for (int i = 0; i < BATCH_CLIENTS; i++) {
                snprintf(id, sizeof id, "b%d-%d", owner, i);
                presence_client_options o;
                presence_client_options_init(&o);
                o.client_id = id;
                o.user_id = "u";
                h[i] = NULL;
                int rc = presence_client_open(sh->reg, &o, &h[i]);
                if (rc == PRESENCE_ERR_CONFLICT) {
                    /* still in by name from the other thread: wait */
                    i--;
                    sched_yield();
                    continue;
                }
                expect_rc(sh, rc, PRESENCE_OK, "open");
                snprintf(channel, sizeof channel, "m%d", i % 4);
                expect_rc(sh, presence_client_join(sh->reg, h[i], channel,
                                                   NULL, 0, NULL),
                          PRESENCE_OK, "join by handle");
            }
            size_t left = 0;
            expect_rc(sh,
                      presence_client_close_many(sh->reg, h, BATCH_CLIENTS,
                                                 &left),
                      PRESENCE_OK, "close_many");
        } else {
            for (int i = 0; i < BATCH_CLIENTS; i++) {
                snprintf(id, sizeof id, "b%d-%d", owner, i);
                expect_rc(sh, join_simple(sh->reg, "m9", id, "u"),
                          PRESENCE_OK, "join by name");
                expect_rc(sh, presence_disconnect(sh->reg, id, NULL),
                          PRESENCE_OK, "disconnect");
            }
        }
    }
    return NULL;
}

static void test_close_many_races_joins_by_name(void **state)
{
    (void)state;
    shared *sh = calloc(1, sizeof(*sh));
    assert_non_null(sh);
    shared_open(sh, false);
    run_workers(sh, close_many_worker);
    assert_no_worker_errors(sh);
    checker_verify(&sh->check);
    size_t streams = sh->check.nstreams;
    for (size_t i = 0; i < sh->check.nstreams; i++) {
        const stream *st = &sh->check.streams[i];
        assert_true(st->count > 0);
        assert_int_equal(st->items[st->count - 1].num_clients, 0);
    }
    presence_counts counts = counts_of(sh->reg);
    shared_close(sh);
    free(sh);
    assert_true(streams >= 5); /* m0..m3 and m9 */
    assert_int_equal(counts.memberships, 0);
    assert_int_equal(counts.clients, 0);
}

/* ---- expiry and close against joins and disconnects ---------------------- */

/*
 * Expiry and close hold a channel's lock and then need each member's
 * client's lock, the reverse of the usual order: they step back when the
 * client's lock is busy. Here two threads join and disconnect the same
 * clients while the others expire and close the same channels, so that
 * the stepping back happens; every event stream must stay whole and the
 * registry must end empty.
 */
#define SWEEP_CLIENTS 64
#define SWEEP_ROUNDS 3000

static atomic_int sweepers_done;

static void *sweep_worker(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    char cl[32], ch[32];
    if (w->t < 2) {
        for (int i = 0; i < SWEEP_ROUNDS; i++) {
            int c = (i * 7 + w->t) % SWEEP_CLIENTS;
            snprintf(cl, sizeof(cl), "s%d", c);
            snprintf(ch, sizeof(ch), "tt:%d", i % 4);
            expect_rc(sh, join_simple(sh->reg, ch, cl, cl), PRESENCE_OK,
                      "join");
            if (i % 3 == 0) {
                snprintf(cl, sizeof(cl), "s%d", (c + 5) % SWEEP_CLIENTS);
                expect_rc(sh, presence_disconnect(sh->reg, cl, NULL),
                          PRESENCE_OK, "disconnect");
            }
        }
        atomic_fetch_add(&sweepers_done, 1);
        return NULL;
    }
    for (int i = 0; atomic_load(&sweepers_done) < 2; i++) {
        if (w->t == 2) {
            size_t n = 0;
            /* Far ahead of the clock: everything there is due. */
            expect_rc(sh, presence_expire(sh->reg, INT64_MAX / 4, &n, NULL),
                      PRESENCE_OK, "expire");
        } else {
            snprintf(ch, sizeof(ch), "tt:%d", i % 4);
            expect_rc(sh, presence_channel_close(sh->reg, ch, NULL),
                      PRESENCE_OK, "close");
        }
    }
    return NULL;
}

static void test_sweeps_race_joins(void **state)
{
    (void)state;
    shared *sh = calloc(1, sizeof(*sh));
    assert_non_null(sh);
    shared_open(sh, false);
    atomic_store(&sweepers_done, 0);
    run_workers(sh, sweep_worker);
    assert_no_worker_errors(sh);
    char cl[32];
    for (int c = 0; c < SWEEP_CLIENTS; c++) {
        snprintf(cl, sizeof(cl), "s%d", c);
        assert_ok(presence_disconnect(sh->reg, cl, NULL));
    }
    presence_counts counts;
    assert_ok(presence_registry_counts(sh->reg, &counts));
    checker_verify(&sh->check);
    shared_close(sh);
    free(sh);
    assert_int_equal(counts.channels, 0);
    assert_int_equal(counts.clients, 0);
    assert_int_equal(counts.users, 0);
    assert_int_equal(counts.memberships, 0);
}

/* ---- other nodes' clients against local churn ---------------------------- */

/*
 * Two threads apply remote joins and leaves for nodes na and nb (na's
 * thread also brings na down now and then, nb's reads nb's memberships),
 * while two others join, leave and disconnect local clients in the same
 * channels and expire far ahead of the clock. Remote members must never
 * expire, events must carry the right node, every node_down must account
 * for its leave events, and every event stream must stay whole.
 */
#define NODE_ROUNDS 3000

static atomic_int node_workers_done;
static atomic_ulong node_down_left;

static void channel_for(int i, int k, char *ch)
{
    if (i % 2 != 0) {
        snprintf(ch, 32, "tt:%d", k % 4);
    } else {
        snprintf(ch, 32, "mix%d", k % 4);
    }
}

static void check_node_snapshot(shared *sh, const char *node,
                                const char *prefix)
{
    presence_snapshot *snap = NULL;
    int rc = presence_node_memberships(sh->reg, node, &snap);
    expect_rc(sh, rc, PRESENCE_OK, "node_memberships");
    if (rc != PRESENCE_OK) {
        return;
    }
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        bool ok = strcmp(m->node_id, node) == 0 &&
                  (prefix == NULL
                       ? strncmp(m->client_id, "n", 1) != 0
                       : strncmp(m->client_id, prefix, strlen(prefix)) == 0);
        expect_rc(sh, ok ? PRESENCE_OK : PRESENCE_ERR_CONFLICT, PRESENCE_OK,
                  "node_memberships entry");
    }
    presence_snapshot_free(snap);
}

static void *node_race_worker(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    char cl[32], ch[32];
    if (w->t < 2) {
        const char *node = w->t == 0 ? "na" : "nb";
        for (int i = 0; i < NODE_ROUNDS; i++) {
            snprintf(cl, sizeof(cl), "%s-%d", node, i % 50);
            channel_for(i, i / 2, ch);
            expect_rc(sh,
                      presence_remote_join(sh->reg, node, ch, cl, "ru", "c", 1,
                                           i % 3 ? "x" : "y", 1),
                      PRESENCE_OK, "remote_join");
            if (i % 5 == 0) {
                expect_rc(sh,
                          presence_remote_leave(sh->reg, node, ch, cl,
                                                PRESENCE_LEAVE_RESYNC),
                          PRESENCE_OK, "remote_leave");
            }
            if (w->t == 0 && i % 300 == 299) {
                size_t left = 0;
                expect_rc(sh,
                          presence_node_down(sh->reg, "na",
                                             PRESENCE_LEAVE_NODE_DOWN, &left),
                          PRESENCE_OK, "node_down");
                atomic_fetch_add(&node_down_left, left);
            }
            if (w->t == 1 && i % 200 == 0) {
                check_node_snapshot(sh, "nb", "nb-");
            }
        }
        atomic_fetch_add(&node_workers_done, 1);
        return NULL;
    }
    /* At least 200 rounds, so that t2 expires local members a few times
     * even when the node workers finish first (a loaded machine). */
    for (int i = 0; (atomic_load(&node_workers_done) < 2 || i < 200) &&
                    i < 1000000;
         i++) {
        snprintf(cl, sizeof(cl), "t%dl%d", w->t, i % 40);
        channel_for(i, i / 2 + w->t, ch);
        expect_rc(sh, join_simple(sh->reg, ch, cl, cl), PRESENCE_OK, "join");
        if (i % 3 == 0) {
            expect_rc(sh, presence_disconnect(sh->reg, cl, NULL), PRESENCE_OK,
                      "disconnect");
        } else if (i % 7 == 0) {
            /* t2's expiry may have taken it already. */
            int rc = presence_leave(sh->reg, ch, cl);
            expect_rc(sh, rc == PRESENCE_ERR_NOT_FOUND ? PRESENCE_OK : rc,
                      PRESENCE_OK, "leave");
        }
        if (w->t == 2 && i % 50 == 0) {
            expect_rc(sh, presence_expire(sh->reg, INT64_MAX / 4, NULL, NULL),
                      PRESENCE_OK, "expire");
        }
        if (w->t == 3 && i % 100 == 0) {
            check_node_snapshot(sh, "", NULL);
        }
    }
    return NULL;
}

static void test_nodes_race_local_churn(void **state)
{
    (void)state;
    shared *sh = calloc(1, sizeof(*sh));
    assert_non_null(sh);
    shared_open(sh, false);
    atomic_store(&node_workers_done, 0);
    atomic_store(&node_down_left, 0);
    run_workers(sh, node_race_worker);
    assert_no_worker_errors(sh);

    /* Remote members outlived every expiry: none of them is due. */
    assert_ok(presence_expire(sh->reg, INT64_MAX / 4, NULL, NULL));
    presence_snapshot *snap = NULL;
    assert_ok(presence_node_memberships(sh->reg, "nb", &snap));
    size_t nb_members = snap->count;
    presence_snapshot_free(snap);
    assert_true(nb_members > 0);

    size_t left = 0;
    assert_ok(presence_node_down(sh->reg, "na", PRESENCE_LEAVE_NODE_DOWN,
                                 &left));
    atomic_fetch_add(&node_down_left, left);
    assert_ok(presence_node_down(sh->reg, "nb", PRESENCE_LEAVE_NODE_DOWN,
                                 &left));
    assert_int_equal(left, nb_members);
    atomic_fetch_add(&node_down_left, left);
    char cl[32];
    for (int t = 2; t < THREADS; t++) {
        for (int i = 0; i < 40; i++) {
            snprintf(cl, sizeof(cl), "t%dl%d", t, i);
            assert_ok(presence_disconnect(sh->reg, cl, NULL));
        }
    }
    presence_counts counts;
    assert_ok(presence_registry_counts(sh->reg, &counts));
    checker_verify(&sh->check);
    unsigned long bad_node = atomic_load(&sh->check.bad_node);
    unsigned long remote_expired = atomic_load(&sh->check.remote_expired);
    unsigned long node_down_leaves =
        atomic_load(&sh->check.node_down_leaves);
    unsigned long expired =
        atomic_load(&sh->check.by_reason[PRESENCE_LEAVE_EXPIRED]);
    shared_close(sh);
    free(sh);
    assert_int_equal(counts.channels, 0);
    assert_int_equal(counts.clients, 0);
    assert_int_equal(counts.users, 0);
    assert_int_equal(counts.memberships, 0);
    assert_int_equal(bad_node, 0);
    assert_int_equal(remote_expired, 0);
    assert_true(expired > 0); /* the local ones did expire */
    assert_int_equal(node_down_leaves, atomic_load(&node_down_left));
}

/* ---- unsubscribe while another thread delivers --------------------------- */

typedef struct counting {
    atomic_ulong calls;
    atomic_int running;
} counting;

static void counting_cb(presence_registry *r, const presence_event *e,
                        void *ud)
{
    (void)r;
    (void)e;
    counting *c = ud;
    atomic_fetch_add(&c->running, 1);
    atomic_fetch_add(&c->calls, 1);
    for (volatile int i = 0; i < 200; i++) {
        /* stay a little, so that unsubscribe often meets a running call */
    }
    atomic_fetch_sub(&c->running, 1);
}

typedef struct churn {
    atomic_int stop;
} churn;

static churn churn_state;

static void *churn_worker(void *arg)
{
    worker *w = arg;
    shared *sh = w->sh;
    char cl[32];
    for (int i = 0; atomic_load(&churn_state.stop) == 0 || i < 1000; i++) {
        snprintf(cl, sizeof(cl), "u%d-%d", w->t, i % 50);
        expect_rc(sh, join_simple(sh->reg, "churn", cl, "u"), PRESENCE_OK,
                  "join");
        expect_rc(sh, presence_leave(sh->reg, "churn", cl), PRESENCE_OK,
                  "leave");
        if (i > 200000) {
            break; /* safety */
        }
    }
    return NULL;
}

struct clock_reader {
    pthread_t thread;
    presence_registry *reg;
    size_t bad, distinct;
};

static void *clock_reader_main(void *arg)
{
    struct clock_reader *c = arg;
    c->bad = clock_disagreements(c->reg, 150, &c->distinct);
    return NULL;
}

/* The default clock keeps each thread's last reading and the counter
 * values it holds for: threads reading it at once each get
 * CLOCK_MONOTONIC's milliseconds, from the process's first readings on. */
static void test_default_clock_across_threads(void **state)
{
    (void)state;
    presence_registry *r = NULL;
    assert_ok(presence_registry_new(NULL, &r));
    struct clock_reader c[THREADS];
    for (int t = 0; t < THREADS; t++) {
        c[t].reg = r;
        assert_int_equal(
            pthread_create(&c[t].thread, NULL, clock_reader_main, &c[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(c[t].thread, NULL), 0);
        assert_int_equal(c[t].bad, 0);
        assert_true(c[t].distinct >= 10);
    }
    assert_ok(presence_registry_free(r));
}

static void test_unsubscribe_while_delivering(void **state)
{
    (void)state;
    shared *sh = calloc(1, sizeof(*sh));
    assert_non_null(sh);
    shared_open(sh, false);
    counting cnt;
    atomic_init(&cnt.calls, 0);
    atomic_init(&cnt.running, 0);
    presence_subscription sub;
    assert_ok(presence_subscribe(sh->reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, counting_cb, &cnt,
                                 &sub));
    atomic_init(&churn_state.stop, 0);

    worker w[THREADS];
    atomic_store(&sh->go, 1);
    for (int t = 0; t < THREADS; t++) {
        w[t].sh = sh;
        w[t].t = t;
        w[t].fn = churn_worker;
        assert_int_equal(
            pthread_create(&w[t].thread, NULL, worker_start, &w[t]), 0);
    }
    /* Let events flow, then unsubscribe from this (non-delivering)
     * thread. */
    while (atomic_load(&cnt.calls) < 2000) {
        sched_yield();
    }
    assert_ok(presence_unsubscribe(sh->reg, sub));
    /* A call under way may complete; none may start. */
    struct timespec ts = {0, 20 * 1000 * 1000};
    while (atomic_load(&cnt.running) != 0) {
        sched_yield();
    }
    nanosleep(&ts, NULL);
    unsigned long after = atomic_load(&cnt.calls);
    nanosleep(&ts, NULL);
    atomic_store(&churn_state.stop, 1);
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(w[t].thread, NULL), 0);
    }
    assert_no_worker_errors(sh);
    assert_int_equal(atomic_load(&cnt.calls), after);
    assert_int_equal(atomic_load(&cnt.running), 0);
    assert_rc(presence_unsubscribe(sh->reg, sub), PRESENCE_ERR_NOT_FOUND);
    /* The other subscription saw everything, in order. */
    checker_verify(&sh->check);
    assert_counts(sh->reg, 0, 0, 0, 0);
    shared_close(sh);
    free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_workload),
        cmocka_unit_test(test_hot_channel),
        cmocka_unit_test(test_reentrant_threads),
        cmocka_unit_test(test_close_races_joins),
        cmocka_unit_test(test_close_many_races_joins_by_name),
        cmocka_unit_test(test_sweeps_race_joins),
        cmocka_unit_test(test_unsubscribe_while_delivering),
        cmocka_unit_test(test_nodes_race_local_churn),
        cmocka_unit_test(test_default_clock_across_threads),
    };
    return cmocka_run_group_tests_name("threads", tests, NULL, NULL);
}
