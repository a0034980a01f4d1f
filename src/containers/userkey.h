/*
 * A source of user keys: distinct 32-bit values, one per live user,
 * reused once given back. A channel's member set orders its members by
 * their user's key (memberset.h), so a key must never be shared by two
 * live users: then the members of one user sit side by side, and whether
 * a join is the user's first connection in the channel (or a leave its
 * last) is one look at the neighbouring slots, with no table of counts.
 *
 * A key is a fixed bijective mix of a number the source mints, so
 * distinct numbers give distinct keys, and the keys of consecutive
 * numbers are spread over the 32-bit range as a hash's bits are: their
 * top bits serve as a home slot. Keys given back are kept to be handed
 * out again (4 bytes each, up to the most users the source had at once),
 * until every key is back. A source mints the numbers offset,
 * offset + stride, offset + 2 * stride, ...: sources of one stride and
 * different offsets (one per user shard) never mint the same number.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_USERKEY_H
#define PRESENCE_USERKEY_H

#include <stdint.h>

#include "presence.h"

struct presence__userkeys {
    uint32_t *spare;      /* keys given back, handed out again first */
    uint32_t spare_count;
    /* Room for every key minted, so that giving one back never
     * allocates (a client's retirement cannot fail). */
    uint32_t spare_cap;
    uint32_t minted;
    uint32_t offset, stride;
    uint32_t seed; /* keys differ between registries */
};

void presence__userkeys_init(struct presence__userkeys *keys, uint32_t seed,
                             uint32_t offset, uint32_t stride);
/* Free its memory: the keys handed out are forgotten. */
void presence__userkeys_free(const presence_allocator *alloc,
                             struct presence__userkeys *keys);
/* A key no live user has; PRESENCE_ERR_NOMEM without change when memory
 * (or, past 4G users, the numbers) runs out. */
int presence__userkeys_take(const presence_allocator *alloc,
                            struct presence__userkeys *keys, uint32_t *key);
/* Give back a key this source handed out, once its user is gone. Never
 * allocates; with the last key out, the source's memory goes back. */
void presence__userkeys_give(const presence_allocator *alloc,
                             struct presence__userkeys *keys, uint32_t key);

#endif
