/*
 * Warm restart: presence_registry_save() and presence_registry_load().
 * A loaded registry reads exactly as the saved one (namespaces and
 * options, channels with their epochs and seqs, members with infos,
 * times, nodes and graces) and goes on the same way (the same TTL
 * expiries and grace ends, with the same events); handles are not saved;
 * a state that is damaged, truncated, of another version or too big for
 * the config is refused with its code and leaks nothing; every allocation
 * failure of a save or a load is clean.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include "../src/state_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMESPACES[] = {"", "tt", "gr", "qq", "mx", NULL};

struct bytes {
    unsigned char *data;
    size_t len;
    int fail_after; /* the write call that fails; -1: none */
    int calls;
};

static int collect(const void *data, size_t len, void *ud)
{
    struct bytes *b = ud;
    if (b->fail_after >= 0 && b->calls++ >= b->fail_after) {
        return 1;
    }
    unsigned char *p = realloc(b->data, b->len + len);
    assert_non_null(p);
    memcpy(p + b->len, data, len);
    b->data = p;
    b->len += len;
    return 0;
}

static struct bytes save(presence_registry *reg)
{
    struct bytes b = {NULL, 0, -1, 0};
    size_t size = 0;
    assert_ok(presence_registry_save(reg, collect, &b, &size));
    assert_int_equal(size, b.len);
    return b;
}

/* Seal bytes changed by a test with a correct checksum. */
static void seal(unsigned char *data, size_t len)
{
    presence__put_u64le(data + len - 8,
                        presence__state_checksum(data, len - 8));
}

static void ns(presence_registry *reg, const char *name, int64_t ttl,
               int64_t grace, bool join_leave, size_t max)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.ttl_ms = ttl;
    o.leave_grace_ms = grace;
    o.grace_same_user = grace > 0;
    o.grace_on_leave = grace > 0;
    o.join_leave = join_leave;
    o.max_members = max;
    assert_ok(presence_namespace_set(reg, name, &o));
}

/* A handle in no channel: not saved. */
static presence_client *idle;

/* A registry with some of everything. */
static void populate(fixture *f)
{
    presence_registry *reg = f->reg;
    ns(reg, "tt", 100, 0, true, 0);
    ns(reg, "gr", 0, 5000, true, 0);
    ns(reg, "qq", 0, 0, false, 0);
    ns(reg, "mx", 0, 0, true, 3);
    assert_ok(join_info(reg, "lobby", "c1", "u1", "conn1", "info"));
    assert_ok(join_info(reg, "lobby", "c2", "", NULL, NULL));
    assert_ok(join_info(reg, "tt:a", "c1", "u1", "conn1", NULL));
    fake_clock_advance(&f->clock, 10);
    assert_ok(join_info(reg, "tt:a", "c3", "u2", "conn3", "x"));
    assert_ok(join_info(reg, "tt:b", "c3", "u2", "conn3", NULL));
    assert_ok(join_info(reg, "qq:a", "c3", "u2", "conn3", NULL));
    assert_ok(join_simple(reg, "mx:a", "c4", "u1"));
    assert_ok(join_simple(reg, "gr:a", "c5", "u3"));
    assert_ok(join_simple(reg, "gr:a", "c6", "u3"));
    assert_ok(join_simple(reg, "gr:b", "c5", "u3"));
    assert_ok(presence_remote_join(reg, "node-b", "lobby", "r1", "u1",
                                   "rc", 2, "ri", 2));
    assert_ok(presence_remote_join(reg, "node-b", "gr:a", "r1", "u1", "rc", 2,
                                   NULL, 0));
    assert_ok(presence_remote_join(reg, "node-c", "gr:b", "r2", "u9", NULL, 0,
                                   NULL, 0));
    /* Versions past the first join, and members in grace. */
    assert_ok(presence_update(reg, "lobby", "c1", "info2", 5));
    assert_ok(presence_leave(reg, "lobby", "c2"));
    assert_ok(join_simple(reg, "lobby", "c2", ""));
    fake_clock_advance(&f->clock, 20);
    assert_ok(presence_touch(reg, "tt:a", "c1"));
    assert_ok(presence_disconnect(reg, "c5", NULL));
    fake_clock_advance(&f->clock, 5);
    assert_ok(presence_leave(reg, "gr:a", "c6")); /* grace_on_leave */
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = "h1";
    o.user_id = "u7";
    assert_ok(presence_client_open(reg, &o, &idle)); /* in no channel */
    o.client_id = "h2";
    presence_client *h2;
    assert_ok(presence_client_open(reg, &o, &h2));
    assert_ok(presence_client_join(reg, h2, "gr:b", "hi", 2, NULL));
    assert_ok(presence_client_close(reg, h2, NULL)); /* into grace */
}

