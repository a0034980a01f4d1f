/*
 * Clients and users. A client is stored once, with its id and conn_info in
 * the same allocation; users are interned so that a user id is stored once
 * however many connections the user has.
 *
 * Lifetimes: a client is "live" (in the client table) while it has
 * memberships; a retired client stays allocated while queued events name
 * it. The same holds for users, with their clients as references.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "internal.h"

/* ---- users -------------------------------------------------------------- */

static size_t user_size(size_t id_len)
{
    return sizeof(struct presence__user) + id_len + 1;
}

void presence__clients_init(presence_registry *reg)
{
    presence__index_init(&reg->clients, offsetof(struct presence__client, id),
                         offsetof(struct presence__client, id_len));
    presence__index_init(&reg->users, offsetof(struct presence__user, id),
                         offsetof(struct presence__user, id_len));
}

struct presence__user *presence__user_find(presence_registry *reg,
                                           const char *id, size_t len)
{
    return presence__index_find(&reg->users,
                                presence__hash64(reg->seed, id, len), id, len);
}

static int user_get(presence_registry *reg, const char *id, size_t len,
                    struct presence__user **out)
{
    uint64_t hash = presence__hash64(reg->seed, id, len);
    struct presence__user *user = presence__index_find(&reg->users, hash, id,
                                                       len);
    if (user != NULL) {
        *out = user;
        return PRESENCE_OK;
    }
    int rc = presence__index_prepare(reg, &reg->users);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    user = presence__malloc(reg, user_size(len));
    if (user == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(user, 0, sizeof *user);
    memcpy(user->id, id, len);
    user->id[len] = '\0';
    user->id_len = len;
    user->hash = hash;
    presence__index_insert(&reg->users, hash, user);
    user->live = true;
    *out = user;
    return PRESENCE_OK;
}

static void user_link(struct presence__user *user,
                      struct presence__client *client)
{
    client->user = user;
    client->uprev = NULL;
    client->unext = user->first_client;
    if (user->first_client != NULL) {
        user->first_client->uprev = client;
    }
    user->first_client = client;
    user->clients++;
    user->refs++;
}

/* The client is retiring: out of its user's list, and the user out of the
 * table with its last live client. */
static void user_unlink(presence_registry *reg,
                        struct presence__client *client)
{
    struct presence__user *user = client->user;
    if (client->uprev != NULL) {
        client->uprev->unext = client->unext;
    } else {
        user->first_client = client->unext;
    }
    if (client->unext != NULL) {
        client->unext->uprev = client->uprev;
    }
    if (--user->clients == 0) {
        presence__index_remove(reg, &reg->users, user->hash, user);
        user->live = false;
    }
}

/* ---- clients ------------------------------------------------------------ */

static size_t client_size(size_t id_len, size_t conn_info_len)
{
    return sizeof(struct presence__client) + id_len + 1 + conn_info_len;
}

struct presence__client *presence__client_find(presence_registry *reg,
                                               const char *id, size_t len,
                                               uint64_t hash)
{
    return presence__index_find(&reg->clients, hash, id, len);
}

bool presence__client_same(const struct presence__client *client,
                           const char *user_id, size_t user_len,
                           const void *conn_info, size_t conn_info_len)
{
    return client->user->id_len == user_len &&
           memcmp(client->user->id, user_id, user_len) == 0 &&
           client->conn_info_len == conn_info_len &&
           (conn_info_len == 0 ||
            memcmp(client->conn_info, conn_info, conn_info_len) == 0);
}

static void client_destroy(presence_registry *reg,
                           struct presence__client *client)
{
    struct presence__user *user = client->user;
    if (--user->refs == 0 && !user->live) {
        presence__free(reg, user, user_size(user->id_len));
    }
    presence__free(reg, client,
                   client_size(client->id_len, client->conn_info_len));
}

int presence__client_get(presence_registry *reg, const char *id,
                         size_t id_len, uint64_t hash, const char *user_id,
                         size_t user_len, const void *conn_info,
                         size_t conn_info_len, struct presence__client **out,
                         bool *created)
{
    struct presence__client *client =
        presence__client_find(reg, id, id_len, hash);
    if (client != NULL) {
        if (!presence__client_same(client, user_id, user_len, conn_info,
                                   conn_info_len)) {
            return PRESENCE_ERR_CONFLICT;
        }
        *out = client;
        *created = false;
        return PRESENCE_OK;
    }
    int rc = presence__index_prepare(reg, &reg->clients);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    size_t size = client_size(id_len, conn_info_len);
    client = presence__malloc(reg, size);
    if (client == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(client, 0, sizeof *client);
    struct presence__user *user;
    rc = user_get(reg, user_id, user_len, &user);
    if (rc != PRESENCE_OK) {
        presence__free(reg, client, size);
        return rc;
    }
    user_link(user, client);
    memcpy(client->id, id, id_len);
    client->id[id_len] = '\0';
    client->id_len = id_len;
    client->conn_info = client->id + id_len + 1;
    if (conn_info_len > 0) {
        memcpy(client->conn_info, conn_info, conn_info_len);
    }
    client->conn_info_len = conn_info_len;
    client->hash = hash;
    presence__index_insert(&reg->clients, hash, client);
    client->live = true;
    *out = client;
    *created = true;
    return PRESENCE_OK;
}

void presence__client_retire(presence_registry *reg,
                             struct presence__client *client)
{
    presence__index_remove(reg, &reg->clients, client->hash, client);
    client->live = false;
    user_unlink(reg, client);
    if (client->refs == 0) {
        client_destroy(reg, client);
    }
}

void presence__client_unref(presence_registry *reg,
                            struct presence__client *client)
{
    if (--client->refs == 0 && !client->live) {
        client_destroy(reg, client);
    }
}

void presence__clients_free(presence_registry *reg)
{
    /* Queued events are gone: every client and user left goes now. */
    for (size_t i = 0; i < presence__index_slots(&reg->clients); i++) {
        struct presence__client *client = presence__index_at(&reg->clients, i);
        if (client != NULL) {
            presence__free(reg, client, client_size(client->id_len,
                                                    client->conn_info_len));
        }
    }
    for (size_t i = 0; i < presence__index_slots(&reg->users); i++) {
        struct presence__user *user = presence__index_at(&reg->users, i);
        if (user != NULL) {
            presence__free(reg, user, user_size(user->id_len));
        }
    }
    presence__index_free(reg, &reg->clients);
    presence__index_free(reg, &reg->users);
}

/* ---- blobs: chan_info bytes shared with queued events ------------------- */

int presence__blob_new(presence_registry *reg, const void *data, size_t len,
                       struct presence__blob **out)
{
    if (len == 0) {
        *out = NULL;
        return PRESENCE_OK;
    }
    size_t size = presence__add_size(sizeof(struct presence__blob), len);
    struct presence__blob *b = presence__malloc(reg, size);
    if (b == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    b->refs = 1;
    b->len = len;
    memcpy(b->data, data, len);
    *out = b;
    return PRESENCE_OK;
}

void presence__blob_unref(presence_registry *reg, struct presence__blob *b)
{
    if (b != NULL && --b->refs == 0) {
        presence__free(reg, b, sizeof *b + b->len);
    }
}

bool presence__blob_equals(const struct presence__blob *b, const void *data,
                           size_t len)
{
    if (b == NULL) {
        return len == 0;
    }
    return b->len == len && memcmp(b->data, data, len) == 0;
}
