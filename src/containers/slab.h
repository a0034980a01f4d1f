/*
 * A slab of fixed-size blocks (memberships), one per channel shard and
 * used under its lock. malloc spends ~200 instructions on a fresh small
 * block and keeps an 8-byte header anyway; here a block costs a pointer
 * pop and no header.
 *
 * Every block has a 32-bit number in its slab, fixed for its life, so that
 * records can link to each other with 4 bytes instead of 8 (memberships'
 * touch and client lists). Blocks come in chunks of 256; a directory, two
 * levels of chunk pointers that never move once made, turns a number into
 * an address. A chunk whose blocks are all free goes back to the
 * allocator (memory returns after a load peak), and its number is reused.
 *
 * The first 4 bytes of every block belong to the slab and hold its number
 * (struct presence__slab_block); the caller's structure starts with that
 * field and leaves it alone.
 *
 * Threads: allocating and freeing need the shard's lock. Turning a number
 * into an address does not, when the caller got the number through some
 * lock that the block's maker held after making it (as a client's list is
 * under its client's shard): directory entries of live blocks never
 * change.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_SLAB_H
#define PRESENCE_SLAB_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presence.h"


/* Under AddressSanitizer every block is a chunk of its own, allocated and
 * freed with it (no spare is kept), so that a use after free of a
 * membership is caught, not hidden inside a chunk. */
#if defined(__SANITIZE_ADDRESS__)
#define PRESENCE__SLAB_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PRESENCE__SLAB_BYPASS 1
#endif
#endif
#ifndef PRESENCE__SLAB_BYPASS
#define PRESENCE__SLAB_BYPASS 0
#endif

/* The head every block starts with: the slab's, set once per block. */
struct presence__slab_block {
    uint32_t slab_index;
};

/* Block numbers fit in 26 bits (64M blocks a slab), so that a number and
 * a 6-bit shard make a 32-bit reference; PRESENCE__SLAB_NONE is none. */
#define PRESENCE__SLAB_INDEX_BITS 26u
#define PRESENCE__SLAB_NONE UINT32_MAX

struct presence__slab {
    struct presence__slab_dir *dir;       /* NULL until the first block */
    struct presence__slab_chunk *partial; /* chunks with a free block */
    size_t block; /* bytes a block takes, the slab's 4 included */
};

/* block: the size of the caller's structure, which begins with a
 * struct presence__slab_block and is aligned like a pointer. */
void presence__slab_init(struct presence__slab *slab, size_t block);
/* NULL when memory runs out or the slab holds 2^26 blocks. */
void *presence__slab_alloc(const presence_allocator *alloc,
                           struct presence__slab *slab);
void presence__slab_free(const presence_allocator *alloc,
                         struct presence__slab *slab, void *p);
/* ---- the layout, here so that presence__slab_at inlines ---------------- */

/* A block number is (chunk number << CHUNK_BITS) | place in the chunk; a
 * chunk number is (page << PAGE_BITS) | place in the page. */
#if PRESENCE__SLAB_BYPASS
#define PRESENCE__SLAB_CHUNK_BITS 0u
#define PRESENCE__SLAB_PAGE_BITS 12u
#define PRESENCE__SLAB_TOP_BITS 8u /* 2^20 blocks under the sanitizer */
#else
/* 256 blocks a chunk (8 KiB of memberships): a million memberships are
 * 3,900 chunks to malloc and free, not the 15,600 of 64-block ones
 * (malloc's frees, and the sorting of them a later malloc does, took a
 * tenth of a mass leave): leave 1.06-1.13x, join 1.03-1.05x;
 * the directory's top level is 2 KiB instead of 8, so a slab's first
 * membership costs what it did. */
#define PRESENCE__SLAB_CHUNK_BITS 8u
#define PRESENCE__SLAB_PAGE_BITS 10u
#define PRESENCE__SLAB_TOP_BITS 8u
#endif
_Static_assert(PRESENCE__SLAB_CHUNK_BITS + PRESENCE__SLAB_PAGE_BITS +
                       PRESENCE__SLAB_TOP_BITS <=
                   PRESENCE__SLAB_INDEX_BITS,
               "block numbers must fit in 26 bits");
