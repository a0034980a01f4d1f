/*
 * Blobs: a membership's chan_info bytes, immutable and reference-counted,
 * so that queued events share them with the membership instead of copying.
 * SPDX-License-Identifier: MIT
 */
#include "containers/blob.h"

#include "base/alloc.h"
#include "base/bytes.h"
#include "base/refcount.h"

int presence__blob_new(const presence_allocator *alloc, const void *data, size_t len,
                       struct presence__blob **out)
{
    if (len == 0) {
        *out = NULL;
        return PRESENCE_OK;
    }
    size_t size = presence__add_size(sizeof(struct presence__blob), len);
    struct presence__blob *b = presence__malloc(alloc, size);
    if (b == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    atomic_init(&b->refs, 1);
    b->len = len;
    memcpy(b->data, data, len);
    *out = b;
    return PRESENCE_OK;
}

void presence__blob_ref(bool threaded, struct presence__blob *b)
{
    if (b != NULL) {
        presence__ref_take(threaded, &b->refs);
    }
}

void presence__blob_unref(const presence_allocator *alloc, bool threaded,
                          struct presence__blob *b)
{
    if (b != NULL && presence__ref_drop(threaded, &b->refs)) {
        presence__free(alloc, b, sizeof *b + b->len);
    }
}

bool presence__blob_equals(const struct presence__blob *b, const void *data,
                           size_t len)
{
    if (b == NULL) {
        return len == 0;
    }
    return b->len == len && presence__bytes_equal(b->data, data, len);
}
