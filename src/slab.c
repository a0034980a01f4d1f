/*
 * The block slab (see slab.h).
 * SPDX-License-Identifier: MIT
 */
#include <stdalign.h>
#include <string.h>

#include "internal.h"

/* Under AddressSanitizer every block is its own allocation, so that a use
 * after free of a membership is caught, not hidden inside a chunk. */
#if defined(__SANITIZE_ADDRESS__)
#define SLAB_BYPASS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_BYPASS 1
#endif
#endif
#ifndef SLAB_BYPASS
#define SLAB_BYPASS 0
#endif

#define BLOCKS_PER_CHUNK 64u
/* Blocks hold pointers and 64-bit integers, nothing wider. */
#define BLOCK_ALIGN (alignof(int64_t) > alignof(void *) ? alignof(int64_t) \
                                                        : alignof(void *))

struct presence__slab_chunk {
    struct presence__slab_chunk *prev, *next; /* the partial list */
    void *free;      /* freed blocks, linked through their first bytes */
    unsigned used;   /* blocks handed out */
    unsigned fresh;  /* blocks never handed out start here */
    bool listed;     /* in the partial list */
    alignas(BLOCK_ALIGN) unsigned char blocks[];
};

/* A block: the chunk it belongs to, then the payload. */
struct block_header {
    struct presence__slab_chunk *chunk;
};

static size_t stride(const struct presence__slab *slab)
{
    size_t a = BLOCK_ALIGN;
    size_t n = sizeof(struct block_header) + slab->block;
    return (n + a - 1) / a * a;
}

static size_t chunk_bytes(const struct presence__slab *slab)
{
    return sizeof(struct presence__slab_chunk) + BLOCKS_PER_CHUNK * stride(slab);
}

void presence__slab_init(struct presence__slab *slab, size_t block)
{
    memset(slab, 0, sizeof *slab);
    slab->block = block;
}

static void list_add(struct presence__slab *slab,
                     struct presence__slab_chunk *c)
{
    c->prev = NULL;
    c->next = slab->partial;
    if (slab->partial != NULL) {
        slab->partial->prev = c;
    }
    slab->partial = c;
    c->listed = true;
}

static void list_remove(struct presence__slab *slab,
                        struct presence__slab_chunk *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        slab->partial = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->listed = false;
}

void *presence__slab_alloc(presence_registry *reg, struct presence__slab *slab)
{
    if (SLAB_BYPASS) {
        return presence__malloc(reg, slab->block);
    }
    struct presence__slab_chunk *c = slab->partial;
    if (c == NULL) {
        c = slab->spare;
        slab->spare = NULL;
        if (c == NULL) {
            c = presence__malloc(reg, chunk_bytes(slab));
            if (c == NULL) {
                return NULL;
            }
        }
        memset(c, 0, sizeof *c);
        list_add(slab, c);
    }
    struct block_header *h;
    if (c->free != NULL) {
        h = (struct block_header *)((unsigned char *)c->free -
                                    sizeof(struct block_header));
        memcpy(&c->free, c->free, sizeof c->free);
    } else {
        h = (struct block_header *)(c->blocks + c->fresh * stride(slab));
        c->fresh++;
    }
    h->chunk = c;
    if (++c->used == BLOCKS_PER_CHUNK) {
        list_remove(slab, c);
    }
    return h + 1;
}

void presence__slab_free(presence_registry *reg, struct presence__slab *slab,
                         void *p)
{
    if (SLAB_BYPASS) {
        presence__free(reg, p, slab->block);
        return;
    }
    struct block_header *h = (struct block_header *)p - 1;
    struct presence__slab_chunk *c = h->chunk;
    memcpy(p, &c->free, sizeof c->free);
    c->free = p;
    if (!c->listed) {
        list_add(slab, c);
    }
    if (--c->used > 0) {
        return;
    }
    /* Empty: keep one back against alloc/free ping-pong, free the rest. */
    list_remove(slab, c);
    if (slab->spare == NULL) {
        slab->spare = c;
    } else {
        presence__free(reg, c, chunk_bytes(slab));
    }
}

void presence__slab_destroy(presence_registry *reg,
                            struct presence__slab *slab)
{
    /* The registry freed every block first, so every chunk is empty: it
     * is the spare, or was given back. */
    presence__free(reg, slab->spare, chunk_bytes(slab));
    slab->spare = NULL;
}
