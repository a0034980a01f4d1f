/*
 * The domain's state and rules: namespaces, channels, shards, events and
 * the registry's fields, and the functions domain/ shares.
 *
 * Locking. Channels live in PRESENCE__SHARDS channel shards and clients in
 * as many client shards, each picked by the name's hash and guarded by its
 * own mutex, so that threads working on different channels and clients do
 * not wait for each other; users have shards of their own. The event
 * queue and the subscriptions share one mutex. The order is always:
 *
 *     client shard  ->  channel shard  ->  user shard  ->  event queue
 *                                                       (->  node table)
 *
 * never two shards of one kind at once, except namespace changes, which
 * take every channel shard (in index order) and nothing else, a
 * dropped client's takeover, which takes the channel shards of its
 * memberships together, in index order, and presence_client_close_many(),
 * which takes its clients' shards together, in index order, then channel
 * shards one at a time as a single client's close does. A path that
 * holds a channel shard and needs a client's shard (expiry, close) tries
 * it, and on failure steps back: see presence__lock_client_of().
 *
 * The node table's lock is a leaf: it may be taken with any of the above
 * held, or none, always last and briefly, and nothing is taken under it
 * (it guards only the table and the entries' reference counts).
 * So is each record pool's lock (pool.h): it guards the pool's chunks,
 * and nothing but the allocator is called under it.
 *
 * What each lock guards:
 * - a channel shard: its channel index, those channels (member set, user
 *   counts, sequence number), the channel side of their memberships
 *   (the chan_info table, touch times, and the namespace touch lists of
 *   the shard with their links in the slab), its channel table, and its
 *   membership slab (though a membership's number is turned into its
 *   address without it: see slab.h);
 * - a client shard: its client index and those clients' membership lists
 *   (so removing a membership needs both its client's and its channel's
 *   shard);
 * - a user shard: its user index and those users' lists of live clients;
 * - the event queue: pending events, the dispatcher, the subscriptions;
 * - the node table: its index and its entries' reference counts.
 * Namespaces are read under any channel shard and changed under all.
 * Reference counts are atomic. Ids, names and conn_info never change once
 * a record exists, so they are read without a lock by whoever holds a
 * reference.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_DOMAIN_H
#define PRESENCE_DOMAIN_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <string.h>

#include "presence.h"

#include "base/alloc.h"
#include "base/hash.h"
#include "base/lock.h"
#include "base/refcount.h"
#include "containers/blob.h"
#include "containers/changelog.h"
#include "containers/chaninfo.h"
#include "containers/index.h"
#include "containers/memberset.h"
#include "containers/pool.h"
#include "containers/records.h"
#include "containers/slab.h"
#include "containers/userkey.h"
#include "domain/uthash_config.h"

#define PRESENCE__SHARD_BITS 6u
#define PRESENCE__SHARDS (1u << PRESENCE__SHARD_BITS)

/* Leave reasons a membership can be in grace for: explicit, disconnect,
 * expired (PRESENCE_LEAVE_EXPLICIT .. PRESENCE_LEAVE_EXPIRED). */
#define PRESENCE__GRACE_REASONS 3u

/* The touch order of one namespace's memberships in one channel shard:
 * slab numbers in that shard, PRESENCE__SLAB_NONE when empty. */
struct presence__touch_list {
    uint32_t head; /* least recently touched */
    uint32_t tail;
};

/* A namespace's options and its memberships in touch order (for TTL). */
struct presence__namespace {
    UT_hash_handle hh;
    presence_namespace_options options;
    struct presence__touch_list touch[PRESENCE__SHARDS];
    /* Its memberships in leave grace, in drop order, one list per leave
     * reason that can be graced (grace.c). */
    struct presence__touch_list grace[PRESENCE__GRACE_REASONS][PRESENCE__SHARDS];
    size_t name_len;
    char name[];
};

/*
 * A channel. Live (in its shard's index, holding one reference) while it
 * has members or channel handles pin it (presence_channel_open); queued
 * events hold the others. A pinned channel without members is idle: in
 * the index, but read as no channel (presence__channel_lookup), with
 * epoch and seq 0, no log, and not counted against channels_max; its
 * next join begins a new life in the same record.
 */
struct presence__channel {
    struct presence__pool_block pool; /* from its shard's channel pool */
    uint32_t number; /* in its shard's channel table while live */
    uint64_t hash;
    atomic_size_t refs;
    /* Its last changes, when its namespace keeps them (history.c); not
     * among what a lookup for stats reads, below. */
    struct presence__changelog *history;
    /* Which life of the channel this record holds: fixed for the life,
     * never 0 in one, unique in the registry and random across
     * registries (presence__epoch); 0 while idle. */
    uint64_t epoch;
    uint64_t seq;
    size_t member_bytes; /* what a snapshot copies: see membership_bytes */
    /* What presence_stats reads, the counts (each its struct's last
     * field), the namespace and the name, kept together at the end: a
     * lookup then touches two cache lines of the record, not three. */
    size_t users; /* distinct users among the members */
    struct presence__memberset members;
    struct presence__namespace *ns;
    uint32_t pins; /* open channel handles (its shard's lock) */
    uint32_t name_len;
    char name[];
};

/* An event waiting to be delivered; holds references on what it names. */
struct presence__pending {
    struct presence__channel *channel;
    struct presence__client *client;
    /* The client's application pointer when the change was made: a
     * handle closed before delivery still announces its own leaves. */
    void *app;
    struct presence__blob *chan_info;
    uint64_t seq;
    /* The channel's life when the change was made: a pinned record
     * lives again under another epoch, maybe before delivery. */
    uint64_t epoch;
    int64_t time_ms;
    size_t num_clients;
    size_t num_users;
    /* Subscriptions made after the change (ids from here on) skip it. */
    presence_subscription first_later_sub;
    unsigned char kind;
    unsigned char reason;
    /* Its namespace had join_leave off: only for subscriptions with
     * PRESENCE_EVENTS_EVERY_NAMESPACE. Recorded here because the option
     * may change before delivery. */
    bool muted;
};

