/*
 * Queries: presence snapshots (whole or paged), stats, a client's channels,
 * a user's connections, the channel list.
 *
 * A snapshot is one allocation: a private header (the allocator that frees
 * it), the public struct, the member array and the bytes the members point
 * to. It is measured and filled while the channel's shard is held, so it
 * is one instant's view of the channel.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdalign.h>
#include <string.h>

#include "domain/domain.h"
#include "base/bytes.h"

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
    presence_registry *reg;       /* to find a membership's channel */
    bool filling;
    bool overflow;                /* filling found more than was measured */
    size_t count;
    size_t capacity;              /* members measured */
    size_t bytes;                 /* string and info bytes */
    const char *shared_channel;   /* one copy for single-channel snapshots */
    presence_member *members;
    char *next;                   /* where the next bytes go */
    char *end;
};

static size_t member_bytes(presence_registry *reg,
                           const struct presence__membership *m,
                           bool with_channel)
{
    size_t n = presence__membership_bytes(presence__membership_shard(reg, m), m);
    return with_channel
               ? n + presence__membership_channel(reg, m)->name_len + 1
               : n;
}

static const char *put_string(struct builder *b, const char *s, size_t len)
{
    char *at = b->next;
    presence__bytes_copy(at, s, len);
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
    presence__bytes_copy(at, data, len);
    b->next += len;
    return at;
}

void presence__member_put_client(presence_member *out,
                                 const struct presence__client *c,
                                 char **next)
{
    /* Read before the copy, which may alias anything and would have
     * every field loaded again. */
    size_t id_len = c->id_len;
    uint32_t word = presence__client_word(c);
    size_t conn_info_len = word & PRESENCE__CLIENT_CONN_INFO_MAX;
    size_t n = c->snapshot_bytes;
    bool flagged = (word & PRESENCE__CLIENT_FLAGS) != 0;
    /* The record holds the three strings side by side as an entry does,
     * each with its NUL but the conn_info: one copy. */
    char *at = *next;
    presence__bytes_copy(at, c->id, n);
    *next += n;
    out->client_id = at;
    out->conn_info = conn_info_len > 0 ? at + id_len + 1 : NULL;
    out->conn_info_len = conn_info_len;
    out->user_id = at + id_len + 1 + conn_info_len;
    out->node_id = at + n - 1; /* "" for a local client: the user id's end */
    out->app = NULL;
    if (flagged) { /* a remote client's node, or a handle's pointer */
        const struct presence__node *node = presence__client_node(c);
        if (node != NULL) {
            char *id = *next;
            presence__bytes_copy(id, node->id, node->id_len + 1);
            *next += node->id_len + 1;
            out->node_id = id;
        }
        out->app = presence__client_app(c);
    }
}

