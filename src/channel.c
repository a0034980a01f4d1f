/*
 * Channels and memberships: join, leave, disconnect, update, touch, close.
 *
 * Every change follows the same shape: validate, take the lock, find what
 * is needed, make every allocation the change needs (event room included),
 * and only then change the structures, so that a failure leaves the
 * registry as it was. Events are queued under the lock and delivered after
 * it is released.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "internal.h"

static size_t channel_size(size_t name_len)
{
    return sizeof(struct presence__channel) + name_len + 1;
}

struct presence__channel *presence__channel_find(presence_registry *reg,
                                                 const char *name, size_t len)
{
    struct presence__channel *ch = NULL;
    HASH_FIND(hh, reg->channels, name, len, ch);
    return ch;
}

static int channel_create(presence_registry *reg, const char *name,
                          size_t len, struct presence__namespace *ns,
                          struct presence__channel **out)
{
    struct presence__channel *ch = presence__malloc(reg, channel_size(len));
    if (ch == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(ch, 0, sizeof *ch);
    ch->ns = ns;
    presence__memberset_init(&ch->members);
    presence__usercount_init(&ch->users);
    memcpy(ch->name, name, len);
    ch->name[len] = '\0';
    ch->name_len = len;
    HASH_ADD(hh, reg->channels, name, len, ch);
    if (!PRESENCE_HASH_ADDED(ch)) {
        presence__free(reg, ch, channel_size(len));
        return PRESENCE_ERR_NOMEM;
    }
    ch->live = true;
    reg->channel_count++;
    *out = ch;
    return PRESENCE_OK;
}

/* The channel has no member left: out of the table, and freed once no
 * queued event names it. */
static void channel_retire(presence_registry *reg,
                           struct presence__channel *ch)
{
    HASH_DEL(reg->channels, ch);
    ch->live = false;
    reg->channel_count--;
    presence__memberset_free(reg, &ch->members);
    presence__usercount_free(reg, &ch->users);
    if (ch->refs == 0) {
        presence__free(reg, ch, channel_size(ch->name_len));
    }
}

void presence__channel_unref(presence_registry *reg,
                             struct presence__channel *ch)
{
    if (--ch->refs == 0 && !ch->live) {
        presence__free(reg, ch, channel_size(ch->name_len));
    }
}

struct presence__membership *
presence__membership_find(struct presence__channel *ch,
                          const struct presence__client *client)
{
    return presence__memberset_find(&ch->members, client);
}

static void membership_free(presence_registry *reg,
                            struct presence__membership *m)
{
    presence__blob_unref(reg, m->chan_info);
    presence__free(reg, m, sizeof *m);
}

void presence__membership_remove(presence_registry *reg,
                                 struct presence__membership *m,
                                 presence_leave_reason reason)
{
    struct presence__channel *ch = m->channel;
    struct presence__client *client = m->client;

    presence__memberset_remove(reg, &ch->members, m);
    bool last_of_user =
        presence__usercount_dec(reg, &ch->users, client->user) == 0;
    presence__touch_unlink(ch->ns, m);
    if (m->cprev != NULL) {
        m->cprev->cnext = m->cnext;
    } else {
        client->memberships = m->cnext;
    }
    if (m->cnext != NULL) {
        m->cnext->cprev = m->cprev;
    }
    client->channel_count--;
    reg->membership_count--;
    ch->seq++;
    presence__events_push(reg, ch, m, PRESENCE_EVENT_LEAVE, reason,
                          last_of_user);
    membership_free(reg, m);
    if (ch->members.count == 0) {
        channel_retire(reg, ch);
    }
    if (client->channel_count == 0) {
        presence__client_retire(reg, client);
    }
}

void presence__channels_free(presence_registry *reg)
{
    struct presence__channel *ch, *tmp;
    HASH_ITER(hh, reg->channels, ch, tmp)
    {
        struct presence__memberset_pos pos = {NULL, 0};
        struct presence__membership *m;
        while ((m = presence__memberset_first(&ch->members, &pos)) != NULL) {
            presence__memberset_remove(reg, &ch->members, m);
            membership_free(reg, m);
        }
        channel_retire(reg, ch);
    }
}

size_t presence__channel_drain(presence_registry *reg,
                               struct presence__channel *ch, size_t max,
                               presence_leave_reason reason)
{
    struct presence__memberset_pos pos = {NULL, 0};
    size_t n = 0;
    while (n < max) {
        /* The last removal may free the channel: decide before it. */
        bool last = ch->members.count == 1;
        presence__membership_remove(
            reg, presence__memberset_first(&ch->members, &pos), reason);
        n++;
        if (last) {
            break;
        }
    }
    return n;
}

