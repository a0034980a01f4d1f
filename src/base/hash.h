/*
 * Hashing: a seeded hash for ids and names, the rule of the library's
 * open-addressing tables, and a hint to load a cache line early.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_BASE_HASH_H
#define PRESENCE_BASE_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

uint64_t presence__hash64(uint64_t seed, const void *data, size_t len);
/* In one pass over a NUL-terminated name: its length (*len) and
 * presence__hash64() of it (*hash); 0, or -1 for a byte below 0x20 or
 * 0x7f, -2 for a name longer than max. */
int presence__scan_name(uint64_t seed, const char *name, size_t max,
                        size_t *len, uint64_t *hash);
/* The same scan without the hash: the length of a name, for names that
 * are checked but not looked up. */
int presence__scan_length(const char *name, size_t max, size_t *len);
unsigned presence__hash32(uint64_t seed, const void *data, size_t len);
uint64_t presence__random_seed(const void *salt);
/* 64 random bits from the kernel (getrandom), or presence__random_seed()
 * when it has none to give. */
uint64_t presence__random64(void);
/* A bijective scramble of 64 bits: distinct inputs, distinct outputs. */
uint64_t presence__mix64(uint64_t x);

/* Backward-shift deletion in a table with linear probing that wraps
 * around: when slot `hole` empties, the entry at j (the next in its run),
 * whose home slot is `home`, stays where it is if that home lies
 * cyclically in (hole, j]; otherwise it moves into the hole. */
static inline bool presence__probe_stays(size_t hole, size_t j, size_t home)
{
    return hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
}

/* Inline a hot function into each of its callers (no effect on
 * behaviour). */
#if defined(__GNUC__) || defined(__clang__)
#define PRESENCE__ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define PRESENCE__ALWAYS_INLINE inline
#endif

/* Kept out of the entry points that PRESENCE__FLATTEN inlines into: a
 * big function the common path calls now and then (growth, a channel's
 * first and last member, features off by default). COLD, for what the
 * common path never calls (grace), is also laid out away from the hot
 * code and optimised for size. */
#if defined(__GNUC__) || defined(__clang__)
#define PRESENCE__NOINLINE __attribute__((noinline))
#define PRESENCE__COLD __attribute__((noinline, cold))
#else
#define PRESENCE__NOINLINE
#define PRESENCE__COLD
#endif

/* Inline every call a short, hot entry point makes (no effect on
 * behaviour). */
#if defined(__GNUC__) || defined(__clang__)
#define PRESENCE__FLATTEN __attribute__((flatten))
#else
#define PRESENCE__FLATTEN
#endif

/* A cache line: what a prefetch loads, and what the client pools place
 * records by (pool.h) so that a scan loads as few as it can. */
#define PRESENCE__LINE_BYTES 64u

/* A hint to start loading a cache line (no effect on behaviour). */
#if defined(__GNUC__) || defined(__clang__)
#define PRESENCE__PREFETCH(p) __builtin_prefetch(p)
#else
#define PRESENCE__PREFETCH(p) ((void)(p))
#endif
/* The line `bytes` past p, which may lie past p's object (a record's
 * last line, the slots after a run): the address is made as an integer,
 * since pointer arithmetic may not leave its object and a hint may point
 * anywhere. */
#define PRESENCE__PREFETCH_PAST(p, bytes)                                     \
    PRESENCE__PREFETCH((const void *)((uintptr_t)(const void *)(p) + (bytes)))

#endif
