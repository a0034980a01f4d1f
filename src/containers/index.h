/*
 * A hash index of named records (channels, clients, users): open
 * addressing with linear probing, 12-byte slots holding the low 32 bits of
 * the record's hash (which is all a slot's home needs, for tables under
 * 2^32 slots) and a pointer, so that a lookup reads one or two adjacent
 * slots and touches a record only when those bits match (a false match
 * costs a name comparison about n / 2^32 of the time). uthash chains, by contrast,
 * cost one dependent cache miss per entry walked (measured:
 * docs/PERFORMANCE-HISTORY.md), and its handle adds 56 bytes to every record.
 *
 * Records keep their own name; the index is told where (offsets), so it
 * can compare keys without a callback.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_INDEX_H
#define PRESENCE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presence.h"


struct presence__index_slot {
    uint32_t tag; /* the hash's low 32 bits */
    /* A void * (NULL: empty) at a 4-byte boundary, so that a slot takes
     * 12 bytes, not 16: read and written with memcpy. */
    unsigned char item[sizeof(void *)];
};

struct presence__index {
    struct presence__index_slot *slots;
    size_t mask; /* slots - 1; slots is NULL when empty */
    size_t count;
    size_t name_offset;     /* where the record keeps its name (char[]) */
    size_t name_len_offset; /* and its length (uint32_t: presence__check_name
                             * refuses longer names) */
};

void presence__index_init(struct presence__index *idx, size_t name_offset,
                          size_t name_len_offset);
void presence__index_free(const presence_allocator *alloc,
                          struct presence__index *idx);
/* Make sure one more record fits without allocating. */
int presence__index_prepare(const presence_allocator *alloc,
                            struct presence__index *idx);
/* Insert; presence__index_prepare must have succeeded. */
void presence__index_insert(struct presence__index *idx, uint64_t hash,
                            void *item);
void *presence__index_find(const struct presence__index *idx, uint64_t hash,
                           const char *name, size_t len);
/* Remove a record; shrinks the table when memory allows and it is sparse. */
void presence__index_remove(const presence_allocator *alloc,
                            struct presence__index *idx, uint64_t hash,
                            const void *item);

/* Start loading the slot where a lookup of `hash` begins (a hint: no
 * effect on the index), so that two lookups can miss the cache at once. */
void presence__index_prefetch(const struct presence__index *idx,
                              uint64_t hash);
/* Then, once that slot has arrived, start loading the record it names
 * when its tag matches (a hint as well): a lookup's two misses, the slot
 * and the record, overlap with another lookup's. */
void presence__index_prefetch_item(const struct presence__index *idx,
                                   uint64_t hash);

/* Slot i's record or NULL, for walking every record (0 <= i < slots). */
size_t presence__index_slots(const struct presence__index *idx);
void *presence__index_at(const struct presence__index *idx, size_t i);

#endif
