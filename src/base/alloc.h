/*
 * The allocator every part of the library allocates through (the
 * registry's, given at creation), so that tests can fail any allocation,
 * and size arithmetic that cannot overflow.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_BASE_ALLOC_H
#define PRESENCE_BASE_ALLOC_H

#include <stddef.h>

#include "presence.h"

void *presence__malloc(const presence_allocator *alloc, size_t size);
void *presence__realloc(const presence_allocator *alloc, void *ptr,
                        size_t old_size, size_t new_size);
void presence__free(const presence_allocator *alloc, void *ptr, size_t size);
/* a + b, or SIZE_MAX on overflow (SIZE_MAX never fits an allocation). */
size_t presence__add_size(size_t a, size_t b);
/* a * b, or SIZE_MAX on overflow. */
size_t presence__mul_size(size_t a, size_t b);
void presence__default_allocator(presence_allocator *out);

#endif
