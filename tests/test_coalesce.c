/*
 * Coalesced diffs: presence_subscribe_coalesced() and presence_flush().
 * Joins and leaves of one member inside a window cancel out; a diff is
 * due window_ms after its window's first change and no earlier (unless
 * flushed with PRESENCE_FLUSH_ALL); above a member threshold a diff is
 * counts only, with hysteresis; diffs chain by version and bring a copy
 * to the channel's state; unsubscribing drops what is pending; memory
 * failures give a resync, never a silent loss; and a copy kept from diffs
 * stays exact against writers on other threads.
 *
 * SPDX-License-Identifier: MIT
 */
#include "helpers.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a diff recorder ---------------------------------------------------- */

typedef struct rec_diff {
    char *channel;
    char *namespace_name;
    unsigned flags;
    uint64_t from_epoch, from_seq, epoch, seq;
    presence_channel_stats stats;
    size_t joined, left, updated, count;
    int64_t first_time_ms, last_time_ms;
    /* "join c1 u1 conn chan;leave c2 explicit;..." */
    char *members;
} rec_diff;

typedef struct diff_log {
    rec_diff *diffs;
    size_t count, cap;
    presence_registry *reg;
    unsigned long malformed;
    /* Optional hook run inside the callback (re-entrancy tests). */
    void (*hook)(struct diff_log *log, presence_registry *reg,
                 const presence_diff *diff);
    void *hook_data;
} diff_log;

static char *text_of(const void *data, size_t len)
{
    char *s = malloc(len + 1);
    assert_non_null(s);
    if (len > 0) {
        memcpy(s, data, len);
    }
    s[len] = '\0';
    return s;
}

static void members_text(const presence_diff *d, char **out)
{
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    s[0] = '\0';
    for (size_t i = 0; i < d->member_count; i++) {
        const presence_diff_member *m = &d->members[i];
        char *conn = text_of(m->member.conn_info, m->member.conn_info_len);
        char *chan = text_of(m->member.chan_info, m->member.chan_info_len);
        char *line =
            m->kind == PRESENCE_EVENT_LEAVE
                ? str_printf("leave %s %s;", m->member.client_id,
                             presence_leave_reason_name(m->reason))
                : str_printf("%s %s %s %s %s;",
                             presence_event_kind_name(m->kind),
                             m->member.client_id, m->member.user_id, conn,
                             chan);
        free(conn);
        free(chan);
        size_t n = strlen(line);
        while (len + n + 1 > cap) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
        memcpy(s + len, line, n + 1);
        len += n;
        free(line);
    }
    *out = s;
}

static void diff_cb(presence_registry *reg, const presence_diff *d,
                    void *user_data)
{
    diff_log *log = user_data;
    if (log->reg != NULL && reg != log->reg) {
        log->malformed++;
    }
    if (d->channel == NULL || d->namespace_name == NULL ||
        (d->member_count > 0) != (d->members != NULL) ||
        d->stats.epoch != d->epoch || d->stats.seq != d->seq ||
        ((d->flags & (PRESENCE_DIFF_COUNT_ONLY | PRESENCE_DIFF_RESYNC)) != 0 &&
         d->member_count != 0)) {
        log->malformed++;
    }
    if (log->count == log->cap) {
        log->cap = log->cap == 0 ? 16 : log->cap * 2;
        log->diffs = realloc(log->diffs, log->cap * sizeof *log->diffs);
        assert_non_null(log->diffs);
    }
    rec_diff *r = &log->diffs[log->count++];
    memset(r, 0, sizeof *r);
    r->channel = text_of(d->channel, strlen(d->channel));
    r->namespace_name = text_of(d->namespace_name, strlen(d->namespace_name));
    r->flags = d->flags;
    r->from_epoch = d->from_epoch;
    r->from_seq = d->from_seq;
    r->epoch = d->epoch;
    r->seq = d->seq;
    r->stats = d->stats;
    r->joined = d->joined;
    r->left = d->left;
    r->updated = d->updated;
    r->count = d->member_count;
    r->first_time_ms = d->first_time_ms;
    r->last_time_ms = d->last_time_ms;
    members_text(d, &r->members);
    if (log->hook != NULL) {
        log->hook(log, reg, d);
    }
}

static void diff_log_clear(diff_log *log)
{
    for (size_t i = 0; i < log->count; i++) {
        free(log->diffs[i].channel);
        free(log->diffs[i].namespace_name);
        free(log->diffs[i].members);
    }
    log->count = 0;
}

static void diff_log_free(diff_log *log)
{
    diff_log_clear(log);
    free(log->diffs);
    memset(log, 0, sizeof *log);
}

/* ---- fixture ------------------------------------------------------------ */

typedef struct cfix {
    fixture f;
    diff_log log;
    presence_subscription csub;
} cfix;

static void cfix_open(cfix *c, presence_scope scope, const char *name,
                      int64_t window_ms, size_t above, size_t below)
{
    memset(c, 0, sizeof *c);
    fixture_config(&c->f);
    fixture_open(&c->f);
    c->log.reg = c->f.reg;
    presence_coalesce_options o;
    presence_coalesce_options_init(&o);
    o.window_ms = window_ms;
    o.count_only_above = above;
    o.count_only_below = below;
    assert_ok(presence_subscribe_coalesced(c->f.reg, scope, name, &o, diff_cb,
                                           &c->log, &c->csub));
}

static void cfix_close(cfix *c)
{
    assert_int_equal(c->log.malformed, 0);
    diff_log_free(&c->log);
    fixture_close(&c->f);
}

