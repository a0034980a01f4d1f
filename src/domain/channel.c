/*
 * Channels and memberships: join, leave, disconnect, update, touch, close,
 * expire.
 *
 * Every change follows the same shape: validate, take the shards it needs
 * (client's, then channel's: see domain.h), find what is needed, make
 * every allocation the change needs (event room included), and only then
 * change the structures, so that a failure leaves the registry as it was.
 * Events are queued while the channel's shard is held and delivered after
 * every lock is released.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"

/* Members removed per batch by close, expire and namespace closes, between
 * deliveries: bounds the memory queued events take. */
#define BATCH 128u

static size_t channel_size(size_t name_len)
{
    return offsetof(struct presence__channel, name) + name_len + 1;
}

/* ---- channels ----------------------------------------------------------- */

/* Count a new channel against channels_max, exactly also when shards
 * race; without that limit there is nothing to count. */
static bool channel_count_take(presence_registry *reg)
{
    size_t max = reg->limits.channels_max;
    if (max == 0) {
        return true;
    }
    size_t cur = atomic_load(&reg->channels_limited);
    do {
        if (cur >= max) {
            return false;
        }
    } while (!atomic_compare_exchange_weak(&reg->channels_limited, &cur,
                                           cur + 1));
    return true;
}

static void channel_count_give(presence_registry *reg)
{
    if (reg->limits.channels_max != 0) {
        atomic_fetch_sub(&reg->channels_limited, 1);
    }
}

/* Make sure the shard's channel table has a free number (shard held). The
 * table only grows: numbers of live channels never move. */
static int chans_prepare(presence_registry *reg, struct presence__shard *hs)
{
    if (hs->chans_free != PRESENCE__SLAB_NONE) {
        return PRESENCE_OK;
    }
    uint32_t cap = hs->chans_cap;
    uint32_t next = cap == 0 ? 8 : cap * 2;
    /* Each live channel has a membership, and a shard's slab holds 2^26. */
    if (cap >= (1u << PRESENCE__MREF_SHARD_SHIFT)) {
        return PRESENCE_ERR_NOMEM;
    }
    union presence__chslot *t = presence__realloc(
        &reg->alloc, hs->chans, cap * sizeof *t, (size_t)next * sizeof *t);
    if (t == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    for (uint32_t i = cap; i < next; i++) {
        t[i].next_free = i + 1 < next ? i + 1 : PRESENCE__SLAB_NONE;
    }
    hs->chans = t;
    hs->chans_cap = next;
    hs->chans_free = cap;
    return PRESENCE_OK;
}

/* A new, empty record of a channel, in its shard's index; its life's
 * epoch is drawn by its first join. presence__index_prepare and
 * chans_prepare must have succeeded on its shard. */
PRESENCE__NOINLINE
static struct presence__channel *
channel_create(presence_registry *reg, const struct presence__chref *ref)
{
    struct presence__channel *ch = presence__pool_alloc(
        &reg->alloc, &reg->channel_pools[ref->shard - reg->shards],
        channel_size(ref->len));
    if (ch == NULL) {
        return NULL;
    }
    presence__pool_clear(ch, offsetof(struct presence__channel, name));
    ch->hash = ref->hash;
    atomic_init(&ch->refs, 1); /* the index's */
    ch->ns = ref->ns;
    presence__memberset_init(&ch->members, &ref->shard->membership_slab);
    memcpy(ch->name, ref->name, ref->len);
    ch->name[ref->len] = '\0';
    ch->name_len = (uint32_t)ref->len; /* checked: under 4 GiB */
    struct presence__shard *hs = ref->shard;
    ch->number = hs->chans_free;
    hs->chans_free = hs->chans[ch->number].next_free;
    hs->chans[ch->number].ch = ch;
    presence__index_insert(&hs->channels, ch->hash, ch);
    return ch;
}

void presence__channel_unref(presence_registry *reg,
                             struct presence__channel *ch)
{
    if (atomic_fetch_sub(&ch->refs, 1) == 1) {
        presence__pool_free(&reg->alloc, ch, channel_size(ch->name_len));
    }
}

/* Out of its shard's index and table (shard held); freed with its last
 * reference. */
static void channel_unlist(presence_registry *reg, struct presence__shard *hs,
                           struct presence__channel *ch)
{
    presence__index_remove(&reg->alloc, &hs->channels, ch->hash, ch);
    hs->chans[ch->number].next_free = hs->chans_free;
    hs->chans_free = ch->number;
    presence__channel_unref(reg, ch); /* the index's */
}

/* The end of a life (no member left, shard held): what the life had goes
 * and it stops counting as a channel. */
static void channel_end_life(presence_registry *reg,
                             struct presence__channel *ch)
{
    presence__memberset_free(&reg->alloc, &ch->members);
    presence__history_free(reg, ch);
    channel_count_give(reg);
}

/* The channel has no member left (shard held): out of its shard, or,
 * pinned by a channel handle, idle there, reading as no channel (epoch
 * and seq 0) until a join begins its next life. */
PRESENCE__NOINLINE
static void channel_retire(presence_registry *reg,
                           struct presence__channel *ch)
{
    struct presence__shard *hs = presence__shard_of(reg, ch->hash);
    channel_end_life(reg, ch);
    if (ch->pins == 0) {
        channel_unlist(reg, hs, ch);
        return;
    }
    ch->epoch = 0;
    ch->seq = 0;
    ch->member_bytes = 0;
    hs->idle++;
}

int presence__channel_pin(presence_registry *reg, struct presence__chref *ref,
                          struct presence__channel **out)
{
    struct presence__shard *hs = ref->shard;
    struct presence__channel *ch = ref->ch != NULL ? ref->ch : ref->idle;
    if (ch != NULL) {
        if (ch->pins == UINT32_MAX) {
            return PRESENCE_ERR_NOMEM; /* no count for one more */
        }
        ch->pins++;
        *out = ch;
        return PRESENCE_OK;
    }
    int rc = presence__index_prepare(&reg->alloc, &hs->channels);
    if (rc == PRESENCE_OK) {
        rc = chans_prepare(reg, hs);
    }
    if (rc == PRESENCE_OK) {
        ch = channel_create(reg, ref);
        rc = ch != NULL ? PRESENCE_OK : PRESENCE_ERR_NOMEM;
    }
    if (rc == PRESENCE_OK) {
        ch->pins = 1;
        hs->idle++;
        ref->idle = ch;
        *out = ch;
    }
    return rc;
}

void presence__channel_unpin(presence_registry *reg,
                             struct presence__channel *ch)
{
    ch->pins--;
    if (ch->pins == 0 && ch->members.count == 0) {
        struct presence__shard *hs = presence__shard_of(reg, ch->hash);
        hs->idle--;
        channel_unlist(reg, hs, ch);
    }
}

/* ---- memberships -------------------------------------------------------- */

struct presence__membership *
presence__membership_find(struct presence__channel *ch,
                          const struct presence__client *client)
{
    return presence__memberset_find(&ch->members, client);
}

/* Steps along a client's list before its channel's member set is asked. */
#define CLIENT_WALK_MAX 8

/* Two memberships of one slab within a few slots of each other: most
 * likely on a line just loaded, a step no cache miss waits for. */
static bool near_in_slab(uint32_t a, uint32_t b)
{
    return (a > b ? a - b : b - a) < 4;
}

/*
 * The client's membership of the channel chan names, found from the
 * client's side first. A client's memberships in one shard come from one
 * slab, those made together side by side, and a server renews them
 * client by client: a few steps along the list, on lines the last
 * renewal loaded, find it (or, at the list's end, that there is none)
 * without the channel's member set, whose slot is a cache miss, and
 * without reading the other members of a user with many connections
 * there. A list whose next step lies far away (made at different times,
 * or in another shard) is left for the member set. A renewal does not
 * load the set's slot ahead in case: that load, for nothing most of the
 * time, cost it a fifth (presence-scaling touch-order: faster without it
 * in every order, the memberships made apart included); a leave, which
 * reads the slot anyway, does.
 */
static struct presence__membership *
find_from_client(presence_registry *reg, const struct presence__client *client,
                 const struct presence__chref *chan)
{
    uint32_t want = presence__chref(reg, chan->shard, chan->ch);
    uint32_t ref = client->memberships;
    for (size_t n = 0; n < CLIENT_WALK_MAX; n++) {
        if (ref == PRESENCE__SLAB_NONE) {
            return NULL; /* the whole list: not a member */
        }
        struct presence__membership *m = presence__mref_get(reg, ref);
        if (m->chref == want) {
            return m;
        }
        if (m->cnext != PRESENCE__SLAB_NONE && !near_in_slab(ref, m->cnext)) {
            break;
        }
        ref = m->cnext;
    }
    return presence__membership_find(chan->ch, client);
}

struct presence__membership *
presence__membership_find_id(struct presence__channel *ch,
                             uint32_t user_key, const char *id, size_t len,
                             uint64_t hash)
{
    return presence__memberset_find_id(&ch->members, user_key, hash, id, len);
}


/* Memberships come from their channel's shard's slab. */
static void membership_free(presence_registry *reg,
                            struct presence__shard *hs,
                            struct presence__membership *m)
{
    if (presence__membership_has_chan_info(m)) {
        presence__chan_info_unref(reg, presence__chaninfo_take(
                                      &reg->alloc, &hs->chan_infos, m->slab.slab_index));
    }
    presence__slab_free(&reg->alloc, &hs->membership_slab, m);
}

/* Remove a membership of channel ch in shard hs; its leave happened at
 * at_ms (PRESENCE__EVENT_NOW: now). A logged removal goes into its
 * channel's log (one taken back by presence__leave_silent() is not).
 * Inlined into a client's leave, whose loop knows hs and ch already. */
static PRESENCE__ALWAYS_INLINE void
membership_remove_in(presence_registry *reg, struct presence__shard *hs,
                     struct presence__channel *ch,
                     struct presence__membership *m,
                     presence_leave_reason reason, int64_t at_ms,
                     size_t *reserved, bool logged)
{
    struct presence__client *client = m->client;

    bool last_of_user =
        presence__memberset_remove(&reg->alloc, &ch->members, m);
    ch->users -= last_of_user;
    ch->member_bytes -= presence__membership_bytes(hs, m);
    /* Remote ones have no TTL here; one in grace is on a grace list. */
    if (presence__membership_in_grace(m)) {
        presence__grace_forget(reg, hs, ch, m);
    } else if (presence__has_touch_order(ch) &&
               presence__client_node(client) == NULL) {
        presence__touch_unlink(hs, presence__touch_list_of(reg, hs, ch), m);
    }
    uint32_t self = presence__mref(reg, hs, m);
    uint32_t *link = &client->memberships;
    while (*link != self) { /* a disconnect finds m at the head */
        link = &presence__mref_get(reg, *link)->cnext;
    }
    *link = m->cnext;
    client->channel_count--;
    presence__shard_count_memberships(hs, -1);
    ch->seq++;
    if (logged) {
        presence__history_log_at(reg, hs, ch, m, PRESENCE_EVENT_LEAVE, reason,
                                 at_ms);
    }
    presence__events_push_at(reg, hs, ch, m, PRESENCE_EVENT_LEAVE, reason,
                             last_of_user, at_ms, reserved);
    membership_free(reg, hs, m);
    if (ch->members.count == 0) {
        channel_retire(reg, ch);
    }
    if (client->channel_count == 0 && !presence__client_open(client)) {
        presence__client_retire(reg, client, reserved);
    }
}

static void membership_remove_at(presence_registry *reg,
                                 struct presence__membership *m,
                                 presence_leave_reason reason, int64_t at_ms,
                                 size_t *reserved, bool logged)
{
    struct presence__shard *hs = presence__membership_shard(reg, m);
    membership_remove_in(reg, hs, presence__shard_channel(hs, m), m, reason,
                         at_ms, reserved, logged);
}

void presence__membership_remove(presence_registry *reg,
                                 struct presence__membership *m,
                                 presence_leave_reason reason,
                                 size_t *reserved)
{
    membership_remove_at(reg, m, reason, PRESENCE__EVENT_NOW, reserved, true);
}

void presence__membership_end_grace(presence_registry *reg,
                                    struct presence__membership *m,
                                    presence_leave_reason reason,
                                    size_t *reserved)
{
    /* The leave happened when it dropped: its touch time since. */
    membership_remove_at(reg, m, reason, presence__membership_touched(m),
                         reserved, true);
}

void presence__channels_free(presence_registry *reg)
{
    /* Queued events are gone, so no channel outlives this. */
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        struct presence__index *idx = &reg->shards[s].channels;
        for (size_t i = 0; i < presence__index_slots(idx); i++) {
            struct presence__channel *ch = presence__index_at(idx, i);
            if (ch == NULL) {
                continue;
            }
            for (size_t j = 0; j < ch->members.nslots; j++) {
                struct presence__membership *m =
                    presence__memberset_at(&ch->members, j);
                if (m != NULL) {
                    membership_free(reg, &reg->shards[s], m);
                }
            }
            presence__memberset_free(&reg->alloc, &ch->members);
            presence__history_free(reg, ch);
            presence__pool_free(&reg->alloc, ch, channel_size(ch->name_len));
        }
        presence__index_free(&reg->alloc, idx);
        /* Empty now, but a join that failed may have left it a table. */
        presence__chaninfo_free(&reg->alloc, &reg->shards[s].chan_infos);
        presence__free(&reg->alloc, reg->shards[s].chans,
                       reg->shards[s].chans_cap *
                           sizeof *reg->shards[s].chans);
    }
}

