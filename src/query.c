/*
 * Queries: presence snapshots (whole or paged), stats, a client's channels,
 * a user's connections, the channel list.
 *
 * A snapshot is one allocation: a private header (the allocator that frees
 * it), the public struct, the member array and the bytes the members point
 * to. It is measured in a first pass and filled in a second, both under
 * the lock, so it is one instant's view.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdalign.h>
#include <string.h>

#include "internal.h"

struct snapshot_block {
    presence_allocator alloc;
    size_t size;
    presence_snapshot snapshot;
};

struct channel_list_block {
    presence_allocator alloc;
    size_t size;
    presence_channel_list list;
};

/* ---- building a snapshot ---------------------------------------------- */

struct builder {
    bool filling;
    size_t count;
    size_t bytes;                 /* string and info bytes */
    const char *shared_channel;   /* one copy for single-channel snapshots */
    presence_member *members;
    char *next;                   /* where the next bytes go */
};

static size_t member_bytes(const struct presence__membership *m,
                           bool with_channel)
{
    size_t n = presence__membership_bytes(m);
    return with_channel ? n + m->channel->name_len + 1 : n;
}

static const char *put_string(struct builder *b, const char *s, size_t len)
{
    char *at = b->next;
    memcpy(at, s, len);
    at[len] = '\0';
    b->next += len + 1;
    return at;
}

static const void *put_bytes(struct builder *b, const void *data, size_t len)
{
    if (len == 0) {
        return NULL;
    }
    char *at = b->next;
    memcpy(at, data, len);
    b->next += len;
    return at;
}

static void builder_visit(struct presence__membership *m, void *ctx)
{
    struct builder *b = ctx;
    if (!b->filling) {
        b->count++;
        b->bytes += member_bytes(m, b->shared_channel == NULL);
        return;
    }
    const struct presence__client *c = m->client;
    presence_member *out = &b->members[b->count++];
    out->channel = b->shared_channel != NULL
                       ? b->shared_channel
                       : put_string(b, m->channel->name, m->channel->name_len);
    out->client_id = put_string(b, c->id, c->id_len);
    out->user_id = put_string(b, c->user->id, c->user->id_len);
    out->conn_info = put_bytes(b, c->conn_info, c->conn_info_len);
    out->conn_info_len = c->conn_info_len;
    if (m->chan_info != NULL) {
        out->chan_info = put_bytes(b, m->chan_info->data, m->chan_info->len);
        out->chan_info_len = m->chan_info->len;
    } else {
        out->chan_info = NULL;
        out->chan_info_len = 0;
    }
    out->joined_at_ms = m->joined_at_ms;
    out->touched_at_ms = m->touched_at_ms;
}

/* Allocate the snapshot for what the builder measured, plus `extra` bytes
 * (the shared channel name). */