static int64_t now_of(cfix *c)
{
    return fake_clock_get(&c->f.clock);
}

/* Flush at the fake clock's time; returns the next deadline. */
static int64_t flush_now(cfix *c)
{
    int64_t next = 0;
    assert_ok(presence_flush(c->f.reg, now_of(c), &next));
    return next;
}

static void flush_all(cfix *c)
{
    int64_t next = 0;
    assert_ok(presence_flush(c->f.reg, PRESENCE_FLUSH_ALL, &next));
    assert_true(next == PRESENCE_NO_DEADLINE);
}

/* ---- arguments ----------------------------------------------------------- */

static void test_arguments(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_ALL, NULL, 100, 0, 0);
    presence_registry *reg = c.f.reg;
    presence_subscription s = 0;
    presence_coalesce_options o;
    presence_coalesce_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.window_ms, 1000);
    assert_int_equal(o.count_only_above, 0);

    assert_rc(presence_subscribe_coalesced(NULL, PRESENCE_SCOPE_ALL, NULL, &o,
                                           diff_cb, &c.log, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_ALL, NULL, &o,
                                           NULL, &c.log, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_ALL, NULL, &o,
                                           diff_cb, &c.log, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_ALL, "x", &o,
                                           diff_cb, &c.log, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_CHANNEL, NULL,
                                           &o, diff_cb, &c.log, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe_coalesced(reg, (presence_scope)7, NULL, &o,
                                           diff_cb, &c.log, &s),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_CHANNEL,
                                           "bad\x01", &o, diff_cb, &c.log, &s),
              PRESENCE_ERR_BAD_NAME);
    o.window_ms = -1;
    assert_rc(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_ALL, NULL, &o,
                                           diff_cb, &c.log, &s),
              PRESENCE_ERR_INVALID);
    o.window_ms = 10;
    o.count_only_above = 5;
    o.count_only_below = 6;
    assert_rc(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_ALL, NULL, &o,
                                           diff_cb, &c.log, &s),
              PRESENCE_ERR_INVALID);
    o.struct_size = 2;
    o.count_only_below = 0;
    assert_rc(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_ALL, NULL, &o,
                                           diff_cb, &c.log, &s),
              PRESENCE_ERR_INVALID);
    assert_int_equal(s, 0);
    assert_rc(presence_flush(NULL, 0, NULL), PRESENCE_ERR_INVALID);

    /* An older, smaller struct: window_ms only; the rest are defaults. */
    presence_coalesce_options small;
    presence_coalesce_options_init_sized(&small,
                                         offsetof(presence_coalesce_options,
                                                  count_only_above));
    small.window_ms = 5;
    small.count_only_above = 99; /* beyond its size: never read */
    small.count_only_below = 100;
    assert_ok(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_ALL, NULL,
                                           &small, diff_cb, &c.log, &s));
    assert_true(s != 0 && s != c.csub);
    /* NULL options: the defaults. */
    presence_subscription s2 = 0;
    assert_ok(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_NAMESPACE, "",
                                           NULL, diff_cb, &c.log, &s2));
    assert_ok(presence_unsubscribe(reg, s));
    assert_ok(presence_unsubscribe(reg, s2));
    assert_rc(presence_unsubscribe(reg, s2), PRESENCE_ERR_NOT_FOUND);
    /* Nothing pending: no deadline. */
    assert_true(flush_now(&c) == PRESENCE_NO_DEADLINE);
    assert_int_equal(c.log.count, 0);
    cfix_close(&c);
}

/* ---- the net rule -------------------------------------------------------- */

static void test_join_then_leave_cancels(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_CHANNEL, "room", 100, 0, 0);
    presence_registry *reg = c.f.reg;
    assert_ok(join_info(reg, "room", "a", "ua", "ca", "1"));
    assert_ok(join_info(reg, "room", "b", "ub", NULL, NULL));
    assert_ok(join_simple(reg, "room", "x", "ux"));
    assert_ok(presence_leave(reg, "room", "x"));
    assert_ok(join_simple(reg, "other", "o", "uo")); /* out of scope */
    /* Ordinary events still come one by one. */
    assert_int_equal(recorder_count(&c.f.rec, PRESENCE_EVENT_JOIN), 4);
    assert_int_equal(c.log.count, 0);
    flush_all(&c);
    assert_int_equal(c.log.count, 1);
    rec_diff *d = &c.log.diffs[0];
    assert_string_equal(d->channel, "room");
    assert_string_equal(d->members, "join a ua ca 1;join b ub  ;");
    assert_int_equal(d->joined, 2);
    assert_int_equal(d->left, 0);
    assert_int_equal(d->flags, 0);
    assert_int_equal(d->from_epoch, 0); /* the channel was empty */
    assert_int_equal(d->from_seq, 0);
    presence_channel_stats s = stats_of(reg, "room");
    assert_int_equal(d->epoch, s.epoch);
    assert_int_equal(d->seq, 4);
    assert_int_equal(d->stats.num_clients, 2);
    assert_int_equal(d->stats.num_users, 2);

    /* A window of a join and a leave alone: a diff with no member, which
     * still moves the version on. */
    assert_ok(join_simple(reg, "room", "y", "uy"));
    assert_ok(presence_leave(reg, "room", "y"));
    flush_all(&c);
    assert_int_equal(c.log.count, 2);
    d = &c.log.diffs[1];
    assert_int_equal(d->count, 0);
    assert_string_equal(d->members, "");
    assert_int_equal(d->from_epoch, s.epoch);
    assert_int_equal(d->from_seq, 4);
    assert_int_equal(d->seq, 6);
    /* Nothing pending: a flush delivers nothing. */
    flush_all(&c);
    assert_int_equal(c.log.count, 2);
    cfix_close(&c);
}

