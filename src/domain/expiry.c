/*
 * Presence TTL. In every channel shard, each namespace keeps its
 * memberships in a list ordered by last touch; since a namespace has one
 * TTL, that is also deadline order, so the next deadline is the head's and
 * a touch is a move to the tail, both O(1). Storing the touch time rather
 * than the deadline means a TTL change applies to every membership at once
 * without reordering. The links are the memberships' slab numbers in the
 * shard (4 bytes each instead of a pointer's 8), kept beside them in the
 * slab, and only for namespaces with a TTL: a TTL turned on later builds
 * the order from the touch times (presence__touch_order_build).
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "domain/domain.h"

#define NONE PRESENCE__SLAB_NONE

/* The two links (previous, next) of the membership with this number. */
static uint32_t *links_of(struct presence__shard *hs, uint32_t number)
{
    return presence__slab_links(&hs->membership_slab, number);
}

struct presence__membership *
presence__touch_head(struct presence__shard *hs,
                     const struct presence__touch_list *list)
{
    return list->head == NONE ? NULL
                              : presence__shard_member(hs, list->head);
}

PRESENCE__NOINLINE
int presence__touch_prepare(presence_registry *reg, struct presence__shard *hs,
                            struct presence__membership *m)
{
    return presence__slab_links_prepare(&reg->alloc, &hs->membership_slab, m);
}

PRESENCE__NOINLINE
void presence__touch_append(struct presence__shard *hs,
                            struct presence__touch_list *list,
                            struct presence__membership *m)
{
    uint32_t self = m->slab.slab_index;
    uint32_t *links = links_of(hs, self);
    links[0] = list->tail;
    links[1] = NONE;
    if (list->tail != NONE) {
        links_of(hs, list->tail)[1] = self;
    } else {
        list->head = self;
    }
    list->tail = self;
}

PRESENCE__NOINLINE
void presence__touch_unlink(struct presence__shard *hs,
                            struct presence__touch_list *list,
                            struct presence__membership *m)
{
    uint32_t *links = links_of(hs, m->slab.slab_index);
    if (links[0] != NONE) {
        links_of(hs, links[0])[1] = links[1];
    } else {
        list->head = links[1];
    }
    if (links[1] != NONE) {
        links_of(hs, links[1])[0] = links[0];
    } else {
        list->tail = links[0];
    }
    links[0] = links[1] = NONE;
}

void presence__touch_renew(presence_registry *reg, struct presence__shard *hs,
                           const struct presence__channel *ch,
                           struct presence__membership *m)
{
    if (presence__membership_in_grace(m)) {
        return; /* its touch time is its drop time; only a join resumes it */
    }
    /* The registry's clock never goes backwards, and this shard reads it
     * under its lock, so the list stays sorted. */
    presence__membership_set_touched(m, presence__now(reg));
    if (!presence__has_touch_order(ch)) {
        return;
    }
    struct presence__touch_list *list = presence__touch_list_of(reg, hs, ch);
    if (list->tail != m->slab.slab_index) {
        presence__touch_unlink(hs, list, m);
        presence__touch_append(hs, list, m);
    }
}

/* ---- a TTL turned on: the touch order from the touch times ------------- */

struct touched_entry {
    int64_t touched;
    struct presence__membership *m;
    const struct presence__channel *ch;
};

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

/* By touch time; memberships touched in the same millisecond by client id,
 * then channel name (byte order): a rule a model of the library can
 * follow, since the order they were touched in was not kept. */
static int touched_cmp(const void *pa, const void *pb)
{
    const struct touched_entry *a = pa, *b = pb;
    if (a->touched != b->touched) {
        return a->touched < b->touched ? -1 : 1;
    }
    const struct presence__client *ca = a->m->client, *cb = b->m->client;
    int c = bytes_cmp(ca->id, ca->id_len, cb->id, cb->id_len);
    return c != 0 ? c
                  : bytes_cmp(a->ch->name, a->ch->name_len, b->ch->name,
                              b->ch->name_len);
}

/* Visit the local memberships of ns in shard s: count them, make room for
 * their links, or collect them (out non-NULL). */
