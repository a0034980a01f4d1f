/*
 * Membership changes: join (an upsert), leave, disconnect, update, touch,
 * channel close; conflicts and limits; stats, user presence, a client's
 * channels and the channel list.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t list_count(presence_registry *r, const char *ns)
{
    presence_channel_list *list = NULL;
    assert_ok(presence_channels(r, ns, &list));
    size_t n = list->count;
    presence_channel_list_free(list);
    return n;
}

static void test_join_leave(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_stats(f.reg, "a", 1, 1);
    assert_int_equal(list_count(f.reg, NULL), 1);

    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_counts(f.reg, 0, 0, 0, 0);
    assert_stats(f.reg, "a", 0, 0);
    assert_int_equal(list_count(f.reg, NULL), 0);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), 1);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 1);
    assert_int_equal(f.rec.count, 4);
    fixture_close(&f);
}

static void test_leave_not_found(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_rc(presence_leave(f.reg, "a", "c1"), PRESENCE_ERR_NOT_FOUND);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "b", "c2", "u2"));
    assert_rc(presence_leave(f.reg, "a", "c2"), PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_leave(f.reg, "nochan", "c1"), PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_leave(f.reg, "a", "nobody"), PRESENCE_ERR_NOT_FOUND);
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_rc(presence_leave(f.reg, "a", "c1"), PRESENCE_ERR_NOT_FOUND);
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 1);
    fixture_close(&f);
}

static void test_disconnect(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "b", "c1", "u1"));
    assert_ok(join_simple(f.reg, "c", "c1", "u1"));
    assert_ok(join_simple(f.reg, "a", "c2", "u2"));
    size_t left = 999;
    left = 99;
    assert_ok(presence_disconnect(f.reg, "nobody", &left));
    assert_int_equal(left, 0);
    assert_ok(presence_disconnect(f.reg, "c1", &left));
    assert_int_equal(left, 3);
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_int_equal(list_count(f.reg, NULL), 1);
    assert_ok(presence_disconnect(f.reg, "c1", &left)); /* gone: nothing left */
    assert_int_equal(left, 0);
    assert_ok(presence_disconnect(f.reg, "c2", NULL));
    assert_counts(f.reg, 0, 0, 0, 0);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_DISCONNECT),
                     4);
    fixture_close(&f);
}

static const presence_member *only_member(presence_snapshot *snap)
{
    assert_non_null(snap);
    assert_int_equal(snap->count, 1);
    return &snap->members[0];
}

static void test_update(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_info(f.reg, "a", "c1", "u1", "conn", "one"));
    assert_rc(presence_update(f.reg, "a", "c2", "x", 1),
              PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_update(f.reg, "b", "c1", "x", 1),
              PRESENCE_ERR_NOT_FOUND);
    uint64_t seq = seq_of(f.reg, "a");

    assert_ok(presence_update(f.reg, "a", "c1", "two", 3));
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "a", presence_trusted(), &snap));
    const presence_member *m = only_member(snap);
    assert_int_equal(m->chan_info_len, 3);
    assert_memory_equal(m->chan_info, "two", 3);
    assert_int_equal(m->conn_info_len, 4);
    assert_memory_equal(m->conn_info, "conn", 4);
    presence_snapshot_free(snap);
    assert_int_equal(seq_of(f.reg, "a"), seq + 1);

    /* Same bytes: nothing changes. */
    assert_ok(presence_update(f.reg, "a", "c1", "two", 3));
    assert_int_equal(seq_of(f.reg, "a"), seq + 1);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_UPDATE), 1);

    /* Clearing it. */
    assert_ok(presence_update(f.reg, "a", "c1", NULL, 0));
    assert_ok(presence_query(f.reg, "a", presence_trusted(), &snap));
    m = only_member(snap);
    assert_int_equal(m->chan_info_len, 0);
    assert_null(m->chan_info);
    presence_snapshot_free(snap);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_UPDATE), 2);
    assert_counts(f.reg, 1, 1, 1, 1);
    fixture_close(&f);
}

