/*
 * The records the containers hold and the domain works on: users, nodes,
 * clients, chan_info blobs and memberships. Plain data and accessors; the
 * rules that make and change them are in domain/.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_CONTAINERS_RECORDS_H
#define PRESENCE_CONTAINERS_RECORDS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "containers/pool.h"
#include "containers/slab.h"

/*
 * A user id, interned: every client of the user points here. In the user
 * index while it has live clients (one reference); each client record
 * holds another until it is freed. Its key (userkey.h) is in each of its
 * clients (client->user_key): a user in the index has one.
 */
struct presence__user {
    struct presence__pool_block pool; /* from its shard's user pool */
    uint32_t id_len; /* names are under 4 GiB: presence__check_name */
    /* No copy of the id's hash: it is needed only when the user goes
     * (presence__user_hash), and 8 bytes of 32 are worth more. */
    struct presence__client *first_client; /* live clients, via unext */
    /* 32 bits: both are bounded by the user's client records, each over
     * 100 bytes, so 4G of them cannot fit in memory. */
    atomic_uint_least32_t refs;
    uint32_t clients; /* live clients */
    char id[];
};

/*
 * A node id, interned: every remote client of the node points here and
 * holds a reference. In the node table while referenced; freed with its
 * last reference (refs and the table: node_lock).
 */
struct presence__node {
    uint64_t hash;
    size_t refs;
    uint32_t id_len;
    char id[];
};

/*
 * A client, stored once however many channels it is in. Live (in its
 * shard's index, holding one reference) while it has memberships; queued
 * events hold the others.
 */
struct presence__client {
    struct presence__pool_block pool; /* from its shard's client pool */
    /* 32-bit fields keep the header at 64 bytes (a client with a 32-byte
     * conn_info and an id of up to 7 bytes fits a 128-byte block): names
     * are under 4 GiB (presence__check_name), references and channels
     * are bounded by memberships and events, which cannot reach 4G in
     * memory, and the byte counts are checked when the client is made. */
    atomic_uint_least32_t refs;
    uint64_t hash;
    struct presence__user *user;
    struct presence__client *uprev, *unext;   /* the user's live clients */
    uint32_t channel_count;
    uint32_t memberships; /* reference of the newest, then via cnext */
    /* Its user's key (userkey.h), which orders its memberships in their
     * channels' member sets; fixed for the record's life, and the user's
     * while the client is live. A copy, so that a member set's probe
     * need not load the user record. */
    uint32_t user_key;
    /* What a query reads of a client starts here (PRESENCE__CLIENT_HOT):
     * its client pool places each record so that the line this is in
     * starts at user_key (records stay 8-byte aligned), and holds these
     * fields and the strings' first 48 bytes (a record of up to 112). */
    uint32_t id_len;
    /* Its id, conn_info and user id, the strings with their NULs, as they
     * lie side by side after the header: what a snapshot entry copies of
     * the record in one go (a remote client's node id comes from its node:
     * presence__client_snapshot_bytes). */
    uint32_t snapshot_bytes;
    /* The conn_info's length, and PRESENCE__CLIENT_REMOTE for a client of
     * another node, whose node (a pointer) follows its strings, or
     * PRESENCE__CLIENT_HANDLE for a client opened as a handle, whose
     * application pointer follows them: most clients need neither, and no
     * 8 bytes for them. Those are fixed for the record's life, so read
     * without a lock. And PRESENCE__CLIENT_OPEN while a handle is open on
     * it: it stays in its shard's index with no membership until the
     * handle is closed (changed under its client shard's lock; atomic
     * because a closed handle's application pointer is no longer handed
     * out, and a query holds only a channel shard). Here, not in a byte of
     * its own before the header's end, so that a query reads no line but
     * the one its strings start in. Read through
     * presence__client_conn_info_len(), presence__client_open(),
     * presence__client_node() and presence__client_app(). */
    atomic_uint_least32_t conn_info_word;
    char id[]; /* then conn_info, then a copy of its user's id
                  (presence__client_user_id), then a remote client's node
                  or a handle's application pointer */
};

