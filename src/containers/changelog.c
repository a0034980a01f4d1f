/*
 * A channel's change log: see changelog.h.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "base/alloc.h"
#include "containers/changelog.h"

static size_t log_size(size_t cap)
{
    return presence__add_size(
        offsetof(struct presence__changelog, entries),
        presence__mul_size(cap, sizeof(struct presence__change)));
}

int presence__changelog_new(const presence_allocator *alloc, size_t cap,
                            uint64_t since, struct presence__changelog **out)
{
    if (cap == 0 || cap > UINT32_MAX) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__changelog *log = presence__malloc(alloc, log_size(cap));
    if (log == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    log->cap = (uint32_t)cap;
    log->head = 0;
    log->len = 0;
    log->since = since;
    *out = log;
    return PRESENCE_OK;
}

int presence__changelog_grow(const presence_allocator *alloc,
                             struct presence__changelog **log, size_t need,
                             size_t max)
{
    struct presence__changelog *old = *log;
    size_t want = need < max ? need : max;
    if (want <= old->cap) {
        return PRESENCE_OK;
    }
    size_t cap = (size_t)old->cap * 2;
    cap = cap < want ? want : cap > max ? max : cap;
    struct presence__changelog *next;
    int rc = presence__changelog_new(alloc, cap, old->since, &next);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    for (size_t i = 0; i < old->len; i++) {
        next->entries[i] = *presence__changelog_at(old, i);
    }
    next->len = old->len;
    presence__changelog_free(alloc, old);
    *log = next;
    return PRESENCE_OK;
}

void presence__changelog_free(const presence_allocator *alloc,
                              struct presence__changelog *log)
{
    if (log != NULL) {
        presence__free(alloc, log, log_size(log->cap));
    }
}

/* The slot of the i-th entry from the oldest (i < cap): no division, on
 * the path of every change. */
static uint32_t slot(const struct presence__changelog *log, size_t i)
{
    size_t at = log->head + i;
    return (uint32_t)(at >= log->cap ? at - log->cap : at);
}

bool presence__changelog_push(struct presence__changelog *log,
                              const struct presence__change *c,
                              struct presence__change *dropped)
{
    bool full = log->len == log->cap;
    if (full) {
        (void)presence__changelog_pop(log, dropped);
    }
    log->entries[slot(log, log->len)] = *c;
    log->len++;
    return full;
}

bool presence__changelog_pop(struct presence__changelog *log,
                             struct presence__change *out)
{
    if (log->len == 0) {
        return false;
    }
    *out = log->entries[log->head];
    /* Whoever asks for changes after this one's version now finds the
     * log too short. */
    log->since = out->seq;
    log->head = slot(log, 1);
    log->len--;
    return true;
}

const struct presence__change *
presence__changelog_at(const struct presence__changelog *log, size_t i)
{
    return &log->entries[slot(log, i)];
}

bool presence__changelog_after(const struct presence__changelog *log,
                               uint64_t seq, size_t *first)
{
    uint64_t last = log->len > 0
                        ? presence__changelog_at(log, log->len - 1)->seq
                        : log->since;
    if (seq < log->since || seq > last) {
        return false;
    }
    /* Versions advance by one per change, so the position is arithmetic;
     * the check keeps a log that broke that rule from answering wrong. */
    size_t i = (size_t)(seq - log->since);
    if (i < log->len && presence__changelog_at(log, i)->seq != seq + 1) {
        return false;
    }
    *first = i;
    return true;
}
