/*
 * Coalesced diffs: a subscription's changes kept per channel as the net
 * change of each member over a window, delivered by presence_flush().
 *
 * Everything here runs on the thread that holds the dispatcher role
 * (events.c): recording as the dispatcher reaches the subscription for an
 * event, delivery in the flush pass. So a coalescer's state needs no lock
 * of its own; the subscription it belongs to is not freed while the
 * dispatcher stands on it, and the dispatcher never stands on it while it
 * is freed.
 *
 * Records hold references on the channel, client and chan_info they
 * name, as queued events do, so a diff reads their names and infos after
 * they are gone from the registry.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"

/* One member's net change in an open window. */
struct coalesce_member {
    UT_hash_handle hh; /* by client id: the key lives in key_client */
    struct presence__client *key_client; /* of its first change */
    struct presence__client *client;     /* of its last change */
    struct presence__blob *chan_info;    /* of its last change */
    /* When its first change was a leave, the client and chan_info it had
     * before the window are key_client and this. */
    struct presence__blob *before_info;
    int64_t time_ms;
    unsigned char reason;
    bool was_present;
    bool present;
    bool updated;
};

/* A channel's pending window, or its counts-only mode between windows. */
struct coalesce_chan {
    UT_hash_handle hh; /* by name; insertion order = windows' order */
    struct presence__channel *ch; /* its latest record (a reference) */
    uint64_t epoch; /* the life of its latest change */
    struct coalesce_member *members; /* uthash, in first-change order */
    size_t member_count;
    /* Where a diff's members are built: grown as members are recorded,
     * so that delivery never allocates. */
    presence_diff_member *out;
    size_t out_cap;
    uint64_t from_epoch;
    uint64_t from_seq;
    uint64_t seq;
    size_t num_clients;
    size_t num_users;
    int64_t first_time_ms;
    int64_t last_time_ms;
    int64_t due_ms;
    size_t joins;
    size_t leaves;
    size_t updates;
    bool pending;          /* a window is open */
    bool count_only_mode;  /* the hysteresis state */
    bool window_count_only;
    bool resync;
    size_t name_len;
    char name[];
};

struct presence__coalescer {
    presence_coalesce_options options;
    presence_diff_fn fn;
    void *user_data;
    struct coalesce_chan *chans;
    /* A change no channel record could be made for: a scope-wide resync
     * is owed, due at once. */
    bool lost;
    int64_t lost_time_ms;
};

/* ---- options ------------------------------------------------------------ */

#define DEFAULT_WINDOW_MS 1000

static void options_defaults(presence_coalesce_options *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->window_ms = DEFAULT_WINDOW_MS;
}

void presence_coalesce_options_init_sized(presence_coalesce_options *options,
                                          size_t struct_size)
{
    if (options == NULL || struct_size < sizeof(size_t)) {
        return;
    }
    presence_coalesce_options defaults;
    options_defaults(&defaults);
    defaults.struct_size = struct_size;
    memcpy(options, &defaults,
           struct_size < sizeof defaults ? struct_size : sizeof defaults);
}

/* The caller's options, read as far as its struct goes, checked. */
static int options_take(const presence_coalesce_options *src,
                        presence_coalesce_options *dst)
{
    options_defaults(dst);
    if (src == NULL) {
        return PRESENCE_OK;
    }
    if (src->struct_size < sizeof(size_t)) {
        return PRESENCE_ERR_INVALID;
    }
    size_t n = src->struct_size < sizeof *dst ? src->struct_size : sizeof *dst;
    memcpy(dst, src, n);
    dst->struct_size = sizeof *dst;
    if (dst->window_ms < 0 ||
        dst->count_only_below > dst->count_only_above) {
        return PRESENCE_ERR_INVALID;
    }
    if (dst->count_only_below == 0) {
        /* Never below 0: that mode could not end, and the channel's
         * record would be kept for good. */
        dst->count_only_below = dst->count_only_above;
    }
    return PRESENCE_OK;
}