struct presence__subscription {
    struct presence__subscription *next;
    presence_subscription id;
    presence_scope scope;
    unsigned kinds;
    presence_event_fn fn;
    void *user_data;
    /* A coalesced subscription's state (coalesce.c); NULL for one that
     * takes events one by one. */
    struct presence__coalescer *coalesce;
    atomic_bool active;
    size_t name_len;
    char name[];
};

/*
 * Shards are padded to 128 bytes so that two threads working in different
 * shards never write the same cache line. Their counters are atomic only
 * so that totals can be read without taking every lock; each is changed
 * under its shard's lock.
 */
#define PRESENCE__SHARD_BYTES 128

/* A live channel's number in its shard: what memberships hold. Free
 * entries hold the next free number. */
union presence__chslot {
    struct presence__channel *ch;
    uint32_t next_free;
};

struct presence__shard { /* channels */
    union {
        struct {
            pthread_mutex_t lock;
            struct presence__index channels; /* by name */
            atomic_size_t memberships;
            /* Channel lives this shard has begun: its part of the epochs. */
            uint64_t epochs;
            struct presence__slab membership_slab;
        };
        char line_pad[PRESENCE__SHARD_BYTES];
    };
    /* The live channels by number (the shard's lock). */
    union presence__chslot *chans;
    uint32_t chans_cap;
    uint32_t chans_free; /* a free number, or PRESENCE__SLAB_NONE */
    /* The chan_info of its memberships that have one (the shard's lock). */
    struct presence__chaninfo_map chan_infos;
    /* Idle channels in its index (pinned, no member): not counted as
     * channels (the shard's lock). */
    size_t idle;
    char chans_pad[PRESENCE__SHARD_BYTES - sizeof(void *) - 8 -
                   sizeof(struct presence__chaninfo_map) - sizeof(size_t)];
};

struct presence__cshard { /* clients */
    union {
        struct {
            pthread_mutex_t lock;
            struct presence__index clients; /* by id */
        };
        char line_pad[PRESENCE__SHARD_BYTES];
    };
};

struct presence__ushard { /* users, and their lists of live clients */
    union {
        struct {
            pthread_mutex_t lock;
            struct presence__index users; /* by id */
            struct presence__userkeys keys; /* for its new users */
        };
        char line_pad[PRESENCE__SHARD_BYTES];
    };
};

struct presence_registry {
    presence_allocator alloc;
    void *block; /* what alloc gave: the registry is aligned within it */
    presence_clock_fn clock;
    void *clock_user_data;
    presence_access_fn access_check;
    void *access_user_data;
    presence_limits limits;
    char separator;
    bool single_threaded;
    /* What channels and record pools spread over: PRESENCE__SHARDS - 1,
     * or 0 in a single-threaded registry, which has every channel in
     * shard 0 and every client and user record in pool 0. With no lock
     * to spread, one slab keeps the memberships a client makes together
     * next to each other (its renewals and its leave read one or two
     * lines, not one per channel), and clients made one after another
     * lie one after another, at the price of the slab's 2^26 memberships
     * (and channels) in all. The client and user indexes keep their 64
     * shards: one index of millions would double in one step, holding
     * both tables at once. */
    size_t shard_mask;
    uint64_t seed;
    /* Channel epochs: a scramble of epoch_key + (shard, n), the n-th
     * channel a shard makes, so no two of one registry are equal and
     * another registry's are unrelated. */
    uint64_t epoch_key;

    struct presence__namespace *namespaces; /* uthash by name: few */
    /* Shards start on a 128-byte boundary (the registry is allocated so:
     * registry.c), or their padding would not keep them apart: each would
     * share a line with its neighbour, and the first with the fields
     * above, which every call reads. */
    alignas(PRESENCE__SHARD_BYTES) struct presence__shard shards[PRESENCE__SHARDS];
    struct presence__cshard cshards[PRESENCE__SHARDS];
    struct presence__ushard ushards[PRESENCE__SHARDS];
    /* Channels in all, kept only when limits.channels_max asks for it: a
     * counter every thread writes would cost every thread. */
    atomic_size_t channels_limited;
    /* Namespaces with a TTL: without any, no deadline needs looking for. */
    atomic_size_t ttl_namespaces;
    /* Memberships in leave grace (grace.c): their ends are deadlines too,
     * and a join looks for one to take over only while there are some. */
    atomic_size_t graced;
    /* Namespaces with a leave grace: without any, a disconnect need not
     * make room for grace lists. */
    atomic_size_t grace_namespaces;
    /* The latest time any call has read (presence__now): the registry's
     * clock, never backwards. One word for every shard, so that a channel
     * never gets a time earlier than one already given to another. */
    atomic_int_least64_t last_now_ms;

    /* Events (queue_lock): a ring of pending events, delivered by one
     * thread at a time. `reserved` is room promised to changes under way. */
    pthread_mutex_t queue_lock;
    struct presence__pending *queue;
    size_t queue_cap;
    size_t queue_head;
    size_t queue_len;
    size_t queue_reserved;
    size_t queue_peak; /* most slots in use since the ring last shrank */
    bool dispatching;
    pthread_t dispatcher;
    struct presence__subscription *subs; /* in subscription order */
    struct presence__subscription **subs_tail;
    presence_subscription next_sub_id;
    /* The subscription the dispatcher stands on while it calls it, and
     * whether it was removed meanwhile: that one record is unlinked at
     * once but freed by the dispatcher when it moves on, so no removed
     * subscription outlives the call in progress. */
    struct presence__subscription *delivering;
    bool delivering_removed;
    atomic_size_t active_subs;   /* 0: changes queue no events */
    /* Active subscriptions with PRESENCE_EVENTS_EVERY_NAMESPACE: 0 means
     * changes in namespaces without join_leave queue nothing. */
    atomic_size_t every_ns_subs;
    atomic_size_t queued;        /* queue_len, readable without the lock */
    /* Active subscriptions with user kinds (PRESENCE_EVENTS_USERS): 0
     * means no room is reserved for them and none are queued. */
    atomic_size_t user_subs;
    /* Coalesced diffs (queue_lock): the earliest time one is due, and the
     * latest now_ms a presence_flush() asked for, which the dispatcher
     * serves before it stops (flush_wanted, readable without the lock,
     * says there is one). */
    int64_t coalesce_due_ms;
    int64_t flush_now_ms;
    atomic_bool flush_wanted;