static void test_leave_then_join(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_ALL, NULL, 100, 0, 0);
    presence_registry *reg = c.f.reg;
    assert_ok(join_info(reg, "r", "same", "u1", "c", "i"));
    assert_ok(join_info(reg, "r", "chan", "u2", "c", "i"));
    assert_ok(join_info(reg, "r", "conn", "u3", "c", "i"));
    assert_ok(join_info(reg, "r", "user", "u4", "c", "i"));
    assert_ok(join_info(reg, "r", "upd", "u5", "c", "i"));
    assert_ok(join_info(reg, "r", "gone", "u6", "c", "i"));
    assert_ok(join_info(reg, "r", "keep", "u7", "c", "i"));
    flush_all(&c);
    assert_int_equal(c.log.count, 1);

    /* A reconnect as it was: nothing. */
    assert_ok(presence_disconnect(reg, "same", NULL));
    assert_ok(join_info(reg, "r", "same", "u1", "c", "i"));
    /* Back with another chan_info, conn_info or user: an update. */
    assert_ok(presence_leave(reg, "r", "chan"));
    assert_ok(join_info(reg, "r", "chan", "u2", "c", "j"));
    assert_ok(presence_disconnect(reg, "conn", NULL));
    assert_ok(join_info(reg, "r", "conn", "u3", "d", "i"));
    assert_ok(presence_disconnect(reg, "user", NULL));
    assert_ok(join_info(reg, "r", "user", "v4", "c", "i"));
    /* An update, even one back to the same info, is an update. */
    assert_ok(presence_update(reg, "r", "upd", "k", 1));
    assert_ok(presence_update(reg, "r", "upd", "i", 1));
    /* A leave stays a leave, with its reason, whatever came before. */
    assert_ok(presence_update(reg, "r", "gone", "z", 1));
    assert_ok(presence_disconnect(reg, "gone", NULL));
    flush_all(&c);
    assert_int_equal(c.log.count, 2);
    rec_diff *d = &c.log.diffs[1];
    assert_string_equal(d->members, "update chan u2 c j;"
                                    "update conn u3 d i;"
                                    "update user v4 c i;"
                                    "update upd u5 c i;"
                                    "leave gone disconnect;");
    assert_int_equal(d->joined, 0);
    assert_int_equal(d->left, 1);
    assert_int_equal(d->updated, 4);
    assert_int_equal(d->stats.num_clients, 6);
    assert_int_equal(d->from_seq, 7);
    assert_int_equal(d->seq, stats_of(reg, "r").seq);
    cfix_close(&c);
}

/* ---- windows -------------------------------------------------------------- */

static void test_windows(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_NAMESPACE, "", 100, 0, 0);
    presence_registry *reg = c.f.reg;
    int64_t t0 = now_of(&c);
    assert_true(flush_now(&c) == PRESENCE_NO_DEADLINE);
    assert_ok(join_simple(reg, "a", "c1", "u"));
    fake_clock_advance(&c.f.clock, 30);
    assert_ok(join_simple(reg, "b", "c2", "u"));
    /* Due 100 ms after each window's first change, not before. */
    assert_int_equal(flush_now(&c), t0 + 100);
    assert_int_equal(c.log.count, 0);
    fake_clock_set(&c.f.clock, t0 + 99);
    assert_int_equal(flush_now(&c), t0 + 100);
    assert_int_equal(c.log.count, 0);
    fake_clock_set(&c.f.clock, t0 + 100);
    assert_ok(join_simple(reg, "a", "c3", "u")); /* still a's window */
    assert_int_equal(flush_now(&c), t0 + 130);
    assert_int_equal(c.log.count, 1);
    assert_string_equal(c.log.diffs[0].channel, "a");
    assert_string_equal(c.log.diffs[0].members, "join c1 u  ;join c3 u  ;");
    assert_int_equal(c.log.diffs[0].first_time_ms, t0);
    assert_int_equal(c.log.diffs[0].last_time_ms, t0 + 100);
    /* The next change of a opens its next window. */
    fake_clock_set(&c.f.clock, t0 + 110);
    assert_ok(presence_leave(reg, "a", "c1"));
    assert_int_equal(flush_now(&c), t0 + 130);
    fake_clock_set(&c.f.clock, t0 + 130);
    assert_int_equal(flush_now(&c), t0 + 210);
    assert_int_equal(c.log.count, 2);
    assert_string_equal(c.log.diffs[1].channel, "b");
    /* A flush with an earlier time than the clock only reads. */
    assert_int_equal(presence_flush(reg, t0, NULL), PRESENCE_OK);
    assert_int_equal(c.log.count, 2);
    /* PRESENCE_FLUSH_ALL: everything, now. */
    flush_all(&c);
    assert_int_equal(c.log.count, 3);
    assert_string_equal(c.log.diffs[2].members, "leave c1 explicit;");
    assert_int_equal(c.log.diffs[2].from_seq, 2);
    cfix_close(&c);
}