/* ---- removing many: close, expire, namespace close ------------------------ */

/*
 * A batch of removals under one channel shard. It holds an event
 * reservation; between batches the shard is released and events are
 * delivered, so that a huge close or expiry queues little at a time.
 */
struct sweep {
    presence_registry *reg;
    struct presence__shard *hs;
    size_t reserved;
    size_t done;
    size_t dropped; /* into grace (expiry) */
};

static int sweep_begin(struct sweep *sw)
{
    return presence__events_reserve(
        sw->reg, (2 + presence__user_event_room(sw->reg)) * BATCH,
        &sw->reserved);
}

/* End a batch: give back the room, let events go, take the shard again. */
static int sweep_next_batch(struct sweep *sw)
{
    presence__events_release(sw->reg, &sw->reserved);
    presence__mutex_unlock(sw->reg, &sw->hs->lock);
    presence__events_dispatch(sw->reg);
    presence__mutex_lock(sw->reg, &sw->hs->lock);
    return sweep_begin(sw);
}

/* What a sweep does to a membership. */
enum sweep_action {
    SWEEP_LEAVE,     /* it leaves, for the reason given */
    SWEEP_DROP,      /* it goes into grace, for the reason given */
    SWEEP_END_GRACE, /* its grace ended: it leaves, as and when it dropped */
};

/*
 * Remove m (its channel's shard held), or what `action` says. Takes m's
 * client's shard, stepping back if need be; then `still` says whether m
 * is still the one to remove. Returns whether it removed it.
 */
