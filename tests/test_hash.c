/*
 * The seeded name hash (src/base/hash.c), tested on its own: the one-pass
 * scan agrees with the hash of a known length at every length and
 * alignment, stops on the same bytes and limits as the name rules, and
 * spreads the workload's short sequential ids over a table's bits. The
 * inline byte compare (base/bytes.h) holds equal ranges equal and sees a
 * flipped bit in any byte, and its copy copies every byte, at every length
 * up to 40, touching nothing outside either range (allocated to their
 * exact length, for AddressSanitizer). Names that end on a page's last
 * byte, before an unmapped page, are scanned without a fault.
 * SPDX-License-Identifier: MIT
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/bytes.h"
#include "base/hash.h"

#define SEED 0x1234567887654321ULL

static void fill_name(char *buf, size_t len, unsigned salt)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (char)(0x20 + (salt * 31u + (unsigned)i * 7u) % 95u);
    }
    buf[len] = '\0';
}

static void test_scan_agrees_with_hash64(void **state)
{
    (void)state;
    char buf[160];
    for (size_t offset = 0; offset < 16; offset++) {
        for (size_t len = 0; len < 100; len++) {
            char *name = buf + offset;
            fill_name(name, len, (unsigned)(offset + len));
            size_t got_len = 999;
            uint64_t got_hash = 0;
            assert_int_equal(presence__scan_name(SEED, name, 1000, &got_len,
                                                 &got_hash),
                             0);
            assert_int_equal(got_len, len);
            assert_true(got_hash == presence__hash64(SEED, name, len));
        }
    }
}

static void test_scan_stops_on_bad_bytes_and_limits(void **state)
{
    (void)state;
    char buf[64];
    size_t len;
    uint64_t hash;
    for (size_t at = 0; at < 40; at++) {
        fill_name(buf, 40, 3);
        buf[at] = 0x1f;
        assert_int_equal(presence__scan_name(SEED, buf, 100, &len, &hash), -1);
        buf[at] = 0x7f;
        assert_int_equal(presence__scan_name(SEED, buf, 100, &len, &hash), -1);
        /* A bad byte past the limit: the limit is what is reported. */
        assert_int_equal(presence__scan_name(SEED, buf, at > 0 ? at - 1 : 0,
                                             &len, &hash),
                         at > 0 ? -2 : -1);
    }
    for (size_t n = 0; n < 40; n++) {
        fill_name(buf, n, 5);
        for (size_t max = 0; max < 42; max++) {
            int rc = presence__scan_name(SEED, buf, max, &len, &hash);
            assert_int_equal(rc, n > max ? -2 : 0);
            if (rc == 0) {
                assert_int_equal(len, n);
            }
        }
    }
}

/* Names that end just before an unmapped page: the scans read no byte of
 * it (whole words and blocks are read only inside the name's page), and
 * agree with hash64 and with each other. */
static void test_scan_at_the_end_of_a_page(void **state)
{
    (void)state;
    long page = sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(map != MAP_FAILED);
    assert_int_equal(mprotect(map + page, (size_t)page, PROT_NONE), 0);
    for (size_t len = 0; len < 40; len++) {
        /* The NUL on the page's last byte. */
        char *name = map + page - 1 - len;
        fill_name(name, len, (unsigned)len);
        size_t got = 999, got_b = 999;
        uint64_t hash = 0;
        assert_int_equal(presence__scan_name(SEED, name, 1000, &got, &hash), 0);
        assert_int_equal(got, len);
        assert_true(hash == presence__hash64(SEED, name, len));
        assert_int_equal(presence__scan_length(name, 1000, &got_b), 0);
        assert_int_equal(got_b, len);
        assert_int_equal(presence__scan_name(SEED, name, len > 0 ? len - 1 : 0,
                                             &got, &hash),
                         len > 0 ? -2 : 0);
        if (len > 0) { /* its last byte bad, the NUL still after it */
            map[page - 2] = 0x7f;
            assert_int_equal(presence__scan_name(SEED, name, 1000, &got, &hash),
                             -1);
            assert_int_equal(presence__scan_length(name, 1000, &got_b), -1);
        }
    }
    munmap(map, (size_t)page * 2);
}

/* The length-only scan stops where the hashing scan does. */
static void test_scan_length_agrees(void **state)
{
    (void)state;
    char buf[80];
    for (size_t n = 0; n < 40; n++) {
        for (size_t bad = 0; bad <= n; bad++) {
            fill_name(buf, n, 7);
            if (bad < n) {
                buf[bad] = bad % 2 ? 0x7f : 0x01;
            }
            for (size_t max = 0; max < 42; max += 3) {
                size_t len_a = 0, len_b = 0;
                uint64_t hash;
                int a = presence__scan_name(SEED, buf, max, &len_a, &hash);
                int b = presence__scan_length(buf, max, &len_b);
                assert_int_equal(a, b);
                assert_int_equal(len_a, len_b);
            }
        }
    }
}

