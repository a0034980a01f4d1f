/*
 * Presence TTL. In every channel shard, each namespace keeps its
 * memberships in a list ordered by last touch; since a namespace has one
 * TTL, that is also deadline order, so the next deadline is the head's and
 * a touch is a move to the tail, both O(1). Storing the touch time rather
 * than the deadline means a TTL change applies to every membership at once
 * without reordering.
 * SPDX-License-Identifier: MIT
 */
#include "internal.h"

struct presence__touch_list *
presence__touch_list_of(presence_registry *reg,
                        const struct presence__membership *m)
{
    const struct presence__channel *ch = m->channel;
    return &ch->ns->touch[presence__shard_of(reg, ch->hash) - reg->shards];
}

void presence__touch_append(struct presence__touch_list *list,
                            struct presence__membership *m)
{
    m->tnext = NULL;
    m->tprev = list->tail;
    if (list->tail != NULL) {
        list->tail->tnext = m;
    } else {
        list->head = m;
    }
    list->tail = m;
}

void presence__touch_unlink(struct presence__touch_list *list,
                            struct presence__membership *m)
{
    if (m->tprev != NULL) {
        m->tprev->tnext = m->tnext;
    } else {
        list->head = m->tnext;
    }
    if (m->tnext != NULL) {
        m->tnext->tprev = m->tprev;
    } else {
        list->tail = m->tprev;
    }
    m->tprev = m->tnext = NULL;
}

void presence__touch_renew(presence_registry *reg, struct presence__shard *hs,
                           struct presence__membership *m)
{
    /* The shard's clock never goes backwards, so the list stays sorted. */
    m->touched_at_ms = presence__now(reg, hs);
    struct presence__touch_list *list = presence__touch_list_of(reg, m);
    if (list->tail != m) {
        presence__touch_unlink(list, m);
        presence__touch_append(list, m);
    }
}

int64_t presence__deadline(const struct presence__namespace *ns,
                           const struct presence__membership *m)
{
    int64_t ttl = ns->options.ttl_ms;
    if (ttl <= 0 || m == NULL) {
        return PRESENCE_NO_DEADLINE;
    }
    if (m->touched_at_ms > PRESENCE_NO_DEADLINE - ttl) {
        return PRESENCE_NO_DEADLINE - 1;
    }
    return m->touched_at_ms + ttl;
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
            int64_t d = presence__deadline(ns, ns->touch[s].head);
            if (d < next) {
                next = d;
            }
        }
        presence__mutex_unlock(reg, &hs->lock);
    }
    return next;
}