static bool sweep_apply(struct sweep *sw, struct presence__membership *m,
                        enum sweep_action action, presence_leave_reason reason,
                         bool (*still)(const struct sweep *sw,
                                       const struct presence__membership *m,
                                       const void *ctx),
                         const void *ctx)
{
    presence_registry *reg = sw->reg;
    struct presence__client *client = m->client;
    struct presence__cshard *cs = presence__cshard_of(reg, client->hash);
    presence__client_ref(reg, client);
    bool removed = false;
    if (!presence__lock_client_of(reg, sw->hs, client) ||
        (still(sw, m, ctx) && m->client == client)) {
        if (action == SWEEP_DROP) {
            presence__grace_drop(reg, sw->hs, presence__shard_channel(sw->hs, m),
                                 m, reason);
            sw->dropped++;
        } else {
            if (action == SWEEP_END_GRACE) {
                presence__membership_end_grace(reg, m, reason, &sw->reserved);
            } else {
                presence__membership_remove(reg, m, reason, &sw->reserved);
            }
            sw->done++;
        }
        removed = true;
    }
    presence__mutex_unlock(reg, &cs->lock);
    presence__client_unref(reg, client);
    return removed;
}

/* Drain a channel by name from a cursor: every member present when it
 * began leaves (its shard held; it may be released between batches). */
struct drain_ctx {
    const struct presence__chref *ref;
    uint64_t cursor;
};

static struct presence__channel *drain_channel(const struct sweep *sw,
                                               const struct presence__chref *ref)
{
    return presence__index_find(&sw->hs->channels, ref->hash, ref->name,
                                ref->len);
}

static bool drain_still(const struct sweep *sw,
                        const struct presence__membership *m, const void *ctx)
{
    const struct drain_ctx *d = ctx;
    struct presence__channel *ch = drain_channel(sw, d->ref);
    uint64_t key;
    return ch != NULL &&
           presence__memberset_lower_bound(&ch->members, d->cursor, &key) == m;
}

static int drain(struct sweep *sw, const struct presence__chref *ref,
                 presence_leave_reason reason)
{
    struct drain_ctx d = {ref, 0};
    int rc = sweep_begin(sw);
    size_t in_batch = 0;
    while (rc == PRESENCE_OK) {
        struct presence__channel *ch = drain_channel(sw, ref);
        uint64_t key = 0;
        struct presence__membership *m =
            ch != NULL
                ? presence__memberset_lower_bound(&ch->members, d.cursor, &key)
                : NULL;
        if (m == NULL) {
            break;
        }
        d.cursor = key;
        if (sweep_apply(sw, m, SWEEP_LEAVE, reason, drain_still, &d) &&
            ++in_batch == BATCH) {
            in_batch = 0;
            rc = sweep_next_batch(sw);
        }
    }
    presence__events_release(sw->reg, &sw->reserved);
    return rc;
}

int presence__namespace_drain(presence_registry *reg,
                              struct presence__namespace *ns)
{
    int rc = PRESENCE_OK;
    for (size_t s = 0; s < PRESENCE__SHARDS && rc == PRESENCE_OK; s++) {
        struct sweep sw = {reg, &reg->shards[s], 0, 0, 0};
        presence__mutex_lock(reg, &sw.hs->lock);
        /* Take the shard's channels of the namespace one at a time: a drain
         * may release the shard, so look again from the start each time. */
        for (;;) {
            struct presence__channel *found = NULL;
            struct presence__index *idx = &sw.hs->channels;
            for (size_t i = 0; i < presence__index_slots(idx); i++) {
                struct presence__channel *ch = presence__index_at(idx, i);
                if (ch != NULL && ch->ns == ns && ch->members.count > 0) {
                    found = ch;
                    break;
                }
            }
            if (found == NULL || rc != PRESENCE_OK) {
                break;
            }
            /* The reference keeps the name readable after the channel's
             * last member left. */
            atomic_fetch_add(&found->refs, 1);
            struct presence__chref ref = {found->name, found->name_len,
                                          found->hash, sw.hs, ns, found};
            rc = drain(&sw, &ref, PRESENCE_LEAVE_CLOSED);
            presence__channel_unref(reg, found);
        }
        presence__mutex_unlock(reg, &sw.hs->lock);
        presence__events_dispatch(reg);
    }
    return rc;
}

/* ---- argument checks shared by the entry points ------------------------- */

int presence__check_info(const void *data, size_t len, size_t max)
{
    if (data == NULL && len > 0) {
        return PRESENCE_ERR_INVALID;
    }
    return len > max ? PRESENCE_ERR_TOO_LONG : PRESENCE_OK;
}

static int check_client(presence_registry *reg, const char *client_id,
                        struct presence__target *t)
{
    int rc = presence__check_hash_name(reg, client_id,
                                       reg->limits.client_id_max, false,
                                       &t->client_len, &t->client_hash);
    if (rc == PRESENCE_OK) {
        t->client_id = client_id;
        t->cs = presence__cshard_of(reg, t->client_hash);
    }
    return rc;
}

