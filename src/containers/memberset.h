/*
 * The presence set of one channel: its memberships, ordered by user.
 *
 * An open-addressing table of 8-byte slots, each a member's number in its
 * channel shard's slab (every membership of a channel comes from that
 * slab) and a tag, the 32-bit key of the member's user (userkey.h, unique
 * among live users), kept sorted by the 64-bit key (tag, number): the
 * home slot is the tag's top bits, and linear probing with ordered
 * insertion keeps every run sorted. So a user's members sit side by
 * side: whether a join is the user's first connection in the channel,
 * or a leave its last, is a look at the new slot's neighbours, and the
 * channel needs no table of per-user counts. A probe reads the slots
 * alone and follows a number only to the members of the user it is
 * looking for.
 *
 * A group holds at most 8 members: a user with more in the channel (a
 * crowd, such as every anonymous viewer of a stream under user "") would
 * make one long run that every probe near it walks. Its further members
 * are placed apart, by their client's hash (tag: the hash's top 32 bits;
 * the top bit of the number marks them), and counted per user in a small
 * table that only channels with a crowd have. So a probe reads at most 8
 * members of a user, and first and last connections stay exact.
 *
 * Keys are unique, and that order is what makes paged queries cheap and
 * exact: a cursor is just a key, valid across inserts, removals and
 * resizes (a member never moves between its group and apart), and a page
 * starts at the cursor's home slot. The table does not wrap around; it
 * has a tail of spare slots that grows when a run reaches it.
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
struct presence__user;
struct presence__usercount;

struct presence__member_slot {
    /* In the slab, with the top bit set for a member placed apart;
     * PRESENCE__SLAB_NONE: an empty slot. */
    uint32_t number;
    /* The member's user's key; placed apart, its client's hash's top 32
     * bits. */
    uint32_t tag;
};

struct presence__memberset {
    struct presence__member_slot *slots;
    const struct presence__slab *slab; /* its shard's, where numbers point */
    /* Crowd users' members placed apart, per user; NULL until one is. */
    struct presence__usercount *crowd;
    /* Home slots (1 << bits, bits <= 31) plus the spare tail: under 2^32
     * (32 bits, so that the crowd pointer costs a channel nothing). */
    uint32_t nslots;
    uint32_t bits;
    size_t count; /* last: next to what a channel's lookup reads */
};

void presence__memberset_init(struct presence__memberset *set,
                              const struct presence__slab *slab);
void presence__memberset_free(const presence_allocator *alloc,
                              struct presence__memberset *set);
/* Slot i's member, or NULL (0 <= i < nslots: for walking every member). */
struct presence__membership *
presence__memberset_at(const struct presence__memberset *set, size_t i);
/* Make sure one more member can be inserted without growing the table
 * (presence__memberset_insert may still need room for a crowd). */
int presence__memberset_prepare(const presence_allocator *alloc,
                                struct presence__memberset *set);
/* Start loading the slot where a probe for the user's members begins (a
 * hint). */
void presence__memberset_prefetch(const struct presence__memberset *set,
                                  uint32_t user_key);
/* Insert m, a membership of client (whose user_key is set), after a
 * presence__memberset_prepare. A member of a user whose group is full
 * goes apart and is counted in the crowd table, which this may have to
 * make or grow: PRESENCE_ERR_NOMEM then, with nothing changed (the
 * caller's last step that can fail). *first: whether it is its user's
 * only member. */
int presence__memberset_insert(const presence_allocator *alloc,
                               struct presence__memberset *set,
                               struct presence__membership *m,
                               const struct presence__client *client,
                               bool *first);
struct presence__membership *
presence__memberset_find(const struct presence__memberset *set,
                         const struct presence__client *client);
/* The membership of the client with this id and hash among the members
 * of the user with this key (compares ids, not pointers: for callers
 * that know the id but hold no lock on the client). */
struct presence__membership *
presence__memberset_find_id(const struct presence__memberset *set,
                            uint32_t user_key, uint64_t hash, const char *id,
                            size_t len);
/* Remove; shrinks the table when it became sparse and memory allows.
 * Returns whether m was its user's only member. */
bool presence__memberset_remove(const presence_allocator *alloc,
                                struct presence__memberset *set,
                                struct presence__membership *m);

typedef void (*presence__member_visit_fn)(struct presence__membership *m,
                                          void *ctx);
/* Visit the members of the user (whose key this is); returns how many
 * there are. A crowd user's visit walks the user's clients or the whole
 * set, whichever is shorter: the user's list must not change meanwhile
 * (its shard held). */
size_t presence__memberset_user_visit(const struct presence__memberset *set,
                                      const struct presence__user *user,
                                      uint32_t user_key,
                                      presence__member_visit_fn visit,
                                      void *ctx);
/* How many members the user has, in at most 8 steps and a count. */
size_t presence__memberset_user_count(const struct presence__memberset *set,
                                      const struct presence__user *user,
                                      uint32_t user_key);
/*
 * Visit members in key order, starting at the first whose key is at least
 * `cursor`, at most `limit` of them. Returns the cursor of the next page
 * (the next member's key, never 0: a smaller key came before it), 0 when
 * none is left.
 */
uint64_t presence__memberset_scan(const struct presence__memberset *set,
                                  uint64_t cursor, size_t limit,
                                  presence__member_visit_fn visit, void *ctx);
/* The first member whose key is at least `cursor`, its key in *key, or
 * NULL: draining a channel walks it in snapshot order with this. */
struct presence__membership *
presence__memberset_lower_bound(const struct presence__memberset *set,
                                uint64_t cursor, uint64_t *key);

#endif
