/*
 * Clients and users. A client is stored once, with its id and conn_info in
 * the same allocation; users are interned so that a user id is stored once
 * however many connections the user has.
 *
 * Lifetimes: a client is live (in its shard's index) while it has
 * memberships; the index holds one reference and queued events the others.
 * A user is in the user index while it has live clients; the index and
 * every client record hold a reference.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"
#include "base/bytes.h"

void presence__clients_init(presence_registry *reg)
{
    for (size_t i = 0; i < PRESENCE__SHARDS; i++) {
        presence__index_init(&reg->cshards[i].clients,
                             offsetof(struct presence__client, id),
                             offsetof(struct presence__client, id_len));
    }
    for (size_t i = 0; i < PRESENCE__SHARDS; i++) {
        presence__index_init(&reg->ushards[i].users,
                             offsetof(struct presence__user, id),
                             offsetof(struct presence__user, id_len));
        /* Each shard mints its own numbers: i, i + SHARDS, ... */
        presence__userkeys_init(&reg->ushards[i].keys,
                                (uint32_t)(reg->seed >> 32), (uint32_t)i,
                                PRESENCE__SHARDS);
    }
}

/* ---- users -------------------------------------------------------------- */

static size_t user_size(size_t id_len)
{
    return offsetof(struct presence__user, id) + id_len + 1;
}

uint64_t presence__user_hash(const presence_registry *reg,
                             const struct presence__user *u)
{
    return presence__hash64(reg->seed, u->id, u->id_len);
}

void presence__user_unref(presence_registry *reg, struct presence__user *u)
{
    if (presence__ref_drop(presence__threaded(reg), &u->refs)) {
        presence__pool_free(&reg->alloc, u, user_size(u->id_len));
    }
}

void presence__user_index_prefetch(presence_registry *reg,
                                   const struct presence__user *user)
{
    uint64_t hash = presence__user_hash(reg, user);
    struct presence__ushard *us = presence__ushard_of(reg, hash);
    presence__mutex_lock(reg, &us->lock);
    presence__index_prefetch(&us->users, hash);
    presence__mutex_unlock(reg, &us->lock);
}

/* Find or create the user and link the client to it (its shard held). */
static int user_link(presence_registry *reg, struct presence__ushard *us,
                     uint64_t hash, const char *id, size_t len,
                     struct presence__client *client, bool *first)
{
    struct presence__user *user = presence__index_find(&us->users, hash, id,
                                                       len);
    if (user != NULL) {
        client->user_key = presence__user_key(user);
    } else {
        int rc = presence__index_prepare(&reg->alloc, &us->users);
        if (rc == PRESENCE_OK) {
            rc = presence__userkeys_take(&reg->alloc, &us->keys,
                                         &client->user_key);
        }
        if (rc != PRESENCE_OK) {
            return rc;
        }
        user = presence__pool_alloc(
            &reg->alloc,
            &reg->user_pools[(size_t)(us - reg->ushards) &
                             reg->shard_mask],
            user_size(len));
        if (user == NULL) {
            presence__userkeys_give(&reg->alloc, &us->keys, client->user_key);
            return PRESENCE_ERR_NOMEM;
        }
        presence__pool_clear(user, offsetof(struct presence__user, id));
        memcpy(user->id, id, len);
        user->id[len] = '\0';
        user->id_len = (uint32_t)len;
        atomic_init(&user->refs, 1); /* the index's */
        presence__index_insert(&us->users, hash, user);
    }
    presence__ref_take(presence__threaded(reg), &user->refs); /* the client's */
    client->user = user;
    client->uprev = NULL;
    client->unext = user->first_client;
    if (user->first_client != NULL) {
        user->first_client->uprev = client;
    }
    user->first_client = client;
    *first = user->clients++ == 0;
    return PRESENCE_OK;
}

/* The client retires: out of its user's list, and the user out of the
 * index with its last live client, announced as offline (with room in
 * reserved) under the user's lock: another thread's first client of the
 * same user, made just after, announces it online only after this. */