static void test_names_differ_by_any_byte_seed_or_length(void **state)
{
    (void)state;
    char a[40], b[40];
    fill_name(a, 33, 9);
    uint64_t base = presence__hash64(SEED, a, 33);
    assert_true(base != presence__hash64(SEED + 1, a, 33));
    for (size_t i = 0; i < 33; i++) {
        memcpy(b, a, sizeof a);
        b[i] ^= 1;
        assert_true(presence__hash64(SEED, b, 33) != base);
    }
    /* Zero bytes of padding are told apart by the length. */
    char z[16] = {0};
    assert_true(presence__hash64(SEED, z, 3) != presence__hash64(SEED, z, 4));
    assert_true(presence__hash64(SEED, z, 15) != presence__hash64(SEED, z, 16));
}

/* The workload's ids ("c0", "c1", ...) into 2^12 buckets by the top bits
 * (the member sets' homes) and by the low bits (the indexes' homes): no
 * bucket far above the mean of 24.4. */
static void test_sequential_ids_spread(void **state)
{
    (void)state;
    enum { IDS = 100000, BITS = 12 };
    unsigned *top = calloc(1u << BITS, sizeof *top);
    unsigned *low = calloc(1u << BITS, sizeof *low);
    assert_non_null(top);
    assert_non_null(low);
    char name[32];
    for (unsigned i = 0; i < IDS; i++) {
        int n = snprintf(name, sizeof name, "c%u", i);
        uint64_t h = presence__hash64(SEED, name, (size_t)n);
        top[h >> (64 - BITS)]++;
        low[(h >> 32) & ((1u << BITS) - 1)]++;
    }
    unsigned worst_top = 0, worst_low = 0;
    for (unsigned i = 0; i < (1u << BITS); i++) {
        worst_top = top[i] > worst_top ? top[i] : worst_top;
        worst_low = low[i] > worst_low ? low[i] : worst_low;
    }
    /* A uniform spread gives a worst bucket of about 42; a weak mix of
     * sequential ids gives hundreds. */
    assert_true(worst_top < 60);
    assert_true(worst_low < 60);
    free(top);
    free(low);
}

/* len bytes of their own (one for 0), so that AddressSanitizer reports a
 * byte read or written past them. */
static unsigned char *exact_bytes(size_t len)
{
    unsigned char *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    return p;
}

static void test_bytes_equal_sees_every_byte(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 40; len++) {
        unsigned char *a = exact_bytes(len);
        unsigned char *b = exact_bytes(len);
        for (size_t i = 0; i < len; i++) {
            a[i] = b[i] = (unsigned char)(i * 37u + len);
        }
        assert_true(presence__bytes_equal(a, b, len));
        for (size_t i = 0; i < len; i++) {
            for (unsigned bit = 0; bit < 8; bit++) {
                b[i] ^= (unsigned char)(1u << bit);
                assert_false(presence__bytes_equal(a, b, len));
                assert_false(presence__bytes_equal(b, a, len));
                b[i] ^= (unsigned char)(1u << bit);
            }
        }
        assert_true(presence__bytes_equal(b, a, len));
        free(a);
        free(b);
    }
}

static void test_bytes_copy_copies_every_byte(void **state)
{
    (void)state;
    for (size_t len = 0; len <= 80; len++) { /* every way it copies */
        unsigned char *from = exact_bytes(len);
        unsigned char *to = exact_bytes(len);
        for (size_t i = 0; i < len; i++) {
            from[i] = (unsigned char)(i * 91u + len + 1);
            to[i] = (unsigned char)~from[i];
        }
        presence__bytes_copy(to, from, len);
        assert_true(len == 0 || memcmp(to, from, len) == 0);
        free(from);
        free(to);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_agrees_with_hash64),
        cmocka_unit_test(test_scan_stops_on_bad_bytes_and_limits),
        cmocka_unit_test(test_scan_at_the_end_of_a_page),
        cmocka_unit_test(test_scan_length_agrees),
        cmocka_unit_test(test_names_differ_by_any_byte_seed_or_length),
        cmocka_unit_test(test_sequential_ids_spread),
        cmocka_unit_test(test_bytes_equal_sees_every_byte),
        cmocka_unit_test(test_bytes_copy_copies_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