int presence__coalescer_new(presence_registry *reg,
                            const presence_coalesce_options *options,
                            presence_diff_fn fn, void *user_data,
                            struct presence__coalescer **out)
{
    struct presence__coalescer c;
    memset(&c, 0, sizeof c);
    int rc = options_take(options, &c.options);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    c.fn = fn;
    c.user_data = user_data;
    *out = presence__malloc(&reg->alloc, sizeof c);
    if (*out == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    **out = c;
    return PRESENCE_OK;
}

/* ---- records ------------------------------------------------------------ */

static void member_free(presence_registry *reg, struct coalesce_member *m)
{
    presence__client_unref(reg, m->key_client);
    if (m->client != NULL) {
        presence__client_unref(reg, m->client);
    }
    presence__chan_info_unref(reg, m->chan_info);
    presence__chan_info_unref(reg, m->before_info);
    presence__free(&reg->alloc, m, sizeof *m);
}

static void chan_drop_members(presence_registry *reg, struct coalesce_chan *cd)
{
    struct coalesce_member *m, *tmp;
    HASH_ITER(hh, cd->members, m, tmp)
    {
        HASH_DEL(cd->members, m);
        member_free(reg, m);
    }
    cd->member_count = 0;
}

static size_t chan_size(size_t name_len)
{
    return sizeof(struct coalesce_chan) + name_len + 1;
}

static void chan_free(presence_registry *reg, struct coalesce_chan *cd)
{
    chan_drop_members(reg, cd);
    presence__free(&reg->alloc, cd->out, cd->out_cap * sizeof *cd->out);
    presence__channel_unref(reg, cd->ch);
    presence__free(&reg->alloc, cd, chan_size(cd->name_len));
}

void presence__coalescer_free(presence_registry *reg,
                              struct presence__coalescer *c)
{
    if (c == NULL) {
        return;
    }
    struct coalesce_chan *cd, *tmp;
    HASH_ITER(hh, c->chans, cd, tmp)
    {
        HASH_DEL(c->chans, cd);
        chan_free(reg, cd);
    }
    presence__free(&reg->alloc, c, sizeof *c);
}

/* ---- recording ---------------------------------------------------------- */

static int64_t add_ms(int64_t t, int64_t d)
{
    return t > INT64_MAX - d ? INT64_MAX : t + d;
}

static struct coalesce_chan *chan_make(presence_registry *reg,
                                       struct presence__coalescer *c,
                                       struct presence__channel *ch)
{
    struct coalesce_chan *cd =
        presence__malloc(&reg->alloc, chan_size(ch->name_len));
    if (cd == NULL) {
        return NULL;
    }
    memset(cd, 0, sizeof *cd);
    memcpy(cd->name, ch->name, ch->name_len);
    cd->name[ch->name_len] = '\0';
    cd->name_len = ch->name_len;
    cd->ch = ch;
    HASH_ADD(hh, c->chans, name, cd->name_len, cd);
    if (!PRESENCE_HASH_ADDED(cd)) {
        presence__free(&reg->alloc, cd, chan_size(cd->name_len));
        return NULL;
    }
    atomic_fetch_add(&ch->refs, 1);
    return cd;
}

/* The first change of a window: what the diff starts from, and when it is
 * due. */
static void window_open(presence_registry *reg, struct presence__coalescer *c,
                        struct coalesce_chan *cd,
                        const struct presence__pending *e)
{
    cd->pending = true;
    cd->window_count_only = cd->count_only_mode;
    cd->resync = false;
    cd->joins = cd->leaves = cd->updates = 0;
    bool born = e->kind == PRESENCE_EVENT_JOIN && e->seq == 1;
    cd->from_epoch = born ? 0 : e->epoch;
    cd->from_seq = born ? 0 : e->seq - 1;
    cd->first_time_ms = e->time_ms;
    cd->due_ms = add_ms(e->time_ms, c->options.window_ms);
    presence__events_due(reg, cd->due_ms);
}

/* Enter counts-only mode above the high mark, leave it below the low. */
static void mode_step(const struct presence__coalescer *c,
                      struct coalesce_chan *cd, size_t num_clients)
{
    size_t above = c->options.count_only_above;
    if (above == 0) {
        return;
    }
    if (!cd->count_only_mode && num_clients > above) {
        cd->count_only_mode = true;
    } else if (cd->count_only_mode && num_clients < c->options.count_only_below) {
        cd->count_only_mode = false;
    }
    if (cd->count_only_mode) {
        cd->window_count_only = true;
    }
}

static struct coalesce_member *member_find(const presence_registry *reg,
                                           struct coalesce_chan *cd,
                                           const struct presence__client *cl)
{
    struct coalesce_member *m = NULL;
    HASH_FIND(hh, cd->members, cl->id, cl->id_len, m);
    return m;
}

/* A record for a member's first change in the window, with room for it
 * in the diff to come; NULL when memory runs out (nothing changed). */
static struct coalesce_member *member_make(presence_registry *reg,
                                           struct coalesce_chan *cd,
                                           const struct presence__pending *e)
{
    if (cd->member_count == cd->out_cap) {
        size_t cap = cd->out_cap == 0 ? 4 : cd->out_cap * 2;
        size_t bytes = presence__mul_size(cap, sizeof *cd->out);
        presence_diff_member *out = presence__realloc(
            &reg->alloc, cd->out, cd->out_cap * sizeof *cd->out, bytes);
        if (out == NULL) {
            return NULL;
        }
        cd->out = out;
        cd->out_cap = cap;
    }
    struct coalesce_member *m = presence__malloc(&reg->alloc, sizeof *m);
    if (m == NULL) {
        return NULL;
    }
    memset(m, 0, sizeof *m);
    m->key_client = e->client;
    HASH_ADD_KEYPTR(hh, cd->members, e->client->id, e->client->id_len, m);
    if (!PRESENCE_HASH_ADDED(m)) {
        presence__free(&reg->alloc, m, sizeof *m);
        return NULL;
    }
    presence__client_ref(reg, e->client);
    m->was_present = e->kind != PRESENCE_EVENT_JOIN;
    if (e->kind == PRESENCE_EVENT_LEAVE) {
        m->before_info = e->chan_info;
        presence__chan_info_ref(reg, e->chan_info);
    }
    cd->member_count++;
    return m;
}

static void member_apply(presence_registry *reg, struct coalesce_member *m,
                         const struct presence__pending *e)
{
    presence__client_ref(reg, e->client);
    presence__chan_info_ref(reg, e->chan_info);
    if (m->client != NULL) {
        presence__client_unref(reg, m->client);
    }
    presence__chan_info_unref(reg, m->chan_info);
    m->client = e->client;
    m->chan_info = e->chan_info;
    m->time_ms = e->time_ms;
    m->present = e->kind != PRESENCE_EVENT_LEAVE;
    m->reason = e->kind == PRESENCE_EVENT_LEAVE ? e->reason
                                                : PRESENCE_LEAVE_NONE;
    if (e->kind == PRESENCE_EVENT_UPDATE) {
        m->updated = true;
    }
}

/*
 * A change no record could be made for: the subscription owes a
 * scope-wide resync, due at once. Until it is delivered nothing more is
 * recorded, and what was is dropped (the subscriber re-reads it all): its
 * memory goes back when memory is short, and the subscription starts
 * afresh, counts-only modes included.
 */
static void chans_lose(presence_registry *reg, struct presence__coalescer *c,
                       int64_t now_ms)
{
    struct coalesce_chan *cd, *tmp;
    HASH_ITER(hh, c->chans, cd, tmp)
    {
        HASH_DEL(c->chans, cd);
        chan_free(reg, cd);
    }
    c->lost = true;
    c->lost_time_ms = now_ms;
    presence__events_due(reg, now_ms);
}

void presence__coalesce_record(presence_registry *reg,
                               struct presence__coalescer *c,
                               const struct presence__pending *e)
{
    if (c->lost) {
        return; /* the resync owed covers this change too */
    }
    struct coalesce_chan *cd = NULL;
    HASH_FIND(hh, c->chans, e->channel->name, e->channel->name_len, cd);
    if (cd == NULL) {
        cd = chan_make(reg, c, e->channel);
        if (cd == NULL) {
            chans_lose(reg, c, e->time_ms);
            return;
        }
    }
    /* By epoch: a record pinned by a channel handle lives again. */
    bool same_life = cd->ch == e->channel && cd->epoch == e->epoch;
    if (cd->ch != e->channel) {
        atomic_fetch_add(&e->channel->refs, 1);
        presence__channel_unref(reg, cd->ch);
        cd->ch = e->channel;
    }
    cd->epoch = e->epoch;
    if (!cd->pending) {
        window_open(reg, c, cd, e);
    } else if (e->seq != (same_life ? cd->seq + 1 : 1)) {
        /* A change without a client event in between (a grace taken
         * over by another client of the user): the net diff cannot tell
         * it, so the window says resync. */
        cd->resync = true;
    }
    cd->seq = e->seq;
    cd->num_clients = e->num_clients;
    cd->num_users = e->num_users;
    cd->last_time_ms = e->time_ms;
    cd->joins += e->kind == PRESENCE_EVENT_JOIN;
    cd->leaves += e->kind == PRESENCE_EVENT_LEAVE;
    cd->updates += e->kind == PRESENCE_EVENT_UPDATE;
    mode_step(c, cd, e->num_clients);
    if (cd->window_count_only || cd->resync) {
        chan_drop_members(reg, cd);
        return;
    }
    struct coalesce_member *m = member_find(reg, cd, e->client);
    if (m == NULL) {
        m = member_make(reg, cd, e);
        if (m == NULL) {
            cd->resync = true; /* told in the diff, never dropped silently */
            chan_drop_members(reg, cd);
            return;
        }
    }
    member_apply(reg, m, e);
}

/* ---- delivery ----------------------------------------------------------- */

static bool blob_same(const struct presence__blob *a,
                      const struct presence__blob *b)
{
    if (a == b) {
        return true;
    }
    size_t alen = a != NULL ? a->len : 0;
    return presence__blob_equals(b, a != NULL ? a->data : NULL, alen);
}

/* Whether a member that left and came back is as it was. */
static bool member_unchanged(const struct coalesce_member *m)
{
    const struct presence__client *a = m->key_client;
    const struct presence__client *b = m->client;
    size_t alen = presence__client_conn_info_len(a);
    /* Users by id: the record may have been made anew if the user was
     * offline in between. */
    size_t user_len = presence__client_user_len(a);
    return presence__client_user_len(b) == user_len &&
           memcmp(presence__client_user_id(a), presence__client_user_id(b),
                  user_len) == 0 &&
           alen == presence__client_conn_info_len(b) &&
           memcmp(presence__client_conn_info(a),
                  presence__client_conn_info(b), alen) == 0 &&
           presence__client_node(a) == presence__client_node(b) &&
           blob_same(m->before_info, m->chan_info);
}

/* The net kind of a member's changes, or 0 for none. */
static presence_event_kind member_net(const struct coalesce_member *m)
{
    if (!m->was_present) {
        return m->present ? PRESENCE_EVENT_JOIN : 0;
    }
    if (!m->present) {
        return PRESENCE_EVENT_LEAVE;
    }
    return m->updated || !member_unchanged(m) ? PRESENCE_EVENT_UPDATE : 0;
}

static void member_view(presence_diff_member *out,
                        const struct coalesce_member *m,
                        presence_event_kind kind, const char *channel)
{
    const struct presence__client *cl = m->client;
    const struct presence__node *node = presence__client_node(cl);
    size_t conn_len = presence__client_conn_info_len(cl);
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->reason = (presence_leave_reason)m->reason;
    out->time_ms = m->time_ms;
    out->member.channel = channel;
    out->member.client_id = cl->id;
    out->member.user_id = presence__client_user_id(cl);
    out->member.conn_info = conn_len > 0 ? presence__client_conn_info(cl)
                                         : NULL;
    out->member.conn_info_len = conn_len;
    out->member.chan_info = m->chan_info != NULL ? m->chan_info->data : NULL;
    out->member.chan_info_len = m->chan_info != NULL ? m->chan_info->len : 0;
    if (kind == PRESENCE_EVENT_JOIN) {
        out->member.joined_at_ms = m->time_ms;
        out->member.touched_at_ms = m->time_ms;
    }
    out->member.node_id = node != NULL ? node->id : "";
    /* Read now, not at the change: a handle closed since must not be
     * handed out (presence.h, leave grace). */
    out->member.app = presence__client_app(cl);
}

static void diff_fill(presence_diff *d, struct coalesce_chan *cd)
{
    memset(d, 0, sizeof *d);
    d->channel = cd->name;
    d->namespace_name = cd->ch->ns->name;
    d->from_epoch = cd->from_epoch;
    d->from_seq = cd->from_seq;
    d->epoch = cd->epoch;
    d->seq = cd->seq;
    d->stats.num_clients = cd->num_clients;
    d->stats.num_users = cd->num_users;
    d->stats.epoch = d->epoch;
    d->stats.seq = d->seq;
    d->first_time_ms = cd->first_time_ms;
    d->last_time_ms = cd->last_time_ms;
    if (cd->window_count_only || cd->resync) {
        d->flags = (cd->window_count_only ? PRESENCE_DIFF_COUNT_ONLY : 0) |
                   (cd->resync ? PRESENCE_DIFF_RESYNC : 0);
        d->joined = cd->joins;
        d->left = cd->leaves;
        d->updated = cd->updates;
        return;
    }
    size_t n = 0;
    for (struct coalesce_member *m = cd->members; m != NULL; m = m->hh.next) {
        presence_event_kind kind = member_net(m);
        if (kind == 0) {
            continue;
        }
        member_view(&cd->out[n++], m, kind, cd->name);
        d->joined += kind == PRESENCE_EVENT_JOIN;
        d->left += kind == PRESENCE_EVENT_LEAVE;
        d->updated += kind == PRESENCE_EVENT_UPDATE;
    }
    d->member_count = n;
    d->members = n > 0 ? cd->out : NULL;
}

/* After its diff: the channel's window closes; its record stays only
 * while the channel is in counts-only mode (for the hysteresis). */
static void window_close(presence_registry *reg, struct presence__coalescer *c,
                         struct coalesce_chan *cd)
{
    chan_drop_members(reg, cd);
    cd->pending = false;
    if (!cd->count_only_mode) {
        HASH_DEL(c->chans, cd);
        chan_free(reg, cd);
    }
}

static void deliver_lost(presence_registry *reg, struct presence__coalescer *c,
                         presence_scope scope, const char *name)
{
    presence_diff d;
    memset(&d, 0, sizeof d);
    d.channel = scope == PRESENCE_SCOPE_CHANNEL ? name : "";
    d.namespace_name = scope == PRESENCE_SCOPE_NAMESPACE ? name : "";
    d.flags = PRESENCE_DIFF_RESYNC;
    d.first_time_ms = c->lost_time_ms;
    d.last_time_ms = c->lost_time_ms;
    c->lost = false;
    c->fn(reg, &d, c->user_data);
}

void presence__coalesce_deliver(presence_registry *reg,
                                struct presence__coalescer *c,
                                const atomic_bool *active,
                                presence_scope scope, const char *name,
                                int64_t now_ms, int64_t *next_due_ms)
{
    if (c->lost && atomic_load(active)) {
        deliver_lost(reg, c, scope, name);
    }
    struct coalesce_chan *cd, *tmp;
    HASH_ITER(hh, c->chans, cd, tmp)
    {
        if (!atomic_load(active)) {
            return; /* its callback removed it: nothing more */
        }
        if (!cd->pending) {
            continue;
        }
        if (cd->due_ms > now_ms) {
            if (cd->due_ms < *next_due_ms) {
                *next_due_ms = cd->due_ms;
            }
            continue;
        }
        presence_diff d;
        diff_fill(&d, cd);
        c->fn(reg, &d, c->user_data);
        /* Only the dispatcher (this thread) records, so the callback
         * cannot have touched cd: close its window now. */
        window_close(reg, c, cd);
    }
}
