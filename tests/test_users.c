/*
 * Users across channels: presence_user_status() and
 * presence_user_clients() count and list a user's connections
 * registry-wide, whatever channels they are in (or none, for an open
 * handle), this node's and other nodes'. A user's online and offline
 * events alternate, also when two threads connect and disconnect its
 * clients at once.
 *
 * SPDX-License-Identifier: MIT
 */
#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t status_of(presence_registry *reg, const char *user)
{
    size_t n = 99;
    assert_ok(presence_user_status(reg, user, &n));
    return n;
}

static void test_user_status_and_clients(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_int_equal(status_of(f.reg, "alice"), 0);

    /* A handle in no channel is a connection. */
    int laptop = 0;
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = "h1";
    o.user_id = "alice";
    o.conn_info = "ci";
    o.conn_info_len = 2;
    o.app = &laptop;
    presence_client *h = NULL;
    assert_ok(presence_client_open(f.reg, &o, &h));
    assert_int_equal(status_of(f.reg, "alice"), 1);

    /* Name-based clients in channels, and another node's. */
    assert_ok(join_simple(f.reg, "a", "c1", "alice"));
    assert_ok(join_simple(f.reg, "b", "c1", "alice"));
    assert_ok(join_simple(f.reg, "a", "c2", "bob"));
    assert_ok(presence_remote_join(f.reg, "n1", "a", "r1", "alice", NULL, 0,
                                   NULL, 0));
    assert_int_equal(status_of(f.reg, "alice"), 3);
    assert_int_equal(status_of(f.reg, "bob"), 1);
    assert_int_equal(status_of(f.reg, ""), 0);

    presence_snapshot *snap;
    assert_ok(presence_user_clients(f.reg, "alice", &snap));
    assert_int_equal(snap->count, 3);
    int seen = 0;
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        assert_string_equal(m->channel, "");
        assert_string_equal(m->user_id, "alice");
        assert_int_equal(m->chan_info_len, 0);
        assert_int_equal(m->joined_at_ms, 0);
        if (strcmp(m->client_id, "h1") == 0) {
            assert_ptr_equal(m->app, &laptop);
            assert_int_equal(m->conn_info_len, 2);
            assert_memory_equal(m->conn_info, "ci", 2);
            assert_string_equal(m->node_id, "");
            seen |= 1;
        } else if (strcmp(m->client_id, "c1") == 0) {
            assert_null(m->app);
            assert_string_equal(m->node_id, "");
            seen |= 2;
        } else {
            assert_string_equal(m->client_id, "r1");
            assert_string_equal(m->node_id, "n1");
            seen |= 4;
        }
    }
    assert_int_equal(seen, 7);
    presence_snapshot_free(snap);

    /* Going away, one by one. */
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_int_equal(status_of(f.reg, "alice"), 3); /* still in b */
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_int_equal(status_of(f.reg, "alice"), 2);
    assert_ok(presence_node_down(f.reg, "n1", PRESENCE_LEAVE_NODE_DOWN, NULL));
    assert_int_equal(status_of(f.reg, "alice"), 1);
    assert_ok(presence_client_close(f.reg, h, NULL));
    assert_int_equal(status_of(f.reg, "alice"), 0);
    assert_ok(presence_user_clients(f.reg, "alice", &snap));
    assert_int_equal(snap->count, 0);
    assert_null(snap->members);
    presence_snapshot_free(snap);
    fixture_close(&f);
}

