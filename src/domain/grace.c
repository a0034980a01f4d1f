/*
 * Leave grace. A member whose connection drops (a disconnect, a handle
 * closed, its TTL run out; an explicit leave when the namespace says so)
 * stays in its channel, flagged in grace, until its namespace's
 * leave_grace_ms have passed since the drop; then it leaves with the
 * reason and the time of the drop. Coming back in time (a join of the same
 * client, or of another connection of the same user when the namespace
 * allows it) takes the member out of grace with nothing announced.
 *
 * The drop changes nothing anyone can count: the membership stays in the
 * channel's set, user counts and client list, so stats, queries and
 * users' online state go on as before and the channel's seq does not
 * move. What the drop changes is private: the flag (a spare bit of the
 * touch time, which becomes the drop time), and the list the membership
 * is on. A membership in grace is never on its namespace's touch list (it
 * cannot expire twice); it is on one of the namespace's grace lists in
 * its shard, in drop order, linked through the same two slab links the
 * touch list uses. Every membership of a shard is dropped with the
 * shard's lock held and the registry's clock never goes back, so each
 * list is in deadline order: the next end of a grace is a list's head.
 * One list per graced reason keeps the reason without a byte in the
 * membership.
 *
 * The flag is written with both the channel's and the client's shard held
 * (every path that drops, resumes or removes holds both), but it shares
 * its word with the touch time, which a touch writes with the channel's
 * shard alone: so it is read under the channel's shard.
 *
 * SPDX-License-Identifier: MIT
 */
#include "domain/domain.h"

#define NONE PRESENCE__SLAB_NONE

void presence__grace_lists_init(struct presence__namespace *ns)
{
    for (size_t r = 0; r < PRESENCE__GRACE_REASONS; r++) {
        for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
            ns->grace[r][s].head = ns->grace[r][s].tail = NONE;
        }
    }
}

bool presence__grace_applies(const struct presence__channel *ch,
                             const struct presence__client *client,
                             presence_leave_reason reason)
{
    const presence_namespace_options *o = &ch->ns->options;
    if (o->leave_grace_ms <= 0 || presence__client_node(client) != NULL) {
        return false; /* another node's members leave when it says so */
    }
    return reason == PRESENCE_LEAVE_DISCONNECT ||
           reason == PRESENCE_LEAVE_EXPIRED ||
           (reason == PRESENCE_LEAVE_EXPLICIT && o->grace_on_leave);
}

/* The grace list of reason r (an index, 0 = explicit) of ch's namespace
 * in shard hs. */
static struct presence__touch_list *
list_of(presence_registry *reg, struct presence__shard *hs,
        const struct presence__channel *ch, size_t r)
{
    return &ch->ns->grace[r][hs - reg->shards];
}

static size_t reason_index(presence_leave_reason reason)
{
    return (size_t)reason - (size_t)PRESENCE_LEAVE_EXPLICIT;
}

PRESENCE__COLD
int presence__grace_prepare(presence_registry *reg, struct presence__shard *hs,
                            struct presence__membership *m)
{
    return presence__touch_prepare(reg, hs, m);
}

PRESENCE__COLD
void presence__grace_drop(presence_registry *reg, struct presence__shard *hs,
                          const struct presence__channel *ch,
                          struct presence__membership *m,
                          presence_leave_reason reason)
{
    if (presence__has_touch_order(ch)) {
        presence__touch_unlink(hs, presence__touch_list_of(reg, hs, ch), m);
    }
    presence__membership_set_touched(m, presence__now(reg));
    m->touched_hi |= PRESENCE__IN_GRACE;
    presence__touch_append(hs, list_of(reg, hs, ch, reason_index(reason)), m);
    atomic_fetch_add_explicit(&reg->graced, 1, memory_order_relaxed);
}

/* The list m is on: the one it heads or ends, else any (a membership in
 * the middle of a list is unlinked through its neighbours alone). */