static int shard_members(presence_registry *reg, size_t s,
                         const struct presence__namespace *ns, size_t *n,
                         struct touched_entry *out)
{
    struct presence__shard *hs = &reg->shards[s];
    struct presence__index *idx = &hs->channels;
    *n = 0;
    for (size_t i = 0; i < presence__index_slots(idx); i++) {
        const struct presence__channel *ch = presence__index_at(idx, i);
        if (ch == NULL || ch->ns != ns) {
            continue;
        }
        for (size_t j = 0; j < ch->members.nslots; j++) {
            struct presence__membership *m =
                presence__memberset_at(&ch->members, j);
            if (m == NULL || presence__client_node(m->client) != NULL ||
                presence__membership_in_grace(m)) {
                continue; /* no TTL here, or on a grace list */
            }
            if (out != NULL) {
                out[*n] = (struct touched_entry){
                    presence__membership_touched(m), m, ch};
            } else {
                int rc = presence__touch_prepare(reg, hs, m);
                if (rc != PRESENCE_OK) {
                    return rc;
                }
            }
            (*n)++;
        }
    }
    return PRESENCE_OK;
}

int presence__touch_order_build(presence_registry *reg,
                                struct presence__namespace *ns)
{
    size_t most = 0;
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        size_t n;
        int rc = shard_members(reg, s, ns, &n, NULL);
        if (rc != PRESENCE_OK) {
            return rc;
        }
        most = n > most ? n : most;
    }
    size_t bytes = presence__mul_size(most, sizeof(struct touched_entry));
    struct touched_entry *all = NULL;
    if (most > 0) {
        all = presence__malloc(&reg->alloc, bytes);
        if (all == NULL) {
            return PRESENCE_ERR_NOMEM;
        }
    }
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        struct presence__shard *hs = &reg->shards[s];
        struct presence__touch_list *list = &ns->touch[s];
        size_t n;
        (void)shard_members(reg, s, ns, &n, all);
        if (n > 1) {
            qsort(all, n, sizeof *all, touched_cmp);
        }
        list->head = list->tail = NONE;
        for (size_t i = 0; i < n; i++) {
            presence__touch_append(hs, list, all[i].m);
        }
    }
    presence__free(&reg->alloc, all, bytes);
    return PRESENCE_OK;
}

void presence__touch_order_drop(struct presence__namespace *ns)
{
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        ns->touch[s].head = ns->touch[s].tail = NONE;
    }
}

int64_t presence__deadline(const struct presence__namespace *ns,
                           const struct presence__membership *m)
{
    int64_t ttl = ns->options.ttl_ms;
    if (ttl <= 0 || m == NULL) {
        return PRESENCE_NO_DEADLINE;
    }
    int64_t touched = presence__membership_touched(m);
    if (touched > PRESENCE_NO_DEADLINE - ttl) {
        return PRESENCE_NO_DEADLINE - 1;
    }
    return touched + ttl;
}

int64_t presence__shard_next_deadline(presence_registry *reg, size_t s)
{
    struct presence__shard *hs = &reg->shards[s];
    int64_t next = presence__grace_shard_next_deadline(reg, s);
    for (const struct presence__namespace *ns = reg->namespaces; ns != NULL;
         ns = ns->hh.next) {
        int64_t d =
            presence__deadline(ns, presence__touch_head(hs, &ns->touch[s]));
        if (d < next) {
            next = d;
        }
    }
    return next;
}

int64_t presence_next_deadline_ms(presence_registry *reg)
{
    if (reg == NULL || (atomic_load(&reg->ttl_namespaces) == 0 &&
                        atomic_load(&reg->graced) == 0)) {
        return PRESENCE_NO_DEADLINE;
    }
    int64_t next = PRESENCE_NO_DEADLINE;
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        struct presence__shard *hs = &reg->shards[s];
        presence__mutex_lock(reg, &hs->lock);
        int64_t d = presence__shard_next_deadline(reg, s);
        presence__mutex_unlock(reg, &hs->lock);
        if (d < next) {
            next = d;
        }
    }
    return next;
}
