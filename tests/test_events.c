/*
 * The event contract: kinds, reasons, user events, sequence numbers,
 * stats, scopes and masks, subscription order, join_leave off, and
 * callbacks that call back into the library.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The events of one change: the client event, and the user event if
 * any. Order inside one change is not part of the contract. */
static const rec_event *find_seq(const recorder *rec, const char *channel,
                                 uint64_t seq, unsigned kind)
{
    const rec_event *found = NULL;
    for (size_t i = 0; i < rec->count; i++) {
        const rec_event *e = &rec->events[i];
        if (e->seq == seq && e->kind == kind &&
            strcmp(e->channel, channel) == 0) {
            assert_null(found); /* exactly once */
            found = e;
        }
    }
    return found;
}

static void assert_bytes(const unsigned char *got, size_t got_len,
                         const char *want)
{
    size_t n = want ? strlen(want) : 0;
    assert_int_equal(got_len, n);
    if (n) {
        assert_memory_equal(got, want, n);
    }
}

static void test_join_event_fields(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "chat", true, true, 0, 0);
    fake_clock_set(&f.clock, 5000);
    assert_ok(join_info(f.reg, "chat:1", "c1", "u1", "conn1", "chan1"));
    assert_int_equal(f.rec.count, 2);
    const unsigned kinds[] = {PRESENCE_EVENT_JOIN, PRESENCE_EVENT_USER_JOIN};
    for (size_t i = 0; i < 2; i++) {
        const rec_event *e = find_seq(&f.rec, "chat:1", 1, kinds[i]);
        assert_non_null(e);
        assert_int_equal(e->reason, PRESENCE_LEAVE_NONE);
        assert_int_equal(e->time_ms, 5000);
        assert_string_equal(e->namespace_name, "chat");
        assert_string_equal(e->client_id, "c1");
        assert_string_equal(e->user_id, "u1");
        assert_bytes(e->conn_info, e->conn_info_len, "conn1");
        assert_bytes(e->chan_info, e->chan_info_len, "chan1");
        assert_int_equal(e->stats.num_clients, 1);
        assert_int_equal(e->stats.num_users, 1);
    }

    /* Second connection of the same user: a client join only. */
    fake_clock_set(&f.clock, 6000);
    assert_ok(join_info(f.reg, "chat:1", "c2", "u1", "conn2", NULL));
    assert_int_equal(f.rec.count, 3);
    const rec_event *e = &f.rec.events[2];
    assert_int_equal(e->kind, PRESENCE_EVENT_JOIN);
    assert_int_equal(e->seq, 2);
    assert_int_equal(e->time_ms, 6000);
    assert_string_equal(e->client_id, "c2");
    assert_bytes(e->conn_info, e->conn_info_len, "conn2");
    assert_int_equal(e->chan_info_len, 0);
    assert_int_equal(e->stats.num_clients, 2);
    assert_int_equal(e->stats.num_users, 1);

    /* Another user: both again. */
    assert_ok(join_simple(f.reg, "chat:1", "c3", "u2"));
    assert_int_equal(f.rec.count, 5);
    e = find_seq(&f.rec, "chat:1", 3, PRESENCE_EVENT_USER_JOIN);
    assert_non_null(e);
    assert_string_equal(e->client_id, "c3");
    assert_int_equal(e->stats.num_clients, 3);
    assert_int_equal(e->stats.num_users, 2);
    assert_non_null(find_seq(&f.rec, "chat:1", 3, PRESENCE_EVENT_JOIN));
    fixture_close(&f);
}

static void test_leave_events_two_connections(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_info(f.reg, "a", "c1", "u", "k1", "first"));
    assert_ok(join_info(f.reg, "a", "c2", "u", "k2", "second"));
    assert_ok(presence_update(f.reg, "a", "c2", "last", 4)); /* seq 3 */
    recorder_clear(&f.rec);

    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_int_equal(f.rec.count, 1);
    const rec_event *e = &f.rec.events[0];
    assert_int_equal(e->kind, PRESENCE_EVENT_LEAVE);
    assert_int_equal(e->reason, PRESENCE_LEAVE_EXPLICIT);
    assert_int_equal(e->seq, 4);
    assert_string_equal(e->client_id, "c1");
    assert_bytes(e->conn_info, e->conn_info_len, "k1");
    assert_bytes(e->chan_info, e->chan_info_len, "first");
    assert_int_equal(e->stats.num_clients, 1);
    assert_int_equal(e->stats.num_users, 1);

    fake_clock_set(&f.clock, 4242);
    assert_ok(presence_leave(f.reg, "a", "c2"));
    assert_int_equal(f.rec.count, 3);
    const unsigned kinds[] = {PRESENCE_EVENT_LEAVE,
                              PRESENCE_EVENT_USER_LEAVE};
    for (size_t i = 0; i < 2; i++) {
        e = find_seq(&f.rec, "a", 5, kinds[i]);
        assert_non_null(e);
        assert_int_equal(e->reason, PRESENCE_LEAVE_EXPLICIT);
        assert_int_equal(e->time_ms, 4242);
        assert_string_equal(e->client_id, "c2");
        assert_string_equal(e->user_id, "u");
        assert_bytes(e->conn_info, e->conn_info_len, "k2");
        assert_bytes(e->chan_info, e->chan_info_len, "last");
        assert_int_equal(e->stats.num_clients, 0);
        assert_int_equal(e->stats.num_users, 0);
    }
    fixture_close(&f);
}

static void test_update_event(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_info(f.reg, "a", "c1", "u", "k", "old"));
    assert_ok(join_simple(f.reg, "a", "c2", "v"));
    recorder_clear(&f.rec);
    fake_clock_set(&f.clock, 1234);
    assert_ok(presence_update(f.reg, "a", "c1", "new", 3));
    assert_int_equal(f.rec.count, 1);
    const rec_event *e = &f.rec.events[0];
    assert_int_equal(e->kind, PRESENCE_EVENT_UPDATE);
    assert_int_equal(e->reason, PRESENCE_LEAVE_NONE);
    assert_int_equal(e->seq, 3);
    assert_int_equal(e->time_ms, 1234);
    assert_string_equal(e->client_id, "c1");
    assert_string_equal(e->user_id, "u");
    assert_bytes(e->conn_info, e->conn_info_len, "k");
    assert_bytes(e->chan_info, e->chan_info_len, "new");
    assert_int_equal(e->stats.num_clients, 2);
    assert_int_equal(e->stats.num_users, 2);
    fixture_close(&f);
}

static void test_leave_reasons(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "ttl", true, true, 100, 0);
    ns_set(f.reg, "gone", true, true, 0, 0);
    assert_ok(join_simple(f.reg, "x", "explicit", "u1"));
    assert_ok(join_simple(f.reg, "x", "disc", "u2"));
    assert_ok(join_simple(f.reg, "ttl:x", "exp", "u3"));
    assert_ok(join_simple(f.reg, "y", "closed", "u4"));
    assert_ok(join_simple(f.reg, "gone:x", "off", "u5"));
    recorder_clear(&f.rec);

    assert_ok(presence_leave(f.reg, "x", "explicit"));
    assert_ok(presence_disconnect(f.reg, "disc", NULL));
    size_t n = 0;
    assert_ok(presence_expire(f.reg, 1100, &n, NULL));
    assert_int_equal(n, 1);
    assert_ok(presence_channel_close(f.reg, "y", &n));
    assert_int_equal(n, 1);
    ns_set(f.reg, "gone", false, true, 0, 0);

    struct {
        const char *client;
        int reason;
    } want[] = {
        {"explicit", PRESENCE_LEAVE_EXPLICIT},
        {"disc", PRESENCE_LEAVE_DISCONNECT},
        {"exp", PRESENCE_LEAVE_EXPIRED},
        {"closed", PRESENCE_LEAVE_CLOSED},
        {"off", PRESENCE_LEAVE_CLOSED},
    };
    assert_int_equal(f.rec.count, 10);
    for (size_t i = 0; i < 5; i++) {
        const rec_event *e =
            recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, NULL,
                          want[i].client);
        assert_non_null(e);
        assert_int_equal(e->reason, want[i].reason);
        e = recorder_find(&f.rec, 0, PRESENCE_EVENT_USER_LEAVE, NULL,
                          want[i].client);
        assert_non_null(e);
        assert_int_equal(e->reason, want[i].reason);
    }
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

