/*
 * Events: the queue of pending events, subscriptions, and delivery.
 *
 * Changes queue their events while they hold their channel's shard, so a
 * channel's events enter the queue in the order of its changes. A change
 * first reserves room, so that queueing cannot fail once the structures
 * are being changed. Delivery runs with no lock held, on one thread at a
 * time (the "dispatcher"): a thread that finds another one delivering
 * leaves its events to it. A callback that changes the registry queues more events;
 * its own thread is the dispatcher, so they are delivered after it
 * returns, by the loop below, never recursively.
 *
 * Queued events hold references on the channel, client and chan_info they
 * name, so those stay readable until delivered even if they are gone from
 * the registry by then.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"

/* Events taken off the queue per lock round trip while delivering. */
#define DELIVERY_BATCH 64u

/* ---- the queue ---------------------------------------------------------- */

/* Room for this many events is allocated up front, so that ordinary
 * changes queue their events without allocating. */
#define INITIAL_ROOM 256u

static void queue_lock(presence_registry *reg)
{
    presence__mutex_lock(reg, &reg->queue_lock);
}

static void queue_unlock(presence_registry *reg)
{
    presence__mutex_unlock(reg, &reg->queue_lock);
}

/* Grow the ring so that `want` events fit (queue lock held). */
static int queue_grow(presence_registry *reg, size_t want)
{
    if (want <= reg->queue_cap) {
        return PRESENCE_OK;
    }
    size_t cap = reg->queue_cap != 0 ? reg->queue_cap : INITIAL_ROOM;
    while (cap < want && cap < SIZE_MAX / 2) {
        cap *= 2;
    }
    size_t bytes = presence__mul_size(cap, sizeof *reg->queue);
    struct presence__pending *queue = presence__malloc(&reg->alloc, bytes);
    if (queue == NULL || cap < want) {
        presence__free(&reg->alloc, queue, bytes);
        return PRESENCE_ERR_NOMEM;
    }
    /* Unwrap the ring into the new array. */
    for (size_t i = 0; i < reg->queue_len; i++) {
        queue[i] = reg->queue[(reg->queue_head + i) % reg->queue_cap];
    }
    presence__free(&reg->alloc, reg->queue, reg->queue_cap * sizeof *reg->queue);
    reg->queue = queue;
    reg->queue_cap = cap;
    reg->queue_head = 0;
    return PRESENCE_OK;
}

/* A ring at most this many times INITIAL_ROOM is kept however little of
 * it is used. */
#define KEPT_ROOM_FACTOR 16u

/*
 * Give back half of a ring that has drained (queue lock held, queue_len
 * 0) when a quarter of it was the most used since it last shrank: a burst
 * of events does not hold its peak's memory for good, and a steady load
 * keeps the ring it needs (no allocation on every drain).
 */
static void queue_trim(presence_registry *reg)
{
    size_t cap = reg->queue_cap;
    size_t peak = reg->queue_peak;
    reg->queue_peak = reg->queue_reserved;
    if (cap <= INITIAL_ROOM * KEPT_ROOM_FACTOR || peak > cap / 4 ||
        reg->queue_reserved > cap / 4) {
        return;
    }
    size_t half = cap / 2;
    struct presence__pending *queue =
        presence__malloc(&reg->alloc, half * sizeof *reg->queue);
    if (queue == NULL) {
        return; /* keep the big one: it works as well */
    }
    presence__free(&reg->alloc, reg->queue, cap * sizeof *reg->queue);
    reg->queue = queue;
    reg->queue_cap = half;
    reg->queue_head = 0;
}

void presence__events_init(presence_registry *reg)
{
    reg->subs_tail = &reg->subs;
    reg->next_sub_id = 1;
    reg->coalesce_due_ms = PRESENCE_NO_DEADLINE;
    reg->flush_now_ms = INT64_MIN;
    atomic_init(&reg->flush_wanted, false);
    /* Best effort: a registry without room yet allocates on first use. */
    (void)queue_grow(reg, INITIAL_ROOM);
}