/* Where a query starts reading a client: the three fields before its
 * strings. */
#define PRESENCE__CLIENT_HOT offsetof(struct presence__client, id_len)
_Static_assert(offsetof(struct presence__client, id) ==
                   PRESENCE__CLIENT_HOT + 3 * sizeof(uint32_t),
               "a query reads a client from id_len to its strings' end");
_Static_assert(offsetof(struct presence__client, id) == 64,
               "a client's header is a line");

#define PRESENCE__CLIENT_REMOTE 0x80000000u
#define PRESENCE__CLIENT_HANDLE 0x40000000u
#define PRESENCE__CLIENT_OPEN 0x20000000u
/* The flags that say a pointer follows the strings. */
#define PRESENCE__CLIENT_FLAGS (PRESENCE__CLIENT_REMOTE | PRESENCE__CLIENT_HANDLE)
/* The longest conn_info a client can hold: the word's other bits. */
#define PRESENCE__CLIENT_CONN_INFO_MAX (PRESENCE__CLIENT_OPEN - 1u)

static inline uint32_t
presence__client_word(const struct presence__client *client)
{
    return atomic_load_explicit(&client->conn_info_word, memory_order_relaxed);
}

/* A live user's key (userkey.h): its clients carry it. */
static inline uint32_t presence__user_key(const struct presence__user *u)
{
    return u->first_client->user_key;
}

/* A client's conn_info: right after its id. */
static inline const char *
presence__client_conn_info(const struct presence__client *client)
{
    return client->id + client->id_len + 1;
}
static inline size_t
presence__client_conn_info_len(const struct presence__client *client)
{
    return presence__client_word(client) & PRESENCE__CLIENT_CONN_INFO_MAX;
}
/* A handle is open on it (see conn_info_word). */
static inline bool presence__client_open(const struct presence__client *client)
{
    return (presence__client_word(client) & PRESENCE__CLIENT_OPEN) != 0;
}
/* Its handle closed (its client shard held). */
static inline void presence__client_close_handle(struct presence__client *client)
{
    atomic_fetch_and(&client->conn_info_word, ~PRESENCE__CLIENT_OPEN);
}
/* The pointer stored after the strings (a node's or an application's). */
static inline void *
presence__client_tail_ptr(const struct presence__client *client)
{
    void *p;
    memcpy(&p, client->id + client->snapshot_bytes, sizeof p);
    return p;
}
/* The application pointer of a client opened as a handle while the
 * handle is open, else NULL: a closed handle's client may live on with
 * memberships in leave grace (grace.c), and its pointer must not be
 * handed out after the close. */
static inline void *
presence__client_app(const struct presence__client *client)
{
    return (presence__client_word(client) & PRESENCE__CLIENT_OPEN) != 0
               ? presence__client_tail_ptr(client)
               : NULL;
}
/* A copy of its user's id, NUL-terminated, after the conn_info: a query
 * lists it, and a join checks it, without loading the user record, a
 * page and a line more for each member listed (query 1.14-1.16x at 10^6
 * memberships, for the id's bytes and a NUL a client). */
static inline const char *
presence__client_user_id(const struct presence__client *client)
{
    return presence__client_conn_info(client) +
           presence__client_conn_info_len(client);
}
/* Its length: what the strings take but the id, the conn_info and the
 * two NULs. */
static inline size_t
presence__client_user_len(const struct presence__client *client)
{
    return client->snapshot_bytes - client->id_len -
           presence__client_conn_info_len(client) - 2;
}

/* NULL for this registry's own clients, else the node the client belongs
 * to. */
static inline struct presence__node *
presence__client_node(const struct presence__client *client)
{
    if ((presence__client_word(client) & PRESENCE__CLIENT_REMOTE) == 0) {
        return NULL;
    }
    return presence__client_tail_ptr(client);
}

/* What a snapshot entry copies of a client: its strings, and a remote
 * client's node id with its NUL. */
