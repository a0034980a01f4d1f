/*
 * The registry handle: configuration defaults, creation and destruction,
 * invalid configurations, versions, error strings, counts.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_config_defaults(void **state)
{
    (void)state;
    presence_config c;
    memset(&c, 0x5a, sizeof(c));
    presence_config_init(&c);

    assert_int_equal(c.struct_size, sizeof(presence_config));
    assert_null(c.allocator.malloc_fn);
    assert_null(c.allocator.realloc_fn);
    assert_null(c.allocator.free_fn);
    assert_null(c.allocator.user_data);
    assert_null(c.clock);
    assert_null(c.clock_user_data);
    assert_null(c.access_check);
    assert_null(c.access_user_data);
    assert_int_equal(c.limits.channel_name_max, 255);
    assert_int_equal(c.limits.client_id_max, 255);
    assert_int_equal(c.limits.user_id_max, 255);
    assert_int_equal(c.limits.conn_info_max, 65536);
    assert_int_equal(c.limits.chan_info_max, 65536);
    assert_int_equal(c.limits.channels_per_client_max, 128);
    assert_int_equal(c.limits.members_per_channel_max, 0);
    assert_int_equal(c.limits.channels_max, 0);
    assert_int_equal(c.namespace_separator, ':');
    assert_int_equal(c.default_namespace.struct_size,
                     sizeof(presence_namespace_options));
    assert_true(c.default_namespace.presence);
    assert_true(c.default_namespace.join_leave);
    assert_int_equal(c.default_namespace.ttl_ms, 0);
    assert_int_equal(c.default_namespace.max_members, 0);
    assert_false(c.single_threaded);
    assert_int_equal(c.hash_seed, 0);
}

static void test_namespace_options_defaults(void **state)
{
    (void)state;
    presence_namespace_options o;
    memset(&o, 0x5a, sizeof(o));
    presence_namespace_options_init(&o);
    assert_int_equal(o.struct_size, sizeof(presence_namespace_options));
    assert_true(o.presence);
    assert_true(o.join_leave);
    assert_int_equal(o.ttl_ms, 0);
    assert_int_equal(o.max_members, 0);
}

static void test_new_free_defaults(void **state)
{
    (void)state;
    presence_registry *r = NULL;
    assert_ok(presence_registry_new(NULL, &r));
    assert_non_null(r);
    assert_counts(r, 0, 0, 0, 0);
    /* The default clock is monotonic. */
    int64_t t1 = presence_now_ms(r);
    int64_t t2 = presence_now_ms(r);
    assert_true(t2 >= t1);
    assert_ok(join_simple(r, "a", "c1", "u1"));
    assert_counts(r, 1, 1, 1, 1);
    assert_ok(presence_registry_free(r));
}

/* The default clock is CLOCK_MONOTONIC in milliseconds: every reading
 * lies between the readings of that clock around it, through the first
 * readings, while the counter it reads between milliseconds is measured,
 * and after. */
static void test_default_clock_is_monotonic_ms(void **state)
{
    (void)state;
    presence_registry *r = NULL;
    assert_ok(presence_registry_new(NULL, &r));
    size_t distinct = 0;
    assert_int_equal(clock_disagreements(r, 150, &distinct), 0);
    assert_true(distinct >= 20); /* advancing, on however busy a machine */
    assert_ok(presence_registry_free(r));
}

static void test_new_with_config(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    /* The registry allocates through the hooks, and only through them. */
    assert_true(atomic_load(&f.alloc.total_allocs) > 0);
    assert_int_equal(presence_now_ms(f.reg), 1000);
    fake_clock_set(&f.clock, 123456789);
    assert_int_equal(presence_now_ms(f.reg), 123456789);
    assert_ok(join_info(f.reg, "a", "c1", "u1", "conn", "chan"));
    fixture_close(&f);
}

static void test_free_null(void **state)
{
    (void)state;
    assert_ok(presence_registry_free(NULL));
    presence_snapshot_free(NULL);
    presence_channel_list_free(NULL);
}

