/*
 * A seeded hash for ids and names. Short keys dominate (ids of a few dozen
 * bytes), so it reads 16 bytes at a time and folds each block into the
 * state with one 64x64->128-bit multiply (the construction of wyhash);
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
/* Odd constants with well spread bits, xored into the fold's inputs so
 * that no plain input word is zero by accident. */
#define KEY_A 0xa0761d6478bd642fULL
#define KEY_B 0xe7037ed1a0b428dbULL

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= MUL2;
    x ^= x >> 27;
    x *= MUL3;
    x ^= x >> 31;
    return x;
}

/* The 128-bit product of a and b folded to 64 bits (high half xor low
 * half): every input bit reaches most output bits in one multiply. */
static inline uint64_t fold(uint64_t a, uint64_t b)
{
#if defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 u128; /* GCC and clang */
    u128 p = (u128)a * b;
    return (uint64_t)p ^ (uint64_t)(p >> 64);
#else
    uint64_t alo = a & 0xffffffffu, ahi = a >> 32;
    uint64_t blo = b & 0xffffffffu, bhi = b >> 32;
    uint64_t ll = alo * blo, lh = alo * bhi, hl = ahi * blo, hh = ahi * bhi;
    uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
    uint64_t lo = (ll & 0xffffffffu) | (mid << 32);
    uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    return lo ^ hi;
#endif
}

/*
 * The hash reads a name as little-endian 64-bit words: each full 16 bytes
 * fold into the state, and the last 0 to 15 bytes (zero-padded) and the
 * length finish it. A name of up to 15 bytes, most ids, costs two
 * multiplies.
 */
static inline uint64_t block(uint64_t state, uint64_t w0, uint64_t w1)
{
    return fold(w0 ^ KEY_A, w1 ^ state);
}

static inline uint64_t last(uint64_t state, uint64_t a, uint64_t b,
                            size_t len)
{
    return fold(block(state, a, b) ^ KEY_B, (uint64_t)len ^ MUL1);
}

