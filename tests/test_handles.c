/*
 * Client handles: open, join, leave, update, touch and close by handle;
 * the application pointer in events and members; change results; many
 * channels at once, all or nothing, also when memory runs out; the order
 * of a client event and its user event; many clients closed at once, as
 * one by one.
 *
 * SPDX-License-Identifier: MIT
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static presence_client *open_client(presence_registry *reg, const char *id,
                                    const char *user, void *app)
{
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = id;
    o.user_id = user;
    o.conn_info = "ci";
    o.conn_info_len = 2;
    o.app = app;
    presence_client *c = NULL;
    assert_ok(presence_client_open(reg, &o, &c));
    assert_non_null(c);
    return c;
}

static void test_open_join_leave_close(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    int conn = 0;
    presence_client *c = open_client(f.reg, "c1", "u1", &conn);
    assert_string_equal(presence_client_id(c), "c1");
    assert_ptr_equal(presence_client_app(c), &conn);
    assert_counts(f.reg, 0, 1, 1, 0);

    presence_change ch;
    assert_ok(presence_client_join(f.reg, c, "a", "x", 1, &ch));
    assert_int_equal(ch.kind, PRESENCE_CHANGE_JOINED);
    assert_int_equal(ch.stats.num_clients, 1);
    assert_int_equal(ch.stats.num_users, 1);
    assert_int_equal(ch.stats.seq, 1);
    assert_true(ch.stats.epoch != 0);
    uint64_t epoch = ch.stats.epoch;
    assert_ok(presence_client_join(f.reg, c, "a", "x", 1, &ch));
    assert_int_equal(ch.kind, PRESENCE_CHANGE_NONE);
    assert_int_equal(ch.stats.seq, 1);
    assert_ok(presence_client_join(f.reg, c, "a", "y", 1, &ch));
    assert_int_equal(ch.kind, PRESENCE_CHANGE_UPDATED);
    assert_int_equal(ch.stats.seq, 2);
    assert_ok(presence_client_update(f.reg, c, "a", "y", 1, &ch));
    assert_int_equal(ch.kind, PRESENCE_CHANGE_NONE);
    assert_ok(presence_client_update(f.reg, c, "a", NULL, 0, &ch));
    assert_int_equal(ch.kind, PRESENCE_CHANGE_UPDATED);
    assert_int_equal(ch.stats.seq, 3);

    /* The pointer in events and in members. */
    assert_int_equal(f.rec.malformed, 0);
    presence_snapshot *snap;
    assert_ok(presence_query(f.reg, "a", presence_trusted(), &snap));
    assert_int_equal(snap->count, 1);
    assert_ptr_equal(snap->members[0].app, &conn);
    assert_memory_equal(snap->members[0].conn_info, "ci", 2);
    presence_snapshot_free(snap);

    /* A name-based member of the same channel has none. */
    assert_ok(join_simple(f.reg, "a", "n1", "u2"));
    assert_ok(presence_query(f.reg, "a", presence_trusted(), &snap));
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        assert_ptr_equal(m->app, strcmp(m->client_id, "c1") == 0
                                     ? (void *)&conn
                                     : NULL);
    }
    presence_snapshot_free(snap);

    assert_ok(presence_client_leave(f.reg, c, "a", &ch));
    assert_int_equal(ch.kind, PRESENCE_CHANGE_LEFT);
    assert_int_equal(ch.stats.num_clients, 1);
    assert_int_equal(ch.stats.num_users, 1);
    assert_true(ch.stats.epoch == epoch);
    assert_int_equal(ch.stats.seq, 5);
    assert_rc(presence_client_leave(f.reg, c, "a", &ch),
              PRESENCE_ERR_NOT_FOUND);
    /* In no channel, still open: the name-based view agrees. */
    assert_rc(presence_client_channels(f.reg, "c1", &snap),
              PRESENCE_ERR_NOT_FOUND);
    assert_counts(f.reg, 1, 2, 2, 1);

    /* The leave that empties a channel reports its version, counts 0. */
    assert_ok(presence_client_join(f.reg, c, "b", NULL, 0, &ch));
    uint64_t eb = ch.stats.epoch;
    assert_ok(presence_client_leave(f.reg, c, "b", &ch));
    assert_int_equal(ch.stats.num_clients, 0);
    assert_int_equal(ch.stats.num_users, 0);
    assert_true(ch.stats.epoch == eb);
    assert_int_equal(ch.stats.seq, 2);

    assert_ok(presence_client_join(f.reg, c, "a", NULL, 0, NULL));
    assert_ok(presence_client_join(f.reg, c, "b", NULL, 0, NULL));
    size_t before = f.rec.count;
    size_t left = 99;
    assert_ok(presence_client_close(f.reg, c, &left));
    assert_int_equal(left, 2);
    size_t leaves = 0;
    for (size_t i = before; i < f.rec.count; i++) {
        if (f.rec.events[i].kind == PRESENCE_EVENT_LEAVE) {
            assert_int_equal(f.rec.events[i].reason,
                             PRESENCE_LEAVE_DISCONNECT);
            leaves++;
        }
    }
    assert_int_equal(leaves, 2);
    assert_counts(f.reg, 1, 1, 1, 1);
    fixture_close(&f);
}