static void test_sequence_numbers(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_int_equal(seq_of(f.reg, "a"), 0);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));     /* 1 */
    assert_ok(join_simple(f.reg, "b", "c1", "u1"));     /* b: 1 */
    assert_ok(join_simple(f.reg, "a", "c2", "u1"));     /* 2 */
    assert_ok(presence_update(f.reg, "a", "c2", "i", 1)); /* 3 */
    assert_ok(presence_update(f.reg, "a", "c2", "i", 1)); /* no change */
    assert_ok(join_info(f.reg, "a", "c2", "u1", NULL, "i")); /* no change */
    assert_ok(presence_touch(f.reg, "a", "c2"));        /* no change */
    assert_ok(join_info(f.reg, "a", "c2", "u1", NULL, "j")); /* 4 */
    assert_int_equal(seq_of(f.reg, "a"), 4);
    assert_int_equal(seq_of(f.reg, "b"), 1);
    assert_ok(presence_leave(f.reg, "a", "c1"));        /* 5 */
    assert_int_equal(seq_of(f.reg, "a"), 5);

    /* Client and user events of one change share its number; client
     * events number the changes 1, 2, 3... */
    uint64_t expect = 1;
    for (size_t i = 0; i < f.rec.count; i++) {
        const rec_event *e = &f.rec.events[i];
        if (strcmp(e->channel, "a") != 0) {
            continue;
        }
        if (e->kind & (PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE |
                       PRESENCE_EVENT_UPDATE)) {
            assert_int_equal(e->seq, expect);
            expect++;
        }
    }
    assert_int_equal(expect, 6);
    const rec_event *uj = find_seq(&f.rec, "a", 1, PRESENCE_EVENT_USER_JOIN);
    assert_non_null(uj);

    /* Emptying the channel resets it: the next first join is 1 again. */
    assert_ok(presence_leave(f.reg, "a", "c2"));        /* 6 */
    assert_non_null(find_seq(&f.rec, "a", 6, PRESENCE_EVENT_USER_LEAVE));
    assert_int_equal(seq_of(f.reg, "a"), 0);
    assert_ok(join_simple(f.reg, "a", "c3", "u3"));
    assert_int_equal(f.rec.events[f.rec.count - 1].seq, 1);
    assert_int_equal(f.rec.events[f.rec.count - 2].seq, 1);
    assert_int_equal(seq_of(f.reg, "a"), 1);
    fixture_close(&f);
}

/* A snapshot's seq and the events after it stitch together. */
static void test_snapshot_seq_matches_events(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    char cl[32];
    for (int i = 0; i < 10; i++) {
        snprintf(cl, sizeof(cl), "c%d", i);
        assert_ok(join_simple(f.reg, "a", cl, "u"));
    }
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "a", presence_trusted(), &snap));
    assert_int_equal(snap->seq, 10);
    assert_int_equal(snap->seq, f.rec.events[f.rec.count - 1].seq);
    uint64_t base = snap->seq;
    presence_snapshot_free(snap);
    recorder_clear(&f.rec);
    assert_ok(presence_leave(f.reg, "a", "c3"));
    assert_int_equal(f.rec.events[0].seq, base + 1);
    presence_snapshot *page = NULL;
    assert_ok(presence_query_page(f.reg, "a", presence_trusted(), 0, 3, &page));
    assert_int_equal(page->seq, base + 1);
    presence_snapshot_free(page);
    presence_channel_list *list = NULL;
    assert_ok(presence_channels(f.reg, NULL, &list));
    assert_int_equal(list->count, 1);
    assert_int_equal(list->channels[0].seq, base + 1);
    presence_channel_list_free(list);
    fixture_close(&f);
}

static presence_subscription subscribe_rec(presence_registry *r,
                                           presence_scope scope,
                                           const char *name, unsigned kinds,
                                           recorder *rec)
{
    presence_subscription s = 0;
    assert_ok(presence_subscribe(r, scope, name, kinds, recorder_cb, rec, &s));
    assert_true(s != 0);
    rec->registry = r;
    return s;
}

static void test_scopes(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "chat", true, true, 0, 0);
    ns_set(f.reg, "other", true, true, 0, 0);
    recorder chat, def, later, plain;
    recorder_init(&chat);
    recorder_init(&def);
    recorder_init(&later);
    recorder_init(&plain);
    subscribe_rec(f.reg, PRESENCE_SCOPE_NAMESPACE, "chat", PRESENCE_EVENTS_ALL,
                  &chat);
    subscribe_rec(f.reg, PRESENCE_SCOPE_NAMESPACE, "", PRESENCE_EVENTS_ALL,
                  &def);
    /* A channel that does not exist yet. */
    subscribe_rec(f.reg, PRESENCE_SCOPE_CHANNEL, "chat:later",
                  PRESENCE_EVENTS_ALL, &later);
    subscribe_rec(f.reg, PRESENCE_SCOPE_CHANNEL, "plain", PRESENCE_EVENTS_ALL,
                  &plain);

    assert_ok(join_simple(f.reg, "chat:1", "c1", "u1"));
    assert_ok(join_simple(f.reg, "chat:later", "c1", "u1"));
    assert_ok(join_simple(f.reg, "plain", "c1", "u1"));
    assert_ok(join_simple(f.reg, ":plain", "c1", "u1"));
    assert_ok(join_simple(f.reg, "other:x", "c1", "u1"));
    assert_ok(presence_disconnect(f.reg, "c1", NULL));

    assert_int_equal(f.rec.count, 20);
    assert_int_equal(chat.count, 8);
    assert_int_equal(def.count, 8);
    assert_int_equal(later.count, 4);
    assert_int_equal(plain.count, 4);
    for (size_t i = 0; i < chat.count; i++) {
        assert_string_equal(chat.events[i].namespace_name, "chat");
    }
    for (size_t i = 0; i < def.count; i++) {
        assert_string_equal(def.events[i].namespace_name, "");
    }
    for (size_t i = 0; i < later.count; i++) {
        assert_string_equal(later.events[i].channel, "chat:later");
    }
    for (size_t i = 0; i < plain.count; i++) {
        assert_string_equal(plain.events[i].channel, "plain");
    }
    /* The channel was freed when it emptied; the subscription stays. */
    assert_ok(join_simple(f.reg, "chat:later", "c2", "u2"));
    assert_int_equal(later.count, 6);
    recorder_assert_sane(&chat);
    recorder_assert_sane(&later);
    recorder_free(&chat);
    recorder_free(&def);
    recorder_free(&later);
    recorder_free(&plain);
    fixture_close(&f);
}