static void test_touch(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_rc(presence_touch(f.reg, "a", "c1"), PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_touch_client(f.reg, "c1"), PRESENCE_ERR_NOT_FOUND);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "b", "c1", "u1"));
    assert_ok(join_simple(f.reg, "b", "c2", "u2"));
    assert_rc(presence_touch(f.reg, "a", "c2"), PRESENCE_ERR_NOT_FOUND);
    size_t events = f.rec.count;

    fake_clock_set(&f.clock, 2000);
    assert_ok(presence_touch(f.reg, "a", "c1"));
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "a", presence_trusted(), &snap));
    const presence_member *m = only_member(snap);
    assert_int_equal(m->joined_at_ms, 1000);
    assert_int_equal(m->touched_at_ms, 2000);
    presence_snapshot_free(snap);

    fake_clock_set(&f.clock, 3000);
    assert_ok(presence_touch_client(f.reg, "c1"));
    assert_ok(presence_client_channels(f.reg, "c1", &snap));
    assert_int_equal(snap->count, 2);
    for (size_t i = 0; i < snap->count; i++) {
        assert_int_equal(snap->members[i].joined_at_ms, 1000);
        assert_int_equal(snap->members[i].touched_at_ms, 3000);
    }
    presence_snapshot_free(snap);
    /* c2 was not touched. */
    assert_ok(presence_client_channels(f.reg, "c2", &snap));
    assert_int_equal(only_member(snap)->touched_at_ms, 1000);
    presence_snapshot_free(snap);

    /* Touching is not a change: no event, no seq. */
    assert_int_equal(f.rec.count, events);
    assert_int_equal(seq_of(f.reg, "a"), 1);
    fixture_close(&f);
}

/* The touch time of client's membership of channel (-1: none). */
static int64_t touched_at(presence_registry *reg, const char *channel,
                          const char *client)
{
    presence_snapshot *snap = NULL;
    assert_ok(presence_client_channels(reg, client, &snap));
    int64_t at = -1;
    for (size_t i = 0; i < snap->count; i++) {
        if (strcmp(snap->members[i].channel, channel) == 0) {
            at = snap->members[i].touched_at_ms;
        }
    }
    presence_snapshot_free(snap);
    return at;
}

/* A touch finds the membership however the client's memberships lie:
 * made together ("tog"), made between another client's ("far": apart in
 * memory), and more of them than a walk along the client's list covers
 * ("many"). Each touch moves that membership's time alone. */
static void test_touch_finds_each_membership(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    char ch[32];
    for (int i = 0; i < 3; i++) {
        snprintf(ch, sizeof ch, "t%d", i);
        assert_ok(join_simple(f.reg, ch, "tog", "u1"));
    }
    for (int i = 0; i < 20; i++) {
        snprintf(ch, sizeof ch, "t%d", i);
        assert_ok(join_simple(f.reg, ch, "far", "u2"));
        for (int k = 0; k < 5; k++) {
            char other[32];
            snprintf(other, sizeof other, "o%d-%d", i, k);
            assert_ok(join_simple(f.reg, ch, other, "u3"));
        }
    }
    for (int i = 0; i < 12; i++) {
        snprintf(ch, sizeof ch, "t%d", i);
        assert_ok(join_simple(f.reg, ch, "many", "u5"));
    }
    assert_ok(join_simple(f.reg, "alone", "x", "u4"));
    int64_t now = 2000;
    for (int i = 0; i < 12; i++) {
        snprintf(ch, sizeof ch, "t%d", i);
        fake_clock_set(&f.clock, ++now);
        assert_ok(presence_touch(f.reg, ch, "many"));
        assert_int_equal(touched_at(f.reg, ch, "many"), now);
    }
    for (int i = 19; i >= 0; i--) {
        snprintf(ch, sizeof ch, "t%d", i);
        fake_clock_set(&f.clock, ++now);
        assert_ok(presence_touch(f.reg, ch, "far"));
        assert_int_equal(touched_at(f.reg, ch, "far"), now);
        if (i < 3) {
            assert_int_equal(touched_at(f.reg, ch, "tog"), 1000);
            fake_clock_set(&f.clock, ++now);
            assert_ok(presence_touch(f.reg, ch, "tog"));
            assert_int_equal(touched_at(f.reg, ch, "tog"), now);
        }
    }
    assert_int_equal(touched_at(f.reg, "t0", "far"), 2000 + 12 + 20 + 2);
    /* Channels the client is not in: one the others are in, one of
     * nobody's; a client in none. */
    assert_rc(presence_touch(f.reg, "t5", "tog"), PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_touch(f.reg, "alone", "far"), PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_touch(f.reg, "nowhere", "far"),
              PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_touch(f.reg, "t1", "nobody"), PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_update(f.reg, "alone", "tog", "i", 1),
              PRESENCE_ERR_NOT_FOUND);
    assert_ok(presence_update(f.reg, "t17", "far", "i", 1));
    fixture_close(&f);
}

