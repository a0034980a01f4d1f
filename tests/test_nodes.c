/*
 * Nodes: memberships held for other processes. Remote joins, leaves and
 * upserts with their events; node ids in events and in every kind of
 * snapshot; conflicts between local and remote calls in every direction;
 * remote memberships never expiring; node_down; node_memberships; the
 * PRESENCE_EVENTS_EVERY_NAMESPACE flag; argument errors.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A remote join with string infos (NULL: none). */
static int remote_join(presence_registry *reg, const char *node,
                       const char *channel, const char *client,
                       const char *user, const char *conn, const char *chan)
{
    return presence_remote_join(reg, node, channel, client, user, conn,
                                conn != NULL ? strlen(conn) : 0, chan,
                                chan != NULL ? strlen(chan) : 0);
}

/* The node_id of the member with this client id in a snapshot ("?" when
 * absent). */
static const char *node_of(const presence_snapshot *snap, const char *client)
{
    for (size_t i = 0; i < snap->count; i++) {
        if (strcmp(snap->members[i].client_id, client) == 0) {
            assert_non_null(snap->members[i].node_id);
            return snap->members[i].node_id;
        }
    }
    return "?";
}

/* The member of the snapshot whose client has this id (it must be
 * there). */
static const presence_member *member_of(const presence_snapshot *snap,
                                        const char *client)
{
    for (size_t i = 0; i < snap->count; i++) {
        if (strcmp(snap->members[i].client_id, client) == 0) {
            return &snap->members[i];
        }
    }
    fail_msg("no member %s", client);
    return NULL;
}

/* Whether p points into the snapshot's block: the members array and the
 * bytes after it (the block ends at the furthest string it holds). */
static bool in_snapshot(const presence_snapshot *snap, const void *p)
{
    const char *lo = (const char *)snap->members;
    const char *hi = lo;
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        const char *s[] = {m->channel, m->client_id, m->user_id, m->node_id};
        for (size_t k = 0; k < 4; k++) {
            const char *end = s[k] + strlen(s[k]) + 1;
            hi = end > hi ? end : hi;
        }
    }
    return (const char *)p >= lo && (const char *)p < hi;
}

static void assert_nodes_point_inside(const presence_snapshot *snap)
{
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        assert_non_null(m->node_id);
        assert_true(in_snapshot(snap, m->node_id));
        /* Past the member array: strings, not the array itself. */
        assert_true((const char *)m->node_id >=
                    (const char *)(snap->members + snap->count));
    }
}

static void open_fixture(fixture *f)
{
    fixture_config(f);
    fixture_open(f);
}

/* ---- remote join, upsert, leave, with events ----------------------------- */

static void test_remote_join_leave_events(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f);
    assert_ok(remote_join(f.reg, "n1", "room", "r1", "u1", "rc", "x"));
    assert_int_equal(f.rec.count, 2);
    const rec_event *e = &f.rec.events[0];
    assert_int_equal(e->kind, PRESENCE_EVENT_JOIN);
    assert_string_equal(e->node_id, "n1");
    assert_string_equal(e->client_id, "r1");
    assert_string_equal(e->user_id, "u1");
    assert_int_equal(e->conn_info_len, 2);
    assert_memory_equal(e->conn_info, "rc", 2);
    assert_int_equal(e->chan_info_len, 1);
    assert_int_equal(e->seq, 1);
    assert_int_equal(e->stats.num_clients, 1);
    assert_int_equal(f.rec.events[1].kind, PRESENCE_EVENT_USER_JOIN);
    assert_string_equal(f.rec.events[1].node_id, "n1");

    /* A local client of the same user: "" as its node, no user event. */
    assert_ok(join_simple(f.reg, "room", "c1", "u1"));
    assert_int_equal(f.rec.count, 3);
    assert_int_equal(f.rec.events[2].kind, PRESENCE_EVENT_JOIN);
    assert_string_equal(f.rec.events[2].node_id, "");
    assert_stats(f.reg, "room", 2, 1);
    assert_counts(f.reg, 1, 2, 1, 2);

    /* Upserts: the same bytes change nothing, new ones are an update. */
    assert_ok(remote_join(f.reg, "n1", "room", "r1", "u1", "rc", "x"));
    assert_int_equal(f.rec.count, 3);
    assert_ok(remote_join(f.reg, "n1", "room", "r1", "u1", "rc", "yy"));
    assert_int_equal(f.rec.count, 4);
    e = &f.rec.events[3];
    assert_int_equal(e->kind, PRESENCE_EVENT_UPDATE);
    assert_string_equal(e->node_id, "n1");
    assert_int_equal(e->seq, 3);
    assert_int_equal(e->chan_info_len, 2);
    assert_memory_equal(e->chan_info, "yy", 2);

    /* The same client in a second channel. */
    assert_ok(remote_join(f.reg, "n1", "other", "r1", "u1", "rc", NULL));
    assert_counts(f.reg, 2, 2, 1, 3);

    /* A leave with the node's reason; the user stays through c1. */
    size_t before = f.rec.count;
    assert_ok(presence_remote_leave(f.reg, "n1", "room", "r1",
                                    PRESENCE_LEAVE_RESYNC));
    assert_int_equal(f.rec.count, before + 1);
    e = &f.rec.events[before];
    assert_int_equal(e->kind, PRESENCE_EVENT_LEAVE);
    assert_int_equal(e->reason, PRESENCE_LEAVE_RESYNC);
    assert_string_equal(e->node_id, "n1");
    assert_int_equal(e->chan_info_len, 2);
    assert_stats(f.reg, "room", 1, 1);
    assert_rc(presence_remote_leave(f.reg, "n1", "room", "r1",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_NOT_FOUND);

    /* Its last channel: user leave too, with the node. */
    before = f.rec.count;
    assert_ok(presence_remote_leave(f.reg, "n1", "other", "r1",
                                    PRESENCE_LEAVE_EXPIRED));
    assert_int_equal(f.rec.count, before + 2);
    assert_int_equal(f.rec.events[before + 1].kind,
                     PRESENCE_EVENT_USER_LEAVE);
    assert_int_equal(f.rec.events[before + 1].reason,
                     PRESENCE_LEAVE_EXPIRED);
    assert_string_equal(f.rec.events[before + 1].node_id, "n1");
    assert_counts(f.reg, 1, 1, 1, 1);

    /* Every leave reason is accepted. */
    for (int r = PRESENCE_LEAVE_EXPLICIT; r <= PRESENCE_LEAVE_RESYNC; r++) {
        assert_ok(remote_join(f.reg, "n2", "room", "r2", "u2", NULL, NULL));
        assert_ok(presence_remote_leave(f.reg, "n2", "room", "r2",
                                        (presence_leave_reason)r));
        const rec_event *l = &f.rec.events[f.rec.count - 2];
        assert_int_equal(l->kind, PRESENCE_EVENT_LEAVE);
        assert_int_equal(l->reason, r);
        assert_string_equal(l->node_id, "n2");
    }
    fixture_close(&f);
}

