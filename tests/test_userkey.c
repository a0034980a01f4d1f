/*
 * The user key source (src/containers/userkey.c), tested on its own: keys
 * of live users never repeat, across shards' sources too; keys given back
 * are handed out again; when every key is back, the memory goes back; and
 * a failed allocation leaves the source as it was.
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "containers/userkey.h"
#include "counted_alloc.h"

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted copies have no two equal neighbours. */
static void assert_distinct(const uint32_t *keys, size_t n)
{
    uint32_t *sorted = malloc(n * sizeof *sorted);
    assert_non_null(sorted);
    memcpy(sorted, keys, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_u32);
    for (size_t i = 1; i < n; i++) {
        assert_true(sorted[i - 1] != sorted[i]);
    }
    free(sorted);
}

#define SHARDS 4u
#define PER_SHARD 5000u

static void test_keys_distinct_and_spread(void **state)
{
    (void)state;
    struct counted c = {0, false};
    presence_allocator alloc = counted_allocator(&c);
    struct presence__userkeys src[SHARDS];
    static uint32_t keys[SHARDS * PER_SHARD];
    for (uint32_t s = 0; s < SHARDS; s++) {
        presence__userkeys_init(&src[s], 0x9e3779b9u, s, SHARDS);
        for (uint32_t i = 0; i < PER_SHARD; i++) {
            assert_int_equal(presence__userkeys_take(&alloc, &src[s],
                                                     &keys[s * PER_SHARD + i]),
                             PRESENCE_OK);
        }
    }
    assert_distinct(keys, SHARDS * PER_SHARD);
    /* Spread: each of 16 home ranges (the top 4 bits) gets its share. */
    size_t per_range[16] = {0};
    for (size_t i = 0; i < SHARDS * PER_SHARD; i++) {
        per_range[keys[i] >> 28]++;
    }
    for (size_t r = 0; r < 16; r++) {
        assert_true(per_range[r] > SHARDS * PER_SHARD / 16 * 8 / 10);
        assert_true(per_range[r] < SHARDS * PER_SHARD / 16 * 12 / 10);
    }
    for (uint32_t s = 0; s < SHARDS; s++) {
        presence__userkeys_free(&alloc, &src[s]);
    }
    assert_int_equal(c.live, 0);
}

static void test_keys_reused_and_memory_back(void **state)
{
    (void)state;
    struct counted c = {0, false};
    presence_allocator alloc = counted_allocator(&c);
    struct presence__userkeys src;
    presence__userkeys_init(&src, 7, 0, 1);
    enum { N = 1000 };
    uint32_t keys[N + N / 2];
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(presence__userkeys_take(&alloc, &src, &keys[i]),
                         PRESENCE_OK);
    }
    /* Half go; as many come: the same keys again, no new one minted. */
    for (size_t i = 0; i < N; i += 2) {
        presence__userkeys_give(&alloc, &src, keys[i]);
    }
    uint32_t minted = src.minted;
    for (size_t i = 0; i < N / 2; i++) {
        assert_int_equal(presence__userkeys_take(&alloc, &src, &keys[N + i]),
                         PRESENCE_OK);
    }
    assert_int_equal(src.minted, minted);
    /* The live ones: the odd first keys and the reissued ones. */
    uint32_t live[N];
    size_t n = 0;
    for (size_t i = 1; i < N; i += 2) {
        live[n++] = keys[i];
    }
    for (size_t i = 0; i < N / 2; i++) {
        live[n++] = keys[N + i];
    }
    assert_distinct(live, n);
    assert_true(c.live > 0);
    for (size_t i = 0; i < n; i++) {
        presence__userkeys_give(&alloc, &src, live[i]);
    }
    assert_int_equal(c.live, 0); /* every key back: nothing kept */
    assert_int_equal(src.minted, 0);
    presence__userkeys_free(&alloc, &src);
}

static void test_nomem_leaves_source_unchanged(void **state)
{
    (void)state;
    struct counted c = {0, false};
    presence_allocator alloc = counted_allocator(&c);
    struct presence__userkeys src;
    presence__userkeys_init(&src, 1, 0, 1);
    uint32_t key;
    c.fail = true;
    assert_int_equal(presence__userkeys_take(&alloc, &src, &key),
                     PRESENCE_ERR_NOMEM);
    assert_int_equal(src.minted, 0);
    c.fail = false;
    /* Fill the first room, then fail the growth. */
    uint32_t first[64];
    size_t n = 0;
    do {
        assert_int_equal(presence__userkeys_take(&alloc, &src, &first[n]),
                         PRESENCE_OK);
        n++;
    } while (src.minted < src.spare_cap);
    c.fail = true;
    assert_int_equal(presence__userkeys_take(&alloc, &src, &key),
                     PRESENCE_ERR_NOMEM);
    assert_int_equal(src.minted, n);
    /* A key given back is handed out again without allocating. */
    presence__userkeys_give(&alloc, &src, first[0]);
    assert_int_equal(presence__userkeys_take(&alloc, &src, &key), PRESENCE_OK);
    assert_int_equal(key, first[0]);
    c.fail = false;
    presence__userkeys_free(&alloc, &src);
    assert_int_equal(c.live, 0);
}

/* Past the last number a source can mint: an error, not a repeat. */
static void test_numbers_run_out(void **state)
{
    (void)state;
    struct counted c = {0, false};
    presence_allocator alloc = counted_allocator(&c);
    struct presence__userkeys src;
    presence__userkeys_init(&src, 3, 2, 0x40000000u); /* 2, 2 + 2^30, ... */
    uint32_t keys[4];
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(presence__userkeys_take(&alloc, &src, &keys[i]),
                         PRESENCE_OK);
    }
    assert_distinct(keys, 4);
    uint32_t key;
    assert_int_equal(presence__userkeys_take(&alloc, &src, &key),
                     PRESENCE_ERR_NOMEM);
    presence__userkeys_give(&alloc, &src, keys[1]);
    assert_int_equal(presence__userkeys_take(&alloc, &src, &key), PRESENCE_OK);
    assert_int_equal(key, keys[1]);
    presence__userkeys_free(&alloc, &src);
    assert_int_equal(c.live, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_distinct_and_spread),
        cmocka_unit_test(test_keys_reused_and_memory_back),
        cmocka_unit_test(test_nomem_leaves_source_unchanged),
        cmocka_unit_test(test_numbers_run_out),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
