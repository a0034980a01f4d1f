/*
 * Change history: presence_changes_since(), the per-channel logs of the
 * namespaces' history_size. A copy built from a snapshot plus the changes
 * since its version equals a later snapshot; a log that no longer reaches
 * back, another life of the channel, or no log, says "take a snapshot";
 * every path that changes a membership is logged; a failed call leaves
 * the logs as they were; a reader keeps its copy exact against writers
 * on other threads.
 *
 * SPDX-License-Identifier: MIT
 */
#include "helpers.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a copy of a channel, as a client would keep one -------------------- */

typedef struct copy_member {
    char *client_id;
    char *user_id;
    char *node_id;
    char *conn_info; /* hex */
    char *chan_info; /* hex */
    int64_t joined_at_ms;
    void *app;
} copy_member;

typedef struct copy {
    copy_member *members;
    size_t count;
    size_t cap;
    uint64_t epoch;
    uint64_t seq;
} copy;

static char *hex(const void *data, size_t len)
{
    char *s = malloc(len * 2 + 1);
    assert_non_null(s);
    for (size_t i = 0; i < len; i++) {
        snprintf(s + 2 * i, 3, "%02x", ((const unsigned char *)data)[i]);
    }
    s[len * 2] = '\0';
    return s;
}

static char *dup_str(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

static void member_clear(copy_member *m)
{
    free(m->client_id);
    free(m->user_id);
    free(m->node_id);
    free(m->conn_info);
    free(m->chan_info);
}

static void copy_free(copy *c)
{
    for (size_t i = 0; i < c->count; i++) {
        member_clear(&c->members[i]);
    }
    free(c->members);
    memset(c, 0, sizeof *c);
}

static copy_member *copy_find(copy *c, const char *client_id)
{
    for (size_t i = 0; i < c->count; i++) {
        if (strcmp(c->members[i].client_id, client_id) == 0) {
            return &c->members[i];
        }
    }
    return NULL;
}

static void copy_put(copy *c, const presence_member *m, int64_t joined_at_ms)
{
    copy_member *at = copy_find(c, m->client_id);
    if (at == NULL) {
        if (c->count == c->cap) {
            c->cap = c->cap == 0 ? 8 : c->cap * 2;
            c->members = realloc(c->members, c->cap * sizeof *c->members);
            assert_non_null(c->members);
        }
        at = &c->members[c->count++];
    } else {
        joined_at_ms = at->joined_at_ms; /* an update keeps it */
        member_clear(at);
    }
    at->client_id = dup_str(m->client_id);
    at->user_id = dup_str(m->user_id);
    at->node_id = dup_str(m->node_id);
    at->conn_info = hex(m->conn_info, m->conn_info_len);
    at->chan_info = hex(m->chan_info, m->chan_info_len);
    at->joined_at_ms = joined_at_ms;
    at->app = m->app;
}

static void copy_remove(copy *c, const char *client_id)
{
    copy_member *at = copy_find(c, client_id);
    assert_non_null(at); /* a leave of someone the copy lacks: a hole */
    member_clear(at);
    *at = c->members[--c->count];
}

static void copy_from_snapshot(copy *c, const presence_snapshot *snap)
{
    copy_free(c);
    for (size_t i = 0; i < snap->count; i++) {
        copy_put(c, &snap->members[i], snap->members[i].joined_at_ms);
    }
    c->epoch = snap->epoch;
    c->seq = snap->seq;
}

static void copy_apply(copy *c, const presence_history *h)
{
    uint64_t seq = c->seq;
    for (size_t i = 0; i < h->count; i++) {
        const presence_history_entry *e = &h->entries[i];
        assert_int_equal(e->seq, ++seq); /* no hole, no repeat */
        switch (e->kind) {
        case PRESENCE_EVENT_JOIN:
            assert_null(copy_find(c, e->member.client_id));
            assert_int_equal(e->reason, PRESENCE_LEAVE_NONE);
            assert_int_equal(e->member.joined_at_ms, e->time_ms);
            copy_put(c, &e->member, e->time_ms);
            break;
        case PRESENCE_EVENT_UPDATE:
            assert_non_null(copy_find(c, e->member.client_id));
            copy_put(c, &e->member, 0);
            break;
        case PRESENCE_EVENT_LEAVE:
            assert_true(e->reason != PRESENCE_LEAVE_NONE);
            copy_remove(c, e->member.client_id);
            break;
        default:
            fail_msg("kind %d in a history", (int)e->kind);
        }
    }
    assert_int_equal(seq, h->stats.seq);
    c->epoch = h->stats.epoch;
    c->seq = h->stats.seq;
}

/* The copy equals the snapshot, touch times aside. */
static bool copy_equals(copy *c, const presence_snapshot *snap)
{
    if (c->epoch != snap->epoch || c->seq != snap->seq ||
        c->count != snap->count) {
        return false;
    }
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        copy_member *at = copy_find(c, m->client_id);
        if (at == NULL) {
            return false;
        }
        char *conn = hex(m->conn_info, m->conn_info_len);
        char *chan = hex(m->chan_info, m->chan_info_len);
        bool same = strcmp(at->user_id, m->user_id) == 0 &&
                    strcmp(at->node_id, m->node_id) == 0 &&
                    strcmp(at->conn_info, conn) == 0 &&
                    strcmp(at->chan_info, chan) == 0 &&
                    at->joined_at_ms == m->joined_at_ms && at->app == m->app;
        free(conn);
        free(chan);
        if (!same) {
            return false;
        }
    }
    return true;
}

