/*
 * The zero-copy reader: presence_visit() sees what a snapshot sees, in
 * pages or whole, hands out the application pointers, and lets its
 * visitor call anything (changes of the same channel, reads, closing a
 * handle it is looking at) without a deadlock or a stale byte; freeing
 * the registry is refused meanwhile. Also from an event callback (fan-out)
 * and against a writer thread.
 *
 * SPDX-License-Identifier: MIT
 */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct seen {
    char **ids;
    size_t n, cap;
    size_t with_app;
    size_t info_mismatch;
    const presence_snapshot *expect; /* when set, every field is compared */
} seen;

static void seen_add(seen *s, const char *id)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->ids = realloc(s->ids, s->cap * sizeof *s->ids);
        assert_non_null(s->ids);
    }
    s->ids[s->n++] = strdup(id);
}

static void seen_free(seen *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->ids[i]);
    }
    free(s->ids);
    memset(s, 0, sizeof *s);
}

static bool same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void record_member(const presence_member *m, void *user_data)
{
    seen *s = user_data;
    seen_add(s, m->client_id);
    if (m->app != NULL) {
        s->with_app++;
    }
    if (s->expect == NULL) {
        return;
    }
    for (size_t i = 0; i < s->expect->count; i++) {
        const presence_member *e = &s->expect->members[i];
        if (strcmp(e->client_id, m->client_id) != 0) {
            continue;
        }
        if (strcmp(e->user_id, m->user_id) != 0 ||
            strcmp(e->channel, m->channel) != 0 ||
            strcmp(e->node_id, m->node_id) != 0 ||
            !same_bytes(e->conn_info, e->conn_info_len, m->conn_info,
                        m->conn_info_len) ||
            !same_bytes(e->chan_info, e->chan_info_len, m->chan_info,
                        m->chan_info_len) ||
            e->joined_at_ms != m->joined_at_ms ||
            e->touched_at_ms != m->touched_at_ms || e->app != m->app) {
            s->info_mismatch++;
        }
        return;
    }
    s->info_mismatch++; /* not in the snapshot */
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* 200 members, half of them handles with a pointer. */
static presence_client *handles[100];
static int apps[100];

static void fill(fixture *f)
{
    char id[32], info[32];
    for (int i = 0; i < 100; i++) {
        presence_client_options o;
        presence_client_options_init(&o);
        snprintf(id, sizeof id, "h%d", i);
        o.client_id = id;
        o.user_id = i % 2 ? "odd" : "even";
        o.conn_info = "conn";
        o.conn_info_len = 4;
        o.app = &apps[i];
        assert_ok(presence_client_open(f->reg, &o, &handles[i]));
        snprintf(info, sizeof info, "i%d", i);
        assert_ok(presence_client_join(f->reg, handles[i], "big", info,
                                       strlen(info), NULL));
        snprintf(id, sizeof id, "n%d", i);
        assert_ok(join_info(f->reg, "big", id, "u", i % 3 ? "ci" : NULL,
                            NULL));
    }
}

static void close_all(fixture *f)
{
    for (int i = 0; i < 100; i++) {
        if (handles[i] != NULL) {
            assert_ok(presence_client_close(f->reg, handles[i], NULL));
            handles[i] = NULL;
        }
    }
}

static void test_visit_whole_and_pages(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    fill(&f);
    presence_snapshot *snap;
    assert_ok(presence_query(f.reg, "big", presence_trusted(), &snap));
    seen s = {0};
    s.expect = snap;
    presence_visit_info info;
    assert_ok(presence_visit(f.reg, "big", presence_trusted(), 0, 0, record_member, &s,
                             &info));
    assert_int_equal(s.n, 200);
    assert_int_equal(s.with_app, 100);
    assert_int_equal(s.info_mismatch, 0);
    assert_int_equal(info.visited, 200);
    assert_int_equal(info.next_cursor, 0);
    assert_true(info.stats.epoch == snap->epoch);
    assert_int_equal(info.stats.seq, snap->seq);
    assert_int_equal(info.stats.num_clients, 200);
    /* In snapshot order. */
    for (size_t i = 0; i < snap->count; i++) {
        assert_string_equal(s.ids[i], snap->members[i].client_id);
    }
    seen_free(&s);

    /* Pages of 7 cover it exactly once. */
    s.expect = snap;
    uint64_t cursor = 0;
    size_t pages = 0;
    do {
        assert_ok(presence_visit(f.reg, "big", presence_trusted(), cursor, 7,
                                 record_member, &s, &info));
        assert_true(info.visited <= 7);
        cursor = info.next_cursor;
        pages++;
    } while (cursor != 0);
    assert_int_equal(s.n, 200);
    assert_int_equal(pages, 29);
    qsort(s.ids, s.n, sizeof *s.ids, cmp_str);
    for (size_t i = 1; i < s.n; i++) {
        assert_true(strcmp(s.ids[i - 1], s.ids[i]) != 0);
    }
    assert_int_equal(s.info_mismatch, 0);
    seen_free(&s);
    presence_snapshot_free(snap);

    /* An empty channel: nothing visited, version 0. */
    assert_ok(presence_visit(f.reg, "none", presence_trusted(), 0, 0, record_member, &s,
                             &info));
    assert_int_equal(info.visited, 0);
    assert_true(info.stats.epoch == 0);
    close_all(&f);
    fixture_close(&f);
}

static void nop_visitor(const presence_member *m, void *user_data)
{
    (void)m;
    (void)user_data;
}

static void test_visit_errors(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "off", false, true, 0, 0);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    presence_visit_info info;
    assert_rc(presence_visit(NULL, "a", presence_trusted(), 0, 0, nop_visitor, NULL, &info),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_visit(f.reg, NULL, presence_trusted(), 0, 0, nop_visitor, NULL,
                             &info),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_visit(f.reg, "a", presence_trusted(), 0, 0, NULL, NULL, &info),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_visit(f.reg, "nope:a", presence_trusted(), 0, 0, nop_visitor, NULL,
                             &info),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_visit(f.reg, "off:a", presence_trusted(), 0, 0, nop_visitor, NULL,
                             &info),
              PRESENCE_ERR_NOT_AVAILABLE);
    presence_requester stranger = {"c9", "u9"};
    assert_rc(presence_visit(f.reg, "a", &stranger, 0, 0, nop_visitor, NULL,
                             &info),
              PRESENCE_ERR_DENIED);
    presence_requester member = {"c1", "u1"};
    assert_ok(presence_visit(f.reg, "a", &member, 0, 0, nop_visitor, NULL,
                             NULL));
    fixture_close(&f);
}

