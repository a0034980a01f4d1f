/*
 * The block slab (see slab.h).
 * SPDX-License-Identifier: MIT
 */
#include <stdalign.h>
#include <string.h>

#include "containers/slab.h"
#include "base/alloc.h"
#include "base/hash.h"

/* Short names for the layout (slab.h). */
#define BYPASS PRESENCE__SLAB_BYPASS
#define CHUNK_BITS PRESENCE__SLAB_CHUNK_BITS
#define PAGE_BITS PRESENCE__SLAB_PAGE_BITS
#define TOP_BITS PRESENCE__SLAB_TOP_BITS
#define BLOCKS_PER_CHUNK PRESENCE__SLAB_BLOCKS_PER_CHUNK
#define PAGE_ENTRIES PRESENCE__SLAB_PAGE_ENTRIES
#define MAX_CHUNKS PRESENCE__SLAB_MAX_CHUNKS
#define BLOCK_ALIGN PRESENCE__SLAB_BLOCK_ALIGN

/* A freed block keeps its number (a block's place never changes) and
 * links the chunk's free list after it. */
#define FREE_LINK_AT 8u

static size_t chunk_bytes(const struct presence__slab *slab)
{
    return sizeof(struct presence__slab_chunk) + BLOCKS_PER_CHUNK * slab->block;
}

#define LINKS_BYTES (2u * BLOCKS_PER_CHUNK * sizeof(uint32_t))

static void chunk_free(const presence_allocator *alloc, struct presence__slab *slab,
                       struct presence__slab_chunk *c)
{
    presence__free(alloc, c->links, LINKS_BYTES);
    presence__free(alloc, c, chunk_bytes(slab));
}

