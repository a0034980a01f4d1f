/*
 * Leave grace on a fake clock: drops by disconnect, handle close, expiry
 * and (when configured) explicit leave; coming back by the same client,
 * a new handle with its id, or another connection of the same user; the
 * leave at the end with its reason and time; stats, queries, visits,
 * versions and users' online state meanwhile; namespace changes; every
 * allocation failure on the way (a failed call changes nothing); and
 * threads reconnecting at once while another saves the registry.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GRACE 5000

static const char *const NAMESPACES[] = {"", "gr", "su", "lv", "tt", NULL};

/* Namespaces: gr (grace), su (grace, same user may take the place), lv
 * (grace on explicit leave too), tt (TTL 100 and grace); the default one
 * has none. */
static void grace_namespaces(presence_registry *reg)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.leave_grace_ms = GRACE;
    assert_ok(presence_namespace_set(reg, "gr", &o));
    o.grace_same_user = true;
    assert_ok(presence_namespace_set(reg, "su", &o));
    o.grace_same_user = false;
    o.grace_on_leave = true;
    assert_ok(presence_namespace_set(reg, "lv", &o));
    o.grace_on_leave = false;
    o.ttl_ms = 100;
    assert_ok(presence_namespace_set(reg, "tt", &o));
}

static void open_grace(fixture *f)
{
    fixture_config(f);
    fixture_open(f);
    grace_namespaces(f->reg);
}

static const presence_member *member_of(const presence_snapshot *snap,
                                        const char *client_id)
{
    for (size_t i = 0; i < snap->count; i++) {
        if (strcmp(snap->members[i].client_id, client_id) == 0) {
            return &snap->members[i];
        }
    }
    return NULL;
}

/* Whether client_id is in channel, and in grace. */
static bool in_grace(fixture *f, const char *channel, const char *client_id)
{
    presence_snapshot *snap;
    assert_ok(presence_query(f->reg, channel, presence_trusted(), &snap));
    const presence_member *m = member_of(snap, client_id);
    assert_non_null(m);
    bool graced = m->in_grace;
    presence_snapshot_free(snap);
    return graced;
}

static size_t expire_at(fixture *f, int64_t now)
{
    size_t n = 9999;
    int64_t next = 0;
    assert_ok(presence_expire(f->reg, now, &n, &next));
    assert_int_equal(next, presence_next_deadline_ms(f->reg));
    return n;
}

/* ---- a disconnect ------------------------------------------------------- */

/* A disconnect puts the member in grace: nothing announced, nothing
 * counted differently, the version unchanged; the deadline is the drop +
 * the grace, and at it the member leaves with reason disconnect, dated at
 * the drop. */
static void test_disconnect_then_grace_ends(void **state)
{
    (void)state;
    fixture f;
    open_grace(&f);
    assert_ok(join_info(f.reg, "gr:a", "c1", "u1", "conn", "ci"));
    presence_channel_stats before = stats_of(f.reg, "gr:a");
    recorder_clear(&f.rec);
    fake_clock_set(&f.clock, 2000);
    size_t left = 0;
    assert_ok(presence_disconnect(f.reg, "c1", &left));
    assert_int_equal(left, 1);
    assert_int_equal(f.rec.count, 0);
    presence_channel_stats during = stats_of(f.reg, "gr:a");
    assert_int_equal(during.num_clients, 1);
    assert_int_equal(during.num_users, 1);
    assert_int_equal(during.seq, before.seq);
    assert_int_equal(during.epoch, before.epoch);
    assert_counts(f.reg, 1, 1, 1, 1);
    size_t conns = 0;
    assert_ok(presence_user_present(f.reg, "gr:a", "u1", &conns));
    assert_int_equal(conns, 1);

    presence_snapshot *snap;
    assert_ok(presence_query(f.reg, "gr:a", presence_trusted(), &snap));
    assert_int_equal(snap->count, 1);
    assert_true(snap->members[0].in_grace);
    assert_int_equal(snap->members[0].joined_at_ms, 1000);
    assert_int_equal(snap->members[0].touched_at_ms, 2000); /* the drop */
    assert_int_equal(snap->members[0].chan_info_len, 2);
    presence_snapshot_free(snap);
    assert_ok(presence_client_channels(f.reg, "c1", &snap));
    assert_int_equal(snap->count, 1);
    assert_true(snap->members[0].in_grace);
    presence_snapshot_free(snap);

    assert_int_equal(presence_next_deadline_ms(f.reg), 2000 + GRACE);
    /* A second disconnect changes nothing: the drop keeps its time. */
    fake_clock_set(&f.clock, 3000);
    assert_ok(presence_disconnect(f.reg, "c1", &left));
    assert_int_equal(left, 0);
    assert_int_equal(presence_next_deadline_ms(f.reg), 2000 + GRACE);

    fake_clock_set(&f.clock, 2000 + GRACE - 1);
    assert_int_equal(expire_at(&f, 2000 + GRACE - 1), 0);
    assert_int_equal(f.rec.count, 0);
    fake_clock_set(&f.clock, 9000);
    assert_int_equal(expire_at(&f, 9000), 1);
    assert_int_equal(f.rec.count, 2);
    const rec_event *e = &f.rec.events[0];
    assert_int_equal(e->kind, PRESENCE_EVENT_LEAVE);
    assert_int_equal(e->reason, PRESENCE_LEAVE_DISCONNECT);
    assert_int_equal(e->time_ms, 2000);
    assert_int_equal(e->seq, before.seq + 1);
    assert_int_equal(e->epoch, before.epoch);
    assert_int_equal(e->chan_info_len, 2);
    assert_int_equal(f.rec.events[1].kind, PRESENCE_EVENT_USER_LEAVE);
    assert_int_equal(f.rec.events[1].time_ms, 2000);
    assert_counts(f.reg, 0, 0, 0, 0);
    assert_int_equal(presence_next_deadline_ms(f.reg), PRESENCE_NO_DEADLINE);
    fixture_close(&f);
}

