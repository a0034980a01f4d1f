/*
 * Versions: (epoch, seq) in stats, snapshots, pages, lists and events, and
 * the header's recipe for a copy of a channel from a read plus events,
 * proved while paging under churn (between pages, and from another
 * thread).
 *
 * SPDX-License-Identifier: MIT
 */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static presence_channel_stats full_stats(presence_registry *reg,
                                         const char *channel)
{
    presence_channel_stats st;
    assert_ok(presence_stats(reg, channel, presence_trusted(), &st));
    return st;
}

/* One life of a channel keeps its epoch; the next gets another. */
static void test_epoch_per_life(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_channel_stats st = full_stats(f.reg, "a");
    assert_true(st.epoch == 0 && st.seq == 0);

    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    st = full_stats(f.reg, "a");
    uint64_t e1 = st.epoch;
    assert_true(e1 != 0);
    assert_int_equal(st.seq, 1);
    assert_ok(join_simple(f.reg, "a", "c2", "u2"));
    assert_ok(presence_leave(f.reg, "a", "c1"));
    st = full_stats(f.reg, "a");
    assert_true(st.epoch == e1);
    assert_int_equal(st.seq, 3);

    presence_snapshot *snap;
    assert_ok(presence_query(f.reg, "a", presence_trusted(), &snap));
    assert_true(snap->epoch == e1 && snap->stats.epoch == e1);
    assert_int_equal(snap->seq, 3);
    assert_int_equal(snap->stats.seq, 3);
    presence_snapshot_free(snap);
    assert_ok(presence_query_page(f.reg, "a", presence_trusted(), 0, 1, &snap));
    assert_true(snap->epoch == e1);
    assert_int_equal(snap->seq, 3);
    presence_snapshot_free(snap);
    presence_channel_list *list;
    assert_ok(presence_channels(f.reg, "", &list));
    assert_int_equal(list->count, 1);
    assert_true(list->channels[0].stats.epoch == e1);
    assert_int_equal(list->channels[0].stats.seq, 3);
    presence_channel_list_free(list);

    /* Empty: version 0; full again: a new epoch, seq from 1. */
    assert_ok(presence_leave(f.reg, "a", "c2"));
    st = full_stats(f.reg, "a");
    assert_true(st.epoch == 0 && st.seq == 0);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    st = full_stats(f.reg, "a");
    assert_true(st.epoch != 0 && st.epoch != e1);
    assert_int_equal(st.seq, 1);

    /* Events carry the change's version, the emptying leave included. */
    assert_int_equal(f.rec.malformed, 0);
    size_t joins = 0;
    for (size_t i = 0; i < f.rec.count; i++) {
        const rec_event *e = &f.rec.events[i];
        if (e->kind == PRESENCE_EVENT_LEAVE && strcmp(e->client_id, "c2") == 0) {
            assert_true(e->epoch == e1);
            assert_int_equal(e->seq, 4);
            assert_int_equal(e->stats.num_clients, 0);
        }
        if (e->kind == PRESENCE_EVENT_JOIN) {
            joins++;
            assert_true(e->epoch == (joins < 3 ? e1 : st.epoch));
        }
    }
    assert_int_equal(joins, 3);
    fixture_close(&f);
}

/* Registries with the same hash seed, as tests and benchmarks use, still
 * give the same channel different epochs; one registry never repeats. */
static void test_epochs_differ(void **state)
{
    (void)state;
    fixture f, g;
    fixture_config(&f);
    fixture_open(&f);
    fixture_config(&g);
    fixture_open(&g);
    enum { LIVES = 1000 };
    uint64_t *seen = calloc(LIVES, sizeof *seen);
    assert_non_null(seen);
    for (int i = 0; i < LIVES; i++) {
        assert_ok(join_simple(f.reg, "x", "c", "u"));
        seen[i] = full_stats(f.reg, "x").epoch;
        assert_ok(presence_leave(f.reg, "x", "c"));
        for (int j = 0; j < i; j++) {
            assert_true(seen[j] != seen[i]);
        }
    }
    assert_ok(join_simple(g.reg, "x", "c", "u"));
    uint64_t other = full_stats(g.reg, "x").epoch;
    for (int i = 0; i < LIVES; i++) {
        assert_true(seen[i] != other);
    }
    free(seen);
    fixture_close(&g);
    fixture_close(&f);
}

