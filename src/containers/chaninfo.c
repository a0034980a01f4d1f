/*
 * The chan_info side table (see chaninfo.h).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "containers/chaninfo.h"
#include "base/alloc.h"
#include "base/hash.h"
#include "containers/records.h"

#define MIN_SLOTS 8u
#define NONE PRESENCE__SLAB_NONE

void presence__chaninfo_init(struct presence__chaninfo_map *map)
{
    memset(map, 0, sizeof *map);
}

static size_t slot_count(const struct presence__chaninfo_map *map)
{
    return map->slots == NULL ? 0 : map->mask + 1;
}

void presence__chaninfo_free(const presence_allocator *alloc,
                             struct presence__chaninfo_map *map)
{
    presence__free(alloc, map->slots, slot_count(map) * sizeof *map->slots);
    presence__chaninfo_init(map);
}

/* Slab numbers are dense and sequential: mix them before masking. */
static size_t home_of(size_t mask, uint32_t number)
{
    uint32_t x = number * 0x9e3779b1u;
    return (size_t)(x ^ (x >> 16)) & mask;
}

static void place(struct presence__chaninfo_map *map, uint32_t number,
                  struct presence__blob *blob)
{
    size_t i = home_of(map->mask, number);
    while (map->slots[i].number != NONE) {
        i = (i + 1) & map->mask;
    }
    map->slots[i].number = number;
    map->slots[i].blob = blob;
}

PRESENCE__NOINLINE
static int resize(const presence_allocator *alloc, struct presence__chaninfo_map *map,
                  size_t nslots)
{
    size_t bytes = presence__mul_size(nslots, sizeof *map->slots);
    struct presence__chaninfo_slot *slots = presence__malloc(alloc, bytes);
    if (slots == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    for (size_t i = 0; i < nslots; i++) {
        slots[i].number = NONE;
        slots[i].blob = NULL;
    }
    struct presence__chaninfo_map old = *map;
    map->slots = slots;
    map->mask = nslots - 1;
    for (size_t i = 0; i < slot_count(&old); i++) {
        if (old.slots[i].number != NONE) {
            place(map, old.slots[i].number, old.slots[i].blob);
        }
    }
    presence__free(alloc, old.slots, slot_count(&old) * sizeof *old.slots);
    return PRESENCE_OK;
}

PRESENCE__NOINLINE
int presence__chaninfo_prepare(const presence_allocator *alloc,
                               struct presence__chaninfo_map *map)
{
    size_t nslots = slot_count(map);
    if ((map->count + 1) * 8 <= nslots * 7) {
        return PRESENCE_OK;
    }
    return resize(alloc, map, nslots == 0 ? MIN_SLOTS : nslots * 2);
}

PRESENCE__NOINLINE
void presence__chaninfo_put(struct presence__chaninfo_map *map,
                            uint32_t number, struct presence__blob *blob)
{
    place(map, number, blob);
    map->count++;
}

static size_t find(const struct presence__chaninfo_map *map, uint32_t number)
{
    size_t i = home_of(map->mask, number);
    while (map->slots[i].number != number) {
        i = (i + 1) & map->mask;
    }
    return i;
}

struct presence__blob *
presence__chaninfo_get(const struct presence__chaninfo_map *map,
                       uint32_t number)
{
    return map->slots[find(map, number)].blob;
}

struct presence__blob *
presence__chaninfo_replace(struct presence__chaninfo_map *map,
                           uint32_t number, struct presence__blob *blob)
{
    size_t i = find(map, number);
    struct presence__blob *old = map->slots[i].blob;
    map->slots[i].blob = blob;
    return old;
}

struct presence__blob *
presence__chaninfo_take(const presence_allocator *alloc,
                        struct presence__chaninfo_map *map, uint32_t number)
{
    size_t i = find(map, number);
    struct presence__blob *blob = map->slots[i].blob;
    /* Backward-shift deletion keeps probe runs unbroken. */
    size_t hole = i;
    for (size_t j = (i + 1) & map->mask; map->slots[j].number != NONE;
         j = (j + 1) & map->mask) {
        size_t home = home_of(map->mask, map->slots[j].number);
        if (!presence__probe_stays(hole, j, home)) {
            map->slots[hole] = map->slots[j];
            hole = j;
        }
    }
    map->slots[hole].number = NONE;
    map->slots[hole].blob = NULL;
    map->count--;
    size_t nslots = slot_count(map);
    if (map->count == 0) {
        presence__chaninfo_free(alloc, map);
    } else if (nslots > MIN_SLOTS && map->count * 8 < nslots) {
        (void)resize(alloc, map, nslots / 2); /* optional: kept on failure */
    }
    return blob;
}