static size_t list_index_of(presence_registry *reg, struct presence__shard *hs,
                            const struct presence__channel *ch,
                            const struct presence__membership *m)
{
    uint32_t self = m->slab.slab_index;
    for (size_t r = 0; r < PRESENCE__GRACE_REASONS; r++) {
        const struct presence__touch_list *l = list_of(reg, hs, ch, r);
        if (l->head == self || l->tail == self) {
            return r;
        }
    }
    return 0;
}

PRESENCE__COLD
void presence__grace_forget(presence_registry *reg, struct presence__shard *hs,
                            const struct presence__channel *ch,
                            struct presence__membership *m)
{
    presence__touch_unlink(hs, list_of(reg, hs, ch, list_index_of(reg, hs, ch, m)),
                           m);
    m->touched_hi &= (uint16_t)~PRESENCE__IN_GRACE;
    atomic_fetch_sub_explicit(&reg->graced, 1, memory_order_relaxed);
}

PRESENCE__COLD
void presence__grace_resume(presence_registry *reg, struct presence__shard *hs,
                            const struct presence__channel *ch,
                            struct presence__membership *m)
{
    presence__grace_forget(reg, hs, ch, m);
    presence__membership_set_touched(m, presence__now(reg));
    if (presence__has_touch_order(ch)) { /* back on the touch list */
        presence__touch_append(hs, presence__touch_list_of(reg, hs, ch), m);
    }
}

/* When the grace of m (dropped in namespace ns) ends, saturating. */
static int64_t grace_end(const struct presence__namespace *ns,
                         const struct presence__membership *m)
{
    int64_t dropped = presence__membership_touched(m);
    int64_t grace = ns->options.leave_grace_ms > 0 ? ns->options.leave_grace_ms
                                                   : 0;
    return dropped > PRESENCE_NO_DEADLINE - 1 - grace
               ? PRESENCE_NO_DEADLINE - 1
               : dropped + grace;
}

struct presence__membership *
presence__grace_due(presence_registry *reg, const struct presence__namespace *ns,
                    size_t shard, int64_t now_ms, presence_leave_reason *reason)
{
    struct presence__shard *hs = &reg->shards[shard];
    for (size_t r = 0; r < PRESENCE__GRACE_REASONS; r++) {
        struct presence__membership *m =
            presence__touch_head(hs, &ns->grace[r][shard]);
        if (m != NULL && grace_end(ns, m) <= now_ms) {
            *reason = (presence_leave_reason)(r + PRESENCE_LEAVE_EXPLICIT);
            return m;
        }
    }
    return NULL;
}

int64_t presence__grace_shard_next_deadline(presence_registry *reg, size_t s)
{
    int64_t next = PRESENCE_NO_DEADLINE;
    if (atomic_load_explicit(&reg->graced, memory_order_relaxed) == 0) {
        return next;
    }
    struct presence__shard *hs = &reg->shards[s];
    for (const struct presence__namespace *ns = reg->namespaces; ns != NULL;
         ns = ns->hh.next) {
        for (size_t r = 0; r < PRESENCE__GRACE_REASONS; r++) {
            const struct presence__membership *m =
                presence__touch_head(hs, &ns->grace[r][s]);
            int64_t d = m != NULL ? grace_end(ns, m) : PRESENCE_NO_DEADLINE;
            next = d < next ? d : next;
        }
    }
    return next;
}

/* ---- a handle reopened under the same client id ------------------------- */

bool presence__grace_claimable(presence_registry *reg,
                               const struct presence__client *client,
                               const char *user_id, size_t user_len)
{
    if (presence__client_open(client) || presence__client_node(client) != NULL ||
        client->channel_count == 0 ||
        presence__client_user_len(client) != user_len ||
        memcmp(presence__client_user_id(client), user_id, user_len) != 0) {
        return false;
    }
    bool dropped = true;
    for (uint32_t ref = client->memberships; ref != NONE && dropped;) {
        const struct presence__membership *m = presence__mref_get(reg, ref);
        /* The flag shares its word with the touch time, which a touch
         * writes under the channel's shard alone. */
        struct presence__shard *hs = presence__membership_shard(reg, m);
        presence__mutex_lock(reg, &hs->lock);
        dropped = presence__membership_in_grace(m);
        presence__mutex_unlock(reg, &hs->lock);
        ref = m->cnext;
    }
    return dropped; /* else still connected somewhere: not a drop */
}

