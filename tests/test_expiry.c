/*
 * Presence TTL on a fake clock: deadlines, touches, expiry, TTL changes,
 * a clock that goes backwards, and a large expiry.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t deadline(fixture *f)
{
    return presence_next_deadline_ms(f->reg);
}

static size_t expire_at(fixture *f, int64_t now)
{
    size_t n = 99999;
    assert_ok(presence_expire(f->reg, now, &n, NULL));
    return n;
}

/* Memberships keep their times in 47 bits (a flag shares their last
 * 16-bit word): negative times and times near the edge of that range come
 * back as they went in, with or without a chan_info, and a clock beyond it
 * reads as its edge (2^46 - 1 ms, 2,200 years). */
static void test_times_far_from_zero(void **state)
{
    (void)state;
    const int64_t edge = ((int64_t)1 << 46) - 1;
    fixture f;
    fixture_config(&f);
    fake_clock_set(&f.clock, -edge);
    fixture_open(&f);
    ns_set(f.reg, "tt", true, true, 100, 0);
    assert_ok(join_info(f.reg, "tt:a", "c1", "u1", NULL, "ci"));
    assert_int_equal(deadline(&f), -edge + 100);
    fake_clock_set(&f.clock, -1);
    assert_ok(join_simple(f.reg, "tt:a", "c2", "u1"));
    fake_clock_set(&f.clock, edge - 5);
    assert_ok(presence_touch(f.reg, "tt:a", "c2"));
    presence_snapshot *snap;
    assert_ok(presence_query(f.reg, "tt:a", presence_trusted(), &snap));
    assert_int_equal(snap->count, 2);
    for (size_t i = 0; i < snap->count; i++) {
        if (strcmp(snap->members[i].client_id, "c1") == 0) {
            assert_int_equal(snap->members[i].joined_at_ms, -edge);
            assert_int_equal(snap->members[i].touched_at_ms, -edge);
            assert_int_equal(snap->members[i].chan_info_len, 2);
            assert_memory_equal(snap->members[i].chan_info, "ci", 2);
        } else {
            assert_int_equal(snap->members[i].joined_at_ms, -1);
            assert_int_equal(snap->members[i].touched_at_ms, edge - 5);
        }
    }
    presence_snapshot_free(snap);
    fake_clock_set(&f.clock, INT64_MAX);
    assert_ok(presence_touch(f.reg, "tt:a", "c1"));
    assert_int_equal(deadline(&f), edge - 5 + 100);
    assert_ok(presence_query(f.reg, "tt:a", presence_trusted(), &snap));
    for (size_t i = 0; i < snap->count; i++) {
        if (strcmp(snap->members[i].client_id, "c1") == 0) {
            assert_int_equal(snap->members[i].joined_at_ms, -edge);
            assert_int_equal(snap->members[i].touched_at_ms, edge);
            assert_int_equal(snap->members[i].chan_info_len, 2);
        }
    }
    presence_snapshot_free(snap);
    assert_int_equal(expire_at(&f, edge + 100), 2);
    fixture_close(&f);
}

/* Without a TTL no touch order is kept; a TTL turned on later orders the
 * members by their touch times, and those touched in the same millisecond
 * by client id, then channel name (header: presence_namespace_set). */
