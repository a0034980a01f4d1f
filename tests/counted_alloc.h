/*
 * An allocator that counts live bytes and can be told to fail, for the
 * tests that build a private part of the library from its source.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_TEST_COUNTED_ALLOC_H
#define PRESENCE_TEST_COUNTED_ALLOC_H

#include <stdbool.h>
#include <stdlib.h>

#include "presence.h"

struct counted {
    long long live;
    bool fail;
};

static void *counted_malloc(size_t size, void *user_data)
{
    struct counted *c = user_data;
    if (c->fail) {
        return NULL;
    }
    c->live += (long long)size;
    return malloc(size);
}

static void *counted_realloc(void *ptr, size_t old_size, size_t new_size,
                             void *user_data)
{
    struct counted *c = user_data;
    if (c->fail) {
        return NULL;
    }
    void *p = realloc(ptr, new_size);
    if (p != NULL) {
        c->live += (long long)new_size - (long long)old_size;
    }
    return p;
}

static void counted_free(void *ptr, size_t size, void *user_data)
{
    struct counted *c = user_data;
    if (ptr != NULL) {
        c->live -= (long long)size;
    }
    free(ptr);
}

static inline presence_allocator counted_allocator(struct counted *c)
{
    presence_allocator a = {counted_malloc, counted_realloc, counted_free, c};
    return a;
}

#endif
