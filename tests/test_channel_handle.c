/*
 * Channel handles: open and release; join, join_many, leave and stats by
 * channel handle, each the same as its twin by name (events, results,
 * versions, logs, coalesced diffs); a pinned channel without members
 * (idle) reading as no channel and living again with a new epoch; errors
 * that change nothing; namespaces turned off and on, saves and loads with
 * pinned channels; out of memory at every allocation; many threads.
 *
 * SPDX-License-Identifier: MIT
 */
#include "helpers.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static presence_client *open_client(presence_registry *reg, const char *id,
                                    const char *user)
{
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = id;
    o.user_id = user;
    o.conn_info = "ci";
    o.conn_info_len = 2;
    presence_client *c = NULL;
    assert_ok(presence_client_open(reg, &o, &c));
    return c;
}

static presence_channel *open_channel(presence_registry *reg, const char *name)
{
    presence_channel *ch = NULL;
    assert_ok(presence_channel_open(reg, name, &ch));
    assert_non_null(ch);
    assert_string_equal(presence_channel_name(ch), name);
    return ch;
}

static const char *const all_namespaces[] = {"", "chat", "gr", NULL};

static void namespaces_set(presence_registry *reg)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.history_size = 4;
    o.ttl_ms = 500;
    assert_ok(presence_namespace_set(reg, "chat", &o));
    presence_namespace_options_init(&o);
    o.leave_grace_ms = 100;
    o.grace_on_leave = true;
    assert_ok(presence_namespace_set(reg, "gr", &o));
}

/* ---- the same calls by name and by channel handle ------------------------ */

/* Two registries driven alike, one by name, one by channel handle. */
typedef struct side {
    fixture f;
    bool by_handle;
    presence_client *c[3];
    presence_channel *ch[4]; /* by_handle only */
    char *diffs;             /* the coalesced diffs, as text */
    uint64_t last_epoch[4];  /* the epoch each channel's changes reported */
} side;

static const char *const chan_names[4] = {"chat:a", "chat:b", "gr:x", "lobby"};

static void diff_cb(presence_registry *reg, const presence_diff *d,
                    void *user_data)
{
    (void)reg;
    side *s = user_data;
    /* A diff's version is its last change's: that event's epoch, also
     * when the channel's record has lived again since. */
    const rec_event *last = NULL;
    for (const rec_event *e = NULL;
         (e = recorder_find(&s->f.rec, last != NULL ? (size_t)(last - s->f.rec.events) + 1 : 0,
                            PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE |
                                PRESENCE_EVENT_UPDATE,
                            d->channel, NULL)) != NULL;) {
        last = e;
    }
    assert_non_null(last);
    assert_true(d->epoch == last->epoch);
    assert_int_equal(d->seq, last->seq);
    char *line = str_printf(
        "%s%s flags=%u from0=%d from_seq=%" PRIu64 " seq=%" PRIu64
        " n=%zu/%zu j=%zu l=%zu u=%zu members=%zu\n",
        s->diffs != NULL ? s->diffs : "", d->channel, d->flags,
        d->from_epoch == 0, d->from_seq, d->seq, d->stats.num_clients,
        d->stats.num_users, d->joined, d->left, d->updated, d->member_count);
    free(s->diffs);
    s->diffs = line;
}

static void side_open(side *s, bool by_handle)
{
    memset(s, 0, sizeof *s);
    s->by_handle = by_handle;
    fixture_config(&s->f);
    fixture_open(&s->f);
    namespaces_set(s->f.reg);
    presence_coalesce_options co;
    presence_coalesce_options_init(&co);
    co.window_ms = 50;
    presence_subscription sub;
    assert_ok(presence_subscribe_coalesced(s->f.reg, PRESENCE_SCOPE_ALL, NULL,
                                           &co, diff_cb, s, &sub));
    s->c[0] = open_client(s->f.reg, "c0", "u0");
    s->c[1] = open_client(s->f.reg, "c1", "u0");
    s->c[2] = open_client(s->f.reg, "c2", "u2");
    for (size_t i = 0; by_handle && i < 4; i++) {
        s->ch[i] = open_channel(s->f.reg, chan_names[i]);
    }
}

static int side_join(side *s, size_t c, size_t ch, const char *info,
                     presence_change *out)
{
    size_t len = info != NULL ? strlen(info) : 0;
    return s->by_handle
               ? presence_client_join_channel(s->f.reg, s->c[c], s->ch[ch],
                                              info, len, out)
               : presence_client_join(s->f.reg, s->c[c], chan_names[ch], info,
                                      len, out);
}

static int side_leave(side *s, size_t c, size_t ch, presence_change *out)
{
    return s->by_handle
               ? presence_client_leave_channel(s->f.reg, s->c[c], s->ch[ch],
                                               out)
               : presence_client_leave(s->f.reg, s->c[c], chan_names[ch], out);
}

static int side_update(side *s, size_t c, size_t ch, const char *info,
                       presence_change *out)
{
    size_t len = info != NULL ? strlen(info) : 0;
    return s->by_handle
               ? presence_client_update_channel(s->f.reg, s->c[c], s->ch[ch],
                                                info, len, out)
               : presence_client_update(s->f.reg, s->c[c], chan_names[ch],
                                        info, len, out);
}

static int side_touch(side *s, size_t c, size_t ch)
{
    return s->by_handle
               ? presence_client_touch_channel(s->f.reg, s->c[c], s->ch[ch])
               : presence_client_touch(s->f.reg, s->c[c], chan_names[ch]);
}

static int side_stats(side *s, size_t ch, presence_channel_stats *out)
{
    return s->by_handle
               ? presence_channel_stats_get(s->f.reg, s->ch[ch],
                                            presence_trusted(), out)
               : presence_stats(s->f.reg, chan_names[ch], presence_trusted(),
                                out);
}

