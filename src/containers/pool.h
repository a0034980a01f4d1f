/*
 * A pool of small variable-size records (channels, clients, users), one
 * per shard and kind.
 *
 * Why not malloc: malloc hands out records in the order they are asked
 * for, so the channel records end up scattered over the whole heap,
 * between memberships, tables and client records, one per 4 KiB page. A
 * lookup then costs a TLB miss on top of the cache miss; on a VM, with
 * nested page tables, that doubled the cost of presence_stats (measured:
 * docs/PERFORMANCE-HISTORY.md). Here records of one kind and shard are packed
 * together in chunks of about a page, by size class (8-byte steps up to
 * POOL_MAX_BLOCK bytes; larger records go to the allocator alone).
 *
 * The first 2 bytes of every record belong to the pool (struct
 * presence__pool_block, like the slab's): the block's offset in its chunk,
 * which is how a free finds the chunk, and the chunk its pool, without a
 * search or the record's hash. A chunk whose
 * blocks are all free goes back to the allocator.
 *
 * A pool can also place its records by the cache line (clients): a scan
 * that reads one part of each record of many (a query's member strings)
 * is bound by the lines it loads. A record whose part from byte `hot` on
 * fits a line then starts where that part starts one, in a block of whole
 * lines: one line where it took two (a client with a 32-byte conn_info:
 * a block of 128 bytes instead of 112; docs/PERFORMANCE.md). A longer
 * record is packed: that part takes as many lines either way.
 *
 * Threads: each pool has its own mutex (none in a single-threaded
 * registry), because records are freed with their last reference, which
 * a queued event may hold after every shard lock is gone. Records are made
 * and freed far less often than they are read, so the lock costs little.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_POOL_H
#define PRESENCE_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "presence.h"


/* The head every pooled record starts with. */
struct presence__pool_block {
    /* From its chunk's start (chunks are under 4 KiB); 0: allocated
     * alone. 16 bits: a record may use the next two bytes. */
    uint16_t offset;
};

#define PRESENCE__POOL_MAX_BLOCK 256u
#define PRESENCE__POOL_CLASSES (PRESENCE__POOL_MAX_BLOCK / 8u)

struct presence__pool_chunk;

struct presence__pool {
    pthread_mutex_t lock; /* taken only when threaded */
    bool threaded;
    /* Records start `lead` bytes into a line (see above), or anywhere
     * on an 8-byte boundary. */
    bool lined;
    uint8_t lead;
    uint16_t fit; /* the largest record placed by the line */
    /* Per size class, the chunks with a free block. */
    struct presence__pool_chunk *partial[PRESENCE__POOL_CLASSES];
    /* and the blocks its next chunk will hold. */
    uint16_t next_blocks[PRESENCE__POOL_CLASSES];
};

/* Records of the pool are packed. */
#define PRESENCE__POOL_PACKED SIZE_MAX
/* A pool whose records start so that their byte `hot` starts a cache
 * line (`hot` rounded down to 8 bytes: records stay 8-byte aligned), or
 * PRESENCE__POOL_PACKED. */
void presence__pool_init(struct presence__pool *pool, bool threaded,
                         size_t hot);
/* Give every chunk back: every record must have been freed. */
void presence__pool_destroy(const presence_allocator *alloc,
                            struct presence__pool *pool);
/* A record of `size` bytes (at least a struct presence__pool_block), its
 * head set; NULL when memory runs out. */
void *presence__pool_alloc(const presence_allocator *alloc,
                           struct presence__pool *pool, size_t size);
/* Zero a fresh record of `size` bytes but for the pool's head. */
static inline void presence__pool_clear(void *record, size_t size)
{
    memset((unsigned char *)record + sizeof(struct presence__pool_block), 0,
           size - sizeof(struct presence__pool_block));
}

/* Free a record; size as given to presence__pool_alloc. Its chunk knows
 * its pool, so the caller need not find it again. */
void presence__pool_free(const presence_allocator *alloc, void *p, size_t size);

#endif