void presence__slab_init(struct presence__slab *slab, size_t block)
{
    memset(slab, 0, sizeof *slab);
    /* Room for the number and the free-list link after it; the stride. */
    size_t n = block > FREE_LINK_AT + sizeof(void *)
                   ? block
                   : FREE_LINK_AT + sizeof(void *);
    slab->block = (n + BLOCK_ALIGN - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
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

/* An empty chunk with a number: the spare, or a new one. Fails without
 * change but for directory pages made on the way (invisible). */
static struct presence__slab_chunk *chunk_take(const presence_allocator *alloc,
                                               struct presence__slab *slab)
{
    struct presence__slab_dir *dir = slab->dir;
    struct presence__slab_chunk *c = dir->spare;
    if (c != NULL) {
        dir->spare = NULL;
        return c;
    }
    uint32_t number = dir->free_head;
    if (number == PRESENCE__SLAB_NONE) {
        /* The last number is not used: with shard 63 it would make
         * PRESENCE__SLAB_NONE. */
        if (dir->high == MAX_CHUNKS - 1) {
            return NULL;
        }
        number = dir->high;
    }
    union presence__slab_entry **page = &dir->pages[number >> PAGE_BITS];
    if (*page == NULL) {
        *page = presence__malloc(alloc, PAGE_ENTRIES * sizeof **page);
        if (*page == NULL) {
            return NULL;
        }
        memset(*page, 0, PAGE_ENTRIES * sizeof **page);
    }
    c = presence__malloc(alloc, chunk_bytes(slab));
    if (c == NULL) {
        return NULL;
    }
    c->links = NULL;
    if (number == dir->free_head) {
        dir->free_head = presence__slab_entry(dir, number)->next_free;
    } else {
        dir->high++;
    }
    presence__slab_entry(dir, number)->chunk = c;
    c->number = number;
    return c;
}

void *presence__slab_alloc(const presence_allocator *alloc, struct presence__slab *slab)
{
    if (slab->dir == NULL) {
        struct presence__slab_dir *dir = presence__malloc(alloc, sizeof *dir);
        if (dir == NULL) {
            return NULL;
        }
        memset(dir, 0, sizeof *dir);
        dir->free_head = PRESENCE__SLAB_NONE;
        slab->dir = dir;
    }
    struct presence__slab_chunk *c = slab->partial;
    if (c == NULL) {
        c = chunk_take(alloc, slab);
        if (c == NULL) {
            return NULL;
        }
        c->free = NULL;
        c->used = 0;
        c->fresh = 0;
        list_add(slab, c);
        slab->dir->in_use++;
    }
    unsigned char *block;
    if (c->free != NULL) {
        block = c->free;
        memcpy(&c->free, block + FREE_LINK_AT, sizeof c->free);
    } else {
        block = c->blocks + c->fresh * slab->block;
        struct presence__slab_block head = {(c->number << CHUNK_BITS) |
                                            c->fresh};
        memcpy(block, &head, sizeof head);
        c->fresh++;
    }
    if (++c->used == BLOCKS_PER_CHUNK) {
        list_remove(slab, c);
    }
    return block;
}

/* The slab is empty and its directory grew past one page: keep the first
 * page and the spare (as number 0), give the other pages back. No number
 * is referenced once every block is free, so numbering starts again; a
 * peak leaves nothing behind that grows with it. */
static void renumber_empty(const presence_allocator *alloc,
                           struct presence__slab_dir *dir)
{
    for (size_t i = 1; i < (1u << TOP_BITS); i++) {
        if (dir->pages[i] != NULL) {
            presence__free(alloc, dir->pages[i],
                           PAGE_ENTRIES * sizeof *dir->pages[i]);
            dir->pages[i] = NULL;
        }
    }
    memset(dir->pages[0], 0, PAGE_ENTRIES * sizeof *dir->pages[0]);
    dir->free_head = PRESENCE__SLAB_NONE;
    dir->high = 0;
    if (dir->spare != NULL) {
        /* Its blocks get their numbers again when handed out (fresh). */
        dir->spare->number = 0;
        dir->pages[0][0].chunk = dir->spare;
        dir->high = 1;
    }
}

void presence__slab_free(const presence_allocator *alloc, struct presence__slab *slab,
                         void *p)
{
    unsigned char *block = p;
    struct presence__slab_block head;
    memcpy(&head, block, sizeof head);
    struct presence__slab_dir *dir = slab->dir;
    uint32_t number = head.slab_index >> CHUNK_BITS;
    struct presence__slab_chunk *c = presence__slab_entry(dir, number)->chunk;
    memcpy(block + FREE_LINK_AT, &c->free, sizeof c->free);
    c->free = block;
    if (!c->listed) {
        list_add(slab, c);
    }
    if (--c->used > 0) {
        return;
    }
    /* Empty: keep one back against alloc/free ping-pong, free the rest. */
    list_remove(slab, c);
    dir->in_use--;
    if (dir->spare == NULL && !BYPASS) {
        dir->spare = c;
    } else {
        presence__slab_entry(dir, number)->next_free = dir->free_head;
        dir->free_head = number;
        chunk_free(alloc, slab, c);
    }
    if (dir->in_use == 0 && dir->high > PAGE_ENTRIES) {
        renumber_empty(alloc, dir);
    }
}

int presence__slab_links_prepare(const presence_allocator *alloc,
                                 struct presence__slab *slab, void *block)
{
    struct presence__slab_block head;
    memcpy(&head, block, sizeof head);
    struct presence__slab_chunk *c =
        presence__slab_entry(slab->dir, head.slab_index >> CHUNK_BITS)->chunk;
    if (c->links != NULL) {
        return PRESENCE_OK;
    }
    uint32_t *links = presence__malloc(alloc, LINKS_BYTES);
    if (links == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    for (size_t i = 0; i < 2u * BLOCKS_PER_CHUNK; i++) {
        links[i] = PRESENCE__SLAB_NONE;
    }
    c->links = links;
    return PRESENCE_OK;
}

void presence__slab_destroy(const presence_allocator *alloc,
                            struct presence__slab *slab)
{
    /* The registry freed every block first, so every chunk is empty: it
     * is the spare, or was given back. */
    struct presence__slab_dir *dir = slab->dir;
    if (dir == NULL) {
        return;
    }
    if (dir->spare != NULL) {
        chunk_free(alloc, slab, dir->spare);
    }
    for (size_t i = 0; i < (1u << TOP_BITS); i++) {
        if (dir->pages[i] != NULL) {
            presence__free(alloc, dir->pages[i],
                           PAGE_ENTRIES * sizeof *dir->pages[i]);
        }
    }
    presence__free(alloc, dir, sizeof *dir);
    slab->dir = NULL;
}