/* The same client joining in time resumes: no event, same version; with
 * another chan_info, one update. Namespaces without grace leave at once. */
static void test_rejoin_resumes(void **state)
{
    (void)state;
    fixture f;
    open_grace(&f);
    assert_ok(join_info(f.reg, "gr:a", "c1", "u1", "conn", "x"));
    assert_ok(join_info(f.reg, "gr:b", "c1", "u1", "conn", "x"));
    assert_ok(join_info(f.reg, "plain", "c1", "u1", "conn", NULL));
    uint64_t seq_a = stats_of(f.reg, "gr:a").seq;
    uint64_t seq_b = stats_of(f.reg, "gr:b").seq;
    recorder_clear(&f.rec);
    size_t left = 0;
    assert_ok(presence_disconnect(f.reg, "c1", &left));
    assert_int_equal(left, 3);
    /* Only the channel without grace announces the leave. */
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 1);
    assert_non_null(recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "plain",
                                  "c1"));
    recorder_clear(&f.rec);
    fake_clock_advance(&f.clock, 100);
    assert_ok(join_info(f.reg, "gr:a", "c1", "u1", "conn", "x"));
    assert_int_equal(f.rec.count, 0);
    assert_false(in_grace(&f, "gr:a", "c1"));
    assert_true(in_grace(&f, "gr:b", "c1"));
    assert_int_equal(stats_of(f.reg, "gr:a").seq, seq_a);
    assert_ok(join_info(f.reg, "gr:b", "c1", "u1", "conn", "y"));
    assert_int_equal(f.rec.count, 1);
    assert_int_equal(f.rec.events[0].kind, PRESENCE_EVENT_UPDATE);
    assert_int_equal(f.rec.events[0].seq, seq_b + 1);
    assert_false(in_grace(&f, "gr:b", "c1"));
    assert_int_equal(presence_next_deadline_ms(f.reg), PRESENCE_NO_DEADLINE);
    fake_clock_advance(&f.clock, 10 * GRACE);
    assert_int_equal(expire_at(&f, fake_clock_get(&f.clock)), 0);
    assert_stats(f.reg, "gr:a", 1, 1);
    /* A joined time is kept across the drop. */
    presence_snapshot *snap;
    assert_ok(presence_query(f.reg, "gr:a", presence_trusted(), &snap));
    assert_int_equal(snap->members[0].joined_at_ms, 1000);
    presence_snapshot_free(snap);
    fixture_close(&f);
}

/* A touch does not resume (only a join does), an update changes the
 * chan_info of a member in grace, and an explicit leave or a channel close
 * ends a grace at once, with its own reason and time. */
static void test_touch_update_leave_close_in_grace(void **state)
{
    (void)state;
    fixture f;
    open_grace(&f);
    assert_ok(join_simple(f.reg, "gr:a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "gr:a", "c2", "u2"));
    assert_ok(join_simple(f.reg, "gr:b", "c3", "u3"));
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_ok(presence_disconnect(f.reg, "c2", NULL));
    assert_ok(presence_disconnect(f.reg, "c3", NULL));
    recorder_clear(&f.rec);
    fake_clock_set(&f.clock, 1500);
    assert_ok(presence_touch(f.reg, "gr:a", "c1"));
    assert_ok(presence_touch_client(f.reg, "c1"));
    assert_true(in_grace(&f, "gr:a", "c1"));
    assert_int_equal(presence_next_deadline_ms(f.reg), 1000 + GRACE);
    assert_ok(presence_update(f.reg, "gr:a", "c1", "new", 3));
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_UPDATE), 1);
    assert_true(in_grace(&f, "gr:a", "c1"));
    recorder_clear(&f.rec);
    assert_ok(presence_leave(f.reg, "gr:a", "c1"));
    assert_int_equal(f.rec.count, 2); /* leave, user leave */
    assert_int_equal(f.rec.events[0].reason, PRESENCE_LEAVE_EXPLICIT);
    assert_int_equal(f.rec.events[0].time_ms, 1500);
    assert_rc(presence_leave(f.reg, "gr:a", "c1"), PRESENCE_ERR_NOT_FOUND);
    recorder_clear(&f.rec);
    size_t removed = 0;
    assert_ok(presence_channel_close(f.reg, "gr:a", &removed));
    assert_int_equal(removed, 1);
    assert_int_equal(f.rec.events[0].reason, PRESENCE_LEAVE_CLOSED);
    assert_int_equal(f.rec.events[0].time_ms, 1500);
    assert_counts(f.reg, 1, 1, 1, 1);
    /* Presence turned off closes members in grace too. */
    recorder_clear(&f.rec);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.presence = false;
    o.leave_grace_ms = GRACE;
    assert_ok(presence_namespace_set(f.reg, "gr", &o));
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_CLOSED),
                     1);
    assert_counts(f.reg, 0, 0, 0, 0);
    assert_int_equal(presence_next_deadline_ms(f.reg), PRESENCE_NO_DEADLINE);
    fixture_close(&f);
}

