/*
 * Presence TTL. In every channel shard, each namespace keeps its
 * memberships in a list ordered by last touch; since a namespace has one
 * TTL, that is also deadline order, so the next deadline is the head's and
 * a touch is a move to the tail, both O(1). Storing the touch time rather
 * than the deadline means a TTL change applies to every membership at once
 * without reordering. The links are the memberships' slab numbers in the
 * shard (4 bytes each instead of a pointer's 8).
 * SPDX-License-Identifier: MIT
 */
#include "internal.h"

#define NONE PRESENCE__SLAB_NONE

struct presence__membership *
presence__touch_head(struct presence__shard *hs,
                     const struct presence__touch_list *list)
{
    return list->head == NONE ? NULL
                              : presence__shard_member(hs, list->head);
}

void presence__touch_append(struct presence__shard *hs,
                            struct presence__touch_list *list,
                            struct presence__membership *m)
{
    uint32_t self = m->slab.slab_index;
    m->tnext = NONE;
    m->tprev = list->tail;
    if (list->tail != NONE) {
        presence__shard_member(hs, list->tail)->tnext = self;
    } else {
        list->head = self;
    }
    list->tail = self;
}

void presence__touch_unlink(struct presence__shard *hs,
                            struct presence__touch_list *list,
                            struct presence__membership *m)
{
    if (m->tprev != NONE) {
        presence__shard_member(hs, m->tprev)->tnext = m->tnext;
    } else {
        list->head = m->tnext;
    }
    if (m->tnext != NONE) {
        presence__shard_member(hs, m->tnext)->tprev = m->tprev;
    } else {
        list->tail = m->tprev;
    }
    m->tprev = m->tnext = NONE;
}

void presence__touch_renew(presence_registry *reg, struct presence__shard *hs,
                           const struct presence__channel *ch,
                           struct presence__membership *m)
{
    /* The shard's clock never goes backwards, so the list stays sorted. */
    presence__membership_set_touched(m, presence__now(reg, hs));
    struct presence__touch_list *list = presence__touch_list_of(reg, hs, ch);
    if (list->tail != m->slab.slab_index) {
        presence__touch_unlink(hs, list, m);
        presence__touch_append(hs, list, m);
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

int64_t presence_next_deadline_ms(presence_registry *reg)
{
    if (reg == NULL || atomic_load(&reg->ttl_namespaces) == 0) {
        return PRESENCE_NO_DEADLINE;
    }
    int64_t next = PRESENCE_NO_DEADLINE;
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        struct presence__shard *hs = &reg->shards[s];
        presence__mutex_lock(reg, &hs->lock);
        for (const struct presence__namespace *ns = reg->namespaces;
             ns != NULL; ns = ns->hh.next) {
            int64_t d = presence__deadline(
                ns, presence__touch_head(hs, &ns->touch[s]));
            if (d < next) {
                next = d;
            }
        }
        presence__mutex_unlock(reg, &hs->lock);
    }
    return next;
}
