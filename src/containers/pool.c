/*
 * The record pool (see pool.h).
 * SPDX-License-Identifier: MIT
 */
#include <stdbool.h>
#include <string.h>

#include "containers/pool.h"
#include "containers/slab.h"
#include "base/alloc.h"
#include "base/hash.h" /* PRESENCE__LINE_BYTES */
#include "base/lock.h"

/* Under AddressSanitizer every record is allocated alone, as the slab's
 * blocks are, so that a use after free is caught, not hidden in a chunk. */
#define BYPASS PRESENCE__SLAB_BYPASS

/* The largest chunk asks for one 4 KiB page with malloc's 8-byte header,
 * and a little to spare. A class's first chunks are smaller (MIN_BLOCKS,
 * then twice as many each time), so that a small registry, whose records
 * are spread over 64 shards, does not hold a page per shard and class. */
#define CHUNK_BYTES 4080u
_Static_assert(CHUNK_BYTES <= UINT16_MAX, "a block's offset fits its head");
#define MIN_BLOCKS 4u

/* A free block links the next after the pool's head and its padding. */
#define FREE_LINK_AT 8u
#define MIN_BLOCK 16u
#define LINE PRESENCE__LINE_BYTES /* a lined pool's unit (pool.h) */

struct presence__pool_chunk {
    struct presence__pool *pool;              /* the pool it belongs to */
    struct presence__pool_chunk *prev, *next; /* its class's partial list */
    void *free;        /* freed blocks, linked at FREE_LINK_AT */
    uint32_t block;    /* bytes a block takes */
    uint32_t capacity; /* blocks in the chunk */
    uint32_t used;     /* blocks handed out */
    uint32_t fresh;    /* blocks never handed out start here */
    uint32_t bytes;    /* what the allocator gave, `pad` bytes before it */
    uint16_t first;    /* the first block, from the chunk's start */
    uint8_t pad;       /* a lined chunk starts on a line */
    bool listed;       /* in the partial list */
};

/* The largest block's first block lies at most a line past the header,
 * and a lined chunk may start up to a line past what it was given. */
_Static_assert(sizeof(struct presence__pool_chunk) + 2 * LINE +
                       PRESENCE__POOL_MAX_BLOCK * 8 <=
                   CHUNK_BYTES,
               "a chunk holds at least 8 of the largest blocks");
_Static_assert(PRESENCE__POOL_MAX_BLOCK % LINE == 0,
               "a lined pool's largest block is a size class");

/* Whether a lined pool's chunk of this block size places its blocks by
 * the line: every class of whole lines does (the records that fit a line
 * from `hot` on, and any others of that size). */
static bool lined_block(const struct presence__pool *pool, size_t block)
{
    return pool->lined && block % LINE == 0;
}

/* Where a chunk's first block lies: after its header, and in a lined
 * chunk `lead` bytes into a line (the chunk starts on one). */
static size_t first_block(const struct presence__pool *pool, size_t block)
{
    size_t header = sizeof(struct presence__pool_chunk);
    if (!lined_block(pool, block)) {
        return header;
    }
    size_t first = header / LINE * LINE + pool->lead;
    return first >= header ? first : first + LINE;
}

/* Bytes asked of the allocator for a chunk of `blocks` blocks: for a
 * lined one, room to move its start to a line. */
static size_t chunk_request(const struct presence__pool *pool, size_t block,
                            size_t blocks)
{
    return first_block(pool, block) + blocks * block +
           (lined_block(pool, block) ? LINE - 1 : 0);
}

void presence__pool_init(struct presence__pool *pool, bool threaded,
                         size_t hot)
{
    pool->lined = hot != PRESENCE__POOL_PACKED;
    pool->lead = 0;
    pool->fit = 0;
    if (pool->lined) {
        /* From `hot` rounded down to 8 bytes: records stay 8-byte aligned. */
        size_t line_at = hot / 8u * 8u;
        pool->lead = (uint8_t)((LINE - line_at % LINE) % LINE);
        pool->fit = line_at + LINE < PRESENCE__POOL_MAX_BLOCK
                        ? (uint16_t)(line_at + LINE)
                        : PRESENCE__POOL_MAX_BLOCK;
    }
    memset(pool->partial, 0, sizeof pool->partial);
    memset(pool->next_blocks, 0, sizeof pool->next_blocks);
    pool->threaded = threaded;
    presence__lock_init(threaded, &pool->lock);
}

static void list_add(struct presence__pool_chunk **head,
                     struct presence__pool_chunk *c)
{
    c->prev = NULL;
    c->next = *head;
    if (*head != NULL) {
        (*head)->prev = c;
    }
    *head = c;
    c->listed = true;
}

static void list_remove(struct presence__pool_chunk **head,
                        struct presence__pool_chunk *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        *head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->listed = false;
}