static void test_channel_close(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    size_t removed = 999;
    assert_ok(presence_channel_close(f.reg, "empty", &removed));
    assert_int_equal(removed, 0);
    assert_rc(presence_channel_close(f.reg, "nope:x", &removed),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);

    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "a", "c2", "u1"));
    assert_ok(join_simple(f.reg, "a", "c3", "u2"));
    assert_ok(join_simple(f.reg, "b", "c3", "u2"));
    recorder_clear(&f.rec);
    assert_ok(presence_channel_close(f.reg, "a", &removed));
    assert_int_equal(removed, 3);
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_stats(f.reg, "a", 0, 0);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_CLOSED),
                     3);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_USER_LEAVE,
                                           PRESENCE_LEAVE_CLOSED),
                     2);
    assert_int_equal(f.rec.count, 5);
    assert_ok(presence_channel_close(f.reg, "b", NULL));
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* Join is an upsert: no second join event; chan_info replaced with an
 * UPDATE only when the bytes differ; joined_at kept. */
static void test_join_upsert(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_info(f.reg, "a", "c1", "u1", "conn", "one"));
    fake_clock_set(&f.clock, 1500);
    assert_ok(join_info(f.reg, "a", "c1", "u1", "conn", "one"));
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), 1);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_JOIN), 1);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_UPDATE), 0);
    assert_int_equal(seq_of(f.reg, "a"), 1);
    assert_stats(f.reg, "a", 1, 1);

    fake_clock_set(&f.clock, 1700);
    assert_ok(join_info(f.reg, "a", "c1", "u1", "conn", "two!"));
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), 1);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_UPDATE), 1);
    const rec_event *e = recorder_find(&f.rec, 0, PRESENCE_EVENT_UPDATE, "a",
                                       "c1");
    assert_non_null(e);
    assert_int_equal(e->chan_info_len, 4);
    assert_memory_equal(e->chan_info, "two!", 4);
    assert_int_equal(e->seq, 2);

    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "a", presence_trusted(), &snap));
    const presence_member *m = only_member(snap);
    assert_int_equal(m->chan_info_len, 4);
    assert_memory_equal(m->chan_info, "two!", 4);
    assert_int_equal(m->joined_at_ms, 1000);
    assert_int_equal(m->touched_at_ms, 1700);
    presence_snapshot_free(snap);

    /* Upsert to no chan_info is a change too. */
    assert_ok(join_info(f.reg, "a", "c1", "u1", "conn", NULL));
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_UPDATE), 2);
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_int_equal(f.rec.count, 4);
    fixture_close(&f);
}

