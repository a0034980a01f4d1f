/*
 * Private structures shared by the library's source files.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_INTERNAL_H
#define PRESENCE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "presence.h"
#include "uthash_config.h"

#include "index.h"
#include "memberset.h"
#include "usercount.h"

struct presence__blob;

/*
 * A user id, interned: every client of the user points here. In the user
 * table while it has live clients; freed when no client record (live, or
 * retired but named by a queued event) points to it.
 */
struct presence__user {
    uint64_t hash;
    struct presence__client *first_client; /* live clients, via unext */
    size_t clients; /* live clients */
    size_t refs;    /* client records pointing here */
    bool live;      /* in the user table */
    size_t id_len;
    char id[];
};

/*
 * A client, stored once however many channels it is in. Lives in the
 * client table while it has memberships; freed when it has none and no
 * queued event refers to it.
 */
struct presence__client {
    struct presence__user *user;
    struct presence__client *uprev, *unext;   /* the user's clients */
    struct presence__membership *memberships; /* doubly linked, via cnext */
    size_t channel_count;
    size_t refs; /* queued events */
    uint64_t hash;
    bool live; /* in the client table */
    size_t id_len;
    size_t conn_info_len;
    char *conn_info; /* points into data, after the id */
    char id[];
};

/* A namespace's options and its memberships in touch order (for TTL). */
struct presence__namespace {
    UT_hash_handle hh;
    presence_namespace_options options;
    struct presence__membership *touch_head; /* least recently touched */
    struct presence__membership *touch_tail;
    size_t name_len;
    char name[];
};

/*
 * A non-empty channel. Removed from the channel table when its last member
 * leaves; freed when no queued event refers to it.
 */
struct presence__channel {
    uint64_t hash;
    struct presence__namespace *ns;
    struct presence__memberset members;
    struct presence__usercount users;
    uint64_t seq;
    size_t member_bytes; /* what a snapshot copies: see membership_bytes */
    size_t refs; /* queued events */
    bool live;   /* in the channel table */
    size_t name_len;
    char name[];
};

/* Immutable bytes shared by a membership and the events that mention it. */
struct presence__blob {
    size_t refs;
    size_t len;
    unsigned char data[];
};

/* One client in one channel. */
struct presence__membership {
    struct presence__client *client;
    struct presence__channel *channel;
    struct presence__membership *cprev, *cnext; /* the client's list */
    struct presence__membership *tprev, *tnext; /* the namespace's touch order */
    struct presence__blob *chan_info;           /* NULL when empty */
    int64_t joined_at_ms;
    int64_t touched_at_ms;
};

/* An event waiting to be delivered; holds references on what it names. */
struct presence__pending {
    struct presence__channel *channel;
    struct presence__client *client;
    struct presence__blob *chan_info;
    uint64_t seq;
    int64_t time_ms;
    size_t num_clients;
    size_t num_users;
    /* Subscriptions made after the change (ids from here on) skip it. */
    presence_subscription first_later_sub;
    unsigned char kind;
    unsigned char reason;
};

struct presence__subscription {
    struct presence__subscription *next;
    presence_subscription id;
    presence_scope scope;
    unsigned kinds;
    presence_event_fn fn;
    void *user_data;
    atomic_bool active;
    size_t name_len;
    char name[];
};

struct presence_registry {
    presence_allocator alloc;
    presence_clock_fn clock;
    void *clock_user_data;
    presence_access_fn access_check;
    void *access_user_data;
    presence_limits limits;
    char separator;
    bool single_threaded;
    uint64_t seed;

    pthread_mutex_t lock;

    struct presence__namespace *namespaces; /* uthash by name: few */
    struct presence__index channels;        /* by name */
    struct presence__index clients;         /* by id */
    struct presence__index users;           /* by id */
    size_t membership_count;
    int64_t last_now_ms; /* the clock never goes backwards for us */

    /* Events: a ring of pending events, delivered by one thread at a time. */
    struct presence__pending *queue;
    size_t queue_cap;
    size_t queue_head;
    size_t queue_len;
    bool dispatching;
    pthread_t dispatcher;

    struct presence__subscription *subs; /* in subscription order */
    struct presence__subscription **subs_tail;
    presence_subscription next_sub_id;
    bool subs_dirty; /* some are inactive and wait to be freed */
};

/* ---- alloc.c: the registry's allocator ---------------------------------- */
void *presence__malloc(presence_registry *reg, size_t size);
void *presence__realloc(presence_registry *reg, void *ptr, size_t old_size,
                        size_t new_size);
void presence__free(presence_registry *reg, void *ptr, size_t size);
/* a + b, or SIZE_MAX on overflow (SIZE_MAX never fits an allocation). */
size_t presence__add_size(size_t a, size_t b);
/* a * b, or SIZE_MAX on overflow. */
size_t presence__mul_size(size_t a, size_t b);
void presence__default_allocator(presence_allocator *out);

/* ---- hash.c ------------------------------------------------------------- */
uint64_t presence__hash64(uint64_t seed, const void *data, size_t len);
unsigned presence__hash32(uint64_t seed, const void *data, size_t len);
uint64_t presence__random_seed(const void *salt);