/* Events carry the pointer; the client event comes before its user
 * event, with the same version. */
typedef struct app_log {
    void *apps[16];
    presence_event_kind kinds[16];
    uint64_t seqs[16];
    size_t n;
} app_log;

static void app_cb(presence_registry *reg, const presence_event *ev,
                   void *user_data)
{
    (void)reg;
    app_log *l = user_data;
    if (l->n < 16) {
        l->apps[l->n] = ev->client_app;
        l->kinds[l->n] = ev->kind;
        l->seqs[l->n++] = ev->seq;
    }
}

static void test_events_carry_app_in_order(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    app_log log;
    memset(&log, 0, sizeof log);
    presence_subscription sub;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, "a",
                                 PRESENCE_EVENTS_ALL, app_cb, &log, &sub));
    int conn = 0;
    presence_client *c = open_client(f.reg, "c1", "u1", &conn);
    assert_ok(presence_client_join(f.reg, c, "a", NULL, 0, NULL));
    assert_ok(presence_client_leave(f.reg, c, "a", NULL));
    assert_ok(join_simple(f.reg, "a", "n1", "u2"));
    assert_int_equal(log.n, 6);
    const presence_event_kind want[] = {
        PRESENCE_EVENT_JOIN, PRESENCE_EVENT_USER_JOIN, PRESENCE_EVENT_LEAVE,
        PRESENCE_EVENT_USER_LEAVE, PRESENCE_EVENT_JOIN,
        PRESENCE_EVENT_USER_JOIN};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(log.kinds[i], want[i]);
        assert_ptr_equal(log.apps[i], i < 4 ? (void *)&conn : NULL);
    }
    assert_int_equal(log.seqs[0], log.seqs[1]);
    assert_int_equal(log.seqs[2], log.seqs[3]);
    assert_ok(presence_unsubscribe(f.reg, sub));
    assert_ok(presence_client_close(f.reg, c, NULL));
    fixture_close(&f);
}