static void test_join_conflict(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_info(f.reg, "a", "c1", "u1", "A", NULL));
    char *before = dump_registry(f.reg, NULL);
    size_t events = f.rec.count;

    assert_rc(join_info(f.reg, "b", "c1", "u2", "A", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(join_info(f.reg, "b", "c1", "u1", "B", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(join_info(f.reg, "b", "c1", "u1", NULL, NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(join_info(f.reg, "b", "c1", NULL, "A", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(join_info(f.reg, "a", "c1", "u2", "A", NULL),
              PRESENCE_ERR_CONFLICT);
    /* conn_info is compared as bytes: "A\0" is not "A". */
    assert_rc(presence_join(f.reg, "a", "c1", "u1", "A\0", 2, NULL, 0),
              PRESENCE_ERR_CONFLICT);
    assert_rc(presence_join(f.reg, "b", "c1", "u1", "a", 1, NULL, 0),
              PRESENCE_ERR_CONFLICT);
    assert_int_equal(f.rec.count, events);
    char *after = dump_registry(f.reg, NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* The same user and conn_info are fine, in the same channel (upsert)
     * or another one. */
    assert_ok(join_info(f.reg, "a", "c1", "u1", "A", "x"));
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_UPDATE), 1);
    assert_ok(join_info(f.reg, "b", "c1", "u1", "A", NULL));
    assert_counts(f.reg, 2, 1, 1, 2);

    /* Once the client is in no channel it is forgotten, and may come back
     * as someone else. */
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_ok(join_info(f.reg, "b", "c1", "u2", "B", NULL));
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "b", presence_trusted(), &snap));
    assert_string_equal(only_member(snap)->user_id, "u2");
    presence_snapshot_free(snap);

    /* NULL and "" are the same anonymous user. */
    assert_ok(join_simple(f.reg, "a", "anon", NULL));
    assert_ok(join_simple(f.reg, "b", "anon", ""));
    assert_ok(join_simple(f.reg, "c", "anon", NULL));
    presence_counts k = counts_of(f.reg);
    assert_int_equal(k.channels, 3);
    assert_int_equal(k.clients, 2);
    assert_int_equal(k.memberships, 4);
    fixture_close(&f);
}

static void test_client_channel_limit(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.channels_per_client_max = 2;
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "b", "c1", "u1"));
    size_t events = f.rec.count;
    assert_rc(join_simple(f.reg, "c", "c1", "u1"),
              PRESENCE_ERR_CLIENT_CHANNEL_LIMIT);
    assert_int_equal(f.rec.count, events);
    assert_counts(f.reg, 2, 1, 1, 2);
    /* Upserts at the limit still work. */
    assert_ok(join_info(f.reg, "b", "c1", "u1", NULL, "x"));
    /* Another client is not affected. */
    assert_ok(join_simple(f.reg, "c", "c2", "u1"));
    /* Leaving makes room. */
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_ok(join_simple(f.reg, "c", "c1", "u1"));
    assert_counts(f.reg, 2, 2, 1, 3);

    /* The default is 128. */
    fixture_close(&f);
    fixture_config(&f);
    fixture_open(&f);
    char ch[32];
    for (int i = 0; i < 128; i++) {
        snprintf(ch, sizeof(ch), "ch%d", i);
        assert_ok(join_simple(f.reg, ch, "c1", "u1"));
    }
    assert_rc(join_simple(f.reg, "ch128", "c1", "u1"),
              PRESENCE_ERR_CLIENT_CHANNEL_LIMIT);
    assert_counts(f.reg, 128, 1, 1, 128);
    fixture_close(&f);
}

static void test_channel_member_limit(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.members_per_channel_max = 2;
    fixture_open(&f);
    ns_set(f.reg, "one", true, true, 0, 1);
    ns_set(f.reg, "five", true, true, 0, 5); /* higher: registry's wins */
    ns_set(f.reg, "reg", true, true, 0, 0);

    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "a", "c2", "u2"));
    assert_rc(join_simple(f.reg, "a", "c3", "u3"),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    assert_ok(join_info(f.reg, "a", "c2", "u2", NULL, "upsert"));
    assert_ok(join_simple(f.reg, "b", "c3", "u3"));

    assert_ok(join_simple(f.reg, "one:x", "c1", "u1"));
    assert_rc(join_simple(f.reg, "one:x", "c2", "u2"),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    assert_ok(join_simple(f.reg, "one:y", "c2", "u2"));

    assert_ok(join_simple(f.reg, "five:x", "c1", "u1"));
    assert_ok(join_simple(f.reg, "five:x", "c2", "u2"));
    assert_rc(join_simple(f.reg, "five:x", "c3", "u3"),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);

    assert_ok(join_simple(f.reg, "reg:x", "c1", "u1"));
    assert_ok(join_simple(f.reg, "reg:x", "c2", "u2"));
    assert_rc(join_simple(f.reg, "reg:x", "c3", "u3"),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    assert_stats(f.reg, "a", 2, 2);
    assert_stats(f.reg, "one:x", 1, 1);
    assert_stats(f.reg, "five:x", 2, 2);

    /* Lowering a namespace's max_members removes no one but stops joins. */
    ns_set(f.reg, "reg", true, true, 0, 1);
    assert_stats(f.reg, "reg:x", 2, 2);
    assert_ok(presence_leave(f.reg, "reg:x", "c2"));
    assert_rc(join_simple(f.reg, "reg:x", "c2", "u2"),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    assert_ok(join_info(f.reg, "reg:x", "c1", "u1", NULL, "still me"));
    fixture_close(&f);
}

static void test_namespace_member_limit_only(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "small", true, true, 0, 3);
    char cl[32];
    for (int i = 0; i < 3; i++) {
        snprintf(cl, sizeof(cl), "c%d", i);
        assert_ok(join_simple(f.reg, "small:x", cl, "u"));
    }
    assert_rc(join_simple(f.reg, "small:x", "c9", "u"),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    /* Other namespaces: no limit. */
    for (int i = 0; i < 50; i++) {
        snprintf(cl, sizeof(cl), "c%d", i);
        assert_ok(join_simple(f.reg, "big", cl, "u"));
    }
    assert_stats(f.reg, "big", 50, 1);
    fixture_close(&f);
}

static void test_channel_limit(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.channels_max = 2;
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "b", "c1", "u1"));
    size_t events = f.rec.count;
    assert_rc(join_simple(f.reg, "c", "c1", "u1"), PRESENCE_ERR_CHANNEL_LIMIT);
    assert_rc(join_simple(f.reg, "c", "c2", "u2"), PRESENCE_ERR_CHANNEL_LIMIT);
    assert_int_equal(f.rec.count, events);
    /* Joining an existing channel is fine. */
    assert_ok(join_simple(f.reg, "a", "c2", "u2"));
    assert_counts(f.reg, 2, 2, 2, 3);
    /* An emptied channel frees its slot. */
    assert_ok(presence_leave(f.reg, "b", "c1"));
    assert_ok(join_simple(f.reg, "c", "c2", "u2"));
    assert_counts(f.reg, 2, 2, 2, 3);
    fixture_close(&f);
}

static void test_empty_channel_freed(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "a", "c2", "u1"));
    assert_ok(presence_update(f.reg, "a", "c1", "x", 1));
    assert_int_equal(seq_of(f.reg, "a"), 3);
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_ok(presence_leave(f.reg, "a", "c2"));
    assert_counts(f.reg, 0, 0, 0, 0);
    assert_int_equal(list_count(f.reg, NULL), 0);
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "a", presence_trusted(), &snap));
    assert_int_equal(snap->count, 0);
    assert_int_equal(snap->seq, 0);
    presence_snapshot_free(snap);
    /* A new life starts at seq 1. */
    assert_ok(join_simple(f.reg, "a", "c3", "u3"));
    assert_int_equal(seq_of(f.reg, "a"), 1);
    fixture_close(&f);
}