static void user_unlink(presence_registry *reg,
                        struct presence__client *client, size_t *reserved)
{
    struct presence__user *user = client->user;
    uint64_t hash = presence__user_hash(reg, user);
    struct presence__ushard *us = presence__ushard_of(reg, hash);
    presence__mutex_lock(reg, &us->lock);
    if (client->uprev != NULL) {
        client->uprev->unext = client->unext;
    } else {
        user->first_client = client->unext;
    }
    if (client->unext != NULL) {
        client->unext->uprev = client->uprev;
    }
    bool gone = --user->clients == 0;
    if (gone) {
        presence__index_remove(&reg->alloc, &us->users, hash, user);
        presence__userkeys_give(&reg->alloc, &us->keys, client->user_key);
        if (reserved != NULL && *reserved > 0) { /* someone listens */
            presence__events_push_user(reg, client,
                                       PRESENCE_EVENT_USER_OFFLINE, reserved);
        }
    }
    presence__mutex_unlock(reg, &us->lock);
    if (gone) {
        presence__user_unref(reg, user); /* the index's */
    }
}

/* ---- clients ------------------------------------------------------------ */

static size_t client_size(size_t id_len, size_t conn_info_len, bool tail_ptr,
                          size_t user_len)
{
    return offsetof(struct presence__client, id) + id_len + 1 + conn_info_len +
           user_len + 1 + (tail_ptr ? sizeof(void *) : 0);
}

/* What a client record takes, as it was made. */
static size_t client_record_size(const struct presence__client *client)
{
    return client_size(client->id_len, presence__client_conn_info_len(client),
                       (presence__client_word(client) &
                        PRESENCE__CLIENT_FLAGS) != 0,
                       presence__client_user_len(client));
}

struct presence__client *presence__client_find(struct presence__cshard *cs,
                                               const char *id, size_t len,
                                               uint64_t hash)
{
    return presence__index_find(&cs->clients, hash, id, len);
}

bool presence__client_same(const struct presence__client *client,
                           const char *user_id, size_t user_len,
                           const void *conn_info, size_t conn_info_len)
{
    return presence__client_user_len(client) == user_len &&
           presence__bytes_equal(presence__client_user_id(client), user_id,
                                 user_len) &&
           presence__client_conn_info_len(client) == conn_info_len &&
           presence__bytes_equal(presence__client_conn_info(client),
                                 conn_info, conn_info_len);
}

void presence__client_ref(const presence_registry *reg,
                          struct presence__client *client)
{
    presence__ref_take(presence__threaded(reg), &client->refs);
}

void presence__client_unref(presence_registry *reg,
                            struct presence__client *client)
{
    if (presence__ref_drop(presence__threaded(reg), &client->refs)) {
        struct presence__user *user = client->user;
        struct presence__node *node = presence__client_node(client);
        presence__pool_free(&reg->alloc, client, client_record_size(client));
        presence__user_unref(reg, user);
        if (node != NULL) {
            presence__node_unref(reg, node);
        }
    }
}

int presence__client_prepare(presence_registry *reg,
                             struct presence__cshard *cs)
{
    return presence__index_prepare(&reg->alloc, &cs->clients);
}