int presence__events_reserve(presence_registry *reg, size_t n,
                             size_t *reserved)
{
    *reserved = 0;
    if (atomic_load(&reg->active_subs) == 0 || n == 0) {
        return PRESENCE_OK; /* nobody listens: nothing to queue */
    }
    queue_lock(reg);
    size_t want = presence__add_size(
        presence__add_size(reg->queue_len, reg->queue_reserved), n);
    int rc = queue_grow(reg, want);
    if (rc == PRESENCE_OK) {
        reg->queue_reserved += n;
        *reserved = n;
        if (want > reg->queue_peak) {
            reg->queue_peak = want;
        }
    }
    queue_unlock(reg);
    return rc;
}

void presence__events_release(presence_registry *reg, size_t *reserved)
{
    if (*reserved > 0) {
        queue_lock(reg);
        reg->queue_reserved -= *reserved;
        queue_unlock(reg);
        *reserved = 0;
    }
}

/* Queue lock held, one reserved slot taken. */
PRESENCE__NOINLINE
static void queue_one(presence_registry *reg, struct presence__channel *ch,
                      struct presence__membership *m,
                      struct presence__blob *chan_info,
                      presence_event_kind kind, presence_leave_reason reason,
                      int64_t now, bool muted)
{
    size_t tail = (reg->queue_head + reg->queue_len) % reg->queue_cap;
    struct presence__pending *e = &reg->queue[tail];
    e->channel = ch;
    e->client = m->client;
    e->app = presence__client_app(m->client);
    e->chan_info = chan_info;
    e->seq = ch->seq;
    e->epoch = ch->epoch;
    e->time_ms = now;
    e->num_clients = ch->members.count;
    e->num_users = ch->users;
    e->first_later_sub = reg->next_sub_id;
    e->kind = (unsigned char)kind;
    e->reason = (unsigned char)reason;
    e->muted = muted;
    atomic_fetch_add(&ch->refs, 1);
    presence__client_ref(reg, m->client);
    presence__chan_info_ref(reg, chan_info);
    reg->queue_len++;
    reg->queue_reserved--;
    atomic_fetch_add(&reg->queued, 1);
}

void presence__events_queue_at(presence_registry *reg,
                               struct presence__shard *hs,
                               struct presence__channel *ch,
                               struct presence__membership *m,
                               presence_event_kind kind,
                               presence_leave_reason reason,
                               bool user_change,
                               int64_t at_ms, size_t *reserved)
{
    size_t n = user_change ? 2 : 1;
    bool muted = !ch->ns->options.join_leave;
    if (*reserved < n ||
        (muted && atomic_load(&reg->every_ns_subs) == 0)) {
        return;
    }
    int64_t now = at_ms != PRESENCE__EVENT_NOW ? at_ms : presence__now(reg);
    struct presence__blob *chan_info = presence__membership_chan_info(hs, m);
    queue_lock(reg);
    queue_one(reg, ch, m, chan_info, kind, reason, now, muted);
    if (user_change) {
        presence_event_kind user_kind = kind == PRESENCE_EVENT_JOIN
                                            ? PRESENCE_EVENT_USER_JOIN
                                            : PRESENCE_EVENT_USER_LEAVE;
        queue_one(reg, ch, m, chan_info, user_kind, reason, now, muted);
    }
    queue_unlock(reg);
    *reserved -= n;
}