/* ---- handles ------------------------------------------------------------- */

struct app_log {
    void *apps[16];
    int reasons[16];
    size_t count;
};

static void app_cb(presence_registry *reg, const presence_event *e, void *ud)
{
    (void)reg;
    struct app_log *log = ud;
    if (log->count < 16) {
        log->apps[log->count] = e->client_app;
        log->reasons[log->count] = (int)e->reason;
        log->count++;
    }
}

/* A closed handle's memberships stay in grace with no application
 * pointer; a new handle with the same id and user takes them over (still
 * in grace, with its own pointer), its joins resume them, and those it
 * does not rejoin leave at the end, announced with the new handle. */
static void test_handle_reopened_with_same_id(void **state)
{
    (void)state;
    fixture f;
    open_grace(&f);
    struct app_log log = {0};
    presence_subscription sub;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENT_LEAVE, app_cb, &log, &sub));
    int first_app, second_app;
    presence_client *h1 = open_handle(f.reg, "c1", "u1", &first_app);
    assert_ok(presence_client_join(f.reg, h1, "gr:a", NULL, 0, NULL));
    assert_ok(presence_client_join(f.reg, h1, "gr:b", NULL, 0, NULL));
    assert_ok(presence_client_join(f.reg, h1, "plain", NULL, 0, NULL));
    recorder_clear(&f.rec);
    size_t left = 0;
    assert_ok(presence_client_close(f.reg, h1, &left));
    assert_int_equal(left, 3);
    /* The one leave (plain) still names the closed handle's object. */
    assert_int_equal(log.count, 1);
    assert_ptr_equal(log.apps[0], &first_app);
    assert_counts(f.reg, 2, 1, 1, 2);
    presence_snapshot *snap;
    assert_ok(presence_query(f.reg, "gr:a", presence_trusted(), &snap));
    assert_true(snap->members[0].in_grace);
    assert_null(snap->members[0].app);
    presence_snapshot_free(snap);

    /* Not the same user: refused, nothing changed. */
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = "c1";
    o.user_id = "u2";
    presence_client *h2 = NULL;
    assert_rc(presence_client_open(f.reg, &o, &h2), PRESENCE_ERR_CONFLICT);
    assert_null(h2);

    recorder_clear(&f.rec);
    h2 = open_handle(f.reg, "c1", "u1", &second_app);
    assert_int_equal(f.rec.count, 0);
    assert_counts(f.reg, 2, 1, 1, 2);
    assert_ok(presence_query(f.reg, "gr:b", presence_trusted(), &snap));
    assert_true(snap->members[0].in_grace);
    assert_ptr_equal(snap->members[0].app, &second_app);
    presence_snapshot_free(snap);
    /* Open already: a third handle conflicts. */
    o.user_id = "u1";
    presence_client *h3 = NULL;
    assert_rc(presence_client_open(f.reg, &o, &h3), PRESENCE_ERR_CONFLICT);

    presence_change ch;
    uint64_t seq = stats_of(f.reg, "gr:a").seq;
    assert_ok(presence_client_join(f.reg, h2, "gr:a", NULL, 0, &ch));
    assert_int_equal(ch.kind, PRESENCE_CHANGE_RESUMED);
    assert_int_equal(ch.stats.seq, seq);
    assert_int_equal(f.rec.count, 0);
    assert_false(in_grace(&f, "gr:a", "c1"));
    fake_clock_set(&f.clock, 1000 + GRACE);
    assert_int_equal(expire_at(&f, 1000 + GRACE), 1); /* g:b */
    assert_int_equal(log.count, 2);
    assert_ptr_equal(log.apps[1], &second_app);
    assert_int_equal(log.reasons[1], PRESENCE_LEAVE_DISCONNECT);
    assert_non_null(recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "gr:b",
                                  "c1"));
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_ok(presence_client_close(f.reg, h2, NULL));
    /* A close with nothing in grace forgets the client at once. */
    h3 = open_handle(f.reg, "c9", "u9", NULL);
    assert_ok(presence_client_close(f.reg, h3, NULL));
    assert_counts(f.reg, 1, 1, 1, 1);
    fake_clock_set(&f.clock, 100000);
    assert_int_equal(expire_at(&f, 100000), 1);
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* A handle's explicit leave is graced where the namespace says so (its
 * result reports LEFT with the channel as it still reads), and only
 * there; a handle's disconnect by name keeps the handle, whose join
 * resumes; join_many resumes too. */
