/*
 * uthash for the server's tables, in its non-fatal out-of-memory mode and
 * on the server's allocator: a failed HASH_ADD leaves the table as it was
 * and sets the element's hh.tbl to NULL (see ps_hash_added()), instead of
 * calling exit(). Include this instead of <uthash.h>.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_HASH_H
#define PS_HASH_H

#include "mem.h"

#define HASH_NONFATAL_OOM 1
#define uthash_malloc(size) ps_malloc(size)
#define uthash_free(ptr, size) ps_free(ptr)
#include <uthash.h>

/** After a HASH_ADD of @p elt through its handle @p hh: did it go in? */
#define ps_hash_added(elt, hh) ((elt)->hh.tbl != NULL)

#endif