void presence__grace_adopt(presence_registry *reg,
                           struct presence__client *from,
                           struct presence__client *to)
{
    /* Every channel shard of its memberships at once (in index order, as
     * a namespace change takes them all): one shard at a time, a save
     * between two of them would see the memberships half handed over,
     * two clients with one id, which no load accepts. */
    uint64_t shards = 0;
    for (uint32_t ref = from->memberships; ref != NONE;) {
        struct presence__membership *m = presence__mref_get(reg, ref);
        shards |= UINT64_C(1) << (presence__membership_shard(reg, m) -
                                  reg->shards);
        ref = m->cnext;
    }
    presence__lock_shard_set(reg, shards);
    for (uint32_t ref = from->memberships; ref != NONE;) {
        struct presence__membership *m = presence__mref_get(reg, ref);
        struct presence__shard *hs = presence__membership_shard(reg, m);
        struct presence__channel *ch = presence__shard_channel(hs, m);
        /* Same id, same hash: its slot in the set stays where it is. */
        ch->member_bytes -= presence__membership_bytes(hs, m);
        m->client = to;
        ch->member_bytes += presence__membership_bytes(hs, m);
        ref = m->cnext;
    }
    to->memberships = from->memberships;
    to->channel_count = from->channel_count;
    from->memberships = NONE;
    from->channel_count = 0;
    presence__unlock_shard_set(reg, shards);
}

/* ---- another connection of the same user takes the place --------------- */

/* A client of the joining user, other than `client`, whose membership in
 * ch is in grace, with a reference for the caller; NULL if none. */
static struct presence__client *
find_same_user(presence_registry *reg, const struct presence__target *t,
               const struct presence__client *client,
               const struct presence__join_args *a)
{
    const char *user_id =
        client != NULL ? presence__client_user_id(client) : a->user_id;
    size_t user_len =
        client != NULL ? presence__client_user_len(client) : a->user_len;
    uint64_t hash = presence__hash64(reg->seed, user_id, user_len);
    struct presence__ushard *us = presence__ushard_of(reg, hash);
    struct presence__client *found = NULL;
    presence__mutex_lock(reg, &us->lock);
    struct presence__user *user =
        presence__index_find(&us->users, hash, user_id, user_len);
    for (struct presence__client *c = user != NULL ? user->first_client : NULL;
         c != NULL && found == NULL; c = c->unext) {
        if (c == client || presence__client_node(c) != NULL) {
            continue;
        }
        const struct presence__membership *m =
            presence__membership_find(t->chan.ch, c);
        if (m != NULL && presence__membership_in_grace(m)) {
            presence__client_ref(reg, c);
            found = c;
        }
    }
    presence__mutex_unlock(reg, &us->lock);
    return found;
}

/* Replace old (in grace, its client's shard held) by a new membership of
 * the joining client, as one change: seq + 1 (the set holds another
 * client id), no join and no leave; an update if the chan_info differs.
 * The new membership keeps the old one's join time. */