/* ---- the recipe ---------------------------------------------------------- */

/* A copy of a channel: client id -> chan_info, as the recipe builds it. */
typedef struct copy_entry {
    char *client_id;
    char *chan_info; /* "" for none */
} copy_entry;

typedef struct channel_copy {
    copy_entry *e;
    size_t n, cap;
} channel_copy;

static size_t copy_find(const channel_copy *c, const char *id)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->e[i].client_id, id) == 0) {
            return i;
        }
    }
    return SIZE_MAX;
}

static void copy_put(channel_copy *c, const char *id, const void *info,
                     size_t len)
{
    char *s = malloc(len + 1);
    assert_non_null(s);
    if (len > 0) {
        memcpy(s, info, len);
    }
    s[len] = '\0';
    size_t i = copy_find(c, id);
    if (i != SIZE_MAX) {
        free(c->e[i].chan_info);
        c->e[i].chan_info = s;
        return;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->e = realloc(c->e, c->cap * sizeof *c->e);
        assert_non_null(c->e);
    }
    c->e[c->n].client_id = strdup(id);
    assert_non_null(c->e[c->n].client_id);
    c->e[c->n++].chan_info = s;
}

static void copy_remove(channel_copy *c, const char *id)
{
    size_t i = copy_find(c, id);
    if (i != SIZE_MAX) {
        free(c->e[i].client_id);
        free(c->e[i].chan_info);
        c->e[i] = c->e[--c->n];
    }
}

static void copy_free(channel_copy *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->e[i].client_id);
        free(c->e[i].chan_info);
    }
    free(c->e);
    memset(c, 0, sizeof *c);
}

/* Step 3 of the recipe over the kept events. */
static void copy_replay(channel_copy *c, const rec_event *events, size_t n,
                        uint64_t e0, uint64_t s0)
{
    for (size_t i = 0; i < n; i++) {
        const rec_event *e = &events[i];
        if (e->epoch == e0 && e->seq <= s0) {
            continue;
        }
        switch (e->kind) {
        case PRESENCE_EVENT_JOIN:
        case PRESENCE_EVENT_UPDATE:
            copy_put(c, e->client_id, e->chan_info, e->chan_info_len);
            break;
        case PRESENCE_EVENT_LEAVE:
            copy_remove(c, e->client_id);
            break;
        default:
            break;
        }
    }
}

/* The copy equals the channel now. */
static void copy_assert_equals(const channel_copy *c, presence_registry *reg,
                               const char *channel)
{
    presence_snapshot *snap;
    assert_ok(presence_query(reg, channel, presence_trusted(), &snap));
    if (snap->count != c->n) {
        print_error("copy has %zu members, the channel %zu\n", c->n,
                    snap->count);
    }
    assert_int_equal(snap->count, c->n);
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        size_t k = copy_find(c, m->client_id);
        if (k == SIZE_MAX) {
            print_error("%s is in the channel, not in the copy\n",
                        m->client_id);
        }
        assert_true(k != SIZE_MAX);
        assert_int_equal(strlen(c->e[k].chan_info), m->chan_info_len);
        assert_memory_equal(c->e[k].chan_info, m->chan_info_len ? m->chan_info : "",
                            m->chan_info_len);
    }
    presence_snapshot_free(snap);
}

/* Step 2: walk the channel in pages of `limit`, calling churn between
 * pages; returns the first page's version. */