static void test_window_zero_and_scope(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_NAMESPACE, "ns", 0, 0, 0);
    presence_registry *reg = c.f.reg;
    ns_set(reg, "ns", true, true, 0, 0);
    ns_set(reg, "quiet", true, false, 0, 0);
    assert_ok(join_simple(reg, "ns:a", "c1", "u"));
    assert_ok(join_simple(reg, "ns:b", "c1", "u"));
    assert_ok(join_simple(reg, "plain", "c1", "u"));
    assert_ok(join_simple(reg, "quiet:a", "c1", "u"));
    /* Window 0: due at once, at the time of the change. */
    assert_int_equal(presence_flush(reg, now_of(&c) - 1, NULL), PRESENCE_OK);
    assert_int_equal(c.log.count, 0);
    assert_int_equal(flush_now(&c), PRESENCE_NO_DEADLINE);
    assert_int_equal(c.log.count, 2); /* windows in the order they opened */
    assert_string_equal(c.log.diffs[0].channel, "ns:a");
    assert_string_equal(c.log.diffs[0].namespace_name, "ns");
    assert_string_equal(c.log.diffs[1].channel, "ns:b");
    cfix_close(&c);
}

/* ---- counts only ----------------------------------------------------------- */

static void test_count_only_hysteresis(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_ALL, NULL, 10, 3, 2);
    presence_registry *reg = c.f.reg;
    /* 3 members: not above 3, member lists. */
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof id, "c%d", i);
        assert_ok(join_simple(reg, "big", id, id));
    }
    flush_all(&c);
    assert_int_equal(c.log.count, 1);
    assert_int_equal(c.log.diffs[0].flags, 0);
    assert_int_equal(c.log.diffs[0].count, 3);
    /* A fourth: above 3, the window goes counts only, all of it. */
    assert_ok(join_simple(reg, "big", "c3", "c3"));
    assert_ok(join_simple(reg, "big", "c4", "c4"));
    assert_ok(presence_leave(reg, "big", "c4"));
    flush_all(&c);
    rec_diff *d = &c.log.diffs[1];
    assert_int_equal(d->flags, PRESENCE_DIFF_COUNT_ONLY);
    assert_int_equal(d->count, 0);
    assert_int_equal(d->joined, 2); /* events, not netted */
    assert_int_equal(d->left, 1);
    assert_int_equal(d->stats.num_clients, 4);
    assert_int_equal(d->stats.num_users, 4);
    /* Down to 3 and to 2: not below 2 yet, still counts only. */
    assert_ok(presence_leave(reg, "big", "c3"));
    flush_all(&c);
    assert_int_equal(c.log.diffs[2].flags, PRESENCE_DIFF_COUNT_ONLY);
    assert_int_equal(c.log.diffs[2].left, 1);
    assert_ok(presence_leave(reg, "big", "c2"));
    flush_all(&c);
    assert_int_equal(c.log.diffs[3].flags, PRESENCE_DIFF_COUNT_ONLY);
    /* Below 2: this window was counts only when it began, so it stays. */
    assert_ok(presence_leave(reg, "big", "c1"));
    flush_all(&c);
    assert_int_equal(c.log.diffs[4].flags, PRESENCE_DIFF_COUNT_ONLY);
    assert_int_equal(c.log.diffs[4].stats.num_clients, 1);
    /* The next window has members again; the versions chained all along. */
    assert_ok(join_simple(reg, "big", "c5", "c5"));
    flush_all(&c);
    assert_int_equal(c.log.count, 6);
    assert_int_equal(c.log.diffs[5].flags, 0);
    assert_string_equal(c.log.diffs[5].members, "join c5 c5  ;");
    for (size_t i = 1; i < c.log.count; i++) {
        assert_int_equal(c.log.diffs[i].from_seq, c.log.diffs[i - 1].seq);
        assert_int_equal(c.log.diffs[i].from_epoch,
                         c.log.diffs[i - 1].epoch);
    }
    cfix_close(&c);
}

/* count_only_below 0: the same mark both ways (no hysteresis), and the
 * mode ends when the channel empties. */
static void test_count_only_without_low_mark(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_ALL, NULL, 10, 1, 0);
    presence_registry *reg = c.f.reg;
    assert_ok(join_simple(reg, "x", "a", "a"));
    assert_ok(join_simple(reg, "x", "b", "b")); /* 2 > 1 */
    flush_all(&c);
    assert_int_equal(c.log.diffs[0].flags, PRESENCE_DIFF_COUNT_ONLY);
    assert_ok(presence_leave(reg, "x", "a")); /* 1: not below 1 */
    flush_all(&c);
    assert_int_equal(c.log.diffs[1].flags, PRESENCE_DIFF_COUNT_ONLY);
    assert_ok(presence_leave(reg, "x", "b")); /* 0: below 1, mode ends */
    flush_all(&c);
    assert_ok(join_simple(reg, "x", "a", "a"));
    flush_all(&c);
    assert_int_equal(c.log.count, 4);
    assert_int_equal(c.log.diffs[3].flags, 0);
    assert_string_equal(c.log.diffs[3].members, "join a a  ;");
    cfix_close(&c);
}

/* ---- versions: diffs keep a copy exact ---------------------------------- */

typedef struct copy {
    char ids[64][16];
    char infos[64][16];
    size_t count;
    uint64_t epoch, seq;
} copy;

static size_t copy_find(const copy *k, const char *id)
{
    for (size_t i = 0; i < k->count; i++) {
        if (strcmp(k->ids[i], id) == 0) {
            return i;
        }
    }
    return k->count;
}