/* A client whose node's last client left can come back as local, and the
 * other way round; a node's entry is made again when it returns. */
static void test_client_changes_sides(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f);
    assert_ok(remote_join(f.reg, "n1", "a", "c1", "u1", NULL, NULL));
    assert_ok(presence_remote_leave(f.reg, "n1", "a", "c1",
                                    PRESENCE_LEAVE_EXPLICIT));
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_string_equal(f.rec.events[f.rec.count - 2].node_id, "");
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_ok(remote_join(f.reg, "n2", "a", "c1", "u1", NULL, NULL));
    assert_string_equal(f.rec.events[f.rec.count - 2].node_id, "n2");
    assert_ok(presence_node_down(f.reg, "n2", PRESENCE_LEAVE_NODE_DOWN, NULL));
    assert_ok(remote_join(f.reg, "n1", "a", "c1", "u1", NULL, NULL));
    assert_string_equal(f.rec.events[f.rec.count - 2].node_id, "n1");
    fixture_close(&f);
}

/* The node id outlives its last client for as long as events need it. */
static void test_node_id_in_late_events(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f);
    long blocks = 0;
    for (int i = 0; i < 20; i++) {
        char node[16], cl[16];
        snprintf(node, sizeof(node), "node-%d", i);
        snprintf(cl, sizeof(cl), "cl-%d", i);
        assert_ok(remote_join(f.reg, node, "a", cl, "u", NULL, NULL));
        /* Calls that fail or find nothing keep no entry either. */
        assert_rc(remote_join(f.reg, "other", "a", cl, "u", NULL, NULL),
                  PRESENCE_ERR_CONFLICT);
        assert_rc(remote_join(f.reg, "other", "nons:a", cl, "u", NULL, NULL),
                  PRESENCE_ERR_UNKNOWN_NAMESPACE);
        assert_rc(presence_remote_leave(f.reg, "other", "a", cl,
                                        PRESENCE_LEAVE_EXPLICIT),
                  PRESENCE_ERR_CONFLICT);
        if (i % 2 == 0) {
            assert_ok(presence_node_down(f.reg, node,
                                         PRESENCE_LEAVE_NODE_DOWN, NULL));
        } else {
            assert_ok(presence_remote_leave(f.reg, node, "a", cl,
                                            PRESENCE_LEAVE_NODE_DOWN));
        }
        const rec_event *e = &f.rec.events[f.rec.count - 1];
        assert_string_equal(e->node_id, node);
        assert_int_equal(e->reason, PRESENCE_LEAVE_NODE_DOWN);
        /* A node's entry goes with its last client: nothing piles up. */
        if (i == 0) {
            blocks = atomic_load(&f.alloc.live_blocks);
        }
        assert_int_equal(atomic_load(&f.alloc.live_blocks), blocks);
    }
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* ---- snapshots ----------------------------------------------------------- */