/* n (< 8) bytes from p, as the low bytes of a little-endian word. */
static uint64_t partial_word(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static uint64_t full_word(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
#else
    return partial_word(p, 4) | partial_word(p + 4, 4) << 32;
#endif
}

uint64_t presence__hash64(uint64_t seed, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t state = seed;
    size_t rest = len;
    for (; rest >= 16; rest -= 16, p += 16) {
        state = block(state, full_word(p), full_word(p + 8));
    }
    uint64_t a = rest >= 8 ? full_word(p) : partial_word(p, rest);
    uint64_t b = rest > 8 ? partial_word(p + 8, rest - 8) : 0;
    return last(state, a, b, len);
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

/*
 * The word of a name at p: 8 bytes read at once where that read stays
 * inside p's page (so it cannot fault, even past the name's end: the
 * bytes after the end only decide where to stop), else byte by byte up to
 * the first NUL and zeros after it, which has the same first special
 * byte. The sanitizers would report the bytes read past the end, so they
 * do not watch this function; scan_name checks every byte it takes.
 */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
__attribute__((no_sanitize("address", "thread")))
#endif
static inline uint64_t name_word(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ &&  \
    (defined(__GNUC__) || defined(__clang__))
    if (((uintptr_t)p & 4095u) <= 4096u - 8u) {
        /* A plain load, never a call to memcpy (which a sanitizer checks). */
        typedef uint64_t __attribute__((may_alias, aligned(1))) loose64;
        return *(const loose64 *)(const void *)p;
    }
#endif
    uint64_t v = 0;
    for (size_t i = 0; i < 8 && p[i] != '\0'; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* The index of the lowest byte flagged in s (nonzero). */
static inline size_t first_flagged(uint64_t s)
{
#if defined(__GNUC__) || defined(__clang__)
    return (size_t)__builtin_ctzll(s) / 8;
#else
    size_t k = 0;
    for (; (s & 0x80u) == 0; s >>= 8) {
        k++;
    }
    return k;
#endif
}

/* Where the first special byte of word w at offset n ends the name:
 * 0 with the name's length, or the scan's error. */
static inline int name_end(const unsigned char *p, size_t n, uint64_t special,
                           size_t max, size_t *len)
{
    size_t k = first_flagged(special);
    if (n + k > max) {
        return -2; /* an ordinary byte past the limit comes first */
    }
    if (p[n + k] != '\0') {
        return -1;
    }
    *len = n + k;
    return 0;
}

/* The low k bytes of w (k < 8: the shift stays under 64). */
static inline uint64_t low_bytes(uint64_t w, size_t k)
{
    return w & ((1ULL << (8 * k)) - 1);
}

#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__)) && \
    defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#include <emmintrin.h>
#define HAVE_BLOCK16 1

/*
 * The first 16 bytes of a name at once, where they lie in p's page: most
 * names end there, and one SSE2 compare finds the end and any bad byte
 * for all 16 (the SWAR words take 25 instructions for as many bytes).
 * Returns a mask of the special bytes (as special_bytes() counts them,
 * bit i for byte i), and the two words in *w0 and *w1; *in_page false
 * when the bytes cross into the next page (then nothing is read). Like
 * name_word(), it reads past the name's end inside the page only.
 */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
__attribute__((no_sanitize("address", "thread")))
#endif
static inline unsigned block16(const unsigned char *p, bool *in_page,
                               uint64_t *w0, uint64_t *w1)
{
    *in_page = ((uintptr_t)p & 4095u) <= 4096u - 16u;
    if (!*in_page) {
        return 0;
    }
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    /* Unsigned v <= 0x1f, or v == 0x7f: bytes from 0x80 up are ordinary. */
    __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
    __m128i del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
    *w0 = (uint64_t)_mm_cvtsi128_si64(v);
    *w1 = (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(v, v));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(low, del));
}

/* Where the first special byte k of the first 16 ends the name: 0 with
 * the name's length, or the scan's error (as name_end()). */
static inline int block16_end(const unsigned char *p, unsigned mask,
                              size_t max, size_t *len)
{
    size_t k = (size_t)__builtin_ctz(mask);
    if (k > max) {
        return -2; /* an ordinary byte past the limit comes first */
    }
    if (p[k] != '\0') {
        return -1;
    }
    *len = k;
    return 0;
}
#endif

int presence__scan_length(const char *name, size_t max, size_t *len)
{
    const unsigned char *p = (const unsigned char *)name;
#ifdef HAVE_BLOCK16
    bool in_page;
    uint64_t b0, b1;
    unsigned mask = block16(p, &in_page, &b0, &b1);
    if (mask != 0) {
        return block16_end(p, mask, max, len);
    }
    size_t from = 0;
    if (in_page) { /* no special byte in the first 16 */
        if (16 > max) {
            return -2;
        }
        from = 16;
    }
#else
    size_t from = 0;
#endif
    for (size_t n = from;; n += 8) {
        uint64_t special = special_bytes(name_word(p + n));
        if (special != 0) {
            return name_end(p, n, special, max, len);
        }
        if (n + 8 > max) {
            return -2;
        }
    }
}

int presence__scan_name(uint64_t seed, const char *name, size_t max,
                        size_t *len, uint64_t *hash)
{
    const unsigned char *p = (const unsigned char *)name;
    uint64_t state = seed;
#ifdef HAVE_BLOCK16
    bool in_page;
    uint64_t b0, b1;
    unsigned mask = block16(p, &in_page, &b0, &b1);
    if (mask != 0) {
        int rc = block16_end(p, mask, max, len);
        if (rc == 0) {
            *hash = *len < 8 ? last(state, low_bytes(b0, *len), 0, *len)
                             : last(state, b0, low_bytes(b1, *len - 8), *len);
        }
        return rc;
    }
    size_t from = 0;
    if (in_page) { /* no special byte in the first 16 */
        if (16 > max) {
            return -2;
        }
        state = block(state, b0, b1);
        from = 16;
    }
#else
    size_t from = 0;
#endif
    for (size_t n = from;; n += 16) {
        uint64_t w0 = name_word(p + n);
        uint64_t s0 = special_bytes(w0);
        if (s0 != 0) {
            int rc = name_end(p, n, s0, max, len);
            if (rc == 0) {
                *hash = last(state, low_bytes(w0, *len - n), 0, *len);
            }
            return rc;
        }
        uint64_t w1 = name_word(p + n + 8);
        uint64_t s1 = special_bytes(w1);
        if (s1 != 0) {
            if (n + 8 > max) {
                return -2;
            }
            int rc = name_end(p, n + 8, s1, max, len);
            if (rc == 0) {
                *hash = last(state, w0, low_bytes(w1, *len - n - 8), *len);
            }
            return rc;
        }
        if (n + 16 > max) {
            return -2;
        }
        state = block(state, w0, w1);
    }
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