/* Apply a diff; false if it does not start at the copy's version. */
static bool copy_apply(copy *k, const presence_diff *d)
{
    bool empty_start = d->from_epoch == 0 && d->from_seq == 0;
    if (!(d->from_epoch == k->epoch && d->from_seq == k->seq) &&
        !(empty_start && k->count == 0)) {
        return false;
    }
    for (size_t i = 0; i < d->member_count; i++) {
        const presence_diff_member *m = &d->members[i];
        size_t at = copy_find(k, m->member.client_id);
        if (m->kind == PRESENCE_EVENT_LEAVE) {
            if (at == k->count) {
                return false;
            }
            k->count--;
            memcpy(k->ids[at], k->ids[k->count], sizeof k->ids[at]);
            memcpy(k->infos[at], k->infos[k->count], sizeof k->infos[at]);
            continue;
        }
        if ((m->kind == PRESENCE_EVENT_JOIN) != (at == k->count)) {
            return false; /* a join of a member there, an update of none */
        }
        if (at == k->count) {
            k->count++;
        }
        snprintf(k->ids[at], sizeof k->ids[at], "%s", m->member.client_id);
        snprintf(k->infos[at], sizeof k->infos[at], "%.*s",
                 (int)m->member.chan_info_len,
                 (const char *)m->member.chan_info);
    }
    k->epoch = d->epoch;
    k->seq = d->seq;
    return true;
}

/* The copy equals the channel now. */
static void copy_check(presence_registry *reg, const char *channel,
                       const copy *k)
{
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(reg, channel, presence_trusted(), &snap));
    assert_int_equal(snap->count, k->count);
    for (size_t i = 0; i < snap->count; i++) {
        size_t at = copy_find(k, snap->members[i].client_id);
        assert_true(at < k->count);
        char info[16];
        snprintf(info, sizeof info, "%.*s",
                 (int)snap->members[i].chan_info_len,
                 (const char *)snap->members[i].chan_info);
        assert_string_equal(info, k->infos[at]);
    }
    if (snap->count > 0) {
        assert_int_equal(snap->stats.epoch, k->epoch);
        assert_int_equal(snap->stats.seq, k->seq);
    }
    presence_snapshot_free(snap);
}

typedef struct copy_sub {
    copy k;
    unsigned long bad;
    unsigned long diffs;
    unsigned long resyncs;
} copy_sub;

static void copy_cb(presence_registry *reg, const presence_diff *d,
                    void *user_data)
{
    (void)reg;
    copy_sub *s = user_data;
    s->diffs++;
    if ((d->flags & PRESENCE_DIFF_RESYNC) != 0) {
        s->resyncs++;
        return;
    }
    if (!copy_apply(&s->k, d)) {
        s->bad++;
    }
}

static void test_versions_keep_a_copy(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_ALL, NULL, 50, 0, 0);
    presence_registry *reg = c.f.reg;
    copy_sub cs;
    memset(&cs, 0, sizeof cs);
    presence_coalesce_options o;
    presence_coalesce_options_init(&o);
    o.window_ms = 50;
    presence_subscription s = 0;
    assert_ok(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_CHANNEL, "v",
                                           &o, copy_cb, &cs, &s));
    unsigned rnd = 12345;
    for (int step = 0; step < 3000; step++) {
        rnd = rnd * 1103515245u + 12345u;
        unsigned r = rnd >> 8;
        char id[8], info[4];
        snprintf(id, sizeof id, "m%u", r % 12);
        snprintf(info, sizeof info, "%u", (r >> 4) % 3);
        switch ((r >> 8) % 4) {
        case 0:
        case 1:
            (void)join_info(reg, "v", id, "u", NULL, info);
            break;
        case 2:
            (void)presence_leave(reg, "v", id);
            break;
        default:
            (void)presence_update(reg, "v", id, info, 1);
            break;
        }
        fake_clock_advance(&c.f.clock, (int64_t)((r >> 12) % 7));
        (void)flush_now(&c);
        if (step % 97 == 0) {
            flush_all(&c);
            copy_check(reg, "v", &cs.k);
        }
    }
    flush_all(&c);
    copy_check(reg, "v", &cs.k);
    assert_int_equal(cs.bad, 0);
    assert_int_equal(cs.resyncs, 0);
    assert_true(cs.diffs > 100);
    /* The channel emptied and filled again inside one window: the diff
     * spans two lives, and still brings the copy there. */
    for (size_t i = cs.k.count; i-- > 0;) {
        assert_ok(presence_leave(reg, "v", cs.k.ids[i]));
    }
    flush_all(&c);
    assert_int_equal(cs.k.count, 0);
    assert_ok(join_info(reg, "v", "m1", "u", NULL, "1"));
    flush_all(&c);
    uint64_t e1 = cs.k.epoch;
    assert_ok(presence_leave(reg, "v", "m1"));
    assert_ok(join_info(reg, "v", "m2", "u", NULL, "2"));
    flush_all(&c);
    assert_true(cs.k.epoch != e1);
    copy_check(reg, "v", &cs.k);
    assert_int_equal(cs.bad, 0);
    assert_ok(presence_unsubscribe(reg, s));
    cfix_close(&c);
}

/* ---- unsubscribe, re-entrancy ------------------------------------------- */

static void test_unsubscribe_drops_pending(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_ALL, NULL, 100, 0, 0);
    presence_registry *reg = c.f.reg;
    assert_ok(join_info(reg, "a", "c1", "u", "conn", "info"));
    assert_ok(join_simple(reg, "b", "c2", "u"));
    assert_ok(presence_disconnect(reg, "c1", NULL)); /* held by the diff */
    assert_int_equal(flush_now(&c), now_of(&c) + 100);
    assert_ok(presence_unsubscribe(reg, c.csub));
    flush_all(&c);
    assert_int_equal(c.log.count, 0);
    /* Leak checks in cfix_close: the references the records held are
     * gone. */
    cfix_close(&c);
}

