/*
 * Reference counts of shared records (clients, users, blobs): atomic in a
 * thread-safe registry; in a single-threaded one a plain read and write.
 * A locked add holds back every later load until its line is owned, so a
 * walk that took one per member (presence_visit) waited out a miss per
 * member.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_BASE_REFCOUNT_H
#define PRESENCE_BASE_REFCOUNT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

static inline void presence__ref_take(bool threaded, atomic_uint_least32_t *refs)
{
    if (threaded) {
        atomic_fetch_add(refs, 1);
        return;
    }
    uint_least32_t n = atomic_load_explicit(refs, memory_order_relaxed);
    atomic_store_explicit(refs, n + 1, memory_order_relaxed);
}

/* Drops one reference; true when it was the last. */
static inline bool presence__ref_drop(bool threaded, atomic_uint_least32_t *refs)
{
    if (threaded) {
        return atomic_fetch_sub(refs, 1) == 1;
    }
    uint_least32_t n = atomic_load_explicit(refs, memory_order_relaxed);
    atomic_store_explicit(refs, n - 1, memory_order_relaxed);
    return n == 1;
}

#endif