static void test_kind_masks(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    recorder joins, users, upd;
    recorder_init(&joins);
    recorder_init(&users);
    recorder_init(&upd);
    subscribe_rec(f.reg, PRESENCE_SCOPE_ALL, NULL, PRESENCE_EVENT_JOIN,
                  &joins);
    subscribe_rec(f.reg, PRESENCE_SCOPE_ALL, NULL,
                  PRESENCE_EVENT_USER_JOIN | PRESENCE_EVENT_USER_LEAVE,
                  &users);
    subscribe_rec(f.reg, PRESENCE_SCOPE_CHANNEL, "a",
                  PRESENCE_EVENT_UPDATE | PRESENCE_EVENT_LEAVE, &upd);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "a", "c2", "u1"));
    assert_ok(join_simple(f.reg, "b", "c2", "u1"));
    assert_ok(presence_update(f.reg, "a", "c1", "x", 1));
    assert_ok(presence_update(f.reg, "b", "c2", "x", 1));
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_ok(presence_disconnect(f.reg, "c2", NULL));

    assert_int_equal(joins.count, 3);
    assert_int_equal(recorder_count(&joins, PRESENCE_EVENT_JOIN), 3);
    assert_int_equal(users.count, 4);
    assert_int_equal(recorder_count(&users, PRESENCE_EVENT_USER_JOIN), 2);
    assert_int_equal(recorder_count(&users, PRESENCE_EVENT_USER_LEAVE), 2);
    assert_int_equal(upd.count, 3);
    assert_int_equal(recorder_count(&upd, PRESENCE_EVENT_UPDATE), 1);
    assert_int_equal(recorder_count(&upd, PRESENCE_EVENT_LEAVE), 2);
    assert_int_equal(f.rec.count, 3 + 4 + 2 + 3);
    recorder_free(&joins);
    recorder_free(&users);
    recorder_free(&upd);
    fixture_close(&f);
}

/* Subscription order, with tags appended to one log. */
typedef struct order_log {
    char tags[256];
    size_t len;
} order_log;

typedef struct tagged {
    order_log *log;
    char tag;
} tagged;

static void tag_cb(presence_registry *r, const presence_event *e, void *ud)
{
    (void)r;
    tagged *t = ud;
    if (e->kind != PRESENCE_EVENT_JOIN) {
        return;
    }
    if (t->log->len + 1 < sizeof(t->log->tags)) {
        t->log->tags[t->log->len++] = t->tag;
        t->log->tags[t->log->len] = '\0';
    }
}

static void test_subscription_order(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    order_log log = {{0}, 0};
    tagged ta = {&log, 'A'}, tb = {&log, 'B'}, tc = {&log, 'C'},
           td = {&log, 'D'};
    presence_subscription sa, sb, sc, sd;
    /* Mixed scopes: order is subscription order, whatever the scope. */
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, "x",
                                 PRESENCE_EVENTS_ALL, tag_cb, &ta, &sa));
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, tag_cb, &tb, &sb));
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_NAMESPACE, "",
                                 PRESENCE_EVENTS_ALL, tag_cb, &tc, &sc));
    assert_ok(join_simple(f.reg, "x", "c1", "u1"));
    assert_string_equal(log.tags, "ABC");
    assert_ok(presence_unsubscribe(f.reg, sb));
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, tag_cb, &td, &sd));
    assert_true(sd != sa && sd != sb && sd != sc);
    log.len = 0;
    log.tags[0] = '\0';
    assert_ok(join_simple(f.reg, "x", "c2", "u2"));
    assert_string_equal(log.tags, "ACD");
    fixture_close(&f);
}

static void test_join_leave_off(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "quiet", true, false, 0, 0);
    recorder ns_rec;
    recorder_init(&ns_rec);
    subscribe_rec(f.reg, PRESENCE_SCOPE_NAMESPACE, "quiet",
                  PRESENCE_EVENTS_ALL, &ns_rec);
    assert_ok(join_simple(f.reg, "quiet:1", "c1", "u1"));
    assert_ok(join_simple(f.reg, "quiet:1", "c2", "u2"));
    assert_ok(presence_update(f.reg, "quiet:1", "c2", "x", 1));
    assert_int_equal(f.rec.count, 0);
    assert_int_equal(ns_rec.count, 0);
    assert_int_equal(seq_of(f.reg, "quiet:1"), 3);
    assert_stats(f.reg, "quiet:1", 2, 2);

    ns_set(f.reg, "quiet", true, true, 0, 0);
    assert_ok(presence_leave(f.reg, "quiet:1", "c1"));
    assert_int_equal(ns_rec.count, 2);
    assert_int_equal(ns_rec.events[0].seq, 4);
    assert_int_equal(ns_rec.events[1].seq, 4);

    /* Off again: a close is silent too. */
    ns_set(f.reg, "quiet", true, false, 0, 0);
    assert_ok(presence_channel_close(f.reg, "quiet:1", NULL));
    assert_int_equal(ns_rec.count, 2);
    assert_counts(f.reg, 0, 0, 0, 0);
    recorder_free(&ns_rec);
    fixture_close(&f);
}

/* A disconnect across namespaces: events only where join_leave is on. */
static void test_disconnect_mixed_join_leave(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "quiet", true, false, 0, 0);
    ns_set(f.reg, "loud", true, true, 0, 0);
    assert_ok(join_simple(f.reg, "quiet:1", "c1", "u1"));
    assert_ok(join_simple(f.reg, "loud:1", "c1", "u1"));
    assert_ok(join_simple(f.reg, "quiet:2", "c1", "u1"));
    assert_int_equal(f.rec.count, 2);
    size_t left = 0;
    assert_ok(presence_disconnect(f.reg, "c1", &left));
    assert_int_equal(left, 3);
    assert_int_equal(f.rec.count, 4);
    for (size_t i = 0; i < f.rec.count; i++) {
        assert_string_equal(f.rec.events[i].channel, "loud:1");
    }
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* A subscription made inside a callback does not get the rest of the
 * change being delivered, but gets the next one. */
typedef struct late_sub {
    recorder rec;
    presence_subscription sub;
    int rc;
    bool done;
} late_sub;

static void subscribing_cb(presence_registry *r, const presence_event *e,
                           void *ud)
{
    late_sub *ls = ud;
    if (!ls->done && e->kind == PRESENCE_EVENT_JOIN) {
        ls->done = true;
        ls->rc = presence_subscribe(r, PRESENCE_SCOPE_ALL, NULL,
                                    PRESENCE_EVENTS_ALL, recorder_cb,
                                    &ls->rec, &ls->sub);
    }
}

static void test_subscribe_inside_callback(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    late_sub ls;
    memset(&ls, 0, sizeof(ls));
    recorder_init(&ls.rec);
    presence_subscription s;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, subscribing_cb, &ls,
                                 &s));
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_true(ls.done);
    assert_ok(ls.rc);
    if (ls.rec.count != 0) {
        char *text = recorder_text(&ls.rec, false, false);
        print_error("the new subscription got events of the change under "
                    "way:\n%s", text);
        free(text);
    }
    /* Neither the JOIN being delivered nor the USER_JOIN of that change. */
    assert_int_equal(ls.rec.count, 0);
    assert_ok(join_simple(f.reg, "a", "c2", "u2"));
    assert_int_equal(ls.rec.count, 2);
    recorder_free(&ls.rec);
    fixture_close(&f);
}

/* Re-entry: a join from inside a leave callback. */
typedef struct reenter {
    recorder *rec;
    int nested_rc;
    size_t count_before_nested;
    size_t count_after_nested;
    bool fired;
    presence_channel_stats stats_in_cb;
    int stats_rc;
    size_t snapshot_count;
} reenter;

