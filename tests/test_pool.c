/*
 * The record pool (src/containers/pool.c), tested on its own: records keep
 * their bytes whatever is made and freed around them; a lined pool starts
 * every record so that its hot byte starts a cache line, with blocks of
 * whole lines; chunks go back to the allocator when their last record
 * does; and a failed allocation gives NULL and leaves the pool usable.
 * Under AddressSanitizer every record is allocated alone (pool.c), so the
 * placement checks are skipped there.
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "containers/pool.h"
#include "containers/slab.h" /* PRESENCE__SLAB_BYPASS */
#include "counted_alloc.h"

#define LINE 64u
#define RECORDS 600u

struct record {
    unsigned char *p;
    size_t size;
};

/* Every byte after the pool's head says which record it is in. */
static unsigned char mark_of(size_t i, size_t at)
{
    return (unsigned char)(i * 31u + at * 7u + 1u);
}

static void fill(const struct record *r, size_t i)
{
    for (size_t at = sizeof(struct presence__pool_block); at < r->size; at++) {
        r->p[at] = mark_of(i, at);
    }
}

static void check(const struct record *r, size_t i)
{
    for (size_t at = sizeof(struct presence__pool_block); at < r->size; at++) {
        assert_int_equal(r->p[at], mark_of(i, at));
    }
}

/* Sizes from the smallest record past the largest pooled block. */
static size_t size_for(size_t i, size_t smallest)
{
    size_t span = PRESENCE__POOL_MAX_BLOCK + 40u - smallest;
    return smallest + (i * 37u) % span;
}

/* Make RECORDS records, free every third and make them again, free the
 * rest: each keeps its bytes throughout, and `placed` holds for each
 * pooled one. All memory goes back. */
static void exercise(size_t hot, size_t smallest,
                     void (*placed)(const struct record *r, size_t hot))
{
    struct counted c = {0, false};
    presence_allocator alloc = counted_allocator(&c);
    struct presence__pool pool;
    presence__pool_init(&pool, false, hot);
    struct record *rs = calloc(RECORDS, sizeof *rs);
    assert_non_null(rs);
    for (size_t i = 0; i < RECORDS; i++) {
        rs[i].size = size_for(i, smallest);
        rs[i].p = presence__pool_alloc(&alloc, &pool, rs[i].size);
        assert_non_null(rs[i].p);
        fill(&rs[i], i);
    }
    for (size_t i = 0; i < RECORDS; i += 3) {
        presence__pool_free(&alloc, rs[i].p, rs[i].size);
    }
    for (size_t i = 0; i < RECORDS; i += 3) {
        rs[i].p = presence__pool_alloc(&alloc, &pool, rs[i].size);
        assert_non_null(rs[i].p);
        fill(&rs[i], i);
    }
    for (size_t i = 0; i < RECORDS; i++) {
        check(&rs[i], i);
        struct presence__pool_block head;
        memcpy(&head, rs[i].p, sizeof head);
        bool pooled = rs[i].size <= PRESENCE__POOL_MAX_BLOCK;
        if (!PRESENCE__SLAB_BYPASS) {
            assert_int_equal(head.offset != 0, pooled);
        }
        assert_int_equal((uintptr_t)rs[i].p % 8u, 0);
        if (!PRESENCE__SLAB_BYPASS && pooled && placed != NULL) {
            placed(&rs[i], hot);
        }
    }
    for (size_t i = 0; i < RECORDS; i++) {
        presence__pool_free(&alloc, rs[i].p, rs[i].size);
    }
    assert_int_equal(c.live, 0); /* every chunk went back */
    presence__pool_destroy(&alloc, &pool);
    free(rs);
}

/* A record whose part from `hot` (rounded down to 8 bytes) on fits a
 * line starts it on one; a longer one is only 8-byte aligned. */
static void hot_starts_a_line(const struct record *r, size_t hot)
{
    size_t line_at = hot / 8u * 8u;
    if (r->size <= line_at + LINE) {
        assert_int_equal(((uintptr_t)r->p + line_at) % LINE, 0);
    }
}

static void test_packed_records_keep_their_bytes(void **state)
{
    (void)state;
    exercise(PRESENCE__POOL_PACKED, sizeof(struct presence__pool_block), NULL);
}