/* ---- argument checks shared by the entry points ------------------------- */

static int check_info(const void *data, size_t len, size_t max)
{
    if (data == NULL && len > 0) {
        return PRESENCE_ERR_INVALID;
    }
    return len > max ? PRESENCE_ERR_TOO_LONG : PRESENCE_OK;
}

static int check_client_id(const presence_registry *reg, const char *id,
                           size_t *len)
{
    return presence__check_name(id, reg->limits.client_id_max, false, len);
}

/*
 * With the lock held: the channel (NULL if it has no member), its
 * namespace, and the client (NULL if unknown).
 */
struct target {
    struct presence__namespace *ns;
    struct presence__channel *ch;
    struct presence__client *client;
    struct presence__membership *m;
    size_t channel_len;
    size_t client_len;
};

static int find_target(presence_registry *reg, const char *channel,
                       const char *client_id, struct target *t)
{
    int rc = presence__resolve_channel(reg, channel, &t->channel_len, &t->ns);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    t->ch = presence__channel_find(reg, channel, t->channel_len);
    t->client = presence__client_find(reg, client_id, t->client_len);
    t->m = t->ch != NULL && t->client != NULL
               ? presence__membership_find(t->ch, t->client)
               : NULL;
    return PRESENCE_OK;
}

/* Make room for `need` events, delivering queued ones first if this thread
 * may. Lock held on entry and exit (released while delivering). */
