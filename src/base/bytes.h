/*
 * Equality of two byte ranges of a known length, inlined. The registry
 * compares short names on every lookup (a channel's, a client's, a
 * user's, a conn_info): a call to memcmp costs more than the compare. It
 * reads whole words, each inside both ranges (the last word overlaps the
 * one before it), so it never reads past either end.
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

#endif