static int snapshot_alloc(presence_registry *reg, struct builder *b,
                          size_t extra, presence_snapshot **out)
{
    size_t head = sizeof(struct snapshot_block);
    size_t align = alignof(presence_member);
    head = (head + align - 1) / align * align;
    size_t array = presence__mul_size(b->count, sizeof(presence_member));
    size_t size = presence__add_size(
        presence__add_size(head, array), presence__add_size(b->bytes, extra));
    struct snapshot_block *block = presence__malloc(reg, size);
    if (block == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(block, 0, sizeof *block);
    block->alloc = reg->alloc;
    block->size = size;
    b->members = (presence_member *)((char *)block + head);
    b->next = (char *)b->members + array;
    block->snapshot.members = b->count > 0 ? b->members : NULL;
    *out = &block->snapshot;
    return PRESENCE_OK;
}

void presence_snapshot_free(presence_snapshot *snapshot)
{
    if (snapshot == NULL) {
        return;
    }
    struct snapshot_block *block =
        (struct snapshot_block *)((char *)snapshot -
                                  offsetof(struct snapshot_block, snapshot));
    block->alloc.free_fn(block, block->size, block->alloc.user_data);
}

/* ---- channel queries ---------------------------------------------------- */

/* Resolve a channel for a read: name, namespace, presence on, access. Lock
 * held on success; ref->ch is NULL for a channel without members. */
static int lock_channel_read(presence_registry *reg, const char *channel,
                             const presence_requester *requester,
                             struct presence__chref *ref)
{
    if (reg == NULL || channel == NULL ||
        (requester != NULL && requester->client_id == NULL)) {
        return PRESENCE_ERR_INVALID;
    }
    int rc = presence__channel_check(reg, channel, ref);
    size_t id_len = 0;
    size_t user_len = 0;
    if (rc == PRESENCE_OK && requester != NULL) {
        rc = presence__check_name(requester->client_id,
                                  reg->limits.client_id_max, false, &id_len);
    }
    if (rc == PRESENCE_OK && requester != NULL && requester->user_id != NULL) {
        rc = presence__check_name(requester->user_id, reg->limits.user_id_max,
                                  true, &user_len);
    }
    if (rc != PRESENCE_OK) {
        return rc;
    }
    uint64_t id_hash = requester != NULL
                           ? presence__hash64(reg->seed, requester->client_id,
                                              id_len)
                           : 0;
    presence__lock(reg);
    rc = presence__channel_lookup(reg, ref);
    if (rc == PRESENCE_OK && !ref->ns->options.presence) {
        rc = PRESENCE_ERR_NOT_AVAILABLE;
    }
    if (rc == PRESENCE_OK && requester != NULL) {
        struct presence__client *who = presence__client_find(
            reg, requester->client_id, id_len, id_hash);
        const char *user = requester->user_id;
        if (user == NULL && who != NULL) {
            user = who->user->id;
        }
        presence_access access = {
            .channel = channel,
            .namespace_name = ref->ns->name,
            .client_id = requester->client_id,
            .user_id = user,
            .is_member = who != NULL && ref->ch != NULL &&
                         presence__membership_find(ref->ch, who) != NULL,
        };
        bool allowed = reg->access_check != NULL
                           ? reg->access_check(&access, reg->access_user_data)
                           : access.is_member;
        if (!allowed) {
            rc = PRESENCE_ERR_DENIED;
        }
    }
    if (rc != PRESENCE_OK) {
        presence__unlock(reg);
    }
    return rc;
}

static presence_channel_stats channel_stats(const struct presence__channel *ch)
{
    presence_channel_stats s = {0, 0};
    if (ch != NULL) {
        s.num_clients = ch->members.count;
        s.num_users = ch->users.users;
    }
    return s;
}

/* Snapshot of members [cursor, limit) of a channel, lock held. */
static int channel_snapshot(presence_registry *reg,
                            const struct presence__chref *ref,
                            uint64_t cursor, size_t limit,
                            presence_snapshot **out)
{
    const char *channel = ref->name;
    size_t len = ref->len;
    struct presence__channel *ch = ref->ch;
    struct builder b = {0};
    b.shared_channel = channel; /* measuring: not copied per member */
    if (ch != NULL && cursor == 0 && limit == SIZE_MAX) {
        /* The whole channel: its size is kept up to date, one pass. */
        b.count = ch->members.count;
        b.bytes = ch->member_bytes;
    } else if (ch != NULL) {
        presence__memberset_scan(&ch->members, cursor, limit, builder_visit,
                                 &b);
    }
    presence_snapshot *snap;
    int rc = snapshot_alloc(reg, &b, len + 1, &snap);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    b.shared_channel = put_string(&b, channel, len);
    b.filling = true;
    b.count = 0;
    uint64_t next = 0;
    if (ch != NULL) {
        next = presence__memberset_scan(&ch->members, cursor, limit,
                                        builder_visit, &b);
    }
    snap->count = b.count;
    snap->seq = ch != NULL ? ch->seq : 0;
    snap->stats = channel_stats(ch);
    snap->next_cursor = limit == SIZE_MAX ? 0 : next;
    *out = snap;
    return PRESENCE_OK;
}

int presence_query_page(presence_registry *reg, const char *channel,
                        const presence_requester *requester, uint64_t cursor,
                        size_t limit, presence_snapshot **out)
{
    if (out == NULL || limit == 0) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    int rc = lock_channel_read(reg, channel, requester, &ref);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    rc = channel_snapshot(reg, &ref, cursor, limit, out);
    presence__unlock(reg);
    return rc;
}

int presence_query(presence_registry *reg, const char *channel,
                   const presence_requester *requester,
                   presence_snapshot **out)
{
    return presence_query_page(reg, channel, requester, 0, SIZE_MAX, out);
}

int presence_stats(presence_registry *reg, const char *channel,
                   const presence_requester *requester,
                   presence_channel_stats *out)
{
    if (out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    int rc = lock_channel_read(reg, channel, requester, &ref);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    *out = channel_stats(ref.ch);
    presence__unlock(reg);
    return PRESENCE_OK;
}

/* ---- a user in a channel ------------------------------------------------ */

static int lock_user_read(presence_registry *reg, const char *channel,
                          const char *user_id, struct presence__chref *ref,
                          struct presence__user **user)
{
    if (reg == NULL || user_id == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t user_len = 0;
    int rc = presence__check_name(user_id, reg->limits.user_id_max, true,
                                  &user_len);
    if (rc == PRESENCE_OK) {
        rc = lock_channel_read(reg, channel, NULL, ref);
    }
    if (rc == PRESENCE_OK) {
        *user = presence__user_find(reg, user_id, user_len);
    }
    return rc;
}

int presence_user_present(presence_registry *reg, const char *channel,
                          const char *user_id, size_t *connections)
{
    if (connections == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    struct presence__user *user;
    int rc = lock_user_read(reg, channel, user_id, &ref, &user);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__channel *ch = ref.ch;
    *connections = ch != NULL && user != NULL
                       ? presence__usercount_get(&ch->users, user)
                       : 0;
    presence__unlock(reg);
    return PRESENCE_OK;
}

/* Visit the user's memberships in the channel, walking whichever is
 * shorter: the user's clients or the channel's members. */
static void visit_user_members(struct presence__channel *ch,
                               struct presence__user *user,
                               struct builder *b)
{
    if (user->clients <= ch->members.count) {
        for (struct presence__client *c = user->first_client; c != NULL;
             c = c->unext) {
            struct presence__membership *m = presence__membership_find(ch, c);
            if (m != NULL) {
                builder_visit(m, b);
            }
        }
        return;
    }
    for (size_t i = 0; i < ch->members.nslots; i++) {
        struct presence__membership *m = ch->members.slots[i];
        if (m != NULL && m->client->user == user) {
            builder_visit(m, b);
        }
    }
}

int presence_user_connections(presence_registry *reg, const char *channel,
                              const char *user_id, presence_snapshot **out)
{
    if (out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    struct presence__user *user;
    int rc = lock_user_read(reg, channel, user_id, &ref, &user);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__channel *ch = ref.ch;
    size_t len = ref.len;
    bool any = ch != NULL && user != NULL &&
               presence__usercount_get(&ch->users, user) > 0;
    struct builder b = {0};
    b.shared_channel = channel;
    if (any) {
        visit_user_members(ch, user, &b);
    }
    presence_snapshot *snap;
    rc = snapshot_alloc(reg, &b, len + 1, &snap);
    if (rc == PRESENCE_OK) {
        b.shared_channel = put_string(&b, channel, len);
        b.filling = true;
        b.count = 0;
        if (any) {
            visit_user_members(ch, user, &b);
        }
        snap->count = b.count;
        snap->seq = ch != NULL ? ch->seq : 0;
        snap->stats = channel_stats(ch);
        *out = snap;
    }
    presence__unlock(reg);
    return rc;
}

/* ---- a client's channels ------------------------------------------------ */

int presence_client_channels(presence_registry *reg, const char *client_id,
                             presence_snapshot **out)
{
    if (reg == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t len;
    int rc = presence__check_name(client_id, reg->limits.client_id_max, false,
                                  &len);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    uint64_t hash = presence__hash64(reg->seed, client_id, len);
    presence__lock(reg);
    struct presence__client *client =
        presence__client_find(reg, client_id, len, hash);
    if (client == NULL) {
        presence__unlock(reg);
        return PRESENCE_ERR_NOT_FOUND;
    }
    struct builder b = {0};
    for (int pass = 0; pass < 2; pass++) {
        for (struct presence__membership *m = client->memberships; m != NULL;
             m = m->cnext) {
            builder_visit(m, &b);
        }
        if (pass == 0) {
            presence_snapshot *snap;
            rc = snapshot_alloc(reg, &b, 0, &snap);
            if (rc != PRESENCE_OK) {
                break;
            }
            *out = snap;
            b.filling = true;
            b.count = 0;
        }
    }
    if (rc == PRESENCE_OK) {
        (*out)->count = b.count;
    }
    presence__unlock(reg);
    return rc;
}

/* ---- the channel list --------------------------------------------------- */

static bool in_namespace(const struct presence__channel *ch, const char *ns,
                         size_t ns_len)
{
    return ns == NULL || (ch->ns->name_len == ns_len &&
                          memcmp(ch->ns->name, ns, ns_len) == 0);
}

void presence_channel_list_free(presence_channel_list *list)
{
    if (list == NULL) {
        return;
    }
    struct channel_list_block *block =
        (struct channel_list_block *)((char *)list -
                                      offsetof(struct channel_list_block,
                                               list));
    block->alloc.free_fn(block, block->size, block->alloc.user_data);
}

int presence_channels(presence_registry *reg, const char *namespace_name,
                      presence_channel_list **out)
{
    if (reg == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t ns_len = namespace_name != NULL ? strlen(namespace_name) : 0;
    presence__lock(reg);
    size_t count = 0;
    size_t bytes = 0;
    size_t nslots = presence__index_slots(&reg->channels);
    for (size_t k = 0; k < nslots; k++) {
        const struct presence__channel *ch = presence__index_at(&reg->channels, k);
        if (ch != NULL && in_namespace(ch, namespace_name, ns_len)) {
            count++;
            bytes += ch->name_len + 1;
        }
    }
    size_t head = sizeof(struct channel_list_block);
    size_t align = alignof(presence_channel_entry);
    head = (head + align - 1) / align * align;
    size_t array = presence__mul_size(count, sizeof(presence_channel_entry));
    size_t size = presence__add_size(presence__add_size(head, array), bytes);
    struct channel_list_block *block = presence__malloc(reg, size);
    if (block == NULL) {
        presence__unlock(reg);
        return PRESENCE_ERR_NOMEM;
    }
    memset(block, 0, sizeof *block);
    block->alloc = reg->alloc;
    block->size = size;
    presence_channel_entry *entries =
        (presence_channel_entry *)((char *)block + head);
    char *next = (char *)entries + array;
    size_t i = 0;
    for (size_t k = 0; k < nslots; k++) {
        const struct presence__channel *ch = presence__index_at(&reg->channels, k);
        if (ch != NULL && in_namespace(ch, namespace_name, ns_len)) {
            memcpy(next, ch->name, ch->name_len + 1);
            entries[i].channel = next;
            entries[i].stats = channel_stats(ch);
            entries[i].seq = ch->seq;
            next += ch->name_len + 1;
            i++;
        }
    }
    block->list.count = count;
    block->list.channels = count > 0 ? entries : NULL;
    presence__unlock(reg);
    *out = &block->list;
    return PRESENCE_OK;
}