static void reenter_cb(presence_registry *r, const presence_event *e,
                       void *ud)
{
    reenter *re = ud;
    recorder_enter(re->rec);
    recorder_add(re->rec, r, e);
    if (!re->fired && e->kind == PRESENCE_EVENT_LEAVE &&
        strcmp(e->client_id, "c1") == 0) {
        re->fired = true;
        re->count_before_nested = re->rec->count;
        re->nested_rc = join_info(r, "a", "c9", "u9", NULL, "nested");
        re->count_after_nested = re->rec->count;
        /* Queries see the current state (the nested join included). */
        re->stats_rc = presence_stats(r, "a", presence_trusted(), &re->stats_in_cb);
        presence_snapshot *snap = NULL;
        if (presence_query(r, "a", presence_trusted(), &snap) == PRESENCE_OK) {
            re->snapshot_count = snap->count;
            presence_snapshot_free(snap);
        }
    }
    recorder_leave(re->rec);
}

static void test_reentrant_join_in_leave(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(presence_unsubscribe(f.reg, f.sub));
    reenter re;
    memset(&re, 0, sizeof(re));
    re.rec = &f.rec;
    presence_subscription s;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, reenter_cb, &re, &s));
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "a", "c2", "u2"));
    recorder_clear(&f.rec);

    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_true(re.fired);
    assert_ok(re.nested_rc);
    /* Nothing was delivered from inside the nested call... */
    assert_int_equal(re.count_after_nested, re.count_before_nested);
    assert_ok(re.stats_rc);
    assert_int_equal(re.stats_in_cb.num_clients, 2);
    assert_int_equal(re.snapshot_count, 2);
    /* ...but everything before the outer call returned, in order: the
     * leave change (seq 3) first, then the nested join (seq 4). */
    assert_int_equal(f.rec.count, 4);
    assert_int_equal(f.rec.max_depth, 1);
    assert_int_equal(f.rec.events[0].seq, 3);
    assert_int_equal(f.rec.events[1].seq, 3);
    assert_int_equal(f.rec.events[2].seq, 4);
    assert_int_equal(f.rec.events[3].seq, 4);
    assert_non_null(find_seq(&f.rec, "a", 3, PRESENCE_EVENT_LEAVE));
    assert_non_null(find_seq(&f.rec, "a", 3, PRESENCE_EVENT_USER_LEAVE));
    const rec_event *j = find_seq(&f.rec, "a", 4, PRESENCE_EVENT_JOIN);
    assert_non_null(j);
    assert_string_equal(j->client_id, "c9");
    assert_bytes(j->chan_info, j->chan_info_len, "nested");
    assert_int_equal(j->stats.num_clients, 2);
    assert_non_null(find_seq(&f.rec, "a", 4, PRESENCE_EVENT_USER_JOIN));
    assert_stats(f.reg, "a", 2, 2);
    fixture_close(&f);
}

/* A chain: every JOIN callback makes the next join, up to 50 deep. The
 * depth must stay at one: events are queued, never delivered
 * recursively. */
typedef struct chain {
    recorder *rec;
    int next;
    int failures;
} chain;

static void chain_cb(presence_registry *r, const presence_event *e, void *ud)
{
    chain *c = ud;
    recorder_enter(c->rec);
    recorder_add(c->rec, r, e);
    if (e->kind == PRESENCE_EVENT_JOIN && c->next < 50) {
        char cl[32];
        snprintf(cl, sizeof(cl), "chain%d", c->next++);
        if (join_simple(r, "chain", cl, "u") != PRESENCE_OK) {
            c->failures++;
        }
        if (presence_leave(r, "chain", e->client_id) != PRESENCE_OK) {
            c->failures++;
        }
    }
    recorder_leave(c->rec);
}

static void reentrant_chain(bool single_threaded)
{
    fixture f;
    fixture_config(&f);
    f.config.single_threaded = single_threaded;
    fixture_open(&f);
    assert_ok(presence_unsubscribe(f.reg, f.sub));
    chain c = {&f.rec, 0, 0};
    presence_subscription s;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, chain_cb, &c, &s));
    assert_ok(join_simple(f.reg, "chain", "start", "u"));
    assert_int_equal(c.failures, 0);
    assert_int_equal(c.next, 50);
    assert_int_equal(f.rec.max_depth, 1);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), 51);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 50);
    /* The channel never emptied (join before leave): seq 1..101. */
    for (size_t i = 0, want = 1; i < f.rec.count; i++) {
        if (f.rec.events[i].kind &
            (PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE)) {
            assert_int_equal(f.rec.events[i].seq, want);
            want++;
        }
    }
    assert_stats(f.reg, "chain", 1, 1);
    fixture_close(&f);
}

static void test_reentrant_chain(void **state)
{
    (void)state;
    reentrant_chain(false);
}

static void test_reentrant_chain_single_threaded(void **state)
{
    (void)state;
    reentrant_chain(true);
}

/* Callbacks that act on what the running operation is removing. */
typedef struct meddler {
    recorder *rec;
    int mode;
    bool fired;
    int rc;
    int rc2;
} meddler;

enum { MEDDLE_CLOSE_LEAVE, MEDDLE_DISCONNECT_AGAIN, MEDDLE_NS_OFF,
       MEDDLE_CLOSE_IN_JOIN };

static void meddle_cb(presence_registry *r, const presence_event *e,
                      void *ud)
{
    meddler *m = ud;
    recorder_enter(m->rec);
    recorder_add(m->rec, r, e);
    if (!m->fired) {
        switch (m->mode) {
        case MEDDLE_CLOSE_LEAVE:
            if (e->reason == PRESENCE_LEAVE_CLOSED) {
                m->fired = true;
                /* Whoever the close has not removed yet leaves by hand;
                 * then a newcomer joins the channel being closed. */
                m->rc = presence_leave(r, "room", "c3");
                m->rc2 = join_simple(r, "room", "newcomer", "un");
            }
            break;
        case MEDDLE_DISCONNECT_AGAIN:
            if (e->reason == PRESENCE_LEAVE_DISCONNECT) {
                m->fired = true;
                size_t left = 0;
                m->rc = presence_disconnect(r, "c1", &left);
                m->rc2 = (int)left;
            }
            break;
        case MEDDLE_NS_OFF:
            if (e->kind == PRESENCE_EVENT_JOIN) {
                m->fired = true;
                presence_namespace_options o;
                presence_namespace_options_init(&o);
                o.presence = false;
                m->rc = presence_namespace_set(r, "xx", &o);
                m->rc2 = join_simple(r, "xx:2", "c9", "u9");
            }
            break;
        case MEDDLE_CLOSE_IN_JOIN:
            if (e->kind == PRESENCE_EVENT_JOIN &&
                strcmp(e->client_id, "c3") == 0) {
                m->fired = true;
                size_t removed = 0;
                m->rc = presence_channel_close(r, "room", &removed);
                m->rc2 = (int)removed;
            }
            break;
        default:
            break;
        }
    }
    recorder_leave(m->rec);
}

static void meddle_setup(fixture *f, meddler *m, int mode)
{
    fixture_config(f);
    fixture_open(f);
    assert_ok(presence_unsubscribe(f->reg, f->sub));
    memset(m, 0, sizeof(*m));
    m->rec = &f->rec;
    m->mode = mode;
    presence_subscription s;
    assert_ok(presence_subscribe(f->reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, meddle_cb, m, &s));
}

/* Each client leaves exactly once */
static void assert_left_once(const recorder *rec, const char *channel,
                             const char *client)
{
    size_t n = 0;
    for (size_t i = 0; i < rec->count; i++) {
        const rec_event *e = &rec->events[i];
        if (e->kind == PRESENCE_EVENT_LEAVE &&
            strcmp(e->channel, channel) == 0 &&
            strcmp(e->client_id, client) == 0) {
            n++;
        }
    }
    assert_int_equal(n, 1);
}