PRESENCE__NOINLINE
int presence__client_create(presence_registry *reg,
                            struct presence__cshard *cs, const char *id,
                            size_t id_len, uint64_t hash, const char *user_id,
                            size_t user_len, const void *conn_info,
                            size_t conn_info_len, struct presence__node *node,
                            const struct presence__handle_args *handle,
                            size_t *reserved, struct presence__client **out)
{
    size_t snapshot_bytes = presence__add_size(
        presence__add_size(id_len, user_len),
        presence__add_size(conn_info_len, 2));
    /* With a remote client's node id, what a snapshot entry copies. */
    size_t listed_bytes = presence__add_size(
        snapshot_bytes, node != NULL ? node->id_len + 1 : 0);
    if (listed_bytes > UINT32_MAX ||
        conn_info_len > PRESENCE__CLIENT_CONN_INFO_MAX) {
        return PRESENCE_ERR_TOO_LONG; /* 4 GiB or 512 MiB: past any sane limit */
    }
    size_t size = client_size(id_len, conn_info_len,
                              node != NULL || handle != NULL, user_len);
    struct presence__client *client = presence__pool_alloc(
        &reg->alloc,
        &reg->client_pools[(size_t)(cs - reg->cshards) &
                           reg->shard_mask],
        size);
    if (client == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    presence__pool_clear(client, offsetof(struct presence__client, id));
    client->snapshot_bytes = (uint32_t)snapshot_bytes;
    memcpy(client->id, id, id_len);
    client->id[id_len] = '\0';
    client->id_len = (uint32_t)id_len;
    if (conn_info_len > 0) {
        memcpy(client->id + id_len + 1, conn_info, conn_info_len);
    }
    uint32_t word = (uint32_t)conn_info_len;
    char *tail = client->id + id_len + 1 + conn_info_len;
    memcpy(tail, user_id, user_len); /* presence__client_user_id */
    tail[user_len] = '\0';
    tail += user_len + 1; /* presence__client_tail_ptr */
    if (node != NULL) {
        memcpy(tail, &node, sizeof node);
        word |= PRESENCE__CLIENT_REMOTE;
    } else if (handle != NULL) {
        memcpy(tail, &handle->app, sizeof handle->app);
        word |= PRESENCE__CLIENT_HANDLE | PRESENCE__CLIENT_OPEN;
    }
    atomic_init(&client->conn_info_word, word);
    client->memberships = PRESENCE__SLAB_NONE;
    client->hash = hash;
    atomic_init(&client->refs, 1); /* the index's */
    /* Complete before it is published: a reader of the user's clients
     * (holding only the user's lock) may find it as soon as it is
     * linked. */
    uint64_t user_hash = presence__hash64(reg->seed, user_id, user_len);
    struct presence__ushard *us = presence__ushard_of(reg, user_hash);
    presence__mutex_lock(reg, &us->lock);
    bool first = false;
    int rc = user_link(reg, us, user_hash, user_id, user_len, client, &first);
    /* Announced under the user's lock, so that the user's online and
     * offline events keep the order of the changes (see user_unlink). */
    if (rc == PRESENCE_OK && first && reserved != NULL &&
        *reserved > 0) { /* someone listens */
        presence__events_push_user(reg, client, PRESENCE_EVENT_USER_ONLINE,
                                   reserved);
    }
    presence__mutex_unlock(reg, &us->lock);
    if (rc != PRESENCE_OK) {
        presence__pool_free(&reg->alloc, client, size);
        return rc;
    }
    if (node != NULL) {
        presence__node_ref(reg, node);
    }
    presence__index_insert(&cs->clients, hash, client);
    *out = client;
    return PRESENCE_OK;
}

PRESENCE__NOINLINE
void presence__client_retire(presence_registry *reg,
                             struct presence__client *client,
                             size_t *reserved)
{
    struct presence__cshard *cs = presence__cshard_of(reg, client->hash);
    presence__index_remove(&reg->alloc, &cs->clients, client->hash, client);
    user_unlink(reg, client, reserved);
    presence__client_unref(reg, client); /* the index's */
}

void presence__clients_free(presence_registry *reg)
{
    /* Queued events are gone: every client left goes now, and with the
     * last of them every user. */
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        struct presence__index *idx = &reg->cshards[s].clients;
        for (size_t i = 0; i < presence__index_slots(idx); i++) {
            struct presence__client *client = presence__index_at(idx, i);
            if (client != NULL) {
                presence__pool_free(&reg->alloc, client, client_record_size(client));
            }
        }
        presence__index_free(&reg->alloc, idx);
    }
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        struct presence__index *idx = &reg->ushards[s].users;
        for (size_t i = 0; i < presence__index_slots(idx); i++) {
            struct presence__user *user = presence__index_at(idx, i);
            if (user != NULL) {
                presence__pool_free(&reg->alloc, user, user_size(user->id_len));
            }
        }
        presence__index_free(&reg->alloc, idx);
        presence__userkeys_free(&reg->alloc, &reg->ushards[s].keys);
    }
}