static void unsubscribe_hook(diff_log *log, presence_registry *reg,
                             const presence_diff *d)
{
    (void)d;
    presence_subscription *sub = log->hook_data;
    assert_ok(presence_unsubscribe(reg, *sub));
    /* Changes from a callback go to the next window; a flush from a
     * callback runs after it, never inside. */
    size_t before = log->count;
    assert_ok(join_simple(reg, "late", "z", "u"));
    assert_ok(presence_flush(reg, PRESENCE_FLUSH_ALL, NULL));
    assert_int_equal(log->count, before);
    assert_rc(presence_registry_free(reg), PRESENCE_ERR_BUSY);
}

static void test_unsubscribe_from_callback(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_ALL, NULL, 100, 0, 0);
    presence_registry *reg = c.f.reg;
    c.log.hook = unsubscribe_hook;
    c.log.hook_data = &c.csub;
    assert_ok(join_simple(reg, "a", "c1", "u"));
    assert_ok(join_simple(reg, "b", "c2", "u"));
    /* A second coalesced subscriber, after it, keeps receiving. */
    diff_log other;
    memset(&other, 0, sizeof other);
    presence_subscription s2 = 0;
    assert_ok(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_ALL, NULL, NULL,
                                           diff_cb, &other, &s2));
    assert_ok(join_simple(reg, "b", "c3", "u"));
    flush_all(&c);
    /* The first diff's callback removed its subscription: b's diff is not
     * delivered to it. */
    assert_int_equal(c.log.count, 1);
    assert_string_equal(c.log.diffs[0].channel, "a");
    /* The other subscriber got b (c3), then "late" from the callback. */
    assert_int_equal(other.count, 2);
    assert_string_equal(other.diffs[0].members, "join c3 u  ;");
    assert_string_equal(other.diffs[1].channel, "late");
    assert_int_equal(other.malformed, 0);
    diff_log_free(&other);
    assert_ok(presence_unsubscribe(reg, s2));
    cfix_close(&c);
}

/* ---- leave grace -------------------------------------------------------- */

typedef struct app_seen {
    diff_log log;
    void *apps[8];
    size_t napps;
} app_seen;

static void app_cb(presence_registry *reg, const presence_diff *d, void *ud)
{
    app_seen *a = ud;
    for (size_t i = 0; i < d->member_count && a->napps < 8; i++) {
        a->apps[a->napps++] = d->members[i].member.app;
    }
    diff_cb(reg, d, &a->log);
}

/* A drop into grace and a resume are no change; a grace's end is a leave
 * with the drop's reason and time; a place taken by another client of the
 * user (no client event, seq + 1) makes the window resync; a closed
 * handle's pointer is not handed out. */
static void test_leave_grace(void **state)
{
    (void)state;
    cfix c;
    cfix_open(&c, PRESENCE_SCOPE_NAMESPACE, "gr", 100, 0, 0);
    presence_registry *reg = c.f.reg;
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.leave_grace_ms = 1000;
    o.grace_same_user = true;
    assert_ok(presence_namespace_set(reg, "gr", &o));
    app_seen seen;
    memset(&seen, 0, sizeof seen);
    presence_subscription s2 = 0;
    assert_ok(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_CHANNEL, "gr:h",
                                           NULL, app_cb, &seen, &s2));

    assert_ok(join_simple(reg, "gr:a", "c1", "u1"));
    assert_ok(join_simple(reg, "gr:a", "c2", "u2"));
    flush_all(&c);
    diff_log_clear(&c.log);
    /* c1 drops and comes back: nothing at all. */
    assert_ok(presence_disconnect(reg, "c1", NULL));
    assert_ok(join_simple(reg, "gr:a", "c1", "u1"));
    flush_all(&c);
    assert_int_equal(c.log.count, 0);
    /* c2 drops and does not come back: a leave at the grace's end, with
     * the drop's reason and time. */
    int64_t dropped = now_of(&c);
    assert_ok(presence_disconnect(reg, "c2", NULL));
    fake_clock_advance(&c.f.clock, 1500);
    assert_ok(presence_expire(reg, now_of(&c), NULL, NULL));
    flush_all(&c);
    assert_int_equal(c.log.count, 1);
    assert_string_equal(c.log.diffs[0].members, "leave c2 disconnect;");
    assert_int_equal(c.log.diffs[0].first_time_ms, dropped);
    diff_log_clear(&c.log);

    /* Another client of u1 takes c1's place in grace: a change with no
     * client event (seq + 1). Last in its window, the diff stops before
     * it (its seq is the last change it tells), and the next window
     * starts after it: the versions show the hole. */
    assert_ok(join_simple(reg, "gr:a", "c3", "u3"));
    assert_ok(presence_disconnect(reg, "c1", NULL));
    assert_ok(join_simple(reg, "gr:a", "c1b", "u1"));
    presence_channel_stats st = stats_of(reg, "gr:a");
    flush_all(&c);
    assert_int_equal(c.log.count, 1);
    assert_int_equal(c.log.diffs[0].flags, 0);
    assert_string_equal(c.log.diffs[0].members, "join c3 u3  ;");
    assert_int_equal(c.log.diffs[0].seq, st.seq - 1);
    assert_ok(presence_leave(reg, "gr:a", "c3"));
    flush_all(&c);
    assert_int_equal(c.log.diffs[1].from_seq, st.seq);
    diff_log_clear(&c.log);
    /* Inside a window, with changes after it: the window says resync. */
    assert_ok(presence_disconnect(reg, "c1b", NULL));
    assert_ok(join_simple(reg, "gr:a", "c4", "u4"));
    assert_ok(join_simple(reg, "gr:a", "c1c", "u1")); /* takes c1b's place */
    assert_ok(join_simple(reg, "gr:a", "c5", "u5"));
    st = stats_of(reg, "gr:a");
    flush_all(&c);
    assert_int_equal(c.log.count, 1);
    assert_int_equal(c.log.diffs[0].flags, PRESENCE_DIFF_RESYNC);
    assert_int_equal(c.log.diffs[0].count, 0);
    assert_int_equal(c.log.diffs[0].seq, st.seq);
    assert_int_equal(c.log.diffs[0].joined, 2);
    assert_int_equal(c.log.diffs[0].stats.num_clients, 3);

    /* A handle's pointer in a diff: there while the handle is open, NULL
     * once it is closed, even for changes made while it was open. */
    int app_obj = 0;
    presence_client_options co;
    presence_client_options_init(&co);
    co.client_id = "h1";
    co.user_id = "uh";
    co.app = &app_obj;
    presence_client *h = NULL;
    assert_ok(presence_client_open(reg, &co, &h));
    assert_ok(presence_client_join(reg, h, "gr:h", NULL, 0, NULL));
    flush_all(&c);
    assert_int_equal(seen.napps, 1);
    assert_ptr_equal(seen.apps[0], &app_obj);
    assert_ok(presence_client_update(reg, h, "gr:h", "z", 1, NULL));
    assert_ok(presence_client_close(reg, h, NULL));
    flush_all(&c);
    assert_int_equal(seen.napps, 2);
    assert_null(seen.apps[1]);
    assert_int_equal(seen.log.malformed, 0);
    diff_log_free(&seen.log);
    assert_ok(presence_unsubscribe(reg, s2));
    cfix_close(&c);
}