/* ---- helpers ----------------------------------------------------------- */

static void ns_history(presence_registry *reg, const char *ns, size_t size,
                       int64_t ttl_ms)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.history_size = size;
    o.ttl_ms = ttl_ms;
    assert_ok(presence_namespace_set(reg, ns, &o));
}

static presence_snapshot *snapshot(presence_registry *reg, const char *ch)
{
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(reg, ch, presence_trusted(), &snap));
    return snap;
}

static int since(presence_registry *reg, const char *ch, uint64_t epoch,
                 uint64_t seq, presence_history **out)
{
    return presence_changes_since(reg, ch, presence_trusted(), epoch, seq,
                                  out);
}

/* The copy, brought up to date from the log, equals a fresh snapshot. */
static void assert_catches_up(presence_registry *reg, const char *ch, copy *c)
{
    presence_history *h = NULL;
    assert_ok(since(reg, ch, c->epoch, c->seq, &h));
    copy_apply(c, h);
    presence_history_free(h);
    presence_snapshot *snap = snapshot(reg, ch);
    assert_true(copy_equals(c, snap));
    presence_snapshot_free(snap);
}

/* The kinds and reasons of the changes after (epoch, seq), as text:
 * "join c1, leave c2 disconnect, ...". */
static char *changes_text(presence_registry *reg, const char *ch,
                          uint64_t epoch, uint64_t seq)
{
    presence_history *h = NULL;
    int rc = since(reg, ch, epoch, seq, &h);
    if (rc != PRESENCE_OK) {
        return str_printf("%s", presence_error_name(rc));
    }
    char *text = str_printf("%s", "");
    for (size_t i = 0; i < h->count; i++) {
        const presence_history_entry *e = &h->entries[i];
        char *next = str_printf(
            "%s%s%s %s%s%s", text, i > 0 ? ", " : "",
            presence_event_kind_name(e->kind), e->member.client_id,
            e->kind == PRESENCE_EVENT_LEAVE ? " " : "",
            e->kind == PRESENCE_EVENT_LEAVE
                ? presence_leave_reason_name(e->reason)
                : "");
        free(text);
        text = next;
    }
    presence_history_free(h);
    return text;
}

#define assert_changes(reg, ch, version, want)                                 \
    do {                                                                       \
        char *t_ = changes_text((reg), (ch), (version).epoch, (version).seq);  \
        assert_string_equal(t_, (want));                                       \
        free(t_);                                                              \
    } while (0)

static presence_channel_stats version_of(presence_registry *reg,
                                         const char *ch)
{
    presence_channel_stats st;
    assert_ok(presence_stats(reg, ch, presence_trusted(), &st));
    return st;
}

/* ---- tests ------------------------------------------------------------- */

/* No history_size: every version wants a snapshot, the current one too;
 * arguments are checked as for other reads. */