/* A visitor that changes the channel it visits, reads it, closes the
 * handle it looks at, and tries to free the registry. */
typedef struct meddler {
    presence_registry *reg;
    size_t calls;
    size_t wrong;
    int free_rc;
} meddler;

static void meddling_visitor(const presence_member *m, void *user_data)
{
    meddler *md = user_data;
    md->calls++;
    char id[64];
    snprintf(id, sizeof id, "late-%s", m->client_id);
    /* Each its own user: a user's members sit side by side, so joins of
     * one user would each land just ahead of the walk. */
    if (join_simple(md->reg, "big", id, id) != PRESENCE_OK) {
        md->wrong++;
    }
    presence_channel_stats st;
    if (presence_stats(md->reg, "big", presence_trusted(), &st) != PRESENCE_OK) {
        md->wrong++;
    }
    if (m->app != NULL) {
        int idx = (int)((int *)m->app - apps);
        /* Close the very handle it is looking at: its bytes stay. A
         * member closed earlier by the line below is still visited once,
         * from the chunk taken before it left. */
        if (handles[idx] != NULL &&
            presence_client_close(md->reg, handles[idx], NULL) !=
                PRESENCE_OK) {
            md->wrong++;
        }
        handles[idx] = NULL;
        /* And another, maybe one the walk has taken but not reached: the
         * chunk's references keep its record until it is visited. */
        int other = (idx + 37) % 100;
        if (handles[other] != NULL) {
            if (presence_client_close(md->reg, handles[other], NULL) !=
                PRESENCE_OK) {
                md->wrong++;
            }
            handles[other] = NULL;
        }
        char want[32];
        snprintf(want, sizeof want, "h%d", idx);
        if (strcmp(m->client_id, want) != 0 ||
            strcmp(m->conn_info ? "conn" : "", "conn") != 0 ||
            memcmp(m->conn_info, "conn", 4) != 0) {
            md->wrong++;
        }
    }
    md->free_rc = presence_registry_free(md->reg);
}