static void test_leave_during_close(void **state)
{
    (void)state;
    fixture f;
    meddler m;
    meddle_setup(&f, &m, MEDDLE_CLOSE_LEAVE);
    assert_ok(join_simple(f.reg, "room", "c1", "u1"));
    assert_ok(join_simple(f.reg, "room", "c2", "u2"));
    assert_ok(join_simple(f.reg, "room", "c3", "u3"));
    assert_ok(join_simple(f.reg, "other", "c3", "u3"));
    recorder_clear(&f.rec);
    size_t removed = 0;
    assert_ok(presence_channel_close(f.reg, "room", &removed));
    assert_true(m.fired);
    /* c3 was either removed by the close already, or left by hand. */
    if (m.rc == PRESENCE_OK) {
        assert_int_equal(removed, 2);
    } else {
        assert_rc(m.rc, PRESENCE_ERR_NOT_FOUND);
        assert_int_equal(removed, 3);
    }
    assert_left_once(&f.rec, "room", "c1");
    assert_left_once(&f.rec, "room", "c2");
    assert_left_once(&f.rec, "room", "c3");
    /* The newcomer joined after the close took everyone out: it stays. */
    assert_ok(m.rc2);
    assert_stats(f.reg, "room", 1, 1);
    assert_counts(f.reg, 2, 2, 2, 2);
    const rec_event *j =
        recorder_find(&f.rec, 0, PRESENCE_EVENT_JOIN, "room", "newcomer");
    assert_non_null(j);
    if (m.rc != PRESENCE_OK) {
        assert_int_equal(j->seq, 1); /* a new life of the channel */
    }
    assert_int_equal(f.rec.max_depth, 1);
    fixture_close(&f);
}

static void test_disconnect_during_disconnect(void **state)
{
    (void)state;
    fixture f;
    meddler m;
    meddle_setup(&f, &m, MEDDLE_DISCONNECT_AGAIN);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "b", "c1", "u1"));
    assert_ok(join_simple(f.reg, "c", "c1", "u1"));
    recorder_clear(&f.rec);
    size_t left = 0;
    assert_ok(presence_disconnect(f.reg, "c1", &left));
    assert_true(m.fired);
    /* Whatever the first call left, the second one took the rest. */
    if (m.rc == PRESENCE_OK) {
        assert_int_equal(left + (size_t)m.rc2, 3);
    } else {
        assert_rc(m.rc, PRESENCE_ERR_NOT_FOUND);
        assert_int_equal(left, 3);
    }
    assert_left_once(&f.rec, "a", "c1");
    assert_left_once(&f.rec, "b", "c1");
    assert_left_once(&f.rec, "c", "c1");
    assert_int_equal(f.rec.count, 6);
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

static void test_presence_off_from_callback(void **state)
{
    (void)state;
    fixture f;
    meddler m;
    meddle_setup(&f, &m, MEDDLE_NS_OFF);
    ns_set(f.reg, "xx", true, true, 0, 0);
    assert_ok(join_info(f.reg, "xx:1", "c1", "u1", NULL, "info"));
    assert_true(m.fired);
    assert_ok(m.rc);
    assert_rc(m.rc2, PRESENCE_ERR_NOT_AVAILABLE);
    assert_int_equal(f.rec.count, 4);
    const rec_event *e = find_seq(&f.rec, "xx:1", 2, PRESENCE_EVENT_LEAVE);
    assert_non_null(e);
    assert_int_equal(e->reason, PRESENCE_LEAVE_CLOSED);
    assert_bytes(e->chan_info, e->chan_info_len, "info");
    e = find_seq(&f.rec, "xx:1", 2, PRESENCE_EVENT_USER_LEAVE);
    assert_non_null(e);
    assert_int_equal(e->reason, PRESENCE_LEAVE_CLOSED);
    assert_counts(f.reg, 0, 0, 0, 0);
    /* And back on. */
    ns_set(f.reg, "xx", true, true, 0, 0);
    assert_ok(join_simple(f.reg, "xx:1", "c1", "u1"));
    assert_int_equal(seq_of(f.reg, "xx:1"), 1);
    fixture_close(&f);
}

static void test_close_from_join_callback(void **state)
{
    (void)state;
    fixture f;
    meddler m;
    meddle_setup(&f, &m, MEDDLE_CLOSE_IN_JOIN);
    assert_ok(join_simple(f.reg, "room", "c1", "u1"));
    assert_ok(join_simple(f.reg, "room", "c2", "u1"));
    assert_ok(join_simple(f.reg, "room", "c3", "u2"));
    assert_true(m.fired);
    assert_ok(m.rc);
    assert_int_equal(m.rc2, 3);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_CLOSED),
                     3);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_USER_LEAVE,
                                           PRESENCE_LEAVE_CLOSED),
                     2);
    /* The USER_JOIN of c3's change came before the close's events. */
    const rec_event *uj = recorder_find(&f.rec, 0, PRESENCE_EVENT_USER_JOIN,
                                        "room", "c3");
    const rec_event *first_leave =
        recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "room", NULL);
    assert_non_null(uj);
    assert_non_null(first_leave);
    assert_true(uj < first_leave);
    assert_int_equal(f.rec.max_depth, 1);
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* A big close delivers events between batches; joins made by a callback
 * meanwhile may survive the close, but every member of the start must
 * leave, exactly once. */
typedef struct joiner {
    recorder *rec;
    int joined;
    int failures;
} joiner;

static void join_during_close_cb(presence_registry *r,
                                 const presence_event *e, void *ud)
{
    joiner *j = ud;
    recorder_enter(j->rec);
    recorder_add(j->rec, r, e);
    if (e->kind == PRESENCE_EVENT_LEAVE && e->reason == PRESENCE_LEAVE_CLOSED &&
        j->joined < 300) {
        char cl[32];
        for (int i = 0; i < 30; i++) {
            snprintf(cl, sizeof(cl), "new%d", j->joined++);
            if (join_simple(r, "big", cl, cl) != PRESENCE_OK) {
                j->failures++;
            }
        }
    }
    recorder_leave(j->rec);
}

static void test_joins_during_big_close(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(presence_unsubscribe(f.reg, f.sub));
    joiner j = {&f.rec, 0, 0};
    enum { ORIGINALS = 2000 };
    char cl[32];
    for (int i = 0; i < ORIGINALS; i++) {
        snprintf(cl, sizeof(cl), "orig%d", i);
        assert_ok(join_simple(f.reg, "big", cl, "u"));
    }
    presence_subscription s;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, join_during_close_cb,
                                 &j, &s));
    size_t removed = 0;
    assert_ok(presence_channel_close(f.reg, "big", &removed));
    assert_int_equal(j.failures, 0);
    assert_true(j.joined > 0);

    /* Every original member left exactly once, with CLOSED. */
    unsigned char *left = calloc(ORIGINALS, 1);
    assert_non_null(left);
    size_t new_left = 0;
    for (size_t i = 0; i < f.rec.count; i++) {
        const rec_event *e = &f.rec.events[i];
        if (e->kind != PRESENCE_EVENT_LEAVE) {
            continue;
        }
        assert_int_equal(e->reason, PRESENCE_LEAVE_CLOSED);
        if (strncmp(e->client_id, "orig", 4) == 0) {
            int k = atoi(e->client_id + 4);
            assert_int_equal(left[k], 0);
            left[k] = 1;
        } else {
            new_left++;
        }
    }
    size_t originals_left = 0;
    for (int i = 0; i < ORIGINALS; i++) {
        originals_left += left[i];
    }
    free(left);
    presence_channel_stats st = stats_of(f.reg, "big");
    if (originals_left != ORIGINALS) {
        print_error("close removed %zu members: %zu of the %d original ones "
                    "and %zu newcomers; %zu members remain\n",
                    removed, originals_left, ORIGINALS, new_left,
                    st.num_clients);
    }
    /* Free first, so that a failure below leaks nothing. */
    fixture_close(&f);
    assert_int_equal(originals_left, ORIGINALS);
    assert_int_equal(removed, ORIGINALS + new_left);
    /* Newcomers that were not removed are still there. */
    assert_int_equal(st.num_clients, (size_t)j.joined - new_left);
}