static int target_check(presence_registry *reg, const char *channel,
                        const char *client_id, struct presence__target *t)
{
    if (reg == NULL || channel == NULL || client_id == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    int rc = presence__channel_check(reg, channel, &t->chan);
    return rc == PRESENCE_OK ? check_client(reg, client_id, t) : rc;
}

/* ---- join --------------------------------------------------------------- */

static size_t member_limit(const presence_registry *reg,
                           const struct presence__namespace *ns)
{
    size_t lim = reg->limits.members_per_channel_max;
    size_t ns_lim = ns->options.max_members;
    if (ns_lim != 0 && (lim == 0 || ns_lim < lim)) {
        lim = ns_lim;
    }
    return lim;
}

/* Replace a membership's chan_info, with an update event if it differs
 * (its channel's shard held). */
PRESENCE__NOINLINE
int presence__replace_chan_info(presence_registry *reg,
                                struct presence__membership *m,
                                const void *chan_info, size_t chan_info_len,
                                bool *changed)
{
    struct presence__shard *hs = presence__membership_shard(reg, m);
    struct presence__blob *old = presence__membership_chan_info(hs, m);
    *changed = false;
    if (presence__blob_equals(old, chan_info, chan_info_len)) {
        return PRESENCE_OK;
    }
    size_t reserved;
    int rc = presence__events_reserve(reg, 1, &reserved);
    struct presence__blob *blob = NULL;
    if (rc == PRESENCE_OK) {
        rc = presence__history_room(reg, presence__shard_channel(hs, m), 1);
    }
    if (rc == PRESENCE_OK) {
        rc = presence__blob_new(&reg->alloc, chan_info, chan_info_len, &blob);
    }
    if (rc == PRESENCE_OK && blob != NULL && old == NULL) {
        rc = presence__chaninfo_prepare(&reg->alloc, &hs->chan_infos);
        if (rc != PRESENCE_OK) {
            presence__chan_info_unref(reg, blob);
        }
    }
    if (rc == PRESENCE_OK) {
        struct presence__channel *ch = presence__shard_channel(hs, m);
        uint32_t number = m->slab.slab_index;
        ch->member_bytes -= presence__membership_bytes(hs, m);
        if (old == NULL) {
            presence__chaninfo_put(&hs->chan_infos, number, blob);
            m->joined_hi |= PRESENCE__HAS_CHAN_INFO;
        } else if (blob == NULL) {
            presence__chaninfo_take(&reg->alloc, &hs->chan_infos, number);
            m->joined_hi &= (uint16_t)~PRESENCE__HAS_CHAN_INFO;
        } else {
            presence__chaninfo_replace(&hs->chan_infos, number, blob);
        }
        presence__chan_info_unref(reg, old);
        ch->member_bytes += presence__membership_bytes(hs, m);
        ch->seq++;
        *changed = true;
        presence__history_log(reg, hs, ch, m, PRESENCE_EVENT_UPDATE,
                              PRESENCE_LEAVE_NONE);
        presence__events_push(reg, hs, ch, m, PRESENCE_EVENT_UPDATE,
                              PRESENCE_LEAVE_NONE, false, &reserved);
    }
    presence__events_release(reg, &reserved);
    return rc;
}

static int join_check_limits(const presence_registry *reg,
                             const struct presence__target *t,
                             const struct presence__client *client,
                             bool replacing)
{
    size_t per_client = reg->limits.channels_per_client_max;
    if (client != NULL &&
        ((per_client != 0 && client->channel_count >= per_client) ||
         client->channel_count == UINT32_MAX)) {
        return PRESENCE_ERR_CLIENT_CHANNEL_LIMIT;
    }
    /* One that takes a member's place adds no member. */
    size_t per_channel = replacing ? 0 : member_limit(reg, t->chan.ns);
    if (t->chan.ch != NULL && per_channel != 0 &&
        t->chan.ch->members.count >= per_channel) {
        return PRESENCE_ERR_CHANNEL_MEMBER_LIMIT;
    }
    return PRESENCE_OK;
}

/* Link a new membership, already in its channel's member set, in
 * everywhere else and announce it (with no reservation, nothing is
 * announced): the part of a join that cannot fail (both shards held,
 * everything allocated). A silent join is logged by whoever commits it. */
static PRESENCE__ALWAYS_INLINE void
membership_link(presence_registry *reg, struct presence__shard *hs,
                            struct presence__channel *ch,
                            struct presence__client *client,
                            struct presence__membership *m,
                            struct presence__blob *blob, size_t *reserved,
                            bool silent, bool first_of_user, int64_t now)
{
    /* Every field but the slab's own. */
    *m = (struct presence__membership){
        .slab = m->slab,
        .client = client,
        .chref = presence__chref(reg, hs, ch),
        .cnext = client->memberships,
    };
    presence__time48_set(&m->joined_lo, &m->joined_hi, now);
    presence__time48_set(&m->touched_lo, &m->touched_hi, now);
    if (blob != NULL) { /* room was made by join_new */
        presence__chaninfo_put(&hs->chan_infos, m->slab.slab_index, blob);
        m->joined_hi |= PRESENCE__HAS_CHAN_INFO;
    }
    client->memberships = presence__mref(reg, hs, m);
    client->channel_count++;
    ch->users += first_of_user;
    ch->member_bytes += presence__membership_bytes(hs, m);
    /* Remote ones have no TTL here; room for the links was made. */
    if (presence__has_touch_order(ch) &&
        presence__client_node(client) == NULL) {
        presence__touch_append(hs, presence__touch_list_of(reg, hs, ch), m);
    }
    presence__shard_count_memberships(hs, 1);
    ch->seq++;
    if (!silent) {
        presence__history_log(reg, hs, ch, m, PRESENCE_EVENT_JOIN,
                              PRESENCE_LEAVE_NONE);
    }
    presence__events_push(reg, hs, ch, m, PRESENCE_EVENT_JOIN,
                          PRESENCE_LEAVE_NONE, first_of_user, reserved);
}

/* A new membership (both shards held): every allocation first, then the
 * change. Silent (for presence__join_silent), it queues no event and
 * tells what it made. */
static PRESENCE__ALWAYS_INLINE int
join_new(presence_registry *reg, struct presence__target *t,
                    struct presence__client *client,
                    const struct presence__join_args *a, bool silent,
                    struct presence__membership **made, bool *first_of_user)
{
    struct presence__shard *hs = t->chan.shard;
    /* A new life: of a new record, or of a channel handle's idle one. */
    bool new_channel = t->chan.ch == NULL;
    struct presence__channel *idle = new_channel ? t->chan.idle : NULL;
    int rc = join_check_limits(reg, t, client, a->replacing);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    if (new_channel && !channel_count_take(reg)) {
        return PRESENCE_ERR_CHANNEL_LIMIT;
    }
    size_t reserved = 0;
    struct presence__blob *blob = NULL;
    struct presence__membership *m = NULL;
    bool created = false, revived = false;
    rc = silent ? PRESENCE_OK
                : presence__events_reserve(
                      reg, 2 + presence__user_event_room(reg), &reserved);
    if (rc == PRESENCE_OK && new_channel && idle == NULL) {
        rc = presence__index_prepare(&reg->alloc, &hs->channels);
    }
    if (rc == PRESENCE_OK && new_channel && idle == NULL) {
        rc = chans_prepare(reg, hs);
    }
    if (rc == PRESENCE_OK && client == NULL) {
        rc = presence__client_prepare(reg, t->cs);
    }
    if (rc == PRESENCE_OK) {
        rc = presence__blob_new(&reg->alloc, a->chan_info, a->chan_info_len, &blob);
    }
    if (rc == PRESENCE_OK && blob != NULL) {
        rc = presence__chaninfo_prepare(&reg->alloc, &hs->chan_infos);
    }
    if (rc == PRESENCE_OK) {
        m = presence__slab_alloc(&reg->alloc, &hs->membership_slab);
        rc = m != NULL ? PRESENCE_OK : PRESENCE_ERR_NOMEM;
    }
    if (rc == PRESENCE_OK && t->chan.ns->options.ttl_ms > 0 &&
        a->node == NULL) {
        rc = presence__touch_prepare(reg, hs, m);
    }
    if (rc == PRESENCE_OK && new_channel) {
        if (idle != NULL) {
            t->chan.ch = idle;
            revived = true;
            hs->idle--;
        } else {
            t->chan.ch = channel_create(reg, &t->chan);
            created = t->chan.ch != NULL;
        }
        if (t->chan.ch != NULL) {
            t->chan.ch->epoch = presence__epoch(reg, hs);
        }
        rc = t->chan.ch != NULL ? presence__history_attach(reg, t->chan.ch)
                                : PRESENCE_ERR_NOMEM;
    }
    struct presence__channel *ch = t->chan.ch;
    if (rc == PRESENCE_OK) {
        rc = presence__history_room(reg, ch, 2);
    }
    if (rc == PRESENCE_OK) {
        rc = presence__memberset_prepare(&reg->alloc, &ch->members);
    }
    bool made_client = false;
    if (rc == PRESENCE_OK && client == NULL) {
        rc = presence__client_create(reg, t->cs, t->client_id, t->client_len,
                                     t->client_hash, a->user_id, a->user_len,
                                     a->conn_info, a->conn_info_len, a->node,
                                     NULL, &reserved, &client);
        made_client = rc == PRESENCE_OK;
    }
    /* The last step that can fail (a crowd's table may have to grow): the
     * member set is searched by user, so it comes once the client is. */
    bool first = false;
    if (rc == PRESENCE_OK) {
        rc = presence__memberset_insert(&reg->alloc, &ch->members, m, client,
                                        &first);
        if (rc != PRESENCE_OK && made_client) {
            /* A user with a full group here (memberset.h) has other
             * clients: taking the new one back announces nothing. */
            presence__client_retire(reg, client, &reserved);
        }
    }
    if (rc != PRESENCE_OK) {
        if (created || revived) {
            channel_retire(reg, ch); /* counts itself out; idle again */
            t->chan.ch = NULL;
        } else if (new_channel) {
            channel_count_give(reg);
        }
        if (m != NULL) {
            presence__slab_free(&reg->alloc, &hs->membership_slab, m);
        }
        presence__chan_info_unref(reg, blob);
        presence__events_release(reg, &reserved);
        return rc;
    }

    membership_link(reg, hs, ch, client, m, blob, &reserved, silent, first,
                    a->has_now ? a->now_ms : presence__now(reg));
    presence__events_release(reg, &reserved);
    if (silent) {
        *made = m;
        *first_of_user = first;
    }
    return PRESENCE_OK;
}

int presence__join_silent(presence_registry *reg, struct presence__target *t,
                          struct presence__client *client,
                          const struct presence__join_args *a,
                          struct presence__membership **made,
                          bool *first_of_user)
{
    return join_new(reg, t, client, a, true, made, first_of_user);
}

void presence__leave_silent(presence_registry *reg,
                            struct presence__membership *m)
{
    struct presence__channel *ch = presence__membership_channel(reg, m);
    bool stays = ch->members.count > 1;
    size_t none = 0;
    membership_remove_at(reg, m, PRESENCE_LEAVE_EXPLICIT, PRESENCE__EVENT_NOW,
                         &none, false);
    if (stays) {
        ch->seq -= 2; /* its join's and its leave's */
    }
}

/* presence__join_locked(), inlined into presence_join's path. */
static PRESENCE__ALWAYS_INLINE int
join_locked(presence_registry *reg, struct presence__target *t,
            struct presence__client *client,
            const struct presence__join_args *a, presence_change *change)
{
    /* A client in no channel (a handle just opened) is in none to find. */
    struct presence__membership *m =
        client != NULL && client->channel_count > 0 && t->chan.ch != NULL
            ? presence__membership_find(t->chan.ch, client)
            : NULL;
    presence_change_kind kind = PRESENCE_CHANGE_JOINED;
    int rc;
    if (m != NULL) {
        bool changed;
        rc = presence__replace_chan_info(reg, m, a->chan_info,
                                         a->chan_info_len, &changed);
        kind = changed ? PRESENCE_CHANGE_UPDATED : PRESENCE_CHANGE_NONE;
        if (rc == PRESENCE_OK && presence__membership_in_grace(m)) {
            /* Back in time: as if it had never dropped. */
            presence__grace_resume(reg, t->chan.shard, t->chan.ch, m);
            kind = PRESENCE_CHANGE_RESUMED;
        } else if (rc == PRESENCE_OK && a->node == NULL) {
            presence__touch_renew(reg, t->chan.shard, t->chan.ch, m);
        } else if (rc == PRESENCE_OK) {
            presence__membership_set_touched(
                m, presence__now(reg)); /* no TTL here */
        }
    } else {
        bool taken = false;
        rc = t->chan.ch != NULL && atomic_load_explicit(&reg->graced,
                                                        memory_order_relaxed) > 0
                 ? presence__grace_take_place(reg, t, client, a, change,
                                              &taken)
                 : PRESENCE_OK;
        if (taken || rc != PRESENCE_OK) {
            return rc;
        }
        rc = join_new(reg, t, client, a, false, NULL, NULL);
    }
    if (rc == PRESENCE_OK && change != NULL) {
        change->kind = kind;
        change->stats = presence__channel_stats(t->chan.ch);
    }
    return rc;
}

int presence__join_locked(presence_registry *reg, struct presence__target *t,
                          struct presence__client *client,
                          const struct presence__join_args *a,
                          presence_change *change)
{
    return join_locked(reg, t, client, a, change);
}

/* presence_join() and presence_remote_join(): name is NULL for a client
 * of this registry. It comes last so that presence_join() passes its own
 * arguments on untouched. */
static int join_common(presence_registry *reg, const char *channel,
                       const char *client_id, const char *user_id,
                       const void *conn_info, size_t conn_info_len,
                       const void *chan_info, size_t chan_info_len,
                       const struct presence__nodename *name)
{
    struct presence__join_args a = {NULL, user_id != NULL ? user_id : "", 0, conn_info,
                          conn_info_len, chan_info, chan_info_len};
    struct presence__target t;
    int rc = target_check(reg, channel, client_id, &t);
    if (rc == PRESENCE_OK) {
        rc = presence__check_name(a.user_id, reg->limits.user_id_max, true,
                                  &a.user_len);
    }
    if (rc == PRESENCE_OK) {
        rc = presence__check_info(conn_info, conn_info_len, reg->limits.conn_info_max);
    }
    if (rc == PRESENCE_OK) {
        rc = presence__check_info(chan_info, chan_info_len, reg->limits.chan_info_max);
    }
    if (rc == PRESENCE_OK && name != NULL) {
        /* Clients are told apart by their node's entry, so a remote join
         * needs it (made now if need be, forgotten again if unused). */
        rc = presence__node_intern(reg, name, &a.node);
    }
    if (rc != PRESENCE_OK) {
        return rc;
    }

    struct presence__node *node = a.node;
    struct presence__shard *hs = t.chan.shard;
    presence__mutex_lock(reg, &t.cs->lock);
    presence__mutex_lock(reg, &hs->lock);
    /* Each lookup is a chain of misses (slot, record, then the tables
     * the record points to): start every load as soon as its address is
     * known, so that the two chains overlap. */
    presence__index_prefetch(&t.cs->clients, t.client_hash);
    presence__index_prefetch(&hs->channels, t.chan.hash);
    presence__index_prefetch_item(&t.cs->clients, t.client_hash);
    rc = presence__channel_lookup_join(reg, &t.chan);
    struct presence__client *client =
        rc == PRESENCE_OK ? presence__client_find(t.cs, client_id,
                                                  t.client_len, t.client_hash)
                          : NULL;
    if (client != NULL && t.chan.ch != NULL) {
        presence__memberset_prefetch(&t.chan.ch->members, client->user_key);
    }
    if (client != NULL &&
        (presence__client_node(client) != node ||
         !presence__client_same(client, a.user_id, a.user_len, conn_info,
                                conn_info_len))) {
        /* An existing client must come back as the same connection, and
         * through the same node. */
        rc = PRESENCE_ERR_CONFLICT;
    }
    if (rc == PRESENCE_OK) {
        rc = join_locked(reg, &t, client, &a, NULL);
    }
    presence__mutex_unlock(reg, &hs->lock);
    presence__mutex_unlock(reg, &t.cs->lock);
    if (node != NULL) {
        presence__node_unref(reg, node);
    }
    presence__events_dispatch(reg);
    return rc;
}

PRESENCE__FLATTEN
int presence_join(presence_registry *reg, const char *channel,
                  const char *client_id, const char *user_id,
                  const void *conn_info, size_t conn_info_len,
                  const void *chan_info, size_t chan_info_len)
{
    return join_common(reg, channel, client_id, user_id, conn_info,
                       conn_info_len, chan_info, chan_info_len, NULL);
}

/* ---- leave, update, touch ------------------------------------------------- */

/* Find a membership: the channel's shard is held on success. The
 * client's shard is held for the search (a member set is searched by the
 * client's user key), and its index read with the channel's, both chains
 * of misses at once. */
static int lock_membership(presence_registry *reg, const char *channel,
                           const char *client_id, struct presence__target *t,
                           struct presence__membership **m)
{
    int rc = target_check(reg, channel, client_id, t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__mutex_lock(reg, &t->cs->lock);
    presence__mutex_lock(reg, &t->chan.shard->lock);
    presence__index_prefetch(&t->cs->clients, t->client_hash);
    rc = presence__channel_lookup(reg, &t->chan);
    struct presence__client *client =
        rc == PRESENCE_OK && t->chan.ch != NULL
            ? presence__client_find(t->cs, client_id, t->client_len,
                                    t->client_hash)
            : NULL;
    *m = client != NULL ? find_from_client(reg, client, &t->chan) : NULL;
    presence__mutex_unlock(reg, &t->cs->lock);
    if (rc == PRESENCE_OK && *m == NULL) {
        rc = PRESENCE_ERR_NOT_FOUND;
    }
    if (rc == PRESENCE_OK &&
        presence__client_node((*m)->client) != NULL) {
        rc = PRESENCE_ERR_CONFLICT; /* another node's client */
    }
    if (rc != PRESENCE_OK) {
        presence__mutex_unlock(reg, &t->chan.shard->lock);
    }
    return rc;
}

/* presence_leave() and presence_remote_leave(): node is NULL for a client
 * of this registry. */
static int leave_common(presence_registry *reg,
                        const struct presence__node *node,
                        const char *channel, const char *client_id,
                        presence_leave_reason reason)
{
    struct presence__target t;
    int rc = target_check(reg, channel, client_id, &t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__mutex_lock(reg, &t.cs->lock);
    presence__mutex_lock(reg, &t.chan.shard->lock);
    rc = presence__channel_lookup(reg, &t.chan);
    struct presence__client *client =
        rc == PRESENCE_OK && t.chan.ch != NULL
            ? presence__client_find(t.cs, client_id, t.client_len,
                                    t.client_hash)
            : NULL;
    if (client != NULL) {
        /* The removal reads the set's slots: they load meanwhile. */
        presence__memberset_prefetch(&t.chan.ch->members, client->user_key);
    }
    struct presence__membership *m =
        client != NULL ? find_from_client(reg, client, &t.chan) : NULL;
    if (rc == PRESENCE_OK && m == NULL) {
        rc = PRESENCE_ERR_NOT_FOUND;
    }
    if (rc == PRESENCE_OK && presence__client_node(m->client) != node) {
        rc = PRESENCE_ERR_CONFLICT;
    }
    if (rc == PRESENCE_OK && !presence__membership_in_grace(m) &&
        presence__grace_applies(t.chan.ch, m->client, reason)) {
        rc = presence__grace_prepare(reg, t.chan.shard, m);
        if (rc == PRESENCE_OK) {
            presence__grace_drop(reg, t.chan.shard, t.chan.ch, m, reason);
        }
    } else if (rc == PRESENCE_OK) {
        size_t reserved = 0;
        rc = presence__events_reserve(
            reg, 2 + presence__user_event_room(reg), &reserved);
        if (rc == PRESENCE_OK) {
            presence__membership_remove(reg, m, reason, &reserved);
            presence__events_release(reg, &reserved);
        }
    }
    presence__mutex_unlock(reg, &t.chan.shard->lock);
    presence__mutex_unlock(reg, &t.cs->lock);
    presence__events_dispatch(reg);
    return rc;
}

PRESENCE__FLATTEN
int presence_leave(presence_registry *reg, const char *channel,
                   const char *client_id)
{
    return leave_common(reg, NULL, channel, client_id,
                        PRESENCE_LEAVE_EXPLICIT);
}

int presence_update(presence_registry *reg, const char *channel,
                    const char *client_id, const void *chan_info,
                    size_t chan_info_len)
{
    if (reg == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    int rc = presence__check_info(chan_info, chan_info_len, reg->limits.chan_info_max);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__target t;
    struct presence__membership *m;
    rc = lock_membership(reg, channel, client_id, &t, &m);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    bool changed;
    rc = presence__replace_chan_info(reg, m, chan_info, chan_info_len,
                                     &changed);
    presence__mutex_unlock(reg, &t.chan.shard->lock);
    presence__events_dispatch(reg);
    return rc;
}

PRESENCE__FLATTEN
int presence_touch(presence_registry *reg, const char *channel,
                   const char *client_id)
{
    struct presence__target t;
    struct presence__membership *m;
    int rc = lock_membership(reg, channel, client_id, &t, &m);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__touch_renew(reg, t.chan.shard, t.chan.ch, m);
    presence__mutex_unlock(reg, &t.chan.shard->lock);
    return PRESENCE_OK;
}

/* ---- a client's every channel --------------------------------------------- */

/* Find a client: its shard is held on success. */
static int lock_client(presence_registry *reg, const char *client_id,
                       struct presence__target *t, struct presence__client **out)
{
    if (reg == NULL || client_id == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    int rc = check_client(reg, client_id, t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__mutex_lock(reg, &t->cs->lock);
    *out = presence__client_find(t->cs, client_id, t->client_len,
                                 t->client_hash);
    rc = *out == NULL             ? PRESENCE_ERR_NOT_FOUND
         : presence__client_node(*out) != NULL
             ? PRESENCE_ERR_CONFLICT /* another node's */
                                : PRESENCE_OK;
    if (rc != PRESENCE_OK) {
        presence__mutex_unlock(reg, &t->cs->lock);
    }
    return rc;
}

int presence_touch_client(presence_registry *reg, const char *client_id)
{
    struct presence__target t;
    struct presence__client *client;
    int rc = lock_client(reg, client_id, &t, &client);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__client_touch_all(reg, client);
    presence__mutex_unlock(reg, &t.cs->lock);
    return PRESENCE_OK;
}

void presence__client_touch_all(presence_registry *reg,
                                struct presence__client *client)
{
    for (uint32_t ref = client->memberships; ref != PRESENCE__SLAB_NONE;) {
        struct presence__membership *m = presence__mref_get(reg, ref);
        struct presence__shard *hs = presence__membership_shard(reg, m);
        presence__mutex_lock(reg, &hs->lock);
        presence__touch_renew(reg, hs, presence__shard_channel(hs, m), m);
        presence__mutex_unlock(reg, &hs->lock);
        ref = m->cnext;
    }
}

/* Make room for the links of every membership of a client that would go
 * into grace (its shard held): after this the leaving cannot fail. */
static int grace_prepare_all(presence_registry *reg,
                             struct presence__client *client,
                             presence_leave_reason reason)
{
    int rc = PRESENCE_OK;
    for (uint32_t ref = client->memberships;
         ref != PRESENCE__SLAB_NONE && rc == PRESENCE_OK;) {
        struct presence__membership *m = presence__mref_get(reg, ref);
        struct presence__shard *hs = presence__membership_shard(reg, m);
        presence__mutex_lock(reg, &hs->lock);
        if (!presence__membership_in_grace(m) &&
            presence__grace_applies(presence__shard_channel(hs, m), client,
                                    reason)) {
            rc = presence__grace_prepare(reg, hs, m);
        }
        presence__mutex_unlock(reg, &hs->lock);
        ref = m->cnext;
    }
    return rc;
}

/* Whether a client's memberships may go into grace rather than leave: read
 * once per leaving, so that with no namespace keeping a grace no
 * membership is looked at for one (grace turned on meanwhile finds it
 * gone). */
static bool may_grace(presence_registry *reg,
                      const struct presence__client *client)
{
    return atomic_load_explicit(&reg->grace_namespaces,
                                memory_order_relaxed) > 0 &&
           presence__client_node(client) == NULL;
}

int presence__client_leave_prepare(presence_registry *reg,
                                   struct presence__client *client,
                                   presence_leave_reason reason,
                                   size_t *reserved)
{
    int rc = may_grace(reg, client) ? grace_prepare_all(reg, client, reason)
                                    : PRESENCE_OK;
    size_t more = 0;
    if (rc == PRESENCE_OK) {
        rc = presence__events_reserve(
            reg,
            presence__add_size(presence__mul_size(client->channel_count, 2),
                               presence__user_event_room(reg)),
            &more);
    }
    *reserved += more;
    return rc;
}

/*
 * Start loading what removing a client's first memberships reads, so that
 * the misses of all of them overlap instead of coming one removal after
 * another: at step 1 its memberships and its user, at step 2 their
 * channels, at step 3 the channels' member set and user count slots.
 * Each step reads what the one before loaded; a single leaving takes
 * steps 2 and 3 at once, a batch takes each a client apart
 * (presence_client_close_many). The client's shard is held; a channel's
 * table and sets are read under its shard's lock (no lock in a
 * single-threaded registry).
 */

/* Step 2: one walk of the client's list, each membership's channel
 * found (under its shard's lock: the table may be being replaced) and
 * its two lines loading (the version a leave changes, and the sets). */
static void prefetch_channels(presence_registry *reg,
                              const struct presence__client *client,
                              struct presence__leave_plan *plan)
{
    struct presence__membership *ms[PRESENCE__LEAVE_AHEAD];
    size_t n = 0;
    for (uint32_t ref = client->memberships;
         ref != PRESENCE__SLAB_NONE && n < PRESENCE__LEAVE_AHEAD;
         ref = ms[n - 1]->cnext) {
        ms[n++] = presence__mref_get(reg, ref);
    }
    for (size_t i = 0; i < n; i++) {
        struct presence__shard *hs = presence__membership_shard(reg, ms[i]);
        presence__mutex_lock(reg, &hs->lock);
        struct presence__channel *ch = presence__shard_channel(hs, ms[i]);
        PRESENCE__PREFETCH(&ch->seq);
        PRESENCE__PREFETCH(&ch->members);
        presence__mutex_unlock(reg, &hs->lock);
        plan->m[i] = ms[i];
        plan->hs[i] = hs;
        plan->ch[i] = ch;
    }
    plan->n = n;
}

/* Step 3: the slots the client's removal from each set will read (the
 * tables change under their shard's lock). */
static void prefetch_sets(presence_registry *reg,
                          const struct presence__client *client,
                          const struct presence__leave_plan *plan)
{
    for (size_t i = 0; i < plan->n; i++) {
        struct presence__shard *hs = plan->hs[i];
        struct presence__channel *ch = plan->ch[i];
        presence__mutex_lock(reg, &hs->lock);
        presence__memberset_prefetch(&ch->members, client->user_key);
        presence__mutex_unlock(reg, &hs->lock);
    }
}

void presence__client_leave_prefetch(presence_registry *reg,
                                     const struct presence__client *client,
                                     unsigned step,
                                     struct presence__leave_plan *plan)
{
    if (step == 1) {
        if (client->memberships != PRESENCE__SLAB_NONE) {
            PRESENCE__PREFETCH(presence__mref_get(reg, client->memberships));
        }
        PRESENCE__PREFETCH(client->user);
    } else if (step == 2) {
        prefetch_channels(reg, client, plan);
    } else {
        prefetch_sets(reg, client, plan);
    }
}

size_t presence__client_leave_prepared(presence_registry *reg,
                                       struct presence__client *client,
                                       presence_leave_reason reason,
                                       const struct presence__leave_plan *plan,
                                       size_t *reserved)
{
    bool graced = may_grace(reg, client);
    size_t planned = plan != NULL ? plan->n : 0;
    /* The last removal may free the client: nothing of it is read after
     * (a membership in grace keeps it, and the list ends with the last). */
    size_t changed = 0;
    size_t i = 0;
    for (uint32_t ref = client->memberships; ref != PRESENCE__SLAB_NONE; i++) {
        struct presence__membership *m;
        struct presence__shard *hs;
        struct presence__channel *ch;
        if (i < planned) { /* the list's order: the plan's, loaded */
            m = plan->m[i];
            hs = plan->hs[i];
            presence__mutex_lock(reg, &hs->lock);
            ch = plan->ch[i];
            ref = m->cnext;
        } else {
            m = presence__mref_get(reg, ref);
            ref = m->cnext;
            if (ref != PRESENCE__SLAB_NONE) {
                /* The next one loads while this one is removed. */
                PRESENCE__PREFETCH(presence__mref_get(reg, ref));
            }
            /* Its shard's channel table is not read before the lock:
             * another thread may be replacing it. */
            hs = presence__membership_shard(reg, m);
            presence__mutex_lock(reg, &hs->lock);
            ch = presence__shard_channel(hs, m);
        }
        if (presence__membership_in_grace(m)) {
            /* Dropped already: it keeps its time and reason. */
        } else if (graced && presence__grace_applies(ch, client, reason) &&
                   /* made above, unless grace was turned on since */
                   presence__grace_prepare(reg, hs, m) == PRESENCE_OK) {
            presence__grace_drop(reg, hs, ch, m, reason);
            changed++;
        } else {
            membership_remove_in(reg, hs, ch, m, reason, PRESENCE__EVENT_NOW,
                                 reserved, true);
            changed++;
        }
        presence__mutex_unlock(reg, &hs->lock);
    }
    return changed;
}

int presence__client_leave_all(presence_registry *reg,
                               struct presence__client *client,
                               presence_leave_reason reason, size_t *left)
{
    size_t reserved = 0;
    int rc = presence__client_leave_prepare(reg, client, reason, &reserved);
    if (rc != PRESENCE_OK) {
        presence__events_release(reg, &reserved);
        return rc;
    }
    struct presence__leave_plan plan; /* steps 2 and 3 at once */
    bool planned = client->channel_count > 1; /* one: nothing to overlap */
    if (planned) {
        prefetch_channels(reg, client, &plan);
        prefetch_sets(reg, client, &plan);
    }
    /* The client retires after its last membership (a disconnect inside
     * the last removal, a handle's close just after), and its user may
     * leave the user index with it: that slot loads while the memberships
     * go. */
    presence__user_index_prefetch(reg, client->user);
    *left = presence__client_leave_prepared(reg, client, reason,
                                            planned ? &plan : NULL, &reserved);
    presence__events_release(reg, &reserved);
    return PRESENCE_OK;
}

PRESENCE__FLATTEN
int presence_disconnect(presence_registry *reg, const char *client_id,
                        size_t *left)
{
    struct presence__target t;
    struct presence__client *client;
    int rc = lock_client(reg, client_id, &t, &client);
    if (rc == PRESENCE_ERR_NOT_FOUND) {
        if (left != NULL) {
            *left = 0;
        }
        return PRESENCE_OK; /* in no channel: nothing to leave */
    }
    if (rc != PRESENCE_OK) {
        return rc;
    }
    size_t n = 0;
    rc = presence__client_leave_all(reg, client, PRESENCE_LEAVE_DISCONNECT, &n);
    if (rc == PRESENCE_OK && left != NULL) {
        *left = n;
    }
    presence__mutex_unlock(reg, &t.cs->lock);
    presence__events_dispatch(reg);
    return rc;
}

/* ---- close and expire: batched ------------------------------------------ */

int presence_channel_close(presence_registry *reg, const char *channel,
                           size_t *removed)
{
    if (reg == NULL || channel == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    int rc = presence__channel_check(reg, channel, &ref);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct sweep sw = {reg, ref.shard, 0, 0, 0};
    presence__mutex_lock(reg, &sw.hs->lock);
    rc = presence__channel_lookup(reg, &ref);
    /* Members leave in hash order, from a cursor: whoever was there when
     * the close began leaves, and a join that lands between batches
     * leaves too if the cursor has not passed its place yet. */
    if (rc == PRESENCE_OK && ref.ch != NULL) {
        rc = drain(&sw, &ref, PRESENCE_LEAVE_CLOSED);
    }
    presence__mutex_unlock(reg, &sw.hs->lock);
    presence__events_dispatch(reg);
    if (removed != NULL) {
        *removed = sw.done;
    }
    return rc;
}

/* The namespace's least recently touched membership in the shard, if it
 * expires by now_ms. */
static struct presence__membership *
due(presence_registry *reg, const struct presence__namespace *ns,
    size_t shard, int64_t now_ms)
{
    struct presence__membership *m =
        presence__touch_head(&reg->shards[shard], &ns->touch[shard]);
    return m != NULL && presence__deadline(ns, m) <= now_ms ? m : NULL;
}

struct expire_ctx {
    const struct presence__namespace *ns;
    size_t shard;
    int64_t now_ms;
};

static bool expire_still(const struct sweep *sw,
                         const struct presence__membership *m, const void *ctx)
{
    const struct expire_ctx *e = ctx;
    return due(sw->reg, e->ns, e->shard, e->now_ms) == m;
}

static bool grace_still(const struct sweep *sw,
                        const struct presence__membership *m, const void *ctx)
{
    const struct expire_ctx *e = ctx;
    presence_leave_reason why;
    return presence__grace_due(sw->reg, e->ns, e->shard, e->now_ms, &why) == m;
}

int presence_expire(presence_registry *reg, int64_t now_ms, size_t *expired,
                    int64_t *next_deadline_ms)
{
    if (reg == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    int64_t next = PRESENCE_NO_DEADLINE;
    /* At most as many as there were when the call began (each may drop
     * into grace and end it in the same call): a callback that rejoins
     * expired clients cannot keep it running. */
    size_t budget =
        presence__mul_size(presence__count_memberships(reg), 2);
    size_t done = 0, dropped = 0;
    int rc = PRESENCE_OK;
    for (size_t s = 0; s < PRESENCE__SHARDS && rc == PRESENCE_OK; s++) {
        struct sweep sw = {reg, &reg->shards[s], 0, 0, 0};
        presence__mutex_lock(reg, &sw.hs->lock);
        rc = sweep_begin(&sw);
        size_t in_batch = 0;
        for (const struct presence__namespace *ns = reg->namespaces;
             ns != NULL && rc == PRESENCE_OK; ns = ns->hh.next) {
            struct expire_ctx e = {ns, s, now_ms};
            struct presence__membership *m;
            while (rc == PRESENCE_OK && done + dropped + sw.done + sw.dropped < budget &&
                   (m = due(reg, ns, s, now_ms)) != NULL) {
                enum sweep_action action =
                    presence__grace_applies(presence__shard_channel(sw.hs, m),
                                            m->client, PRESENCE_LEAVE_EXPIRED)
                        ? SWEEP_DROP
                        : SWEEP_LEAVE;
                if (sweep_apply(&sw, m, action, PRESENCE_LEAVE_EXPIRED,
                                expire_still, &e) &&
                    action == SWEEP_LEAVE && ++in_batch == BATCH) {
                    in_batch = 0;
                    rc = sweep_next_batch(&sw);
                }
            }
            presence_leave_reason why;
            while (rc == PRESENCE_OK && done + dropped + sw.done + sw.dropped < budget &&
                   (m = presence__grace_due(reg, ns, s, now_ms, &why)) !=
                       NULL) {
                if (sweep_apply(&sw, m, SWEEP_END_GRACE, why, grace_still,
                                &e) &&
                    ++in_batch == BATCH) {
                    in_batch = 0;
                    rc = sweep_next_batch(&sw);
                }
            }
        }
        presence__events_release(reg, &sw.reserved);
        if (next_deadline_ms != NULL) {
            int64_t d = presence__shard_next_deadline(reg, s);
            next = d < next ? d : next;
        }
        presence__mutex_unlock(reg, &sw.hs->lock);
        presence__events_dispatch(reg);
        done += sw.done;
        dropped += sw.dropped;
    }
    if (expired != NULL) {
        *expired = done;
    }
    if (next_deadline_ms != NULL) {
        /* Shards the loop did not reach (it stopped on an error). */
        *next_deadline_ms = rc == PRESENCE_OK ? next
                                               : presence_next_deadline_ms(reg);
    }
    return rc;
}

/* ---- other nodes' clients ------------------------------------------------ */

static bool leave_reason_ok(presence_leave_reason reason)
{
    int r = (int)reason;
    return r >= PRESENCE_LEAVE_EXPLICIT && r <= PRESENCE_LEAVE_RESYNC;
}

int presence_remote_join(presence_registry *reg, const char *node_id,
                         const char *channel, const char *client_id,
                         const char *user_id, const void *conn_info,
                         size_t conn_info_len, const void *chan_info,
                         size_t chan_info_len)
{
    if (reg == NULL || node_id == NULL || channel == NULL ||
        client_id == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__nodename name;
    int rc = presence__node_check(reg, node_id, &name);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    return join_common(reg, channel, client_id, user_id, conn_info,
                       conn_info_len, chan_info, chan_info_len, &name);
}

/* What a remote call names when its node has no client here: no client
 * record points to it, so every client found conflicts. */
static const struct presence__node unknown_node;

int presence_remote_leave(presence_registry *reg, const char *node_id,
                          const char *channel, const char *client_id,
                          presence_leave_reason reason)
{
    if (reg == NULL || node_id == NULL || channel == NULL ||
        client_id == NULL || !leave_reason_ok(reason)) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__nodename name;
    int rc = presence__node_check(reg, node_id, &name);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__node *node = presence__node_find(reg, &name);
    rc = leave_common(reg, node != NULL ? node : &unknown_node, channel,
                      client_id, reason);
    if (node != NULL) {
        presence__node_unref(reg, node);
    }
    return rc;
}

/*
 * The node's clients in one client shard leave. They are collected first
 * (a removal may shrink the shard's index under a walk), each with a
 * reference; then each leaves completely, as presence_disconnect() would,
 * with deliveries between batches. A collected client that left meanwhile
 * has no channel left and is skipped: a retired record never comes back.
 */
static int node_down_shard(presence_registry *reg, struct presence__cshard *cs,
                           const struct presence__node *node,
                           presence_leave_reason reason, size_t *done)
{
    presence__mutex_lock(reg, &cs->lock);
    struct presence__index *idx = &cs->clients;
    size_t k = 0;
    for (size_t i = 0; i < presence__index_slots(idx); i++) {
        struct presence__client *c = presence__index_at(idx, i);
        if (c != NULL && presence__client_node(c) == node) {
            k++;
        }
    }
    if (k == 0) {
        presence__mutex_unlock(reg, &cs->lock);
        return PRESENCE_OK;
    }
    size_t bytes = presence__mul_size(k, sizeof(struct presence__client *));
    struct presence__client **list = presence__malloc(&reg->alloc, bytes);
    if (list == NULL) {
        presence__mutex_unlock(reg, &cs->lock);
        return PRESENCE_ERR_NOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < presence__index_slots(idx); i++) {
        struct presence__client *c = presence__index_at(idx, i);
        if (c != NULL && presence__client_node(c) == node) {
            presence__client_ref(reg, c);
            list[n++] = c;
        }
    }
    int rc = PRESENCE_OK;
    size_t in_batch = 0;
    for (size_t j = 0; j < n && rc == PRESENCE_OK; j++) {
        size_t left = 0;
        if (list[j]->channel_count > 0) {
            rc = presence__client_leave_all(reg, list[j], reason, &left);
        }
        *done += left;
        in_batch += left;
        if (in_batch >= BATCH && j + 1 < n) {
            in_batch = 0;
            presence__mutex_unlock(reg, &cs->lock);
            presence__events_dispatch(reg);
            presence__mutex_lock(reg, &cs->lock);
        }
    }
    presence__mutex_unlock(reg, &cs->lock);
    for (size_t j = 0; j < n; j++) {
        presence__client_unref(reg, list[j]);
    }
    presence__free(&reg->alloc, list, bytes);
    presence__events_dispatch(reg);
    return rc;
}

int presence_node_down(presence_registry *reg, const char *node_id,
                       presence_leave_reason reason, size_t *left)
{
    if (reg == NULL || node_id == NULL || !leave_reason_ok(reason)) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__nodename name;
    int rc = presence__node_check(reg, node_id, &name);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    size_t done = 0;
    /* The reference keeps the entry, so the node's clients are known by a
     * pointer compare; none of them is in the registry without it. */
    struct presence__node *node = presence__node_find(reg, &name);
    if (node != NULL) {
        for (size_t s = 0; s < PRESENCE__SHARDS && rc == PRESENCE_OK; s++) {
            rc = node_down_shard(reg, &reg->cshards[s], node, reason, &done);
        }
        presence__node_unref(reg, node);
    }
    if (left != NULL) {
        *left = done;
    }
    return rc;
}