static inline size_t
presence__client_snapshot_bytes(const struct presence__client *client)
{
    const struct presence__node *node = presence__client_node(client);
    return client->snapshot_bytes + (node != NULL ? node->id_len + 1 : 0);
}

/* Immutable bytes shared by a membership and the events that mention it. */
struct presence__blob {
    /* 32 bits: held by its membership, events and visits, which cannot
     * reach 4G in memory. */
    atomic_uint_least32_t refs;
    size_t len;
    unsigned char data[];
};

/*
 * One client in one channel: 32 bytes, from its channel shard's slab.
 * Links are 32-bit: across shards, a reference, the shard's index and the
 * number (the client's list: presence__mref), PRESENCE__SLAB_NONE at its
 * end. The client's list is singly linked: a disconnect removes from its
 * head, and a single leave walks a list that channels_per_client_max
 * keeps short (128 by default). Only memberships in a namespace with a
 * TTL have a touch order, kept beside them in the slab (expiry.c).
 */
struct presence__membership {
    struct presence__slab_block slab; /* its number: the slab's field */
    uint32_t cnext;                   /* the client's list: a reference */
    /* Its channel: the shard's index and the channel's number in that
     * shard's table (presence__membership_channel), 4 bytes instead of a
     * pointer's 8; it also names the shard without hashing the channel's
     * name. Fixed for the membership's life. */
    uint32_t chref;
    /* Times in 47 bits (low 32, high 15), biased by 2^46: presence__now
     * keeps the clock within +-2^46 ms (2,200 years); see
     * presence__time48_get. The top bit of joined_hi says whether the
     * membership has a chan_info (its shard's chan_infos: chaninfo.h). */
    uint32_t joined_lo, touched_lo;
    uint16_t joined_hi, touched_hi;
    struct presence__client *client;
};

_Static_assert(sizeof(struct presence__membership) <= 32,
               "a membership takes 32 bytes of its slab");

#define PRESENCE__HAS_CHAN_INFO 0x8000u
/* The top bit of touched_hi: the membership is in leave grace (grace.c);
 * its touch time is then the time it dropped. */
#define PRESENCE__IN_GRACE 0x8000u

/* The range presence__now keeps times in, so that they fit 47 bits. They
 * are stored biased by 2^46, as unsigned: reading one back is a shift, an
 * or and a subtraction, with no sign to extend. */
#define PRESENCE__TIME_MAX (((int64_t)1 << 46) - 1)
#define PRESENCE__TIME_MIN (-((int64_t)1 << 46))

static inline int64_t presence__time48_get(uint32_t lo, uint16_t hi)
{
    return (int64_t)((uint64_t)(hi & ~PRESENCE__HAS_CHAN_INFO) << 32 | lo) +
           PRESENCE__TIME_MIN;
}

/* Set a time, keeping the flag bit of *hi. */
static inline void presence__time48_set(uint32_t *lo, uint16_t *hi,
                                        int64_t t)
{
    uint64_t v = (uint64_t)(t - PRESENCE__TIME_MIN); /* in [0, 2^47) */
    *lo = (uint32_t)v;
    *hi = (uint16_t)((*hi & PRESENCE__HAS_CHAN_INFO) | (v >> 32));
}

static inline int64_t
presence__membership_joined(const struct presence__membership *m)
{
    return presence__time48_get(m->joined_lo, m->joined_hi);
}

static inline bool
presence__membership_has_chan_info(const struct presence__membership *m)
{
    return (m->joined_hi & PRESENCE__HAS_CHAN_INFO) != 0;
}

static inline bool
presence__membership_in_grace(const struct presence__membership *m)
{
    return (m->touched_hi & PRESENCE__IN_GRACE) != 0;
}

static inline int64_t
presence__membership_touched(const struct presence__membership *m)
{
    return presence__time48_get(m->touched_lo, m->touched_hi);
}

static inline void presence__membership_set_touched(
    struct presence__membership *m, int64_t t)
{
    presence__time48_set(&m->touched_lo, &m->touched_hi, t);
}

#endif