void presence__events_push_user(presence_registry *reg,
                                struct presence__client *client,
                                presence_event_kind kind, size_t *reserved)
{
    if (reserved == NULL || *reserved < 1 ||
        atomic_load(&reg->user_subs) == 0) {
        return;
    }
    int64_t now = presence__now(reg);
    queue_lock(reg);
    size_t tail = (reg->queue_head + reg->queue_len) % reg->queue_cap;
    struct presence__pending *e = &reg->queue[tail];
    memset(e, 0, sizeof *e);
    e->client = client; /* no channel: a registry-wide event */
    e->app = presence__client_app(client);
    e->time_ms = now;
    e->first_later_sub = reg->next_sub_id;
    e->kind = (unsigned char)kind;
    presence__client_ref(reg, client);
    reg->queue_len++;
    reg->queue_reserved--;
    atomic_fetch_add(&reg->queued, 1);
    queue_unlock(reg);
    *reserved -= 1;
}

static void pending_release(presence_registry *reg,
                            struct presence__pending *e)
{
    if (e->channel != NULL) {
        presence__channel_unref(reg, e->channel);
    }
    presence__client_unref(reg, e->client);
    presence__chan_info_unref(reg, e->chan_info);
}

/* ---- subscriptions ------------------------------------------------------ */

static size_t subscription_size(size_t name_len)
{
    return sizeof(struct presence__subscription) + name_len + 1;
}

/* Check a scope and its name; *len gets the name's length. */
static int scope_check(presence_registry *reg, presence_scope scope,
                       const char *name, size_t *len)
{
    *len = 0;
    switch (scope) {
    case PRESENCE_SCOPE_ALL:
        return name == NULL ? PRESENCE_OK : PRESENCE_ERR_INVALID;
    case PRESENCE_SCOPE_NAMESPACE:
        return presence__check_namespace_name(name, len);
    case PRESENCE_SCOPE_CHANNEL:
        return presence__check_name(name, reg->limits.channel_name_max, false,
                                    len);
    default:
        return PRESENCE_ERR_INVALID;
    }
}