static void builder_visit(struct presence__membership *m, void *ctx)
{
    struct builder *b = ctx;
    if (!b->filling) {
        b->count++;
        b->bytes += member_bytes(b->reg, m, b->shared_channel == NULL);
        return;
    }
    /* Lists that span channels are measured and filled under different
     * locks: a membership may have changed in between. One channel's is
     * measured under the lock it is filled under: it fits. */
    if (b->shared_channel == NULL &&
        (b->overflow || b->count == b->capacity ||
         member_bytes(b->reg, m, true) > (size_t)(b->end - b->next))) {
        b->overflow = true;
        return;
    }
    const struct presence__client *c = m->client;
    presence_member *out = &b->members[b->count++];
    if (b->shared_channel != NULL) {
        out->channel = b->shared_channel;
    } else {
        const struct presence__channel *ch =
            presence__membership_channel(b->reg, m);
        out->channel = put_string(b, ch->name, ch->name_len);
    }
    presence__member_put_client(out, c, &b->next);
    out->chan_info = NULL;
    out->chan_info_len = 0;
    if (presence__membership_has_chan_info(m)) {
        const struct presence__blob *chan_info = presence__membership_chan_info(
            presence__membership_shard(b->reg, m), m);
        out->chan_info = put_bytes(b, chan_info->data, chan_info->len);
        out->chan_info_len = chan_info->len;
    }
    out->joined_at_ms = presence__membership_joined(m);
    out->touched_at_ms = presence__membership_touched(m);
    out->in_grace = presence__membership_in_grace(m);
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
    struct snapshot_block *block = presence__malloc(&reg->alloc, size);
    if (block == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(block, 0, sizeof *block);
    block->alloc = reg->alloc;
    block->size = size;
    b->members = (presence_member *)((char *)block + head);
    b->next = (char *)b->members + array;
    b->end = (char *)block + size;
    b->capacity = b->count;
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

/* A requester, checked and hashed; `known` is its user when the caller
 * gave none and the registry knows the client (a reference is held), and
 * user_key its user's key when the client is live (for the membership
 * check: a member set is searched by user). */
struct asker {
    const presence_requester *req;
    size_t id_len;
    uint64_t id_hash;
    struct presence__user *known;
    bool live;
    uint32_t user_key;
};

static const presence_requester trusted_requester = {"", NULL};

const presence_requester *presence_trusted(void)
{
    return &trusted_requester;
}

int presence__requester_resolve(const presence_requester **req)
{
    if (*req == NULL) {
        return PRESENCE_ERR_INVALID; /* trust is asked for, not assumed */
    }
    if (*req == &trusted_requester) {
        *req = NULL; /* inside, NULL is the trusted read */
    }
    return PRESENCE_OK;
}

static int asker_check(presence_registry *reg, const presence_requester *req,
                       struct asker *a)
{
    a->req = req;
    a->known = NULL;
    a->live = false;
    if (req == NULL) {
        return PRESENCE_OK;
    }
    if (req->client_id == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t user_len;
    int rc = presence__check_hash_name(reg, req->client_id,
                                       reg->limits.client_id_max, false,
                                       &a->id_len, &a->id_hash);
    if (rc == PRESENCE_OK && req->user_id != NULL) {
        rc = presence__check_name(req->user_id, reg->limits.user_id_max, true,
                                  &user_len);
    }
    return rc;
}

/* Find the requester's client: its user key, and its user if it gave
 * none. Client shards come before channel shards, so this runs before the
 * channel's shard is taken; the membership is checked under the channel's
 * by id and user key, so a client that goes in between is not taken for
 * another of the same id. */
static void asker_find_client(presence_registry *reg, struct asker *a)
{
    if (a->req == NULL) {
        return;
    }
    struct presence__cshard *cs = presence__cshard_of(reg, a->id_hash);
    presence__mutex_lock(reg, &cs->lock);
    struct presence__client *who =
        presence__client_find(cs, a->req->client_id, a->id_len, a->id_hash);
    if (who != NULL) {
        a->live = true;
        a->user_key = who->user_key;
    }
    if (who != NULL && a->req->user_id == NULL) {
        a->known = who->user;
        presence__ref_take(presence__threaded(reg), &a->known->refs);
    }
    presence__mutex_unlock(reg, &cs->lock);
}

/* The access check, the channel's shard held. */
static bool asker_allowed(presence_registry *reg, const struct asker *a,
                          const struct presence__chref *ref)
{
    const presence_requester *req = a->req;
    presence_access access = {
        .channel = ref->name,
        .namespace_name = ref->ns->name,
        .client_id = req->client_id,
        .user_id = req->user_id != NULL ? req->user_id
                   : a->known != NULL   ? a->known->id
                                        : NULL,
        .is_member = ref->ch != NULL && a->live &&
                     presence__membership_find_id(ref->ch, a->user_key,
                                                  req->client_id, a->id_len,
                                                  a->id_hash) != NULL,
    };
    return reg->access_check != NULL
               ? reg->access_check(&access, reg->access_user_data)
               : access.is_member;
}

/* The read's checks once its channel is named: the requester, then
 * under the channel's shard the lookup (by name, or the handle's record
 * when rec is not NULL), presence on, access. The shard is held on
 * success. */
static PRESENCE__ALWAYS_INLINE int
lock_read(presence_registry *reg, struct presence__channel *rec,
          const presence_requester *requester, struct presence__chref *ref)
{
    struct asker a;
    int rc = asker_check(reg, requester, &a);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    asker_find_client(reg, &a);
    presence__mutex_lock(reg, &ref->shard->lock);
    if (rec != NULL) {
        presence__chref_resolve(rec, ref);
    } else {
        rc = presence__channel_lookup(reg, ref);
    }
    if (rc == PRESENCE_OK && !ref->ns->options.presence) {
        rc = PRESENCE_ERR_NOT_AVAILABLE;
    }
    if (rc == PRESENCE_OK && requester != NULL && !asker_allowed(reg, &a, ref)) {
        rc = PRESENCE_ERR_DENIED;
    }
    if (a.known != NULL) {
        presence__user_unref(reg, a.known);
    }
    if (rc != PRESENCE_OK) {
        presence__mutex_unlock(reg, &ref->shard->lock);
    }
    return rc;
}

/* presence__lock_channel_read(), inlined into presence_stats: a call
 * costs it a tenth of its instructions. */
static PRESENCE__ALWAYS_INLINE int
lock_read_by_name(presence_registry *reg, const char *channel,
                  const presence_requester *requester,
                  struct presence__chref *ref)
{
    if (reg == NULL || channel == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    int rc = presence__channel_check(reg, channel, ref);
    return rc == PRESENCE_OK ? lock_read(reg, NULL, requester, ref) : rc;
}

int presence__lock_channel_read(presence_registry *reg, const char *channel,
                                const presence_requester *requester,
                                struct presence__chref *ref)
{
    return lock_read_by_name(reg, channel, requester, ref);
}

int presence__lock_channel_read_pinned(presence_registry *reg,
                                       struct presence__channel *rec,
                                       const presence_requester *requester,
                                       struct presence__chref *ref)
{
    presence__chref_of(reg, rec, ref);
    return lock_read(reg, rec, requester, ref);
}

/* Snapshot of members [cursor, limit) of a channel, its shard held. */
static int channel_snapshot(presence_registry *reg,
                            const struct presence__chref *ref,
                            uint64_t cursor, size_t limit,
                            presence_snapshot **out)
{
    const char *channel = ref->name;
    size_t len = ref->len;
    struct presence__channel *ch = ref->ch;
    struct builder b = {.reg = reg};
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
    snap->stats = presence__channel_stats(ch);
    snap->seq = snap->stats.seq;
    snap->epoch = snap->stats.epoch;
    snap->next_cursor = limit == SIZE_MAX ? 0 : next;
    *out = snap;
    return PRESENCE_OK;
}

PRESENCE__FLATTEN
int presence_query_page(presence_registry *reg, const char *channel,
                        const presence_requester *requester, uint64_t cursor,
                        size_t limit, presence_snapshot **out)
{
    if (out == NULL || limit == 0 ||
        presence__requester_resolve(&requester) != PRESENCE_OK) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    int rc = presence__lock_channel_read(reg, channel, requester, &ref);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    rc = channel_snapshot(reg, &ref, cursor, limit, out);
    presence__mutex_unlock(reg, &ref.shard->lock);
    return rc;
}

int presence_query(presence_registry *reg, const char *channel,
                   const presence_requester *requester,
                   presence_snapshot **out)
{
    return presence_query_page(reg, channel, requester, 0, SIZE_MAX, out);
}

/* Everything it calls is inlined (the name's check and hash, the
 * lookup): it is short enough that calls and their register saves were a
 * fifth of its instructions. */
PRESENCE__FLATTEN
int presence_stats(presence_registry *reg, const char *channel,
                   const presence_requester *requester,
                   presence_channel_stats *out)
{
    if (out == NULL ||
        presence__requester_resolve(&requester) != PRESENCE_OK) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    int rc = lock_read_by_name(reg, channel, requester, &ref);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    *out = presence__channel_stats(ref.ch);
    presence__mutex_unlock(reg, &ref.shard->lock);
    return PRESENCE_OK;
}

/* ---- a user in a channel ------------------------------------------------ */

/* The channel's shard and the user's shard are held on success; *user is
 * NULL for a user with no connection. */
/* A user id named by a call, checked and hashed (no lock needed). */
struct user_name {
    const char *id;
    size_t len;
    uint64_t hash;
};

static int user_check(presence_registry *reg, const char *user_id,
                      struct user_name *u)
{
    if (reg == NULL || user_id == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    u->id = user_id;
    return presence__check_hash_name(reg, user_id, reg->limits.user_id_max,
                                     true, &u->len, &u->hash);
}

/* Take the user's shard and find the user (NULL: no live client). */
static struct presence__user *user_lock_find(presence_registry *reg,
                                             const struct user_name *u,
                                             struct presence__ushard **us)
{
    *us = presence__ushard_of(reg, u->hash);
    presence__mutex_lock(reg, &(*us)->lock);
    return presence__index_find(&(*us)->users, u->hash, u->id, u->len);
}

static int lock_user_read(presence_registry *reg, const char *channel,
                          const char *user_id, struct presence__chref *ref,
                          struct presence__ushard **us,
                          struct presence__user **user)
{
    struct user_name u;
    int rc = user_check(reg, user_id, &u);
    if (rc == PRESENCE_OK) {
        rc = presence__lock_channel_read(reg, channel, NULL, ref);
    }
    if (rc == PRESENCE_OK) {
        *user = user_lock_find(reg, &u, us);
    }
    return rc;
}

static void unlock_user_read(presence_registry *reg,
                             const struct presence__chref *ref,
                             struct presence__ushard *us)
{
    presence__mutex_unlock(reg, &us->lock);
    presence__mutex_unlock(reg, &ref->shard->lock);
}

int presence_user_present(presence_registry *reg, const char *channel,
                          const char *user_id, size_t *connections)
{
    if (connections == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    struct presence__ushard *us;
    struct presence__user *user;
    int rc = lock_user_read(reg, channel, user_id, &ref, &us, &user);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    *connections = ref.ch != NULL && user != NULL
                       ? presence__memberset_user_count(
                             &ref.ch->members, user, presence__user_key(user))
                       : 0;
    unlock_user_read(reg, &ref, us);
    return PRESENCE_OK;
}

int presence_user_connections(presence_registry *reg, const char *channel,
                              const char *user_id, presence_snapshot **out)
{
    if (out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    struct presence__ushard *us;
    struct presence__user *user;
    int rc = lock_user_read(reg, channel, user_id, &ref, &us, &user);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__channel *ch = ref.ch;
    /* A user's members sit side by side in the member set. */
    bool any = ch != NULL && user != NULL;
    uint32_t user_key = any ? presence__user_key(user) : 0;
    struct builder b = {.reg = reg};
    b.shared_channel = ref.name;
    if (any) {
        presence__memberset_user_visit(&ch->members, user, user_key,
                                       builder_visit, &b);
    }
    presence_snapshot *snap;
    rc = snapshot_alloc(reg, &b, ref.len + 1, &snap);
    if (rc == PRESENCE_OK) {
        b.shared_channel = put_string(&b, ref.name, ref.len);
        b.filling = true;
        b.count = 0;
        if (any) {
            presence__memberset_user_visit(&ch->members, user, user_key,
                                           builder_visit, &b);
        }
        snap->count = b.count;
        snap->stats = presence__channel_stats(ch);
        snap->seq = snap->stats.seq;
        snap->epoch = snap->stats.epoch;
        *out = snap;
    }
    unlock_user_read(reg, &ref, us);
    return rc;
}

/* ---- a user everywhere ---------------------------------------------------- */

/* A client as an entry of a user-wide list: channel "", no chan_info, no
 * times. What it copies is presence__client_snapshot_bytes and the "". */
static void builder_client(const struct presence__client *c,
                           struct builder *b)
{
    size_t need = presence__client_snapshot_bytes(c) + 1;
    if (!b->filling) {
        b->count++;
        b->bytes += need;
        return;
    }
    presence_member *out = &b->members[b->count++];
    memset(out, 0, sizeof *out);
    out->channel = put_string(b, "", 0);
    presence__member_put_client(out, c, &b->next);
}

/* The user's shard held, and the user (NULL: none live) on success. */
static int lock_user(presence_registry *reg, const char *user_id,
                     struct presence__ushard **us, struct presence__user **user)
{
    struct user_name u;
    int rc = user_check(reg, user_id, &u);
    if (rc == PRESENCE_OK) {
        *user = user_lock_find(reg, &u, us);
    }
    return rc;
}

int presence_user_status(presence_registry *reg, const char *user_id,
                         size_t *connections)
{
    if (connections == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__ushard *us;
    struct presence__user *user;
    int rc = lock_user(reg, user_id, &us, &user);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    *connections = user != NULL ? user->clients : 0;
    presence__mutex_unlock(reg, &us->lock);
    return PRESENCE_OK;
}

int presence_user_clients(presence_registry *reg, const char *user_id,
                          presence_snapshot **out)
{
    if (out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__ushard *us;
    struct presence__user *user;
    int rc = lock_user(reg, user_id, &us, &user);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    /* The user's list of live clients is fixed while its shard is held,
     * and what an entry copies of a client never changes. */
    struct builder b = {.reg = reg};
    for (const struct presence__client *c = user ? user->first_client : NULL;
         c != NULL; c = c->unext) {
        builder_client(c, &b);
    }
    presence_snapshot *snap;
    rc = snapshot_alloc(reg, &b, 0, &snap);
    if (rc == PRESENCE_OK) {
        b.filling = true;
        b.count = 0;
        for (const struct presence__client *c =
                 user ? user->first_client : NULL;
             c != NULL; c = c->unext) {
            builder_client(c, &b);
        }
        snap->count = b.count;
        if (b.count == 0) {
            snap->members = NULL;
        }
        *out = snap;
    }
    presence__mutex_unlock(reg, &us->lock);
    return rc;
}

/* ---- a client's channels ------------------------------------------------ */

/* Visit every membership of a client, each under its channel's shard. */
static void visit_client(presence_registry *reg,
                         const struct presence__client *client,
                         struct builder *b)
{
    for (uint32_t ref = client->memberships; ref != PRESENCE__SLAB_NONE;) {
        struct presence__membership *m = presence__mref_get(reg, ref);
        struct presence__shard *hs = presence__membership_shard(reg, m);
        presence__mutex_lock(reg, &hs->lock);
        builder_visit(m, b);
        presence__mutex_unlock(reg, &hs->lock);
        ref = m->cnext;
    }
}

static void visit_one_client(presence_registry *reg, const void *client,
                             struct builder *b)
{
    visit_client(reg, client, b);
}

/*
 * A snapshot of what `visit` lists: measured, allocated at once, filled
 * by a second visit; if what changed in between no longer fits, it is
 * measured again.
 */
static int build_measured(presence_registry *reg,
                          void (*visit)(presence_registry *, const void *,
                                        struct builder *),
                          const void *what, presence_snapshot **out)
{
    for (;;) {
        struct builder b = {.reg = reg};
        visit(reg, what, &b);
        presence_snapshot *snap;
        int rc = snapshot_alloc(reg, &b, 0, &snap);
        if (rc != PRESENCE_OK) {
            return rc;
        }
        b.filling = true;
        b.count = 0;
        visit(reg, what, &b);
        if (!b.overflow) {
            snap->count = b.count;
            if (b.count == 0) {
                snap->members = NULL;
            }
            *out = snap;
            return PRESENCE_OK;
        }
        presence_snapshot_free(snap);
    }
}

int presence_client_channels(presence_registry *reg, const char *client_id,
                             presence_snapshot **out)
{
    if (reg == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t len;
    uint64_t hash;
    int rc = presence__check_hash_name(reg, client_id,
                                       reg->limits.client_id_max, false, &len,
                                       &hash);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__cshard *cs = presence__cshard_of(reg, hash);
    presence__mutex_lock(reg, &cs->lock);
    struct presence__client *client =
        presence__client_find(cs, client_id, len, hash);
    /* The client's list is fixed while its shard is held, but chan_info
     * may change between measuring and filling: then measure again. */
    rc = client != NULL && client->channel_count > 0
             ? build_measured(reg, visit_one_client, client, out)
             : PRESENCE_ERR_NOT_FOUND;
    presence__mutex_unlock(reg, &cs->lock);
    return rc;
}

/* ---- a node's memberships ------------------------------------------------ */

/* Visit the memberships of the node's clients (NULL: this registry's own),
 * one client shard at a time, each client under its shard. */
static void visit_node_clients(presence_registry *reg, const void *node,
                               struct builder *b)
{
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        struct presence__cshard *cs = &reg->cshards[s];
        presence__mutex_lock(reg, &cs->lock);
        const struct presence__index *idx = &cs->clients;
        for (size_t i = 0; i < presence__index_slots(idx); i++) {
            const struct presence__client *c = presence__index_at(idx, i);
            if (c != NULL && presence__client_node(c) == node) {
                visit_client(reg, c, b);
            }
        }
        presence__mutex_unlock(reg, &cs->lock);
    }
}

static void visit_nothing(presence_registry *reg, const void *what,
                          struct builder *b)
{
    (void)reg;
    (void)what;
    (void)b;
}

int presence_node_memberships(presence_registry *reg, const char *node_id,
                              presence_snapshot **out)
{
    if (reg == NULL || node_id == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__node *node = NULL;
    bool local = node_id[0] == '\0';
    if (!local) {
        struct presence__nodename name;
        int rc = presence__node_check(reg, node_id, &name);
        if (rc != PRESENCE_OK) {
            return rc;
        }
        /* The reference keeps the entry, and so the pointer that tells
         * the node's clients, for the walk. */
        node = presence__node_find(reg, &name);
    }
    /* Measured and filled in two walks, each client's shard taken anew
     * (an unknown node has no client: nothing to walk). */
    int rc = build_measured(reg, local || node != NULL ? visit_node_clients
                                                       : visit_nothing,
                            node, out);
    if (node != NULL) {
        presence__node_unref(reg, node);
    }
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

/* Visit every channel of the namespace (NULL: all); all shards held. */
static void each_channel(presence_registry *reg, const char *ns,
                         size_t ns_len,
                         void (*visit)(const struct presence__channel *ch,
                                       void *ctx),
                         void *ctx)
{
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        const struct presence__index *idx = &reg->shards[s].channels;
        for (size_t k = 0; k < presence__index_slots(idx); k++) {
            const struct presence__channel *ch = presence__index_at(idx, k);
            /* An idle one (pinned, no member) is no channel. */
            if (ch != NULL && ch->members.count > 0 &&
                in_namespace(ch, ns, ns_len)) {
                visit(ch, ctx);
            }
        }
    }
}

struct list_builder {
    size_t count;
    size_t bytes;
    presence_channel_entry *entries;
    char *next;
};

static void list_measure(const struct presence__channel *ch, void *ctx)
{
    struct list_builder *lb = ctx;
    lb->count++;
    lb->bytes += ch->name_len + 1;
}

static void list_fill(const struct presence__channel *ch, void *ctx)
{
    struct list_builder *lb = ctx;
    presence_channel_entry *e = &lb->entries[lb->count++];
    memcpy(lb->next, ch->name, ch->name_len + 1);
    e->channel = lb->next;
    e->stats = presence__channel_stats(ch);
    e->seq = ch->seq;
    lb->next += ch->name_len + 1;
}

int presence_channels(presence_registry *reg, const char *namespace_name,
                      presence_channel_list **out)
{
    if (reg == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t ns_len = namespace_name != NULL ? strlen(namespace_name) : 0;
    /* One instant's list: every shard at once (an admin query). */
    presence__lock_all_shards(reg);
    struct list_builder lb = {0};
    each_channel(reg, namespace_name, ns_len, list_measure, &lb);
    size_t head = sizeof(struct channel_list_block);
    size_t align = alignof(presence_channel_entry);
    head = (head + align - 1) / align * align;
    size_t array = presence__mul_size(lb.count, sizeof(presence_channel_entry));
    size_t size = presence__add_size(presence__add_size(head, array), lb.bytes);
    struct channel_list_block *block = presence__malloc(&reg->alloc, size);
    if (block == NULL) {
        presence__unlock_all_shards(reg);
        return PRESENCE_ERR_NOMEM;
    }
    memset(block, 0, sizeof *block);
    block->alloc = reg->alloc;
    block->size = size;
    size_t count = lb.count;
    lb.entries = (presence_channel_entry *)((char *)block + head);
    lb.next = (char *)lb.entries + array;
    lb.count = 0;
    each_channel(reg, namespace_name, ns_len, list_fill, &lb);
    presence__unlock_all_shards(reg);
    block->list.count = count;
    block->list.channels = count > 0 ? lb.entries : NULL;
    *out = &block->list;
    return PRESENCE_OK;
}
