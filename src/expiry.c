/*
 * Presence TTL. Every namespace keeps its memberships in a list ordered by
 * last touch; since a namespace has one TTL, that is also deadline order,
 * so the next deadline is the head's and a touch is a move to the tail,
 * both O(1). Storing the touch time rather than the deadline means a TTL
 * change applies to every membership at once without reordering.
 * SPDX-License-Identifier: MIT
 */
#include "internal.h"

void presence__touch_append(struct presence__namespace *ns,
                            struct presence__membership *m)
{
    m->tnext = NULL;
    m->tprev = ns->touch_tail;
    if (ns->touch_tail != NULL) {
        ns->touch_tail->tnext = m;
    } else {
        ns->touch_head = m;
    }
    ns->touch_tail = m;
}

void presence__touch_unlink(struct presence__namespace *ns,
                            struct presence__membership *m)
{
    if (m->tprev != NULL) {
        m->tprev->tnext = m->tnext;
    } else {
        ns->touch_head = m->tnext;
    }
    if (m->tnext != NULL) {
        m->tnext->tprev = m->tprev;
    } else {
        ns->touch_tail = m->tprev;
    }
    m->tprev = m->tnext = NULL;
}

void presence__touch_renew(presence_registry *reg,
                           struct presence__membership *m)
{
    struct presence__namespace *ns = m->channel->ns;
    /* presence__now never goes backwards, so the list stays sorted. */
    m->touched_at_ms = presence__now(reg);
    if (ns->touch_tail != m) {
        presence__touch_unlink(ns, m);
        presence__touch_append(ns, m);
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
    if (reg == NULL) {
        return PRESENCE_NO_DEADLINE;
    }
    int64_t next = PRESENCE_NO_DEADLINE;
    presence__lock(reg);
    for (const struct presence__namespace *ns = reg->namespaces; ns != NULL;
         ns = ns->hh.next) {
        int64_t d = presence__deadline(ns, ns->touch_head);
        if (d < next) {
            next = d;
        }
    }
    presence__unlock(reg);
    return next;
}