static void test_ttl_turned_on_later(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "tt", true, true, 0, 0);
    /* t = 1000: "b" then "a" in one channel, "c" in another; t = 1010:
     * "d"; t = 1020: "b" touched again in "tt:x". */
    assert_ok(join_simple(f.reg, "tt:x", "b", "u"));
    assert_ok(join_simple(f.reg, "tt:x", "a", "u"));
    assert_ok(join_simple(f.reg, "tt:y", "c", "u"));
    assert_ok(join_simple(f.reg, "tt:y", "b", "u"));
    fake_clock_set(&f.clock, 1010);
    assert_ok(join_simple(f.reg, "tt:x", "d", "u"));
    fake_clock_set(&f.clock, 1020);
    assert_ok(presence_touch(f.reg, "tt:x", "b"));
    assert_int_equal(deadline(&f), PRESENCE_NO_DEADLINE);

    ns_set(f.reg, "tt", true, true, 100, 0);
    assert_int_equal(deadline(&f), 1100);
    recorder_clear(&f.rec);
    assert_int_equal(expire_at(&f, 1100), 3); /* a, b in tt:y, c */
    const rec_event *e = recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE,
                                       "tt:x", NULL);
    assert_non_null(e);
    assert_string_equal(e->client_id, "a");
    e = recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "tt:y", NULL);
    assert_non_null(e);
    assert_string_equal(e->client_id, "b"); /* "b" < "c" */
    e = recorder_find(&f.rec, (size_t)(e - f.rec.events) + 1,
                      PRESENCE_EVENT_LEAVE, "tt:y", NULL);
    assert_non_null(e);
    assert_string_equal(e->client_id, "c");
    assert_int_equal(deadline(&f), 1110);
    /* From now on the order is the touch order. */
    fake_clock_set(&f.clock, 1020);
    assert_ok(join_simple(f.reg, "tt:y", "z", "u"));
    assert_ok(presence_touch(f.reg, "tt:x", "d"));
    assert_int_equal(expire_at(&f, 1119), 0);
    recorder_clear(&f.rec);
    assert_int_equal(expire_at(&f, 1120), 3);
    e = recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "tt:x", NULL);
    assert_string_equal(e->client_id, "b");
    e = recorder_find(&f.rec, (size_t)(e - f.rec.events) + 1,
                      PRESENCE_EVENT_LEAVE, "tt:x", NULL);
    assert_string_equal(e->client_id, "d");

    /* Off again, then on: the order is built anew. */
    ns_set(f.reg, "tt", true, true, 0, 0);
    assert_ok(join_simple(f.reg, "tt:x", "m", "u"));
    assert_int_equal(deadline(&f), PRESENCE_NO_DEADLINE);
    ns_set(f.reg, "tt", true, true, 10, 0);
    assert_int_equal(deadline(&f), 1030);
    assert_int_equal(expire_at(&f, 1030), 1);
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* Turning a TTL on needs memory (links, and room to sort); without it the
 * call fails and changes nothing, and a retry works. */
static void test_ttl_turned_on_out_of_memory(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "tt", true, true, 0, 0);
    char id[16];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof id, "c%d", i);
        assert_ok(join_simple(f.reg, i % 2 ? "tt:x" : "tt:y", id, "u"));
    }
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.ttl_ms = 50;
    int failures = 0;
    for (long n = 0;; n++) {
        test_alloc_arm(&f.alloc, n);
        int rc = presence_namespace_set(f.reg, "tt", &o);
        test_alloc_disarm(&f.alloc);
        if (rc == PRESENCE_OK) {
            break;
        }
        assert_int_equal(rc, PRESENCE_ERR_NOMEM);
        failures++;
        presence_namespace_options got;
        presence_namespace_options_init(&got);
        assert_ok(presence_namespace_get(f.reg, "tt", &got));
        assert_int_equal(got.ttl_ms, 0);
        assert_int_equal(deadline(&f), PRESENCE_NO_DEADLINE);
        assert_int_equal(expire_at(&f, 1000000), 0);
    }
    assert_true(failures > 0);
    assert_int_equal(deadline(&f), 1050);
    assert_int_equal(expire_at(&f, 1050), 200);
    fixture_close(&f);
}

static void test_no_deadline(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_int_equal(deadline(&f), PRESENCE_NO_DEADLINE);
    assert_int_equal(presence_next_deadline_ms(NULL), PRESENCE_NO_DEADLINE);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    ns_set(f.reg, "tt", true, true, 100, 0);
    assert_int_equal(deadline(&f), PRESENCE_NO_DEADLINE);
    assert_int_equal(expire_at(&f, INT64_MAX / 2), 0);
    assert_ok(presence_expire(f.reg, INT64_MAX / 2, NULL, NULL));
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_int_equal(f.rec.count, 2);
    fixture_close(&f);
}

