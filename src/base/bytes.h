/*
 * Equality and copies of byte ranges of a known length, inlined. The
 * registry compares short names on every lookup (a channel's, a client's,
 * a user's, a conn_info) and copies them into every query's snapshot: a
 * call to memcmp or memcpy costs more than the work. Both read and write
 * whole words, each inside the ranges (the last word overlaps the one
 * before it), so they never touch a byte past either end.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_BYTES_H
#define PRESENCE_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t presence__load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint32_t presence__load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline bool presence__bytes_equal(const void *a, const void *b,
                                         size_t len)
{
    const unsigned char *p = a;
    const unsigned char *q = b;
    if (len >= 8) {
        for (size_t i = 0; i + 8 < len; i += 8) {
            if (presence__load64(p + i) != presence__load64(q + i)) {
                return false;
            }
        }
        return presence__load64(p + len - 8) == presence__load64(q + len - 8);
    }
    if (len >= 4) {
        return presence__load32(p) == presence__load32(q) &&
               presence__load32(p + len - 4) == presence__load32(q + len - 4);
    }
    /* 0 to 3 bytes: the first, the middle and the last. */
    return len == 0 || (p[0] == q[0] && p[len / 2] == q[len / 2] &&
                        p[len - 1] == q[len - 1]);
}

static inline void presence__store64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, sizeof v);
}

static inline void presence__store32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, sizeof v);
}

/* memcpy for ranges that do not overlap, short ones without a call. */
static inline void presence__bytes_copy(void *to, const void *from,
                                        size_t len)
{
    unsigned char *d = to;
    const unsigned char *s = from;
    if (len > 64) {
        memcpy(d, s, len);
    } else if (len > 32) { /* a snapshot's strings of a member, mostly */
        unsigned char head[32], tail[32];
        memcpy(head, s, sizeof head);
        memcpy(tail, s + len - 32, sizeof tail);
        memcpy(d, head, sizeof head);
        memcpy(d + len - 32, tail, sizeof tail);
    } else if (len > 16) { /* two 16-byte moves, overlapping: no call */
        unsigned char head[16], tail[16];
        memcpy(head, s, sizeof head);
        memcpy(tail, s + len - 16, sizeof tail);
        memcpy(d, head, sizeof head);
        memcpy(d + len - 16, tail, sizeof tail);
    } else if (len >= 8) {
        uint64_t head = presence__load64(s);
        uint64_t tail = presence__load64(s + len - 8);
        presence__store64(d, head);
        presence__store64(d + len - 8, tail);
    } else if (len >= 4) {
        uint32_t head = presence__load32(s);
        uint32_t tail = presence__load32(s + len - 4);
        presence__store32(d, head);
        presence__store32(d + len - 4, tail);
    } else if (len > 0) {
        d[0] = s[0];
        d[len / 2] = s[len / 2];
        d[len - 1] = s[len - 1];
    }
}

#endif