static void test_snapshots_carry_node_ids(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f);
    assert_ok(join_info(f.reg, "room", "c1", "u1", "lc", "l"));
    assert_ok(remote_join(f.reg, "n1", "room", "r1", "u1", "rc", "r"));
    assert_ok(remote_join(f.reg, "node-two", "room", "s1", "", NULL, NULL));
    assert_ok(remote_join(f.reg, "n1", "hall", "r1", "u1", "rc", NULL));

    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "room", presence_trusted(), &snap));
    assert_int_equal(snap->count, 3);
    assert_string_equal(node_of(snap, "c1"), "");
    assert_string_equal(node_of(snap, "r1"), "n1");
    assert_string_equal(node_of(snap, "s1"), "node-two");
    /* A remote client's strings come before its node pointer, copied in
     * one go, its node id after them. */
    const presence_member *r1 = member_of(snap, "r1");
    assert_string_equal(r1->user_id, "u1");
    assert_int_equal(r1->conn_info_len, 2);
    assert_memory_equal(r1->conn_info, "rc", 2);
    assert_string_equal(member_of(snap, "s1")->user_id, "");
    assert_nodes_point_inside(snap);
    presence_snapshot_free(snap);

    /* Pages, one member each. */
    uint64_t cursor = 0;
    size_t seen = 0;
    do {
        assert_ok(presence_query_page(f.reg, "room", presence_trusted(), cursor, 1, &snap));
        for (size_t i = 0; i < snap->count; i++) {
            const presence_member *m = &snap->members[i];
            const char *want = strcmp(m->client_id, "c1") == 0 ? ""
                               : strcmp(m->client_id, "r1") == 0 ? "n1"
                                                                 : "node-two";
            assert_string_equal(m->node_id, want);
            seen++;
        }
        assert_nodes_point_inside(snap);
        cursor = snap->next_cursor;
        presence_snapshot_free(snap);
    } while (cursor != 0);
    assert_int_equal(seen, 3);

    assert_ok(presence_client_channels(f.reg, "r1", &snap));
    assert_int_equal(snap->count, 2);
    assert_string_equal(snap->members[0].node_id, "n1");
    assert_string_equal(snap->members[1].node_id, "n1");
    assert_nodes_point_inside(snap);
    presence_snapshot_free(snap);

    assert_ok(presence_client_channels(f.reg, "c1", &snap));
    assert_int_equal(snap->count, 1);
    assert_string_equal(snap->members[0].node_id, "");
    assert_nodes_point_inside(snap);
    presence_snapshot_free(snap);

    assert_ok(presence_user_connections(f.reg, "room", "u1", &snap));
    assert_int_equal(snap->count, 2);
    assert_string_equal(node_of(snap, "c1"), "");
    assert_string_equal(node_of(snap, "r1"), "n1");
    assert_nodes_point_inside(snap);
    presence_snapshot_free(snap);

    assert_ok(presence_user_connections(f.reg, "room", "", &snap));
    assert_int_equal(snap->count, 1);
    assert_string_equal(node_of(snap, "s1"), "node-two");
    presence_snapshot_free(snap);

    /* The user-wide list measures and copies the same bytes. */
    assert_ok(presence_user_clients(f.reg, "u1", &snap));
    assert_int_equal(snap->count, 2);
    assert_string_equal(node_of(snap, "c1"), "");
    assert_string_equal(node_of(snap, "r1"), "n1");
    r1 = member_of(snap, "r1");
    assert_string_equal(r1->user_id, "u1");
    assert_string_equal(r1->channel, "");
    assert_memory_equal(r1->conn_info, "rc", 2);
    assert_memory_equal(member_of(snap, "c1")->conn_info, "lc", 2);
    assert_nodes_point_inside(snap);
    presence_snapshot_free(snap);

    /* A snapshot is independent of the registry, node ids included. */
    assert_ok(presence_query(f.reg, "room", presence_trusted(), &snap));
    assert_ok(presence_node_down(f.reg, "n1", PRESENCE_LEAVE_NODE_DOWN,
                                 NULL));
    assert_ok(presence_node_down(f.reg, "node-two", PRESENCE_LEAVE_NODE_DOWN,
                                 NULL));
    assert_ok(presence_registry_free(f.reg));
    f.reg = NULL;
    assert_string_equal(node_of(snap, "r1"), "n1");
    assert_string_equal(node_of(snap, "s1"), "node-two");
    presence_snapshot_free(snap);
    recorder_assert_sane(&f.rec);
    recorder_free(&f.rec);
    test_alloc_assert_clean(&f.alloc);
}

/* ---- conflicts ----------------------------------------------------------- */