static void test_handle_leave_and_join_many(void **state)
{
    (void)state;
    fixture f;
    open_grace(&f);
    presence_client *h = open_handle(f.reg, "c1", "u1", NULL);
    assert_ok(presence_client_join(f.reg, h, "lv:a", NULL, 0, NULL));
    assert_ok(presence_client_join(f.reg, h, "gr:a", NULL, 0, NULL));
    recorder_clear(&f.rec);
    presence_change ch;
    assert_ok(presence_client_leave(f.reg, h, "lv:a", &ch));
    assert_int_equal(ch.kind, PRESENCE_CHANGE_LEFT);
    assert_int_equal(ch.stats.num_clients, 1);
    assert_int_equal(f.rec.count, 0);
    assert_true(in_grace(&f, "lv:a", "c1"));
    assert_ok(presence_client_leave(f.reg, h, "gr:a", &ch));
    assert_int_equal(ch.stats.num_clients, 0);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 1);
    /* Name-based leave in l: graced too. */
    assert_ok(join_simple(f.reg, "lv:b", "c2", "u2"));
    recorder_clear(&f.rec);
    assert_ok(presence_leave(f.reg, "lv:b", "c2"));
    assert_int_equal(f.rec.count, 0);
    assert_true(in_grace(&f, "lv:b", "c2"));

    assert_ok(presence_client_join(f.reg, h, "gr:a", NULL, 0, NULL));
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    recorder_clear(&f.rec);
    presence_join_item items[2] = {{"gr:a", "i", 1}, {"lv:a", NULL, 0}};
    presence_change results[2];
    assert_ok(presence_client_join_many(f.reg, h, items, 2, results, NULL));
    assert_int_equal(results[0].kind, PRESENCE_CHANGE_RESUMED);
    assert_int_equal(results[1].kind, PRESENCE_CHANGE_RESUMED);
    assert_int_equal(f.rec.count, 1);
    assert_false(in_grace(&f, "gr:a", "c1"));
    assert_false(in_grace(&f, "lv:a", "c1"));
    /* Leave at the end of c2's grace, with reason explicit. */
    fake_clock_set(&f.clock, 1000 + GRACE);
    recorder_clear(&f.rec);
    assert_int_equal(expire_at(&f, 1000 + GRACE), 1);
    assert_int_equal(f.rec.events[0].reason, PRESENCE_LEAVE_EXPLICIT);
    assert_ok(presence_client_close(f.reg, h, NULL));
    fake_clock_set(&f.clock, 100000);
    expire_at(&f, 100000);
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* ---- another connection of the same user ----------------------------- */

/* With grace_same_user, a new client of the user joining the channel takes
 * the place of the one in grace: no join, no leave, seq + 1 (another
 * client id), the first join time kept; the user stays online
 * throughout. Without the option, an ordinary join, and the old member's
 * leave at the end of its grace. */
static void test_same_user_takes_the_place(void **state)
{
    (void)state;
    fixture f;
    open_grace(&f);
    recorder users;
    recorder_init(&users);
    presence_subscription sub;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_USERS, recorder_cb, &users,
                                 &sub));
    presence_client *h1 = open_handle(f.reg, "c1", "u1", NULL);
    assert_ok(presence_client_join(f.reg, h1, "su:a", "x", 1, NULL));
    assert_ok(presence_client_join(f.reg, h1, "gr:a", "x", 1, NULL));
    uint64_t seq = stats_of(f.reg, "su:a").seq;
    assert_ok(presence_client_close(f.reg, h1, NULL));
    recorder_clear(&f.rec);
    recorder_clear(&users);
    fake_clock_set(&f.clock, 1200);
    presence_client *h2 = open_handle(f.reg, "c2", "u1", NULL);
    presence_change ch;
    assert_ok(presence_client_join(f.reg, h2, "su:a", "x", 1, &ch));
    assert_int_equal(ch.kind, PRESENCE_CHANGE_RESUMED);
    assert_int_equal(ch.stats.seq, seq + 1);
    assert_int_equal(ch.stats.num_clients, 1);
    assert_int_equal(f.rec.count, 0);
    presence_snapshot *snap;
    assert_ok(presence_query(f.reg, "su:a", presence_trusted(), &snap));
    assert_int_equal(snap->count, 1);
    assert_string_equal(snap->members[0].client_id, "c2");
    assert_false(snap->members[0].in_grace);
    assert_int_equal(snap->members[0].joined_at_ms, 1000);
    presence_snapshot_free(snap);
    /* g has no same-user option: an ordinary join. */
    assert_ok(presence_client_join(f.reg, h2, "gr:a", "x", 1, &ch));
    assert_int_equal(ch.kind, PRESENCE_CHANGE_JOINED);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), 1);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_JOIN), 0);
    assert_stats(f.reg, "gr:a", 2, 1);
    assert_int_equal(users.count, 0);
    size_t conns = 0;
    assert_ok(presence_user_status(f.reg, "u1", &conns));
    assert_int_equal(conns, 2); /* c1 (in grace in g:a) and c2 */
    recorder_clear(&f.rec);
    fake_clock_set(&f.clock, 1000 + GRACE);
    assert_int_equal(expire_at(&f, 1000 + GRACE), 1);
    assert_int_equal(f.rec.count, 1); /* c1 leaves g:a; u1 stays (c2) */
    assert_string_equal(f.rec.events[0].client_id, "c1");
    assert_int_equal(users.count, 0);
    assert_ok(presence_user_status(f.reg, "u1", &conns));
    assert_int_equal(conns, 1);
    /* A different chan_info on taking the place: one update. */
    assert_ok(presence_client_close(f.reg, h2, NULL));
    assert_int_equal(users.count, 0);
    recorder_clear(&f.rec);
    assert_ok(join_info(f.reg, "su:a", "c3", "u1", NULL, "y"));
    assert_stats(f.reg, "su:a", 1, 1);
    assert_int_equal(f.rec.count, 1);
    assert_int_equal(f.rec.events[0].kind, PRESENCE_EVENT_UPDATE);
    assert_string_equal(f.rec.events[0].client_id, "c3");
    /* Anonymous connections are strangers: none takes another's place. */
    assert_ok(join_simple(f.reg, "su:b", "a1", ""));
    assert_ok(presence_disconnect(f.reg, "a1", NULL));
    recorder_clear(&f.rec);
    assert_ok(join_simple(f.reg, "su:b", "a2", ""));
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), 1);
    assert_stats(f.reg, "su:b", 2, 1);
    assert_ok(presence_disconnect(f.reg, "a2", NULL));
    /* Another user does not take it. */
    assert_ok(presence_disconnect(f.reg, "c3", NULL));
    recorder_clear(&f.rec);
    assert_ok(join_simple(f.reg, "su:a", "c4", "u4"));
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), 1);
    assert_stats(f.reg, "su:a", 2, 2);
    assert_ok(presence_disconnect(f.reg, "c4", NULL));
    fake_clock_set(&f.clock, 100000);
    expire_at(&f, 100000);
    assert_counts(f.reg, 0, 0, 0, 0);
    assert_int_equal(recorder_count(&users, PRESENCE_EVENT_USER_OFFLINE), 3);
    recorder_free(&users);
    fixture_close(&f);
}