static presence_channel_stats stats(presence_registry *reg, const char *ch)
{
    return stats_of(reg, ch);
}

/* Open a second fixture whose registry is loaded from bytes. */
static void open_loaded(fixture *g, fixture *like, const struct bytes *b)
{
    fixture_config(g);
    fake_clock_set(&g->clock, fake_clock_get(&like->clock));
    assert_ok(presence_registry_load(&g->config, b->data, b->len, &g->reg));
    g->rec.registry = g->reg;
    assert_ok(presence_subscribe(g->reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, recorder_cb, &g->rec,
                                 &g->sub));
}

static void assert_same(fixture *f, fixture *g)
{
    char *a = dump_registry(f->reg, NAMESPACES);
    char *b = dump_registry(g->reg, NAMESPACES);
    if (strcmp(a, b) != 0) {
        print_error("saved:\n%s\nloaded:\n%s\n", a, b);
    }
    assert_string_equal(a, b);
    free(a);
    free(b);
    static const char *const channels[] = {"lobby", "tt:a", "tt:b", "qq:a",
                                           "mx:a",  "gr:a", "gr:b"};
    for (size_t i = 0; i < sizeof channels / sizeof *channels; i++) {
        presence_channel_stats x = stats(f->reg, channels[i]);
        presence_channel_stats y = stats(g->reg, channels[i]);
        assert_int_equal(x.epoch, y.epoch);
        assert_int_equal(x.seq, y.seq);
        assert_int_equal(x.num_clients, y.num_clients);
        assert_int_equal(x.num_users, y.num_users);
    }
}

/* Saved and loaded, a registry reads the same and goes on the same: the
 * same TTL expiries and grace ends, the same events, at the same times. */
static void test_round_trip(void **state)
{
    (void)state;
    fixture f, g;
    fixture_config(&f);
    fixture_open(&f);
    populate(&f);
    struct bytes b = save(f.reg);
    open_loaded(&g, &f, &b);
    /* The handle in no channel is not saved; the closed one is a client
     * known by name, in grace. */
    size_t conns = 9;
    assert_ok(presence_user_status(g.reg, "u7", &conns));
    assert_int_equal(conns, 1);
    assert_ok(presence_client_close(f.reg, idle, NULL));
    assert_same(&f, &g);
    /* A save of the loaded registry loads to the same again. */
    struct bytes b2 = save(g.reg);
    fixture h;
    open_loaded(&h, &g, &b2);
    assert_same(&g, &h);
    assert_ok(presence_registry_free(h.reg));
    recorder_free(&h.rec);
    test_alloc_assert_clean(&h.alloc);
    free(b2.data);

    recorder_clear(&f.rec);
    for (int64_t t = fake_clock_get(&f.clock); t < 20000; t += 37) {
        fake_clock_set(&f.clock, t);
        fake_clock_set(&g.clock, t);
        size_t n1, n2;
        int64_t d1, d2;
        assert_ok(presence_expire(f.reg, t, &n1, &d1));
        assert_ok(presence_expire(g.reg, t, &n2, &d2));
        assert_int_equal(n1, n2);
        assert_int_equal(d1, d2);
    }
    assert_true(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE) >= 5);
    char *ea = recorder_text(&f.rec, true, true);
    char *eb = recorder_text(&g.rec, true, true);
    assert_string_equal(ea, eb);
    free(ea);
    free(eb);
    assert_same(&f, &g);
    /* A client coming back in time after the load resumes its place. */
    free(b.data);
    fixture_close(&f);
    fixture_close(&g);
}

/* The server's restart: load, then every local client disconnects, so
 * that in namespaces with a grace they wait to be taken back. */