static int side_join_many(side *s, size_t c, const size_t *chans, size_t n,
                          const char *info, presence_change *results,
                          size_t *failed)
{
    size_t len = info != NULL ? strlen(info) : 0;
    if (s->by_handle) {
        presence_channel_join_item items[4];
        for (size_t i = 0; i < n; i++) {
            items[i] = (presence_channel_join_item){s->ch[chans[i]], info, len};
        }
        return presence_client_join_channel_many(s->f.reg, s->c[c], items, n,
                                                 results, failed);
    }
    presence_join_item items[4];
    for (size_t i = 0; i < n; i++) {
        items[i] = (presence_join_item){chan_names[chans[i]], info, len};
    }
    return presence_client_join_many(s->f.reg, s->c[c], items, n, results,
                                     failed);
}

/* One change's result as text, its epoch told as "the same life as the
 * channel's last change", "a new one" or "none". */
static char *change_text(side *s, size_t ch, int rc, const presence_change *r)
{
    const char *life = r->stats.epoch == 0                  ? "none"
                       : r->stats.epoch == s->last_epoch[ch] ? "same"
                                                            : "new";
    if (r->stats.epoch != 0) {
        s->last_epoch[ch] = r->stats.epoch;
    }
    return str_printf("rc=%d kind=%d n=%zu/%zu seq=%" PRIu64 " life=%s", rc,
                      (int)r->kind, r->stats.num_clients, r->stats.num_users,
                      r->stats.seq, life);
}

typedef struct transcript {
    char *text;
} transcript;

static void tx_add(transcript *t, char *line)
{
    char *n = str_printf("%s%s\n", t->text != NULL ? t->text : "", line);
    free(t->text);
    free(line);
    t->text = n;
}

/* The script both sides play; what each call returned goes in t. */
static void play(side *s, transcript *t)
{
    presence_change r;
    presence_channel_stats st;
    int rc;
#define JOIN(c, ch, info)                                                      \
    do {                                                                       \
        memset(&r, 0, sizeof r);                                               \
        rc = side_join(s, (c), (ch), (info), &r);                              \
        tx_add(t, change_text(s, (ch), rc, &r));                               \
    } while (0)
#define LEAVE(c, ch)                                                           \
    do {                                                                       \
        memset(&r, 0, sizeof r);                                               \
        rc = side_leave(s, (c), (ch), &r);                                     \
        tx_add(t, change_text(s, (ch), rc, &r));                               \
    } while (0)
#define STATS(ch)                                                              \
    do {                                                                       \
        memset(&st, 0, sizeof st);                                             \
        rc = side_stats(s, (ch), &st);                                         \
        tx_add(t, str_printf("stats rc=%d %zu/%zu epoch0=%d seq=%" PRIu64, rc, \
                             st.num_clients, st.num_users, st.epoch == 0,      \
                             st.seq));                                         \
    } while (0)
#define UPDATE(c, ch, info)                                                    \
    do {                                                                       \
        memset(&r, 0, sizeof r);                                               \
        rc = side_update(s, (c), (ch), (info), &r);                            \
        tx_add(t, change_text(s, (ch), rc, &r));                               \
    } while (0)
#define TOUCH(c, ch)                                                           \
    tx_add(t, str_printf("touch rc=%d", side_touch(s, (c), (ch))))
    presence_registry *reg = s->f.reg;
    STATS(0);
    JOIN(0, 0, NULL);
    JOIN(0, 0, NULL);  /* the same: NONE, TTL renewed */
    JOIN(0, 0, "i1");  /* updated */
    JOIN(1, 0, "i2");  /* same user: no user event */
    JOIN(2, 0, NULL);
    STATS(0);
    UPDATE(2, 0, "u1"); /* updated */
    UPDATE(2, 0, "u1"); /* the same: NONE */
    UPDATE(2, 0, NULL); /* its chan_info gone */
    UPDATE(2, 1, "u1"); /* not a member: NOT_FOUND */
    fake_clock_advance(&s->f.clock, 5);
    TOUCH(1, 0);
    TOUCH(2, 1);        /* not a member: NOT_FOUND */
    fake_clock_advance(&s->f.clock, 10);
    LEAVE(1, 0);
    LEAVE(1, 0);       /* not there */
    LEAVE(0, 0);
    LEAVE(2, 0);       /* empties it */
    STATS(0);
    JOIN(2, 0, "back"); /* a new life */
    STATS(0);
    /* The log of the new life starts at its first join. */
    presence_history *h = NULL;
    rc = presence_changes_since(reg, chan_names[0], presence_trusted(), 0, 0,
                                &h);
    tx_add(t, str_printf("changes rc=%d count=%zu seq=%" PRIu64, rc,
                         h != NULL ? h->count : 0,
                         h != NULL ? h->stats.seq : 0));
    presence_history_free(h);
    fake_clock_advance(&s->f.clock, 100);
    assert_ok(presence_flush(reg, fake_clock_get(&s->f.clock), NULL));

    /* Many at once, then again (updates), then one failing for its limit. */
    size_t three[3] = {1, 2, 3};
    presence_change rs[3];
    size_t failed = 99;
    rc = side_join_many(s, 0, three, 3, "m", rs, &failed);
    tx_add(t, str_printf("many rc=%d", rc));
    for (size_t i = 0; i < 3; i++) {
        tx_add(t, change_text(s, three[i], PRESENCE_OK, &rs[i]));
    }
    rc = side_join_many(s, 0, three, 3, "m2", rs, &failed);
    tx_add(t, str_printf("many again rc=%d kinds=%d%d%d", rc, (int)rs[0].kind,
                         (int)rs[1].kind, (int)rs[2].kind));

    /* Grace: the leave drops, the join resumes, the drop's end leaves. */
    LEAVE(0, 2);
    STATS(2);
    JOIN(0, 2, "m2");
    LEAVE(0, 2);
    fake_clock_advance(&s->f.clock, 200);
    size_t expired = 0;
    assert_ok(presence_expire(reg, fake_clock_get(&s->f.clock), &expired,
                              NULL));
    tx_add(t, str_printf("expired=%zu", expired));
    STATS(2);
    JOIN(1, 2, NULL); /* a new life after the grace's leave */

    /* Empty and refill inside one coalescing window. */
    LEAVE(0, 3);
    JOIN(2, 3, NULL);
    fake_clock_advance(&s->f.clock, 100);
    assert_ok(presence_flush(reg, fake_clock_get(&s->f.clock), NULL));
    /* A leave of everything by disconnect. */
    size_t left = 0;
    assert_ok(presence_client_close(reg, s->c[0], &left));
    tx_add(t, str_printf("close c0 left=%zu", left));
    s->c[0] = NULL;
    fake_clock_advance(&s->f.clock, 500);
    assert_ok(presence_flush(reg, fake_clock_get(&s->f.clock), NULL));
    for (size_t i = 0; i < 4; i++) {
        STATS(i);
    }
#undef JOIN
#undef LEAVE
#undef STATS
#undef UPDATE
#undef TOUCH
}