    /* Where channel, client and user records come from, by shard. */
    struct presence__pool channel_pools[PRESENCE__SHARDS];
    struct presence__pool client_pools[PRESENCE__SHARDS];
    struct presence__pool user_pools[PRESENCE__SHARDS];

    /* Zero-copy visits under way (visit.c): the registry is not freed
     * under them. */
    atomic_size_t visits;

    /* Node ids of remote clients (node_lock, a leaf). */
    pthread_mutex_t node_lock;
    struct presence__index nodes; /* by id */
};

/* ---- membership references ------------------------------------------------ */
#define PRESENCE__MREF_SHARD_SHIFT PRESENCE__SLAB_INDEX_BITS
_Static_assert(PRESENCE__SHARDS <= (1u << (32 - PRESENCE__MREF_SHARD_SHIFT)),
               "a shard index and a slab number must fit in 32 bits");

/* A membership's reference: its channel shard's index and its number. */
static inline uint32_t presence__mref(const presence_registry *reg,
                                      const struct presence__shard *hs,
                                      const struct presence__membership *m)
{
    return (uint32_t)(hs - reg->shards) << PRESENCE__MREF_SHARD_SHIFT |
           m->slab.slab_index;
}

/* The membership a reference names (not PRESENCE__SLAB_NONE). */
static inline struct presence__membership *
presence__mref_get(presence_registry *reg, uint32_t ref)
{
    return presence__slab_at(
        &reg->shards[ref >> PRESENCE__MREF_SHARD_SHIFT].membership_slab,
        ref & ((1u << PRESENCE__MREF_SHARD_SHIFT) - 1));
}

/* A live channel's reference: its shard's index and its number. */
static inline uint32_t presence__chref(const presence_registry *reg,
                                       const struct presence__shard *hs,
                                       const struct presence__channel *ch)
{
    return (uint32_t)(hs - reg->shards) << PRESENCE__MREF_SHARD_SHIFT |
           ch->number;
}

/* The channel shard of a membership. */
static inline struct presence__shard *
presence__membership_shard(presence_registry *reg,
                           const struct presence__membership *m)
{
    return &reg->shards[m->chref >> PRESENCE__MREF_SHARD_SHIFT];
}

/* The channel of a membership in the shard hs. */
static inline struct presence__channel *
presence__shard_channel(const struct presence__shard *hs,
                        const struct presence__membership *m)
{
    return hs->chans[m->chref & ((1u << PRESENCE__MREF_SHARD_SHIFT) - 1)].ch;
}

/* The channel of a membership. */
static inline struct presence__channel *
presence__membership_channel(presence_registry *reg,
                             const struct presence__membership *m)
{
    return presence__shard_channel(presence__membership_shard(reg, m), m);
}

/* The membership with this number in the shard's slab. */
static inline struct presence__membership *
presence__shard_member(struct presence__shard *hs, uint32_t number)
{
    return presence__slab_at(&hs->membership_slab, number);
}

/* ---- shards.c: shards, locks and time ----------------------------------- */
/* The shard of a name: its hash's top bits (the index tables use the low
 * ones). Channels, clients and users each have their shards, and their
 * record pools, by this number; a single-threaded registry has every
 * channel in shard 0 and every record in pool 0 (reg->shard_mask). */
static inline size_t presence__shard_index(uint64_t hash)
{
    return (size_t)(hash >> (64u - PRESENCE__SHARD_BITS));
}
static inline struct presence__shard *
presence__shard_of(presence_registry *reg, uint64_t hash)
{
    return &reg->shards[presence__shard_index(hash) & reg->shard_mask];
}
static inline struct presence__cshard *
presence__cshard_of(presence_registry *reg, uint64_t hash)
{
    return &reg->cshards[presence__shard_index(hash)];
}
static inline struct presence__ushard *
presence__ushard_of(presence_registry *reg, uint64_t hash)
{
    return &reg->ushards[presence__shard_index(hash)];
}
/* The hash of a user's id: its shard and its index slot. */
uint64_t presence__user_hash(const presence_registry *reg,
                             const struct presence__user *u);
/* Start loading the user's slot in the user index, which the user
 * leaves with its last client (a hint: takes the user's shard briefly). */
void presence__user_index_prefetch(presence_registry *reg,
                                   const struct presence__user *user);
/* Totals: sums of the shards' counts. */
size_t presence__count_memberships(presence_registry *reg);

/* Add delta to a shard's membership count, its lock held. A load and a
 * store, not a read-modify-write: every writer holds the lock, so none is
 * lost, and a locked instruction here would be a full barrier on x86,
 * keeping the next call's cache misses from overlapping this one's.
 * Readers without the lock (presence__count_memberships) see the old or
 * the new count. */