static void copy_walk(channel_copy *c, presence_registry *reg,
                      const char *channel, size_t limit,
                      void (*churn)(void *), void *churn_arg, uint64_t *e0,
                      uint64_t *s0)
{
    uint64_t cursor = 0;
    bool first = true;
    do {
        presence_snapshot *snap;
        assert_ok(presence_query_page(reg, channel, presence_trusted(), cursor, limit,
                                      &snap));
        if (first) {
            *e0 = snap->epoch;
            *s0 = snap->seq;
            first = false;
        }
        for (size_t i = 0; i < snap->count; i++) {
            const presence_member *m = &snap->members[i];
            copy_put(c, m->client_id, m->chan_info, m->chan_info_len);
        }
        cursor = snap->next_cursor;
        presence_snapshot_free(snap);
        if (churn != NULL) {
            churn(churn_arg);
        }
    } while (cursor != 0);
}

typedef struct churner {
    presence_registry *reg;
    unsigned seed;
    int clients;
    bool empty_once; /* empty the channel completely at some point */
    int steps;
} churner;

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 16) & 0x7fff;
}

/* A few random joins, leaves and updates of "big". */
static void churn_some(void *arg)
{
    churner *ch = arg;
    char id[32], info[32];
    ch->steps++;
    if (ch->empty_once && ch->steps == 5) {
        assert_ok(presence_channel_close(ch->reg, "big", NULL));
    }
    for (int k = 0; k < 6; k++) {
        unsigned r = next_rand(&ch->seed);
        snprintf(id, sizeof id, "c%u", r % (unsigned)ch->clients);
        snprintf(info, sizeof info, "i%u", next_rand(&ch->seed) % 5);
        int rc;
        switch (r % 3) {
        case 0:
            rc = join_info(ch->reg, "big", id, "u", NULL, info);
            assert_ok(rc);
            break;
        case 1:
            rc = presence_leave(ch->reg, "big", id);
            assert_true(rc == PRESENCE_OK || rc == PRESENCE_ERR_NOT_FOUND);
            break;
        default:
            rc = presence_update(ch->reg, "big", id, info, strlen(info));
            assert_true(rc == PRESENCE_OK || rc == PRESENCE_ERR_NOT_FOUND);
            break;
        }
    }
}

static void recipe_between_pages(unsigned seed, bool empty_once,
                                 size_t limit)
{
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    /* Step 1: keep only the channel's events, from before the read. */
    assert_ok(presence_unsubscribe(f.reg, f.sub));
    recorder kept;
    recorder_init(&kept);
    presence_subscription sub;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, "big",
                                 PRESENCE_EVENTS_ALL, recorder_cb, &kept,
                                 &sub));
    churner ch = {f.reg, seed, 400, empty_once, 0};
    char id[32];
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "c%d", i);
        assert_ok(join_info(f.reg, "big", id, "u", NULL, "i0"));
    }
    channel_copy c = {0};
    uint64_t e0, s0;
    copy_walk(&c, f.reg, "big", limit, churn_some, &ch, &e0, &s0);
    copy_replay(&c, kept.events, kept.count, e0, s0);
    copy_assert_equals(&c, f.reg, "big");
    /* And the copy stays exact as events go on coming. */
    size_t done = kept.count;
    for (int round = 0; round < 20; round++) {
        churn_some(&ch);
        copy_replay(&c, kept.events + done, kept.count - done, e0, s0);
        done = kept.count;
        copy_assert_equals(&c, f.reg, "big");
    }
    assert_int_equal(kept.malformed, 0);
    copy_free(&c);
    assert_ok(presence_unsubscribe(f.reg, sub));
    recorder_free(&kept);
    fixture_close(&f);
}

static void test_recipe_paging_under_churn(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 20; seed++) {
        recipe_between_pages(seed, false, 1 + seed % 13);
    }
}

static void test_recipe_channel_empties_during_walk(void **state)
{
    (void)state;
    for (unsigned seed = 1; seed <= 10; seed++) {
        recipe_between_pages(seed, true, 7);
    }
}