/* With a change log: a drop into grace and a resume log nothing; the end
 * of a grace logs the leave with its reason at the drop's time; a
 * same-user takeover (neither a join nor a leave) restarts the log, so
 * versions before it need a snapshot and it reaches back to its seq. */
static void test_grace_and_change_log(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.leave_grace_ms = GRACE;
    o.grace_same_user = true;
    o.history_size = 16;
    assert_ok(presence_namespace_set(f.reg, "su", &o));
    assert_ok(join_simple(f.reg, "su:a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "su:a", "c2", "u2"));
    presence_channel_stats st = stats_of(f.reg, "su:a");
    fake_clock_set(&f.clock, 1100);
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_ok(join_simple(f.reg, "su:a", "c1", "u1")); /* resumes */
    presence_history *h;
    assert_ok(presence_changes_since(f.reg, "su:a", presence_trusted(),
                                     st.epoch, st.seq, &h));
    assert_int_equal(h->count, 0);
    presence_history_free(h);
    /* c2 drops at 1200; its grace ends at 1200 + GRACE. */
    fake_clock_set(&f.clock, 1200);
    assert_ok(presence_disconnect(f.reg, "c2", NULL));
    fake_clock_set(&f.clock, 1200 + GRACE);
    assert_int_equal(expire_at(&f, 1200 + GRACE), 1);
    assert_ok(presence_changes_since(f.reg, "su:a", presence_trusted(),
                                     st.epoch, st.seq, &h));
    assert_int_equal(h->count, 1);
    assert_int_equal(h->entries[0].kind, PRESENCE_EVENT_LEAVE);
    assert_int_equal(h->entries[0].reason, PRESENCE_LEAVE_DISCONNECT);
    assert_int_equal(h->entries[0].time_ms, 1200);
    assert_string_equal(h->entries[0].member.client_id, "c2");
    assert_int_equal(h->entries[0].seq, st.seq + 1);
    presence_history_free(h);
    /* c1 drops and c3 of the same user takes its place. */
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_ok(join_simple(f.reg, "su:a", "c3", "u1"));
    presence_channel_stats now = stats_of(f.reg, "su:a");
    assert_int_equal(now.seq, st.seq + 2);
    assert_rc(presence_changes_since(f.reg, "su:a", presence_trusted(),
                                     st.epoch, st.seq, &h),
              PRESENCE_ERR_SNAPSHOT_NEEDED);
    assert_rc(presence_changes_since(f.reg, "su:a", presence_trusted(),
                                     st.epoch, now.seq - 1, &h),
              PRESENCE_ERR_SNAPSHOT_NEEDED);
    assert_ok(presence_changes_since(f.reg, "su:a", presence_trusted(),
                                     now.epoch, now.seq, &h));
    assert_int_equal(h->count, 0);
    presence_history_free(h);
    /* And it logs what comes after. */
    assert_ok(join_simple(f.reg, "su:a", "c4", "u4"));
    assert_ok(presence_changes_since(f.reg, "su:a", presence_trusted(),
                                     now.epoch, now.seq, &h));
    assert_int_equal(h->count, 1);
    assert_int_equal(h->entries[0].kind, PRESENCE_EVENT_JOIN);
    presence_history_free(h);
    fixture_close(&f);
}

/* Taking the place is not stopped by the channel's member limit (the
 * member count does not change). */
static void test_take_place_at_member_limit(void **state)
{
    (void)state;
    fixture f;
    open_grace(&f);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.leave_grace_ms = GRACE;
    o.grace_same_user = true;
    o.max_members = 1;
    assert_ok(presence_namespace_set(f.reg, "su", &o));
    assert_ok(join_simple(f.reg, "su:a", "c1", "u1"));
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_rc(join_simple(f.reg, "su:a", "c2", "u2"),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    recorder_clear(&f.rec);
    assert_ok(join_simple(f.reg, "su:a", "c3", "u1"));
    assert_int_equal(f.rec.count, 0);
    assert_stats(f.reg, "su:a", 1, 1);
    assert_counts(f.reg, 1, 1, 1, 1);
    fixture_close(&f);
}

/* ---- expiry -------------------------------------------------------------- */

/* A TTL that runs out puts the member in grace (no event; not counted as
 * expired); its grace ends later with reason expired, dated at the
 * expiry. A join in time resumes it and renews its TTL. */
static void test_expiry_into_grace(void **state)
{
    (void)state;
    fixture f;
    open_grace(&f);
    assert_ok(join_simple(f.reg, "tt:a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "tt:a", "c2", "u2"));
    assert_int_equal(presence_next_deadline_ms(f.reg), 1100);
    fake_clock_set(&f.clock, 1100);
    assert_int_equal(expire_at(&f, 1100), 0);
    assert_int_equal(f.rec.count, 4); /* the joins */
    assert_true(in_grace(&f, "tt:a", "c1"));
    assert_int_equal(presence_next_deadline_ms(f.reg), 1100 + GRACE);
    fake_clock_set(&f.clock, 1200);
    assert_ok(join_simple(f.reg, "tt:a", "c1", "u1"));
    assert_false(in_grace(&f, "tt:a", "c1"));
    assert_int_equal(presence_next_deadline_ms(f.reg), 1300);
    fake_clock_set(&f.clock, 1100 + GRACE);
    recorder_clear(&f.rec);
    /* c1 expires again (dropped at 6100), c2's grace ends. */
    assert_int_equal(expire_at(&f, 1100 + GRACE), 1);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 1);
    const rec_event *e =
        recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "tt:a", "c2");
    assert_non_null(e);
    assert_int_equal(e->reason, PRESENCE_LEAVE_EXPIRED);
    assert_int_equal(e->time_ms, 1100);
    assert_true(in_grace(&f, "tt:a", "c1"));
    /* TTL turned off and on again: the member in grace stays in grace. */
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.leave_grace_ms = GRACE;
    assert_ok(presence_namespace_set(f.reg, "tt", &o));
    o.ttl_ms = 100;
    assert_ok(presence_namespace_set(f.reg, "tt", &o));
    assert_true(in_grace(&f, "tt:a", "c1"));
    assert_int_equal(presence_next_deadline_ms(f.reg), 1100 + 2 * GRACE);
    /* Grace turned off: it ends at the next expiry. */
    o.leave_grace_ms = 0;
    assert_ok(presence_namespace_set(f.reg, "tt", &o));
    assert_int_equal(presence_next_deadline_ms(f.reg), 1100 + GRACE);
    recorder_clear(&f.rec);
    assert_int_equal(expire_at(&f, 1100 + GRACE), 1);
    assert_int_equal(f.rec.events[0].time_ms, 1100 + GRACE);
    assert_counts(f.reg, 0, 0, 0, 0);
    /* Negative grace is refused. */
    o.leave_grace_ms = -1;
    assert_rc(presence_namespace_set(f.reg, "tt", &o), PRESENCE_ERR_INVALID);
    assert_ok(presence_namespace_get(f.reg, "tt", &o));
    assert_int_equal(o.leave_grace_ms, 0);
    fixture_close(&f);
}

/* A visit sees the flag, and users' online state holds through a grace. */
static void visit_cb(const presence_member *m, void *ud)
{
    size_t *graced = ud;
    *graced += m->in_grace;
}

static void test_visit_and_users(void **state)
{
    (void)state;
    fixture f;
    open_grace(&f);
    recorder users;
    recorder_init(&users);
    presence_subscription sub;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_USERS, recorder_cb, &users,
                                 &sub));
    presence_client *h = open_handle(f.reg, "c1", "u1", NULL);
    assert_ok(presence_client_join(f.reg, h, "gr:a", NULL, 0, NULL));
    assert_ok(join_simple(f.reg, "gr:a", "c2", "u2"));
    assert_ok(presence_client_close(f.reg, h, NULL));
    size_t graced = 0;
    presence_visit_info info;
    assert_ok(presence_visit(f.reg, "gr:a", presence_trusted(), 0, 0,
                             visit_cb, &graced, &info));
    assert_int_equal(info.visited, 2);
    assert_int_equal(graced, 1);
    assert_int_equal(recorder_count(&users, PRESENCE_EVENT_USER_OFFLINE), 0);
    size_t conns = 0;
    assert_ok(presence_user_status(f.reg, "u1", &conns));
    assert_int_equal(conns, 1);
    fake_clock_set(&f.clock, 1000 + GRACE);
    expire_at(&f, 1000 + GRACE);
    assert_int_equal(recorder_count(&users, PRESENCE_EVENT_USER_OFFLINE), 1);
    assert_string_equal(users.events[0].user_id, "u1");
    assert_ok(presence_user_status(f.reg, "u1", &conns));
    assert_int_equal(conns, 0);
    recorder_free(&users);
    fixture_close(&f);
}

/* ---- out of memory --------------------------------------------------------- */

typedef int (*step_fn)(fixture *f, const char *arg);

/* Run a step with allocation n failing, n = 0, 1, ... until it succeeds:
 * every failure is NOMEM, changes nothing (the dump) and announces
 * nothing. Returns how many failures were injected. */
static long oom_step(fixture *f, step_fn fn, const char *arg)
{
    long n = 0;
    for (;; n++) {
        f->alloc.paused = true;
        char *before = dump_registry(f->reg, NAMESPACES);
        f->alloc.paused = false;
        size_t events = f->rec.count;
        test_alloc_arm(&f->alloc, n);
        int rc = fn(f, arg);
        test_alloc_disarm(&f->alloc);
        if (rc == PRESENCE_OK) {
            free(before);
            break;
        }
        assert_rc(rc, PRESENCE_ERR_NOMEM);
        f->alloc.paused = true;
        char *after = dump_registry(f->reg, NAMESPACES);
        f->alloc.paused = false;
        assert_string_equal(before, after);
        assert_int_equal(f->rec.count, events);
        free(before);
        free(after);
        assert_true(n < 10000);
    }
    return n;
}

static int step_disconnect(fixture *f, const char *arg)
{
    return presence_disconnect(f->reg, arg, NULL);
}

static int step_leave_l(fixture *f, const char *arg)
{
    return presence_leave(f->reg, "lv:0", arg);
}

static presence_client *closing, *reopened;

static int step_close(fixture *f, const char *arg)
{
    (void)arg;
    return presence_client_close(f->reg, closing, NULL);
}

static int step_reopen(fixture *f, const char *arg)
{
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = arg;
    o.user_id = "u1";
    return presence_client_open(f->reg, &o, &reopened);
}

static int step_join_s(fixture *f, const char *arg)
{
    return join_info(f->reg, "su:0", arg, "u1", NULL, "other");
}

static int step_rejoin_g(fixture *f, const char *arg)
{
    return join_info(f->reg, "gr:3", arg, "u1", NULL, "changed");
}

static int step_expire(fixture *f, const char *arg)
{
    (void)arg;
    size_t n;
    int rc = presence_expire(f->reg, 100000, &n, NULL);
    return rc;
}

/* Every step of grace that allocates, with every allocation failing in
 * turn. A client in channels of many shards makes a disconnect fail
 * after some links were made (they change nothing anyone reads). */
static void test_out_of_memory(void **state)
{
    (void)state;
    fixture f;
    open_grace(&f);
    long injected = 0;
    for (int i = 0; i < 40; i++) {
        char ch[16];
        snprintf(ch, sizeof ch, "gr:%d", i);
        assert_ok(join_info(f.reg, ch, "c1", "u1", NULL, i % 2 ? "x" : NULL));
    }
    assert_ok(join_simple(f.reg, "lv:0", "c2", "u1"));
    assert_ok(join_simple(f.reg, "su:0", "c2", "u1"));
    /* No list links exist yet: both drops must make some. */
    assert_true(oom_step(&f, step_leave_l, "c2") > 0);
    assert_true(in_grace(&f, "lv:0", "c2"));
    assert_true(oom_step(&f, step_disconnect, "c1") > 0);
    assert_true(in_grace(&f, "gr:7", "c1"));
    injected += oom_step(&f, step_rejoin_g, "c1");
    assert_false(in_grace(&f, "gr:3", "c1"));
    assert_ok(presence_disconnect(f.reg, "c2", NULL));
    injected += oom_step(&f, step_join_s, "c3"); /* takes c2's place */
    assert_stats(f.reg, "su:0", 1, 1);
    presence_client *h = open_handle(f.reg, "c4", "u1", NULL);
    for (int i = 0; i < 20; i++) {
        char ch[16];
        snprintf(ch, sizeof ch, "tt:%d", i);
        assert_ok(presence_client_join(f.reg, h, ch, NULL, 0, NULL));
    }
    closing = h;
    injected += oom_step(&f, step_close, NULL);
    injected += oom_step(&f, step_reopen, "c4");
    assert_true(in_grace(&f, "tt:5", "c4"));
    assert_ok(presence_client_join(f.reg, reopened, "tt:5", NULL, 0, NULL));
    assert_false(in_grace(&f, "tt:5", "c4"));
    assert_true(injected > 0);
    /* The ends of grace: a batched call that may stop half-way; retried
     * it finishes, each member leaving completely. */
    assert_ok(presence_client_close(f.reg, reopened, NULL));
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_ok(presence_disconnect(f.reg, "c3", NULL));
    recorder_clear(&f.rec);
    for (long n = 0;; n++) {
        test_alloc_arm(&f.alloc, n);
        int rc = step_expire(&f, NULL);
        test_alloc_disarm(&f.alloc);
        if (rc == PRESENCE_OK) {
            break;
        }
        assert_rc(rc, PRESENCE_ERR_NOMEM);
    }
    assert_int_equal(step_expire(&f, NULL), PRESENCE_OK);
    assert_counts(f.reg, 0, 0, 0, 0);
    /* gr:0..39, lv:0, su:0, tt:0..19 */
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 62);
    fixture_close(&f);
}