static void test_open_errors(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_client_options o;
    presence_client_options_init(&o);
    presence_client *c = NULL;
    assert_rc(presence_client_open(NULL, &o, &c), PRESENCE_ERR_INVALID);
    assert_rc(presence_client_open(f.reg, NULL, &c), PRESENCE_ERR_INVALID);
    assert_rc(presence_client_open(f.reg, &o, &c), PRESENCE_ERR_INVALID);
    o.client_id = "c1";
    assert_rc(presence_client_open(f.reg, &o, NULL), PRESENCE_ERR_INVALID);
    o.struct_size = sizeof(size_t);
    assert_rc(presence_client_open(f.reg, &o, &c), PRESENCE_ERR_INVALID);
    o.struct_size = sizeof o;
    o.client_id = "";
    assert_rc(presence_client_open(f.reg, &o, &c), PRESENCE_ERR_BAD_NAME);
    o.client_id = "bad\n";
    assert_rc(presence_client_open(f.reg, &o, &c), PRESENCE_ERR_BAD_NAME);
    char *longid = repeat_char('x', 100000);
    o.client_id = longid;
    assert_rc(presence_client_open(f.reg, &o, &c), PRESENCE_ERR_TOO_LONG);
    free(longid);
    o.client_id = "c1";
    o.conn_info_len = 3;
    assert_rc(presence_client_open(f.reg, &o, &c), PRESENCE_ERR_INVALID);
    o.conn_info_len = 0;
    /* Known by name, or open already: a conflict. */
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_rc(presence_client_open(f.reg, &o, &c), PRESENCE_ERR_CONFLICT);
    assert_null(c);
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_ok(presence_client_open(f.reg, &o, &c));
    presence_client *again = NULL;
    assert_rc(presence_client_open(f.reg, &o, &again), PRESENCE_ERR_CONFLICT);
    assert_null(again);

    /* Calls by handle check what they are given. */
    assert_rc(presence_client_join(f.reg, NULL, "a", NULL, 0, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_join(f.reg, c, NULL, NULL, 0, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_join(f.reg, c, "a", NULL, 2, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_join(f.reg, c, "nope:a", NULL, 0, NULL),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_client_update(f.reg, c, "a", "x", 1, NULL),
              PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_client_touch(f.reg, c, "a"), PRESENCE_ERR_NOT_FOUND);
    assert_ok(presence_client_touch(f.reg, c, NULL));
    assert_rc(presence_client_close(f.reg, NULL, NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_client_close(NULL, c, NULL), PRESENCE_ERR_INVALID);
    assert_null(presence_client_id(NULL));
    assert_null(presence_client_app(NULL));
    assert_int_equal(f.rec.malformed, 0);
    assert_ok(presence_client_close(f.reg, c, NULL));
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* A handle whose memberships all expire stays valid, and keeps its
 * identity: the same id cannot come back as another user. */
static void test_handle_outlives_expiry(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "ttl", true, true, 1000, 0);
    int conn = 0;
    presence_client *c = open_client(f.reg, "c1", "alice", &conn);
    assert_ok(presence_client_join(f.reg, c, "ttl:a", NULL, 0, NULL));
    assert_ok(presence_client_join(f.reg, c, "ttl:b", NULL, 0, NULL));
    fake_clock_advance(&f.clock, 1500);
    size_t expired = 0;
    assert_ok(presence_expire(f.reg, presence_now_ms(f.reg), &expired, NULL));
    assert_int_equal(expired, 2);
    assert_counts(f.reg, 0, 1, 1, 0);
    assert_rc(presence_join(f.reg, "ttl:a", "c1", "bob", "ci", 2, NULL, 0),
              PRESENCE_ERR_CONFLICT);
    assert_ok(presence_join(f.reg, "ttl:a", "c1", "alice", "ci", 2, NULL, 0));
    presence_snapshot *snap;
    assert_ok(presence_query(f.reg, "ttl:a", presence_trusted(), &snap));
    assert_ptr_equal(snap->members[0].app, &conn);
    presence_snapshot_free(snap);
    /* A name-based disconnect leaves the handle open. */
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_ok(presence_client_join(f.reg, c, "ttl:b", NULL, 0, NULL));
    assert_ok(presence_client_touch(f.reg, c, "ttl:b"));
    assert_ok(presence_client_close(f.reg, c, NULL));
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* ---- many channels at once ------------------------------------------------ */

static const char *const dump_ns[] = {"", "lim", NULL};

static void test_join_many(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    int conn = 0;
    presence_client *c = open_client(f.reg, "c1", "u1", &conn);
    assert_ok(presence_client_join(f.reg, c, "old", "x", 1, NULL));
    assert_ok(join_simple(f.reg, "shared", "other", "u2"));
    presence_join_item items[] = {
        {"new", "n", 1}, {"old", "y", 1}, {"shared", NULL, 0},
        {"old2", NULL, 0}};
    assert_ok(presence_client_join(f.reg, c, "old2", NULL, 0, NULL));
    presence_change res[4];
    size_t failed = 99;
    size_t before = f.rec.count;
    assert_ok(presence_client_join_many(f.reg, c, items, 4, res, &failed));
    assert_int_equal(failed, 99);
    assert_int_equal(res[0].kind, PRESENCE_CHANGE_JOINED);
    assert_int_equal(res[0].stats.num_clients, 1);
    assert_int_equal(res[1].kind, PRESENCE_CHANGE_UPDATED);
    assert_int_equal(res[1].stats.seq, 2);
    assert_int_equal(res[2].kind, PRESENCE_CHANGE_JOINED);
    assert_int_equal(res[2].stats.num_clients, 2);
    assert_int_equal(res[2].stats.num_users, 2);
    assert_int_equal(res[3].kind, PRESENCE_CHANGE_NONE);
    /* Events in item order: new (join, user_join), old (update), shared
     * (join, user_join). */
    const presence_event_kind want[] = {
        PRESENCE_EVENT_JOIN, PRESENCE_EVENT_USER_JOIN, PRESENCE_EVENT_UPDATE,
        PRESENCE_EVENT_JOIN, PRESENCE_EVENT_USER_JOIN};
    assert_int_equal(f.rec.count - before, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(f.rec.events[before + i].kind, want[i]);
    }
    assert_string_equal(f.rec.events[before + 2].channel, "old");
    assert_int_equal(f.rec.events[before + 2].seq, 2);
    assert_int_equal(f.rec.malformed, 0);
    assert_ok(presence_client_join_many(f.reg, c, NULL, 0, NULL, NULL));
    /* More items than fit the call's stack room. */
    char names[12][16];
    presence_join_item many[12];
    presence_change many_res[12];
    for (int i = 0; i < 12; i++) {
        snprintf(names[i], sizeof names[i], "m%d", i);
        many[i] = (presence_join_item){names[i], "m", 1};
    }
    assert_ok(presence_client_join_many(f.reg, c, many, 12, many_res, NULL));
    for (int i = 0; i < 12; i++) {
        assert_int_equal(many_res[i].kind, PRESENCE_CHANGE_JOINED);
    }
    assert_counts(f.reg, 16, 2, 2, 17);
    assert_rc(presence_client_join_many(f.reg, c, NULL, 1, NULL, NULL),
              PRESENCE_ERR_INVALID);
    assert_ok(presence_client_close(f.reg, c, NULL));
    fixture_close(&f);
}

/* Any failing item: nothing changed, no event, the item named. */
static void test_join_many_all_or_nothing(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.channels_per_client_max = 4;
    fixture_open(&f);
    ns_set(f.reg, "lim", true, true, 0, 1);
    presence_client *c = open_client(f.reg, "c1", "u1", NULL);
    assert_ok(presence_client_join(f.reg, c, "old", "x", 1, NULL));
    assert_ok(join_simple(f.reg, "lim:full", "other", "u2"));
    char *before = dump_registry(f.reg, dump_ns);
    size_t events = f.rec.count;
    struct {
        presence_join_item items[4];
        size_t n;
        int rc;
        size_t failed;
    } cases[] = {
        {{{"a", NULL, 0}, {"old", "y", 1}, {"nope:x", NULL, 0}}, 3,
         PRESENCE_ERR_UNKNOWN_NAMESPACE, 2},
        {{{"a", NULL, 0}, {"old", "z", 1}, {"a", NULL, 0}}, 3,
         PRESENCE_ERR_INVALID, 2},
        {{{"a", NULL, 0}, {"b", NULL, 0}, {"lim:full", NULL, 0}}, 3,
         PRESENCE_ERR_CHANNEL_MEMBER_LIMIT, 2},
        {{{"a", NULL, 0}, {"b", "q", 1}, {"c", NULL, 0}, {"d", NULL, 0}}, 4,
         PRESENCE_ERR_CLIENT_CHANNEL_LIMIT, 3},
        {{{"a", NULL, 0}, {"bad\x01", NULL, 0}}, 2, PRESENCE_ERR_BAD_NAME,
         1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t failed = 99;
        assert_rc(presence_client_join_many(f.reg, c, cases[k].items,
                                            cases[k].n, NULL, &failed),
                  cases[k].rc);
        assert_int_equal(failed, cases[k].failed);
        char *after = dump_registry(f.reg, dump_ns);
        assert_string_equal(after, before);
        free(after);
        assert_int_equal(f.rec.count, events);
    }
    free(before);
    assert_ok(presence_client_close(f.reg, c, NULL));
    fixture_close(&f);
}

/* Every allocation of a join_many, an open and a close failed in turn:
 * NOMEM, everything as before, no event; then it succeeds. */
static void test_handles_out_of_memory(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "lim", true, true, 500, 0);
    assert_ok(join_simple(f.reg, "shared", "other", "u2"));
    presence_client *c = NULL;
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = "c1";
    o.user_id = "u1";
    o.conn_info = "ci";
    o.conn_info_len = 2;
    for (long n = 0;; n++) {
        char *before = dump_registry(f.reg, dump_ns);
        test_alloc_arm(&f.alloc, n);
        int rc = presence_client_open(f.reg, &o, &c);
        bool injected = atomic_load(&f.alloc.injected) != 0;
        test_alloc_disarm(&f.alloc);
        atomic_store(&f.alloc.injected, 0);
        if (rc == PRESENCE_OK) {
            free(before);
            if (!injected) {
                break;
            }
            assert_ok(presence_client_close(f.reg, c, NULL));
            continue;
        }
        assert_rc(rc, PRESENCE_ERR_NOMEM);
        char *after = dump_registry(f.reg, dump_ns);
        assert_string_equal(after, before);
        free(after);
        free(before);
    }
    assert_ok(presence_client_join(f.reg, c, "old", "x", 1, NULL));
    presence_join_item items[] = {
        {"new", "n", 1},      {"old", "yy", 2},  {"shared", "s", 1},
        {"lim:t", NULL, 0},   {"new2", NULL, 0}, {"lim:u", "u", 1}};
    for (long n = 0;; n++) {
        char *before = dump_registry(f.reg, dump_ns);
        size_t events = f.rec.count;
        test_alloc_arm(&f.alloc, n);
        int rc = presence_client_join_many(f.reg, c, items, 6, NULL, NULL);
        bool injected = atomic_load(&f.alloc.injected) != 0;
        test_alloc_disarm(&f.alloc);
        atomic_store(&f.alloc.injected, 0);
        if (rc == PRESENCE_OK) {
            free(before);
            assert_int_equal(f.rec.count - events, 11);
            if (!injected) {
                break;
            }
            /* Back to the start for the next failure point. */
            for (size_t i = 0; i < 6; i++) {
                if (strcmp(items[i].channel, "old") != 0) {
                    assert_ok(presence_client_leave(f.reg, c,
                                                    items[i].channel, NULL));
                }
            }
            assert_ok(presence_client_update(f.reg, c, "old", "x", 1, NULL));
            continue;
        }
        assert_rc(rc, PRESENCE_ERR_NOMEM);
        char *after = dump_registry(f.reg, dump_ns);
        assert_string_equal(after, before);
        free(after);
        free(before);
        assert_int_equal(f.rec.count, events);
        assert_true(n < 10000);
    }
    assert_int_equal(f.rec.malformed, 0);
    assert_ok(presence_client_close(f.reg, c, NULL));
    fixture_close(&f);
}

/* One call by handle under every allocation failure in turn: NOMEM leaves
 * everything as it was, with no event; then it succeeds. */
typedef int (*handle_call)(presence_registry *reg, presence_client *c);

static int call_join(presence_registry *reg, presence_client *c)
{
    return presence_client_join(reg, c, "fresh", "info", 4, NULL);
}

static int call_update(presence_registry *reg, presence_client *c)
{
    return presence_client_update(reg, c, "old", "longer info", 11, NULL);
}

static int call_leave(presence_registry *reg, presence_client *c)
{
    return presence_client_leave(reg, c, "old", NULL);
}

static void oom_one(fixture *f, presence_client *c, handle_call call)
{
    for (long n = 0;; n++) {
        char *before = dump_registry(f->reg, dump_ns);
        size_t events = f->rec.count;
        test_alloc_arm(&f->alloc, n);
        int rc = call(f->reg, c);
        bool injected = atomic_load(&f->alloc.injected) != 0;
        test_alloc_disarm(&f->alloc);
        atomic_store(&f->alloc.injected, 0);
        if (rc == PRESENCE_OK) {
            free(before);
            assert_true(f->rec.count > events);
            if (!injected) {
                return;
            }
            fail_msg("an injected failure was absorbed at %ld", n);
        }
        assert_rc(rc, PRESENCE_ERR_NOMEM);
        char *after = dump_registry(f->reg, dump_ns);
        assert_string_equal(after, before);
        free(after);
        free(before);
        assert_int_equal(f->rec.count, events);
        assert_true(n < 10000);
    }
}

static void test_handle_calls_out_of_memory(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_client *c = open_client(f.reg, "c1", "u1", NULL);
    assert_ok(presence_client_join(f.reg, c, "old", NULL, 0, NULL));
    oom_one(&f, c, call_join);
    oom_one(&f, c, call_update);
    oom_one(&f, c, call_leave);
    assert_ok(presence_client_close(f.reg, c, NULL));
    fixture_close(&f);
}

/* ---- presence_client_close_many ---------------------------------------- */

static const char *const close_ns[] = {"", "gr", NULL};

/* Six clients (two of them one user's), in channels of the default
 * namespace and of "gr", which keeps a leave grace: a registry each. */
static void close_setup(fixture *f, presence_client *out[6])
{
    fixture_config(f);
    fixture_open(f);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.leave_grace_ms = 5000;
    assert_ok(presence_namespace_set(f->reg, "gr", &o));
    static const char *const users[6] = {"u0", "u0", "u1", "u2", "u3", "u4"};
    static const char *const channels[] = {"a", "b", "c", "gr:room", "d"};
    for (size_t i = 0; i < 6; i++) {
        char id[8];
        snprintf(id, sizeof id, "c%zu", i);
        out[i] = open_client(f->reg, id, users[i], NULL);
        for (size_t k = 0; k < 5; k++) {
            if ((i + k) % 3 != 0) { /* 3 or 4 of them each, 20 in all */
                assert_ok(presence_client_join(f->reg, out[i], channels[k],
                                               "x", 1, NULL));
            }
        }
    }
    /* A client by name stays: the channels do not all empty. */
    assert_ok(join_simple(f->reg, "b", "named", "u9"));
    assert_ok(join_simple(f->reg, "gr:room", "named", "u9"));
}

/* The same as closing each in order: the same events (kinds, reasons,
 * versions, times, users going offline) and the same registry after,
 * memberships in grace included; left counts them all. */
static void test_close_many_as_one_by_one(void **state)
{
    (void)state;
    fixture many, single;
    presence_client *hm[6], *hs[6];
    close_setup(&many, hm);
    close_setup(&single, hs);
    static const size_t order[6] = {4, 0, 5, 1, 3, 2};
    presence_client *batch[6];
    for (size_t i = 0; i < 6; i++) {
        batch[i] = hm[order[i]];
    }
    size_t from = many.rec.count;
    assert_int_equal(single.rec.count, from);
    size_t left_many = 0, left_single = 0;
    assert_ok(presence_client_close_many(many.reg, batch, 6, &left_many));
    for (size_t i = 0; i < 6; i++) {
        size_t left = 0;
        assert_ok(presence_client_close(single.reg, hs[order[i]], &left));
        left_single += left;
    }
    assert_int_equal(left_many, left_single);
    assert_true(left_many >= 18);
    assert_true(recorder_count_reason(&many.rec, PRESENCE_EVENT_LEAVE,
                                      PRESENCE_LEAVE_DISCONNECT) > 0);
    char *a = recorder_text(&many.rec, false, true);
    char *b = recorder_text(&single.rec, false, true);
    assert_string_equal(a, b);
    free(a);
    free(b);
    a = dump_registry(many.reg, close_ns);
    b = dump_registry(single.reg, close_ns);
    assert_string_equal(a, b);
    free(a);
    free(b);
    /* Those in "gr" stay there in grace, known by id; the others are
     * gone. */
    assert_int_equal(stats_of(many.reg, "gr:room").num_clients, 5);
    presence_snapshot *snap = NULL;
    assert_ok(presence_client_channels(many.reg, "c1", &snap));
    assert_int_equal(snap->count, 1);
    assert_true(snap->members[0].in_grace);
    presence_snapshot_free(snap);
    assert_rc(presence_client_channels(many.reg, "c0", &snap),
              PRESENCE_ERR_NOT_FOUND);
    fixture_close(&many);
    fixture_close(&single);
}

/* Bad calls change nothing, queue no event, and leave every handle open. */
static void test_close_many_errors(void **state)
{
    (void)state;
    fixture f;
    presence_client *h[6];
    close_setup(&f, h);
    char *before = dump_registry(f.reg, close_ns);
    size_t events = f.rec.count;
    presence_client *twice[3] = {h[0], h[1], h[0]};
    presence_client *with_null[3] = {h[0], NULL, h[1]};
    presence_client *many[PRESENCE_CLOSE_MANY_MAX + 1];
    for (size_t i = 0; i < PRESENCE_CLOSE_MANY_MAX + 1; i++) {
        many[i] = h[i % 6]; /* the count is refused before any is read */
    }
    size_t left = 99;
    assert_rc(presence_client_close_many(NULL, h, 6, &left),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_close_many(f.reg, NULL, 1, &left),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_close_many(f.reg, twice, 3, &left),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_close_many(f.reg, with_null, 3, &left),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_close_many(f.reg, many,
                                         PRESENCE_CLOSE_MANY_MAX + 1, &left),
              PRESENCE_ERR_INVALID);
    assert_int_equal(left, 99);
    assert_ok(presence_client_close_many(f.reg, NULL, 0, &left));
    assert_int_equal(left, 0);
    char *after = dump_registry(f.reg, close_ns);
    assert_string_equal(after, before);
    free(after);
    free(before);
    assert_int_equal(f.rec.count, events);
    /* Still open: they work, and close. */
    assert_ok(presence_client_join(f.reg, h[0], "e", NULL, 0, NULL));
    assert_ok(presence_client_close_many(f.reg, h, 6, &left));
    assert_int_equal(left, 21); /* 20 of the setup, and "e" */
    fixture_close(&f);
}

/* Every allocation failed in turn: NOMEM, everything as before, no
 * event; then it succeeds. The grace namespace makes grace links, and
 * the recorder's subscription makes events, to be had first. */
static void test_close_many_out_of_memory(void **state)
{
    (void)state;
    fixture f;
    presence_client *h[6];
    close_setup(&f, h);
    for (long n = 0;; n++) {
        char *before = dump_registry(f.reg, close_ns);
        size_t events = f.rec.count;
        test_alloc_arm(&f.alloc, n);
        size_t left = 0;
        int rc = presence_client_close_many(f.reg, h, 6, &left);
        bool injected = atomic_load(&f.alloc.injected) != 0;
        test_alloc_disarm(&f.alloc);
        atomic_store(&f.alloc.injected, 0);
        if (rc == PRESENCE_OK) {
            free(before);
            assert_int_equal(left, 20);
            assert_true(f.rec.count > events);
            assert_true(n > 0); /* some allocation was needed */
            break;
        }
        assert_rc(rc, PRESENCE_ERR_NOMEM);
        assert_true(injected);
        char *after = dump_registry(f.reg, close_ns);
        assert_string_equal(after, before);
        free(after);
        free(before);
        assert_int_equal(f.rec.count, events);
        assert_true(n < 10000);
    }
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_join_leave_close),
        cmocka_unit_test(test_events_carry_app_in_order),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_handle_outlives_expiry),
        cmocka_unit_test(test_join_many),
        cmocka_unit_test(test_join_many_all_or_nothing),
        cmocka_unit_test(test_handles_out_of_memory),
        cmocka_unit_test(test_handle_calls_out_of_memory),
        cmocka_unit_test(test_close_many_as_one_by_one),
        cmocka_unit_test(test_close_many_errors),
        cmocka_unit_test(test_close_many_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
