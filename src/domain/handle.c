/*
 * Client handles: a client opened once with its identity and an
 * application pointer, then changed by handle. A handle is the client
 * record itself, kept in its shard's index while open (the `open` flag
 * stops the last leave from retiring it), so a call by handle skips the
 * client id's check, hash and lookup.
 *
 * presence_client_join_many() holds the client's shard and every channel
 * shard its items fall in (in index order, which is the order namespace
 * changes use) and does each item at once, but with no event; if an item
 * fails, the ones done are undone in reverse, and since every shard they
 * touched stayed held nobody saw them. Only when all are done are their
 * events queued.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"

static struct presence__client *record_of(presence_client *client)
{
    return (struct presence__client *)(void *)client;
}

void presence_client_options_init_sized(presence_client_options *options,
                                        size_t struct_size)
{
    if (options == NULL) {
        return;
    }
    memset(options, 0, struct_size);
    options->struct_size = struct_size;
}

const char *presence_client_id(const presence_client *client)
{
    return client != NULL
               ? ((const struct presence__client *)(const void *)client)->id
               : NULL;
}

void *presence_client_app(const presence_client *client)
{
    return client != NULL
               ? presence__client_app(
                     (const struct presence__client *)(const void *)client)
               : NULL;
}

int presence_client_open(presence_registry *reg,
                         const presence_client_options *o,
                         presence_client **out)
{
    if (reg == NULL || o == NULL || out == NULL ||
        o->struct_size < offsetof(presence_client_options, app) +
                             sizeof o->app ||
        o->client_id == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    const char *user_id = o->user_id != NULL ? o->user_id : "";
    size_t id_len, user_len;
    uint64_t hash;
    int rc = presence__check_hash_name(reg, o->client_id,
                                       reg->limits.client_id_max, false,
                                       &id_len, &hash);
    if (rc == PRESENCE_OK) {
        rc = presence__check_name(user_id, reg->limits.user_id_max, true,
                                  &user_len);
    }
    if (rc == PRESENCE_OK) {
        rc = presence__check_info(o->conn_info, o->conn_info_len,
                                  reg->limits.conn_info_max);
    }
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__cshard *cs = presence__cshard_of(reg, hash);
    struct presence__handle_args handle = {o->app};
    struct presence__client *client = NULL;
    size_t reserved = 0; /* its user's online event */
    rc = presence__events_reserve(reg, presence__user_event_room(reg),
                                  &reserved);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__mutex_lock(reg, &cs->lock);
    /* A client whose connection dropped into leave grace is taken over:
     * the new handle inherits its memberships, still in grace, and joins
     * resume them. */
    struct presence__client *dropped =
        presence__client_find(cs, o->client_id, id_len, hash);
    if (dropped != NULL &&
        !presence__grace_claimable(reg, dropped, user_id, user_len)) {
        rc = PRESENCE_ERR_CONFLICT;
    }
    if (rc == PRESENCE_OK) {
        rc = presence__client_prepare(reg, cs);
    }
    if (rc == PRESENCE_OK) {
        rc = presence__client_create(reg, cs, o->client_id, id_len, hash,
                                     user_id, user_len, o->conn_info,
                                     o->conn_info_len, NULL, &handle,
                                     &reserved, &client);
    }
    if (rc == PRESENCE_OK && dropped != NULL) {
        presence__grace_adopt(reg, dropped, client);
        presence__client_retire(reg, dropped, &reserved); /* in no channel */
    }
    presence__mutex_unlock(reg, &cs->lock);
    presence__events_release(reg, &reserved);
    presence__events_dispatch(reg);
    if (rc == PRESENCE_OK) {
        *out = (presence_client *)(void *)client;
    }
    return rc;
}