/* ---- threads ------------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 300

struct worker {
    presence_registry *reg;
    int id;
};

/* Each worker is a user that reconnects again and again, alternately with
 * the same client id (a reopened handle) and a new one (its place taken),
 * in channels the workers share; another thread ends graces meanwhile. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char user[16];
    snprintf(user, sizeof user, "u%d", w->id);
    for (int r = 0; r < ROUNDS; r++) {
        char id[32];
        snprintf(id, sizeof id, "c%d-%d", w->id, r % 2 == 0 ? 0 : r);
        presence_client_options o;
        presence_client_options_init(&o);
        o.client_id = id;
        o.user_id = user;
        presence_client *h;
        if (presence_client_open(w->reg, &o, &h) != PRESENCE_OK) {
            continue; /* its id is still open somewhere: not a drop */
        }
        for (int c = 0; c < 4; c++) {
            char ch[16];
            snprintf(ch, sizeof ch, "su:%d", (w->id + c) % 6);
            (void)presence_client_join(w->reg, h, ch, NULL, 0, NULL);
        }
        presence_snapshot *snap;
        if (presence_query(w->reg, "su:0", presence_trusted(), &snap) ==
            PRESENCE_OK) {
            presence_snapshot_free(snap);
        }
        (void)presence_client_close(w->reg, h, NULL);
    }
    return NULL;
}

