/*
 * The cluster's wire encoding (src/cluster/codec.c): what a node writes,
 * the others must read back exactly, and bytes that are not what a node
 * writes must be refused, never read past.
 *
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster_internal.h"

/* The buffers grow through cmocka's allocator: a leak fails the test. A
 * budget, when set, makes the allocations past it fail. */
static long alloc_budget = -1;

static void *t_malloc(size_t size, void *ud)
{
    (void)ud;
    if (alloc_budget == 0) {
        return NULL;
    }
    if (alloc_budget > 0) {
        alloc_budget--;
    }
    return test_malloc(size);
}

static void t_free(void *p, size_t size, void *ud)
{
    (void)size;
    (void)ud;
    test_free(p);
}

/* No realloc_fn: the library copies through malloc_fn and free_fn. */
static const presence_allocator talloc = {t_malloc, NULL, t_free, NULL};

static bool span_is(const char *p, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(p, want, len) == 0;
}

static void test_join_round_trip(void **state)
{
    (void)state;
    struct presence__cl_buf b = {.alloc = &talloc};
    const char info[] = {'{', '\t', '\0', '}', '\n'};
    assert_true(presence__cl_encode_join(&b, "chat:1", "c1", "alice", info,
                                         sizeof info, "x", 1));
    size_t pos = 0;
    struct presence__cl_op op;
    assert_true(presence__cl_decode_op(b.data, b.len, &pos, &op));
    assert_int_equal(pos, b.len);
    assert_int_equal(op.kind, 'J');
    assert_true(span_is(op.channel, op.channel_len, "chat:1"));
    assert_true(span_is(op.client, op.client_len, "c1"));
    assert_true(span_is(op.member.user, op.member.user_len, "alice"));
    assert_int_equal(op.member.conn_info_len, sizeof info);
    assert_memory_equal(op.member.conn_info, info, sizeof info);
    assert_true(span_is(op.member.chan_info, op.member.chan_info_len, "x"));
    presence__cl_buf_free(&b);
}

static void test_ops_in_sequence_and_split(void **state)
{
    (void)state;
    struct presence__cl_buf b = {.alloc = &talloc};
    assert_true(presence__cl_encode_join(&b, "a", "c1", "", NULL, 0, NULL, 0));
    assert_true(
        presence__cl_encode_leave(&b, "a", "c1", PRESENCE_LEAVE_EXPIRED));
    size_t pos = 0;
    const char *field, *value;
    size_t field_len, value_len;
    assert_true(presence__cl_split_op(b.data, b.len, &pos, &field, &field_len,
                                      &value, &value_len));
    assert_true(span_is(field, field_len, "a\tc1"));
    assert_true(span_is(value, value_len, "0:0:0:"));
    struct presence__cl_member m;
    assert_true(presence__cl_decode_member(value, value_len, &m));
    assert_int_equal(m.user_len, 0);
    assert_true(presence__cl_split_op(b.data, b.len, &pos, &field, &field_len,
                                      &value, &value_len));
    assert_true(span_is(field, field_len, "a\tc1"));
    assert_null(value);
    assert_int_equal(pos, b.len);
    size_t p2 = 0;
    struct presence__cl_op op;
    assert_true(presence__cl_decode_op(b.data, b.len, &p2, &op));
    assert_true(presence__cl_decode_op(b.data, b.len, &p2, &op));
    assert_int_equal(op.kind, 'L');
    assert_int_equal(op.reason, PRESENCE_LEAVE_EXPIRED);
    assert_false(
        presence__cl_decode_op(b.data, b.len, &p2, &op)); /* the end */
    presence__cl_buf_free(&b);
}

static void test_field_encoding(void **state)
{
    (void)state;
    struct presence__cl_buf b = {.alloc = &talloc};
    assert_true(presence__cl_encode_field(&b, "room", "client-7"));
    const char *ch, *cl;
    size_t ch_len, cl_len;
    assert_true(
        presence__cl_decode_field(b.data, b.len, &ch, &ch_len, &cl, &cl_len));
    assert_true(span_is(ch, ch_len, "room"));
    assert_true(span_is(cl, cl_len, "client-7"));
    assert_false(
        presence__cl_decode_field("room", 4, &ch, &ch_len, &cl, &cl_len));
    assert_false(
        presence__cl_decode_field("\tc", 2, &ch, &ch_len, &cl, &cl_len));
    assert_false(
        presence__cl_decode_field("r\t", 2, &ch, &ch_len, &cl, &cl_len));
    presence__cl_buf_free(&b);
}

/* Every prefix of a valid op is refused, and so are these. */
static void test_malformed_refused(void **state)
{
    (void)state;
    struct presence__cl_buf b = {.alloc = &talloc};
    assert_true(
        presence__cl_encode_join(&b, "chan", "cli", "u", "ci", 2, "xi", 2));
    for (size_t len = 0; len < b.len; len++) {
        size_t pos = 0;
        struct presence__cl_op op;
        assert_false(presence__cl_decode_op(b.data, len, &pos, &op));
    }
    static const char *bad[] = {
        "X4:a\tb1:u0:0:",        /* unknown kind */
        "J2:a\tb1:u0:0:",        /* the field ends at the tab */
        "J4:ab1:u0:0:",          /* a field without a tab */
        "J3:a\tb1:u0:0",         /* the last netstring lacks its colon */
        "J4:a\tb99999999999999999999:u", /* length overflows */
        "L4:a\tb",               /* leave without a reason digit */
        "Lx4:a\tb",              /* reason not a digit */
        "J:a\tb",                /* no digits */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t pos = 0;
        struct presence__cl_op op;
        assert_false(
            presence__cl_decode_op(bad[i], strlen(bad[i]), &pos, &op));
    }
    struct presence__cl_member m;
    assert_false(
        presence__cl_decode_member("1:u0:0:x", 8, &m)); /* trailing byte */
    assert_false(
        presence__cl_encode_leave(&b, "a", "b", 10)); /* no such digit */
    presence__cl_buf_free(&b);
}

/* A buffer that cannot grow refuses the write and keeps what it held. */
static void test_growth_failure_keeps_the_buffer(void **state)
{
    (void)state;
    struct presence__cl_buf b = {.alloc = &talloc};
    assert_true(presence__cl_encode_field(&b, "room", "c1"));
    size_t len = b.len;
    char big[600];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\0';
    alloc_budget = 0;
    assert_false(presence__cl_encode_field(&b, big, "c2"));
    assert_true(b.len >= len);
    b.len = len; /* the caller's part: drop the half-written op */
    assert_memory_equal(b.data, "room\tc1", len);
    assert_null(presence__cl_strndup(&talloc, "abc", 3));
    alloc_budget = -1;
    assert_true(presence__cl_encode_field(&b, big, "c2"));
    presence__cl_buf_free(&b);
    assert_null(b.data);
    presence_allocator half = {t_malloc, NULL, NULL, NULL};
    presence_allocator out;
    assert_false(presence__cl_alloc_init(&out, &half));
    assert_true(presence__cl_alloc_init(&out, NULL));
    assert_null(presence__cl_malloc(&out, 0));
    assert_null(presence__cl_calloc(&out, SIZE_MAX / 2, 4)); /* overflow */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_round_trip),
        cmocka_unit_test(test_ops_in_sequence_and_split),
        cmocka_unit_test(test_field_encoding),
        cmocka_unit_test(test_malformed_refused),
        cmocka_unit_test(test_growth_failure_keeps_the_buffer),
    };
    return cmocka_run_group_tests_name("cluster_codec", tests, NULL, NULL);
}