static void test_stats_and_users(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_info(f.reg, "a", "c1", "u", "conn1", NULL));
    assert_ok(join_info(f.reg, "a", "c2", "u", "conn2", "x"));
    assert_stats(f.reg, "a", 2, 1);
    assert_ok(join_simple(f.reg, "a", "c3", "v"));
    assert_ok(join_simple(f.reg, "b", "c4", "u"));
    assert_stats(f.reg, "a", 3, 2);
    assert_stats(f.reg, "b", 1, 1);
    assert_counts(f.reg, 2, 4, 2, 4);

    size_t n = 999;
    assert_ok(presence_user_present(f.reg, "a", "u", &n));
    assert_int_equal(n, 2);
    assert_ok(presence_user_present(f.reg, "a", "v", &n));
    assert_int_equal(n, 1);
    assert_ok(presence_user_present(f.reg, "a", "w", &n));
    assert_int_equal(n, 0);
    assert_ok(presence_user_present(f.reg, "nochan", "u", &n));
    assert_int_equal(n, 0);

    presence_snapshot *snap = NULL;
    assert_ok(presence_user_connections(f.reg, "a", "u", &snap));
    assert_int_equal(snap->count, 2);
    bool seen1 = false, seen2 = false;
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        assert_string_equal(m->channel, "a");
        assert_string_equal(m->user_id, "u");
        if (strcmp(m->client_id, "c1") == 0) {
            seen1 = true;
            assert_int_equal(m->conn_info_len, 5);
            assert_memory_equal(m->conn_info, "conn1", 5);
            assert_int_equal(m->chan_info_len, 0);
        } else {
            assert_string_equal(m->client_id, "c2");
            seen2 = true;
            assert_int_equal(m->chan_info_len, 1);
            assert_memory_equal(m->chan_info, "x", 1);
        }
    }
    assert_true(seen1 && seen2);
    presence_snapshot_free(snap);
    assert_ok(presence_user_connections(f.reg, "a", "w", &snap));
    assert_int_equal(snap->count, 0);
    presence_snapshot_free(snap);
    assert_ok(presence_user_connections(f.reg, "nochan", "u", &snap));
    assert_int_equal(snap->count, 0);
    presence_snapshot_free(snap);

    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_stats(f.reg, "a", 2, 2);
    assert_ok(presence_user_present(f.reg, "a", "u", &n));
    assert_int_equal(n, 1);
    assert_ok(presence_leave(f.reg, "a", "c2"));
    assert_stats(f.reg, "a", 1, 1);
    assert_ok(presence_user_present(f.reg, "a", "u", &n));
    assert_int_equal(n, 0);
    assert_counts(f.reg, 2, 2, 2, 2);
    fixture_close(&f);
}

