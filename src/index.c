/*
 * The hash index of named records (see index.h).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "internal.h"

#define MIN_SLOTS 16u

void presence__index_init(struct presence__index *idx, size_t name_offset,
                          size_t name_len_offset)
{
    memset(idx, 0, sizeof *idx);
    idx->name_offset = name_offset;
    idx->name_len_offset = name_len_offset;
}

size_t presence__index_slots(const struct presence__index *idx)
{
    return idx->slots == NULL ? 0 : idx->mask + 1;
}

void *presence__index_at(const struct presence__index *idx, size_t i)
{
    return idx->slots[i].item;
}

void presence__index_free(presence_registry *reg, struct presence__index *idx)
{
    presence__free(reg, idx->slots,
                   presence__index_slots(idx) * sizeof *idx->slots);
    idx->slots = NULL;
    idx->mask = 0;
    idx->count = 0;
}

static size_t home_of(const struct presence__index *idx, uint64_t hash)
{
    return (size_t)hash & idx->mask;
}

static void place(struct presence__index *idx, uint64_t hash, void *item)
{
    size_t i = home_of(idx, hash);
    while (idx->slots[i].item != NULL) {
        i = (i + 1) & idx->mask;
    }
    idx->slots[i].hash = hash;
    idx->slots[i].item = item;
}

static int resize(presence_registry *reg, struct presence__index *idx,
                  size_t nslots)
{
    size_t bytes = presence__mul_size(nslots, sizeof *idx->slots);
    struct presence__index_slot *slots = presence__malloc(reg, bytes);
    if (slots == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(slots, 0, bytes);
    struct presence__index old = *idx;
    idx->slots = slots;
    idx->mask = nslots - 1;
    for (size_t i = 0; i < presence__index_slots(&old); i++) {
        if (old.slots[i].item != NULL) {
            place(idx, old.slots[i].hash, old.slots[i].item);
        }
    }
    presence__free(reg, old.slots,
                   presence__index_slots(&old) * sizeof *old.slots);
    return PRESENCE_OK;
}

int presence__index_prepare(presence_registry *reg,
                            struct presence__index *idx)
{
    size_t nslots = presence__index_slots(idx);
    /* At most 7/8 full, like the per-channel tables: a lookup reads 16-byte
     * slots, four to a cache line, so the longer runs cost few extra
     * lines, and the table is 14% smaller on average than at 3/4. */
    if ((idx->count + 1) * 8 <= nslots * 7) {
        return PRESENCE_OK;
    }
    return resize(reg, idx, nslots == 0 ? MIN_SLOTS : nslots * 2);
}

void presence__index_prefetch(const struct presence__index *idx,
                              uint64_t hash)
{
    if (idx->slots != NULL) {
        PRESENCE__PREFETCH(&idx->slots[home_of(idx, hash)]);
    }
}

void presence__index_insert(struct presence__index *idx, uint64_t hash,
                            void *item)
{
    place(idx, hash, item);
    idx->count++;
}

void *presence__index_find(const struct presence__index *idx, uint64_t hash,
                           const char *name, size_t len)
{
    if (idx->slots == NULL) {
        return NULL;
    }
    for (size_t i = home_of(idx, hash); idx->slots[i].item != NULL;
         i = (i + 1) & idx->mask) {
        if (idx->slots[i].hash != hash) {
            continue;
        }
        const char *item = idx->slots[i].item;
        uint32_t item_len;
        memcpy(&item_len, item + idx->name_len_offset, sizeof item_len);
        if (item_len == len && memcmp(item + idx->name_offset, name, len) == 0) {
            return idx->slots[i].item;
        }
    }
    return NULL;
}

void presence__index_remove(presence_registry *reg,
                            struct presence__index *idx, uint64_t hash,
                            const void *item)
{
    size_t i = home_of(idx, hash);
    while (idx->slots[i].item != item) {
        i = (i + 1) & idx->mask;
    }
    /* Backward-shift deletion keeps probe runs unbroken without
     * tombstones. */
    size_t hole = i;
    for (size_t j = (i + 1) & idx->mask; idx->slots[j].item != NULL;
         j = (j + 1) & idx->mask) {
        size_t home = home_of(idx, idx->slots[j].hash);
        bool stays = hole <= j ? (home > hole && home <= j)
                               : (home > hole || home <= j);
        if (!stays) {
            idx->slots[hole] = idx->slots[j];
            hole = j;
        }
    }
    idx->slots[hole].item = NULL;
    idx->slots[hole].hash = 0;
    idx->count--;
    size_t nslots = presence__index_slots(idx);
    if (idx->count == 0) {
        presence__index_free(reg, idx);
    } else if (nslots > MIN_SLOTS && idx->count * 8 < nslots) {
        (void)resize(reg, idx, nslots / 2); /* optional: keep it on failure */
    }
}