static void test_new_null_out(void **state)
{
    (void)state;
    presence_config c;
    presence_config_init(&c);
    assert_rc(presence_registry_new(&c, NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_registry_new(NULL, NULL), PRESENCE_ERR_INVALID);
}

/* registry_new must fail with ERR_INVALID, leave *out untouched and leak
 * nothing. */
static void expect_invalid_config(const presence_config *c)
{
    presence_registry *sentinel = (presence_registry *)(uintptr_t)0x1234;
    presence_registry *r = sentinel;
    assert_rc(presence_registry_new(c, &r), PRESENCE_ERR_INVALID);
    assert_ptr_equal(r, sentinel);
}

static void test_new_bad_separator(void **state)
{
    (void)state;
    const char bad[] = {'\0', '\t', '\n', 0x1f, 0x7f, (char)0x80, (char)0xc3,
                        (char)0xff};
    for (size_t i = 0; i < sizeof(bad); i++) {
        presence_config c;
        presence_config_init(&c);
        c.namespace_separator = bad[i];
        expect_invalid_config(&c);
    }
    /* A printable one is fine. */
    presence_config c;
    presence_config_init(&c);
    c.namespace_separator = '/';
    presence_registry *r = NULL;
    assert_ok(presence_registry_new(&c, &r));
    assert_ok(presence_registry_free(r));
}

static void test_new_zero_limits(void **state)
{
    (void)state;
    presence_config c;

    presence_config_init(&c);
    c.limits.channel_name_max = 0;
    expect_invalid_config(&c);

    presence_config_init(&c);
    c.limits.client_id_max = 0;
    expect_invalid_config(&c);

    /* The counts marked "0 = no limit" accept 0. */
    presence_config_init(&c);
    c.limits.channels_per_client_max = 0;
    c.limits.members_per_channel_max = 0;
    c.limits.channels_max = 0;
    presence_registry *r = NULL;
    assert_ok(presence_registry_new(&c, &r));
    for (int i = 0; i < 200; i++) {
        char ch[32];
        snprintf(ch, sizeof(ch), "ch%d", i);
        assert_ok(join_simple(r, ch, "c1", "u1"));
    }
    assert_counts(r, 200, 1, 1, 200);
    assert_ok(presence_registry_free(r));
}

static void test_new_negative_ttl(void **state)
{
    (void)state;
    presence_config c;
    presence_config_init(&c);
    c.default_namespace.ttl_ms = -1;
    expect_invalid_config(&c);
}

static void *dummy_malloc(size_t size, void *ud)
{
    (void)ud;
    return malloc(size);
}

static void *dummy_realloc(void *p, size_t o, size_t n, void *ud)
{
    (void)ud;
    (void)o;
    return realloc(p, n);
}

static void dummy_free(void *p, size_t size, void *ud)
{
    (void)ud;
    (void)size;
    free(p);
}

static void test_new_partial_allocator(void **state)
{
    (void)state;
    struct {
        bool m, r, f;
    } combos[] = {
        {true, false, false}, {false, true, false}, {false, false, true},
        {true, true, false},  {false, true, true},
    };
    for (size_t i = 0; i < sizeof(combos) / sizeof(combos[0]); i++) {
        presence_config c;
        presence_config_init(&c);
        c.allocator.malloc_fn = combos[i].m ? dummy_malloc : NULL;
        c.allocator.realloc_fn = combos[i].r ? dummy_realloc : NULL;
        c.allocator.free_fn = combos[i].f ? dummy_free : NULL;
        expect_invalid_config(&c);
    }
    /* malloc + free without realloc is complete. */
    presence_config c;
    presence_config_init(&c);
    c.allocator.malloc_fn = dummy_malloc;
    c.allocator.free_fn = dummy_free;
    presence_registry *r = NULL;
    assert_ok(presence_registry_new(&c, &r));
    assert_ok(join_simple(r, "a", "c1", NULL));
    assert_ok(presence_registry_free(r));
}

/* The library works without realloc_fn (malloc + copy + free), with sizes
 * reported right, and returns every block. */
static void test_allocator_without_realloc(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    test_alloc_install(&f.alloc, &f.config, true);
    fixture_open(&f);
    char ch[32], cl[32], info[64];
    for (int i = 0; i < 2000; i++) {
        snprintf(ch, sizeof(ch), "ch%d", i % 37);
        snprintf(cl, sizeof(cl), "client%d", i);
        snprintf(info, sizeof(info), "info-%d", i);
        assert_ok(join_info(f.reg, ch, cl, "u", "conn", info));
    }
    assert_counts(f.reg, 37, 2000, 1, 2000);
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "ch0", presence_trusted(), &snap));
    assert_int_equal(snap->count, 55);
    presence_snapshot_free(snap);
    for (int i = 0; i < 2000; i += 2) {
        snprintf(cl, sizeof(cl), "client%d", i);
        assert_ok(presence_disconnect(f.reg, cl, NULL));
    }
    assert_counts(f.reg, 37, 1000, 1, 1000);
    fixture_close(&f);
}