static void side_close(side *s)
{
    for (size_t i = 0; i < 3; i++) {
        if (s->c[i] != NULL) {
            assert_ok(presence_client_close(s->f.reg, s->c[i], NULL));
        }
    }
    for (size_t i = 0; i < 4; i++) {
        assert_ok(presence_channel_release(s->f.reg, s->ch[i]));
    }
    /* Closes dropped members of gr into grace: let it end. */
    fake_clock_advance(&s->f.clock, 1000);
    assert_ok(presence_expire(s->f.reg, fake_clock_get(&s->f.clock), NULL,
                              NULL));
    assert_counts(s->f.reg, 0, 0, 0, 0);
    free(s->diffs);
    fixture_close(&s->f);
}

/* Nothing changed since @p before (a dump of the registry, freed here)
 * and @p events (the count of events then): the registry dumps the same
 * and no event came. */
static void assert_unchanged(fixture *f, char *before, size_t events)
{
    char *after = dump_registry(f->reg, all_namespaces);
    assert_string_equal(before, after);
    free(before);
    free(after);
    assert_int_equal(f->rec.count, events);
}

static void test_same_as_by_name(void **state)
{
    (void)state;
    side by_name, by_handle;
    transcript tn = {NULL}, th = {NULL};
    side_open(&by_name, false);
    side_open(&by_handle, true);
    play(&by_name, &tn);
    play(&by_handle, &th);
    assert_string_equal(tn.text, th.text);
    /* The script did what it says. */
    assert_non_null(strstr(tn.text, "rc=-7 kind=0")); /* NOT_FOUND */
    assert_non_null(strstr(tn.text, "kind=4 n=1/1"));  /* RESUMED */
    assert_non_null(strstr(tn.text, "stats rc=0 0/0 epoch0=1 seq=0"));
    assert_non_null(strstr(tn.text, "kind=1 n=1/1 seq=1 life=new"));
    assert_non_null(strstr(tn.text, "changes rc=0 count=1 seq=1"));
    assert_non_null(strstr(tn.text, "rc=0 kind=2 n=3/2"));  /* UPDATED */
    assert_non_null(strstr(tn.text, "touch rc=0\ntouch rc=-7")); /* NOT_FOUND */

    char *en = recorder_text(&by_name.f.rec, false, true);
    char *eh = recorder_text(&by_handle.f.rec, false, true);
    assert_string_equal(en, eh);
    assert_non_null(strstr(en, "leave ch=gr:x"));
    free(en);
    free(eh);
    assert_non_null(by_name.diffs);
    assert_string_equal(by_name.diffs, by_handle.diffs);
    char *dn = dump_registry(by_name.f.reg, all_namespaces);
    char *dh = dump_registry(by_handle.f.reg, all_namespaces);
    assert_string_equal(dn, dh);
    free(dn);
    free(dh);
    free(tn.text);
    free(th.text);
    side_close(&by_name);
    side_close(&by_handle);
}

/* Events of a pinned channel's old life keep its epoch when they are
 * delivered after the record lives again. */
typedef struct epoch_log {
    presence_registry *reg;
    presence_client *c;
    presence_channel *ch;
    uint64_t epochs[8];
    uint64_t seqs[8];
    size_t n;
    bool rejoined;
} epoch_log;

static void epoch_cb(presence_registry *reg, const presence_event *ev,
                     void *user_data)
{
    epoch_log *l = user_data;
    if (ev->kind != PRESENCE_EVENT_JOIN && ev->kind != PRESENCE_EVENT_LEAVE) {
        return;
    }
    assert_true(ev->epoch == ev->stats.epoch);
    if (l->n < 8) {
        l->epochs[l->n] = ev->epoch;
        l->seqs[l->n] = ev->seq;
        l->n++;
    }
    /* On the first join's delivery, empty the channel and fill it again
     * before the queued leave is delivered. */
    if (!l->rejoined && ev->kind == PRESENCE_EVENT_JOIN) {
        l->rejoined = true;
        assert_ok(presence_client_leave_channel(reg, l->c, l->ch, NULL));
        assert_ok(presence_client_join_channel(reg, l->c, l->ch, NULL, 0,
                                               NULL));
    }
}

static void test_old_life_events_keep_epoch(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    epoch_log l = {0};
    l.reg = f.reg;
    l.c = open_client(f.reg, "c", "u");
    l.ch = open_channel(f.reg, "room");
    presence_subscription sub;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, "room",
                                 PRESENCE_EVENTS_ALL, epoch_cb, &l, &sub));
    assert_ok(presence_client_join_channel(f.reg, l.c, l.ch, NULL, 0, NULL));
    assert_int_equal(l.n, 3);
    assert_true(l.epochs[0] != 0);
    assert_true(l.epochs[1] == l.epochs[0]); /* the leave: the first life */
    assert_int_equal(l.seqs[1], 2);
    assert_true(l.epochs[2] != l.epochs[0]); /* the join: a new one */
    assert_int_equal(l.seqs[2], 1);
    presence_channel_stats st;
    assert_ok(presence_channel_stats_get(f.reg, l.ch, presence_trusted(), &st));
    assert_true(st.epoch == l.epochs[2]);
    assert_ok(presence_client_close(f.reg, l.c, NULL));
    assert_ok(presence_channel_release(f.reg, l.ch));
    fixture_close(&f);
}

/* ---- idle channels ---------------------------------------------------------- */