static void test_conflicts(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f);
    assert_ok(join_info(f.reg, "a", "c1", "u1", "A", NULL));
    assert_ok(remote_join(f.reg, "n1", "a", "r1", "u2", "B", NULL));
    assert_ok(remote_join(f.reg, "n2", "b", "s1", "u3", NULL, NULL));
    char *before = dump_registry(f.reg, NULL);
    size_t events = f.rec.count;
    size_t left = 99;

    /* Remote calls on a local client. */
    assert_rc(remote_join(f.reg, "n1", "a", "c1", "u1", "A", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(remote_join(f.reg, "n1", "b", "c1", "u1", "A", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(presence_remote_leave(f.reg, "n1", "a", "c1",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_CONFLICT);
    /* ... also from a node that has no client here. */
    assert_rc(remote_join(f.reg, "n9", "a", "c1", "u1", "A", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(presence_remote_leave(f.reg, "n9", "a", "c1",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_CONFLICT);

    /* Local calls on a remote client. */
    assert_rc(join_info(f.reg, "a", "r1", "u2", "B", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(join_info(f.reg, "b", "r1", "u2", "B", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(presence_leave(f.reg, "a", "r1"), PRESENCE_ERR_CONFLICT);
    assert_rc(presence_update(f.reg, "a", "r1", "z", 1),
              PRESENCE_ERR_CONFLICT);
    assert_rc(presence_touch(f.reg, "a", "r1"), PRESENCE_ERR_CONFLICT);
    assert_rc(presence_touch_client(f.reg, "r1"), PRESENCE_ERR_CONFLICT);
    assert_rc(presence_disconnect(f.reg, "r1", &left),
              PRESENCE_ERR_CONFLICT);
    assert_int_equal(left, 99);

    /* Another node's client. */
    assert_rc(remote_join(f.reg, "n2", "a", "r1", "u2", "B", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(remote_join(f.reg, "n2", "b", "r1", "u2", "B", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(presence_remote_leave(f.reg, "n2", "a", "r1",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_CONFLICT);
    assert_rc(presence_remote_leave(f.reg, "n9", "a", "r1",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_CONFLICT);
    /* Node ids are compared whole. */
    assert_rc(remote_join(f.reg, "n", "a", "r1", "u2", "B", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(remote_join(f.reg, "n11", "a", "r1", "u2", "B", NULL),
              PRESENCE_ERR_CONFLICT);

    /* The right node, but another user or conn_info. */
    assert_rc(remote_join(f.reg, "n1", "a", "r1", "u9", "B", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(remote_join(f.reg, "n1", "b", "r1", "u2", "C", NULL),
              PRESENCE_ERR_CONFLICT);
    assert_rc(remote_join(f.reg, "n1", "b", "r1", "u2", NULL, NULL),
              PRESENCE_ERR_CONFLICT);

    /* Not in the channel: not found, whoever asks. */
    assert_rc(presence_remote_leave(f.reg, "n1", "b", "r1",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_leave(f.reg, "b", "r1"), PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_remote_leave(f.reg, "n1", "a", "nobody",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_NOT_FOUND);

    assert_int_equal(f.rec.count, events);
    char *after = dump_registry(f.reg, NULL);
    assert_string_equal(before, after);
    free(before);
    free(after);

    /* What is allowed still is. */
    assert_ok(remote_join(f.reg, "n1", "b", "r1", "u2", "B", NULL));
    assert_ok(join_info(f.reg, "b", "c1", "u1", "A", NULL));
    assert_counts(f.reg, 2, 3, 3, 5);
    /* A local disconnect of a client in no channel stays fine. */
    assert_ok(presence_disconnect(f.reg, "nobody", &left));
    assert_int_equal(left, 0);
    fixture_close(&f);
}

/* ---- TTL ----------------------------------------------------------------- */

static void test_remote_never_expires(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f);
    ns_set(f.reg, "ttl", true, true, 100, 0);
    assert_ok(remote_join(f.reg, "n1", "ttl:only", "r0", "u0", NULL, NULL));
    assert_int_equal(presence_next_deadline_ms(f.reg), PRESENCE_NO_DEADLINE);

    assert_ok(join_simple(f.reg, "ttl:a", "c1", "u1"));
    assert_ok(remote_join(f.reg, "n1", "ttl:a", "r1", "u2", NULL, NULL));
    assert_int_equal(presence_next_deadline_ms(f.reg), 1100);

    /* A remote upsert moves no deadline, but reads as touched. */
    fake_clock_set(&f.clock, 1050);
    assert_ok(remote_join(f.reg, "n1", "ttl:a", "r1", "u2", NULL, "i"));
    assert_int_equal(presence_next_deadline_ms(f.reg), 1100);
    presence_snapshot *snap = NULL;
    assert_ok(presence_client_channels(f.reg, "r1", &snap));
    assert_int_equal(snap->members[0].joined_at_ms, 1000);
    assert_int_equal(snap->members[0].touched_at_ms, 1050);
    presence_snapshot_free(snap);

    fake_clock_set(&f.clock, 5000);
    size_t expired = 99;
    assert_ok(presence_expire(f.reg, 5000, &expired, NULL));
    assert_int_equal(expired, 1);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_EXPIRED),
                     1);
    assert_non_null(recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "ttl:a",
                                  "c1"));
    assert_stats(f.reg, "ttl:a", 1, 1);
    assert_stats(f.reg, "ttl:only", 1, 1);
    assert_int_equal(presence_next_deadline_ms(f.reg), PRESENCE_NO_DEADLINE);

    /* A TTL change does not reach them either. */
    ns_set(f.reg, "ttl", true, true, 1, 0);
    assert_int_equal(presence_next_deadline_ms(f.reg), PRESENCE_NO_DEADLINE);
    assert_ok(presence_expire(f.reg, INT64_MAX, &expired, NULL));
    assert_int_equal(expired, 0);
    assert_counts(f.reg, 2, 2, 2, 2);

    /* Local ones joining again after them expire as before. */
    assert_ok(join_simple(f.reg, "ttl:a", "c2", "u1"));
    assert_int_equal(presence_next_deadline_ms(f.reg), 5001);
    assert_ok(presence_expire(f.reg, 5001, &expired, NULL));
    assert_int_equal(expired, 1);
    fixture_close(&f);
}

/* Close and presence-off remove remote members too; limits apply. */
static void test_remote_close_and_limits(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.channels_per_client_max = 2;
    fixture_open(&f);
    ns_set(f.reg, "small", true, true, 0, 2);
    assert_ok(remote_join(f.reg, "n1", "small:a", "r1", "u1", NULL, NULL));
    assert_ok(join_simple(f.reg, "small:a", "c1", "u1"));
    assert_rc(remote_join(f.reg, "n1", "small:a", "r2", "u2", NULL, NULL),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    assert_ok(remote_join(f.reg, "n1", "x", "r1", "u1", NULL, NULL));
    assert_rc(remote_join(f.reg, "n1", "y", "r1", "u1", NULL, NULL),
              PRESENCE_ERR_CLIENT_CHANNEL_LIMIT);
    assert_rc(remote_join(f.reg, "n1", "nons:y", "r1", "u1", NULL, NULL),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);

    size_t removed = 0;
    assert_ok(presence_channel_close(f.reg, "small:a", &removed));
    assert_int_equal(removed, 2);
    const rec_event *e =
        recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "small:a", "r1");
    assert_non_null(e);
    assert_int_equal(e->reason, PRESENCE_LEAVE_CLOSED);
    assert_string_equal(e->node_id, "n1");

    assert_ok(remote_join(f.reg, "n1", "small:b", "r1", "u1", NULL, NULL));
    ns_set(f.reg, "small", false, true, 0, 2);
    assert_stats(f.reg, "x", 1, 1);
    assert_counts(f.reg, 1, 1, 1, 1);
    e = recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "small:b", "r1");
    assert_non_null(e);
    assert_int_equal(e->reason, PRESENCE_LEAVE_CLOSED);
    assert_rc(remote_join(f.reg, "n1", "small:b", "r1", "u1", NULL, NULL),
              PRESENCE_ERR_NOT_AVAILABLE);
    fixture_close(&f);
}

/* ---- node_down ----------------------------------------------------------- */

static void test_node_down(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f);
    assert_ok(remote_join(f.reg, "n1", "a", "r1", "u1", NULL, NULL));
    assert_ok(remote_join(f.reg, "n1", "b", "r1", "u1", NULL, "bi"));
    assert_ok(remote_join(f.reg, "n1", "a", "r2", "u2", NULL, NULL));
    assert_ok(remote_join(f.reg, "n2", "a", "s1", "u1", NULL, NULL));
    assert_ok(join_simple(f.reg, "a", "c1", "u3"));
    assert_stats(f.reg, "a", 4, 3);
    recorder_clear(&f.rec);

    size_t left = 0;
    assert_ok(presence_node_down(f.reg, "n1", PRESENCE_LEAVE_NODE_DOWN,
                                 &left));
    assert_int_equal(left, 3);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 3);
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_NODE_DOWN),
                     3);
    /* u2 left "a" (its only connection); u1 left "b" but stays in "a"
     * through n2's s1. */
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_LEAVE), 2);
    const rec_event *e =
        recorder_find(&f.rec, 0, PRESENCE_EVENT_USER_LEAVE, "a", NULL);
    assert_non_null(e);
    assert_string_equal(e->user_id, "u2");
    assert_int_equal(e->reason, PRESENCE_LEAVE_NODE_DOWN);
    e = recorder_find(&f.rec, 0, PRESENCE_EVENT_USER_LEAVE, "b", NULL);
    assert_non_null(e);
    assert_string_equal(e->user_id, "u1");
    assert_int_equal(e->chan_info_len, 2);
    for (size_t i = 0; i < f.rec.count; i++) {
        assert_string_equal(f.rec.events[i].node_id, "n1");
    }
    assert_stats(f.reg, "a", 2, 2);
    assert_stats(f.reg, "b", 0, 0);
    assert_counts(f.reg, 1, 2, 2, 2);

    /* Again, or for a node with nothing here: nothing to do. */
    left = 99;
    assert_ok(presence_node_down(f.reg, "n1", PRESENCE_LEAVE_NODE_DOWN,
                                 &left));
    assert_int_equal(left, 0);
    assert_ok(presence_node_down(f.reg, "never", PRESENCE_LEAVE_NODE_DOWN,
                                 &left));
    assert_int_equal(left, 0);

    /* Another reason, and left may be NULL. */
    recorder_clear(&f.rec);
    assert_ok(presence_node_down(f.reg, "n2", PRESENCE_LEAVE_RESYNC, NULL));
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_RESYNC),
                     1);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_LEAVE), 1);
    assert_counts(f.reg, 1, 1, 1, 1);
    fixture_close(&f);
}

/* More memberships than one batch, over many clients and channels. */
static void test_node_down_many(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f);
    char cl[32], ch[32];
    for (int i = 0; i < 300; i++) {
        snprintf(cl, sizeof(cl), "r%d", i);
        for (int k = 0; k < 3; k++) {
            snprintf(ch, sizeof(ch), "ch%d", (i + k) % 50);
            assert_ok(remote_join(f.reg, "big", ch, cl, i % 7 ? "u" : "v",
                                  NULL, NULL));
        }
        snprintf(cl, sizeof(cl), "l%d", i);
        assert_ok(join_simple(f.reg, "ch0", cl, "local"));
    }
    assert_counts(f.reg, 50, 600, 3, 1200);
    recorder_clear(&f.rec);
    size_t left = 0;
    assert_ok(presence_node_down(f.reg, "big", PRESENCE_LEAVE_NODE_DOWN,
                                 &left));
    assert_int_equal(left, 900);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 900);
    assert_counts(f.reg, 1, 300, 1, 300);
    assert_stats(f.reg, "ch0", 300, 1);
    fixture_close(&f);
}

/* A callback may bring a node down, and join for it, while delivering. */
typedef struct reentry {
    recorder rec;
    int fired;
} reentry;

static void reentry_cb(presence_registry *reg, const presence_event *e,
                       void *ud)
{
    reentry *r = ud;
    recorder_enter(&r->rec);
    recorder_add(&r->rec, reg, e);
    if (e->kind == PRESENCE_EVENT_JOIN && strcmp(e->client_id, "go") == 0 &&
        r->fired++ == 0) {
        size_t left = 0;
        assert_ok(presence_node_down(reg, "n1", PRESENCE_LEAVE_NODE_DOWN,
                                     &left));
        assert_int_equal(left, 2);
        assert_ok(remote_join(reg, "n2", "z", "late", "u", NULL, NULL));
    }
    recorder_leave(&r->rec);
}

static void test_node_down_from_callback(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f);
    reentry r;
    memset(&r, 0, sizeof(r));
    recorder_init(&r.rec);
    presence_subscription s;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, reentry_cb, &r, &s));
    assert_ok(remote_join(f.reg, "n1", "a", "r1", "u1", NULL, NULL));
    assert_ok(remote_join(f.reg, "n1", "b", "r2", "u1", NULL, NULL));
    assert_ok(join_simple(f.reg, "a", "go", "u1"));
    assert_int_equal(r.fired, 1);
    assert_counts(f.reg, 2, 2, 2, 2);
    const rec_event *e =
        recorder_find(&r.rec, 0, PRESENCE_EVENT_JOIN, "z", "late");
    assert_non_null(e);
    assert_string_equal(e->node_id, "n2");
    recorder_assert_sane(&r.rec);
    recorder_free(&r.rec);
    fixture_close(&f);
}

/* ---- node_memberships ---------------------------------------------------- */

static void test_node_memberships(void **state)
{
    (void)state;
    fixture f;
    open_fixture(&f);
    presence_snapshot *snap = NULL;
    assert_ok(presence_node_memberships(f.reg, "", &snap));
    assert_int_equal(snap->count, 0);
    assert_null(snap->members);
    presence_snapshot_free(snap);

    assert_ok(join_info(f.reg, "a", "c1", "u1", "lc", "la"));
    assert_ok(join_info(f.reg, "b", "c1", "u1", "lc", NULL));
    assert_ok(join_simple(f.reg, "b", "c2", ""));
    assert_ok(remote_join(f.reg, "n1", "a", "r1", "u1", "rc", "ra"));
    assert_ok(remote_join(f.reg, "n1", "c", "r1", "u1", "rc", NULL));
    assert_ok(remote_join(f.reg, "n2", "a", "s1", "u9", NULL, NULL));

    assert_ok(presence_node_memberships(f.reg, "", &snap));
    assert_int_equal(snap->count, 3);
    assert_int_equal(snap->seq, 0);
    assert_int_equal(snap->stats.num_clients, 0);
    assert_int_equal(snap->stats.num_users, 0);
    assert_int_equal(snap->next_cursor, 0);
    size_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        assert_string_equal(m->node_id, "");
        if (strcmp(m->client_id, "c1") == 0) {
            c1++;
            assert_string_equal(m->user_id, "u1");
            assert_int_equal(m->conn_info_len, 2);
            assert_memory_equal(m->conn_info, "lc", 2);
            if (strcmp(m->channel, "a") == 0) {
                assert_int_equal(m->chan_info_len, 2);
                assert_memory_equal(m->chan_info, "la", 2);
            } else {
                assert_string_equal(m->channel, "b");
                assert_null(m->chan_info);
            }
        } else {
            c2++;
            assert_string_equal(m->client_id, "c2");
            assert_string_equal(m->channel, "b");
            assert_string_equal(m->user_id, "");
        }
    }
    assert_int_equal(c1, 2);
    assert_int_equal(c2, 1);
    assert_nodes_point_inside(snap);
    presence_snapshot_free(snap);

    assert_ok(presence_node_memberships(f.reg, "n1", &snap));
    assert_int_equal(snap->count, 2);
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        assert_string_equal(m->node_id, "n1");
        assert_string_equal(m->client_id, "r1");
        assert_string_equal(m->user_id, "u1");
        assert_true(strcmp(m->channel, "a") == 0 ||
                    strcmp(m->channel, "c") == 0);
    }
    assert_nodes_point_inside(snap);
    presence_snapshot_free(snap);

    assert_ok(presence_node_memberships(f.reg, "n2", &snap));
    assert_int_equal(snap->count, 1);
    assert_string_equal(snap->members[0].client_id, "s1");
    assert_string_equal(snap->members[0].node_id, "n2");
    presence_snapshot_free(snap);

    snap = NULL;
    assert_ok(presence_node_memberships(f.reg, "n3", &snap));
    assert_non_null(snap);
    assert_int_equal(snap->count, 0);
    assert_null(snap->members);
    presence_snapshot_free(snap);

    /* After the node went down it has nothing, and the others keep all. */
    assert_ok(presence_node_down(f.reg, "n1", PRESENCE_LEAVE_NODE_DOWN,
                                 NULL));
    assert_ok(presence_node_memberships(f.reg, "n1", &snap));
    assert_int_equal(snap->count, 0);
    presence_snapshot_free(snap);
    assert_ok(presence_node_memberships(f.reg, "", &snap));
    assert_int_equal(snap->count, 3);
    presence_snapshot_free(snap);
    fixture_close(&f);
}

/* ---- PRESENCE_EVENTS_EVERY_NAMESPACE ------------------------------------- */

typedef struct flipper {
    recorder rec;
    presence_registry *reg;
    bool flip; /* turn join_leave on at the first event */
} flipper;

static void flipper_cb(presence_registry *reg, const presence_event *e,
                       void *ud)
{
    flipper *fl = ud;
    recorder_enter(&fl->rec);
    recorder_add(&fl->rec, reg, e);
    if (fl->flip) {
        fl->flip = false;
        ns_set(reg, "quiet", true, true, 0, 0);
    }
    recorder_leave(&fl->rec);
}

static void test_every_namespace(void **state)
{
    (void)state;
    fixture f; /* f.rec: every kind, every channel, without the flag */
    open_fixture(&f);
    ns_set(f.reg, "quiet", true, false, 0, 0);
    flipper every;
    memset(&every, 0, sizeof(every));
    recorder_init(&every.rec);
    recorder ns_every, ns_plain;
    recorder_init(&ns_every);
    recorder_init(&ns_plain);
    presence_subscription s_every, s_ns_every, s_ns_plain;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL |
                                     PRESENCE_EVENTS_EVERY_NAMESPACE,
                                 flipper_cb, &every, &s_every));
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_NAMESPACE, "quiet",
                                 PRESENCE_EVENT_JOIN |
                                     PRESENCE_EVENTS_EVERY_NAMESPACE,
                                 recorder_cb, &ns_every, &s_ns_every));
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_NAMESPACE, "quiet",
                                 PRESENCE_EVENTS_ALL, recorder_cb, &ns_plain,
                                 &s_ns_plain));

    assert_ok(join_simple(f.reg, "quiet:a", "c1", "u1"));
    assert_ok(remote_join(f.reg, "n1", "quiet:a", "r1", "u2", NULL, "i"));
    assert_ok(remote_join(f.reg, "n1", "quiet:a", "r1", "u2", NULL, "j"));
    assert_ok(presence_leave(f.reg, "quiet:a", "c1"));
    assert_ok(join_simple(f.reg, "loud", "c3", "u3"));

    /* Without the flag: only the loud namespace. */
    assert_int_equal(f.rec.count, 2);
    assert_string_equal(f.rec.events[0].channel, "loud");
    assert_int_equal(ns_plain.count, 0);
    /* With it: everything, in order, node ids and seqs as usual. */
    assert_int_equal(every.rec.count, 2 + 2 + 1 + 2 + 2);
    assert_int_equal(every.rec.events[0].kind, PRESENCE_EVENT_JOIN);
    assert_int_equal(every.rec.events[0].seq, 1);
    assert_int_equal(every.rec.events[2].kind, PRESENCE_EVENT_JOIN);
    assert_string_equal(every.rec.events[2].node_id, "n1");
    assert_int_equal(every.rec.events[4].kind, PRESENCE_EVENT_UPDATE);
    assert_int_equal(every.rec.events[4].seq, 3);
    assert_int_equal(every.rec.events[5].kind, PRESENCE_EVENT_LEAVE);
    assert_string_equal(every.rec.events[5].node_id, "");
    assert_string_equal(every.rec.events[7].channel, "loud");
    /* The namespace's own, with the flag and a kind mask. */
    assert_int_equal(ns_every.count, 2);
    assert_string_equal(ns_every.events[1].client_id, "r1");

    /* Whether an event was muted is fixed when it is queued: the flag's
     * callback turns join_leave on at the first of a node_down's events,
     * and the others, queued before (one client's leaves are queued
     * together), still reach only the flag. */
    assert_ok(remote_join(f.reg, "n1", "quiet:b", "r1", "u2", NULL, NULL));
    assert_ok(remote_join(f.reg, "n1", "quiet:c", "r1", "u2", NULL, NULL));
    size_t every_before = every.rec.count;
    every.flip = true;
    assert_ok(presence_node_down(f.reg, "n1", PRESENCE_LEAVE_NODE_DOWN,
                                 NULL));
    assert_int_equal(every.rec.count, every_before + 6);
    assert_int_equal(f.rec.count, 2);
    assert_int_equal(ns_plain.count, 0);
    /* Now on: everyone gets them. */
    assert_ok(join_simple(f.reg, "quiet:a", "c9", "u9"));
    assert_int_equal(f.rec.count, 4);
    assert_int_equal(ns_plain.count, 2);

    /* Off again, and the flag's subscriptions gone: nothing at all. */
    ns_set(f.reg, "quiet", true, false, 0, 0);
    assert_ok(presence_unsubscribe(f.reg, s_every));
    assert_ok(presence_unsubscribe(f.reg, s_ns_every));
    size_t total = f.rec.count + every.rec.count + ns_every.count +
                   ns_plain.count;
    assert_ok(presence_leave(f.reg, "quiet:a", "c9"));
    assert_ok(remote_join(f.reg, "n1", "quiet:a", "r1", "u2", NULL, NULL));
    assert_int_equal(f.rec.count + every.rec.count + ns_every.count +
                         ns_plain.count,
                     total);
    /* A flag subscription made later sees later changes only. */
    presence_subscription s_late;
    recorder late;
    recorder_init(&late);
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, "quiet:a",
                                 PRESENCE_EVENTS_ALL |
                                     PRESENCE_EVENTS_EVERY_NAMESPACE,
                                 recorder_cb, &late, &s_late));
    assert_ok(presence_remote_leave(f.reg, "n1", "quiet:a", "r1",
                                    PRESENCE_LEAVE_RESYNC));
    assert_int_equal(late.count, 2);
    assert_int_equal(late.events[0].reason, PRESENCE_LEAVE_RESYNC);
    assert_int_equal(f.rec.count + every.rec.count + ns_every.count +
                         ns_plain.count,
                     total);

    recorder_assert_sane(&every.rec);
    recorder_assert_sane(&ns_every);
    recorder_assert_sane(&ns_plain);
    recorder_assert_sane(&late);
    recorder_free(&every.rec);
    recorder_free(&ns_every);
    recorder_free(&ns_plain);
    recorder_free(&late);
    fixture_close(&f);
}

