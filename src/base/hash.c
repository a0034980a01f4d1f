/*
 * A seeded hash for ids and names. Short keys dominate (ids of a few dozen
 * bytes), so it reads 8 bytes at a time and finishes with a strong mix;
 * the seed keeps an attacker who picks ids from aiming at one bucket.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/hash.h"

#define MUL1 0x9e3779b97f4a7c15ULL
#define MUL2 0xbf58476d1ce4e5b9ULL
#define MUL3 0x94d049bb133111ebULL

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= MUL2;
    x ^= x >> 27;
    x *= MUL3;
    x ^= x >> 31;
    return x;
}

static uint64_t read64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The state after one 8-byte chunk. */
static inline uint64_t step(uint64_t h, uint64_t chunk)
{
    h = (h ^ mix(chunk + MUL1)) * MUL2;
    return h ^ (h >> 29);
}

/* The rest of a hash: chunks from p on, the tail, the whole length. */
static uint64_t finish(uint64_t h, const unsigned char *p, size_t rest,
                       size_t total)
{
    while (rest >= 8) {
        h = step(h, read64(p));
        p += 8;
        rest -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < rest; i++) {
        tail |= (uint64_t)p[i] << (8 * i);
    }
    h = (h ^ mix(tail + rest)) * MUL3;
    return mix(h ^ (total * MUL1));
}

uint64_t presence__hash64(uint64_t seed, const void *data, size_t len)
{
    return finish(seed, data, len, len);
}

/* Bytes of w below 0x20 (NUL included) or equal to 0x7f: nonzero when
 * there is one; the lowest flagged byte is the first such byte (the
 * borrow of the subtraction runs only upwards). */
static inline uint64_t special_bytes(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL;
    const uint64_t highs = 0x8080808080808080ULL;
    uint64_t below = (w - ones * 0x20) & ~w;
    uint64_t del = w ^ (ones * 0x7f);
    uint64_t is_del = (del - ones) & ~del;
    return (below | is_del) & highs;
}

/* The byte-at-a-time scan, from n on with the state h after n bytes. */
static int scan_bytes(const unsigned char *p, size_t n, uint64_t h, size_t max,
                      size_t *len, uint64_t *hash)
{
    size_t end = n;
    for (;; end++) {
        unsigned char c = p[end];
        if (c == '\0') {
            break;
        }
        if (c < 0x20 || c == 0x7f) {
            return -1; /* a bad byte */
        }
        if (end >= max) {
            return -2; /* past the limit */
        }
    }
    *len = end;
    *hash = finish(h, p + n, end - n, end);
    return 0;
}

/*
 * The name is read 8 bytes at a time, also past its end when it ends
 * inside a word: such a read stays inside the page (the address is
 * checked first), so it cannot fault, and the bytes after the end only
 * decide where to stop. The sanitizers would report those bytes, so they
 * do not watch this function; the bytes it takes are checked by it.
 */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
__attribute__((no_sanitize("address", "thread")))
#endif
int presence__scan_name(uint64_t seed, const char *name, size_t max,
                        size_t *len, uint64_t *hash)
{
    const unsigned char *p = (const unsigned char *)name;
    uint64_t h = seed;
    size_t n = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ &&  \
    (defined(__GNUC__) || defined(__clang__))
    /* A plain load, never a call to memcpy (which a sanitizer checks). */
    typedef uint64_t __attribute__((may_alias, aligned(1))) loose64;
    while (((uintptr_t)(p + n) & 4095u) <= 4096u - 8u) {
        uint64_t w = *(const loose64 *)(const void *)(p + n);
        uint64_t s = special_bytes(w);
        if (s == 0) { /* eight ordinary bytes */
            if (n + 8 > max) {
                return -2;
            }
            h = step(h, w);
            n += 8;
            continue;
        }
        size_t k = (size_t)__builtin_ctzll(s) / 8; /* the first special */
        if (n + k > max) {
            return -2; /* an ordinary byte past the limit comes first */
        }
        if (p[n + k] != '\0') {
            return -1;
        }
        uint64_t tail = k == 0 ? 0 : w & (~0ULL >> (64 - 8 * k));
        *len = n + k;
        h = (h ^ mix(tail + k)) * MUL3;
        *hash = mix(h ^ (*len * MUL1));
        return 0;
    }
#endif
    return scan_bytes(p, n, h, max, len, hash);
}

unsigned presence__hash32(uint64_t seed, const void *data, size_t len)
{
    return (unsigned)(presence__hash64(seed, data, len) >> 32);
}

uint64_t presence__random_seed(const void *salt)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
    x ^= (uint64_t)(uintptr_t)salt;
    x ^= (uint64_t)(uintptr_t)&ts;
    uint64_t seed = mix(x + MUL1);
    return seed != 0 ? seed : MUL1;
}

uint64_t presence__random64(void)
{
    uint64_t x;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) == (ssize_t)sizeof x) {
        return x;
    }
    return presence__random_seed(&x);
}

uint64_t presence__mix64(uint64_t x)
{
    return mix(x);
}