static void test_anonymous_connections(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "anon1", NULL));
    assert_ok(join_simple(f.reg, "a", "anon2", ""));
    assert_ok(join_simple(f.reg, "a", "named", "u"));
    size_t n = 0;
    assert_ok(presence_user_present(f.reg, "a", "", &n));
    assert_int_equal(n, 2);
    presence_snapshot *snap = NULL;
    assert_ok(presence_user_connections(f.reg, "a", "", &snap));
    assert_int_equal(snap->count, 2);
    for (size_t i = 0; i < snap->count; i++) {
        assert_string_equal(snap->members[i].user_id, "");
        assert_memory_equal(snap->members[i].client_id, "anon", 4);
    }
    presence_snapshot_free(snap);
    /* One USER_JOIN for the anonymous user, on its first connection. */
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_JOIN), 2);
    assert_ok(presence_leave(f.reg, "a", "anon1"));
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_LEAVE), 0);
    assert_ok(presence_leave(f.reg, "a", "anon2"));
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_LEAVE), 1);
    fixture_close(&f);
}

static void test_client_channels(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_snapshot *snap = NULL;
    assert_rc(presence_client_channels(f.reg, "c1", &snap),
              PRESENCE_ERR_NOT_FOUND);
    ns_set(f.reg, "chat", true, true, 0, 0);
    assert_ok(join_info(f.reg, "a", "c1", "u1", "conn", "ia"));
    assert_ok(join_info(f.reg, "chat:b", "c1", "u1", "conn", "ib"));
    assert_ok(join_info(f.reg, "c", "c1", "u1", "conn", NULL));
    assert_ok(join_simple(f.reg, "a", "c2", "u2"));
    assert_ok(presence_client_channels(f.reg, "c1", &snap));
    assert_int_equal(snap->count, 3);
    assert_int_equal(snap->seq, 0);
    int mask = 0;
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        assert_string_equal(m->client_id, "c1");
        assert_string_equal(m->user_id, "u1");
        assert_int_equal(m->conn_info_len, 4);
        assert_memory_equal(m->conn_info, "conn", 4);
        if (strcmp(m->channel, "a") == 0) {
            mask |= 1;
            assert_int_equal(m->chan_info_len, 2);
            assert_memory_equal(m->chan_info, "ia", 2);
        } else if (strcmp(m->channel, "chat:b") == 0) {
            mask |= 2;
            assert_memory_equal(m->chan_info, "ib", 2);
        } else {
            assert_string_equal(m->channel, "c");
            mask |= 4;
            assert_int_equal(m->chan_info_len, 0);
            assert_null(m->chan_info);
        }
    }
    assert_int_equal(mask, 7);
    presence_snapshot_free(snap);
    assert_ok(presence_leave(f.reg, "chat:b", "c1"));
    assert_ok(presence_client_channels(f.reg, "c1", &snap));
    assert_int_equal(snap->count, 2);
    presence_snapshot_free(snap);
    fixture_close(&f);
}