#define PRESENCE__SLAB_BLOCKS_PER_CHUNK (1u << PRESENCE__SLAB_CHUNK_BITS)
#define PRESENCE__SLAB_PAGE_ENTRIES (1u << PRESENCE__SLAB_PAGE_BITS)
#define PRESENCE__SLAB_MAX_CHUNKS                                              \
    (1u << (PRESENCE__SLAB_PAGE_BITS + PRESENCE__SLAB_TOP_BITS))

/* Blocks hold pointers and 64-bit integers, nothing wider. */
#define PRESENCE__SLAB_BLOCK_ALIGN                                             \
    (alignof(int64_t) > alignof(void *) ? alignof(int64_t) : alignof(void *))

struct presence__slab_chunk {
    struct presence__slab_chunk *prev, *next; /* the partial list */
    void *free;      /* freed blocks, linked through their bytes 8..15 */
    /* Two 32-bit links a block, made when a block of the chunk first
     * needs them (presence__slab_links_prepare), else NULL: memberships
     * keep their touch order here, and only those in namespaces with a
     * TTL have one. */
    uint32_t *links;
    uint32_t number; /* in the directory */
    unsigned used;   /* blocks handed out */
    unsigned fresh;  /* blocks never handed out start here */
    bool listed;     /* in the partial list */
    alignas(PRESENCE__SLAB_BLOCK_ALIGN) unsigned char blocks[];
};

/* A directory entry: a live chunk, or the next free number. */
union presence__slab_entry {
    struct presence__slab_chunk *chunk;
    uint32_t next_free;
};

struct presence__slab_dir {
    uint32_t high;      /* chunk numbers below it have been handed out */
    uint32_t free_head; /* a free number below high, or PRESENCE__SLAB_NONE */
    uint32_t in_use;    /* chunks with a block handed out */
    struct presence__slab_chunk *spare; /* one empty chunk kept back */
    /* Pages of entries, made when first needed, never moved; all but the
     * first go back when the slab empties (its numbers start again). */
    union presence__slab_entry *pages[1u << PRESENCE__SLAB_TOP_BITS];
};

static inline union presence__slab_entry *
presence__slab_entry(const struct presence__slab_dir *dir, uint32_t number)
{
    return &dir->pages[number >> PRESENCE__SLAB_PAGE_BITS]
                      [number & (PRESENCE__SLAB_PAGE_ENTRIES - 1)];
}

/* The live block with this number. */
static inline void *presence__slab_at(const struct presence__slab *slab,
                                      uint32_t index)
{
    struct presence__slab_chunk *c =
        presence__slab_entry(slab->dir, index >> PRESENCE__SLAB_CHUNK_BITS)
            ->chunk;
    return c->blocks +
           (index & (PRESENCE__SLAB_BLOCKS_PER_CHUNK - 1)) * slab->block;
}

/* Make sure the chunk of this block has its links (see the chunk's
 * `links`); fails without change. New links are PRESENCE__SLAB_NONE. */
int presence__slab_links_prepare(const presence_allocator *alloc,
                                 struct presence__slab *slab, void *block);

/* The two links of the live block with this number, whose chunk has them. */
static inline uint32_t *presence__slab_links(const struct presence__slab *slab,
                                             uint32_t index)
{
    struct presence__slab_chunk *c =
        presence__slab_entry(slab->dir, index >> PRESENCE__SLAB_CHUNK_BITS)
            ->chunk;
    return c->links + 2u * (index & (PRESENCE__SLAB_BLOCKS_PER_CHUNK - 1));
}

/* Give every chunk back (the registry is going: blocks need no free). */
void presence__slab_destroy(const presence_allocator *alloc,
                            struct presence__slab *slab);

#endif
