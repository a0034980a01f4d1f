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

void presence__channels_init(presence_registry *reg)
{
    presence__index_init(&reg->channels,
                         offsetof(struct presence__channel, name),
                         offsetof(struct presence__channel, name_len));
}

/* A new, empty channel; presence__index_prepare must have succeeded. */
static struct presence__channel *channel_create(presence_registry *reg,
                                                const struct presence__chref *ref)
{
    struct presence__channel *ch = presence__malloc(reg, channel_size(ref->len));
    if (ch == NULL) {
        return NULL;
    }
    memset(ch, 0, sizeof *ch);
    ch->hash = ref->hash;
    ch->ns = ref->ns;
    presence__memberset_init(&ch->members);
    presence__usercount_init(&ch->users);
    memcpy(ch->name, ref->name, ref->len);
    ch->name[ref->len] = '\0';
    ch->name_len = ref->len;
    presence__index_insert(&reg->channels, ch->hash, ch);
    ch->live = true;
    return ch;
}

/* The channel has no member left: out of the table, and freed once no
 * queued event names it. */
static void channel_retire(presence_registry *reg,
                           struct presence__channel *ch)
{
    presence__index_remove(reg, &reg->channels, ch->hash, ch);
    ch->live = false;
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

size_t presence__membership_bytes(const struct presence__membership *m)
{
    const struct presence__client *c = m->client;
    return c->id_len + 1 + c->user->id_len + 1 + c->conn_info_len +
           (m->chan_info != NULL ? m->chan_info->len : 0);
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
    ch->member_bytes -= presence__membership_bytes(m);
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
    /* Queued events are gone, so no channel outlives this. */
    for (size_t i = 0; i < presence__index_slots(&reg->channels); i++) {
        struct presence__channel *ch = presence__index_at(&reg->channels, i);
        if (ch == NULL) {
            continue;
        }
        for (size_t j = 0; j < ch->members.nslots; j++) {
            if (ch->members.slots[j] != NULL) {
                membership_free(reg, ch->members.slots[j]);
            }
        }
        presence__memberset_free(reg, &ch->members);
        presence__usercount_free(reg, &ch->users);
        presence__free(reg, ch, channel_size(ch->name_len));
    }
    presence__index_free(reg, &reg->channels);
}

void presence__namespace_drain(presence_registry *reg,
                               struct presence__namespace *ns)
{
    /* Closing a channel removes it from the index, which moves later
     * entries back into its slot (so stay on it) or, when the index
     * shrinks, everywhere (so start again: other namespaces' channels are
     * merely visited twice). */
    const void *slots = reg->channels.slots;
    size_t i = 0;
    while (i < presence__index_slots(&reg->channels)) {
        struct presence__channel *ch = presence__index_at(&reg->channels, i);
        if (ch == NULL || ch->ns != ns) {
            i++;
            continue;
        }
        uint64_t cursor = 0;
        presence__channel_drain(reg, ch, SIZE_MAX, PRESENCE_LEAVE_CLOSED,
                                &cursor);
        if (reg->channels.slots != slots) {
            slots = reg->channels.slots;
            i = 0;
        }
    }
}

size_t presence__channel_drain(presence_registry *reg,
                               struct presence__channel *ch, size_t max,
                               presence_leave_reason reason, uint64_t *cursor)
{
    size_t n = 0;
    while (n < max) {
        struct presence__membership *m =
            presence__memberset_lower_bound(&ch->members, *cursor);
        if (m == NULL) {
            break;
        }
        *cursor = m->client->hash;
        /* The last removal frees the channel: decide before it. */
        bool last = ch->members.count == 1;
        presence__membership_remove(reg, m, reason);
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

/* What a call names: a channel and a client, checked and hashed before the
 * lock is taken, then looked up under it. */
struct target {
    struct presence__chref chan;
    const char *client_id;
    size_t client_len;
    uint64_t client_hash;
    struct presence__client *client;   /* NULL if unknown */
    struct presence__membership *m;    /* NULL if not a member */
};

static int target_check(const presence_registry *reg, const char *channel,
                        const char *client_id, struct target *t)
{
    int rc = presence__channel_check(reg, channel, &t->chan);
    if (rc == PRESENCE_OK) {
        rc = check_client_id(reg, client_id, &t->client_len);
    }
    if (rc == PRESENCE_OK) {
        t->client_id = client_id;
        t->client_hash = presence__hash64(reg->seed, client_id, t->client_len);
    }
    return rc;
}

/* Lock held. */
static int target_lookup(presence_registry *reg, struct target *t)
{
    int rc = presence__channel_lookup(reg, &t->chan);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    t->client = presence__client_find(reg, t->client_id, t->client_len,
                                      t->client_hash);
    t->m = t->chan.ch != NULL && t->client != NULL
               ? presence__membership_find(t->chan.ch, t->client)
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
        m->channel->member_bytes -= presence__membership_bytes(m);
        presence__blob_unref(reg, m->chan_info);
        m->chan_info = blob;
        m->channel->member_bytes += presence__membership_bytes(m);
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
    size_t per_channel = member_limit(reg, t->chan.ns);
    if (t->chan.ch != NULL && per_channel != 0 &&
        t->chan.ch->members.count >= per_channel) {
        return PRESENCE_ERR_CHANNEL_MEMBER_LIMIT;
    }
    if (t->chan.ch == NULL && reg->limits.channels_max != 0 &&
        reg->channels.count >= reg->limits.channels_max) {
        return PRESENCE_ERR_CHANNEL_LIMIT;
    }
    return PRESENCE_OK;
}

struct join_args {
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
    if (rc == PRESENCE_OK) {
        rc = presence__events_reserve(reg, 2);
    }
    if (rc == PRESENCE_OK && t->chan.ch == NULL) {
        rc = presence__index_prepare(reg, &reg->channels);
    }
    struct presence__blob *blob = NULL;
    if (rc == PRESENCE_OK) {
        rc = presence__blob_new(reg, a->chan_info, a->chan_info_len, &blob);
    }
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__membership *m = presence__malloc(reg, sizeof *m);
    bool new_channel = t->chan.ch == NULL;
    bool new_client = false;
    if (m == NULL) {
        rc = PRESENCE_ERR_NOMEM;
        goto fail_blob;
    }
    if (new_channel) {
        t->chan.ch = channel_create(reg, &t->chan);
        if (t->chan.ch == NULL) {
            rc = PRESENCE_ERR_NOMEM;
            goto fail_membership;
        }
    }
    struct presence__channel *ch = t->chan.ch;
    rc = presence__memberset_prepare(reg, &ch->members, t->client_hash);
    if (rc == PRESENCE_OK) {
        rc = presence__usercount_prepare(reg, &ch->users);
    }
    if (rc == PRESENCE_OK && t->client == NULL) {
        rc = presence__client_get(reg, t->client_id, t->client_len,
                                  t->client_hash, a->user_id, a->user_len,
                                  a->conn_info, a->conn_info_len, &t->client,
                                  &new_client);
    }
    if (rc != PRESENCE_OK) {
        goto fail_channel;
    }

    /* Nothing can fail from here on. */
    int64_t now = presence__now(reg);
    memset(m, 0, sizeof *m);
    m->client = t->client;
    m->channel = ch;
    m->chan_info = blob;
    m->joined_at_ms = now;
    m->touched_at_ms = now;
    m->cnext = t->client->memberships;
    if (m->cnext != NULL) {
        m->cnext->cprev = m;
    }
    t->client->memberships = m;
    t->client->channel_count++;
    presence__memberset_insert(&ch->members, m);
    ch->member_bytes += presence__membership_bytes(m);
    bool first_of_user =
        presence__usercount_inc(&ch->users, t->client->user) == 1;
    presence__touch_append(ch->ns, m);
    reg->membership_count++;
    ch->seq++;
    presence__events_push(reg, ch, m, PRESENCE_EVENT_JOIN,
                          PRESENCE_LEAVE_NONE, first_of_user);
    return PRESENCE_OK;

fail_channel:
    if (new_channel) {
        channel_retire(reg, t->chan.ch);
        t->chan.ch = NULL;
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
    struct join_args a = {user_id != NULL ? user_id : "", 0, conn_info,
                          conn_info_len, chan_info, chan_info_len};
    struct target t;
    int rc = target_check(reg, channel, client_id, &t);
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
    rc = target_lookup(reg, &t);
    if (rc == PRESENCE_OK && !t.chan.ns->options.presence) {
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
    int rc = target_check(reg, channel, client_id, t);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__lock(reg);
    rc = target_lookup(reg, t);
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
    uint64_t hash = presence__hash64(reg->seed, client_id, len);
    presence__lock(reg);
    *out = presence__client_find(reg, client_id, len, hash);
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
    if (rc == PRESENCE_ERR_NOT_FOUND) {
        if (left != NULL) {
            *left = 0;
        }
        return PRESENCE_OK; /* in no channel: nothing to leave */
    }
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
    struct presence__chref ref;
    int rc = presence__channel_check(reg, channel, &ref);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    size_t done = 0;
    presence__lock(reg);
    rc = presence__channel_lookup(reg, &ref);
    /* Members leave in hash order, from a cursor: whoever was there when
     * the close began leaves, and a join that lands between batches
     * leaves too if the cursor has not passed its place yet. */
    uint64_t cursor = 0;
    struct presence__channel *ch = ref.ch;
    while (rc == PRESENCE_OK && ch != NULL) {
        size_t batch = presence__events_room(reg) / 2;
        size_t n = presence__channel_drain(reg, ch, batch,
                                           PRESENCE_LEAVE_CLOSED, &cursor);
        done += n;
        if (n < batch) {
            break; /* it reached the end: the channel may be gone */
        }
        rc = ensure_event_room(reg, 2);
        /* That may have released the lock: look the channel up again. */
        ch = presence__index_find(&reg->channels, ref.hash, ref.name,
                                  ref.len);
    }
    presence__unlock(reg);
    presence__events_dispatch(reg);
    if (removed != NULL) {
        *removed = done;
    }
    return rc;
}

/* Whether the namespace's least recently touched membership expires now. */
static bool expirable(const struct presence__namespace *ns, int64_t now_ms)
{
    const struct presence__membership *m = ns->touch_head;
    return m != NULL && presence__deadline(ns, m) <= now_ms;
}

int presence_expire(presence_registry *reg, int64_t now_ms, size_t *expired)
{
    if (reg == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t done = 0;
    int rc = PRESENCE_OK;
    presence__lock(reg);
    /* At most as many as there were when the call began: a callback that
     * rejoins expired clients cannot keep it running. */
    size_t budget = reg->membership_count;
    for (struct presence__namespace *ns = reg->namespaces;
         ns != NULL && rc == PRESENCE_OK; ns = ns->hh.next) {
        while (done < budget) {
            if (!expirable(ns, now_ms)) {
                break;
            }
            rc = ensure_event_room(reg, 2);
            if (rc != PRESENCE_OK) {
                break;
            }
            /* Re-read: the lock may have been released. */
            if (!expirable(ns, now_ms)) {
                break;
            }
            presence__membership_remove(reg, ns->touch_head,
                                        PRESENCE_LEAVE_EXPIRED);
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