static void test_expire_exactly_due(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "tt", true, true, 100, 0);
    assert_ok(join_simple(f.reg, "tt:a", "c1", "u1")); /* 1100 */
    assert_ok(join_simple(f.reg, "plain", "c1", "u1")); /* no TTL */
    fake_clock_set(&f.clock, 1030);
    assert_ok(join_simple(f.reg, "tt:a", "c2", "u1")); /* 1130 */
    fake_clock_set(&f.clock, 1060);
    assert_ok(join_simple(f.reg, "tt:a", "c3", "u2")); /* 1160 */
    assert_ok(join_simple(f.reg, "tt:b", "c4", "u3")); /* 1160 */
    assert_int_equal(deadline(&f), 1100);
    recorder_clear(&f.rec);

    assert_int_equal(expire_at(&f, 1099), 0);
    assert_int_equal(f.rec.count, 0);
    assert_int_equal(expire_at(&f, 1100), 1);
    assert_int_equal(f.rec.count, 1);
    assert_int_equal(f.rec.events[0].kind, PRESENCE_EVENT_LEAVE);
    assert_int_equal(f.rec.events[0].reason, PRESENCE_LEAVE_EXPIRED);
    assert_string_equal(f.rec.events[0].client_id, "c1");
    assert_string_equal(f.rec.events[0].channel, "tt:a");
    assert_int_equal(f.rec.events[0].stats.num_clients, 2);
    assert_int_equal(deadline(&f), 1130);
    /* c1 keeps its membership without a TTL. */
    assert_counts(f.reg, 3, 4, 3, 4);
    assert_stats(f.reg, "plain", 1, 1);

    assert_int_equal(expire_at(&f, 1159), 1); /* c2, u1's last in t:a */
    assert_non_null(recorder_find(&f.rec, 0, PRESENCE_EVENT_USER_LEAVE,
                                  "tt:a", "c2"));
    assert_int_equal(expire_at(&f, 1160), 2);
    assert_int_equal(deadline(&f), PRESENCE_NO_DEADLINE);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_EXPIRED),
                     4);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_USER_LEAVE,
                                           PRESENCE_LEAVE_EXPIRED),
                     3);
    assert_int_equal(f.rec.count, 7);
    assert_counts(f.reg, 1, 1, 1, 1);
    fixture_close(&f);
}

static void test_touch_moves_deadline(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "tt", true, true, 100, 0);
    assert_ok(join_simple(f.reg, "tt:a", "c1", "u1")); /* 1100 */
    fake_clock_set(&f.clock, 1050);
    assert_ok(join_simple(f.reg, "tt:a", "c2", "u2")); /* 1150 */
    assert_ok(join_simple(f.reg, "tt:b", "c2", "u2")); /* 1150 */
    assert_int_equal(deadline(&f), 1100);

    fake_clock_set(&f.clock, 1080);
    assert_ok(presence_touch(f.reg, "tt:a", "c1")); /* 1180 */
    assert_int_equal(deadline(&f), 1150);
    fake_clock_set(&f.clock, 1120);
    assert_ok(presence_touch_client(f.reg, "c2")); /* both 1220 */
    assert_int_equal(deadline(&f), 1180);

    assert_int_equal(expire_at(&f, 1179), 0);
    assert_int_equal(expire_at(&f, 1180), 1);
    assert_int_equal(deadline(&f), 1220);
    assert_int_equal(expire_at(&f, 1219), 0);
    assert_int_equal(expire_at(&f, 1220), 2);
    assert_counts(f.reg, 0, 0, 0, 0);
    /* Touches never produce events. */
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_UPDATE), 0);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), 3);
    fixture_close(&f);
}