static atomic_bool stop_expiring;

static void *expirer_main(void *arg)
{
    presence_registry *reg = arg;
    while (!atomic_load(&stop_expiring)) {
        (void)presence_expire(reg, presence_now_ms(reg), NULL, NULL);
    }
    return NULL;
}

/* Saves of a registry that changes under it: each one instant, so each
 * loads (a membership's client is never half moved, a grace never half
 * linked). */
static void *saver_main(void *arg)
{
    presence_registry *reg = arg;
    int saves = 0;
    while (!atomic_load(&stop_expiring) || saves == 0) {
        assert_ok(save_and_load(reg));
        saves++;
    }
    return NULL;
}

static int64_t real_ms(void *ud)
{
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_threads_reconnect(void **state)
{
    (void)state;
    test_alloc alloc;
    test_alloc_init(&alloc, false);
    presence_config c;
    presence_config_init(&c);
    test_alloc_install(&alloc, &c, false);
    c.clock = real_ms;
    presence_registry *reg;
    assert_ok(presence_registry_new(&c, &reg));
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.leave_grace_ms = 2; /* some graces end while others resume */
    o.grace_same_user = true;
    assert_ok(presence_namespace_set(reg, "su", &o));
    struct worker w[THREADS];
    pthread_t t[THREADS], ex, sv;
    atomic_store(&stop_expiring, false);
    assert_int_equal(pthread_create(&ex, NULL, expirer_main, reg), 0);
    assert_int_equal(pthread_create(&sv, NULL, saver_main, reg), 0);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){reg, i};
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
    }
    atomic_store(&stop_expiring, true);
    pthread_join(ex, NULL);
    pthread_join(sv, NULL);
    size_t n;
    assert_ok(presence_expire(reg, INT64_MAX - 1, &n, NULL));
    presence_counts counts;
    assert_ok(presence_registry_counts(reg, &counts));
    assert_int_equal(counts.memberships, 0);
    assert_int_equal(counts.clients, 0);
    assert_int_equal(counts.users, 0);
    assert_int_equal(presence_next_deadline_ms(reg), PRESENCE_NO_DEADLINE);
    assert_ok(presence_registry_free(reg));
    assert_int_equal(atomic_load(&alloc.live_blocks), 0);
}