static void test_off_and_arguments(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    presence_channel_stats v = version_of(f.reg, "a");
    presence_history *h = (presence_history *)(uintptr_t)1;
    assert_rc(since(f.reg, "a", v.epoch, v.seq, &h),
              PRESENCE_ERR_SNAPSHOT_NEEDED);
    assert_ptr_equal(h, (presence_history *)(uintptr_t)1); /* untouched */
    /* An empty channel, read empty: nothing changed, with or without a log. */
    h = NULL;
    assert_ok(since(f.reg, "b", 0, 0, &h));
    assert_int_equal(h->count, 0);
    assert_null(h->entries);
    assert_true(h->stats.epoch == 0 && h->stats.seq == 0);
    presence_history_free(h);
    assert_rc(since(f.reg, "b", 0, 1, &h), PRESENCE_ERR_SNAPSHOT_NEEDED);
    assert_rc(since(f.reg, "b", 5, 0, &h), PRESENCE_ERR_SNAPSHOT_NEEDED);

    assert_rc(presence_changes_since(NULL, "a", presence_trusted(), 0, 0, &h),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_changes_since(f.reg, NULL, presence_trusted(), 0, 0,
                                     &h),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_changes_since(f.reg, "a", NULL, 0, 0, &h),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_changes_since(f.reg, "a", presence_trusted(), 0, 0,
                                     NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(since(f.reg, "nope:a", 0, 0, &h),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(since(f.reg, "", 0, 0, &h), PRESENCE_ERR_BAD_NAME);
    /* The access check: by default only members read. */
    assert_rc(presence_changes_since(f.reg, "a", REQ("c9"), 0, 0, &h),
              PRESENCE_ERR_DENIED);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.presence = false;
    assert_ok(presence_namespace_set(f.reg, "off", &o));
    assert_rc(since(f.reg, "off:a", 0, 0, &h), PRESENCE_ERR_NOT_AVAILABLE);
    /* Too big a log is refused. */
    presence_namespace_options_init(&o);
    o.history_size = PRESENCE_HISTORY_SIZE_MAX + 1;
    assert_rc(presence_namespace_set(f.reg, "big", &o), PRESENCE_ERR_INVALID);
    o.history_size = PRESENCE_HISTORY_SIZE_MAX;
    assert_ok(presence_namespace_set(f.reg, "big", &o));
    presence_history_free(NULL);
    fixture_close(&f);
}

/* Copies taken at every version catch up with the channel at the end. */
static void test_replay_equals_snapshot(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_history(f.reg, "", 256, 0);
    enum { STEPS = 120 };
    copy copies[STEPS + 1];
    memset(copies, 0, sizeof copies);
    uint32_t rnd = 7;
    presence_client *h[3] = {NULL, NULL, NULL};
    int app[3];
    for (int i = 0; i < 3; i++) {
        presence_client_options co;
        presence_client_options_init(&co);
        char id[8];
        snprintf(id, sizeof id, "h%d", i);
        co.client_id = id;
        co.user_id = i == 2 ? "u1" : "uh";
        co.conn_info = "ci";
        co.conn_info_len = 2;
        co.app = &app[i];
        assert_ok(presence_client_open(f.reg, &co, &h[i]));
    }
    assert_ok(join_simple(f.reg, "ch", "keep", "u0")); /* one life */
    for (int step = 0; step <= STEPS; step++) {
        presence_snapshot *snap = snapshot(f.reg, "ch");
        copy_from_snapshot(&copies[step], snap);
        presence_snapshot_free(snap);
        if (step == STEPS) {
            break;
        }
        rnd = rnd * 1103515245u + 12345u;
        unsigned pick = (rnd >> 16) % 8;
        char id[8];
        snprintf(id, sizeof id, "c%u", (rnd >> 8) % 6);
        char info[8];
        snprintf(info, sizeof info, "i%u", (rnd >> 4) % 3);
        fake_clock_advance(&f.clock, 1);
        switch (pick) {
        case 0:
        case 1:
            (void)join_info(f.reg, "ch", id, "u1", "conn", info);
            break;
        case 2:
            (void)presence_leave(f.reg, "ch", id);
            break;
        case 3:
            (void)presence_update(f.reg, "ch", id, info, strlen(info));
            break;
        case 4:
            (void)presence_disconnect(f.reg, id, NULL);
            break;
        case 5:
            (void)presence_client_join(f.reg, h[rnd % 3], "ch", info,
                                       strlen(info), NULL);
            break;
        case 6:
            (void)presence_client_leave(f.reg, h[rnd % 3], "ch", NULL);
            break;
        default:
            (void)presence_remote_join(f.reg, "n1", "ch", id, "u2", "rc", 2,
                                       info, strlen(info));
            break;
        }
    }
    for (int step = 0; step <= STEPS; step++) {
        assert_catches_up(f.reg, "ch", &copies[step]);
        copy_free(&copies[step]);
    }
    for (int i = 0; i < 3; i++) {
        assert_ok(presence_client_close(f.reg, h[i], NULL));
    }
    fixture_close(&f);
}

/* A full log drops its oldest change: a version before it wants a
 * snapshot, one at its edge is still told. A version ahead of the channel
 * wants one too. */
static void test_wrap(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_history(f.reg, "", 4, 0);
    assert_ok(join_simple(f.reg, "a", "c0", "u"));
    presence_channel_stats v1 = version_of(f.reg, "a");
    assert_changes(f.reg, "a", v1, "");
    for (int i = 1; i <= 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "c%d", i);
        assert_ok(join_simple(f.reg, "a", id, "u"));
    }
    /* Changes 2..5 are kept: the version at 1 is the log's edge. */
    assert_changes(f.reg, "a", v1, "join c1, join c2, join c3, join c4");
    presence_channel_stats v0 = v1;
    v0.seq = 0;
    assert_changes(f.reg, "a", v0, "ERR_SNAPSHOT_NEEDED");
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_changes(f.reg, "a", v1, "ERR_SNAPSHOT_NEEDED");
    presence_channel_stats now = version_of(f.reg, "a");
    assert_int_equal(now.seq, 6);
    assert_changes(f.reg, "a", now, "");
    now.seq = 7;
    assert_changes(f.reg, "a", now, "ERR_SNAPSHOT_NEEDED");
    /* (0, 0) is told only while the log holds the life from its start. */
    presence_channel_stats zero = {0, 0, 0, 0};
    assert_changes(f.reg, "a", zero, "ERR_SNAPSHOT_NEEDED");
    fixture_close(&f);
}

/* Another life of the channel wants a snapshot; (0, 0) gets the new life
 * from its start. */
static void test_epoch_change(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_history(f.reg, "", 16, 0);
    presence_channel_stats zero = {0, 0, 0, 0};
    assert_changes(f.reg, "a", zero, "");
    assert_ok(join_simple(f.reg, "a", "c1", "u"));
    presence_channel_stats v1 = version_of(f.reg, "a");
    assert_changes(f.reg, "a", zero, "join c1");
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_changes(f.reg, "a", v1, "ERR_SNAPSHOT_NEEDED");
    assert_changes(f.reg, "a", zero, ""); /* empty again */
    assert_ok(join_simple(f.reg, "a", "c2", "u"));
    presence_channel_stats v2 = version_of(f.reg, "a");
    assert_true(v2.epoch != v1.epoch);
    assert_int_equal(v2.seq, 1);
    v1.seq = 1; /* the same seq in the old life */
    assert_changes(f.reg, "a", v1, "ERR_SNAPSHOT_NEEDED");
    assert_changes(f.reg, "a", zero, "join c2");
    fixture_close(&f);
}

/* Every path that changes a membership leaves its change in the log, with
 * its kind and reason; a change that fails or is taken back leaves none. */
static void test_every_path_logged(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_history(f.reg, "", 64, 0);
    ns_history(f.reg, "ttl", 64, 100);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.history_size = 64;
    o.max_members = 2;
    assert_ok(presence_namespace_set(f.reg, "small", &o));
    assert_ok(join_simple(f.reg, "a", "keep", "u0"));
    presence_channel_stats v = version_of(f.reg, "a");

    /* By name: join, upsert with new info (update), same info (nothing),
     * update, leave, disconnect. */
    assert_ok(join_simple(f.reg, "a", "n1", "u1"));
    assert_ok(join_info(f.reg, "a", "n1", "u1", NULL, "x"));
    assert_ok(join_info(f.reg, "a", "n1", "u1", NULL, "x"));
    assert_ok(presence_update(f.reg, "a", "n1", "y", 1));
    assert_ok(presence_leave(f.reg, "a", "n1"));
    assert_ok(join_simple(f.reg, "a", "n2", "u1"));
    assert_ok(presence_disconnect(f.reg, "n2", NULL));
    assert_changes(f.reg, "a", v,
                   "join n1, update n1, update n1, leave n1 explicit, "
                   "join n2, leave n2 disconnect");
    v = version_of(f.reg, "a");

    /* By handle: join, update, join_many (a join and an update), leave,
     * close. */
    presence_client *h = open_handle(f.reg, "h1", "u2", NULL);
    assert_ok(presence_client_join(f.reg, h, "a", NULL, 0, NULL));
    assert_ok(presence_client_update(f.reg, h, "a", "z", 1, NULL));
    assert_ok(join_simple(f.reg, "b", "keep", "u0"));
    presence_channel_stats vb = version_of(f.reg, "b");
    const presence_join_item items[] = {{"a", "w", 1}, {"b", NULL, 0}};
    assert_ok(presence_client_join_many(f.reg, h, items, 2, NULL, NULL));
    assert_ok(presence_client_leave(f.reg, h, "b", NULL));
    assert_ok(presence_client_close(f.reg, h, NULL));
    assert_changes(f.reg, "a", v,
                   "join h1, update h1, update h1, leave h1 disconnect");
    assert_changes(f.reg, "b", vb, "join h1, leave h1 explicit");

    /* join_many taken back (the second item is over its limit): nothing
     * logged, in the channel it joined first either. */
    v = version_of(f.reg, "a");
    assert_ok(join_simple(f.reg, "small:x", "s1", "u"));
    assert_ok(join_simple(f.reg, "small:x", "s2", "u"));
    presence_channel_stats vs = version_of(f.reg, "small:x");
    h = open_handle(f.reg, "h2", "u2", NULL);
    const presence_join_item over[] = {{"a", NULL, 0}, {"small:x", NULL, 0}};
    size_t failed = 0;
    assert_rc(presence_client_join_many(f.reg, h, over, 2, NULL, &failed),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    assert_int_equal(failed, 1);
    assert_changes(f.reg, "a", v, "");
    assert_changes(f.reg, "small:x", vs, "");
    assert_rc(join_simple(f.reg, "small:x", "s3", "u"),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    assert_changes(f.reg, "small:x", vs, "");
    /* Its changes after that are told from the same version. */
    assert_ok(presence_client_join(f.reg, h, "a", NULL, 0, NULL));
    assert_changes(f.reg, "a", v, "join h2");
    assert_ok(presence_client_close(f.reg, h, NULL));

    /* Expiry. */
    assert_ok(join_simple(f.reg, "ttl:t", "t1", "u"));
    assert_ok(join_simple(f.reg, "ttl:t", "t2", "u"));
    presence_channel_stats vt = version_of(f.reg, "ttl:t");
    fake_clock_advance(&f.clock, 60);
    assert_ok(presence_touch(f.reg, "ttl:t", "t2"));
    fake_clock_advance(&f.clock, 60);
    size_t expired = 0;
    assert_ok(presence_expire(f.reg, fake_clock_get(&f.clock), &expired,
                              NULL));
    assert_int_equal(expired, 1);
    assert_changes(f.reg, "ttl:t", vt, "leave t1 expired");

    /* A node: its clients join, leave, update, and go with it. */
    v = version_of(f.reg, "a");
    assert_ok(presence_remote_join(f.reg, "n1", "a", "r1", "u3", NULL, 0,
                                   NULL, 0));
    assert_ok(presence_remote_join(f.reg, "n1", "a", "r2", "u3", NULL, 0,
                                   NULL, 0));
    assert_ok(presence_remote_join(f.reg, "n1", "a", "r1", "u3", NULL, 0,
                                   "q", 1));
    assert_ok(presence_remote_leave(f.reg, "n1", "a", "r2",
                                    PRESENCE_LEAVE_EXPLICIT));
    size_t gone = 0;
    assert_ok(presence_node_down(f.reg, "n1", PRESENCE_LEAVE_NODE_DOWN, &gone));
    assert_int_equal(gone, 1);
    assert_changes(f.reg, "a", v,
                   "join r1, join r2, update r1, leave r2 explicit, "
                   "leave r1 node_down");
    presence_history *hist = NULL;
    assert_ok(since(f.reg, "a", v.epoch, v.seq, &hist));
    assert_string_equal(hist->entries[0].member.node_id, "n1");
    assert_int_equal(hist->entries[2].member.chan_info_len, 1);
    presence_history_free(hist);

    fixture_close(&f);
}

/* Closing a channel or turning presence off empties it: its log goes with
 * that life, and the version before says "snapshot". */
static void test_close_paths(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_history(f.reg, "xs", 8, 0);
    assert_ok(join_simple(f.reg, "xs:a", "c1", "u"));
    assert_ok(join_simple(f.reg, "xs:b", "c1", "u"));
    presence_channel_stats va = version_of(f.reg, "xs:a");
    presence_channel_stats vb = version_of(f.reg, "xs:b");
    size_t n = 0;
    assert_ok(presence_channel_close(f.reg, "xs:a", &n));
    assert_int_equal(n, 1);
    assert_changes(f.reg, "xs:a", va, "ERR_SNAPSHOT_NEEDED");
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_CLOSED),
                     1);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.presence = false;
    assert_ok(presence_namespace_set(f.reg, "xs", &o));
    assert_rc(since(f.reg, "xs:b", vb.epoch, vb.seq, &(presence_history *){0}),
              PRESENCE_ERR_NOT_AVAILABLE);
    fixture_close(&f);
}

/* history_size set on live channels: each starts a log at its current
 * version; a smaller size keeps the newest changes; 0 takes them away. */
static void test_resize(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u"));
    assert_ok(join_simple(f.reg, "b", "c1", "u"));
    presence_channel_stats v1 = version_of(f.reg, "a");
    ns_history(f.reg, "", 8, 0);
    presence_channel_stats v0 = v1;
    v0.seq = 0;
    assert_changes(f.reg, "a", v0, "ERR_SNAPSHOT_NEEDED");
    assert_changes(f.reg, "a", v1, "");
    for (int i = 2; i <= 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "c%d", i);
        assert_ok(join_simple(f.reg, "a", id, "u"));
    }
    assert_changes(f.reg, "a", v1, "join c2, join c3, join c4, join c5");
    ns_history(f.reg, "", 2, 0);
    assert_changes(f.reg, "a", v1, "ERR_SNAPSHOT_NEEDED");
    presence_channel_stats v3 = v1;
    v3.seq = 3;
    assert_changes(f.reg, "a", v3, "join c4, join c5");
    ns_history(f.reg, "", 32, 0); /* grows, keeps what it had */
    assert_changes(f.reg, "a", v3, "join c4, join c5");
    assert_ok(presence_leave(f.reg, "a", "c5"));
    assert_changes(f.reg, "a", v3, "join c4, join c5, leave c5 explicit");
    ns_history(f.reg, "", 0, 0);
    assert_changes(f.reg, "a", v3, "ERR_SNAPSHOT_NEEDED");
    presence_channel_stats now = version_of(f.reg, "a");
    assert_changes(f.reg, "a", now, "ERR_SNAPSHOT_NEEDED");
    fixture_close(&f);
}

/* A log grows with its channel, and keeps every change history_size
 * promises: the leaves of all members but one, after their joins, and
 * updates by name and through join_many, all from the channel's start. */
static void test_growth(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_history(f.reg, "", 100, 0);
    presence_channel_stats zero = {0, 0, 0, 0};
    char want[2048] = "";
    for (int i = 0; i < 20; i++) {
        char id[8];
        snprintf(id, sizeof id, "c%d", i);
        assert_ok(join_simple(f.reg, "a", id, "u"));
        snprintf(want + strlen(want), sizeof want - strlen(want), "%sjoin %s",
                 i > 0 ? ", " : "", id);
    }
    presence_client *h = open_handle(f.reg, "h", "u", NULL);
    assert_ok(presence_client_join(f.reg, h, "a", NULL, 0, NULL));
    strcat(want, ", join h");
    const presence_join_item item = {"a", "i", 1};
    assert_ok(presence_client_join_many(f.reg, h, &item, 1, NULL, NULL));
    strcat(want, ", update h");
    assert_ok(presence_update(f.reg, "a", "c0", "x", 1));
    strcat(want, ", update c0");
    for (int i = 1; i < 20; i++) {
        char id[8];
        snprintf(id, sizeof id, "c%d", i);
        assert_ok(presence_leave(f.reg, "a", id));
        snprintf(want + strlen(want), sizeof want - strlen(want),
                 ", leave %s explicit", id);
    }
    assert_ok(presence_client_close(f.reg, h, NULL));
    strcat(want, ", leave h disconnect");
    assert_changes(f.reg, "a", zero, want);
    fixture_close(&f);
}

/* The dump of every channel's log, for before/after comparisons. */
static const char *const dump_ns[] = {"", "xs", NULL};

static char *dump_paused(fixture *f)
{
    f->alloc.paused = true;
    char *d = dump_registry(f->reg, dump_ns);
    f->alloc.paused = false;
    return d;
}

typedef int (*oom_call)(fixture *f);

static int call_join_new_channel(fixture *f)
{
    return join_info(f->reg, "xs:new", "c9", "u9", "ci", "chan");
}
static int call_join(fixture *f)
{
    return join_info(f->reg, "xs:a", "c9", "u9", "ci", "chan");
}
static int call_update(fixture *f)
{
    return presence_update(f->reg, "xs:a", "c1", "upd", 3);
}
static int call_join_many(fixture *f)
{
    presence_client *h = NULL;
    presence_client_options co;
    presence_client_options_init(&co);
    co.client_id = "h9";
    f->alloc.paused = true;
    int rc = presence_client_open(f->reg, &co, &h);
    f->alloc.paused = false;
    if (rc != PRESENCE_OK) {
        return rc;
    }
    const presence_join_item items[] = {
        {"xs:a", "i", 1}, {"xs:b", NULL, 0}, {"xs:new2", NULL, 0}, {"xs:c", "j", 1}};
    rc = presence_client_join_many(f->reg, h, items, 4, NULL, NULL);
    if (rc != PRESENCE_OK) {
        f->alloc.paused = true;
        assert_ok(presence_client_close(f->reg, h, NULL));
        f->alloc.paused = false;
    }
    return rc;
}
static int call_resize(fixture *f)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.history_size = 3;
    return presence_namespace_set(f->reg, "xs", &o);
}
static int call_leave(fixture *f)
{
    return presence_leave(f->reg, "xs:a", "c2");
}

