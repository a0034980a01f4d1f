/*
 * The presence set of one channel: its memberships, keyed by client.
 *
 * An open-addressing table of 8-byte slots, each a member's number in its
 * channel shard's slab (every membership of a channel comes from that
 * slab) and a 32-bit tag, the top 32 bits of the client's hash, kept
 * sorted by the client's 64-bit hash: the home slot is the hash's top
 * bits, and linear probing with ordered insertion keeps every run sorted.
 * A probe reads the slots alone and follows a number only to the member
 * it is looking for (and on a tag tie, about n / 2^32 of the time). That
 * order is what makes paged queries cheap and exact: a cursor is just a
 * hash value, valid across inserts, removals and resizes, and a page
 * starts at the cursor's home slot. The table does not wrap around; it has
 * a tail of spare slots that grows when a run reaches it.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_MEMBERSET_H
#define PRESENCE_MEMBERSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presence.h"

struct presence__slab;
struct presence__membership;
struct presence__client;

struct presence__member_slot {
    uint32_t number; /* in the slab; PRESENCE__SLAB_NONE: an empty slot */
    uint32_t tag;    /* the client's hash's top 32 bits */
};

struct presence__memberset {
    struct presence__member_slot *slots;
    const struct presence__slab *slab; /* its shard's, where numbers point */
    size_t nslots; /* home slots (1 << bits) plus the spare tail */
    unsigned bits;
    size_t count; /* last: next to what a channel's lookup reads */
};

void presence__memberset_init(struct presence__memberset *set,
                              const struct presence__slab *slab);
void presence__memberset_free(const presence_allocator *alloc,
                              struct presence__memberset *set);
/* Slot i's member, or NULL (0 <= i < nslots: for walking every member). */
struct presence__membership *
presence__memberset_at(const struct presence__memberset *set, size_t i);
/* Make sure a client with this hash can be inserted without allocating. */
int presence__memberset_prepare(const presence_allocator *alloc,
                                struct presence__memberset *set,
                                uint64_t hash);
/* Start loading the slot where a probe for this hash begins (a hint). */
void presence__memberset_prefetch(const struct presence__memberset *set,
                                  uint64_t hash);
/* Insert; presence__memberset_prepare must have succeeded for its hash. */
void presence__memberset_insert(struct presence__memberset *set,
                                struct presence__membership *m);
struct presence__membership *
presence__memberset_find(const struct presence__memberset *set,
                         const struct presence__client *client);
/* The membership of the client with this id (compares ids, not
 * pointers: for callers that know the id but not the client). */
struct presence__membership *
presence__memberset_find_id(const struct presence__memberset *set,
                            uint64_t hash, const char *id, size_t len);
/* Remove; shrinks the table when it became sparse and memory allows. */
void presence__memberset_remove(const presence_allocator *alloc,
                                struct presence__memberset *set,
                                struct presence__membership *m);

typedef void (*presence__member_visit_fn)(struct presence__membership *m,
                                          void *ctx);
/*
 * Visit members in hash order, starting at the first whose hash is at
 * least `cursor`, stopping after `limit` (but never between two members of
 * equal hash). Returns the cursor of the next page, 0 when none is left.
 */
uint64_t presence__memberset_scan(const struct presence__memberset *set,
                                  uint64_t cursor, size_t limit,
                                  presence__member_visit_fn visit, void *ctx);
/* The first member whose hash is at least `cursor`, or NULL: draining a
 * channel walks it in snapshot order with this. */
struct presence__membership *
presence__memberset_lower_bound(const struct presence__memberset *set,
                                uint64_t cursor);

#endif
