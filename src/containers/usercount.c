/*
 * Per-channel user counts (see usercount.h).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "containers/usercount.h"
#include "base/alloc.h"
#include "base/hash.h"
#include "containers/records.h"

#define MIN_SLOTS 4u
/* Tables up to this many slots (3 KiB) are not shrunk (see memberset.c). */
#define SHRINK_MIN_SLOTS 256u

static size_t slot_of(size_t mask, const struct presence__user *user)
{
    /* Users are interned, so the pointer is the key; mix its bits. */
    uint64_t x = (uint64_t)(uintptr_t)user;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 29;
    return (size_t)x & mask;
}

void presence__usercount_init(struct presence__usercount *uc)
{
    memset(uc, 0, sizeof *uc);
}

static size_t slot_count(const struct presence__usercount *uc)
{
    return uc->users_at == NULL ? 0 : uc->mask + 1;
}

static size_t table_bytes(size_t nslots)
{
    return presence__mul_size(nslots, sizeof(struct presence__user *) +
                                          sizeof(uint32_t));
}

void presence__usercount_free(const presence_allocator *alloc,
                              struct presence__usercount *uc)
{
    presence__free(alloc, uc->users_at, table_bytes(slot_count(uc)));
    presence__usercount_init(uc);
}

static void place(struct presence__usercount *uc, struct presence__user *user,
                  uint32_t count)
{
    size_t i = slot_of(uc->mask, user);
    while (uc->users_at[i] != NULL) {
        i = (i + 1) & uc->mask;
    }
    uc->users_at[i] = user;
    uc->counts[i] = count;
}

PRESENCE__NOINLINE
static int resize(const presence_allocator *alloc, struct presence__usercount *uc,
                  size_t nslots)
{
    size_t bytes = table_bytes(nslots);
    struct presence__user **users_at = presence__malloc(alloc, bytes);
    if (users_at == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(users_at, 0, bytes);
    struct presence__usercount old = *uc;
    uc->users_at = users_at;
    uc->counts = (uint32_t *)(users_at + nslots);
    uc->mask = nslots - 1;
    for (size_t i = 0; i < slot_count(&old); i++) {
        if (old.users_at[i] != NULL) {
            place(uc, old.users_at[i], old.counts[i]);
        }
    }
    presence__free(alloc, old.users_at, table_bytes(slot_count(&old)));
    return PRESENCE_OK;
}

int presence__usercount_prepare(const presence_allocator *alloc,
                                struct presence__usercount *uc)
{
    size_t nslots = slot_count(uc);
    /* Keep the load at most 7/8: with backward-shift deletion runs stay
     * short enough, and the table is 44% smaller on average than at 3/4
     * (docs/PERFORMANCE-HISTORY.md). */
    if ((uc->users + 1) * 8 <= nslots * 7) {
        return PRESENCE_OK;
    }
    return resize(alloc, uc, nslots == 0 ? MIN_SLOTS : nslots * 2);
}

static size_t find(const struct presence__usercount *uc,
                   const struct presence__user *user)
{
    if (uc->users_at == NULL) {
        return SIZE_MAX;
    }
    for (size_t i = slot_of(uc->mask, user);; i = (i + 1) & uc->mask) {
        if (uc->users_at[i] == user) {
            return i;
        }
        if (uc->users_at[i] == NULL) {
            return SIZE_MAX;
        }
    }
}

size_t presence__usercount_inc(struct presence__usercount *uc,
                               struct presence__user *user)
{
    size_t i = find(uc, user);
    if (i != SIZE_MAX) {
        return ++uc->counts[i];
    }
    place(uc, user, 1);
    uc->users++;
    return 1;
}

size_t presence__usercount_dec(const presence_allocator *alloc,
                               struct presence__usercount *uc,
                               struct presence__user *user)
{
    size_t i = find(uc, user);
    if (i == SIZE_MAX) {
        return 0;
    }
    if (--uc->counts[i] > 0) {
        return uc->counts[i];
    }
    /* Backward-shift deletion: no tombstones, probes stay short. */
    size_t hole = i;
    for (size_t j = (i + 1) & uc->mask; uc->users_at[j] != NULL;
         j = (j + 1) & uc->mask) {
        size_t home = slot_of(uc->mask, uc->users_at[j]);
        if (!presence__probe_stays(hole, j, home)) {
            uc->users_at[hole] = uc->users_at[j];
            uc->counts[hole] = uc->counts[j];
            hole = j;
        }
    }
    uc->users_at[hole] = NULL;
    uc->counts[hole] = 0;
    uc->users--;
    if (uc->users == 0) {
        presence__usercount_free(alloc, uc);
    } else if (slot_count(uc) > SHRINK_MIN_SLOTS &&
               uc->users * 8 < slot_count(uc)) {
        (void)resize(alloc, uc, slot_count(uc) / 2); /* optional on failure */
    }
    return 0;
}

size_t presence__usercount_get(const struct presence__usercount *uc,
                               const struct presence__user *user)
{
    size_t i = find(uc, user);
    return i == SIZE_MAX ? 0 : uc->counts[i];
}