static void assert_no_channel(presence_registry *reg, presence_channel *ch,
                              const char *name)
{
    presence_channel_stats st = {1, 1, 1, 1};
    assert_ok(presence_channel_stats_get(reg, ch, presence_trusted(), &st));
    assert_int_equal(st.num_clients, 0);
    assert_int_equal(st.num_users, 0);
    assert_true(st.epoch == 0);
    assert_int_equal(st.seq, 0);
    st = stats_of(reg, name);
    assert_true(st.epoch == 0 && st.seq == 0 && st.num_clients == 0);
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(reg, name, presence_trusted(), &snap));
    assert_int_equal(snap->count, 0);
    assert_true(snap->epoch == 0);
    presence_snapshot_free(snap);
    presence_channel_list *list = NULL;
    assert_ok(presence_channels(reg, NULL, &list));
    for (size_t i = 0; i < list->count; i++) {
        assert_string_not_equal(list->channels[i].channel, name);
    }
    presence_channel_list_free(list);
}

static void test_idle_channel(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.channels_max = 1;
    fixture_open(&f);
    long blocks = atomic_load(&f.alloc.live_blocks);
    presence_channel *a = open_channel(f.reg, "a");
    presence_channel *b = open_channel(f.reg, "b");
    assert_counts(f.reg, 0, 0, 0, 0); /* idle: no channel */
    assert_no_channel(f.reg, a, "a");
    /* A second handle on a channel is the same channel. */
    presence_channel *a2 = open_channel(f.reg, "a");
    assert_ptr_equal(a, a2);

    presence_client *c = open_client(f.reg, "c", "u");
    presence_change r;
    assert_ok(presence_client_join_channel(f.reg, c, a, NULL, 0, &r));
    assert_int_equal(r.kind, PRESENCE_CHANGE_JOINED);
    assert_int_equal(r.stats.seq, 1);
    uint64_t e1 = r.stats.epoch;
    assert_true(e1 != 0);
    assert_counts(f.reg, 1, 1, 1, 1);
    /* channels_max counts channels with members: b cannot begin. */
    size_t events = f.rec.count;
    char *before = dump_registry(f.reg, all_namespaces);
    assert_rc(presence_client_join_channel(f.reg, c, b, NULL, 0, &r),
              PRESENCE_ERR_CHANNEL_LIMIT);
    assert_unchanged(&f, before, events);
    assert_no_channel(f.reg, b, "b");

    /* Its last leave leaves it idle; the next join is a new life. */
    assert_ok(presence_client_leave_channel(f.reg, c, a, &r));
    assert_int_equal(r.stats.num_clients, 0);
    assert_true(r.stats.epoch == e1);
    assert_int_equal(r.stats.seq, 2);
    assert_counts(f.reg, 0, 1, 1, 0);
    assert_no_channel(f.reg, a, "a");
    assert_ok(presence_client_join_channel(f.reg, c, b, NULL, 0, &r));
    assert_ok(presence_client_leave_channel(f.reg, c, b, NULL));
    /* A join by name lands in the pinned record, seen by handle. */
    assert_ok(join_simple(f.reg, "a", "n", "u"));
    presence_channel_stats st;
    assert_ok(presence_channel_stats_get(f.reg, a, presence_trusted(), &st));
    assert_int_equal(st.num_clients, 1);
    assert_int_equal(st.seq, 1);
    assert_true(st.epoch != 0 && st.epoch != e1);
    assert_ok(presence_leave(f.reg, "a", "n"));
    assert_no_channel(f.reg, a, "a");

    /* Released by every handle, an idle record goes. */
    assert_ok(presence_channel_release(f.reg, a));
    assert_no_channel(f.reg, a2, "a");
    assert_ok(presence_channel_release(f.reg, a2));
    assert_ok(presence_channel_release(f.reg, b));
    assert_ok(presence_client_close(f.reg, c, NULL));
    /* The record of a channel pinned alone goes with its last handle
     * (its pool chunk with it); tables that grew stay. */
    long b0 = atomic_load(&f.alloc.live_blocks);
    presence_channel *z = open_channel(f.reg, "zz");
    long b1 = atomic_load(&f.alloc.live_blocks);
    assert_true(b1 > b0);
    assert_ok(presence_channel_release(f.reg, z));
    assert_true(atomic_load(&f.alloc.live_blocks) < b1);
    assert_true(b0 >= blocks);
    assert_ok(presence_channel_release(f.reg, NULL)); /* does nothing */
    fixture_close(&f);
}

/* Releasing a handle on a channel with members changes nothing. */
static void test_release_nonempty(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_channel *a = open_channel(f.reg, "a");
    presence_client *c = open_client(f.reg, "c", "u");
    assert_ok(presence_client_join_channel(f.reg, c, a, "x", 1, NULL));
    char *before = dump_registry(f.reg, all_namespaces);
    size_t events = f.rec.count;
    assert_ok(presence_channel_release(f.reg, a));
    assert_unchanged(&f, before, events);
    assert_stats(f.reg, "a", 1, 1);
    /* It lives on by name; its last leave frees it. */
    assert_ok(presence_client_leave(f.reg, c, "a", NULL));
    assert_counts(f.reg, 0, 1, 1, 0);
    const rec_event *leave =
        recorder_find(&f.rec, 0, PRESENCE_EVENT_LEAVE, "a", "c");
    assert_non_null(leave);
    assert_int_equal(leave->seq, 2);
    assert_ok(presence_client_close(f.reg, c, NULL));
    fixture_close(&f);
}

/* ---- errors ----------------------------------------------------------------- */

static bool deny_all(const presence_access *access, void *user_data)
{
    (void)access;
    (void)user_data;
    return false;
}

