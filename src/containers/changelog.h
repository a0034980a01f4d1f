/*
 * A channel's change log: a ring of its last changes (join, leave, update),
 * oldest first, each holding a reference on its client record and on the
 * chan_info blob it names. Appending never allocates, so logging a change
 * cannot fail (the ring is grown beforehand, by the part of a change that
 * may fail); a full ring drops its oldest entry, and `since` moves up with
 * it, so the log always knows how far back it reaches.
 *
 * The container only moves records: releasing the client references that
 * entries hold is its owner's (the domain's) job, which is why dropping
 * and popping hand the entry back.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_CONTAINERS_CHANGELOG_H
#define PRESENCE_CONTAINERS_CHANGELOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presence.h"
#include "containers/records.h"

/* One logged change. */
struct presence__change {
    struct presence__client *client; /* a reference */
    struct presence__blob *chan_info; /* a reference; NULL: none */
    uint64_t seq;                     /* the version the change made */
    int64_t time_ms;
    uint8_t kind;   /* presence_event_kind: JOIN, LEAVE or UPDATE */
    uint8_t reason; /* presence_leave_reason */
};

struct presence__changelog {
    uint32_t cap;
    uint32_t head; /* the oldest entry */
    uint32_t len;
    /* The log holds every change whose seq is above this one. */
    uint64_t since;
    struct presence__change entries[];
};

/* A new, empty log of cap (> 0) entries that reaches back to `since`. */
int presence__changelog_new(const presence_allocator *alloc, size_t cap,
                            uint64_t since, struct presence__changelog **out);
/* Make the log hold at least min(need, max) entries (cap only grows, at
 * least doubling, never beyond max); the entries keep their order. Fails
 * without change. */
int presence__changelog_grow(const presence_allocator *alloc,
                             struct presence__changelog **log, size_t need,
                             size_t max);
/* Free an empty log (pop its entries first); NULL does nothing. */
void presence__changelog_free(const presence_allocator *alloc,
                              struct presence__changelog *log);
/* Append a change, taking over its references. A full log drops its
 * oldest entry into *dropped (its references now the caller's) and
 * returns true. */
bool presence__changelog_push(struct presence__changelog *log,
                              const struct presence__change *c,
                              struct presence__change *dropped);
/* Take the oldest entry out (its references now the caller's); false when
 * the log is empty. */
bool presence__changelog_pop(struct presence__changelog *log,
                             struct presence__change *out);
/* The i-th entry from the oldest (i < len). */
const struct presence__change *
presence__changelog_at(const struct presence__changelog *log, size_t i);
/* Where the changes after `seq` begin: *first gets the index of the first
 * one (len when there is none). False when the log does not reach back
 * to seq, or seq is beyond its last change. */
bool presence__changelog_after(const struct presence__changelog *log,
                               uint64_t seq, size_t *first);

#endif