static inline void presence__shard_count_memberships(struct presence__shard *hs,
                                                     ptrdiff_t delta)
{
    size_t n = atomic_load_explicit(&hs->memberships, memory_order_relaxed);
    atomic_store_explicit(&hs->memberships, n + (size_t)delta,
                          memory_order_relaxed);
}
/* Whether other threads may call in: locks and atomic reference counts. */
static inline bool presence__threaded(const presence_registry *reg)
{
    return !reg->single_threaded;
}
/* References on a chan_info blob, counted as the registry's kind asks. */
static inline void presence__chan_info_ref(const presence_registry *reg,
                                           struct presence__blob *b)
{
    presence__blob_ref(presence__threaded(reg), b);
}
static inline void presence__chan_info_unref(const presence_registry *reg,
                                             struct presence__blob *b)
{
    presence__blob_unref(&reg->alloc, presence__threaded(reg), b);
}
/* The registry's mutexes (none when it is single-threaded). */
static inline void presence__mutex_init(const presence_registry *reg,
                                        pthread_mutex_t *m)
{
    presence__lock_init(!reg->single_threaded, m);
}
static inline void presence__mutex_destroy(const presence_registry *reg,
                                           pthread_mutex_t *m)
{
    presence__lock_destroy(!reg->single_threaded, m);
}
static inline void presence__mutex_lock(const presence_registry *reg,
                                        pthread_mutex_t *m)
{
    presence__lock(!reg->single_threaded, m);
}
static inline bool presence__mutex_trylock(const presence_registry *reg,
                                           pthread_mutex_t *m)
{
    return presence__trylock(!reg->single_threaded, m);
}
static inline void presence__mutex_unlock(const presence_registry *reg,
                                          pthread_mutex_t *m)
{
    presence__unlock(!reg->single_threaded, m);
}
/* A new channel's epoch, in shard hs (held); never 0. */
uint64_t presence__epoch(presence_registry *reg, struct presence__shard *hs);
/* Every channel shard, in order (namespace changes). */
void presence__lock_all_shards(presence_registry *reg);
void presence__unlock_all_shards(presence_registry *reg);
/* A set of channel shards, one bit each, taken in index order (given
 * back in reverse): the order presence__lock_all_shards() uses. */
_Static_assert(PRESENCE__SHARDS <= 64, "a shard set fits 64 bits");
void presence__lock_shard_set(presence_registry *reg, uint64_t set);
void presence__unlock_shard_set(presence_registry *reg, uint64_t set);
/* A set of client shards, the same way: taken before any channel shard,
 * as a single client's is (presence_client_close_many). */
void presence__lock_client_shard_set(presence_registry *reg, uint64_t set);
void presence__unlock_client_shard_set(presence_registry *reg, uint64_t set);
/*
 * With the channel shard held, take the client shard of `client` too. If
 * that needs stepping back (release the channel shard, take both in
 * order), returns true: the caller must check that what it was about to
 * change is still there. The caller holds a reference on the client across
 * the call and whatever it does next, so that its address cannot be reused
 * by another client meanwhile.
 */
bool presence__lock_client_of(presence_registry *reg,
                              struct presence__shard *hs,
                              struct presence__client *client);
/* The clock as the registry sees it, never going backwards. Read with a
 * channel shard held, the times one shard gets never go back either. */
int64_t presence__now(presence_registry *reg);

/* ---- names.c ------------------------------------------------------------ */
/* Check a string against the character rule and a limit; *len gets its
 * length. allow_empty is for user ids. */
int presence__check_name(const char *name, size_t max, bool allow_empty,
                         size_t *len);
/* presence__check_name, and on success the name's hash: how a call finds
 * a channel's, client's or user's shard and index slot. */
int presence__check_hash_name(const presence_registry *reg, const char *name,
                              size_t max, bool allow_empty, size_t *len,
                              uint64_t *hash);
int presence__check_namespace_name(const char *name, size_t *len);
/* Whether a namespace separator is one a registry accepts. */
bool presence__separator_ok(char c);
/* The namespace part of a channel name ("" for the default). */
void presence__namespace_part(const presence_registry *reg,
                              const char *channel, size_t channel_len,
                              const char **ns, size_t *ns_len);
/* A channel name, checked and looked up. */
struct presence__chref {
    const char *name;
    size_t len;
    uint64_t hash;
    struct presence__shard *shard;
    struct presence__namespace *ns;
    struct presence__channel *ch; /* NULL when it has no member */
    /* When ch is NULL: the channel's idle record (pinned by a channel
     * handle, no member), which a join brings to life; else NULL. */
    struct presence__channel *idle;
};
/* Check a channel name (no lock needed). */
int presence__channel_check(presence_registry *reg, const char *name,
                            struct presence__chref *ref);
/* Find the channel and its namespace (its shard held). */
int presence__channel_lookup(presence_registry *reg,
                             struct presence__chref *ref);
/* presence__channel_lookup() for a join: NOT_AVAILABLE when the
 * channel's namespace keeps no presence. */
int presence__channel_lookup_join(presence_registry *reg,
                                  struct presence__chref *ref);
/* A channel handle's record as a checked name (no lock needed: a record's
 * name, hash and namespace never change); nothing looked up yet. */
void presence__chref_of(presence_registry *reg, struct presence__channel *ch,
                        struct presence__chref *ref);
/* presence__channel_lookup() for a channel handle's record (its shard
 * held): no index lookup, the record is the channel. */
static inline void presence__chref_resolve(struct presence__channel *rec,
                                           struct presence__chref *ref)
{
    bool live = rec->members.count > 0;
    ref->ch = live ? rec : NULL;
    ref->idle = live ? NULL : rec;
}

/* ---- node.c: node ids of remote clients ---------------------------------- */
/* A node id named by a call, checked and hashed (no lock needed). */
struct presence__nodename {
    const char *id;
    size_t len;
    uint64_t hash;
};
/* Check a node id (the rules of client ids). */
int presence__node_check(presence_registry *reg, const char *id,
                         struct presence__nodename *out);
/* The node's entry with a reference for the caller, made if need be. */
int presence__node_intern(presence_registry *reg,
                          const struct presence__nodename *name,
                          struct presence__node **out);
/* The node's entry with a reference for the caller, or NULL if no client
 * has it. */
struct presence__node *
presence__node_find(presence_registry *reg,
                    const struct presence__nodename *name);