/* Add a checked subscription; it owns `coalesce` once this succeeds. */
static int subscription_add(presence_registry *reg, presence_scope scope,
                            const char *name, size_t len, unsigned kinds,
                            presence_event_fn fn, void *user_data,
                            struct presence__coalescer *coalesce,
                            presence_subscription *out)
{
    struct presence__subscription *sub =
        presence__malloc(&reg->alloc, subscription_size(len));
    if (sub == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(sub, 0, sizeof *sub);
    sub->scope = scope;
    sub->kinds = kinds;
    sub->fn = fn;
    sub->user_data = user_data;
    sub->coalesce = coalesce;
    atomic_init(&sub->active, true);
    if (len > 0) {
        memcpy(sub->name, name, len);
    }
    sub->name[len] = '\0';
    sub->name_len = len;

    queue_lock(reg);
    sub->id = reg->next_sub_id++;
    *reg->subs_tail = sub;
    reg->subs_tail = &sub->next;
    *out = sub->id;
    atomic_fetch_add(&reg->active_subs, 1);
    if ((kinds & PRESENCE_EVENTS_EVERY_NAMESPACE) != 0) {
        atomic_fetch_add(&reg->every_ns_subs, 1);
    }
    if ((kinds & PRESENCE_EVENTS_USERS) != 0) {
        atomic_fetch_add(&reg->user_subs, 1);
    }
    queue_unlock(reg);
    return PRESENCE_OK;
}

int presence_subscribe(presence_registry *reg, presence_scope scope,
                       const char *name, unsigned kinds, presence_event_fn fn,
                       void *user_data, presence_subscription *out)
{
    if (reg == NULL || fn == NULL || out == NULL ||
        (kinds & (PRESENCE_EVENTS_ALL | PRESENCE_EVENTS_USERS)) == 0 ||
        (kinds & ~(PRESENCE_EVENTS_ALL | PRESENCE_EVENTS_USERS |
                   PRESENCE_EVENTS_EVERY_NAMESPACE)) != 0 ||
        ((kinds & PRESENCE_EVENTS_USERS) != 0 &&
         scope != PRESENCE_SCOPE_ALL)) {
        return PRESENCE_ERR_INVALID;
    }
    size_t len = 0;
    int rc = scope_check(reg, scope, name, &len);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    return subscription_add(reg, scope, name, len, kinds, fn, user_data, NULL,
                            out);
}

/* The changes a coalesced subscription records. */
#define COALESCED_KINDS                                                        \
    (PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE | PRESENCE_EVENT_UPDATE)

int presence_subscribe_coalesced(presence_registry *reg, presence_scope scope,
                                 const char *name,
                                 const presence_coalesce_options *options,
                                 presence_diff_fn fn, void *user_data,
                                 presence_subscription *out)
{
    if (reg == NULL || fn == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t len = 0;
    int rc = scope_check(reg, scope, name, &len);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__coalescer *c = NULL;
    rc = presence__coalescer_new(reg, options, fn, user_data, &c);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    rc = subscription_add(reg, scope, name, len, COALESCED_KINDS, NULL, NULL,
                          c, out);
    if (rc != PRESENCE_OK) {
        presence__coalescer_free(reg, c);
    }
    return rc;
}

static void subscription_free(presence_registry *reg,
                              struct presence__subscription *sub)
{
    /* Its pending diffs go undelivered (presence.h, "Unsubscribing"). */
    presence__coalescer_free(reg, sub->coalesce);
    presence__free(&reg->alloc, sub, subscription_size(sub->name_len));
}

/* Take a subscription out of the list (queue lock held). It is freed at
 * once unless the dispatcher stands on it; then the dispatcher frees it
 * when it moves on, reading its `next`, which is kept pointing at the
 * live list. */
static void subscription_remove(presence_registry *reg,
                                struct presence__subscription **link)
{
    struct presence__subscription *sub = *link;
    *link = sub->next;
    if (reg->subs_tail == &sub->next) {
        reg->subs_tail = link;
    }
    if (sub == reg->delivering) {
        reg->delivering_removed = true;
        return;
    }
    if (reg->delivering_removed && reg->delivering->next == sub) {
        reg->delivering->next = sub->next;
    }
    subscription_free(reg, sub);
}

int presence_unsubscribe(presence_registry *reg,
                         presence_subscription subscription)
{
    if (reg == NULL || subscription == 0) {
        return PRESENCE_ERR_INVALID;
    }
    int rc = PRESENCE_ERR_NOT_FOUND;
    queue_lock(reg);
    for (struct presence__subscription **link = &reg->subs; *link != NULL;
         link = &(*link)->next) {
        struct presence__subscription *sub = *link;
        if (sub->id == subscription) {
            atomic_store(&sub->active, false);
            atomic_fetch_sub(&reg->active_subs, 1);
            if ((sub->kinds & PRESENCE_EVENTS_EVERY_NAMESPACE) != 0) {
                atomic_fetch_sub(&reg->every_ns_subs, 1);
            }
            if ((sub->kinds & PRESENCE_EVENTS_USERS) != 0) {
                atomic_fetch_sub(&reg->user_subs, 1);
            }
            subscription_remove(reg, link);
            rc = PRESENCE_OK;
            break;
        }
    }
    queue_unlock(reg);
    return rc;
}

static bool subscription_matches(const struct presence__subscription *sub,
                                 const struct presence__pending *e)
{
    if ((sub->kinds & e->kind) == 0 || sub->id >= e->first_later_sub ||
        (e->muted && (sub->kinds & PRESENCE_EVENTS_EVERY_NAMESPACE) == 0)) {
        return false;
    }
    if (e->channel == NULL) {
        return sub->scope == PRESENCE_SCOPE_ALL; /* a user event */
    }
    switch (sub->scope) {
    case PRESENCE_SCOPE_NAMESPACE:
        return sub->name_len == e->channel->ns->name_len &&
               memcmp(sub->name, e->channel->ns->name, sub->name_len) == 0;
    case PRESENCE_SCOPE_CHANNEL:
        return sub->name_len == e->channel->name_len &&
               memcmp(sub->name, e->channel->name, sub->name_len) == 0;
    default:
        return true;
    }
}

/* ---- delivery ----------------------------------------------------------- */

static void event_fill(presence_event *ev, const struct presence__pending *e)
{
    const struct presence__client *client = e->client;
    memset(ev, 0, sizeof *ev);
    ev->kind = (presence_event_kind)e->kind;
    ev->reason = (presence_leave_reason)e->reason;
    ev->seq = e->seq;
    ev->time_ms = e->time_ms;
    const struct presence__channel *ch = e->channel; /* NULL: user event */
    ev->channel = ch != NULL ? ch->name : "";
    ev->namespace_name = ch != NULL ? ch->ns->name : "";
    ev->client_id = client->id;
    ev->user_id = presence__client_user_id(client);
    ev->conn_info =
        presence__client_conn_info_len(client) > 0
            ? presence__client_conn_info(client)
            : NULL;
    ev->conn_info_len = presence__client_conn_info_len(client);
    ev->chan_info = e->chan_info != NULL ? e->chan_info->data : NULL;
    ev->chan_info_len = e->chan_info != NULL ? e->chan_info->len : 0;
    ev->stats.num_clients = e->num_clients;
    ev->stats.num_users = e->num_users;
    ev->stats.epoch = e->epoch; /* 0 for a user event */
    ev->stats.seq = e->seq;
    ev->epoch = ev->stats.epoch;
    ev->client_app = e->app;
    const struct presence__node *node = presence__client_node(client);
    ev->node_id = node != NULL ? node->id : "";
}

/* Step the dispatcher onto `next` (queue lock held), freeing the one it
 * leaves if that was removed while it was called. */
static void delivering_move(presence_registry *reg,
                            struct presence__subscription *next)
{
    if (reg->delivering_removed) {
        subscription_free(reg, reg->delivering);
        reg->delivering_removed = false;
    }
    reg->delivering = next;
}

/*
 * Call every active subscription that matches. The list is walked with
 * the lock released around each call: the record the dispatcher stands
 * on is never freed under it (see subscription_remove), and `active` is
 * atomic, so a callback that unsubscribes another one stops it before its
 * turn.
 */
static void deliver(presence_registry *reg, const struct presence__pending *e)
{
    presence_event ev;
    event_fill(&ev, e);
    queue_lock(reg);
    struct presence__subscription *sub = reg->subs;
    delivering_move(reg, sub);
    queue_unlock(reg);
    while (sub != NULL) {
        if (atomic_load(&sub->active) && subscription_matches(sub, e)) {
            if (sub->coalesce != NULL) {
                presence__coalesce_record(reg, sub->coalesce, e);
            } else {
                sub->fn(reg, &ev, sub->user_data);
            }
        }
        queue_lock(reg);
        sub = sub->next;
        delivering_move(reg, sub);
        queue_unlock(reg);
    }
}

bool presence__events_dispatching(presence_registry *reg)
{
    queue_lock(reg);
    bool busy = reg->dispatching;
    queue_unlock(reg);
    return busy;
}

void presence__events_due(presence_registry *reg, int64_t due_ms)
{
    queue_lock(reg);
    if (due_ms < reg->coalesce_due_ms) {
        reg->coalesce_due_ms = due_ms;
    }
    queue_unlock(reg);
}

/*
 * Deliver the coalesced diffs due at now_ms (the dispatcher, no lock
 * held), walking the subscriptions as deliver() does, and then set the
 * registry's next flush deadline: only the dispatcher records changes, so
 * none is recorded meanwhile and the minimum found is exact.
 */
static void flush_pass(presence_registry *reg, int64_t now_ms)
{
    int64_t next_due = PRESENCE_NO_DEADLINE;
    queue_lock(reg);
    struct presence__subscription *sub = reg->subs;
    delivering_move(reg, sub);
    queue_unlock(reg);
    while (sub != NULL) {
        if (sub->coalesce != NULL && atomic_load(&sub->active)) {
            presence__coalesce_deliver(reg, sub->coalesce, &sub->active,
                                       sub->scope, sub->name, now_ms,
                                       &next_due);
        }
        queue_lock(reg);
        sub = sub->next;
        delivering_move(reg, sub);
        queue_unlock(reg);
    }
    queue_lock(reg);
    reg->coalesce_due_ms = next_due;
    queue_unlock(reg);
}

/* The dispatcher's loop (queue lock held, role taken): queued events, then
 * a flush asked for meanwhile, until neither is left. */
PRESENCE__NOINLINE
static void dispatch_loop(presence_registry *reg)
{
    struct presence__pending batch[DELIVERY_BATCH];
    for (;;) {
        while (reg->queue_len > 0) {
            size_t n = reg->queue_len < DELIVERY_BATCH ? reg->queue_len
                                                       : DELIVERY_BATCH;
            for (size_t i = 0; i < n; i++) {
                batch[i] = reg->queue[reg->queue_head];
                reg->queue_head = (reg->queue_head + 1) % reg->queue_cap;
            }
            reg->queue_len -= n;
            atomic_fetch_sub(&reg->queued, n);
            queue_unlock(reg);
            for (size_t i = 0; i < n; i++) {
                deliver(reg, &batch[i]);
                pending_release(reg, &batch[i]);
            }
            queue_lock(reg);
        }
        if (!atomic_load(&reg->flush_wanted)) {
            return;
        }
        int64_t now_ms = reg->flush_now_ms;
        reg->flush_now_ms = INT64_MIN;
        atomic_store(&reg->flush_wanted, false);
        queue_unlock(reg);
        flush_pass(reg, now_ms);
        queue_lock(reg);
    }
}

/* Deliver what is queued or asked for, unless another thread is
 * delivering: then it does, before it stops. */
static void dispatch(presence_registry *reg)
{
    queue_lock(reg);
    if (reg->dispatching ||
        (reg->queue_len == 0 && !atomic_load(&reg->flush_wanted))) {
        queue_unlock(reg);
        return;
    }
    reg->dispatching = true;
    reg->dispatcher = pthread_self();
    dispatch_loop(reg);
    reg->dispatching = false;
    queue_trim(reg);
    queue_unlock(reg);
}

void presence__events_dispatch(presence_registry *reg)
{
    /* Most calls queue nothing: don't touch the shared lock for them. A
     * thread that queues after this check delivers its own events. */
    if (atomic_load(&reg->queued) == 0) {
        return;
    }
    dispatch(reg);
}

int presence_flush(presence_registry *reg, int64_t now_ms,
                   int64_t *next_deadline_ms)
{
    if (reg == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    queue_lock(reg);
    if (now_ms > reg->flush_now_ms) {
        reg->flush_now_ms = now_ms;
    }
    atomic_store(&reg->flush_wanted, true);
    queue_unlock(reg);
    dispatch(reg);
    if (next_deadline_ms != NULL) {
        queue_lock(reg);
        *next_deadline_ms = reg->coalesce_due_ms;
        queue_unlock(reg);
    }
    return PRESENCE_OK;
}

void presence__events_free(presence_registry *reg)
{
    while (reg->queue_len > 0) {
        pending_release(reg, &reg->queue[reg->queue_head]);
        reg->queue_head = (reg->queue_head + 1) % reg->queue_cap;
        reg->queue_len--;
    }
    presence__free(&reg->alloc, reg->queue, reg->queue_cap * sizeof *reg->queue);
    reg->queue = NULL;
    reg->queue_cap = 0;
    struct presence__subscription *sub = reg->subs;
    while (sub != NULL) {
        struct presence__subscription *next = sub->next;
        subscription_free(reg, sub);
        sub = next;
    }
    reg->subs = NULL;
}