/* Fail allocation N, N+1, ... of each call: a call that fails returns
 * NOMEM and leaves every log, member and count as it was; once it
 * succeeds the logs read as in a run without failures. */
static void test_out_of_memory(void **state)
{
    (void)state;
    static const oom_call calls[] = {call_join_new_channel, call_join,
                                     call_update, call_join_many,
                                     call_leave, call_resize};
    char *want = NULL;
    for (long n = 0;; n++) {
        fixture f;
        fixture_config(&f);
        fixture_open(&f);
        ns_history(f.reg, "xs", 4, 0);
        assert_ok(join_info(f.reg, "xs:a", "c1", "u1", "ci", "a1"));
        assert_ok(join_info(f.reg, "xs:a", "c2", "u2", NULL, NULL));
        assert_ok(join_info(f.reg, "xs:b", "c1", "u1", "ci", NULL));
        assert_ok(join_info(f.reg, "xs:c", "c2", "u2", NULL, NULL));
        bool injected_any = false;
        for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
            char *before = dump_paused(&f);
            test_alloc_arm(&f.alloc, n);
            unsigned long inj = atomic_load(&f.alloc.injected);
            int rc = calls[i](&f);
            bool injected = atomic_load(&f.alloc.injected) != inj;
            test_alloc_disarm(&f.alloc);
            injected_any |= injected;
            if (rc != PRESENCE_OK) {
                assert_rc(rc, PRESENCE_ERR_NOMEM);
                assert_true(injected);
                char *after = dump_paused(&f);
                assert_string_equal(before, after);
                free(after);
                assert_ok(calls[i](&f));
            }
            free(before);
        }
        char *end = dump_paused(&f);
        assert_non_null(strstr(end, "history since="));
        if (want == NULL) {
            want = end;
        } else {
            assert_string_equal(want, end);
            free(end);
        }
        /* The read itself: NOMEM and nothing else. */
        presence_history *h = NULL;
        test_alloc_arm(&f.alloc, 0);
        assert_rc(since(f.reg, "xs:a", 0, 0, &h), PRESENCE_ERR_SNAPSHOT_NEEDED);
        presence_channel_stats v = version_of(f.reg, "xs:a");
        assert_rc(since(f.reg, "xs:a", v.epoch, v.seq - 1, &h),
                  PRESENCE_ERR_NOMEM);
        assert_null(h);
        test_alloc_disarm(&f.alloc);
        fixture_close(&f);
        if (!injected_any) {
            break;
        }
        assert_true(n < 10000);
    }
    free(want);
}