void presence__node_ref(presence_registry *reg, struct presence__node *node);
void presence__node_unref(presence_registry *reg, struct presence__node *node);
void presence__nodes_init(presence_registry *reg);
void presence__nodes_free(presence_registry *reg);

/* ---- namespace.c -------------------------------------------------------- */
struct presence__namespace *
presence__namespace_find(presence_registry *reg, const char *name, size_t len);
void presence__namespaces_free(presence_registry *reg);
int presence__namespace_options_check(const presence_namespace_options *o);
/* Copy options given by the caller, whose struct may be older (smaller). */
void presence__namespace_options_copy(presence_namespace_options *dst,
                                      const presence_namespace_options *src);
int presence__namespace_add(presence_registry *reg, const char *name,
                            size_t len, const presence_namespace_options *o);

/* ---- client.c ----------------------------------------------------------- */
void presence__clients_init(presence_registry *reg);
/* Find a client (its shard held). */
struct presence__client *presence__client_find(struct presence__cshard *cs,
                                               const char *id, size_t len,
                                               uint64_t hash);
/* Make sure a new client fits in its shard without allocating. */
int presence__client_prepare(presence_registry *reg,
                             struct presence__cshard *cs);
/* What a client opened as a handle has besides its names. */
struct presence__handle_args {
    void *app;
};
/* A new client (its shard held, presence__client_prepare done); node is
 * NULL for a client of this registry, else the new client takes a
 * reference on it; handle is non-NULL for a client opened as a handle
 * (a local one): it is open from the start. A user that comes online
 * with it gets its event from *reserved (NULL: none). */
int presence__client_create(presence_registry *reg,
                            struct presence__cshard *cs, const char *id,
                            size_t id_len, uint64_t hash, const char *user,
                            size_t user_len, const void *conn_info,
                            size_t conn_info_len, struct presence__node *node,
                            const struct presence__handle_args *handle,
                            size_t *reserved,
                            struct presence__client **out);
/* Whether an existing client has this user id and conn_info. */
bool presence__client_same(const struct presence__client *client,
                           const char *user_id, size_t user_len,
                           const void *conn_info, size_t conn_info_len);
/* The client lost its last membership: out of its shard (held); a user
 * that goes offline with it gets its event from *reserved (NULL: none). */
void presence__client_retire(presence_registry *reg,
                             struct presence__client *client,
                             size_t *reserved);
void presence__client_ref(const presence_registry *reg,
                          struct presence__client *client);
void presence__client_unref(presence_registry *reg,
                            struct presence__client *client);
void presence__clients_free(presence_registry *reg);
void presence__user_unref(presence_registry *reg, struct presence__user *u);

/* ---- channel.c: memberships ----------------------------------------------- */
/* What a call names: a channel and a client, checked and hashed before any
 * lock is taken. */
struct presence__target {
    struct presence__chref chan;
    const char *client_id;
    size_t client_len;
    uint64_t client_hash;
    struct presence__cshard *cs;
};
/* What a join brings besides its target. */
struct presence__join_args {
    struct presence__node *node; /* NULL: a local client */
    const char *user_id;
    size_t user_len;
    const void *conn_info;
    size_t conn_info_len;
    const void *chan_info;
    size_t chan_info_len;
    /* It takes the place of a member in grace (grace.c): the channel's
     * member limit counts that one for it. */
    bool replacing;
    /* The time read once for a call of many joins (join_many, its shards
     * held since it read it); else each join reads the clock. */
    bool has_now;
    int64_t now_ms;
};
/* NULL bytes with a length, or more than max: the info rule. */
int presence__check_info(const void *data, size_t len, size_t max);
/* A join with the client's and the channel's shards held and the channel
 * looked up: a new membership, or an update and a touch of the one there.
 * client is NULL when the id is new (then it is made from t and a);
 * change (may be NULL) gets what happened. */
int presence__join_locked(presence_registry *reg, struct presence__target *t,
                          struct presence__client *client,
                          const struct presence__join_args *a,
                          presence_change *change);
/* A new membership as presence__join_locked() makes one, but with no
 * event: *made gets it, *first_of_user whether it is the user's first in
 * the channel. For a change that may yet be taken back. */
int presence__join_silent(presence_registry *reg, struct presence__target *t,
                          struct presence__client *client,
                          const struct presence__join_args *a,
                          struct presence__membership **made,
                          bool *first_of_user);
/* Take back a membership that presence__join_silent() made, while its
 * shards stayed held: no event, and the channel's seq as before. */
void presence__leave_silent(presence_registry *reg,
                            struct presence__membership *m);
/* Replace a membership's chan_info, with an update event if it differs
 * (its channel's shard held); *changed says whether it did. */
int presence__replace_chan_info(presence_registry *reg,
                                struct presence__membership *m,
                                const void *chan_info, size_t chan_info_len,
                                bool *changed);
/* Every membership of a client leaves (its shard held), or none: the
 * events are reserved first. *left gets how many. */
int presence__client_leave_all(presence_registry *reg,
                               struct presence__client *client,
                               presence_leave_reason reason, size_t *left);
/* Memberships of a client whose tables a leave starts loading ahead. */
#define PRESENCE__LEAVE_AHEAD 16
/* What step 2 of a client's leave prefetch found, for its step 3 and its
 * leave: its first memberships, in its list's order, and their shards and
 * channels. Valid while the client's shard stays held: its memberships
 * (every change to its list holds that shard), and so their channels,
 * stay. */