PRESENCE__FLATTEN
int presence_client_close(presence_registry *reg, presence_client *handle,
                          size_t *left)
{
    if (reg == NULL || handle == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__client *client = record_of(handle);
    struct presence__cshard *cs = presence__cshard_of(reg, client->hash);
    size_t n = 0;
    size_t reserved = 0; /* its user's offline event */
    int rc = presence__events_reserve(reg, presence__user_event_room(reg),
                                      &reserved);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__mutex_lock(reg, &cs->lock);
    /* Its index slot, which it leaves at the end, loads meanwhile: no
     * lookup by name brought it in. */
    presence__index_prefetch(&cs->clients, client->hash);
    rc = presence__client_leave_all(reg, client, PRESENCE_LEAVE_DISCONNECT,
                                    &n);
    if (rc == PRESENCE_OK) {
        presence__client_close_handle(client);
        /* With memberships in grace it stays known by its id, with no
         * application pointer, until they end or a new handle takes it. */
        if (client->channel_count == 0) {
            presence__client_retire(reg, client, &reserved);
        }
    }
    presence__mutex_unlock(reg, &cs->lock);
    presence__events_release(reg, &reserved);
    presence__events_dispatch(reg);
    if (rc == PRESENCE_OK && left != NULL) {
        *left = n;
    }
    return rc;
}

/* Whether a handle is named twice among at most PRESENCE_CLOSE_MANY_MAX:
 * an open-addressing set of pointers on the stack, twice as many slots. */
static bool handles_repeat(presence_client *const *clients, size_t count)
{
    enum { BITS = 7, SLOTS = 1u << BITS };
    _Static_assert(SLOTS >= 2 * PRESENCE_CLOSE_MANY_MAX, "set too small");
    const void *seen[SLOTS] = {NULL};
    for (size_t i = 0; i < count; i++) {
        uint64_t h = (uint64_t)(uintptr_t)clients[i] * 0x9E3779B97F4A7C15u;
        size_t at = (size_t)(h >> (64 - BITS));
        while (seen[at] != NULL) {
            if (seen[at] == clients[i]) {
                return true;
            }
            at = (at + 1) & (SLOTS - 1);
        }
        seen[at] = clients[i];
    }
    return false;
}

/* What presence_client_close_many() loads ahead of the client leaving: a
 * client's step s of CLOSE_STEPS (presence__client_leave_prefetch, step 0
 * its record) is taken (CLOSE_STEPS - s) * CLOSE_GAP clients before it
 * leaves, so that each step's loads have CLOSE_GAP removals' time to
 * arrive. */
#define CLOSE_STEPS 4u
#define CLOSE_GAP 2u /* 3 and 4 measured the same (1.3x) */
#define CLOSE_DEPTH (CLOSE_STEPS * CLOSE_GAP)

/* Clients between their step 2 and their leave, which reads the plan
 * too, have a plan (see presence__leave_plan): at most
 * CLOSE_DEPTH - 2 * CLOSE_GAP + 1 at a time. */
#define CLOSE_PLANS 8u
_Static_assert(CLOSE_PLANS > CLOSE_DEPTH - 2 * CLOSE_GAP,
               "a plan is reused before its client leaves");

/* Step `step` of what closing `client` will read (see above); its shard
 * is held. */
static void close_prefetch(presence_registry *reg,
                           struct presence__client *client, unsigned step,
                           struct presence__leave_plan *plan)
{
    if (step == 0) {
        PRESENCE__PREFETCH(client);
        return;
    }
    presence__client_leave_prefetch(reg, client, step, plan);
    if (step == 1) {
        /* Its slot in the client index, which it leaves at the end. */
        presence__index_prefetch(
            &presence__cshard_of(reg, client->hash)->clients, client->hash);
    } else if (step == 2) {
        /* Its user's slot in the user index, which the user leaves with
         * its last client (the user was loaded at step 1). */
        presence__user_index_prefetch(reg, client->user);
    }
}

/* Every client's grace links and events made ready, their shards held:
 * after this no close can fail. On an error only spare room was made,
 * and *reserved is given back. */
static int close_prepare(presence_registry *reg,
                         presence_client *const *clients, size_t count,
                         size_t *reserved)
{
    int rc = PRESENCE_OK;
    for (size_t i = 0; i < count && rc == PRESENCE_OK; i++) {
        rc = presence__client_leave_prepare(reg, record_of(clients[i]),
                                            PRESENCE_LEAVE_DISCONNECT,
                                            reserved);
        size_t offline = 0; /* its user's offline event, when it retires */
        if (rc == PRESENCE_OK) {
            rc = presence__events_reserve(reg, presence__user_event_room(reg),
                                          &offline);
            *reserved += offline;
        }
    }
    if (rc != PRESENCE_OK) {
        presence__events_release(reg, reserved);
    }
    return rc;
}

int presence_client_close_many(presence_registry *reg,
                               presence_client *const *clients, size_t count,
                               size_t *left)
{
    if (reg == NULL || (clients == NULL && count > 0) ||
        count > PRESENCE_CLOSE_MANY_MAX) {
        return PRESENCE_ERR_INVALID;
    }
    uint64_t shards = 0;
    for (size_t i = 0; i < count; i++) {
        if (clients[i] == NULL) {
            return PRESENCE_ERR_INVALID;
        }
        shards |= 1ULL << presence__shard_index(record_of(clients[i])->hash);
    }
    if (handles_repeat(clients, count)) {
        return PRESENCE_ERR_INVALID;
    }
    /* Their shards stay held from the preparing to the last close: no
     * join by name of one of them comes between and outgrows what was
     * reserved for its events. */
    presence__lock_client_shard_set(reg, shards);
    size_t reserved = 0;
    int rc = close_prepare(reg, clients, count, &reserved);
    if (rc != PRESENCE_OK) {
        presence__unlock_client_shard_set(reg, shards);
        return rc;
    }
    size_t n = 0;
    struct presence__leave_plan plans[CLOSE_PLANS];
    for (size_t i = 0; i < count + CLOSE_DEPTH; i++) {
        for (unsigned step = 0; step < CLOSE_STEPS; step++) {
            /* wraps past 0: too large, skipped */
            size_t ahead = i - step * CLOSE_GAP;
            if (ahead < count) {
                close_prefetch(reg, record_of(clients[ahead]), step,
                               &plans[ahead % CLOSE_PLANS]);
            }
        }
        if (i < CLOSE_DEPTH) {
            continue;
        }
        size_t at = i - CLOSE_DEPTH;
        struct presence__client *client = record_of(clients[at]);
        n += presence__client_leave_prepared(reg, client,
                                             PRESENCE_LEAVE_DISCONNECT,
                                             &plans[at % CLOSE_PLANS],
                                             &reserved);
        presence__client_close_handle(client);
        if (client->channel_count == 0) {
            presence__client_retire(reg, client, &reserved);
        }
    }
    presence__unlock_client_shard_set(reg, shards);
    presence__events_release(reg, &reserved);
    presence__events_dispatch(reg);
    if (left != NULL) {
        *left = n;
    }
    return PRESENCE_OK;
}

static struct presence__channel *channel_of(presence_channel *channel)
{
    return (struct presence__channel *)(void *)channel;
}

/* The client's side of a target: known from the handle. */
static void handle_client(presence_registry *reg, presence_client *handle,
                          struct presence__target *t)
{
    struct presence__client *client = record_of(handle);
    t->client_id = client->id;
    t->client_len = client->id_len;
    t->client_hash = client->hash;
    t->cs = presence__cshard_of(reg, client->hash);
}

/* The target of a call by handle: the channel checked, the client known. */
static int handle_target(presence_registry *reg, presence_client *handle,
                         const char *channel, struct presence__target *t)
{
    if (reg == NULL || handle == NULL || channel == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    handle_client(reg, handle, t);
    return presence__channel_check(reg, channel, &t->chan);
}

/* The target of a call by client and channel handle: nothing to check. */
static int pinned_target(presence_registry *reg, presence_client *handle,
                         struct presence__channel *rec,
                         struct presence__target *t)
{
    if (reg == NULL || handle == NULL || rec == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    handle_client(reg, handle, t);
    presence__chref_of(reg, rec, &t->chan);
    return PRESENCE_OK;
}

/* The target of a call that brings chan_info, the info checked too; by
 * channel handle when rec is not NULL, else by name. */
static int handle_target_info(presence_registry *reg, presence_client *handle,
                              const char *channel,
                              struct presence__channel *rec,
                              const void *chan_info, size_t chan_info_len,
                              struct presence__target *t)
{
    int rc = rec != NULL ? pinned_target(reg, handle, rec, t)
                         : handle_target(reg, handle, channel, t);
    return rc == PRESENCE_OK
               ? presence__check_info(chan_info, chan_info_len,
                                      reg->limits.chan_info_max)
               : rc;
}

/* Find the target's channel (its shard held): by name, or for a call by
 * channel handle (rec not NULL) its record, with no lookup. For a join,
 * NOT_AVAILABLE when its namespace keeps no presence. */
static int target_lookup(presence_registry *reg, struct presence__target *t,
                         struct presence__channel *rec, bool join)
{
    if (rec == NULL) {
        return join ? presence__channel_lookup_join(reg, &t->chan)
                    : presence__channel_lookup(reg, &t->chan);
    }
    presence__chref_resolve(rec, &t->chan);
    return join && !t->chan.ns->options.presence ? PRESENCE_ERR_NOT_AVAILABLE
                                                 : PRESENCE_OK;
}

/* presence_client_join() by name, or by channel handle when rec is not
 * NULL. */
static int client_join(presence_registry *reg, presence_client *handle,
                       const char *channel, struct presence__channel *rec,
                       const void *chan_info, size_t chan_info_len,
                       presence_change *result)
{
    struct presence__target t;
    int rc = handle_target_info(reg, handle, channel, rec, chan_info,
                                chan_info_len, &t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__client *client = record_of(handle);
    struct presence__join_args a = {.chan_info = chan_info,
                                    .chan_info_len = chan_info_len};
    presence__mutex_lock(reg, &t.cs->lock);
    presence__mutex_lock(reg, &t.chan.shard->lock);
    rc = target_lookup(reg, &t, rec, true);
    if (rc == PRESENCE_OK) {
        rc = presence__join_locked(reg, &t, client, &a, result);
    }
    presence__mutex_unlock(reg, &t.chan.shard->lock);
    presence__mutex_unlock(reg, &t.cs->lock);
    presence__events_dispatch(reg);
    return rc;
}

int presence_client_join(presence_registry *reg, presence_client *handle,
                         const char *channel, const void *chan_info,
                         size_t chan_info_len, presence_change *result)
{
    if (channel == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    return client_join(reg, handle, channel, NULL, chan_info, chan_info_len,
                       result);
}

PRESENCE__FLATTEN
int presence_client_join_channel(presence_registry *reg,
                                 presence_client *handle,
                                 presence_channel *channel,
                                 const void *chan_info, size_t chan_info_len,
                                 presence_change *result)
{
    if (channel == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    return client_join(reg, handle, NULL, channel_of(channel), chan_info,
                       chan_info_len, result);
}

/* The membership of the handle's client in the target's channel (by
 * name, or the record rec), its shard held on success. */
static int lock_handle_membership(presence_registry *reg,
                                  struct presence__target *t,
                                  struct presence__channel *rec,
                                  struct presence__client *client,
                                  struct presence__membership **m)
{
    presence__mutex_lock(reg, &t->chan.shard->lock);
    int rc = target_lookup(reg, t, rec, false);
    *m = rc == PRESENCE_OK && t->chan.ch != NULL
             ? presence__membership_find(t->chan.ch, client)
             : NULL;
    if (rc == PRESENCE_OK && *m == NULL) {
        rc = PRESENCE_ERR_NOT_FOUND;
    }
    if (rc != PRESENCE_OK) {
        presence__mutex_unlock(reg, &t->chan.shard->lock);
    }
    return rc;
}

/* presence_client_leave() for a checked target, by name or by channel
 * handle (rec not NULL). */
static int client_leave(presence_registry *reg, presence_client *handle,
                        struct presence__target *t,
                        struct presence__channel *rec,
                        presence_change *result)
{
    struct presence__client *client = record_of(handle);
    struct presence__membership *m;
    presence__mutex_lock(reg, &t->cs->lock);
    int rc = lock_handle_membership(reg, t, rec, client, &m);
    if (rc == PRESENCE_OK && !presence__membership_in_grace(m) &&
        presence__grace_applies(t->chan.ch, client, PRESENCE_LEAVE_EXPLICIT)) {
        /* It stays, in grace: the channel reads as before. */
        rc = presence__grace_prepare(reg, t->chan.shard, m);
        if (rc == PRESENCE_OK) {
            presence__grace_drop(reg, t->chan.shard, t->chan.ch, m,
                                 PRESENCE_LEAVE_EXPLICIT);
            if (result != NULL) {
                result->kind = PRESENCE_CHANGE_LEFT;
                result->stats = presence__channel_stats(t->chan.ch);
            }
        }
        presence__mutex_unlock(reg, &t->chan.shard->lock);
    } else if (rc == PRESENCE_OK) {
        size_t reserved;
        rc = presence__events_reserve(
            reg, 2 + presence__user_event_room(reg), &reserved);
        if (rc == PRESENCE_OK) {
            /* Read before: the last leave frees the channel. */
            struct presence__channel *ch = t->chan.ch;
            presence_change change = {PRESENCE_CHANGE_LEFT,
                                      presence__channel_stats(ch)};
            change.stats.num_clients--;
            if (presence__memberset_user_count(&ch->members, client->user,
                                               client->user_key) == 1) {
                change.stats.num_users--;
            }
            change.stats.seq++;
            presence__membership_remove(reg, m, PRESENCE_LEAVE_EXPLICIT,
                                        &reserved);
            presence__events_release(reg, &reserved);
            if (result != NULL) {
                *result = change;
            }
        }
        presence__mutex_unlock(reg, &t->chan.shard->lock);
    }
    presence__mutex_unlock(reg, &t->cs->lock);
    presence__events_dispatch(reg);
    return rc;
}

int presence_client_leave(presence_registry *reg, presence_client *handle,
                          const char *channel, presence_change *result)
{
    struct presence__target t;
    int rc = handle_target(reg, handle, channel, &t);
    return rc == PRESENCE_OK ? client_leave(reg, handle, &t, NULL, result)
                             : rc;
}

PRESENCE__FLATTEN
int presence_client_leave_channel(presence_registry *reg,
                                  presence_client *handle,
                                  presence_channel *channel,
                                  presence_change *result)
{
    struct presence__target t;
    int rc = pinned_target(reg, handle, channel_of(channel), &t);
    return rc == PRESENCE_OK
               ? client_leave(reg, handle, &t, channel_of(channel), result)
               : rc;
}

/* presence_client_update() by name, or by channel handle (rec not NULL). */
static int client_update(presence_registry *reg, presence_client *handle,
                         const char *channel, struct presence__channel *rec,
                         const void *chan_info, size_t chan_info_len,
                         presence_change *result)
{
    struct presence__target t;
    int rc = handle_target_info(reg, handle, channel, rec, chan_info,
                                chan_info_len, &t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__membership *m;
    rc = lock_handle_membership(reg, &t, rec, record_of(handle), &m);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    bool changed;
    rc = presence__replace_chan_info(reg, m, chan_info, chan_info_len,
                                     &changed);
    if (rc == PRESENCE_OK && result != NULL) {
        result->kind = changed ? PRESENCE_CHANGE_UPDATED : PRESENCE_CHANGE_NONE;
        result->stats = presence__channel_stats(t.chan.ch);
    }
    presence__mutex_unlock(reg, &t.chan.shard->lock);
    presence__events_dispatch(reg);
    return rc;
}

int presence_client_update(presence_registry *reg, presence_client *handle,
                           const char *channel, const void *chan_info,
                           size_t chan_info_len, presence_change *result)
{
    return client_update(reg, handle, channel, NULL, chan_info, chan_info_len,
                         result);
}

int presence_client_update_channel(presence_registry *reg,
                                   presence_client *handle,
                                   presence_channel *channel,
                                   const void *chan_info, size_t chan_info_len,
                                   presence_change *result)
{
    if (channel == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    return client_update(reg, handle, NULL, channel_of(channel), chan_info,
                         chan_info_len, result);
}

/* The TTL of one membership, by name or by channel handle (rec). */
static int client_touch_one(presence_registry *reg, presence_client *handle,
                            const char *channel, struct presence__channel *rec)
{
    struct presence__target t;
    int rc = rec != NULL ? pinned_target(reg, handle, rec, &t)
                         : handle_target(reg, handle, channel, &t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__membership *m;
    rc = lock_handle_membership(reg, &t, rec, record_of(handle), &m);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__touch_renew(reg, t.chan.shard, t.chan.ch, m);
    presence__mutex_unlock(reg, &t.chan.shard->lock);
    return PRESENCE_OK;
}

PRESENCE__FLATTEN
int presence_client_touch(presence_registry *reg, presence_client *handle,
                          const char *channel)
{
    if (reg == NULL || handle == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__client *client = record_of(handle);
    if (channel == NULL) {
        struct presence__cshard *cs = presence__cshard_of(reg, client->hash);
        presence__mutex_lock(reg, &cs->lock);
        presence__client_touch_all(reg, client);
        presence__mutex_unlock(reg, &cs->lock);
        return PRESENCE_OK;
    }
    return client_touch_one(reg, handle, channel, NULL);
}

int presence_client_touch_channel(presence_registry *reg,
                                  presence_client *handle,
                                  presence_channel *channel)
{
    if (channel == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    return client_touch_one(reg, handle, NULL, channel_of(channel));
}

/* ---- many channels at once ------------------------------------------------ */

/* Items whose bookkeeping lives on the stack. */
#define ITEMS_ON_STACK 8u

/* What one item did, to be announced or undone. A join is made at once
 * (silently); an update only gets its blob, and the map entry if the
 * membership had none (so that the room made for it is used at once),
 * the rest waiting for the commit, which cannot fail. */
struct item_done {
    struct presence__target t;
    /* The item as given: its channel handle's record (NULL: by name) and
     * its chan_info. */
    struct presence__channel *rec;
    const void *chan_info;
    size_t chan_info_len;
    struct presence__membership *m; /* NULL: nothing was changed */
    presence_change_kind kind;
    bool first_of_user;             /* JOINED: the user's first here */
    struct presence__blob *blob;    /* UPDATED: the new chan_info */
    bool put;                       /* UPDATED: blob is in the map already */
};

/* The items of a join_many: by name or by channel handle. */
struct items {
    const presence_join_item *names;
    const presence_channel_join_item *handles;
};

/* Check every item before any lock: names, infos, no channel twice;
 * *shards gets the set of their channel shards. */
static int items_check(presence_registry *reg, presence_client *handle,
                       struct items items, size_t count,
                       struct item_done *d, size_t *failed, uint64_t *shards)
{
    uint64_t set = 0;
    /* Channel handles name their records: start loading them all before
     * the first is read. */
    for (size_t i = 0; items.handles != NULL && i < count; i++) {
        PRESENCE__PREFETCH(channel_of(items.handles[i].channel));
    }
    for (size_t i = 0; i < count; i++) {
        d[i].m = NULL;
        d[i].kind = PRESENCE_CHANGE_NONE;
        d[i].first_of_user = false;
        d[i].blob = NULL;
        d[i].put = false;
        const char *name = NULL;
        if (items.handles != NULL) {
            d[i].rec = channel_of(items.handles[i].channel);
            d[i].chan_info = items.handles[i].chan_info;
            d[i].chan_info_len = items.handles[i].chan_info_len;
        } else {
            d[i].rec = NULL;
            name = items.names[i].channel;
            d[i].chan_info = items.names[i].chan_info;
            d[i].chan_info_len = items.names[i].chan_info_len;
        }
        /* A NULL handle goes by name with no name: INVALID. */
        int rc = handle_target_info(reg, handle, name, d[i].rec,
                                    d[i].chan_info, d[i].chan_info_len,
                                    &d[i].t);
        uint64_t bit = rc == PRESENCE_OK
                           ? 1ULL << (d[i].t.chan.shard - reg->shards)
                           : 0;
        /* Two items on one channel share its shard: only then compare. */
        for (size_t j = 0; rc == PRESENCE_OK && (set & bit) != 0 && j < i;
             j++) {
            if (d[i].rec != NULL) {
                /* A name has one record at most: handles on one channel
                 * share it. */
                rc = d[j].rec == d[i].rec ? PRESENCE_ERR_INVALID : rc;
            } else if (d[j].t.chan.hash == d[i].t.chan.hash &&
                d[j].t.chan.len == d[i].t.chan.len &&
                memcmp(d[j].t.chan.name, d[i].t.chan.name,
                       d[i].t.chan.len) == 0) {
                rc = PRESENCE_ERR_INVALID; /* a channel named twice */
            }
        }
        if (rc != PRESENCE_OK) {
            *failed = i;
            return rc;
        }
        set |= bit;
    }
    *shards = set;
    return PRESENCE_OK;
}

/* Do one item with every shard held, announcing nothing. */
/* made: the memberships this call has made so far; when they are all the
 * client has, it is in none of the other items' channels. */
static int item_apply(presence_registry *reg, struct presence__client *client,
                      struct item_done *d, int64_t now_ms, size_t made)
{
    struct presence__target *t = &d->t;
    int rc = target_lookup(reg, t, d->rec, true);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__membership *m =
        t->chan.ch != NULL && client->channel_count > made
            ? presence__membership_find(t->chan.ch, client)
            : NULL;
    if (m == NULL) {
        struct presence__join_args a = {.chan_info = d->chan_info,
                                        .chan_info_len = d->chan_info_len,
                                        .has_now = true,
                                        .now_ms = now_ms};
        rc = presence__join_silent(reg, t, client, &a, &d->m,
                                   &d->first_of_user);
        d->kind = PRESENCE_CHANGE_JOINED;
        return rc;
    }
    d->m = m;
    d->kind = PRESENCE_CHANGE_NONE;
    struct presence__shard *hs = t->chan.shard;
    struct presence__blob *old = presence__membership_chan_info(hs, m);
    if (presence__blob_equals(old, d->chan_info, d->chan_info_len)) {
        return PRESENCE_OK;
    }
    struct presence__blob *blob = NULL;
    rc = presence__history_room(reg, t->chan.ch, 1);
    if (rc == PRESENCE_OK) {
        rc = presence__blob_new(&reg->alloc, d->chan_info, d->chan_info_len,
                                &blob);
    }
    if (rc == PRESENCE_OK && old == NULL) { /* blob is not NULL: they differ */
        rc = presence__chaninfo_prepare(&reg->alloc, &hs->chan_infos);
        if (rc == PRESENCE_OK) {
            t->chan.ch->member_bytes -= presence__membership_bytes(hs, m);
            presence__chaninfo_put(&hs->chan_infos, m->slab.slab_index, blob);
            m->joined_hi |= PRESENCE__HAS_CHAN_INFO;
            t->chan.ch->member_bytes += presence__membership_bytes(hs, m);
            d->put = true;
        }
    }
    if (rc != PRESENCE_OK) {
        presence__chan_info_unref(reg, blob);
        return rc;
    }
    d->kind = PRESENCE_CHANGE_UPDATED;
    d->blob = blob;
    return PRESENCE_OK;
}

/* Take one item back (every shard still held): nobody saw it. */
static void item_undo(presence_registry *reg, struct item_done *d)
{
    if (d->kind == PRESENCE_CHANGE_JOINED && d->m != NULL) {
        presence__leave_silent(reg, d->m);
    } else if (d->kind == PRESENCE_CHANGE_UPDATED) {
        struct presence__shard *hs = d->t.chan.shard;
        if (d->put) {
            d->t.chan.ch->member_bytes -= presence__membership_bytes(hs, d->m);
            (void)presence__chaninfo_take(&reg->alloc, &hs->chan_infos,
                                          d->m->slab.slab_index);
            d->m->joined_hi &= (uint16_t)~PRESENCE__HAS_CHAN_INFO;
            d->t.chan.ch->member_bytes += presence__membership_bytes(hs, d->m);
        }
        presence__chan_info_unref(reg, d->blob);
    }
}

/* The deferred part of an update (every shard held): no allocation. */
static void update_finish(presence_registry *reg, struct item_done *d)
{
    struct presence__shard *hs = d->t.chan.shard;
    struct presence__channel *ch = d->t.chan.ch;
    struct presence__membership *m = d->m;
    if (!d->put) {
        uint32_t number = m->slab.slab_index;
        ch->member_bytes -= presence__membership_bytes(hs, m);
        struct presence__blob *old;
        if (d->blob == NULL) {
            old = presence__chaninfo_take(&reg->alloc, &hs->chan_infos,
                                          number);
            m->joined_hi &= (uint16_t)~PRESENCE__HAS_CHAN_INFO;
        } else {
            old = presence__chaninfo_replace(&hs->chan_infos, number,
                                             d->blob);
        }
        presence__chan_info_unref(reg, old);
        ch->member_bytes += presence__membership_bytes(hs, m);
    }
    ch->seq++;
}

/* Announce one item (every shard still held), and renew its TTL. */
static void item_commit(presence_registry *reg, struct item_done *d,
                        size_t *reserved, presence_change *result)
{
    struct presence__shard *hs = d->t.chan.shard;
    struct presence__channel *ch = d->t.chan.ch;
    bool resumed = false;
    if (d->kind == PRESENCE_CHANGE_JOINED) {
        presence__history_log(reg, hs, ch, d->m, PRESENCE_EVENT_JOIN,
                              PRESENCE_LEAVE_NONE);
        presence__events_push(reg, hs, ch, d->m, PRESENCE_EVENT_JOIN,
                              PRESENCE_LEAVE_NONE, d->first_of_user,
                              reserved);
    } else {
        if (d->kind == PRESENCE_CHANGE_UPDATED) {
            update_finish(reg, d);
            presence__history_log(reg, hs, ch, d->m, PRESENCE_EVENT_UPDATE,
                                  PRESENCE_LEAVE_NONE);
            presence__events_push(reg, hs, ch, d->m, PRESENCE_EVENT_UPDATE,
                                  PRESENCE_LEAVE_NONE, false, reserved);
        }
        if (presence__membership_in_grace(d->m)) {
            presence__grace_resume(reg, hs, ch, d->m);
            resumed = true;
        } else {
            presence__touch_renew(reg, hs, ch, d->m);
        }
    }
    if (result != NULL) {
        result->kind = resumed ? PRESENCE_CHANGE_RESUMED : d->kind;
        result->stats = presence__channel_stats(ch);
    }
}

/* presence_client_join_many() and its twin by channel handles; items
 * has one of its arrays, not NULL. */
static int join_many(presence_registry *reg, presence_client *handle,
                     struct items items, size_t count,
                     presence_change *results, size_t *failed)
{
    size_t failed_at = count;
    if (count == 0) {
        return PRESENCE_OK;
    }
    /* A few items (the common case) need no allocation. */
    struct item_done room[ITEMS_ON_STACK];
    size_t bytes = presence__mul_size(count, sizeof(struct item_done));
    struct item_done *d =
        count <= ITEMS_ON_STACK ? room : presence__malloc(&reg->alloc, bytes);
    if (d == NULL) {
        if (failed != NULL) {
            *failed = count;
        }
        return PRESENCE_ERR_NOMEM;
    }
    uint64_t shards = 0;
    int rc = items_check(reg, handle, items, count, d, &failed_at, &shards);
    if (rc == PRESENCE_OK) {
        struct presence__client *client = record_of(handle);
        struct presence__cshard *cs = d[0].t.cs;
        presence__mutex_lock(reg, &cs->lock);
        presence__lock_shard_set(reg, shards);
        size_t reserved = 0;
        rc = presence__events_reserve(reg, presence__mul_size(count, 2),
                                      &reserved);
        /* One instant for the whole call, read with its shards held, so
         * no later change of theirs gets an earlier time. */
        int64_t now_ms = presence__now(reg);
        /* Every item's first loads start at once: a channel handle's
         * member set. */
        for (size_t i = 0; i < count; i++) {
            const struct presence__channel *rec = d[i].rec;
            if (rec != NULL) {
                presence__memberset_prefetch(&rec->members, client->user_key);
            }
        }
        size_t done = 0, made = 0;
        for (; rc == PRESENCE_OK && done < count; done++) {
            rc = item_apply(reg, client, &d[done], now_ms, made);
            made += rc == PRESENCE_OK && d[done].kind == PRESENCE_CHANGE_JOINED;
            if (rc != PRESENCE_OK) {
                failed_at = done;
                item_undo(reg, &d[done]); /* a partial item undoes itself */
            }
        }
        if (rc != PRESENCE_OK) {
            for (size_t i = failed_at; i-- > 0;) {
                item_undo(reg, &d[i]);
            }
        } else {
            for (size_t i = 0; i < count; i++) {
                item_commit(reg, &d[i], &reserved,
                            results != NULL ? &results[i] : NULL);
            }
        }
        presence__events_release(reg, &reserved);
        presence__unlock_shard_set(reg, shards);
        presence__mutex_unlock(reg, &cs->lock);
    }
    if (d != room) {
        presence__free(&reg->alloc, d, bytes);
    }
    presence__events_dispatch(reg);
    if (rc != PRESENCE_OK && failed != NULL) {
        *failed = failed_at;
    }
    return rc;
}

int presence_client_join_many(presence_registry *reg,
                              presence_client *handle,
                              const presence_join_item *items, size_t count,
                              presence_change *results, size_t *failed)
{
    if (reg == NULL || handle == NULL || (items == NULL && count > 0)) {
        return PRESENCE_ERR_INVALID;
    }
    struct items all = {items, NULL};
    return join_many(reg, handle, all, count, results, failed);
}

PRESENCE__FLATTEN
int presence_client_join_channel_many(presence_registry *reg,
                                      presence_client *handle,
                                      const presence_channel_join_item *items,
                                      size_t count, presence_change *results,
                                      size_t *failed)
{
    if (reg == NULL || handle == NULL || (items == NULL && count > 0)) {
        return PRESENCE_ERR_INVALID;
    }
    struct items all = {NULL, items};
    return join_many(reg, handle, all, count, results, failed);
}