static void test_upsert_renews_update_does_not(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "tt", true, true, 100, 0);
    assert_ok(join_info(f.reg, "tt:a", "c1", "u1", NULL, "x")); /* 1100 */
    fake_clock_set(&f.clock, 1050);
    assert_ok(presence_update(f.reg, "tt:a", "c1", "y", 1));
    assert_int_equal(deadline(&f), 1100);
    fake_clock_set(&f.clock, 1070);
    assert_ok(join_info(f.reg, "tt:a", "c1", "u1", NULL, "y")); /* 1170 */
    assert_int_equal(deadline(&f), 1170);
    fake_clock_set(&f.clock, 1090);
    assert_ok(join_info(f.reg, "tt:a", "c1", "u1", NULL, "z")); /* 1190 */
    assert_int_equal(deadline(&f), 1190);
    assert_int_equal(expire_at(&f, 1189), 0);
    assert_int_equal(expire_at(&f, 1190), 1);
    fixture_close(&f);
}

static void test_ttl_change_applies(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "tt", true, true, 100, 0);
    assert_ok(join_simple(f.reg, "tt:a", "c1", "u1"));   /* touched 1000 */
    assert_ok(join_simple(f.reg, "plain", "c2", "u2")); /* touched 1000 */
    fake_clock_set(&f.clock, 1040);
    assert_ok(presence_touch(f.reg, "tt:a", "c1"));      /* touched 1040 */
    assert_int_equal(deadline(&f), 1140);

    ns_set(f.reg, "tt", true, true, 500, 0);
    assert_int_equal(deadline(&f), 1540);
    ns_set(f.reg, "tt", true, true, 0, 0);
    assert_int_equal(deadline(&f), PRESENCE_NO_DEADLINE);
    assert_int_equal(expire_at(&f, 1000000), 0);

    /* A TTL on the default namespace reaches the existing membership,
     * from its last touch: already due. */
    fake_clock_set(&f.clock, 1200);
    ns_set(f.reg, "", true, true, 50, 0);
    assert_int_equal(deadline(&f), 1050);
    ns_set(f.reg, "tt", true, true, 300, 0);
    assert_int_equal(deadline(&f), 1050);
    assert_int_equal(expire_at(&f, 1200), 1);
    const rec_event *e =
        recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "plain", "c2");
    assert_non_null(e);
    assert_int_equal(e->reason, PRESENCE_LEAVE_EXPIRED);
    assert_int_equal(deadline(&f), 1340);
    assert_int_equal(expire_at(&f, 1340), 1);
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

static void test_default_namespace_ttl_from_config(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.default_namespace.ttl_ms = 250;
    fixture_open(&f);
    ns_set(f.reg, "long", true, true, 10000, 0);
    assert_ok(join_simple(f.reg, "x", "c1", "u1"));
    assert_ok(join_simple(f.reg, "long:x", "c1", "u1"));
    assert_int_equal(deadline(&f), 1250);
    assert_int_equal(expire_at(&f, 1250), 1);
    assert_int_equal(deadline(&f), 11000);
    assert_counts(f.reg, 1, 1, 1, 1);
    fixture_close(&f);
}

/* The clock going backwards stands still instead: deadlines never move
 * earlier, and join/touch times never go back. */