struct presence__leave_plan {
    size_t n;
    struct presence__membership *m[PRESENCE__LEAVE_AHEAD];
    struct presence__shard *hs[PRESENCE__LEAVE_AHEAD];
    struct presence__channel *ch[PRESENCE__LEAVE_AHEAD];
};
/* presence__client_leave_all() in parts, for a batch of clients (each
 * client's shard held in each part): prepare makes what leaving cannot do
 * without (grace links, and its events' room, added to *reserved; on an
 * error only spare room was made); prefetch starts the loads of one step
 * (1 to 3, each reading what the one before loaded; steps 2 and 3 of a
 * client share its plan); leave_prepared takes the events from *reserved
 * and returns how many memberships left, reading what the plan found
 * instead of finding it again (plan NULL: none was made; else the
 * client's shard was held since it was). */
int presence__client_leave_prepare(presence_registry *reg,
                                   struct presence__client *client,
                                   presence_leave_reason reason,
                                   size_t *reserved);
void presence__client_leave_prefetch(presence_registry *reg,
                                     const struct presence__client *client,
                                     unsigned step,
                                     struct presence__leave_plan *plan);
size_t presence__client_leave_prepared(presence_registry *reg,
                                       struct presence__client *client,
                                       presence_leave_reason reason,
                                       const struct presence__leave_plan *plan,
                                       size_t *reserved);
/* Renew the TTL of every membership of a client (its shard held). */
void presence__client_touch_all(presence_registry *reg,
                                struct presence__client *client);
/* The stats a read reports for a channel (NULL: an empty one). */
static inline presence_channel_stats
presence__channel_stats(const struct presence__channel *ch)
{
    presence_channel_stats s = {0, 0, 0, 0};
    if (ch != NULL) {
        s.num_clients = ch->members.count;
        s.num_users = ch->users;
        s.epoch = ch->epoch;
        s.seq = ch->seq;
    }
    return s;
}
void presence__channels_free(presence_registry *reg);
struct presence__membership *
presence__membership_find(struct presence__channel *ch,
                          const struct presence__client *client);
/* The membership of the client with this id (and user key: see
 * presence__memberset_find_id), found from the channel side alone
 * (channel shard held). */
struct presence__membership *
presence__membership_find_id(struct presence__channel *ch,
                             uint32_t user_key, const char *id, size_t len,
                             uint64_t hash);
/* A membership's chan_info, NULL when it has none (its shard hs held). */
static inline struct presence__blob *
presence__membership_chan_info(const struct presence__shard *hs,
                               const struct presence__membership *m)
{
    return presence__membership_has_chan_info(m)
               ? presence__chaninfo_get(&hs->chan_infos, m->slab.slab_index)
               : NULL;
}
/* The bytes a snapshot copies for a membership, channel name aside. */
static inline size_t
presence__membership_bytes(const struct presence__shard *hs,
                           const struct presence__membership *m)
{
    const struct presence__blob *b = presence__membership_chan_info(hs, m);
    return presence__client_snapshot_bytes(m->client) +
           (b != NULL ? b->len : 0);
}
/* A client's strings into a snapshot or history entry at *next, which
 * moves past them (presence__client_snapshot_bytes): its id, conn_info and
 * user id in one copy, as its record holds them, a remote client's node
 * id, and a handle's application pointer. */
void presence__member_put_client(presence_member *out,
                                 const struct presence__client *c,
                                 char **next);
/* Remove a membership for the given reason, queueing its events from the
 * reservation (both its shards held). */
void presence__membership_remove(presence_registry *reg,
                                 struct presence__membership *m,
                                 presence_leave_reason reason,
                                 size_t *reserved);
/* A membership's grace ended: it leaves with its drop's reason, its
 * events dated at the drop (both its shards held). */
void presence__membership_end_grace(presence_registry *reg,
                                    struct presence__membership *m,
                                    presence_leave_reason reason,
                                    size_t *reserved);
void presence__channel_unref(presence_registry *reg,
                             struct presence__channel *ch);
/* Pin the channel a checked, looked-up name names (its shard held),
 * making its record idle if it has none; fails without change. */
int presence__channel_pin(presence_registry *reg, struct presence__chref *ref,
                          struct presence__channel **out);
/* Unpin a record (its shard held); an idle one left unpinned goes. */
void presence__channel_unpin(presence_registry *reg,
                             struct presence__channel *ch);
/* Close every channel of a namespace whose presence was turned off. */
int presence__namespace_drain(presence_registry *reg,
                              struct presence__namespace *ns);

/* ---- history.c: the channels' change logs ------------------------------- */
/* Give a new channel (its shard held) the log its namespace asks for.
 * Fails without change. */
int presence__history_attach(presence_registry *reg,
                             struct presence__channel *ch);
/* Make room in ch's log (its shard held) for a change to come: `more`
 * is 2 for a join, 1 for an update (see history.c). Fails without a
 * visible change. */
int presence__history_grow(presence_registry *reg,
                           struct presence__channel *ch, size_t more);
static inline int presence__history_room(presence_registry *reg,
                                         struct presence__channel *ch,
                                         size_t more)
{
    /* Inline: a namespace without logs pays one test. */
    return ch->history == NULL ? PRESENCE_OK
                               : presence__history_grow(reg, ch, more);
}
/* Log the change of m that just made ch->seq (ch's shard hs held);
 * nothing when ch keeps no log. Cannot fail. */
/* A leave's time, at_ms: when it happened (a grace's end logs the drop's
 * time), or INT64_MIN (PRESENCE__EVENT_NOW) for now. */
void presence__history_append(presence_registry *reg,
                              struct presence__shard *hs,
                              struct presence__channel *ch,
                              const struct presence__membership *m,
                              presence_event_kind kind,
                              presence_leave_reason reason, int64_t at_ms);
static inline void presence__history_log_at(
    presence_registry *reg, struct presence__shard *hs,
    struct presence__channel *ch, const struct presence__membership *m,
    presence_event_kind kind, presence_leave_reason reason, int64_t at_ms)
{
    if (ch->history != NULL) {
        presence__history_append(reg, hs, ch, m, kind, reason, at_ms);
    }
}
static inline void presence__history_log(presence_registry *reg,
                                         struct presence__shard *hs,
                                         struct presence__channel *ch,
                                         const struct presence__membership *m,
                                         presence_event_kind kind,
                                         presence_leave_reason reason)
{
    presence__history_log_at(reg, hs, ch, m, kind, reason, INT64_MIN);
}
/* Empty ch's log (its shard held) so that it reaches back to ch->seq and
 * no further: for a change the log cannot tell as joins, leaves and
 * updates (a same-user takeover at the end of a grace). */
