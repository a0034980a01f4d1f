/*
 * The hash index of named records (see index.h).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "containers/index.h"
#include "base/alloc.h"
#include "base/bytes.h"
#include "base/hash.h"

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

static void *item_at(const struct presence__index *idx, size_t i)
{
    void *item;
    memcpy(&item, idx->slots[i].item, sizeof item);
    return item;
}

static void set_item(struct presence__index *idx, size_t i, const void *item)
{
    memcpy(idx->slots[i].item, &item, sizeof item);
}

static uint32_t tag_of(uint64_t hash)
{
    return (uint32_t)hash;
}

void *presence__index_at(const struct presence__index *idx, size_t i)
{
    return item_at(idx, i);
}

void presence__index_free(const presence_allocator *alloc, struct presence__index *idx)
{
    presence__free(alloc, idx->slots,
                   presence__index_slots(idx) * sizeof *idx->slots);
    idx->slots = NULL;
    idx->mask = 0;
    idx->count = 0;
}

/* The home slot, from the low bits: the tag has them all (tables stay
 * under 2^32 slots). */
static size_t home_of(const struct presence__index *idx, uint32_t tag)
{
    return (size_t)tag & idx->mask;
}

static void place(struct presence__index *idx, uint32_t tag, void *item)
{
    size_t i = home_of(idx, tag);
    while (item_at(idx, i) != NULL) {
        i = (i + 1) & idx->mask;
    }
    idx->slots[i].tag = tag;
    set_item(idx, i, item);
}

PRESENCE__NOINLINE
static int resize(const presence_allocator *alloc, struct presence__index *idx,
                  size_t nslots)
{
    size_t bytes = presence__mul_size(nslots, sizeof *idx->slots);
    struct presence__index_slot *slots = presence__malloc(alloc, bytes);
    if (slots == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(slots, 0, bytes); /* all-zero bytes: NULL items */
    struct presence__index old = *idx;
    idx->slots = slots;
    idx->mask = nslots - 1;
    for (size_t i = 0; i < presence__index_slots(&old); i++) {
        void *item = item_at(&old, i);
        if (item != NULL) {
            place(idx, old.slots[i].tag, item);
        }
    }
    presence__free(alloc, old.slots,
                   presence__index_slots(&old) * sizeof *old.slots);
    return PRESENCE_OK;
}

int presence__index_prepare(const presence_allocator *alloc,
                            struct presence__index *idx)
{
    size_t nslots = presence__index_slots(idx);
    /* At most 7/8 full, like the per-channel tables: a lookup reads 12-byte
     * slots, five to a cache line, so the longer runs cost few extra
     * lines, and the table is 14% smaller on average than at 3/4. */
    if ((idx->count + 1) * 8 <= nslots * 7) {
        return PRESENCE_OK;
    }
    return resize(alloc, idx, nslots == 0 ? MIN_SLOTS : nslots * 2);
}

void presence__index_prefetch(const struct presence__index *idx,
                              uint64_t hash)
{
    if (idx->slots != NULL) {
        PRESENCE__PREFETCH(&idx->slots[home_of(idx, tag_of(hash))]);
    }
}

void presence__index_prefetch_item(const struct presence__index *idx,
                                   uint64_t hash)
{
    if (idx->slots != NULL) {
        size_t i = home_of(idx, tag_of(hash));
        if (idx->slots[i].tag == tag_of(hash)) {
            PRESENCE__PREFETCH(item_at(idx, i));
        }
    }
}

void presence__index_insert(struct presence__index *idx, uint64_t hash,
                            void *item)
{
    place(idx, tag_of(hash), item);
    idx->count++;
}

void *presence__index_find(const struct presence__index *idx, uint64_t hash,
                           const char *name, size_t len)
{
    if (idx->slots == NULL) {
        return NULL;
    }
    uint32_t tag = tag_of(hash);
    for (size_t i = home_of(idx, tag);; i = (i + 1) & idx->mask) {
        char *item = item_at(idx, i);
        if (item == NULL) {
            return NULL;
        }
        if (idx->slots[i].tag != tag) {
            continue;
        }
        uint32_t item_len;
        memcpy(&item_len, item + idx->name_len_offset, sizeof item_len);
        if (item_len == len && presence__bytes_equal(item + idx->name_offset, name, len)) {
            return item;
        }
    }
}

void presence__index_remove(const presence_allocator *alloc,
                            struct presence__index *idx, uint64_t hash,
                            const void *item)
{
    size_t i = home_of(idx, tag_of(hash));
    while (item_at(idx, i) != item) {
        i = (i + 1) & idx->mask;
    }
    /* Backward-shift deletion keeps probe runs unbroken without
     * tombstones. */
    size_t hole = i;
    for (size_t j = (i + 1) & idx->mask; item_at(idx, j) != NULL;
         j = (j + 1) & idx->mask) {
        size_t home = home_of(idx, idx->slots[j].tag);
        if (!presence__probe_stays(hole, j, home)) {
            idx->slots[hole] = idx->slots[j];
            hole = j;
        }
    }
    memset(&idx->slots[hole], 0, sizeof idx->slots[hole]);
    idx->count--;
    size_t nslots = presence__index_slots(idx);
    if (idx->count == 0) {
        presence__index_free(alloc, idx);
    } else if (nslots > MIN_SLOTS && idx->count * 8 < nslots) {
        (void)resize(alloc, idx, nslots / 2); /* optional: keep it on failure */
    }
}