/* A callback that makes a burst of joins the first time it is called:
 * its thread is the dispatcher, so they all queue before delivery. */
typedef struct burst {
    int size;
    int calls;
} burst;

static void burst_cb(presence_registry *reg, const presence_event *ev,
                     void *user_data)
{
    burst *b = user_data;
    (void)ev;
    if (b->calls++ > 0) {
        return;
    }
    char cl[32];
    for (int i = 0; i < b->size; i++) {
        snprintf(cl, sizeof(cl), "b%d", i);
        assert_ok(join_simple(reg, "burst", cl, "u"));
    }
}

/* A burst of events grows the queue; once deliveries are small again the
 * queue gives most of that memory back. */
static void test_queue_shrinks_after_burst(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(presence_unsubscribe(f.reg, f.sub));
    enum { BURST = 20000 };
    burst b = {BURST, 0};
    presence_subscription s;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENT_JOIN, burst_cb, &b, &s));
    assert_ok(join_simple(f.reg, "start", "c0", "u"));
    assert_int_equal(b.calls, 1 + BURST);
    long long after_burst = atomic_load(&f.alloc.live_bytes);
    /* Single events: each delivery halves a ring used at most a quarter. */
    for (int i = 0; i < 8; i++) {
        assert_ok(join_simple(f.reg, "start", "c1", "u"));
        assert_ok(presence_leave(f.reg, "start", "c1"));
    }
    long long after_quiet = atomic_load(&f.alloc.live_bytes);
    /* The ring held more than BURST events of tens of bytes each; what is
     * kept is a small fixed room. */
    assert_true(after_burst - after_quiet > (long long)BURST * 16);
    assert_int_equal(b.calls, 1 + BURST + 8);
    assert_stats(f.reg, "burst", BURST, 1);
    assert_ok(presence_unsubscribe(f.reg, s));
    fixture_close(&f);
}

/* Turning the default namespace's presence off closes its channels. */
static void test_default_namespace_off(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "keep", true, true, 0, 0);
    assert_ok(join_simple(f.reg, "plain", "c1", "u1"));
    assert_ok(join_simple(f.reg, ":also", "c1", "u1"));
    assert_ok(join_simple(f.reg, "keep:x", "c1", "u1"));
    recorder_clear(&f.rec);
    ns_set(f.reg, "", false, true, 0, 0);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_CLOSED),
                     2);
    assert_int_equal(f.rec.count, 4);
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_rc(join_simple(f.reg, "plain", "c1", "u1"),
              PRESENCE_ERR_NOT_AVAILABLE);
    fixture_close(&f);
}

/* Big infos travel whole in events. */
static void test_big_infos_in_events(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    unsigned char *big = malloc(65536);
    assert_non_null(big);
    for (size_t i = 0; i < 65536; i++) {
        big[i] = (unsigned char)(i * 7);
    }
    assert_ok(presence_join(f.reg, "a", "c1", "u1", big, 65536, big, 65536));
    assert_ok(presence_leave(f.reg, "a", "c1"));
    for (size_t i = 0; i < f.rec.count; i++) {
        assert_int_equal(f.rec.events[i].conn_info_len, 65536);
        assert_memory_equal(f.rec.events[i].conn_info, big, 65536);
        assert_int_equal(f.rec.events[i].chan_info_len, 65536);
        assert_memory_equal(f.rec.events[i].chan_info, big, 65536);
    }
    assert_int_equal(f.rec.count, 4);
    free(big);
    fixture_close(&f);
}

/* Unsubscribing from inside a callback. */
typedef struct unsub {
    presence_subscription self;
    presence_subscription other;
    int calls;
    int rc;
    bool remove_self;
    bool remove_other;
} unsub;

static void unsub_cb(presence_registry *r, const presence_event *e, void *ud)
{
    (void)e;
    unsub *u = ud;
    u->calls++;
    if (u->remove_self) {
        u->remove_self = false;
        u->rc = presence_unsubscribe(r, u->self);
    }
    if (u->remove_other) {
        u->remove_other = false;
        u->rc = presence_unsubscribe(r, u->other);
    }
}

static void test_unsubscribe_self_in_callback(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    unsub u;
    memset(&u, 0, sizeof(u));
    u.remove_self = true;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, unsub_cb, &u, &u.self));
    /* JOIN and USER_JOIN: only the first reaches the callback. */
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_int_equal(u.calls, 1);
    assert_ok(u.rc);
    assert_ok(join_simple(f.reg, "a", "c2", "u2"));
    assert_int_equal(u.calls, 1);
    assert_rc(presence_unsubscribe(f.reg, u.self), PRESENCE_ERR_NOT_FOUND);
    assert_int_equal(f.rec.count, 4);
    fixture_close(&f);
}

static void test_unsubscribe_other_in_callback(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    /* first removes second before second has seen the event */
    unsub first, second;
    memset(&first, 0, sizeof(first));
    memset(&second, 0, sizeof(second));
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, unsub_cb, &first,
                                 &first.self));
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, unsub_cb, &second,
                                 &second.self));
    first.other = second.self;
    first.remove_other = true;
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(first.rc);
    assert_int_equal(first.calls, 2);
    assert_int_equal(second.calls, 0);
    assert_ok(join_simple(f.reg, "a", "c2", "u2"));
    assert_int_equal(first.calls, 4);
    assert_int_equal(second.calls, 0);

    /* later removes earlier: earlier has had this event, gets no more */
    unsub late;
    memset(&late, 0, sizeof(late));
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, unsub_cb, &late,
                                 &late.self));
    late.other = first.self;
    late.remove_other = true;
    assert_ok(join_simple(f.reg, "a", "c3", "u3")); /* JOIN + USER_JOIN */
    assert_ok(late.rc);
    assert_int_equal(first.calls, 5);
    assert_int_equal(late.calls, 2);
    assert_ok(presence_leave(f.reg, "a", "c3"));
    assert_int_equal(first.calls, 5);
    assert_int_equal(late.calls, 4);
    fixture_close(&f);
}

typedef struct freer {
    int rc;
    int calls;
} freer;

static void free_cb(presence_registry *r, const presence_event *e, void *ud)
{
    (void)e;
    freer *fr = ud;
    fr->calls++;
    fr->rc = presence_registry_free(r);
}

static void test_free_inside_callback_busy(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    freer fr = {PRESENCE_OK, 0};
    presence_subscription s;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENT_JOIN, free_cb, &fr, &s));
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_int_equal(fr.calls, 1);
    assert_rc(fr.rc, PRESENCE_ERR_BUSY);
    /* The registry is intact. */
    assert_ok(join_simple(f.reg, "a", "c2", "u2"));
    assert_int_equal(fr.calls, 2);
    assert_rc(fr.rc, PRESENCE_ERR_BUSY);
    assert_stats(f.reg, "a", 2, 2);
    assert_int_equal(f.rec.count, 4);
    fixture_close(&f); /* frees outside a callback: OK, nothing leaked */
}