void presence__history_restart(presence_registry *reg,
                               struct presence__channel *ch);
/* Free a channel's log and what its entries hold (its shard held, or the
 * registry going). */
void presence__history_free(presence_registry *reg,
                            struct presence__channel *ch);
/* A change of ns's history_size, prepared: the logs its channels will
 * have, made before anything changes. */
struct presence__history_plan {
    presence_registry *reg;
    size_t size;
    bool change;
    int rc;
    size_t count;
    size_t made;
    struct presence__changelog **logs; /* one a channel */
};
/* Make the logs for ns's history_size becoming `size` (every channel shard
 * held); fails without change. Then commit or abort the plan, shards
 * still held, and finish it once they are released. */
int presence__history_prepare(presence_registry *reg,
                              const struct presence__namespace *ns,
                              size_t size, struct presence__history_plan *p);
/* Every channel of ns takes its log (the newest changes of its old one
 * that fit), or none for a size of 0. */
void presence__history_commit(const struct presence__namespace *ns,
                              struct presence__history_plan *p);
void presence__history_abort(struct presence__history_plan *p);
/* Release the old logs of a committed plan (no lock held); nothing for a
 * plan that was aborted, failed or zeroed. */
void presence__history_finish(struct presence__history_plan *p);

/* ---- query.c ------------------------------------------------------------ */
/* A public read's requester: NULL is INVALID, presence_trusted() becomes
 * NULL, which the functions below read as "no access check". */
int presence__requester_resolve(const presence_requester **req);
/*
 * Resolve a channel for a read: name, namespace, presence on, access. The
 * channel's shard is held on success; ref->ch is NULL for a channel
 * without members.
 */
int presence__lock_channel_read(presence_registry *reg, const char *channel,
                                const presence_requester *requester,
                                struct presence__chref *ref);
/* presence__lock_channel_read() for a channel handle's record. */
int presence__lock_channel_read_pinned(presence_registry *reg,
                                       struct presence__channel *rec,
                                       const presence_requester *requester,
                                       struct presence__chref *ref);

/* ---- expiry.c ----------------------------------------------------------- */
/* The touch list of a local membership of ch (in its shard hs, held). */
static inline struct presence__touch_list *
presence__touch_list_of(presence_registry *reg, struct presence__shard *hs,
                        const struct presence__channel *ch)
{
    return &ch->ns->touch[hs - reg->shards];
}
/* Whether ch's local memberships keep a touch order: its namespace has a
 * TTL. */
static inline bool
presence__has_touch_order(const struct presence__channel *ch)
{
    return ch->ns->options.ttl_ms > 0;
}
/* Make room for m's links (m new in shard hs); fails without change. */
int presence__touch_prepare(presence_registry *reg, struct presence__shard *hs,
                            struct presence__membership *m);
void presence__touch_append(struct presence__shard *hs,
                            struct presence__touch_list *list,
                            struct presence__membership *m);
void presence__touch_unlink(struct presence__shard *hs,
                            struct presence__touch_list *list,
                            struct presence__membership *m);
/* The least recently touched membership of a list, or NULL. */
struct presence__membership *
presence__touch_head(struct presence__shard *hs,
                     const struct presence__touch_list *list);
/* A TTL turned on for ns (every channel shard held): link its local
 * memberships in order of touch time. Fails without change (but for links
 * made, which nothing sees). */
int presence__touch_order_build(presence_registry *reg,
                                struct presence__namespace *ns);
/* Its TTL turned off: forget the order. */
void presence__touch_order_drop(struct presence__namespace *ns);
/* m was touched now: to the tail of the touch list of its channel ch. */
void presence__touch_renew(presence_registry *reg, struct presence__shard *hs,
                           const struct presence__channel *ch,
                           struct presence__membership *m);
/* The earliest deadline of the shard's memberships (shard s held). */
int64_t presence__shard_next_deadline(presence_registry *reg, size_t s);
/* When m expires: last touch + the namespace's TTL, saturating;
 * PRESENCE_NO_DEADLINE without a TTL or without m. */
int64_t presence__deadline(const struct presence__namespace *ns,
                           const struct presence__membership *m);

/* ---- grace.c: leave grace ------------------------------------------------ */
/* Empty grace lists for a new namespace. */
void presence__grace_lists_init(struct presence__namespace *ns);
/* Whether a membership of client in ch that leaves for reason goes into
 * grace instead. */
bool presence__grace_applies(const struct presence__channel *ch,
                             const struct presence__client *client,
                             presence_leave_reason reason);
/* Make room for m's list links (its shard hs held); fails without change. */
int presence__grace_prepare(presence_registry *reg, struct presence__shard *hs,
                            struct presence__membership *m);
/* m (not in grace, links made, both its shards held) goes into grace:
 * nothing announced, nothing counted differently. */
void presence__grace_drop(presence_registry *reg, struct presence__shard *hs,
                          const struct presence__channel *ch,
                          struct presence__membership *m,
                          presence_leave_reason reason);
/* m leaves grace (both shards held): off its grace list, flag cleared. */
void presence__grace_forget(presence_registry *reg, struct presence__shard *hs,
                            const struct presence__channel *ch,
                            struct presence__membership *m);
/* m's client came back: out of grace, touched now, on its touch list. */
void presence__grace_resume(presence_registry *reg, struct presence__shard *hs,
                            const struct presence__channel *ch,
                            struct presence__membership *m);
/* The head of one of ns's grace lists in shard s whose grace has ended
 * by now_ms, and its reason; NULL if none (shard s held). */
