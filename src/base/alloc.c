/*
 * The registry's allocator. Everything the library allocates goes through
 * these three functions, so that tests can fail any allocation.
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

static void *default_malloc(size_t size, void *user_data)
{
    (void)user_data;
    return malloc(size);
}

static void *default_realloc(void *ptr, size_t old_size, size_t new_size,
                             void *user_data)
{
    (void)old_size;
    (void)user_data;
    return realloc(ptr, new_size);
}

static void default_free(void *ptr, size_t size, void *user_data)
{
    (void)size;
    (void)user_data;
    free(ptr);
}

void presence__default_allocator(presence_allocator *out)
{
    out->malloc_fn = default_malloc;
    out->realloc_fn = default_realloc;
    out->free_fn = default_free;
    out->user_data = NULL;
}

void *presence__malloc(const presence_allocator *alloc, size_t size)
{
    if (size == 0 || size == SIZE_MAX) {
        return NULL;
    }
    return alloc->malloc_fn(size, alloc->user_data);
}

void *presence__realloc(const presence_allocator *alloc, void *ptr, size_t old_size,
                        size_t new_size)
{
    if (ptr == NULL) {
        return presence__malloc(alloc, new_size);
    }
    if (new_size == 0 || new_size == SIZE_MAX) {
        return NULL;
    }
    if (alloc->realloc_fn != NULL) {
        return alloc->realloc_fn(ptr, old_size, new_size,
                                     alloc->user_data);
    }
    void *fresh = presence__malloc(alloc, new_size);
    if (fresh == NULL) {
        return NULL;
    }
    memcpy(fresh, ptr, old_size < new_size ? old_size : new_size);
    presence__free(alloc, ptr, old_size);
    return fresh;
}

void presence__free(const presence_allocator *alloc, void *ptr, size_t size)
{
    if (ptr != NULL) {
        alloc->free_fn(ptr, size, alloc->user_data);
    }
}

size_t presence__add_size(size_t a, size_t b)
{
    return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

size_t presence__mul_size(size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a) {
        return SIZE_MAX;
    }
    return a * b;
}