static void test_errors_change_nothing(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.access_check = deny_all;
    f.config.limits.chan_info_max = 4;
    fixture_open(&f);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.presence = false;
    assert_ok(presence_namespace_set(f.reg, "off", &o));
    presence_channel *a = open_channel(f.reg, "a");
    presence_channel *b = open_channel(f.reg, "b");
    presence_client *c = open_client(f.reg, "c", "u");
    assert_ok(presence_client_join_channel(f.reg, c, a, NULL, 0, NULL));
    char *before = dump_registry(f.reg, all_namespaces);
    size_t events = f.rec.count;
    long blocks = atomic_load(&f.alloc.live_blocks);

    presence_channel *out = (presence_channel *)(uintptr_t)0x1;
    assert_rc(presence_channel_open(NULL, "a", &out), PRESENCE_ERR_INVALID);
    assert_rc(presence_channel_open(f.reg, NULL, &out), PRESENCE_ERR_INVALID);
    assert_rc(presence_channel_open(f.reg, "a", NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_channel_open(f.reg, "", &out), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_channel_open(f.reg, "a\nb", &out),
              PRESENCE_ERR_BAD_NAME);
    char *long_name = repeat_char('x', 300);
    assert_rc(presence_channel_open(f.reg, long_name, &out),
              PRESENCE_ERR_TOO_LONG);
    free(long_name);
    assert_rc(presence_channel_open(f.reg, "nope:x", &out),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_channel_open(f.reg, "off:x", &out),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_ptr_equal(out, (presence_channel *)(uintptr_t)0x1); /* untouched */
    assert_int_equal(atomic_load(&f.alloc.live_blocks), blocks);

    presence_change r;
    assert_rc(presence_client_join_channel(NULL, c, a, NULL, 0, &r),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_join_channel(f.reg, NULL, a, NULL, 0, &r),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_join_channel(f.reg, c, NULL, NULL, 0, &r),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_join_channel(f.reg, c, b, NULL, 3, &r),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_join_channel(f.reg, c, b, "12345", 5, &r),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_client_join_channel(f.reg, c, a, "12345", 5, &r),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_client_leave_channel(f.reg, c, b, &r),
              PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_client_leave_channel(f.reg, c, NULL, &r),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_leave_channel(NULL, c, a, &r),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_leave_channel(f.reg, NULL, a, &r),
              PRESENCE_ERR_INVALID);
    /* Update and touch by handle: the by-name checks, nothing changed. */
    assert_rc(presence_client_update_channel(f.reg, c, NULL, NULL, 0, &r),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_update_channel(NULL, c, a, NULL, 0, &r),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_update_channel(f.reg, NULL, a, NULL, 0, &r),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_update_channel(f.reg, c, a, NULL, 3, &r),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_update_channel(f.reg, c, a, "12345", 5, &r),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_client_update_channel(f.reg, c, b, "x", 1, &r),
              PRESENCE_ERR_NOT_FOUND);
    assert_rc(presence_client_touch_channel(f.reg, c, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_touch_channel(NULL, c, a), PRESENCE_ERR_INVALID);
    assert_rc(presence_client_touch_channel(f.reg, NULL, a),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_touch_channel(f.reg, c, b),
              PRESENCE_ERR_NOT_FOUND);

    presence_channel_stats st;
    assert_rc(presence_channel_stats_get(f.reg, a, NULL, &st),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_channel_stats_get(f.reg, a, presence_trusted(), NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_channel_stats_get(f.reg, NULL, presence_trusted(), &st),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_channel_stats_get(f.reg, a, REQ("c"), &st),
              PRESENCE_ERR_DENIED);
    assert_rc(presence_stats(f.reg, "a", REQ("c"), &st), PRESENCE_ERR_DENIED);
    assert_rc(presence_channel_stats_get(f.reg, a, REQ(""), &st),
              PRESENCE_ERR_BAD_NAME);

    /* join_many: a channel twice (the same handle, or two handles on it),
     * a NULL handle, a bad item: nothing changes, failed names it. */
    presence_channel *a2 = open_channel(f.reg, "a");
    presence_channel_join_item items[3] = {
        {b, NULL, 0}, {a, NULL, 0}, {a2, NULL, 0}};
    size_t failed = 99;
    assert_rc(presence_client_join_channel_many(f.reg, c, items, 3, NULL,
                                                &failed),
              PRESENCE_ERR_INVALID);
    assert_int_equal(failed, 2);
    items[2] = (presence_channel_join_item){NULL, NULL, 0};
    assert_rc(presence_client_join_channel_many(f.reg, c, items, 3, NULL,
                                                &failed),
              PRESENCE_ERR_INVALID);
    assert_int_equal(failed, 2);
    items[1] = (presence_channel_join_item){a, "123456", 6};
    assert_rc(presence_client_join_channel_many(f.reg, c, items, 2, NULL,
                                                &failed),
              PRESENCE_ERR_TOO_LONG);
    assert_int_equal(failed, 1);
    assert_rc(presence_client_join_channel_many(f.reg, c, NULL, 1, NULL,
                                                &failed),
              PRESENCE_ERR_INVALID);
    assert_ok(presence_client_join_channel_many(f.reg, c, NULL, 0, NULL,
                                                &failed));
    assert_ok(presence_channel_release(f.reg, a2));
    assert_rc(presence_channel_release(NULL, a), PRESENCE_ERR_INVALID);
    assert_unchanged(&f, before, events);
    assert_ok(presence_client_close(f.reg, c, NULL));
    assert_ok(presence_channel_release(f.reg, a));
    assert_ok(presence_channel_release(f.reg, b));
    fixture_close(&f);
}

/* join_many by handles with a limit met half-way: all or nothing, and an
 * idle channel it began is idle again. */
static void test_join_many_all_or_nothing(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.max_members = 1;
    assert_ok(presence_namespace_set(f.reg, "one", &o));
    presence_channel *a = open_channel(f.reg, "a");
    presence_channel *full = open_channel(f.reg, "one:x");
    presence_client *c = open_client(f.reg, "c", "u");
    assert_ok(join_simple(f.reg, "one:x", "other", "v"));
    char *before = dump_registry(f.reg, all_namespaces);
    size_t events = f.rec.count;
    presence_channel_join_item items[2] = {{a, "i", 1}, {full, NULL, 0}};
    size_t failed = 99;
    assert_rc(presence_client_join_channel_many(f.reg, c, items, 2, NULL,
                                                &failed),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    assert_int_equal(failed, 1);
    assert_unchanged(&f, before, events);
    assert_no_channel(f.reg, a, "a");
    /* Without the full one it goes through, a's life from seq 1. */
    presence_change r;
    assert_ok(presence_client_join_channel_many(f.reg, c, items, 1, &r,
                                                &failed));
    assert_int_equal(r.kind, PRESENCE_CHANGE_JOINED);
    assert_int_equal(r.stats.seq, 1);
    assert_ok(presence_client_close(f.reg, c, NULL));
    assert_ok(presence_channel_release(f.reg, a));
    assert_ok(presence_channel_release(f.reg, full));
    fixture_close(&f);
}

/* ---- namespaces, close, save and load ---------------------------------------- */

static void test_namespace_and_close(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    assert_ok(presence_namespace_set(f.reg, "chat", &o));
    presence_channel *a = open_channel(f.reg, "chat:a");
    presence_client *c = open_client(f.reg, "c", "u");
    assert_ok(presence_client_join_channel(f.reg, c, a, NULL, 0, NULL));

    /* Presence off closes it; it stays open, idle, and refuses as the
     * name does. */
    o.presence = false;
    assert_ok(presence_namespace_set(f.reg, "chat", &o));
    assert_int_equal(recorder_count_reason(&f.rec, PRESENCE_EVENT_LEAVE,
                                           PRESENCE_LEAVE_CLOSED),
                     1);
    assert_counts(f.reg, 0, 1, 1, 0);
    presence_channel_stats st;
    assert_rc(presence_channel_stats_get(f.reg, a, presence_trusted(), &st),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(presence_client_join_channel(f.reg, c, a, NULL, 0, NULL),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(presence_client_leave_channel(f.reg, c, a, NULL),
              PRESENCE_ERR_NOT_FOUND);

    /* On again, with a log now: its next life has one. */
    o.presence = true;
    o.history_size = 4;
    assert_ok(presence_namespace_set(f.reg, "chat", &o));
    presence_change r;
    assert_ok(presence_client_join_channel(f.reg, c, a, "x", 1, &r));
    assert_int_equal(r.stats.seq, 1);
    presence_history *h = NULL;
    assert_ok(presence_changes_since(f.reg, "chat:a", presence_trusted(), 0,
                                     0, &h));
    assert_int_equal(h->count, 1);
    presence_history_free(h);

    /* A history_size change while idle reaches its next life. */
    assert_ok(presence_client_leave_channel(f.reg, c, a, NULL));
    o.history_size = 2;
    assert_ok(presence_namespace_set(f.reg, "chat", &o));
    assert_ok(presence_client_join_channel(f.reg, c, a, NULL, 0, NULL));
    assert_ok(join_simple(f.reg, "chat:a", "d", "v"));
    assert_ok(join_simple(f.reg, "chat:a", "e", "w"));
    /* From its start the log no longer reaches. */
    assert_rc(presence_changes_since(f.reg, "chat:a", presence_trusted(), 0,
                                     0, &h),
              PRESENCE_ERR_SNAPSHOT_NEEDED);
    presence_channel_stats now;
    assert_ok(presence_channel_stats_get(f.reg, a, presence_trusted(), &now));
    assert_ok(presence_changes_since(f.reg, "chat:a", presence_trusted(),
                                     now.epoch, 1, &h));
    assert_int_equal(h->count, 2); /* the last two of three */
    presence_history_free(h);

    /* Closed by name, the channel is idle again and the handle works. */
    size_t removed = 0;
    assert_ok(presence_channel_close(f.reg, "chat:a", &removed));
    assert_int_equal(removed, 3);
    assert_no_channel(f.reg, a, "chat:a");
    assert_ok(presence_client_join_channel(f.reg, c, a, NULL, 0, &r));
    assert_int_equal(r.stats.seq, 1);
    assert_true(r.stats.epoch != now.epoch);
    assert_ok(presence_client_close(f.reg, c, NULL));
    assert_ok(presence_channel_release(f.reg, a));
    fixture_close(&f);
}

typedef struct bytes {
    unsigned char *data;
    size_t len;
} bytes;

static int bytes_write(const void *data, size_t len, void *user_data)
{
    bytes *b = user_data;
    unsigned char *n = realloc(b->data, b->len + len);
    assert_non_null(n);
    memcpy(n + b->len, data, len);
    b->data = n;
    b->len += len;
    return 0;
}

static void test_save_load(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_channel *idle = open_channel(f.reg, "idle");
    presence_channel *emptied = open_channel(f.reg, "emptied");
    presence_channel *full = open_channel(f.reg, "full");
    presence_client *c = open_client(f.reg, "c", "u");
    assert_ok(presence_client_join_channel(f.reg, c, emptied, NULL, 0, NULL));
    assert_ok(presence_client_leave_channel(f.reg, c, emptied, NULL));
    assert_ok(presence_client_join_channel(f.reg, c, full, "x", 1, NULL));
    bytes b = {NULL, 0};
    assert_ok(presence_registry_save(f.reg, bytes_write, &b, NULL));
    char *saved = dump_registry(f.reg, all_namespaces);

    fixture g;
    fixture_config(&g);
    assert_ok(presence_registry_load(&g.config, b.data, b.len, &g.reg));
    free(b.data);
    char *loaded = dump_registry(g.reg, all_namespaces);
    assert_string_equal(saved, loaded);
    assert_non_null(strstr(loaded, "counts channels=1 "));
    free(saved);
    free(loaded);
    /* Handles are opened again on the loaded registry. */
    presence_channel *h = open_channel(g.reg, "full");
    presence_channel_stats st;
    assert_ok(presence_channel_stats_get(g.reg, h, presence_trusted(), &st));
    assert_int_equal(st.num_clients, 1);
    presence_channel_stats was;
    assert_ok(presence_channel_stats_get(f.reg, full, presence_trusted(),
                                         &was));
    assert_true(st.epoch == was.epoch && st.seq == was.seq);
    assert_ok(presence_channel_release(g.reg, h));
    assert_ok(presence_registry_free(g.reg));
    test_alloc_assert_clean(&g.alloc);
    recorder_free(&g.rec);

    assert_ok(presence_client_close(f.reg, c, NULL));
    assert_ok(presence_channel_release(f.reg, idle));
    assert_ok(presence_channel_release(f.reg, emptied));
    /* full is left open: the registry frees it. */
    fixture_close(&f);
}

/* ---- out of memory ------------------------------------------------------------ */

typedef struct oom_run {
    fixture f;
    presence_client *c[2];
    presence_channel *ch[3];
    char *reads;
} oom_run;

static void reads_add(oom_run *r, char *line)
{
    char *n = str_printf("%s%s\n", r->reads != NULL ? r->reads : "", line);
    free(r->reads);
    free(line);
    r->reads = n;
}

static int o_open_a(oom_run *r)
{
    return presence_channel_open(r->f.reg, "chat:a", &r->ch[0]);
}
static int o_open_b(oom_run *r)
{
    return presence_channel_open(r->f.reg, "chat:b", &r->ch[1]);
}
static int o_open_c(oom_run *r)
{
    return presence_channel_open(r->f.reg, "lobby", &r->ch[2]);
}
static int o_join(oom_run *r)
{
    presence_change ch;
    int rc = presence_client_join_channel(r->f.reg, r->c[0], r->ch[0], "i1", 2,
                                          &ch);
    if (rc == PRESENCE_OK) {
        reads_add(r, str_printf("join kind=%d seq=%" PRIu64, (int)ch.kind,
                                ch.stats.seq));
    }
    return rc;
}
static int o_join_update(oom_run *r)
{
    return presence_client_join_channel(r->f.reg, r->c[0], r->ch[0], "i2", 2,
                                        NULL);
}
static int o_join_other(oom_run *r)
{
    return presence_client_join_channel(r->f.reg, r->c[1], r->ch[0], NULL, 0,
                                        NULL);
}
static int o_many(oom_run *r)
{
    presence_channel_join_item items[3] = {
        {r->ch[0], "m", 1}, {r->ch[1], "m", 1}, {r->ch[2], NULL, 0}};
    presence_change res[3];
    int rc = presence_client_join_channel_many(r->f.reg, r->c[1], items, 3,
                                               res, NULL);
    if (rc == PRESENCE_OK) {
        reads_add(r, str_printf("many %d %d %d", (int)res[0].kind,
                                (int)res[1].kind, (int)res[2].kind));
    }
    return rc;
}
static int o_update(oom_run *r)
{
    return presence_client_update_channel(r->f.reg, r->c[1], r->ch[0],
                                          "longer info", 11, NULL);
}
static int o_touch(oom_run *r)
{
    return presence_client_touch_channel(r->f.reg, r->c[1], r->ch[0]);
}
static int o_stats(oom_run *r)
{
    presence_channel_stats st;
    int rc = presence_channel_stats_get(r->f.reg, r->ch[1], REQ("c1"), &st);
    if (rc == PRESENCE_OK) {
        reads_add(r, str_printf("stats %zu/%zu seq=%" PRIu64, st.num_clients,
                                st.num_users, st.seq));
    }
    return rc;
}
static int o_leave(oom_run *r)
{
    return presence_client_leave_channel(r->f.reg, r->c[1], r->ch[1], NULL);
}
static int o_leave_all_a(oom_run *r)
{
    int rc = presence_client_leave_channel(r->f.reg, r->c[0], r->ch[0], NULL);
    return rc == PRESENCE_OK
               ? presence_client_leave_channel(r->f.reg, r->c[1], r->ch[0],
                                               NULL)
               : rc;
}
static int o_rejoin_a(oom_run *r)
{
    return presence_client_join_channel(r->f.reg, r->c[0], r->ch[0], "z", 1,
                                        NULL);
}
static int o_release_b(oom_run *r)
{
    return presence_channel_release(r->f.reg, r->ch[1]);
}
static int o_save(oom_run *r)
{
    bytes b = {NULL, 0};
    int rc = presence_registry_save(r->f.reg, bytes_write, &b, NULL);
    if (rc == PRESENCE_OK) {
        reads_add(r, str_printf("saved %d", b.len > 0));
    }
    free(b.data);
    return rc;
}

/* Steps whose failure must change nothing; o_leave_all_a is two calls,
 * the first of which allocates nothing. */
static int (*const oom_steps[])(oom_run *) = {
    o_open_a, o_open_b, o_join, o_join_update, o_join_other, o_open_c,
    o_many, o_update, o_touch, o_stats, o_leave, o_leave_all_a, o_rejoin_a,
    o_release_b, o_save,
};
#define OOM_STEPS (sizeof oom_steps / sizeof oom_steps[0])

static void oom_run_once(long fail_at, char **dump, char **events,
                         char **reads, unsigned long *injected)
{
    oom_run r;
    memset(&r, 0, sizeof r);
    fixture_config(&r.f);
    fixture_open(&r.f);
    namespaces_set(r.f.reg);
    r.c[0] = open_client(r.f.reg, "c0", "u0");
    r.c[1] = open_client(r.f.reg, "c1", "u1");
    if (fail_at >= 0) {
        test_alloc_arm(&r.f.alloc, fail_at);
    }
    for (size_t i = 0; i < OOM_STEPS; i++) {
        r.f.alloc.paused = true;
        char *before = dump_registry(r.f.reg, all_namespaces);
        r.f.alloc.paused = false;
        size_t ev = r.f.rec.count;
        unsigned long inj = atomic_load(&r.f.alloc.injected);
        int rc = oom_steps[i](&r);
        bool hit = atomic_load(&r.f.alloc.injected) != inj;
        if (hit) {
            test_alloc_disarm(&r.f.alloc);
        }
        if (rc != PRESENCE_OK) {
            if (rc != PRESENCE_ERR_NOMEM || !hit) {
                print_error("fail_at=%ld step %zu: %s\n", fail_at, i,
                            presence_error_name(rc));
                fail();
            }
            r.f.alloc.paused = true;
            char *after = dump_registry(r.f.reg, all_namespaces);
            r.f.alloc.paused = false;
            if (strcmp(before, after) != 0) {
                print_error("fail_at=%ld step %zu changed the registry:\n"
                            "%s\n---\n%s\n",
                            fail_at, i, before, after);
                fail();
            }
            free(after);
            assert_int_equal(r.f.rec.count, ev);
            assert_ok(oom_steps[i](&r)); /* memory back: it works */
        }
        free(before);
    }
    r.f.alloc.paused = true;
    *dump = dump_registry(r.f.reg, all_namespaces);
    r.f.alloc.paused = false;
    *events = recorder_text(&r.f.rec, false, true);
    *reads = r.reads != NULL ? r.reads : str_printf("%s", "");
    *injected = atomic_load(&r.f.alloc.injected);
    assert_ok(presence_client_close(r.f.reg, r.c[0], NULL));
    assert_ok(presence_client_close(r.f.reg, r.c[1], NULL));
    assert_ok(presence_channel_release(r.f.reg, r.ch[0]));
    assert_ok(presence_channel_release(r.f.reg, r.ch[2]));
    fixture_close(&r.f);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    char *dump, *events, *reads;
    unsigned long injected;
    oom_run_once(-1, &dump, &events, &reads, &injected);
    assert_int_equal(injected, 0);
    assert_non_null(strstr(reads, "join kind=1 seq=1"));
    assert_non_null(strstr(reads, "stats 1/1 seq=1"));
    long n = 0;
    for (;; n++) {
        char *d, *e, *rd;
        oom_run_once(n, &d, &e, &rd, &injected);
        assert_string_equal(dump, d);
        assert_string_equal(events, e);
        assert_string_equal(reads, rd);
        free(d);
        free(e);
        free(rd);
        if (injected == 0) {
            break;
        }
    }
    print_message("channel handles: %ld allocation points\n", n);
    assert_true(n > 20);
    free(dump);
    free(events);
    free(reads);
}

/* ---- threads ------------------------------------------------------------------ */

#define T_THREADS 4
#define T_CHANNELS 6
#define T_ROUNDS 2000

typedef struct t_shared {
    presence_registry *reg;
    _Atomic size_t joins;
    _Atomic size_t leaves;
} t_shared;

typedef struct t_arg {
    t_shared *s;
    unsigned id;
} t_arg;

static void count_cb(presence_registry *reg, const presence_event *ev,
                     void *user_data)
{
    (void)reg;
    t_shared *s = user_data;
    if (ev->kind == PRESENCE_EVENT_JOIN) {
        atomic_fetch_add(&s->joins, 1);
    } else if (ev->kind == PRESENCE_EVENT_LEAVE) {
        atomic_fetch_add(&s->leaves, 1);
    }
}

/* Each thread opens its own handles on shared channels, joins and leaves
 * by handle, by name, reads stats, and releases and reopens handles, so
 * that channels go idle and live again under other threads' feet. */
static void *t_main(void *p)
{
    t_arg *a = p;
    presence_registry *reg = a->s->reg;
    char id[32];
    snprintf(id, sizeof id, "t%u", a->id);
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = id;
    o.user_id = "u";
    presence_client *c = NULL;
    if (presence_client_open(reg, &o, &c) != PRESENCE_OK) {
        return (void *)1;
    }
    presence_channel *ch[T_CHANNELS];
    char names[T_CHANNELS][16];
    for (unsigned i = 0; i < T_CHANNELS; i++) {
        snprintf(names[i], sizeof names[i], "room%u", i);
        if (presence_channel_open(reg, names[i], &ch[i]) != PRESENCE_OK) {
            return (void *)1;
        }
    }
    uintptr_t bad = 0;
    unsigned x = a->id * 2654435761u + 1;
    for (unsigned r = 0; r < T_ROUNDS; r++) {
        x = x * 1103515245u + 12345u;
        unsigned k = (x >> 8) % T_CHANNELS;
        presence_change res;
        presence_channel_stats st;
        int rc;
        switch ((x >> 16) % 6) {
        case 0:
            rc = presence_client_join_channel(reg, c, ch[k], NULL, 0, &res);
            bad |= rc != PRESENCE_OK || res.stats.epoch == 0 ||
                   res.stats.num_clients == 0;
            break;
        case 1:
            rc = presence_client_leave_channel(reg, c, ch[k], &res);
            bad |= rc != PRESENCE_OK && rc != PRESENCE_ERR_NOT_FOUND;
            break;
        case 2:
            rc = presence_channel_stats_get(reg, ch[k], presence_trusted(),
                                            &st);
            bad |= rc != PRESENCE_OK ||
                   (st.num_clients == 0) != (st.epoch == 0);
            break;
        case 3:
            bad |= presence_channel_release(reg, ch[k]) != PRESENCE_OK;
            bad |= presence_channel_open(reg, names[k], &ch[k]) !=
                   PRESENCE_OK;
            break;
        case 4:
            rc = presence_client_join(reg, c, names[k], "n", 1, NULL);
            bad |= rc != PRESENCE_OK;
            break;
        default: {
            presence_channel_join_item items[2] = {
                {ch[k], NULL, 0}, {ch[(k + 1) % T_CHANNELS], NULL, 0}};
            bad |= presence_client_join_channel_many(reg, c, items, 2, NULL,
                                                     NULL) != PRESENCE_OK;
            break;
        }
        }
    }
    bad |= presence_client_close(reg, c, NULL) != PRESENCE_OK;
    for (unsigned i = 0; i < T_CHANNELS; i++) {
        bad |= presence_channel_release(reg, ch[i]) != PRESENCE_OK;
    }
    return (void *)bad;
}

static void test_threads(void **state)
{
    (void)state;
    presence_config cfg;
    presence_config_init(&cfg);
    t_shared s = {0};
    assert_ok(presence_registry_new(&cfg, &s.reg));
    presence_subscription sub;
    assert_ok(presence_subscribe(s.reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, count_cb, &s, &sub));
    pthread_t th[T_THREADS];
    t_arg args[T_THREADS];
    for (unsigned i = 0; i < T_THREADS; i++) {
        args[i] = (t_arg){&s, i};
        assert_int_equal(pthread_create(&th[i], NULL, t_main, &args[i]), 0);
    }
    for (unsigned i = 0; i < T_THREADS; i++) {
        void *bad = NULL;
        assert_int_equal(pthread_join(th[i], &bad), 0);
        assert_null(bad);
    }
    assert_counts(s.reg, 0, 0, 0, 0);
    assert_true(atomic_load(&s.joins) > 0);
    assert_int_equal(atomic_load(&s.joins), atomic_load(&s.leaves));
    assert_ok(presence_registry_free(s.reg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_by_name),
        cmocka_unit_test(test_old_life_events_keep_epoch),
        cmocka_unit_test(test_idle_channel),
        cmocka_unit_test(test_release_nonempty),
        cmocka_unit_test(test_errors_change_nothing),
        cmocka_unit_test(test_join_many_all_or_nothing),
        cmocka_unit_test(test_namespace_and_close),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