/* With a whole snapshot the skipped events are exactly what it reflects. */
static void test_recipe_whole_snapshot(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    churner ch = {f.reg, 7, 50, false, 0};
    for (int i = 0; i < 30; i++) {
        churn_some(&ch);
    }
    size_t before = f.rec.count;
    presence_snapshot *snap;
    assert_ok(presence_query(f.reg, "big", presence_trusted(), &snap));
    channel_copy c = {0};
    for (size_t i = 0; i < snap->count; i++) {
        copy_put(&c, snap->members[i].client_id, snap->members[i].chan_info,
                 snap->members[i].chan_info_len);
    }
    uint64_t e0 = snap->epoch, s0 = snap->seq;
    presence_snapshot_free(snap);
    /* Every event kept so far is at or before the snapshot: all skipped. */
    for (size_t i = 0; i < before; i++) {
        const rec_event *e = &f.rec.events[i];
        if (strcmp(e->channel, "big") == 0 && e->epoch == e0) {
            assert_true(e->seq <= s0);
        }
    }
    for (int i = 0; i < 30; i++) {
        size_t from = f.rec.count;
        churn_some(&ch);
        copy_replay(&c, f.rec.events + from, f.rec.count - from, e0, s0);
        copy_assert_equals(&c, f.reg, "big");
    }
    copy_free(&c);
    fixture_close(&f);
}

/* ---- the recipe with a writer on another thread ------------------------- */

typedef struct locked_log {
    pthread_mutex_t lock;
    recorder rec;
} locked_log;

static void locked_log_cb(presence_registry *reg, const presence_event *ev,
                          void *user_data)
{
    locked_log *l = user_data;
    pthread_mutex_lock(&l->lock);
    recorder_add(&l->rec, reg, ev);
    pthread_mutex_unlock(&l->lock);
}

typedef struct writer_arg {
    presence_registry *reg;
    atomic_bool stop;
    unsigned seed;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *w = p;
    churner ch = {w->reg, w->seed, 500, false, 0};
    while (!atomic_load(&w->stop)) {
        churn_some(&ch);
    }
    return NULL;
}

static void test_recipe_with_writer_thread(void **state)
{
    (void)state;
    presence_config cfg;
    presence_config_init(&cfg);
    presence_registry *reg;
    assert_ok(presence_registry_new(&cfg, &reg));
    locked_log log;
    pthread_mutex_init(&log.lock, NULL);
    recorder_init(&log.rec);
    presence_subscription sub;
    assert_ok(presence_subscribe(reg, PRESENCE_SCOPE_CHANNEL, "big",
                                 PRESENCE_EVENTS_ALL, locked_log_cb, &log,
                                 &sub));
    char id[32];
    for (int i = 0; i < 400; i++) {
        snprintf(id, sizeof id, "c%d", i);
        assert_ok(join_info(reg, "big", id, "u", NULL, "i0"));
    }
    writer_arg w = {reg, false, 99};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
    for (int walk = 0; walk < 10; walk++) {
        channel_copy c = {0};
        uint64_t e0, s0;
        pthread_mutex_lock(&log.lock);
        size_t from = log.rec.count;
        pthread_mutex_unlock(&log.lock);
        copy_walk(&c, reg, "big", 16, NULL, NULL, &e0, &s0);
        /* Stop the writer for the comparison only, on the last walk. */
        if (walk == 9) {
            atomic_store(&w.stop, true);
            pthread_join(th, NULL);
        }
        pthread_mutex_lock(&log.lock);
        copy_replay(&c, log.rec.events + from, log.rec.count - from, e0, s0);
        pthread_mutex_unlock(&log.lock);
        if (walk == 9) {
            copy_assert_equals(&c, reg, "big");
        }
        copy_free(&c);
    }
    assert_int_equal(log.rec.malformed, 0);
    assert_ok(presence_unsubscribe(reg, sub));
    assert_ok(presence_registry_free(reg));
    recorder_free(&log.rec);
    pthread_mutex_destroy(&log.lock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_per_life),
        cmocka_unit_test(test_epochs_differ),
        cmocka_unit_test(test_recipe_paging_under_churn),
        cmocka_unit_test(test_recipe_channel_empties_during_walk),
        cmocka_unit_test(test_recipe_whole_snapshot),
        cmocka_unit_test(test_recipe_with_writer_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