static void test_clock_backwards(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fake_clock_set(&f.clock, 5000);
    fixture_open(&f);
    ns_set(f.reg, "tt", true, true, 100, 0);
    assert_ok(join_simple(f.reg, "tt:a", "c1", "u1")); /* 5100 */
    fake_clock_set(&f.clock, 3000);
    assert_ok(join_simple(f.reg, "tt:a", "c2", "u2")); /* not 3100 */
    assert_ok(presence_touch(f.reg, "tt:a", "c1"));    /* not 3100 */
    assert_int_equal(deadline(&f), 5100);
    assert_int_equal(expire_at(&f, 3100), 0);
    assert_int_equal(expire_at(&f, 5099), 0);

    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "tt:a", presence_trusted(), &snap));
    assert_int_equal(snap->count, 2);
    for (size_t i = 0; i < snap->count; i++) {
        assert_true(snap->members[i].joined_at_ms >= 5000);
        assert_true(snap->members[i].touched_at_ms >= 5000);
    }
    presence_snapshot_free(snap);

    fake_clock_set(&f.clock, 5050);
    assert_ok(join_simple(f.reg, "tt:a", "c3", "u3")); /* 5150 */
    assert_int_equal(expire_at(&f, 5100), 2);
    assert_int_equal(deadline(&f), 5150);
    assert_int_equal(expire_at(&f, 5150), 1);
    /* Event times never went back. */
    for (size_t i = 1; i < f.rec.count; i++) {
        assert_true(f.rec.events[i].time_ms >= f.rec.events[i - 1].time_ms);
    }
    fixture_close(&f);
}

/* The clock stands still for the whole registry, not per lock shard: a
 * channel whose shard has not seen the later time yet still gets it. With
 * hash seed 1, "ttl:a" and "ttl:b" fall in different shards (#11). */
static void test_clock_backwards_across_shards(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.hash_seed = 1;
    fixture_open(&f);
    ns_set(f.reg, "ttl", true, true, 1000, 0);
    assert_ok(join_simple(f.reg, "ttl:a", "c1", "u1")); /* at 1000 */
    fake_clock_set(&f.clock, 500);
    assert_ok(join_simple(f.reg, "ttl:b", "c2", "u2")); /* at 1000 too */
    fake_clock_set(&f.clock, 1600);
    assert_int_equal(deadline(&f), 2000);
    assert_int_equal(expire_at(&f, presence_now_ms(f.reg)), 0);

    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "ttl:b", presence_trusted(), &snap));
    assert_int_equal(snap->count, 1);
    assert_int_equal(snap->members[0].joined_at_ms, 1000);
    assert_int_equal(snap->members[0].touched_at_ms, 1000);
    presence_snapshot_free(snap);
    size_t joins = 0;
    for (size_t i = 0; i < f.rec.count; i++) {
        const rec_event *e = &f.rec.events[i];
        assert_int_not_equal(e->reason, PRESENCE_LEAVE_EXPIRED);
        if (strcmp(e->client_id, "c2") == 0) {
            assert_int_equal(e->time_ms, 1000);
            joins++;
        }
    }
    assert_int_equal(joins, 2); /* client and user join */
    assert_int_equal(expire_at(&f, 2000), 2);
    fixture_close(&f);
}

#define MANY 10000

static void test_expire_10k(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "tt", true, true, 1000, 0);
    char ch[32], cl[32], us[32];
    for (int i = 0; i < MANY; i++) {
        fake_clock_set(&f.clock, 1000 + i / 10);
        snprintf(ch, sizeof(ch), "tt:%d", i % 100);
        snprintf(cl, sizeof(cl), "c%d", i);
        snprintf(us, sizeof(us), "u%d", i);
        assert_ok(join_simple(f.reg, ch, cl, us));
    }
    assert_int_equal(deadline(&f), 2000);
    recorder_clear(&f.rec);

    /* Due: joined at <= 1499, that is i < 5000. */
    assert_int_equal(expire_at(&f, 2499), MANY / 2);
    assert_int_equal(deadline(&f), 2500);
    assert_counts(f.reg, 100, MANY / 2, MANY / 2, MANY / 2);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_EXPIRED),
                     MANY / 2);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_USER_LEAVE,
                                           PRESENCE_LEAVE_EXPIRED),
                     MANY / 2);
    assert_int_equal(f.rec.count, MANY);
    for (size_t i = 0; i < f.rec.count; i++) {
        assert_true(atoi(f.rec.events[i].client_id + 1) < MANY / 2);
    }
    /* Those left are exactly the others. */
    for (int k = 0; k < 100; k++) {
        snprintf(ch, sizeof(ch), "tt:%d", k);
        presence_snapshot *snap = NULL;
        assert_ok(presence_query(f.reg, ch, presence_trusted(), &snap));
        assert_int_equal(snap->count, MANY / 200);
        for (size_t i = 0; i < snap->count; i++) {
            int idx = atoi(snap->members[i].client_id + 1);
            assert_true(idx >= MANY / 2);
            assert_int_equal(idx % 100, k);
        }
        presence_snapshot_free(snap);
    }
    recorder_clear(&f.rec);
    assert_int_equal(expire_at(&f, INT64_MAX / 2), MANY / 2);
    assert_int_equal(f.rec.count, MANY);
    assert_int_equal(deadline(&f), PRESENCE_NO_DEADLINE);
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* Expiry from inside a callback is queued like everything else. */
typedef struct expirer {
    recorder *rec;
    int rc;
    size_t expired;
    bool fired;
} expirer;