/* ---- argument errors ----------------------------------------------------- */

static void test_errors(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.client_id_max = 8;
    fixture_open(&f);
    presence_registry *r = f.reg;
    char *long_id = repeat_char('n', 9);
    char *max_id = repeat_char('n', 8);
    presence_snapshot *snap = NULL;
    size_t left = 0;

    /* remote_join */
    assert_rc(presence_remote_join(NULL, "n", "a", "c", "u", NULL, 0, NULL, 0),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_join(r, NULL, "a", "c", "u", NULL, 0, NULL, 0),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_join(r, "n", NULL, "c", "u", NULL, 0, NULL, 0),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_join(r, "n", "a", NULL, "u", NULL, 0, NULL, 0),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_join(r, "n", "a", "c", "u", NULL, 1, NULL, 0),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_join(r, "n", "a", "c", "u", NULL, 0, NULL, 1),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_join(r, "", "a", "c", "u", NULL, 0, NULL, 0),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_remote_join(r, "n\x01", "a", "c", "u", NULL, 0, NULL,
                                   0),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_remote_join(r, "n\x7f", "a", "c", "u", NULL, 0, NULL,
                                   0),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_remote_join(r, long_id, "a", "c", "u", NULL, 0, NULL,
                                   0),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_remote_join(r, "n", "", "c", "u", NULL, 0, NULL, 0),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_remote_join(r, "n", "a", long_id, "u", NULL, 0, NULL,
                                   0),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_remote_join(r, "n", "nons:a", "c", "u", NULL, 0, NULL,
                                   0),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_int_equal(f.rec.count, 0);
    assert_counts(r, 0, 0, 0, 0);
    /* UTF-8 and the longest allowed id are fine. */
    assert_ok(presence_remote_join(r, "n\xc3\xa9", "a", "c", "u", NULL, 0,
                                   NULL, 0));
    assert_ok(presence_remote_join(r, max_id, "a", "d", "u", NULL, 0, NULL,
                                   0));
    assert_string_equal(f.rec.events[f.rec.count - 1].node_id, max_id);

    /* remote_leave */
    assert_rc(presence_remote_leave(NULL, "n", "a", "c",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_leave(r, NULL, "a", "c",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_leave(r, "n\xc3\xa9", NULL, "c",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_leave(r, "n\xc3\xa9", "a", NULL,
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_leave(r, "n\xc3\xa9", "a", "c",
                                    PRESENCE_LEAVE_NONE),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_leave(r, "n\xc3\xa9", "a", "c",
                                    (presence_leave_reason)7),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_leave(r, "n\xc3\xa9", "a", "c",
                                    (presence_leave_reason)-1),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_leave(r, "", "a", "c", PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_remote_leave(r, "x\n", "a", "c",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_remote_leave(r, long_id, "a", "c",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_remote_leave(r, "n\xc3\xa9", "a\x02", "c",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_remote_leave(r, "n\xc3\xa9", "nons:a", "c",
                                    PRESENCE_LEAVE_EXPLICIT),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_counts(r, 1, 2, 1, 2);

    /* node_down */
    left = 99;
    assert_rc(presence_node_down(NULL, "n", PRESENCE_LEAVE_NODE_DOWN, &left),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_node_down(r, NULL, PRESENCE_LEAVE_NODE_DOWN, &left),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_node_down(r, max_id, PRESENCE_LEAVE_NONE, &left),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_node_down(r, max_id, (presence_leave_reason)7, &left),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_node_down(r, max_id, (presence_leave_reason)-3, &left),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_node_down(r, "", PRESENCE_LEAVE_NODE_DOWN, &left),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_node_down(r, "a\tb", PRESENCE_LEAVE_NODE_DOWN, &left),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_node_down(r, long_id, PRESENCE_LEAVE_NODE_DOWN, &left),
              PRESENCE_ERR_TOO_LONG);
    assert_int_equal(left, 99);
    assert_counts(r, 1, 2, 1, 2);

    /* node_memberships */
    assert_rc(presence_node_memberships(NULL, "", &snap),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_node_memberships(r, NULL, &snap),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_node_memberships(r, "", NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_node_memberships(r, "a\x1f", &snap),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_node_memberships(r, long_id, &snap),
              PRESENCE_ERR_TOO_LONG);
    assert_null(snap);
    assert_ok(presence_node_memberships(r, max_id, &snap));
    assert_int_equal(snap->count, 1);
    presence_snapshot_free(snap);

    /* subscribe: the flag with no kind, or with an unknown bit. */
    presence_subscription s;
    assert_rc(presence_subscribe(r, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_EVERY_NAMESPACE, recorder_cb,
                                 &f.rec, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe(r, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL |
                                     PRESENCE_EVENTS_EVERY_NAMESPACE | 0x80u,
                                 recorder_cb, &f.rec, &s),
              PRESENCE_ERR_INVALID);

    /* Misuse is told before anything is allocated for a new node. */
    test_alloc_arm(&f.alloc, 0);
    assert_rc(presence_remote_join(r, "fresh", "", "c", "u", NULL, 0, NULL,
                                   0),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_remote_join(r, "fresh", "a", long_id, "u", NULL, 0,
                                   NULL, 0),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_remote_join(r, "fresh", "a", "c", "u\n", NULL, 0,
                                   NULL, 0),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_remote_join(r, "fresh", "a", "c", "u", "x", 0, NULL,
                                   1),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_remote_join(r, "fresh", "a", "new", "u", NULL, 0, NULL,
                                   0),
              PRESENCE_ERR_NOMEM);
    test_alloc_disarm(&f.alloc);

    /* None of that changed anything or said anything. */
    assert_int_equal(f.rec.count, 3);
    free(long_id);
    free(max_id);
    fixture_close(&f);
}

/* A single-threaded registry runs the same paths without locks. */
static void test_single_threaded(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.single_threaded = true;
    fixture_open(&f);
    assert_ok(remote_join(f.reg, "n1", "a", "r1", "u1", NULL, NULL));
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    presence_snapshot *snap = NULL;
    assert_ok(presence_node_memberships(f.reg, "n1", &snap));
    assert_int_equal(snap->count, 1);
    presence_snapshot_free(snap);
    size_t left = 0;
    assert_ok(presence_node_down(f.reg, "n1", PRESENCE_LEAVE_NODE_DOWN,
                                 &left));
    assert_int_equal(left, 1);
    assert_counts(f.reg, 1, 1, 1, 1);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_remote_join_leave_events),
        cmocka_unit_test(test_client_changes_sides),
        cmocka_unit_test(test_node_id_in_late_events),
        cmocka_unit_test(test_snapshots_carry_node_ids),
        cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_remote_never_expires),
        cmocka_unit_test(test_remote_close_and_limits),
        cmocka_unit_test(test_node_down),
        cmocka_unit_test(test_node_down_many),
        cmocka_unit_test(test_node_down_from_callback),
        cmocka_unit_test(test_node_memberships),
        cmocka_unit_test(test_every_namespace),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_single_threaded),
    };
    return cmocka_run_group_tests_name("nodes", tests, NULL, NULL);
}