static void test_single_threaded(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.single_threaded = true;
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "a", "c2", "u1"));
    assert_stats(f.reg, "a", 2, 1);
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_JOIN), 2);
    assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_LEAVE), 1);
    fixture_close(&f);
}

static void test_version(void **state)
{
    (void)state;
    assert_non_null(presence_version());
    assert_string_equal(presence_version(), PRESENCE_VERSION_STRING);
    assert_int_equal(presence_version_number(), PRESENCE_VERSION_NUMBER);
    char buf[64];
    snprintf(buf, sizeof(buf), "%d.%d.%d", PRESENCE_VERSION_MAJOR,
             PRESENCE_VERSION_MINOR, PRESENCE_VERSION_PATCH);
    assert_string_equal(presence_version(), buf);
    assert_int_equal(presence_version_number(),
                     PRESENCE_VERSION_MAJOR * 10000 +
                         PRESENCE_VERSION_MINOR * 100 +
                         PRESENCE_VERSION_PATCH);
}

typedef struct error_row {
    int code;
    const char *name;
    const char *message;
} error_row;

static const error_row error_rows[] = {
#define ROW_(name, value, message) {(value), #name, (message)},
    PRESENCE_ERROR_LIST(ROW_)
#undef ROW_
};

static void test_error_strings(void **state)
{
    (void)state;
    size_t n = sizeof(error_rows) / sizeof(error_rows[0]);
    assert_int_equal(n, 18);
    for (size_t i = 0; i < n; i++) {
        const char *msg = presence_strerror(error_rows[i].code);
        const char *name = presence_error_name(error_rows[i].code);
        assert_non_null(msg);
        assert_non_null(name);
        assert_string_equal(msg, error_rows[i].message);
        assert_string_equal(name, error_rows[i].name);
        /* Codes are distinct, OK is 0 and every other one negative. */
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(error_rows[i].code, error_rows[j].code);
        }
        if (i == 0) {
            assert_int_equal(error_rows[i].code, PRESENCE_OK);
        } else {
            assert_true(error_rows[i].code < 0);
        }
    }
    assert_string_equal(presence_error_name(PRESENCE_ERR_NOMEM), "ERR_NOMEM");
    assert_string_equal(presence_strerror(PRESENCE_OK), "success");
}

static void test_error_strings_unknown(void **state)
{
    (void)state;
    const int unknown[] = {1, 2, 100, -18, -19, -100, -1000, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        const char *msg = presence_strerror(unknown[i]);
        const char *name = presence_error_name(unknown[i]);
        assert_non_null(msg);
        assert_non_null(name);
        assert_string_equal(msg, "unknown error");
        assert_string_equal(name, "UNKNOWN");
    }
}