static void test_channel_list(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "chat", true, true, 0, 0);
    ns_set(f.reg, "other", true, true, 0, 0);
    assert_ok(join_simple(f.reg, "chat:1", "c1", "u1"));
    assert_ok(join_simple(f.reg, "chat:1", "c2", "u1"));
    assert_ok(join_simple(f.reg, "chat:1", "c3", "u2"));
    assert_ok(join_simple(f.reg, "chat:2", "c1", "u1"));
    assert_ok(join_simple(f.reg, "plain", "c1", "u1"));
    assert_ok(presence_update(f.reg, "plain", "c1", "x", 1));

    presence_channel_list *list = NULL;
    assert_ok(presence_channels(f.reg, NULL, &list));
    assert_int_equal(list->count, 3);
    int mask = 0;
    for (size_t i = 0; i < list->count; i++) {
        const presence_channel_entry *e = &list->channels[i];
        if (strcmp(e->channel, "chat:1") == 0) {
            mask |= 1;
            assert_int_equal(e->stats.num_clients, 3);
            assert_int_equal(e->stats.num_users, 2);
            assert_int_equal(e->seq, 3);
        } else if (strcmp(e->channel, "chat:2") == 0) {
            mask |= 2;
            assert_int_equal(e->stats.num_clients, 1);
            assert_int_equal(e->seq, 1);
        } else {
            assert_string_equal(e->channel, "plain");
            mask |= 4;
            assert_int_equal(e->seq, 2);
        }
    }
    assert_int_equal(mask, 7);
    presence_channel_list_free(list);

    assert_ok(presence_channels(f.reg, "chat", &list));
    assert_int_equal(list->count, 2);
    for (size_t i = 0; i < list->count; i++) {
        assert_memory_equal(list->channels[i].channel, "chat:", 5);
    }
    presence_channel_list_free(list);
    assert_ok(presence_channels(f.reg, "", &list));
    assert_int_equal(list->count, 1);
    assert_string_equal(list->channels[0].channel, "plain");
    presence_channel_list_free(list);
    assert_ok(presence_channels(f.reg, "other", &list));
    assert_int_equal(list->count, 0);
    presence_channel_list_free(list);
    fixture_close(&f);
}

