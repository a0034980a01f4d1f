/*
 * uthash, set up for the library: allocation failures are reported, not
 * fatal, and every allocation goes through the registry's allocator.
 * Every macro here expects a `presence_registry *reg` in scope where a
 * table is changed; the out-of-memory flag it sets is reg-independent so
 * that callers check it right after the HASH_ADD.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_UTHASH_CONFIG_H
#define PRESENCE_UTHASH_CONFIG_H

#include "base/alloc.h"
#include "base/hash.h"

#define HASH_NONFATAL_OOM 1
#define uthash_malloc(size) presence__malloc(&reg->alloc, (size))
#define uthash_free(ptr, size) presence__free(&reg->alloc, (ptr), (size))
#define uthash_nonfatal_oom(elt) ((void)(elt))
#define HASH_FUNCTION(keyptr, keylen, hashv)                                   \
    ((hashv) = presence__hash32(reg->seed, (keyptr), (keylen)))

#include <uthash.h>

/* After HASH_ADD*, an element that did not make it has hh.tbl == NULL. */
#define PRESENCE_HASH_ADDED(elt) ((elt)->hh.tbl != NULL)

#endif