static void test_counts(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_counts c;
    assert_rc(presence_registry_counts(NULL, &c), PRESENCE_ERR_INVALID);
    assert_rc(presence_registry_counts(f.reg, NULL), PRESENCE_ERR_INVALID);
    assert_counts(f.reg, 0, 0, 0, 0);

    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "b", "c1", "u1"));
    assert_ok(join_simple(f.reg, "a", "c2", "u1"));
    assert_ok(join_simple(f.reg, "a", "c3", "u2"));
    assert_ok(join_simple(f.reg, "c", "c4", NULL));
    /* channels a, b, c; clients c1..c4; users u1, u2, anonymous. */
    presence_counts k = counts_of(f.reg);
    assert_int_equal(k.channels, 3);
    assert_int_equal(k.clients, 4);
    assert_int_equal(k.memberships, 5);
    /* Whether the anonymous "" counts as a user is not specified. */
    assert_true(k.users == 2 || k.users == 3);

    assert_ok(presence_disconnect(f.reg, "c4", NULL));
    assert_counts(f.reg, 2, 3, 2, 4);
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_counts(f.reg, 2, 3, 2, 3);
    assert_ok(presence_leave(f.reg, "b", "c1"));
    assert_counts(f.reg, 1, 2, 2, 2);
    assert_ok(presence_leave(f.reg, "a", "c2"));
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_ok(presence_leave(f.reg, "a", "c3"));
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

/* One churn cycle of the memory test: clients with ids, user ids,
 * channel names and conn_info of many lengths (some conn_info over 256
 * bytes), a third of the memberships with a chan_info (some changed or
 * dropped by presence_update), checked through a query, then all gone. */
static void churn_cycle(presence_registry *reg, int clients,
                        long long *peak, test_alloc *alloc)
{
    enum { CHANNELS = 97 };
    char id[64], user[64], channel[64], info[400], chan_info[32];
    for (int i = 0; i < clients; i++) {
        snprintf(id, sizeof id, "client-%0*d", 1 + i % 40, i);
        snprintf(user, sizeof user, "user-%0*d", 1 + i % 23, i / 3);
        size_t info_len = (size_t)(i % 7 == 0 ? 300 + i % 90 : i % 50);
        memset(info, 'a' + i % 26, info_len);
        for (int k = 0; k < 3; k++) {
            snprintf(channel, sizeof channel, "room-%0*d", 1 + k * 9,
                     (i + k * 31) % CHANNELS);
            int ci = snprintf(chan_info, sizeof chan_info, "ci-%d-%d", i, k);
            bool with = (i + k) % 3 == 0;
            assert_ok(presence_join(reg, channel, id, user, info, info_len,
                                    with ? chan_info : NULL,
                                    with ? (size_t)ci : 0));
            if (k == 1 && i % 5 == 0) { /* set, change or drop it */
                assert_ok(presence_update(reg, channel, id,
                                          i % 2 == 0 ? "new" : NULL,
                                          i % 2 == 0 ? 3 : 0));
            }
        }
    }
    long long now = atomic_load(&alloc->live_bytes);
    if (now > *peak) {
        *peak = now;
    }
    /* Every member reads back whole, whatever block it landed in. */
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(reg, "room-5", presence_trusted(), &snap));
    assert_true(snap->count > 0);
    for (size_t m = 0; m < snap->count; m++) {
        const presence_member *mb = &snap->members[m];
        int i = atoi(strchr(mb->client_id, '-') + 1);
        snprintf(user, sizeof user, "user-%0*d", 1 + i % 23, i / 3);
        assert_string_equal(mb->user_id, user);
        size_t info_len = (size_t)(i % 7 == 0 ? 300 + i % 90 : i % 50);
        assert_int_equal(mb->conn_info_len, info_len);
        for (size_t b = 0; b < info_len; b++) {
            assert_int_equal(((const unsigned char *)mb->conn_info)[b],
                             'a' + i % 26);
        }
        if (i % 3 == 0) { /* "room-5" is each member's channel k = 0 */
            int ci = snprintf(chan_info, sizeof chan_info, "ci-%d-0", i);
            assert_int_equal(mb->chan_info_len, (size_t)ci);
            assert_memory_equal(mb->chan_info, chan_info, (size_t)ci);
        } else {
            assert_null(mb->chan_info);
        }
    }
    presence_snapshot_free(snap);
    for (int i = 0; i < clients; i++) {
        snprintf(id, sizeof id, "client-%0*d", 1 + i % 40, i);
        size_t left = 0;
        assert_ok(presence_disconnect(reg, id, &left));
        assert_int_equal(left, 3);
    }
    assert_counts(reg, 0, 0, 0, 0);
}