static void test_restart_into_grace(void **state)
{
    (void)state;
    fixture f, g;
    fixture_config(&f);
    fixture_open(&f);
    ns(f.reg, "gr", 0, 5000, true, 0);
    assert_ok(join_simple(f.reg, "gr:a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "gr:a", "c2", "u2"));
    struct bytes b = save(f.reg);
    open_loaded(&g, &f, &b);
    presence_snapshot *snap;
    assert_ok(presence_node_memberships(g.reg, "", &snap));
    for (size_t i = 0; i < snap->count; i++) {
        assert_ok(presence_disconnect(g.reg, snap->members[i].client_id, NULL));
    }
    presence_snapshot_free(snap);
    assert_int_equal(g.rec.count, 0);
    /* u1 is back on a new connection; u2 is not. */
    assert_ok(join_simple(g.reg, "gr:a", "c1-new", "u1"));
    assert_int_equal(g.rec.count, 0);
    fake_clock_advance(&g.clock, 5000);
    size_t n;
    assert_ok(presence_expire(g.reg, fake_clock_get(&g.clock), &n, NULL));
    assert_int_equal(n, 1);
    assert_non_null(recorder_find(&g.rec, 0, PRESENCE_EVENT_LEAVE, "gr:a", "c2"));
    assert_stats(g.reg, "gr:a", 1, 1);
    free(b.data);
    fixture_close(&f);
    fixture_close(&g);
}

/* ---- refusals -------------------------------------------------------------- */

/* A namespace's history_size is saved; the logs are not: a loaded
 * channel's log starts at its restored version, and logs what follows. */
static void test_change_logs_start_at_loaded_version(void **state)
{
    (void)state;
    fixture f, g;
    fixture_config(&f);
    fixture_open(&f);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.history_size = 8;
    assert_ok(presence_namespace_set(f.reg, "hh", &o));
    assert_ok(join_simple(f.reg, "hh:a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "hh:a", "c2", "u2"));
    assert_ok(presence_leave(f.reg, "hh:a", "c2"));
    presence_channel_stats st = stats(f.reg, "hh:a");
    struct bytes b = save(f.reg);
    open_loaded(&g, &f, &b);
    presence_namespace_options got;
    presence_namespace_options_init(&got);
    assert_ok(presence_namespace_get(g.reg, "hh", &got));
    assert_int_equal(got.history_size, 8);
    presence_history *h;
    assert_ok(presence_changes_since(g.reg, "hh:a", presence_trusted(),
                                     st.epoch, st.seq, &h));
    assert_int_equal(h->count, 0);
    presence_history_free(h);
    assert_rc(presence_changes_since(g.reg, "hh:a", presence_trusted(),
                                     st.epoch, st.seq - 1, &h),
              PRESENCE_ERR_SNAPSHOT_NEEDED);
    assert_ok(join_simple(g.reg, "hh:a", "c3", "u3"));
    assert_ok(presence_changes_since(g.reg, "hh:a", presence_trusted(),
                                     st.epoch, st.seq, &h));
    assert_int_equal(h->count, 1);
    assert_int_equal(h->entries[0].seq, st.seq + 1);
    assert_string_equal(h->entries[0].member.client_id, "c3");
    presence_history_free(h);
    free(b.data);
    fixture_close(&g);
    fixture_close(&f);
}

static int load_rc(const void *data, size_t len)
{
    test_alloc a;
    test_alloc_init(&a, true);
    presence_config c;
    presence_config_init(&c);
    test_alloc_install(&a, &c, false);
    presence_registry *reg = (presence_registry *)&a; /* must stay */
    int rc = presence_registry_load(&c, data, len, &reg);
    if (rc == PRESENCE_OK) {
        assert_ok(presence_registry_free(reg));
    } else {
        assert_ptr_equal(reg, (presence_registry *)&a);
    }
    test_alloc_assert_clean(&a);
    return rc;
}

static void test_refusals(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    populate(&f);
    struct bytes b = save(f.reg);
    assert_ok(load_rc(b.data, b.len));
    presence_registry *out = NULL;
    assert_rc(presence_registry_load(NULL, NULL, 1, &out), PRESENCE_ERR_INVALID);
    assert_rc(presence_registry_load(NULL, b.data, b.len, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_registry_save(NULL, collect, &b, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_registry_save(f.reg, NULL, &b, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(load_rc(NULL, 0), PRESENCE_ERR_CORRUPT);

    unsigned char *copy = malloc(b.len);
    assert_non_null(copy);
    /* The magic, the version, the checksum. */
    memcpy(copy, b.data, b.len);
    copy[0] ^= 1;
    assert_rc(load_rc(copy, b.len), PRESENCE_ERR_CORRUPT);
    memcpy(copy, b.data, b.len);
    copy[8] = 2;
    seal(copy, b.len);
    assert_rc(load_rc(copy, b.len), PRESENCE_ERR_UNSUPPORTED);
    memcpy(copy, b.data, b.len);
    copy[b.len / 2] ^= 0x40;
    assert_rc(load_rc(copy, b.len), PRESENCE_ERR_CORRUPT);
    /* Every truncation, sealed or not, is refused. */
    for (size_t n = 0; n < b.len; n++) {
        memcpy(copy, b.data, n);
        assert_rc(load_rc(copy, n), PRESENCE_ERR_CORRUPT);
        if (n >= 20) {
            seal(copy, n);
            int rc = load_rc(copy, n);
            assert_true(rc != PRESENCE_OK);
        }
    }
    /* Every byte changed, sealed: an error or a registry, never a crash
     * or a leak (load_rc checks). */
    size_t refused = 0;
    for (size_t i = 12; i + 8 < b.len; i++) {
        for (unsigned bit = 0; bit < 8; bit += 3) {
            memcpy(copy, b.data, b.len);
            copy[i] ^= (unsigned char)(1u << bit);
            seal(copy, b.len);
            refused += load_rc(copy, b.len) != PRESENCE_OK;
        }
    }
    assert_true(refused > 0);
    /* Bytes after the last channel. */
    unsigned char *longer = malloc(b.len + 1);
    assert_non_null(longer);
    memcpy(longer, b.data, b.len - 8);
    longer[b.len - 8] = 0;
    seal(longer, b.len + 1);
    assert_rc(load_rc(longer, b.len + 1), PRESENCE_ERR_CORRUPT);
    free(longer);
    free(copy);

    /* A state too big for this config's limits. */
    presence_config c;
    presence_config_init(&c);
    c.limits.members_per_channel_max = 2;
    out = NULL;
    assert_rc(presence_registry_load(&c, b.data, b.len, &out),
              PRESENCE_ERR_CHANNEL_MEMBER_LIMIT);
    assert_null(out);
    presence_config_init(&c);
    c.limits.client_id_max = 1;
    assert_rc(presence_registry_load(&c, b.data, b.len, &out),
              PRESENCE_ERR_TOO_LONG);
    /* A write that fails. */
    struct bytes w = {NULL, 0, 0, 0};
    assert_rc(presence_registry_save(f.reg, collect, &w, NULL), PRESENCE_ERR_IO);
    free(w.data);
    /* An empty registry saves and loads. */
    presence_registry *empty;
    assert_ok(presence_registry_new(NULL, &empty));
    struct bytes e = save(empty);
    presence_registry *back;
    assert_ok(presence_registry_load(NULL, e.data, e.len, &back));
    assert_counts(back, 0, 0, 0, 0);
    assert_ok(presence_registry_free(back));
    assert_ok(presence_registry_free(empty));
    free(e.data);
    free(b.data);
    fixture_close(&f);
}

/* ---- out of memory ----------------------------------------------------------- */

static void test_out_of_memory(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    populate(&f);
    f.alloc.paused = true;
    char *before = dump_registry(f.reg, NAMESPACES);
    f.alloc.paused = false;
    struct bytes ref = save(f.reg);
    long n;
    for (n = 0;; n++) {
        struct bytes b = {NULL, 0, -1, 0};
        test_alloc_arm(&f.alloc, n);
        int rc = presence_registry_save(f.reg, collect, &b, NULL);
        test_alloc_disarm(&f.alloc);
        if (rc == PRESENCE_OK) {
            assert_int_equal(b.len, ref.len);
            assert_memory_equal(b.data, ref.data, ref.len);
            free(b.data);
            break;
        }
        assert_rc(rc, PRESENCE_ERR_NOMEM);
        assert_int_equal(b.len, 0); /* nothing written */
        assert_true(n < 1000);
    }
    assert_true(n > 0);
    f.alloc.paused = true;
    char *after = dump_registry(f.reg, NAMESPACES);
    f.alloc.paused = false;
    assert_string_equal(before, after);
    free(before);
    free(after);

    for (n = 0;; n++) {
        test_alloc a;
        test_alloc_init(&a, true);
        presence_config c;
        presence_config_init(&c);
        test_alloc_install(&a, &c, false);
        test_alloc_arm(&a, n);
        presence_registry *reg = NULL;
        int rc = presence_registry_load(&c, ref.data, ref.len, &reg);
        bool injected = atomic_load(&a.injected) != 0;
        test_alloc_disarm(&a);
        if (rc == PRESENCE_OK) {
            assert_ok(presence_registry_free(reg));
            test_alloc_assert_clean(&a);
            if (!injected) {
                break;
            }
            continue;
        }
        assert_rc(rc, PRESENCE_ERR_NOMEM);
        assert_null(reg);
        test_alloc_assert_clean(&a);
        assert_true(n < 100000);
    }
    assert_true(n > 10);
    free(ref.data);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_change_logs_start_at_loaded_version),
        cmocka_unit_test(test_restart_into_grace),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