/* ---- registry.c: locking and time -------------------------------------- */
void presence__lock(presence_registry *reg);
void presence__unlock(presence_registry *reg);
/* The clock, never going backwards. Called with the lock held. */
int64_t presence__now(presence_registry *reg);

/* ---- names.c ------------------------------------------------------------ */
/* Check a string against the character rule and a limit; *len gets its
 * length. allow_empty is for user ids. */
int presence__check_name(const char *name, size_t max, bool allow_empty,
                         size_t *len);
int presence__check_namespace_name(const char *name, size_t *len);
/* The namespace part of a channel name ("" for the default). */
void presence__namespace_part(const presence_registry *reg,
                              const char *channel, size_t channel_len,
                              const char **ns, size_t *ns_len);
/* A channel name, checked and looked up. */
struct presence__chref {
    const char *name;
    size_t len;
    uint64_t hash;
    struct presence__namespace *ns;
    struct presence__channel *ch; /* NULL when it has no member */
};
/* Check a channel name (no lock needed). */
int presence__channel_check(const presence_registry *reg, const char *name,
                            struct presence__chref *ref);
/* Find the channel and its namespace (lock held): the channel's own
 * namespace when it exists, else a namespace lookup. */
int presence__channel_lookup(presence_registry *reg,
                             struct presence__chref *ref);

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
struct presence__client *presence__client_find(presence_registry *reg,
                                               const char *id, size_t len,
                                               uint64_t hash);
/* Find or create the client; *created tells which. */
int presence__client_get(presence_registry *reg, const char *id,
                         size_t id_len, uint64_t hash, const char *user,
                         size_t user_len, const void *conn_info,
                         size_t conn_info_len, struct presence__client **out,
                         bool *created);
/* Whether an existing client has this user id and conn_info. */
bool presence__client_same(const struct presence__client *client,
                           const char *user_id, size_t user_len,
                           const void *conn_info, size_t conn_info_len);
/* The client lost its last membership: out of the table. */
void presence__client_retire(presence_registry *reg,
                             struct presence__client *client);
void presence__client_unref(presence_registry *reg,
                            struct presence__client *client);
void presence__clients_free(presence_registry *reg);
struct presence__user *presence__user_find(presence_registry *reg,
                                           const char *id, size_t len);

/* ---- blob --------------------------------------------------------------- */
int presence__blob_new(presence_registry *reg, const void *data, size_t len,
                       struct presence__blob **out);
void presence__blob_unref(presence_registry *reg, struct presence__blob *b);
bool presence__blob_equals(const struct presence__blob *b, const void *data,
                           size_t len);

/* ---- channel.c: memberships ----------------------------------------------- */
void presence__channels_init(presence_registry *reg);
struct presence__membership *
presence__membership_find(struct presence__channel *ch,
                          const struct presence__client *client);
/* Remove a membership for the given reason, queueing its events (the queue
 * must have room for 2 events: see presence__events_reserve). */
/* The bytes a snapshot copies for a membership, channel name aside. */
size_t presence__membership_bytes(const struct presence__membership *m);
void presence__membership_remove(presence_registry *reg,
                                 struct presence__membership *m,
                                 presence_leave_reason reason);
void presence__channel_unref(presence_registry *reg,
                             struct presence__channel *ch);
void presence__channels_free(presence_registry *reg);
/* Close every channel of a namespace (events reserved by the caller). */
void presence__namespace_drain(presence_registry *reg,
                               struct presence__namespace *ns);
/* Remove up to max members of a channel in hash order, from the first
 * whose hash is at least *cursor (start at 0), moving the cursor along;
 * returns how many. Fewer than max means the end was reached. */
size_t presence__channel_drain(presence_registry *reg,
                               struct presence__channel *ch, size_t max,
                               presence_leave_reason reason, uint64_t *cursor);

/* ---- expiry.c ----------------------------------------------------------- */
void presence__touch_append(struct presence__namespace *ns,
                            struct presence__membership *m);
void presence__touch_unlink(struct presence__namespace *ns,
                            struct presence__membership *m);
void presence__touch_renew(presence_registry *reg,
                           struct presence__membership *m);
/* When m expires: last touch + the namespace's TTL, saturating;
 * PRESENCE_NO_DEADLINE without a TTL or without m. */
int64_t presence__deadline(const struct presence__namespace *ns,
                           const struct presence__membership *m);

/* ---- events.c ----------------------------------------------------------- */
/* Make room for n more events. */
int presence__events_reserve(presence_registry *reg, size_t n);
/* Room left without allocating. */
size_t presence__events_room(const presence_registry *reg);
/* Queue the events of one change (room must have been reserved). */
void presence__events_push(presence_registry *reg,
                           struct presence__channel *ch,
                           struct presence__membership *m,
                           presence_event_kind kind,
                           presence_leave_reason reason, bool user_change);
/* Deliver queued events, unless another delivery is running. Call without
 * the lock. */
void presence__events_dispatch(presence_registry *reg);
/* Called with the lock held: true if this thread is delivering events. */
bool presence__events_busy(const presence_registry *reg);
void presence__events_free(presence_registry *reg);

#endif