static void expire_cb(presence_registry *r, const presence_event *e,
                      void *ud)
{
    expirer *x = ud;
    recorder_enter(x->rec);
    recorder_add(x->rec, r, e);
    if (!x->fired && e->kind == PRESENCE_EVENT_JOIN &&
        strcmp(e->client_id, "trigger") == 0) {
        x->fired = true;
        x->rc = presence_expire(r, 2000, &x->expired, NULL);
    }
    recorder_leave(x->rec);
}

static void test_expire_from_callback(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(presence_unsubscribe(f.reg, f.sub));
    expirer x = {&f.rec, -100, 0, false};
    presence_subscription s;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, expire_cb, &x, &s));
    ns_set(f.reg, "tt", true, true, 100, 0);
    assert_ok(join_simple(f.reg, "tt:a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "tt:a", "c2", "u2"));
    recorder_clear(&f.rec);
    fake_clock_set(&f.clock, 2000);
    assert_ok(join_simple(f.reg, "tt:b", "trigger", "u3"));
    assert_true(x.fired);
    assert_ok(x.rc);
    assert_int_equal(x.expired, 2);
    assert_int_equal(f.rec.max_depth, 1);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_EXPIRED),
                     2);
    assert_int_equal(f.rec.count, 2 + 4);
    assert_counts(f.reg, 1, 1, 1, 1);
    fixture_close(&f);
}

/* The reconnect pattern: a callback joins every expired client again.
 * Each original membership expires once; the new ones, touched now, are
 * not due and stay; the call terminates. */
typedef struct rejoiner {
    recorder *rec;
    int rejoined;
    int failures;
} rejoiner;

static void rejoin_cb(presence_registry *r, const presence_event *e,
                      void *ud)
{
    rejoiner *j = ud;
    recorder_enter(j->rec);
    recorder_add(j->rec, r, e);
    if (e->kind == PRESENCE_EVENT_LEAVE &&
        e->reason == PRESENCE_LEAVE_EXPIRED) {
        if (join_simple(r, e->channel, e->client_id, e->user_id) ==
            PRESENCE_OK) {
            j->rejoined++;
        } else {
            j->failures++;
        }
    }
    recorder_leave(j->rec);
}

/* A registry whose only subscriber rejoins expired clients, with n clients
 * in `channels` channels of namespace tt (TTL 100), the clock at 1100. */
static void rejoin_setup(fixture *f, rejoiner *j, int n, int channels)
{
    fixture_config(f);
    fixture_open(f);
    assert_ok(presence_unsubscribe(f->reg, f->sub));
    *j = (rejoiner){&f->rec, 0, 0};
    presence_subscription s;
    assert_ok(presence_subscribe(f->reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, rejoin_cb, j, &s));
    ns_set(f->reg, "tt", true, true, 100, 0);
    char cl[32];
    for (int i = 0; i < n; i++) {
        snprintf(cl, sizeof(cl), "c%d", i);
        assert_ok(join_simple(f->reg, i % channels ? "tt:a" : "tt:b", cl, cl));
    }
    fake_clock_set(&f->clock, 1100);
}