static int replace(presence_registry *reg, struct presence__target *t,
                   struct presence__client *client,
                   const struct presence__join_args *a,
                   struct presence__membership *old, presence_change *change)
{
    struct presence__shard *hs = t->chan.shard;
    struct presence__channel *ch = t->chan.ch;
    struct presence__blob *old_info = presence__membership_chan_info(hs, old);
    bool differs = !presence__blob_equals(old_info, a->chan_info,
                                          a->chan_info_len);
    size_t reserved = 0;
    int rc = differs ? presence__events_reserve(reg, 1, &reserved)
                     : PRESENCE_OK;
    if (rc != PRESENCE_OK) {
        return rc;
    }
    uint64_t seq = ch->seq;
    int64_t joined = presence__membership_joined(old);
    struct presence__join_args args = *a;
    args.replacing = true;
    struct presence__membership *made;
    bool first;
    rc = presence__join_silent(reg, t, client, &args, &made, &first);
    if (rc != PRESENCE_OK) {
        presence__events_release(reg, &reserved);
        return rc;
    }
    size_t none = 0;
    presence__membership_remove(reg, old, PRESENCE_LEAVE_EXPLICIT, &none);
    ch->seq = seq + 1;
    /* Another client id in the set is neither a join nor a leave: the log
     * starts again here (older versions need a snapshot). */
    presence__history_restart(reg, ch);
    presence__time48_set(&made->joined_lo, &made->joined_hi, joined);
    if (differs) {
        presence__events_push(reg, hs, ch, made, PRESENCE_EVENT_UPDATE,
                              PRESENCE_LEAVE_NONE, false, &reserved);
    }
    presence__events_release(reg, &reserved);
    if (change != NULL) {
        change->kind = PRESENCE_CHANGE_RESUMED;
        change->stats = presence__channel_stats(ch);
    }
    return PRESENCE_OK;
}

PRESENCE__COLD
int presence__grace_take_place(presence_registry *reg,
                               struct presence__target *t,
                               struct presence__client *client,
                               const struct presence__join_args *a,
                               presence_change *change, bool *taken)
{
    *taken = false;
    size_t user_len =
        client != NULL ? presence__client_user_len(client) : a->user_len;
    if (t->chan.ch == NULL || a->node != NULL || user_len == 0 ||
        !t->chan.ns->options.grace_same_user ||
        t->chan.ns->options.leave_grace_ms <= 0 ||
        atomic_load_explicit(&reg->graced, memory_order_relaxed) == 0) {
        return PRESENCE_OK;
    }
    struct presence__client *other = find_same_user(reg, t, client, a);
    if (other == NULL) {
        return PRESENCE_OK;
    }
    struct presence__cshard *cs = presence__cshard_of(reg, other->hash);
    /* Two client shards are never waited for together: if the other's is
     * busy, this join is an ordinary one and the other's grace runs out
     * as it would have (correct events, only not the quiet ones). */
    bool locked = cs == t->cs || presence__mutex_trylock(reg, &cs->lock);
    int rc = PRESENCE_OK;
    if (locked) {
        struct presence__membership *old =
            presence__membership_find(t->chan.ch, other);
        if (old != NULL && presence__membership_in_grace(old)) {
            rc = replace(reg, t, client, a, old, change);
            *taken = rc == PRESENCE_OK;
        }
        if (cs != t->cs) {
            presence__mutex_unlock(reg, &cs->lock);
        }
    }
    presence__client_unref(reg, other);
    return rc;
}

/* ---- saved state (state_save.c, state_load.c) ----------------------------- */

void presence__grace_walk(presence_registry *reg, size_t shard,
                          void (*fn)(struct presence__membership *m,
                                     presence_leave_reason reason, void *ctx),
                          void *ctx)
{
    struct presence__shard *hs = &reg->shards[shard];
    for (struct presence__namespace *ns = reg->namespaces; ns != NULL;
         ns = ns->hh.next) {
        for (size_t r = 0; r < PRESENCE__GRACE_REASONS; r++) {
            for (uint32_t n = ns->grace[r][shard].head; n != NONE;
                 n = presence__slab_links(&hs->membership_slab, n)[1]) {
                fn(presence__shard_member(hs, n),
                   (presence_leave_reason)(r + PRESENCE_LEAVE_EXPLICIT), ctx);
            }
        }
    }
}

void presence__grace_restore(presence_registry *reg,
                             struct presence__shard *hs,
                             const struct presence__channel *ch,
                             struct presence__membership *m,
                             presence_leave_reason reason)
{
    m->touched_hi |= PRESENCE__IN_GRACE;
    presence__touch_append(hs, list_of(reg, hs, ch, reason_index(reason)), m);
    atomic_fetch_add_explicit(&reg->graced, 1, memory_order_relaxed);
}