/* ---- threads: a reader keeps a copy against writers ---------------------- */

typedef struct shared {
    presence_registry *reg;
    atomic_int writers_done;
    /* The reader's catch-ups so far: the writers go on past their 4,000
     * changes until it has made a few, so that a loaded machine that
     * runs the writers first still tests reading against writes. */
    atomic_size_t caught_up;
} shared;

typedef struct writer {
    shared *s;
    int me;
} writer;

static void *writer_main(void *arg)
{
    shared *s = ((writer *)arg)->s;
    int me = ((writer *)arg)->me;
    uint32_t rnd = (uint32_t)me * 7919u + 1;
    for (int i = 0;
         i < 4000 || (atomic_load(&s->caught_up) < 3 && i < 4000000); i++) {
        rnd = rnd * 1103515245u + 12345u;
        char id[16];
        snprintf(id, sizeof id, "w%d-%u", me, (rnd >> 16) % 16);
        char info[4] = {(char)('a' + (rnd >> 8) % 3), 0, 0, 0};
        switch ((rnd >> 12) % 3) {
        case 0:
            (void)join_info(s->reg, "big", id, "u", "c", info);
            break;
        case 1:
            (void)presence_leave(s->reg, "big", id);
            break;
        default:
            (void)presence_update(s->reg, "big", id, info, 1);
            break;
        }
    }
    atomic_fetch_add(&s->writers_done, 1);
    return NULL;
}

