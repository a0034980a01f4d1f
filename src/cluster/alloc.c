/*
 * The handle's allocator: presence_cluster_config::allocator, with the
 * shape of the registry's (presence_allocator), or malloc/realloc/free.
 * Everything libpresence-cluster allocates itself goes through these, so
 * that a test can fail any of its allocations; each free is told the size
 * that was asked for. (hiredis allocates its contexts and replies through
 * its own allocator: presence_cluster.h says so.)
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "cluster_internal.h"

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

bool presence__cl_alloc_init(presence_allocator *out,
                             const presence_allocator *given)
{
    if (given != NULL && (given->malloc_fn != NULL ||
                          given->realloc_fn != NULL ||
                          given->free_fn != NULL)) {
        if (given->malloc_fn == NULL || given->free_fn == NULL) {
            return false;
        }
        *out = *given;
        return true;
    }
    *out = (presence_allocator){default_malloc, default_realloc,
                                default_free, NULL};
    return true;
}

void *presence__cl_malloc(const presence_allocator *a, size_t size)
{
    if (size == 0 || size == SIZE_MAX) {
        return NULL;
    }
    return a->malloc_fn(size, a->user_data);
}

void *presence__cl_calloc(const presence_allocator *a, size_t n, size_t size)
{
    size_t total = presence__cl_mul_size(n, size);
    void *p = presence__cl_malloc(a, total);
    if (p != NULL) {
        memset(p, 0, total);
    }
    return p;
}

void *presence__cl_realloc(const presence_allocator *a, void *ptr,
                           size_t old_size, size_t new_size)
{
    if (ptr == NULL) {
        return presence__cl_malloc(a, new_size);
    }
    if (new_size == 0 || new_size == SIZE_MAX) {
        return NULL;
    }
    if (a->realloc_fn != NULL) {
        return a->realloc_fn(ptr, old_size, new_size, a->user_data);
    }
    void *fresh = presence__cl_malloc(a, new_size);
    if (fresh != NULL) {
        memcpy(fresh, ptr, old_size < new_size ? old_size : new_size);
        presence__cl_free(a, ptr, old_size);
    }
    return fresh;
}

void presence__cl_free(const presence_allocator *a, void *ptr, size_t size)
{
    if (ptr != NULL) {
        a->free_fn(ptr, size, a->user_data);
    }
}

char *presence__cl_strdup(const presence_allocator *a, const char *s)
{
    return presence__cl_strndup(a, s, strlen(s));
}

char *presence__cl_strndup(const presence_allocator *a, const char *s,
                           size_t len)
{
    char *p = presence__cl_malloc(a, len + 1);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

void presence__cl_free_str(const presence_allocator *a, char *s)
{
    if (s != NULL) {
        presence__cl_free(a, s, strlen(s) + 1);
    }
}

size_t presence__cl_mul_size(size_t a, size_t b)
{
    if (a != 0 && b > SIZE_MAX / a) {
        return SIZE_MAX;
    }
    return a * b;
}