static void test_visitor_may_call_anything(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    fill(&f);
    meddler md = {f.reg, 0, 0, 0};
    presence_visit_info info;
    assert_ok(presence_visit(f.reg, "big", presence_trusted(), 0, 0, meddling_visitor, &md,
                             &info));
    /* Members there throughout were visited once; the ones it added may
     * or may not be (at most once each). */
    assert_true(md.calls >= 100 && md.calls <= 400);
    assert_int_equal(md.wrong, 0);
    assert_rc(md.free_rc, PRESENCE_ERR_BUSY);
    assert_int_equal(f.rec.malformed, 0);
    close_all(&f);
    fixture_close(&f);
}

/* Fan-out from an event callback: the members' pointers, no copy. */
typedef struct fanout {
    presence_registry *reg;
    size_t pushes;
    size_t events;
} fanout;

static void count_app(const presence_member *m, void *user_data)
{
    fanout *fo = user_data;
    if (m->app != NULL) {
        fo->pushes++;
    }
}

static void fanout_cb(presence_registry *reg, const presence_event *ev,
                      void *user_data)
{
    fanout *fo = user_data;
    fo->events++;
    assert_ok(presence_visit(reg, ev->channel, presence_trusted(), 0, 0, count_app, fo,
                             NULL));
}

static void test_fanout_from_callback(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    fanout fo = {f.reg, 0, 0};
    presence_subscription sub;
    assert_ok(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, "room",
                                 PRESENCE_EVENT_JOIN, fanout_cb, &fo, &sub));
    char id[16];
    for (int i = 0; i < 10; i++) {
        presence_client_options o;
        presence_client_options_init(&o);
        snprintf(id, sizeof id, "h%d", i);
        o.client_id = id;
        o.app = &apps[i];
        assert_ok(presence_client_open(f.reg, &o, &handles[i]));
        assert_ok(presence_client_join(f.reg, handles[i], "room", NULL, 0,
                                       NULL));
    }
    /* The i-th join reaches the i members there by then: 1 + ... + 10. */
    assert_int_equal(fo.events, 10);
    assert_int_equal(fo.pushes, 55);
    assert_ok(presence_unsubscribe(f.reg, sub));
    close_all(&f);
    fixture_close(&f);
}

/* A writer thread churns the channel while the main thread visits it. */
typedef struct churn_arg {
    presence_registry *reg;
    atomic_bool stop;
} churn_arg;

static void *churn_main(void *p)
{
    churn_arg *a = p;
    char id[32];
    for (unsigned i = 0; !atomic_load(&a->stop); i++) {
        snprintf(id, sizeof id, "w%u", i % 300);
        if (i % 2 == 0) {
            assert_ok(join_info(a->reg, "big", id, "u", "conn", "chan"));
        } else {
            int rc = presence_leave(a->reg, "big", id);
            assert_true(rc == PRESENCE_OK || rc == PRESENCE_ERR_NOT_FOUND);
        }
    }
    return NULL;
}

typedef struct checker {
    size_t members, bad;
} checker;

static void check_member(const presence_member *m, void *user_data)
{
    checker *c = user_data;
    c->members++;
    if (m->client_id[0] == 'w' &&
        (m->conn_info_len != 4 || memcmp(m->conn_info, "conn", 4) != 0 ||
         m->chan_info_len != 4 || memcmp(m->chan_info, "chan", 4) != 0 ||
         strcmp(m->user_id, "u") != 0)) {
        c->bad++;
    }
}

static void test_visit_against_writer(void **state)
{
    (void)state;
    presence_config cfg;
    presence_config_init(&cfg);
    presence_registry *reg;
    assert_ok(presence_registry_new(&cfg, &reg));
    assert_ok(join_simple(reg, "big", "steady", "u"));
    churn_arg a = {reg, false};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, churn_main, &a), 0);
    checker c = {0, 0};
    for (int i = 0; i < 300; i++) {
        presence_visit_info info;
        size_t before = c.members;
        assert_ok(presence_visit(reg, "big", presence_trusted(), 0, 0, check_member, &c,
                                 &info));
        assert_int_equal(c.members - before, info.visited);
        assert_true(info.visited >= 1); /* "steady" is always there */
    }
    atomic_store(&a.stop, true);
    pthread_join(th, NULL);
    assert_int_equal(c.bad, 0);
    assert_ok(presence_registry_free(reg));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_visit_whole_and_pages),
        cmocka_unit_test(test_visit_errors),
        cmocka_unit_test(test_visitor_may_call_anything),
        cmocka_unit_test(test_fanout_from_callback),
        cmocka_unit_test(test_visit_against_writer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