/* ---- out of memory ------------------------------------------------------ */

/* Each change a diff cannot record is told by a resync, never dropped:
 * fail every allocation point of the recording in turn. */
static void test_oom_exact(void **state)
{
    (void)state;
    size_t chan_resyncs = 0, scope_resyncs = 0;
    for (int open_window = 0; open_window < 2; open_window++) {
        bool done = false;
        for (long n = 0; !done; n++) {
            assert_true(n < 10000);
            cfix c;
            cfix_open(&c, PRESENCE_SCOPE_ALL, NULL, 100, 0, 0);
            presence_registry *reg = c.f.reg;
            assert_ok(join_info(reg, "a", "c0", "u", NULL, "x"));
            if (!open_window) {
                /* a's window closes: its record is made anew below. */
                flush_all(&c);
                diff_log_clear(&c.log);
            }
            const char *c0 = open_window ? "join c0 u  x;" : "";
            assert_ok(join_info(reg, "a", "c9", "u", NULL, "y"));
            test_alloc_arm(&c.f.alloc, n);
            int rc1 = join_info(reg, "a", "c1", "u", "conn", "i");
            int rc2 = join_info(reg, "b", "c2", "u", NULL, NULL);
            bool injected = atomic_load(&c.f.alloc.injected) != 0;
            test_alloc_disarm(&c.f.alloc);
            assert_true(rc1 == PRESENCE_OK || rc1 == PRESENCE_ERR_NOMEM);
            assert_true(rc2 == PRESENCE_OK || rc2 == PRESENCE_ERR_NOMEM);
            flush_all(&c);
            bool scope_resync = false;
            bool a_seen = false, b_seen = false;
            for (size_t i = 0; i < c.log.count; i++) {
                rec_diff *d = &c.log.diffs[i];
                if (d->channel[0] == '\0') {
                    assert_int_equal(d->flags, PRESENCE_DIFF_RESYNC);
                    scope_resync = true;
                    scope_resyncs++;
                } else if (strcmp(d->channel, "a") == 0) {
                    a_seen = true;
                    presence_channel_stats s = stats_of(reg, "a");
                    assert_int_equal(d->seq, s.seq);
                    if (d->flags == PRESENCE_DIFF_RESYNC) {
                        chan_resyncs++;
                        assert_int_equal(d->count, 0);
                        assert_int_equal(d->joined, (rc1 == PRESENCE_OK ? 2 : 1) +
                                                        open_window);
                    } else {
                        assert_int_equal(d->flags, 0);
                        char *want = str_printf(
                            "%sjoin c9 u  y;%s", c0,
                            rc1 == PRESENCE_OK ? "join c1 u conn i;" : "");
                        assert_string_equal(d->members, want);
                        free(want);
                    }
                } else {
                    assert_string_equal(d->channel, "b");
                    assert_int_equal(rc2, PRESENCE_OK);
                    b_seen = true;
                    assert_true(d->flags == PRESENCE_DIFF_RESYNC ||
                                strcmp(d->members, "join c2 u  ;") == 0);
                }
            }
            if (scope_resync) {
                /* It comes alone: what was pending is dropped with it. */
                assert_int_equal(c.log.count, 1);
            } else {
                /* a was recorded before the failures began (c9), and b's
                 * join is told unless it failed. */
                assert_true(a_seen);
                assert_true(b_seen == (rc2 == PRESENCE_OK));
            }
            /* Afterwards the subscription records afresh. */
            diff_log_clear(&c.log);
            assert_ok(join_simple(reg, "a", "c5", "u"));
            flush_all(&c);
            assert_int_equal(c.log.count, 1);
            assert_string_equal(c.log.diffs[0].members, "join c5 u  ;");
            cfix_close(&c);
            done = !injected;
        }
    }
    /* The loop reached both kinds of failure. */
    assert_true(chan_resyncs > 0);
    assert_true(scope_resyncs > 0);
}