static void dummy_cb(presence_registry *r, const presence_event *e, void *ud)
{
    (void)r;
    (void)e;
    int *calls = ud;
    (*calls)++;
}

static void test_subscribe_errors(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    int calls = 0;
    presence_subscription s = 0;
    const unsigned all = PRESENCE_EVENTS_ALL;
    char *longname = repeat_char('x', 256);

    assert_rc(presence_subscribe(NULL, PRESENCE_SCOPE_ALL, NULL, all,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL, all, NULL,
                                 &calls, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL, all,
                                 dummy_cb, &calls, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, (presence_scope)3, "x", all,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, (presence_scope)-1, NULL, all,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL, 0, dummy_cb,
                                 &calls, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL, 0x80,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_INVALID);
    /* User kinds are registry-wide: not for a namespace or a channel. */
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, "a",
                                 PRESENCE_EVENT_USER_ONLINE, dummy_cb, &calls,
                                 &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_NAMESPACE, "",
                                 all | PRESENCE_EVENT_USER_OFFLINE, dummy_cb,
                                 &calls, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL, all | 0x200,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_INVALID);
    /* The flag is no kind. */
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_EVERY_NAMESPACE, dummy_cb,
                                 &calls, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, "x", all,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_NAMESPACE, NULL, all,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, NULL, all,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, "", all,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, "a\nb", all,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, longname, all,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_NAMESPACE, "a\x01",
                                 all, dummy_cb, &calls, &s),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_NAMESPACE, "a b", all,
                                 dummy_cb, &calls, &s),
              PRESENCE_ERR_BAD_NAME);
    /* None of them subscribed anything. */
    assert_ok(join_simple(f.reg, "x", "c1", "u1"));
    assert_int_equal(calls, 0);
    free(longname);

    /* Handles are never 0 and never reused. */
    presence_subscription seen[20];
    for (int i = 0; i < 20; i++) {
        assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL, all,
                                     dummy_cb, &calls, &seen[i]));
        assert_true(seen[i] != 0);
        assert_true(seen[i] != f.sub);
        for (int j = 0; j < i; j++) {
            assert_true(seen[i] != seen[j]);
        }
        if (i % 2 == 0) {
            assert_ok(presence_unsubscribe(f.reg, seen[i]));
        }
    }
    calls = 0;
    assert_ok(join_simple(f.reg, "y", "c1", "u1"));
    /* Ten live subscriptions, JOIN + USER_JOIN each. */
    assert_int_equal(calls, 10 * 2);
    fixture_close(&f);
}

static void test_unsubscribe_errors(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    int calls = 0;
    presence_subscription s;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, dummy_cb, &calls, &s));
    assert_rc(presence_unsubscribe(NULL, s), PRESENCE_ERR_INVALID);
    assert_rc(presence_unsubscribe(f.reg, s + 1000), PRESENCE_ERR_NOT_FOUND);
    int rc0 = presence_unsubscribe(f.reg, 0);
    assert_true(rc0 == PRESENCE_ERR_NOT_FOUND || rc0 == PRESENCE_ERR_INVALID);
    assert_ok(presence_unsubscribe(f.reg, s));
    assert_rc(presence_unsubscribe(f.reg, s), PRESENCE_ERR_NOT_FOUND);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_int_equal(calls, 0);
    /* A handle from another registry is unknown here, or names another
     * subscription: either way this one's callbacks are untouched. */
    assert_int_equal(f.rec.count, 2);
    fixture_close(&f);
}

/* Exactly once: a deterministic random walk of joins, leaves, updates and
 * disconnects, checked against a model. */
#define EX_CHANNELS 5
#define EX_CLIENTS 24
#define EX_USERS 7

typedef struct model {
    bool in[EX_CHANNELS][EX_CLIENTS];
    int info[EX_CHANNELS][EX_CLIENTS];
    size_t joins, leaves, updates, user_joins, user_leaves;
} model;

static int user_of(int client)
{
    return client % EX_USERS;
}

static int user_conns(const model *m, int ch, int user)
{
    int n = 0;
    for (int c = 0; c < EX_CLIENTS; c++) {
        if (m->in[ch][c] && user_of(c) == user) {
            n++;
        }
    }
    return n;
}

static bool client_anywhere(const model *m, int c)
{
    for (int ch = 0; ch < EX_CHANNELS; ch++) {
        if (m->in[ch][c]) {
            return true;
        }
    }
    return false;
}

static void model_join(model *m, int ch, int c, int info)
{
    if (m->in[ch][c]) {
        if (m->info[ch][c] != info) {
            m->updates++;
            m->info[ch][c] = info;
        }
        return;
    }
    if (user_conns(m, ch, user_of(c)) == 0) {
        m->user_joins++;
    }
    m->in[ch][c] = true;
    m->info[ch][c] = info;
    m->joins++;
}

static void model_leave(model *m, int ch, int c)
{
    m->in[ch][c] = false;
    m->leaves++;
    if (user_conns(m, ch, user_of(c)) == 0) {
        m->user_leaves++;
    }
}

static void test_exactly_once_random_walk(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    model m;
    memset(&m, 0, sizeof(m));
    uint32_t rnd = 12345;
    char ch[16], cl[16], us[16], info[16];
    for (int step = 0; step < 5000; step++) {
        rnd = rnd * 1103515245u + 12345u;
        uint32_t x = rnd >> 8;
        int op = (int)(x % 10);
        int chan = (int)((x / 10) % EX_CHANNELS);
        int c = (int)((x / 50) % EX_CLIENTS);
        int inf = (int)((x / 1200) % 3);
        snprintf(ch, sizeof(ch), "ch%d", chan);
        snprintf(cl, sizeof(cl), "c%d", c);
        snprintf(us, sizeof(us), "u%d", user_of(c));
        snprintf(info, sizeof(info), "i%d", inf);
        if (op < 5) {
            assert_ok(join_info(f.reg, ch, cl, us, "conn", info));
            model_join(&m, chan, c, inf);
        } else if (op < 8) {
            int rc = presence_leave(f.reg, ch, cl);
            if (m.in[chan][c]) {
                assert_ok(rc);
                model_leave(&m, chan, c);
            } else {
                assert_rc(rc, PRESENCE_ERR_NOT_FOUND);
            }
        } else if (op == 8) {
            int rc = presence_update(f.reg, ch, cl, info, strlen(info));
            if (m.in[chan][c]) {
                assert_ok(rc);
                if (m.info[chan][c] != inf) {
                    m.updates++;
                    m.info[chan][c] = inf;
                }
            } else {
                assert_rc(rc, PRESENCE_ERR_NOT_FOUND);
            }
        } else {
            size_t left = 0;
            int rc = presence_disconnect(f.reg, cl, &left);
            if (client_anywhere(&m, c)) {
                assert_ok(rc);
                size_t want = 0;
                for (int k = 0; k < EX_CHANNELS; k++) {
                    if (m.in[k][c]) {
                        model_leave(&m, k, c);
                        want++;
                    }
                }
                assert_int_equal(left, want);
            } else {
                assert_ok(rc); /* in no channel: nothing to leave */
                assert_int_equal(left, 0);
            }
        }
    }
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), m.joins);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), m.leaves);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_UPDATE),
                     m.updates);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_JOIN),
                     m.user_joins);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_LEAVE),
                     m.user_leaves);

    /* Per channel: client events numbered 1, 2, 3... restarting at 1
     * after the channel emptied; user events share a client event's
     * number; stats match the model's running count. */
    for (int k = 0; k < EX_CHANNELS; k++) {
        snprintf(ch, sizeof(ch), "ch%d", k);
        uint64_t last = 0;
        size_t members = 0;
        for (size_t i = 0; i < f.rec.count; i++) {
            const rec_event *e = &f.rec.events[i];
            if (strcmp(e->channel, ch) != 0) {
                continue;
            }
            if (e->kind & (PRESENCE_EVENT_USER_JOIN |
                           PRESENCE_EVENT_USER_LEAVE)) {
                continue;
            }
            if (members == 0) {
                assert_int_equal(e->kind, PRESENCE_EVENT_JOIN);
                assert_int_equal(e->seq, 1);
            } else {
                assert_int_equal(e->seq, last + 1);
            }
            last = e->seq;
            if (e->kind == PRESENCE_EVENT_JOIN) {
                members++;
            } else if (e->kind == PRESENCE_EVENT_LEAVE) {
                members--;
            }
            assert_int_equal(e->stats.num_clients, members);
        }
        size_t now = 0, users = 0;
        for (int c = 0; c < EX_CLIENTS; c++) {
            now += m.in[k][c];
        }
        for (int u = 0; u < EX_USERS; u++) {
            users += user_conns(&m, k, u) > 0;
        }
        assert_int_equal(members, now);
        assert_stats(f.reg, ch, now, users);
    }
    for (size_t i = 0; i < f.rec.count; i++) {
        const rec_event *e = &f.rec.events[i];
        if (e->kind & (PRESENCE_EVENT_USER_JOIN | PRESENCE_EVENT_USER_LEAVE)) {
            unsigned client_kind = e->kind == PRESENCE_EVENT_USER_JOIN
                                       ? PRESENCE_EVENT_JOIN
                                       : PRESENCE_EVENT_LEAVE;
            /* its change's client event is adjacent, same client, same
             * seq */
            bool ok = false;
            for (size_t d = 0; d < 2 && !ok; d++) {
                size_t j = d == 0 ? i - 1 : i + 1;
                if ((d == 0 && i == 0) || j >= f.rec.count) {
                    continue;
                }
                const rec_event *o = &f.rec.events[j];
                ok = o->kind == client_kind && o->seq == e->seq &&
                     strcmp(o->channel, e->channel) == 0 &&
                     strcmp(o->client_id, e->client_id) == 0;
            }
            assert_true(ok);
        }
    }
    fixture_close(&f);
}