static void test_lined_records_start_their_hot_byte_on_a_line(void **state)
{
    (void)state;
    /* A client's (52: its line starts at 48, records 8-byte aligned), a
     * line's start, a line itself, past it, and 8-aligned already. */
    const size_t hots[] = {52, 0, 64, 100, 63, 40};
    for (size_t h = 0; h < sizeof hots / sizeof hots[0]; h++) {
        size_t smallest = hots[h] + 1; /* holds its hot byte and head */
        if (smallest < sizeof(struct presence__pool_block)) {
            smallest = sizeof(struct presence__pool_block);
        }
        exercise(hots[h], smallest, hot_starts_a_line);
    }
}

static void test_lined_blocks_take_whole_lines(void **state)
{
    (void)state;
    if (PRESENCE__SLAB_BYPASS) {
        skip();
    }
    struct counted c = {0, false};
    presence_allocator alloc = counted_allocator(&c);
    struct presence__pool lined, packed;
    presence__pool_init(&lined, false, 52);
    presence__pool_init(&packed, false, PRESENCE__POOL_PACKED);
    /* A client with a 32-byte conn_info: 111 bytes, 128 lined, 112
     * packed; fresh blocks of a chunk lie one after another. One with a
     * handle's pointer too (119: its part from 48 on takes two lines
     * either way) is packed in a lined pool as well. */
    unsigned char *a = presence__pool_alloc(&alloc, &lined, 111);
    unsigned char *b = presence__pool_alloc(&alloc, &lined, 111);
    unsigned char *x = presence__pool_alloc(&alloc, &packed, 111);
    unsigned char *y = presence__pool_alloc(&alloc, &packed, 111);
    assert_true(a != NULL && b != NULL && x != NULL && y != NULL);
    assert_int_equal(b - a, 128);
    assert_int_equal(y - x, 112);
    unsigned char *h = presence__pool_alloc(&alloc, &lined, 119);
    unsigned char *h2 = presence__pool_alloc(&alloc, &lined, 119);
    assert_true(h != NULL && h2 != NULL);
    assert_int_equal(h2 - h, 120);
    /* A size a line fits, and one just past it. */
    unsigned char *one = presence__pool_alloc(&alloc, &lined, 64);
    unsigned char *one2 = presence__pool_alloc(&alloc, &lined, 64);
    assert_int_equal(one2 - one, 64);
    presence__pool_free(&alloc, a, 111);
    presence__pool_free(&alloc, b, 111);
    presence__pool_free(&alloc, x, 111);
    presence__pool_free(&alloc, y, 111);
    presence__pool_free(&alloc, h, 119);
    presence__pool_free(&alloc, h2, 119);
    presence__pool_free(&alloc, one, 64);
    presence__pool_free(&alloc, one2, 64);
    assert_int_equal(c.live, 0);
    presence__pool_destroy(&alloc, &lined);
    presence__pool_destroy(&alloc, &packed);
}

static void test_nomem_gives_null_and_pool_stays_usable(void **state)
{
    (void)state;
    const size_t hots[] = {PRESENCE__POOL_PACKED, 52};
    for (size_t h = 0; h < 2; h++) {
        struct counted c = {0, true};
        presence_allocator alloc = counted_allocator(&c);
        struct presence__pool pool;
        presence__pool_init(&pool, false, hots[h]);
        assert_null(presence__pool_alloc(&alloc, &pool, 100));
        assert_null(presence__pool_alloc(&alloc, &pool, 1000)); /* alone */
        assert_int_equal(c.live, 0);
        c.fail = false;
        unsigned char *first = presence__pool_alloc(&alloc, &pool, 100);
        assert_non_null(first);
        long long live = c.live;
        /* A chunk with room needs no allocation, so failing ones do not
         * matter (under ASan each record is allocated alone). */
        c.fail = true;
        unsigned char *second = presence__pool_alloc(&alloc, &pool, 100);
        if (PRESENCE__SLAB_BYPASS) {
            assert_null(second);
        } else {
            assert_non_null(second);
            assert_int_equal(c.live, live);
            presence__pool_free(&alloc, second, 100);
        }
        c.fail = false;
        presence__pool_free(&alloc, first, 100);
        assert_int_equal(c.live, 0);
        presence__pool_destroy(&alloc, &pool);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_records_keep_their_bytes),
        cmocka_unit_test(test_lined_records_start_their_hot_byte_on_a_line),
        cmocka_unit_test(test_lined_blocks_take_whole_lines),
        cmocka_unit_test(test_nomem_gives_null_and_pool_stays_usable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