static void test_user_queries_errors(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    size_t n;
    presence_snapshot *snap = NULL;
    assert_rc(presence_user_status(NULL, "u", &n), PRESENCE_ERR_INVALID);
    assert_rc(presence_user_status(f.reg, NULL, &n), PRESENCE_ERR_INVALID);
    assert_rc(presence_user_status(f.reg, "u", NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_user_status(f.reg, "bad\n", &n),
              PRESENCE_ERR_BAD_NAME);
    char *longid = repeat_char('u', 100000);
    assert_rc(presence_user_status(f.reg, longid, &n), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_user_clients(f.reg, longid, &snap),
              PRESENCE_ERR_TOO_LONG);
    free(longid);
    assert_rc(presence_user_clients(NULL, "u", &snap), PRESENCE_ERR_INVALID);
    assert_rc(presence_user_clients(f.reg, "u", NULL), PRESENCE_ERR_INVALID);
    assert_null(snap);

    /* Out of memory: NOMEM, nothing returned, nothing changed. */
    assert_ok(join_simple(f.reg, "a", "c1", "u"));
    test_alloc_arm(&f.alloc, 0);
    assert_rc(presence_user_clients(f.reg, "u", &snap), PRESENCE_ERR_NOMEM);
    test_alloc_disarm(&f.alloc);
    assert_null(snap);
    assert_ok(presence_user_clients(f.reg, "u", &snap));
    assert_int_equal(snap->count, 1);
    presence_snapshot_free(snap);
    fixture_close(&f);
}

/* ---- online and offline ---------------------------------------------------- */

typedef struct user_log {
    char lines[64][64];
    size_t n;
    size_t bad;
} user_log;

static void user_log_cb(presence_registry *reg, const presence_event *ev,
                        void *user_data)
{
    (void)reg;
    user_log *l = user_data;
    bool user_kind = ev->kind == PRESENCE_EVENT_USER_ONLINE ||
                     ev->kind == PRESENCE_EVENT_USER_OFFLINE;
    if (user_kind &&
        (ev->channel[0] != '\0' || ev->namespace_name[0] != '\0' ||
         ev->seq != 0 || ev->epoch != 0 || ev->stats.num_clients != 0 ||
         ev->chan_info_len != 0)) {
        l->bad++;
    }
    if (l->n < 64) {
        snprintf(l->lines[l->n++], sizeof l->lines[0], "%s %s %s%s%s",
                 presence_event_kind_name(ev->kind), ev->user_id,
                 ev->client_id, user_kind ? "" : " ", ev->channel);
    }
}

static void expect_log(user_log *l, const char *const *want, size_t n)
{
    for (size_t i = 0; i < l->n && i < n; i++) {
        if (strcmp(l->lines[i], want[i]) != 0) {
            print_error("event %zu: got \"%s\", want \"%s\"\n", i,
                        l->lines[i], want[i]);
        }
    }
    for (size_t i = 0; i < l->n && i < n; i++) {
        assert_string_equal(l->lines[i], want[i]);
    }
    assert_int_equal(l->n, n);
    assert_int_equal(l->bad, 0);
    l->n = 0;
}

static void test_user_online_offline_events(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    user_log log = {0};
    presence_subscription sub;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_USERS | PRESENCE_EVENT_JOIN |
                                     PRESENCE_EVENT_LEAVE,
                                 user_log_cb, &log, &sub));
    /* Online before the join it causes; a second client: nothing new. */
    assert_ok(join_simple(f.reg, "a", "c1", "alice"));
    assert_ok(join_simple(f.reg, "b", "c2", "alice"));
    const char *const w1[] = {"user_online alice c1", "join alice c1 a",
                              "join alice c2 b"};
    expect_log(&log, w1, 3);
    /* A handle in no channel is online too, and closing it is offline
     * only when it was the last. */
    presence_client *h = open_handle(f.reg, "h1", "bob", NULL);
    assert_ok(presence_client_close(f.reg, h, NULL));
    const char *const w2[] = {"user_online bob h1", "user_offline bob h1"};
    expect_log(&log, w2, 2);
    /* Offline after the last leave, whatever the path. */
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_ok(presence_disconnect(f.reg, "c2", NULL));
    const char *const w3[] = {"leave alice c1 a", "leave alice c2 b",
                              "user_offline alice c2"};
    expect_log(&log, w3, 3);
    /* Expiry and other nodes. */
    ns_set(f.reg, "ttl", true, true, 100, 0);
    assert_ok(join_simple(f.reg, "ttl:x", "c3", "carol"));
    assert_ok(presence_remote_join(f.reg, "n1", "a", "r1", "dave", NULL, 0,
                                   NULL, 0));
    fake_clock_advance(&f.clock, 200);
    assert_ok(presence_expire(f.reg, presence_now_ms(f.reg), NULL, NULL));
    assert_ok(presence_node_down(f.reg, "n1", PRESENCE_LEAVE_NODE_DOWN, NULL));
    const char *const w4[] = {"user_online carol c3", "join carol c3 ttl:x",
                              "user_online dave r1", "join dave r1 a",
                              "leave carol c3 ttl:x", "user_offline carol c3",
                              "leave dave r1 a", "user_offline dave r1"};
    expect_log(&log, w4, 8);
    /* Not asked for: not queued (a channel subscription never sees them). */
    assert_ok(presence_unsubscribe(f.reg, sub));
    fixture_close(&f);
}