struct presence__membership *
presence__grace_due(presence_registry *reg, const struct presence__namespace *ns,
                    size_t shard, int64_t now_ms, presence_leave_reason *reason);
/* The earliest end of a grace in shard s (held). */
int64_t presence__grace_shard_next_deadline(presence_registry *reg, size_t s);
/* Whether a client may be replaced by a new handle with its id (its shard
 * held): no handle open, every membership in grace, the same user. */
bool presence__grace_claimable(presence_registry *reg,
                               const struct presence__client *client,
                               const char *user_id, size_t user_len);
/* Move every membership of from to to (same id, same shard, held), with
 * their channel shards taken together: no reader sees it half done. */
void presence__grace_adopt(presence_registry *reg,
                           struct presence__client *from,
                           struct presence__client *to);
/* A join with no membership of its client in the channel (both shards
 * held): when the namespace lets another connection of the same user take
 * the place of one in grace and there is one, do that; *taken says so. */
int presence__grace_take_place(presence_registry *reg,
                               struct presence__target *t,
                               struct presence__client *client,
                               const struct presence__join_args *a,
                               presence_change *change, bool *taken);

/* Call fn for every membership in grace in shard s (held), with its
 * reason, list by list in drop order. */
void presence__grace_walk(presence_registry *reg, size_t shard,
                          void (*fn)(struct presence__membership *m,
                                     presence_leave_reason reason, void *ctx),
                          void *ctx);
/* A loaded membership (on no list, its touch time its drop time, links
 * made) goes into grace at the tail of its list. */
void presence__grace_restore(presence_registry *reg,
                             struct presence__shard *hs,
                             const struct presence__channel *ch,
                             struct presence__membership *m,
                             presence_leave_reason reason);

/* ---- events.c ----------------------------------------------------------- */
/* Promise room for n events to a change under way: *reserved gets n, or 0
 * when nobody listens (then no event is queued). Fails without change. */
int presence__events_reserve(presence_registry *reg, size_t n,
                             size_t *reserved);
/* Give back what a change did not use. */
void presence__events_release(presence_registry *reg, size_t *reserved);
/* presence__events_push_at() once room is reserved: out of line. */
void presence__events_queue_at(presence_registry *reg,
                               struct presence__shard *hs,
                               struct presence__channel *ch,
                               struct presence__membership *m,
                               presence_event_kind kind,
                               presence_leave_reason reason, bool user_change,
                               int64_t at_ms, size_t *reserved);
/* Queue the events of one change from the reservation, with the change's
 * time given (a leave at the end of a grace happened when its member
 * dropped); PRESENCE__EVENT_NOW reads the clock. Inline: with nobody
 * listening (nothing reserved) a change pays one test, not a call. */
#define PRESENCE__EVENT_NOW INT64_MIN
static inline void presence__events_push_at(
    presence_registry *reg, struct presence__shard *hs,
    struct presence__channel *ch, struct presence__membership *m,
    presence_event_kind kind, presence_leave_reason reason, bool user_change,
    int64_t at_ms, size_t *reserved)
{
    if (*reserved != 0) {
        presence__events_queue_at(reg, hs, ch, m, kind, reason, user_change,
                                  at_ms, reserved);
    }
}
/* presence__events_push_at() now. */
static inline void presence__events_push(presence_registry *reg,
                                         struct presence__shard *hs,
                                         struct presence__channel *ch,
                                         struct presence__membership *m,
                                         presence_event_kind kind,
                                         presence_leave_reason reason,
                                         bool user_change, size_t *reserved)
{
    presence__events_push_at(reg, hs, ch, m, kind, reason, user_change,
                             PRESENCE__EVENT_NOW, reserved);
}
/* Room a change reserves for a user's online or offline event: 1 while
 * some subscription wants them, else 0. */
static inline size_t presence__user_event_room(presence_registry *reg)
{
    return atomic_load_explicit(&reg->user_subs, memory_order_relaxed) > 0;
}
/* Queue a user's online or offline event about client, from the
 * reservation (nothing when there is none). */
void presence__events_push_user(presence_registry *reg,
                                struct presence__client *client,
                                presence_event_kind kind, size_t *reserved);
/* Deliver queued events, unless another delivery is running. Call with no
 * lock held. */
void presence__events_dispatch(presence_registry *reg);
/* Whether some thread is delivering events right now. */
bool presence__events_dispatching(presence_registry *reg);
void presence__events_init(presence_registry *reg);
void presence__events_free(presence_registry *reg);
/* A coalesced diff is due at due_ms: bring the registry's next flush
 * deadline forward to it if it is later. */
void presence__events_due(presence_registry *reg, int64_t due_ms);

/* ---- coalesce.c: coalesced diffs ------------------------------------------ */
struct presence__coalescer;
/* A coalesced subscription's state, options checked; fails without
 * change. */
int presence__coalescer_new(presence_registry *reg,
                            const presence_coalesce_options *options,
                            presence_diff_fn fn, void *user_data,
                            struct presence__coalescer **out);
/* NULL is accepted. */
void presence__coalescer_free(presence_registry *reg,
                              struct presence__coalescer *c);
/* Record an event's change in the subscription's windows (dispatcher
 * only). Never fails: what cannot be recorded marks a resync. */
void presence__coalesce_record(presence_registry *reg,
                               struct presence__coalescer *c,
                               const struct presence__pending *e);
/* Deliver the subscription's diffs due at now_ms (dispatcher only, no
 * lock held), stopping when *active turns false; *next_due_ms is lowered
 * to the earliest one left pending. scope and name are the
 * subscription's, for a scope-wide resync. */
void presence__coalesce_deliver(presence_registry *reg,
                                struct presence__coalescer *c,
                                const atomic_bool *active,
                                presence_scope scope, const char *name,
                                int64_t now_ms, int64_t *next_due_ms);

#endif