/* A dropped client taken over by a new handle while another thread saves:
 * its memberships change hands all at once, so every save names one
 * client with that id, and loads (one shard at a time, a save between
 * two would hold two clients with one id, which no load accepts). */
struct takeover {
    presence_registry *reg;
    atomic_bool done;
    int loads;
};

static void *takeover_saver(void *arg)
{
    struct takeover *t = arg;
    while (!atomic_load(&t->done) || t->loads == 0) {
        assert_ok(save_and_load(t->reg));
        t->loads++;
    }
    return NULL;
}

static void test_threads_takeover_while_saved(void **state)
{
    (void)state;
    presence_config c;
    presence_config_init(&c);
    c.clock = real_ms;
    struct takeover t = {NULL, false, 0};
    assert_ok(presence_registry_new(&c, &t.reg));
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.leave_grace_ms = 60000; /* nothing ends during the test */
    assert_ok(presence_namespace_set(t.reg, "gr", &o));
    presence_client *h = open_handle(t.reg, "c1", "u1", NULL);
    /* Channels enough to be in most shards. */
    for (int i = 0; i < 100; i++) { /* under channels_per_client_max */
        char ch[16];
        snprintf(ch, sizeof ch, "gr:%d", i);
        assert_ok(presence_client_join(t.reg, h, ch, NULL, 0, NULL));
    }
    pthread_t sv;
    assert_int_equal(pthread_create(&sv, NULL, takeover_saver, &t), 0);
    for (int r = 0; r < 2000; r++) {
        assert_ok(presence_client_close(t.reg, h, NULL));
        h = open_handle(t.reg, "c1", "u1", NULL); /* takes it over */
    }
    atomic_store(&t.done, true);
    pthread_join(sv, NULL);
    assert_true(t.loads > 0);
    presence_counts counts;
    assert_ok(presence_registry_counts(t.reg, &counts));
    assert_int_equal(counts.memberships, 100);
    assert_int_equal(counts.clients, 1);
    assert_ok(presence_client_close(t.reg, h, NULL));
    assert_ok(presence_registry_free(t.reg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disconnect_then_grace_ends),
        cmocka_unit_test(test_rejoin_resumes),
        cmocka_unit_test(test_touch_update_leave_close_in_grace),
        cmocka_unit_test(test_handle_reopened_with_same_id),
        cmocka_unit_test(test_handle_leave_and_join_many),
        cmocka_unit_test(test_same_user_takes_the_place),
        cmocka_unit_test(test_grace_and_change_log),
        cmocka_unit_test(test_take_place_at_member_limit),
        cmocka_unit_test(test_expiry_into_grace),
        cmocka_unit_test(test_visit_and_users),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_threads_reconnect),
        cmocka_unit_test(test_threads_takeover_while_saved),
    };
    return cmocka_run_group_tests_name("grace", tests, NULL, NULL);
}
