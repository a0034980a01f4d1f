/*
 * The chan_info of a channel shard's memberships, by slab number.
 *
 * Most memberships have no chan_info, so a pointer in each would cost 8
 * bytes a membership for nothing (a sixth of it). It lives here instead,
 * beside them, and a membership says in a flag bit whether it has an
 * entry (presence__membership_has_chan_info). Open addressing, linear
 * probing, backward-shift deletion; 16-byte slots; no table at all while
 * no membership of the shard has chan_info.
 *
 * Guarded by the channel shard's lock, like the memberships.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_CHANINFO_H
#define PRESENCE_CHANINFO_H

#include <stddef.h>
#include <stdint.h>

#include "presence.h"

struct presence__blob;

struct presence__chaninfo_slot {
    uint32_t number; /* a membership's slab number; PRESENCE__SLAB_NONE:
                      * an empty slot */
    struct presence__blob *blob;
};

struct presence__chaninfo_map {
    struct presence__chaninfo_slot *slots; /* NULL while empty */
    size_t mask; /* slots - 1 */
    size_t count;
};

void presence__chaninfo_init(struct presence__chaninfo_map *map);
/* Free the table (the blobs belong to the memberships). */
void presence__chaninfo_free(const presence_allocator *alloc,
                             struct presence__chaninfo_map *map);
/* Make sure one more entry fits without allocating. */
int presence__chaninfo_prepare(const presence_allocator *alloc,
                               struct presence__chaninfo_map *map);
/* Add the entry of a membership that has none; prepare must have
 * succeeded. */
void presence__chaninfo_put(struct presence__chaninfo_map *map,
                            uint32_t number, struct presence__blob *blob);
/* The blob of a membership that has an entry. */
struct presence__blob *
presence__chaninfo_get(const struct presence__chaninfo_map *map,
                       uint32_t number);
/* Replace the blob of a membership that has an entry; returns the old. */
struct presence__blob *
presence__chaninfo_replace(struct presence__chaninfo_map *map,
                           uint32_t number, struct presence__blob *blob);
/* Remove the entry of a membership that has one; returns its blob. The
 * table shrinks when memory allows and it is sparse. */
struct presence__blob *
presence__chaninfo_take(const presence_allocator *alloc,
                        struct presence__chaninfo_map *map, uint32_t number);

#endif