/* Subscribing under memory pressure: fails cleanly, or works. */
static void test_subscribe_oom(void **state)
{
    (void)state;
    for (long n = 0;; n++) {
        assert_true(n < 1000);
        fixture f;
        fixture_config(&f);
        fixture_open(&f);
        diff_log log;
        memset(&log, 0, sizeof log);
        presence_subscription s = 0;
        test_alloc_arm(&f.alloc, n);
        int rc = presence_subscribe_coalesced(f.reg, PRESENCE_SCOPE_CHANNEL,
                                              "a", NULL, diff_cb, &log, &s);
        bool injected = atomic_load(&f.alloc.injected) != 0;
        test_alloc_disarm(&f.alloc);
        assert_ok(join_simple(f.reg, "a", "c", "u"));
        assert_ok(presence_flush(f.reg, PRESENCE_FLUSH_ALL, NULL));
        if (rc == PRESENCE_OK) {
            assert_int_equal(log.count, 1);
        } else {
            assert_rc(rc, PRESENCE_ERR_NOMEM);
            assert_int_equal(s, 0);
            assert_int_equal(log.count, 0);
        }
        diff_log_free(&log);
        fixture_close(&f);
        if (!injected) {
            break;
        }
    }
}

/* ---- threads ------------------------------------------------------------- */

#define WRITERS 4
#define CHANNELS 3

typedef struct thread_ctx {
    presence_registry *reg;
    int index;
    atomic_bool *stop;
} thread_ctx;

static void *writer_main(void *arg)
{
    thread_ctx *t = arg;
    unsigned rnd = 777u + (unsigned)t->index;
    for (int i = 0; i < 4000; i++) {
        rnd = rnd * 1103515245u + 12345u;
        unsigned r = rnd >> 8;
        char ch[8], id[16], info[4];
        snprintf(ch, sizeof ch, "t%u", r % CHANNELS);
        snprintf(id, sizeof id, "w%d-%u", t->index, (r >> 3) % 10);
        snprintf(info, sizeof info, "%u", (r >> 7) % 3);
        switch ((r >> 10) % 4) {
        case 0:
        case 1:
            (void)join_info(t->reg, ch, id, "u", NULL, info);
            break;
        case 2:
            (void)presence_leave(t->reg, ch, id);
            break;
        default:
            (void)presence_update(t->reg, ch, id, info, 1);
            break;
        }
    }
    return NULL;
}

static void *flusher_main(void *arg)
{
    thread_ctx *t = arg;
    while (!atomic_load(t->stop)) {
        (void)presence_flush(t->reg, presence_now_ms(t->reg), NULL);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    test_alloc a;
    test_alloc_init(&a, false);
    presence_config cfg;
    presence_config_init(&cfg);
    test_alloc_install(&a, &cfg, false);
    presence_registry *reg = NULL;
    assert_ok(presence_registry_new(&cfg, &reg));
    copy_sub subs[CHANNELS];
    memset(subs, 0, sizeof subs);
    presence_coalesce_options o;
    presence_coalesce_options_init(&o);
    o.window_ms = 1;
    for (int i = 0; i < CHANNELS; i++) {
        char ch[8];
        snprintf(ch, sizeof ch, "t%d", i);
        presence_subscription s = 0;
        assert_ok(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_CHANNEL, ch,
                                               &o, copy_cb, &subs[i], &s));
    }
    atomic_bool stop;
    atomic_init(&stop, false);
    thread_ctx ctx[WRITERS + 1];
    pthread_t th[WRITERS + 1];
    for (int i = 0; i <= WRITERS; i++) {
        ctx[i] = (thread_ctx){reg, i, &stop};
        assert_int_equal(pthread_create(&th[i], NULL,
                                        i < WRITERS ? writer_main
                                                    : flusher_main,
                                        &ctx[i]),
                         0);
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
    }
    atomic_store(&stop, true);
    pthread_join(th[WRITERS], NULL);
    assert_ok(presence_flush(reg, PRESENCE_FLUSH_ALL, NULL));
    for (int i = 0; i < CHANNELS; i++) {
        char ch[8];
        snprintf(ch, sizeof ch, "t%d", i);
        assert_int_equal(subs[i].bad, 0);
        assert_int_equal(subs[i].resyncs, 0);
        assert_true(subs[i].diffs > 0);
        copy_check(reg, ch, &subs[i].k);
    }
    assert_ok(presence_registry_free(reg));
    test_alloc_assert_clean(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_join_then_leave_cancels),
        cmocka_unit_test(test_leave_then_join),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_window_zero_and_scope),
        cmocka_unit_test(test_count_only_hysteresis),
        cmocka_unit_test(test_count_only_without_low_mark),
        cmocka_unit_test(test_versions_keep_a_copy),
        cmocka_unit_test(test_unsubscribe_drops_pending),
        cmocka_unit_test(test_unsubscribe_from_callback),
        cmocka_unit_test(test_leave_grace),
        cmocka_unit_test(test_oom_exact),
        cmocka_unit_test(test_subscribe_oom),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