void presence__pool_destroy(const presence_allocator *alloc,
                            struct presence__pool *pool)
{
    /* The registry freed every record first, and empty chunks go back as
     * they empty, so this finds nothing; it is the pool's own guarantee. */
    for (size_t i = 0; i < PRESENCE__POOL_CLASSES; i++) {
        struct presence__pool_chunk *c = pool->partial[i];
        while (c != NULL) {
            struct presence__pool_chunk *next = c->next;
            presence__free(alloc, (unsigned char *)c - c->pad, c->bytes);
            c = next;
        }
        pool->partial[i] = NULL;
    }
    presence__lock_destroy(pool->threaded, &pool->lock);
}

/* Class i holds blocks of (i + 1) * 8 bytes; in a lined pool a record
 * that fits a line from `hot` on takes whole lines. */
static size_t class_of(const struct presence__pool *pool, size_t size)
{
    size_t s = size < MIN_BLOCK ? MIN_BLOCK : size;
    size_t step = pool->lined && s <= pool->fit ? LINE : 8u;
    return (s + step - 1u) / step * step / 8u - 1u;
}

static uint32_t max_blocks(const struct presence__pool *pool, size_t block)
{
    return (uint32_t)((CHUNK_BYTES - chunk_request(pool, block, 0)) / block);
}

static struct presence__pool_chunk *
chunk_new(const presence_allocator *alloc, struct presence__pool *pool, size_t cls)
{
    size_t block = (cls + 1) * 8u;
    uint32_t most = max_blocks(pool, block);
    uint32_t blocks = pool->next_blocks[cls];
    if (blocks < MIN_BLOCKS) {
        blocks = MIN_BLOCKS;
    }
    if (blocks > most) {
        blocks = most;
    }
    size_t bytes = chunk_request(pool, block, blocks);
    unsigned char *given = presence__malloc(alloc, bytes);
    if (given == NULL) {
        return NULL;
    }
    size_t pad =
        lined_block(pool, block) ? (LINE - (uintptr_t)given % LINE) % LINE : 0;
    struct presence__pool_chunk *c = (void *)(given + pad);
    c->pool = pool;
    c->free = NULL;
    c->block = (uint32_t)block;
    c->capacity = blocks;
    c->used = 0;
    c->fresh = 0;
    c->bytes = (uint32_t)bytes;
    c->first = (uint16_t)first_block(pool, block);
    c->pad = (uint8_t)pad;
    pool->next_blocks[cls] = (uint16_t)(blocks * 2 < most ? blocks * 2 : most);
    return c;
}

void *presence__pool_alloc(const presence_allocator *alloc, struct presence__pool *pool,
                           size_t size)
{
    if (BYPASS || size > PRESENCE__POOL_MAX_BLOCK) {
        struct presence__pool_block *alone = presence__malloc(alloc, size);
        if (alone != NULL) {
            alone->offset = 0;
        }
        return alone;
    }
    size_t cls = class_of(pool, size);
    presence__lock(pool->threaded, &pool->lock);
    struct presence__pool_chunk *c = pool->partial[cls];
    if (c == NULL) {
        c = chunk_new(alloc, pool, cls);
        if (c == NULL) {
            presence__unlock(pool->threaded, &pool->lock);
            return NULL;
        }
        list_add(&pool->partial[cls], c);
    }
    unsigned char *block;
    if (c->free != NULL) {
        block = c->free;
        memcpy(&c->free, block + FREE_LINK_AT, sizeof c->free);
    } else {
        block = (unsigned char *)c + c->first + (size_t)c->fresh * c->block;
        c->fresh++;
    }
    if (++c->used == c->capacity) {
        list_remove(&pool->partial[cls], c);
    }
    presence__unlock(pool->threaded, &pool->lock);
    struct presence__pool_block head = {
        (uint16_t)(block - (unsigned char *)c)};
    memcpy(block, &head, sizeof head);
    return block;
}

void presence__pool_free(const presence_allocator *alloc, void *p, size_t size)
{
    unsigned char *block = p;
    struct presence__pool_block head;
    memcpy(&head, block, sizeof head);
    if (head.offset == 0) {
        presence__free(alloc, p, size);
        return;
    }
    struct presence__pool_chunk *c =
        (struct presence__pool_chunk *)(void *)(block - head.offset);
    struct presence__pool *pool = c->pool;
    size_t cls = class_of(pool, size);
    struct presence__pool_chunk **list = &pool->partial[cls];
    presence__lock(pool->threaded, &pool->lock);
    memcpy(block + FREE_LINK_AT, &c->free, sizeof c->free);
    c->free = block;
    if (!c->listed) {
        list_add(list, c);
    }
    /* Empty: back to the allocator, and the class's next chunk smaller. */
    bool give_back = --c->used == 0;
    unsigned char *given = (unsigned char *)c - c->pad;
    size_t bytes = c->bytes;
    if (give_back) {
        list_remove(list, c);
        pool->next_blocks[cls] = (uint16_t)(c->capacity / 2);
    }
    presence__unlock(pool->threaded, &pool->lock);
    if (give_back) {
        presence__free(alloc, given, bytes);
    }
}