/* Memory goes back after a peak: what stays (tables' and slabs' fixed
 * parts) does not grow with the peak, nor with a second one. Records come
 * from pools of chunks, and emptied chunks return to the allocator. */
static void test_memory_returns_after_peak(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    long long peak = 0;
    churn_cycle(f.reg, 2000, &peak, &f.alloc);
    long long after_small = atomic_load(&f.alloc.live_bytes);
    long long small_peak = peak;
    /* 75,000 memberships: past one page of a slab's directory (65,536
     * blocks) when a single-threaded registry has them in one shard. */
    churn_cycle(f.reg, 25000, &peak, &f.alloc);
    long long after_big = atomic_load(&f.alloc.live_bytes);
    churn_cycle(f.reg, 25000, &peak, &f.alloc);
    assert_true(peak > 3 * small_peak); /* the second peak was much higher */
    assert_int_equal(after_big, after_small);
    assert_int_equal(atomic_load(&f.alloc.live_bytes), after_big);
    fixture_close(&f);
}

/* Freeing a registry with members produces no event. */
static void test_free_is_silent(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_ok(join_simple(f.reg, "b", "c2", "u2"));
    recorder_clear(&f.rec);
    fixture_close(&f); /* asserts no leak */
    assert_int_equal(f.rec.count, 0);
}

/* A program built against an older header passes smaller structs: the
 * fields it does not know get their defaults. */
static void test_older_struct_sizes(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    size_t old = offsetof(presence_config, hash_seed);
    presence_config_init_sized(&f.config, old);
    test_alloc_install(&f.alloc, &f.config, false);
    f.config.clock = fake_clock_read;
    f.config.clock_user_data = &f.clock;
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    assert_stats(f.reg, "a", 1, 1);

    presence_namespace_options o;
    memset(&o, 0x7f, sizeof(o));
    presence_namespace_options_init_sized(
        &o, offsetof(presence_namespace_options, max_members));
    o.max_members = 1; /* beyond the old struct: not read */
    o.ttl_ms = 500;
    assert_ok(presence_namespace_set(f.reg, "old", &o));
    presence_namespace_options got;
    presence_namespace_options_init(&got);
    assert_ok(presence_namespace_get(f.reg, "old", &got));
    assert_true(got.presence);
    assert_true(got.join_leave);
    assert_int_equal(got.ttl_ms, 500);
    assert_int_equal(got.max_members, 0);
    assert_ok(join_simple(f.reg, "old:x", "c1", "u1"));
    assert_ok(join_simple(f.reg, "old:x", "c2", "u2"));
    fixture_close(&f);
}

/* Two registries are independent. */
static void test_two_registries(void **state)
{
    (void)state;
    fixture a, b;
    fixture_config(&a);
    fixture_config(&b);
    fixture_open(&a);
    fixture_open(&b);
    assert_ok(join_simple(a.reg, "x", "c1", "u1"));
    assert_counts(a.reg, 1, 1, 1, 1);
    assert_counts(b.reg, 0, 0, 0, 0);
    assert_int_equal(a.rec.count, 2);
    assert_int_equal(b.rec.count, 0);
    fixture_close(&b);
    fixture_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_namespace_options_defaults),
        cmocka_unit_test(test_new_free_defaults),
        cmocka_unit_test(test_default_clock_is_monotonic_ms),
        cmocka_unit_test(test_new_with_config),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_new_null_out),
        cmocka_unit_test(test_new_bad_separator),
        cmocka_unit_test(test_new_zero_limits),
        cmocka_unit_test(test_new_negative_ttl),
        cmocka_unit_test(test_new_partial_allocator),
        cmocka_unit_test(test_allocator_without_realloc),
        cmocka_unit_test(test_single_threaded),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_error_strings),
        cmocka_unit_test(test_error_strings_unknown),
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_two_registries),
        cmocka_unit_test(test_free_is_silent),
        cmocka_unit_test(test_memory_returns_after_peak),
        cmocka_unit_test(test_older_struct_sizes),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
