/*
 * Per-channel user counts (see usercount.h).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "internal.h"

#define MIN_SLOTS 4u

static size_t slot_of(const struct presence__usercount *uc,
                      const struct presence__user *user)
{
    /* Users are interned, so the pointer is the key; mix its bits. */
    uint64_t x = (uint64_t)(uintptr_t)user;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 29;
    return (size_t)x & uc->mask;
}

void presence__usercount_init(struct presence__usercount *uc)
{
    memset(uc, 0, sizeof *uc);
}

static size_t slot_count(const struct presence__usercount *uc)
{
    return uc->slots == NULL ? 0 : uc->mask + 1;
}

void presence__usercount_free(presence_registry *reg,
                              struct presence__usercount *uc)
{
    presence__free(reg, uc->slots, slot_count(uc) * sizeof *uc->slots);
    presence__usercount_init(uc);
}

static void place(struct presence__usercount *uc,
                  struct presence__usercount_slot slot)
{
    size_t i = slot_of(uc, slot.user);
    while (uc->slots[i].user != NULL) {
        i = (i + 1) & uc->mask;
    }
    uc->slots[i] = slot;
}

static int resize(presence_registry *reg, struct presence__usercount *uc,
                  size_t nslots)
{
    size_t bytes = presence__mul_size(nslots, sizeof *uc->slots);
    struct presence__usercount_slot *slots = presence__malloc(reg, bytes);
    if (slots == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(slots, 0, bytes);
    struct presence__usercount old = *uc;
    uc->slots = slots;
    uc->mask = nslots - 1;
    for (size_t i = 0; i < slot_count(&old); i++) {
        if (old.slots[i].user != NULL) {
            place(uc, old.slots[i]);
        }
    }
    presence__free(reg, old.slots, slot_count(&old) * sizeof *old.slots);
    return PRESENCE_OK;
}

int presence__usercount_prepare(presence_registry *reg,
                                struct presence__usercount *uc)
{
    size_t nslots = slot_count(uc);
    /* Keep the load at most 3/4 so that probes stay short. */
    if ((uc->users + 1) * 4 <= nslots * 3) {
        return PRESENCE_OK;
    }
    return resize(reg, uc, nslots == 0 ? MIN_SLOTS : nslots * 2);
}

static size_t find(const struct presence__usercount *uc,
                   const struct presence__user *user)
{
    if (uc->slots == NULL) {
        return SIZE_MAX;
    }
    for (size_t i = slot_of(uc, user);; i = (i + 1) & uc->mask) {
        if (uc->slots[i].user == user) {
            return i;
        }
        if (uc->slots[i].user == NULL) {
            return SIZE_MAX;
        }
    }
}

size_t presence__usercount_inc(struct presence__usercount *uc,
                               struct presence__user *user)
{
    size_t i = find(uc, user);
    if (i != SIZE_MAX) {
        return ++uc->slots[i].count;
    }
    place(uc, (struct presence__usercount_slot){user, 1});
    uc->users++;
    return 1;
}

size_t presence__usercount_dec(presence_registry *reg,
                               struct presence__usercount *uc,
                               struct presence__user *user)
{
    size_t i = find(uc, user);
    if (i == SIZE_MAX) {
        return 0;
    }
    if (--uc->slots[i].count > 0) {
        return uc->slots[i].count;
    }
    /* Backward-shift deletion: no tombstones, probes stay short. */
    size_t hole = i;
    for (size_t j = (i + 1) & uc->mask; uc->slots[j].user != NULL;
         j = (j + 1) & uc->mask) {
        size_t home = slot_of(uc, uc->slots[j].user);
        /* Move j into the hole unless its home lies cyclically in
         * (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j)
                               : (home > hole || home <= j);
        if (!stays) {
            uc->slots[hole] = uc->slots[j];
            hole = j;
        }
    }
    uc->slots[hole].user = NULL;
    uc->slots[hole].count = 0;
    uc->users--;
    if (uc->users == 0) {
        presence__usercount_free(reg, uc);
    } else if (slot_count(uc) > MIN_SLOTS && uc->users * 8 < slot_count(uc)) {
        (void)resize(reg, uc, slot_count(uc) / 2);
    }
    return 0;
}

size_t presence__usercount_get(const struct presence__usercount *uc,
                               const struct presence__user *user)
{
    size_t i = find(uc, user);
    return i == SIZE_MAX ? 0 : uc->slots[i].count;
}
