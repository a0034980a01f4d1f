/*
 * Blobs (struct presence__blob, records.h): immutable bytes shared by a
 * membership and the events that mention it.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_CONTAINERS_BLOB_H
#define PRESENCE_CONTAINERS_BLOB_H

#include <stdbool.h>
#include <stddef.h>

#include "presence.h"
#include "containers/records.h"

/* A blob holding a copy of len bytes; *out is NULL when len is 0. */
int presence__blob_new(const presence_allocator *alloc, const void *data,
                       size_t len, struct presence__blob **out);
/* References (NULL is none); threaded: the registry's (base/refcount.h). */
void presence__blob_ref(bool threaded, struct presence__blob *b);
void presence__blob_unref(const presence_allocator *alloc, bool threaded,
                          struct presence__blob *b);
bool presence__blob_equals(const struct presence__blob *b, const void *data,
                           size_t len);

#endif