static int ensure_event_room(presence_registry *reg, size_t need)
{
    if (presence__events_room(reg) >= need) {
        return PRESENCE_OK;
    }
    if (!reg->dispatching) {
        presence__unlock(reg);
        presence__events_dispatch(reg);
        presence__lock(reg);
        if (presence__events_room(reg) >= need) {
            return PRESENCE_OK;
        }
    }
    return presence__events_reserve(reg, need);
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

static int join_update(presence_registry *reg, struct presence__membership *m,
                       const void *chan_info, size_t chan_info_len)
{
    bool changed = !presence__blob_equals(m->chan_info, chan_info,
                                          chan_info_len);
    if (changed) {
        int rc = presence__events_reserve(reg, 1);
        struct presence__blob *blob = NULL;
        if (rc == PRESENCE_OK) {
            rc = presence__blob_new(reg, chan_info, chan_info_len, &blob);
        }
        if (rc != PRESENCE_OK) {
            return rc;
        }
        presence__blob_unref(reg, m->chan_info);
        m->chan_info = blob;
        m->channel->seq++;
        presence__events_push(reg, m->channel, m, PRESENCE_EVENT_UPDATE,
                              PRESENCE_LEAVE_NONE, false);
    }
    return PRESENCE_OK;
}

static int join_check_limits(const presence_registry *reg,
                             const struct target *t)
{
    size_t per_client = reg->limits.channels_per_client_max;
    if (t->client != NULL && per_client != 0 &&
        t->client->channel_count >= per_client) {
        return PRESENCE_ERR_CLIENT_CHANNEL_LIMIT;
    }
    size_t per_channel = member_limit(reg, t->ns);
    if (t->ch != NULL && per_channel != 0 &&
        t->ch->members.count >= per_channel) {
        return PRESENCE_ERR_CHANNEL_MEMBER_LIMIT;
    }
    if (t->ch == NULL && reg->limits.channels_max != 0 &&
        reg->channel_count >= reg->limits.channels_max) {
        return PRESENCE_ERR_CHANNEL_LIMIT;
    }
    return PRESENCE_OK;
}

struct join_args {
    const char *channel;
    const char *client_id;
    const char *user_id;
    size_t user_len;
    const void *conn_info;
    size_t conn_info_len;
    const void *chan_info;
    size_t chan_info_len;
};

/* A new membership: every allocation first, then the change. */
static int join_new(presence_registry *reg, struct target *t,
                    const struct join_args *a)
{
    int rc = join_check_limits(reg, t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    rc = presence__events_reserve(reg, 2);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__blob *blob = NULL;
    rc = presence__blob_new(reg, a->chan_info, a->chan_info_len, &blob);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__membership *m = presence__malloc(reg, sizeof *m);
    bool new_channel = t->ch == NULL;
    bool new_client = false;
    if (m == NULL) {
        rc = PRESENCE_ERR_NOMEM;
        goto fail_blob;
    }
    if (new_channel) {
        rc = channel_create(reg, a->channel, t->channel_len, t->ns, &t->ch);
        if (rc != PRESENCE_OK) {
            goto fail_membership;
        }
    }
    uint64_t hash = t->client != NULL
                        ? t->client->hash
                        : presence__hash64(reg->seed, a->client_id,
                                           t->client_len);
    rc = presence__memberset_prepare(reg, &t->ch->members, hash);
    if (rc == PRESENCE_OK) {
        rc = presence__usercount_prepare(reg, &t->ch->users);
    }
    if (rc == PRESENCE_OK && t->client == NULL) {
        rc = presence__client_get(reg, a->client_id, t->client_len,
                                  a->user_id, a->user_len, a->conn_info,
                                  a->conn_info_len, &t->client, &new_client);
    }
    if (rc != PRESENCE_OK) {
        goto fail_channel;
    }

    /* Nothing can fail from here on. */
    int64_t now = presence__now(reg);
    memset(m, 0, sizeof *m);
    m->client = t->client;
    m->channel = t->ch;
    m->chan_info = blob;
    m->joined_at_ms = now;
    m->touched_at_ms = now;
    m->cnext = t->client->memberships;
    if (m->cnext != NULL) {
        m->cnext->cprev = m;
    }
    t->client->memberships = m;
    t->client->channel_count++;
    presence__memberset_insert(&t->ch->members, m);
    bool first_of_user =
        presence__usercount_inc(&t->ch->users, t->client->user) == 1;
    presence__touch_append(t->ns, m);
    reg->membership_count++;
    t->ch->seq++;
    presence__events_push(reg, t->ch, m, PRESENCE_EVENT_JOIN,
                          PRESENCE_LEAVE_NONE, first_of_user);
    return PRESENCE_OK;

fail_channel:
    if (new_channel) {
        channel_retire(reg, t->ch);
    }
fail_membership:
    presence__free(reg, m, sizeof *m);
fail_blob:
    presence__blob_unref(reg, blob);
    return rc;
}

int presence_join(presence_registry *reg, const char *channel,
                  const char *client_id, const char *user_id,
                  const void *conn_info, size_t conn_info_len,
                  const void *chan_info, size_t chan_info_len)
{
    if (reg == NULL || channel == NULL || client_id == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct join_args a = {channel,   client_id,     user_id != NULL ? user_id : "",
                          0,         conn_info,     conn_info_len,
                          chan_info, chan_info_len};
    struct target t;
    int rc = check_client_id(reg, client_id, &t.client_len);
    if (rc == PRESENCE_OK) {
        rc = presence__check_name(a.user_id, reg->limits.user_id_max, true,
                                  &a.user_len);
    }
    if (rc == PRESENCE_OK) {
        rc = check_info(conn_info, conn_info_len, reg->limits.conn_info_max);
    }
    if (rc == PRESENCE_OK) {
        rc = check_info(chan_info, chan_info_len, reg->limits.chan_info_max);
    }
    if (rc != PRESENCE_OK) {
        return rc;
    }

    presence__lock(reg);
    rc = find_target(reg, channel, client_id, &t);
    if (rc == PRESENCE_OK && !t.ns->options.presence) {
        rc = PRESENCE_ERR_NOT_AVAILABLE;
    }
    if (rc == PRESENCE_OK && t.client != NULL &&
        !presence__client_same(t.client, a.user_id, a.user_len, conn_info,
                               conn_info_len)) {
        /* An existing client must come back as the same connection. */
        rc = PRESENCE_ERR_CONFLICT;
    }
    if (rc == PRESENCE_OK) {
        if (t.m != NULL) {
            rc = join_update(reg, t.m, chan_info, chan_info_len);
            if (rc == PRESENCE_OK) {
                presence__touch_renew(reg, t.m);
            }
        } else {
            rc = join_new(reg, &t, &a);
        }
    }
    presence__unlock(reg);
    presence__events_dispatch(reg);
    return rc;
}

/* ---- leave, disconnect, update, touch ------------------------------------ */

/* Validate a (channel, client) pair and find its membership, lock held on
 * success. */
static int lock_membership(presence_registry *reg, const char *channel,
                           const char *client_id, struct target *t)
{
    if (reg == NULL || channel == NULL || client_id == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    int rc = check_client_id(reg, client_id, &t->client_len);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__lock(reg);
    rc = find_target(reg, channel, client_id, t);
    if (rc == PRESENCE_OK && t->m == NULL) {
        rc = PRESENCE_ERR_NOT_FOUND;
    }
    if (rc != PRESENCE_OK) {
        presence__unlock(reg);
    }
    return rc;
}

int presence_leave(presence_registry *reg, const char *channel,
                   const char *client_id)
{
    struct target t;
    int rc = lock_membership(reg, channel, client_id, &t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    rc = presence__events_reserve(reg, 2);
    if (rc == PRESENCE_OK) {
        presence__membership_remove(reg, t.m, PRESENCE_LEAVE_EXPLICIT);
    }
    presence__unlock(reg);
    presence__events_dispatch(reg);
    return rc;
}

int presence_update(presence_registry *reg, const char *channel,
                    const char *client_id, const void *chan_info,
                    size_t chan_info_len)
{
    if (reg == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    int rc = check_info(chan_info, chan_info_len, reg->limits.chan_info_max);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct target t;
    rc = lock_membership(reg, channel, client_id, &t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    rc = join_update(reg, t.m, chan_info, chan_info_len);
    presence__unlock(reg);
    presence__events_dispatch(reg);
    return rc;
}

int presence_touch(presence_registry *reg, const char *channel,
                   const char *client_id)
{
    struct target t;
    int rc = lock_membership(reg, channel, client_id, &t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__touch_renew(reg, t.m);
    presence__unlock(reg);
    return PRESENCE_OK;
}

/* Validate a client id and find the client, lock held on success. */
static int lock_client(presence_registry *reg, const char *client_id,
                       struct presence__client **out)
{
    if (reg == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t len;
    int rc = check_client_id(reg, client_id, &len);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__lock(reg);
    *out = presence__client_find(reg, client_id, len);
    if (*out == NULL) {
        presence__unlock(reg);
        return PRESENCE_ERR_NOT_FOUND;
    }
    return PRESENCE_OK;
}

int presence_touch_client(presence_registry *reg, const char *client_id)
{
    struct presence__client *client;
    int rc = lock_client(reg, client_id, &client);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    for (struct presence__membership *m = client->memberships; m != NULL;
         m = m->cnext) {
        presence__touch_renew(reg, m);
    }
    presence__unlock(reg);
    return PRESENCE_OK;
}

int presence_disconnect(presence_registry *reg, const char *client_id,
                        size_t *left)
{
    struct presence__client *client;
    int rc = lock_client(reg, client_id, &client);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    size_t n = client->channel_count;
    rc = presence__events_reserve(reg, presence__mul_size(n, 2));
    if (rc == PRESENCE_OK) {
        /* The last removal may free the client: count, don't test it. */
        for (size_t i = 0; i < n; i++) {
            presence__membership_remove(reg, client->memberships,
                                        PRESENCE_LEAVE_DISCONNECT);
        }
        if (left != NULL) {
            *left = n;
        }
    }
    presence__unlock(reg);
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
    size_t done = 0;
    size_t len;
    struct presence__namespace *ns;
    presence__lock(reg);
    int rc = presence__resolve_channel(reg, channel, &len, &ns);
    struct presence__channel *ch =
        rc == PRESENCE_OK ? presence__channel_find(reg, channel, len) : NULL;
    /* Remove at most the members there were at the start, so that joins
     * racing with the close cannot keep it running. */
    size_t total = ch != NULL ? ch->members.count : 0;
    while (rc == PRESENCE_OK && ch != NULL && done < total) {
        rc = ensure_event_room(reg, 2);
        if (rc != PRESENCE_OK) {
            break;
        }
        /* ensure_event_room may have released the lock. */
        ch = presence__channel_find(reg, channel, len);
        if (ch == NULL) {
            break;
        }
        size_t batch = presence__events_room(reg) / 2;
        if (batch > total - done) {
            batch = total - done;
        }
        done += presence__channel_drain(reg, ch, batch,
                                        PRESENCE_LEAVE_CLOSED);
        ch = presence__channel_find(reg, channel, len);
    }
    presence__unlock(reg);
    presence__events_dispatch(reg);
    if (removed != NULL) {
        *removed = done;
    }
    return rc;
}

int presence_expire(presence_registry *reg, int64_t now_ms, size_t *expired)
{
    if (reg == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t done = 0;
    int rc = PRESENCE_OK;
    presence__lock(reg);
    for (struct presence__namespace *ns = reg->namespaces;
         ns != NULL && rc == PRESENCE_OK; ns = ns->hh.next) {
        for (;;) {
            struct presence__membership *m = ns->touch_head;
            if (presence__deadline(ns, m) > now_ms) {
                break;
            }
            rc = ensure_event_room(reg, 2);
            if (rc != PRESENCE_OK) {
                break;
            }
            /* Re-read: the lock may have been released. */
            m = ns->touch_head;
            if (presence__deadline(ns, m) > now_ms) {
                break;
            }
            presence__membership_remove(reg, m, PRESENCE_LEAVE_EXPIRED);
            done++;
        }
    }
    presence__unlock(reg);
    presence__events_dispatch(reg);
    if (expired != NULL) {
        *expired = done;
    }
    return rc;
}