static void test_threads_reader(void **state)
{
    (void)state;
    presence_config c;
    presence_config_init(&c);
    c.hash_seed = 99;
    presence_registry *reg = NULL;
    assert_ok(presence_registry_new(&c, &reg));
    ns_history(reg, "", 512, 0);
    assert_ok(join_simple(reg, "big", "anchor", "u0")); /* one life */
    shared s = {.reg = reg};
    atomic_init(&s.writers_done, 0);
    atomic_init(&s.caught_up, 0);
    pthread_t t[2];
    writer w[2];
    for (int i = 0; i < 2; i++) {
        w[i] = (writer){&s, i};
        assert_int_equal(pthread_create(&t[i], NULL, writer_main, &w[i]), 0);
    }
    copy cp = {0};
    presence_snapshot *snap = snapshot(reg, "big");
    copy_from_snapshot(&cp, snap);
    presence_snapshot_free(snap);
    size_t caught_up = 0, resnapshots = 0, equal = 0;
    while (atomic_load(&s.writers_done) < 2) {
        presence_history *h = NULL;
        int rc = since(reg, "big", cp.epoch, cp.seq, &h);
        if (rc == PRESENCE_ERR_SNAPSHOT_NEEDED) {
            resnapshots++;
            snap = snapshot(reg, "big");
            copy_from_snapshot(&cp, snap);
            presence_snapshot_free(snap);
            continue;
        }
        assert_ok(rc);
        copy_apply(&cp, h);
        presence_history_free(h);
        caught_up++;
        atomic_store(&s.caught_up, caught_up);
        snap = snapshot(reg, "big");
        if (snap->seq == cp.seq) {
            assert_true(copy_equals(&cp, snap));
            equal++;
        }
        presence_snapshot_free(snap);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
    }
    /* Quiet now: the copy catches up, or is told to start again. */
    presence_history *last = NULL;
    if (since(reg, "big", cp.epoch, cp.seq, &last) ==
        PRESENCE_ERR_SNAPSHOT_NEEDED) {
        snap = snapshot(reg, "big");
        copy_from_snapshot(&cp, snap);
        presence_snapshot_free(snap);
    }
    presence_history_free(last);
    assert_catches_up(reg, "big", &cp);
    print_message("reader: %zu catch-ups, %zu compared, %zu snapshots\n",
                  caught_up, equal, resnapshots);
    assert_true(caught_up > 0);
    copy_free(&cp);
    assert_ok(presence_registry_free(reg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_and_arguments),
        cmocka_unit_test(test_replay_equals_snapshot),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_epoch_change),
        cmocka_unit_test(test_every_path_logged),
        cmocka_unit_test(test_close_paths),
        cmocka_unit_test(test_resize),
        cmocka_unit_test(test_growth),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_threads_reader),
    };
    return cmocka_run_group_tests_name("history", tests, NULL, NULL);
}