/* Kinds and reasons have stable lower-case names, one per value of their
 * lists; anything else is "unknown". */
typedef struct name_row {
    int value;
    const char *name;
} name_row;

static const name_row kind_rows[] = {
#define ROW_(name, value, text) {(value), (text)},
    PRESENCE_EVENT_KIND_LIST(ROW_)
#undef ROW_
};

static const name_row reason_rows[] = {
#define ROW_(name, value, text) {(value), (text)},
    PRESENCE_LEAVE_REASON_LIST(ROW_)
#undef ROW_
};

static void assert_names_distinct(const name_row *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (const char *c = rows[i].name; *c != '\0'; c++) {
            assert_true((*c >= 'a' && *c <= 'z') || *c == '_');
        }
        assert_string_not_equal(rows[i].name, "unknown");
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(rows[i].value, rows[j].value);
            assert_string_not_equal(rows[i].name, rows[j].name);
        }
    }
}

static void test_kind_names(void **state)
{
    (void)state;
    size_t n = sizeof(kind_rows) / sizeof(kind_rows[0]);
    assert_int_equal(n, 7);
    assert_names_distinct(kind_rows, n);
    unsigned all = 0;
    for (size_t i = 0; i < n; i++) {
        presence_event_kind kind = (presence_event_kind)kind_rows[i].value;
        assert_string_equal(presence_event_kind_name(kind), kind_rows[i].name);
        assert_int_equal(kind & (kind - 1), 0); /* one bit each */
        all |= (unsigned)kind;
    }
    assert_int_equal(all, PRESENCE_EVENTS_ALL | PRESENCE_EVENTS_USERS);
    assert_string_equal(presence_event_kind_name(PRESENCE_EVENT_JOIN), "join");
    assert_string_equal(presence_event_kind_name(PRESENCE_EVENT_LEAVE),
                        "leave");
    assert_string_equal(presence_event_kind_name(PRESENCE_EVENT_UPDATE),
                        "update");
    assert_string_equal(presence_event_kind_name(PRESENCE_EVENT_USER_JOIN),
                        "user_join");
    assert_string_equal(presence_event_kind_name(PRESENCE_EVENT_USER_LEAVE),
                        "user_leave");
    assert_string_equal(presence_event_kind_name(PRESENCE_EVENT_USER_ONLINE),
                        "user_online");
    assert_string_equal(presence_event_kind_name(PRESENCE_EVENT_USER_OFFLINE),
                        "user_offline");
    const unsigned unknown[] = {0, 1u << 7, PRESENCE_EVENTS_ALL,
                                PRESENCE_EVENTS_USERS,
                                PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE,
                                PRESENCE_EVENTS_EVERY_NAMESPACE, 0x7fffffffu};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(
            presence_event_kind_name((presence_event_kind)unknown[i]),
            "unknown");
    }
}

static void test_reason_names(void **state)
{
    (void)state;
    size_t n = sizeof(reason_rows) / sizeof(reason_rows[0]);
    assert_int_equal(n, 7);
    assert_names_distinct(reason_rows, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(reason_rows[i].value, (int)i); /* dense from 0 */
        assert_string_equal(
            presence_leave_reason_name((presence_leave_reason)i),
            reason_rows[i].name);
    }
    assert_string_equal(presence_leave_reason_name(PRESENCE_LEAVE_NONE),
                        "none");
    assert_string_equal(presence_leave_reason_name(PRESENCE_LEAVE_EXPIRED),
                        "expired");
    assert_string_equal(presence_leave_reason_name(PRESENCE_LEAVE_NODE_DOWN),
                        "node_down");
    const int unknown[] = {-1, 7, 100, 0x7fffffff};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(
            presence_leave_reason_name((presence_leave_reason)unknown[i]),
            "unknown");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_event_fields),
        cmocka_unit_test(test_leave_events_two_connections),
        cmocka_unit_test(test_update_event),
        cmocka_unit_test(test_leave_reasons),
        cmocka_unit_test(test_sequence_numbers),
        cmocka_unit_test(test_snapshot_seq_matches_events),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_kind_masks),
        cmocka_unit_test(test_subscription_order),
        cmocka_unit_test(test_join_leave_off),
        cmocka_unit_test(test_disconnect_mixed_join_leave),
        cmocka_unit_test(test_subscribe_inside_callback),
        cmocka_unit_test(test_reentrant_join_in_leave),
        cmocka_unit_test(test_reentrant_chain),
        cmocka_unit_test(test_reentrant_chain_single_threaded),
        cmocka_unit_test(test_leave_during_close),
        cmocka_unit_test(test_disconnect_during_disconnect),
        cmocka_unit_test(test_presence_off_from_callback),
        cmocka_unit_test(test_close_from_join_callback),
        cmocka_unit_test(test_joins_during_big_close),
        cmocka_unit_test(test_queue_shrinks_after_burst),
        cmocka_unit_test(test_default_namespace_off),
        cmocka_unit_test(test_big_infos_in_events),
        cmocka_unit_test(test_unsubscribe_self_in_callback),
        cmocka_unit_test(test_unsubscribe_other_in_callback),
        cmocka_unit_test(test_free_inside_callback_busy),
        cmocka_unit_test(test_subscribe_errors),
        cmocka_unit_test(test_unsubscribe_errors),
        cmocka_unit_test(test_exactly_once_random_walk),
        cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_reason_names),
    };
    return cmocka_run_group_tests_name("events", tests, NULL, NULL);
}
