/*
 * A slab of fixed-size blocks (memberships), one per channel shard and
 * used under its lock. malloc spends ~200 instructions on a fresh small
 * block and keeps an 8-byte header anyway; here a block costs a pointer
 * pop, and its 8-byte header points at its chunk, so that a chunk whose
 * blocks are all free goes back to the allocator (memory returns after a
 * load peak).
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_SLAB_H
#define PRESENCE_SLAB_H

#include <stddef.h>

struct presence_registry;
struct presence__slab_chunk;

struct presence__slab {
    struct presence__slab_chunk *partial; /* chunks with a free block */
    struct presence__slab_chunk *spare;   /* one empty chunk kept back */
    size_t block;                         /* payload bytes */
};

void presence__slab_init(struct presence__slab *slab, size_t block);
/* NULL when memory runs out. */
void *presence__slab_alloc(struct presence_registry *reg,
                           struct presence__slab *slab);
void presence__slab_free(struct presence_registry *reg,
                         struct presence__slab *slab, void *p);
/* Give every chunk back (the registry is going: blocks need no free). */
void presence__slab_destroy(struct presence_registry *reg,
                            struct presence__slab *slab);

#endif