/* Memory runs out: the user events are reserved with the change, so a
 * change either happens with all its events or not at all. */
static void test_user_events_out_of_memory(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    user_log log = {0};
    presence_subscription sub;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_USERS, user_log_cb, &log,
                                 &sub));
    for (long n = 0;; n++) {
        char *before = dump_registry(f.reg, NULL);
        test_alloc_arm(&f.alloc, n);
        int rc = join_simple(f.reg, "a", "c1", "eve");
        bool injected = atomic_load(&f.alloc.injected) != 0;
        test_alloc_disarm(&f.alloc);
        atomic_store(&f.alloc.injected, 0);
        if (rc == PRESENCE_OK) {
            free(before);
            assert_int_equal(log.n, 1);
            log.n = 0;
            assert_ok(presence_disconnect(f.reg, "c1", NULL));
            assert_int_equal(log.n, 1);
            log.n = 0;
            if (!injected) {
                break;
            }
            continue;
        }
        assert_rc(rc, PRESENCE_ERR_NOMEM);
        char *after = dump_registry(f.reg, NULL);
        assert_string_equal(after, before);
        free(after);
        free(before);
        assert_int_equal(log.n, 0);
        assert_true(n < 1000);
    }
    assert_ok(presence_unsubscribe(f.reg, sub));
    fixture_close(&f);
}

/* ---- two threads, one user ------------------------------------------- */

typedef struct alternation {
    bool online;        /* delivery is one thread at a time */
    size_t onlines;
    size_t out_of_order; /* online while online, offline while offline */
} alternation;

static void alternation_cb(presence_registry *reg, const presence_event *ev,
                           void *user_data)
{
    (void)reg;
    alternation *a = user_data;
    bool online = ev->kind == PRESENCE_EVENT_USER_ONLINE;
    a->out_of_order += online == a->online;
    a->online = online;
    a->onlines += online;
}

typedef struct flapper {
    presence_registry *reg;
    const char *client;
    const char *channel;
} flapper;

#define FLAPS 20000

static void *flap_main(void *arg)
{
    flapper *f = arg;
    for (int i = 0; i < FLAPS; i++) {
        assert_ok(join_simple(f->reg, f->channel, f->client, "shared"));
        assert_ok(presence_disconnect(f->reg, f->client, NULL));
    }
    return NULL;
}

/* Two clients of one user connect and disconnect in a loop, each on its
 * own thread: the user goes online and offline over and over, and its
 * events must alternate. The offline decided as one thread's client went
 * was once queued after the online of the other thread's new client,
 * which had come after it (found by the stress test). */
static void test_user_events_alternate_across_threads(void **state)
{
    (void)state;
    /* The library's own clock and allocator: both are thread-safe. */
    presence_config c;
    presence_config_init(&c);
    presence_registry *reg = NULL;
    assert_ok(presence_registry_new(&c, &reg));
    alternation a = {0};
    presence_subscription sub;
    assert_ok(presence_subscribe(reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_USERS, alternation_cb, &a,
                                 &sub));
    flapper fl[2] = {{reg, "flap-a", "room-a"}, {reg, "flap-b", "room-b"}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, flap_main, &fl[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    assert_false(a.online); /* both gone: offline last */
    assert_true(a.onlines > 0);
    assert_int_equal(a.out_of_order, 0);
    assert_ok(presence_unsubscribe(reg, sub));
    assert_ok(presence_registry_free(reg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_status_and_clients),
        cmocka_unit_test(test_user_queries_errors),
        cmocka_unit_test(test_user_online_offline_events),
        cmocka_unit_test(test_user_events_out_of_memory),
        cmocka_unit_test(test_user_events_alternate_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