/* Failed calls change nothing (a sample of the error paths). */
static void test_failures_change_nothing(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.channels_per_client_max = 2;
    fixture_open(&f);
    ns_set(f.reg, "chat", true, true, 0, 1);
    ns_set(f.reg, "off", false, true, 0, 0);
    assert_ok(join_info(f.reg, "a", "c1", "u1", "conn", "i"));
    assert_ok(join_info(f.reg, "chat:1", "c1", "u1", "conn", "i"));
    const char *const nss[] = {"", "chat", "off", NULL};
    char *before = dump_registry(f.reg, nss);
    size_t events = f.rec.count;

    assert_rc(join_info(f.reg, "b", "c1", "u1", "conn", NULL),
              PRESENCE_ERR_CLIENT_CHANNEL_LIMIT);
    assert_rc(join_simple(f.reg, "chat:1", "c2", "u2"),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    assert_rc(join_simple(f.reg, "off:1", "c2", "u2"),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(join_simple(f.reg, "nope:1", "c2", "u2"),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(join_info(f.reg, "a", "c1", "u2", "conn", "i"),
              PRESENCE_ERR_CONFLICT);
    assert_rc(presence_leave(f.reg, "a", "c2"), PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_update(f.reg, "b", "c1", "z", 1),
              PRESENCE_ERR_NOT_FOUND);
    presence_counts counts_before, counts_after;
    assert_ok(presence_registry_counts(f.reg, &counts_before));
    assert_ok(presence_disconnect(f.reg, "c2", NULL)); /* in no channel */
    assert_ok(presence_registry_counts(f.reg, &counts_after));
    assert_memory_equal(&counts_before, &counts_after, sizeof counts_before);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.ttl_ms = -5;
    assert_rc(presence_namespace_set(f.reg, "chat", &o), PRESENCE_ERR_INVALID);

    char *after = dump_registry(f.reg, nss);
    assert_string_equal(before, after);
    assert_int_equal(f.rec.count, events);
    free(before);
    free(after);
    fixture_close(&f);
}

/* Turning a namespace's presence off empties its channels, also when
 * nobody listens (no queued event keeps a channel alive meanwhile), and
 * leaves other namespaces alone. */
static void test_presence_off_without_subscribers(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(presence_unsubscribe(f.reg, f.sub));
    ns_set(f.reg, "room", true, true, 0, 0);
    char cl[32], ch[32];
    for (int i = 0; i < 300; i++) {
        snprintf(cl, sizeof(cl), "c%d", i);
        snprintf(ch, sizeof(ch), "room:%d", i % 40);
        assert_ok(join_simple(f.reg, ch, cl, "u"));
        assert_ok(join_simple(f.reg, "lobby", cl, "u"));
    }
    ns_set(f.reg, "room", false, true, 0, 0);
    assert_counts(f.reg, 1, 300, 1, 300);
    assert_stats(f.reg, "lobby", 300, 1);
    presence_channel_stats st;
    assert_rc(presence_stats(f.reg, "room:1", presence_trusted(), &st),
              PRESENCE_ERR_NOT_AVAILABLE);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_leave),
        cmocka_unit_test(test_leave_not_found),
        cmocka_unit_test(test_disconnect),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_touch),
        cmocka_unit_test(test_touch_finds_each_membership),
        cmocka_unit_test(test_channel_close),
        cmocka_unit_test(test_join_upsert),
        cmocka_unit_test(test_join_conflict),
        cmocka_unit_test(test_client_channel_limit),
        cmocka_unit_test(test_channel_member_limit),
        cmocka_unit_test(test_namespace_member_limit_only),
        cmocka_unit_test(test_channel_limit),
        cmocka_unit_test(test_empty_channel_freed),
        cmocka_unit_test(test_stats_and_users),
        cmocka_unit_test(test_anonymous_connections),
        cmocka_unit_test(test_client_channels),
        cmocka_unit_test(test_channel_list),
        cmocka_unit_test(test_failures_change_nothing),
        cmocka_unit_test(test_presence_off_without_subscribers),
    };
    return cmocka_run_group_tests_name("membership", tests, NULL, NULL);
}