static void test_rejoin_expired_from_callback(void **state)
{
    (void)state;
    fixture f;
    rejoiner j;
    rejoin_setup(&f, &j, 1000, 2);
    recorder_clear(&f.rec);
    assert_int_equal(expire_at(&f, 1100), 1000);
    assert_int_equal(j.failures, 0);
    assert_int_equal(j.rejoined, 1000);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 1000);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), 1000);
    assert_int_equal(f.rec.max_depth, 1);
    assert_counts(f.reg, 2, 1000, 1000, 1000);
    assert_int_equal(deadline(&f), 1200);
    fixture_close(&f);
}

/* The same with now_ms far ahead of the clock: the rejoined memberships
 * are due at that time too; the call stops after as many removals as the
 * registry held when it began, and the next call takes the rest. */
static void test_rejoin_with_now_ahead_of_clock(void **state)
{
    (void)state;
    fixture f;
    rejoiner j;
    rejoin_setup(&f, &j, 100, 1);
    assert_int_equal(expire_at(&f, 1000000), 100);
    assert_int_equal(j.rejoined, 100);
    assert_counts(f.reg, 1, 100, 100, 100);
    /* The next call takes the rejoined ones. */
    assert_int_equal(expire_at(&f, 1000000), 100);
    assert_int_equal(j.rejoined, 200);
    assert_int_equal(j.failures, 0);
    fixture_close(&f);
}

/* presence_expire() gives the next deadline, as presence_next_deadline_ms()
 * would, whatever it removed. */
static void test_expire_returns_next_deadline(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    int64_t next = 0;
    size_t n = 9;
    assert_ok(presence_expire(f.reg, 1000, &n, &next));
    assert_int_equal(n, 0);
    assert_true(next == PRESENCE_NO_DEADLINE);
    ns_set(f.reg, "short", true, true, 100, 0);
    ns_set(f.reg, "long", true, true, 1000, 0);
    char ch[32], id[32];
    for (int i = 0; i < 40; i++) {
        snprintf(ch, sizeof ch, "%s:c%d", i % 2 ? "short" : "long", i);
        snprintf(id, sizeof id, "k%d", i);
        assert_ok(join_simple(f.reg, ch, id, "u"));
        fake_clock_advance(&f.clock, 10);
    }
    /* Joined at 1000..1390: short ones (odd) due at 1110..1490, long ones
     * at 1000 + 1000.. */
    for (int64_t t = 1000; t <= 2500; t += 37) {
        fake_clock_set(&f.clock, t);
        assert_ok(presence_expire(f.reg, t, &n, &next));
        assert_true(next == presence_next_deadline_ms(f.reg));
        assert_true(next > t);
    }
    assert_true(next == PRESENCE_NO_DEADLINE);
    assert_counts(f.reg, 0, 0, 0, 0);
    assert_ok(presence_expire(f.reg, 2600, NULL, NULL));
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_deadline),
        cmocka_unit_test(test_ttl_turned_on_later),
        cmocka_unit_test(test_ttl_turned_on_out_of_memory),
        cmocka_unit_test(test_expire_exactly_due),
        cmocka_unit_test(test_touch_moves_deadline),
        cmocka_unit_test(test_upsert_renews_update_does_not),
        cmocka_unit_test(test_ttl_change_applies),
        cmocka_unit_test(test_default_namespace_ttl_from_config),
        cmocka_unit_test(test_clock_backwards),
        cmocka_unit_test(test_clock_backwards_across_shards),
        cmocka_unit_test(test_expire_10k),
        cmocka_unit_test(test_expire_from_callback),
        cmocka_unit_test(test_rejoin_expired_from_callback),
        cmocka_unit_test(test_rejoin_with_now_ahead_of_clock),
        cmocka_unit_test(test_times_far_from_zero),
        cmocka_unit_test(test_expire_returns_next_deadline),
    };
    return cmocka_run_group_tests_name("expiry", tests, NULL, NULL);
}
