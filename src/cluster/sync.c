/*
 * The other nodes' side: find them, load each one's state from a
 * snapshot that stands for a position in its log, follow the log from
 * there, notice gaps and new incarnations (load again), and drop the
 * members of nodes whose lease ran out.
 *
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_internal.h"

/* KEYS lease members log: delete a dead node's state, unless it came
 * back meanwhile. Not its staging hash: the node may be announcing again
 * right now (it was paused past its lease), into a hash named after its
 * new incarnation, which the reap neither knows nor touches; an abandoned
 * one expires on its own. */
static const char REAP_SCRIPT[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  redis.call('DEL', KEYS[2], KEYS[3])\n"
    "end\n"
    "return 1\n";

/* KEYS nodes; ARGV node inc: forget a node's directory entry if it is
 * still that incarnation's. */
static const char FORGET_SCRIPT[] =
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then\n"
    "  redis.call('HDEL', KEYS[1], ARGV[1])\n"
    "end\n"
    "return 1\n";

/* A node's key: "{<prefix>:<node>}.<what>". */
static void node_key(const struct presence_cluster *c, const char *node,
                     const char *what, char *out, size_t size)
{
    snprintf(out, size, "{%s:%s}.%s", c->prefix, node, what);
}

/* Room for any node's key (the longest prefix and node id included). */
#define KEY_MAX PRESENCE__CL_KEY_MAX

static struct presence__cl_node *node_find(struct presence_cluster *c,
                                           const char *id, size_t len)
{
    for (struct presence__cl_node *n = c->nodes; n != NULL; n = n->next) {
        if (strlen(n->id) == len && memcmp(n->id, id, len) == 0) {
            return n;
        }
    }
    return NULL;
}

static struct presence__cl_node *node_get(struct presence_cluster *c,
                                          const char *id, size_t len)
{
    struct presence__cl_node *n = node_find(c, id, len);
    if (n != NULL || len == 0 || len > PRESENCE__CL_ID_MAX) {
        return n;
    }
    n = presence__cl_calloc(&c->alloc, 1, sizeof *n);
    if (n != NULL) {
        memcpy(n->id, id, len);
        n->next = c->nodes;
        c->nodes = n;
    }
    return n;
}

static void node_remove(struct presence_cluster *c,
                        struct presence__cl_node *n)
{
    for (struct presence__cl_node **p = &c->nodes; *p != NULL;
         p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            break;
        }
    }
    if (n->live) {
        atomic_fetch_sub(&c->live_nodes, 1);
    }
    presence__cl_free(&c->alloc, n, sizeof *n);
}

void presence__cl_sync_free(struct presence_cluster *c)
{
    while (c->nodes != NULL) {
        struct presence__cl_node *n = c->nodes;
        c->nodes = n->next;
        presence__cl_free(&c->alloc, n, sizeof *n);
    }
    atomic_store(&c->live_nodes, 0);
}

/* Whether a snapshot read is under way: the logs are read again only
 * after it, from the positions it gives. */
static bool any_loading(const struct presence_cluster *c)
{
    for (const struct presence__cl_node *n = c->nodes; n != NULL;
         n = n->next) {
        if (n->loading) {
            return true;
        }
    }
    return false;
}

void presence__cl_update_synced(struct presence_cluster *c)
{
    bool synced = c->self == SELF_ONLINE && !any_loading(c) &&
                  c->events_id_known;
    for (struct presence__cl_node *n = c->nodes; synced && n != NULL;
         n = n->next) {
        synced = n->live && !n->loading && !n->reload && n->inc[0] != '\0';
    }
    atomic_store(&c->synced, synced);
}

/* Stream ids "ms-seq", compared as numbers. */
static int stream_id_cmp(const char *a, const char *b)
{
    uint64_t am = 0, as = 0, bm = 0, bs = 0;
    sscanf(a, "%" SCNu64 "-%" SCNu64, &am, &as);
    sscanf(b, "%" SCNu64 "-%" SCNu64, &bm, &bs);
    if (am != bm) {
        return am < bm ? -1 : 1;
    }
    return as < bs ? -1 : as > bs;
}

/* A reply string as a bounded copy; "" when it is not a string. */
static void reply_copy(const redisReply *r, char *out, size_t size)
{
    out[0] = '\0';
    if (r != NULL &&
        (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
        r->len < size) {
        memcpy(out, r->str, r->len);
        out[r->len] = '\0';
    }
}

/* The value of `name` in a stream entry's field list. */
static const redisReply *entry_field(const redisReply *fields,
                                     const char *name)
{
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY) {
        return NULL;
    }
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i];
        if (k->type == REDIS_REPLY_STRING && strlen(name) == k->len &&
            memcmp(k->str, name, k->len) == 0) {
            return fields->element[i + 1];
        }
    }
    return NULL;
}

static uint64_t field_u64(const redisReply *v)
{
    char buf[24];
    reply_copy(v, buf, sizeof buf);
    return strtoull(buf, NULL, 10);
}

/* ---- applying changes --------------------------------------------------- */

/* Count a remote change, and say why the registry refused it. */
static void count_applied(struct presence_cluster *c, int rc,
                          const char *what, const char *node, const char *ch,
                          const char *cl)
{
    if (rc == PRESENCE_OK) {
        atomic_fetch_add(&c->applied, 1);
        return;
    }
    atomic_fetch_add(&c->rejected, 1);
    presence__cl_log(c, PRESENCE_CLUSTER_LOG_WARNING,
                     "%s of %s in %s from node %s refused: %s", what,
                     cl ? cl : "?", ch ? ch : "?", node,
                     presence_strerror(rc));
}

/* The apply functions return false when the change could not be made for
 * want of memory (ours or the registry's): the caller loads the node's
 * snapshot again, which makes up for it. */
static bool apply_join(struct presence_cluster *c, const char *node,
                       const char *channel, size_t channel_len,
                       const char *client, size_t client_len,
                       const struct presence__cl_member *m)
{
    const presence_allocator *a = &c->alloc;
    char *ch = presence__cl_strndup(a, channel, channel_len);
    char *cl = presence__cl_strndup(a, client, client_len);
    char *user = presence__cl_strndup(a, m->user, m->user_len);
    int rc = PRESENCE_ERR_NOMEM;
    if (ch != NULL && cl != NULL && user != NULL) {
        rc = presence_remote_join(c->registry, node, ch, cl, user,
                                  m->conn_info_len ? m->conn_info : NULL,
                                  m->conn_info_len,
                                  m->chan_info_len ? m->chan_info : NULL,
                                  m->chan_info_len);
    }
    count_applied(c, rc, "join", node, ch, cl);
    presence__cl_free(a, ch, channel_len + 1);
    presence__cl_free(a, cl, client_len + 1);
    presence__cl_free(a, user, m->user_len + 1);
    return rc != PRESENCE_ERR_NOMEM;
}

static bool apply_leave(struct presence_cluster *c, const char *node,
                        const char *channel, size_t channel_len,
                        const char *client, size_t client_len, int reason)
{
    const presence_allocator *a = &c->alloc;
    char *ch = presence__cl_strndup(a, channel, channel_len);
    char *cl = presence__cl_strndup(a, client, client_len);
    int rc = PRESENCE_ERR_NOMEM;
    if (ch != NULL && cl != NULL) {
        rc = presence_remote_leave(c->registry, node, ch, cl,
                                   (presence_leave_reason)reason);
    }
    /* Already gone here (a snapshot got there first): nothing to do. */
    count_applied(c, rc == PRESENCE_ERR_NOT_FOUND ? PRESENCE_OK : rc, "leave",
                  node, ch, cl);
    presence__cl_free(a, ch, channel_len + 1);
    presence__cl_free(a, cl, client_len + 1);
    return rc != PRESENCE_ERR_NOMEM;
}

/* false when ops is malformed; *lost when a change wanted memory. */
static bool apply_ops(struct presence_cluster *c, const char *node,
                      const char *ops, size_t len, bool *lost)
{
    size_t pos = 0;
    while (pos < len) {
        struct presence__cl_op op;
        if (!presence__cl_decode_op(ops, len, &pos, &op)) {
            return false;
        }
        bool kept;
        if (op.kind == 'J') {
            kept = apply_join(c, node, op.channel, op.channel_len, op.client,
                              op.client_len, &op.member);
        } else {
            kept = apply_leave(c, node, op.channel, op.channel_len,
                               op.client, op.client_len, op.reason);
        }
        *lost = *lost || !kept;
    }
    return true;
}

/* Some of node n's changes could not be applied for want of memory: load
 * its snapshot again. Its incarnation is forgotten, so that if that load
 * cannot start now, the next lease check, or its next log entry, starts
 * it (and the handle does not report synced meanwhile). */
static void lost_changes(struct presence_cluster *c,
                         struct presence__cl_node *n, const char *what)
{
    presence__cl_log(c, PRESENCE_CLUSTER_LOG_WARNING,
                     "node %s: out of memory applying %s; loading its "
                     "snapshot again",
                     n->id, what);
    n->inc[0] = '\0';
    if (n->loading) {
        n->reload = true;
    } else {
        presence__cl_sync_load(c, n->id);
    }
}

/* ---- node down ---------------------------------------------------------- */

/* Delete a dead node's keys and directory entry (each only if it did not
 * come back meanwhile). */
static void reap(struct presence_cluster *c, const struct presence__cl_node *n)
{
    char lease[KEY_MAX], members[KEY_MAX], log[KEY_MAX];
    node_key(c, n->id, "lease", lease, sizeof lease);
    node_key(c, n->id, "members", members, sizeof members);
    node_key(c, n->id, "log", log, sizeof log);
    const char *del[] = {"EVAL", REAP_SCRIPT, "3", lease, members, log};
    const char *forget[] = {"EVAL", FORGET_SCRIPT, "1", c->key_nodes, n->id,
                            n->inc[0] ? n->inc : n->dir_inc};
    PRESENCE__CL_SEND(&c->cmd, NULL, NULL, del);
    PRESENCE__CL_SEND(&c->cmd, NULL, NULL, forget);
}

void presence__cl_sync_node_down(struct presence_cluster *c,
                                 struct presence__cl_node *n,
                                 presence_leave_reason reason)
{
    size_t left = 0;
    int rc = presence_node_down(c->registry, n->id, reason, &left);
    presence__cl_log(c, PRESENCE_CLUSTER_LOG_WARNING,
                     "node %s is down: %zu memberships removed%s", n->id, left,
                     rc == PRESENCE_OK ? "" : " (out of memory: will retry)");
    if (rc != PRESENCE_OK) {
        return; /* the next check tries again */
    }
    atomic_fetch_add(&c->nodes_down, 1);
    reap(c, n);
    node_remove(c, n);
    presence__cl_update_synced(c);
}

/* ---- loading a node's snapshot ----------------------------------------- */

struct load_ctx {
    struct presence_cluster *c;
    uint64_t generation;
    char id[PRESENCE__CL_ID_MAX + 1];
};

/* A snapshot member, for the comparison with the registry's view. */
struct snap_entry {
    const char *field;
    size_t field_len;
    const redisReply *value;
};

static int snap_entry_cmp(const void *a, const void *b)
{
    const struct snap_entry *x = a, *y = b;
    size_t n = x->field_len < y->field_len ? x->field_len : y->field_len;
    int r = memcmp(x->field, y->field, n);
    if (r != 0) {
        return r;
    }
    return x->field_len < y->field_len ? -1 : x->field_len > y->field_len;
}

/* Make the registry's view of node n equal to the snapshot `members` (a
 * HGETALL reply): members it lacks leave with RESYNC, the others are
 * upserted (an unchanged member produces no event). false when some of
 * that could not be done for want of memory. */
static bool apply_snapshot(struct presence_cluster *c,
                           struct presence__cl_node *n,
                           const redisReply *members)
{
    const presence_allocator *a = &c->alloc;
    size_t count = members->elements / 2;
    size_t entries_size =
        presence__cl_mul_size(count ? count : 1, sizeof(struct snap_entry));
    struct snap_entry *entries = presence__cl_malloc(a, entries_size);
    presence_snapshot *mine = NULL;
    if (entries == NULL ||
        presence_node_memberships(c->registry, n->id, &mine) != PRESENCE_OK) {
        presence__cl_free(a, entries, entries_size);
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        entries[i].field = members->element[2 * i]->str;
        entries[i].field_len = members->element[2 * i]->len;
        entries[i].value = members->element[2 * i + 1];
    }
    qsort(entries, count, sizeof *entries, snap_entry_cmp);
    /* What cannot be done for want of memory is done by a reload. */
    bool lost = false;
    struct presence__cl_buf key = {.alloc = a};
    for (size_t i = 0; i < mine->count; i++) {
        const presence_member *m = &mine->members[i];
        key.len = 0;
        if (!presence__cl_encode_field(&key, m->channel, m->client_id)) {
            lost = true;
            continue;
        }
        struct snap_entry probe = {key.data, key.len, NULL};
        if (bsearch(&probe, entries, count, sizeof *entries,
                    snap_entry_cmp) == NULL) {
            lost = !apply_leave(c, n->id, m->channel, strlen(m->channel),
                                m->client_id, strlen(m->client_id),
                                PRESENCE_LEAVE_RESYNC) ||
                   lost;
        }
    }
    presence__cl_buf_free(&key);
    presence_snapshot_free(mine);
    for (size_t i = 0; i < count; i++) {
        const char *ch, *cl;
        size_t ch_len, cl_len;
        struct presence__cl_member m;
        const redisReply *v = entries[i].value;
        if (!presence__cl_decode_field(entries[i].field, entries[i].field_len,
                                       &ch, &ch_len, &cl, &cl_len) ||
            v->type != REDIS_REPLY_STRING ||
            !presence__cl_decode_member(v->str, v->len, &m)) {
            atomic_fetch_add(&c->rejected, 1);
            continue;
        }
        lost = !apply_join(c, n->id, ch, ch_len, cl, cl_len, &m) || lost;
    }
    presence__cl_free(a, entries, entries_size);
    return !lost;
}

static void load_done(struct presence_cluster *c, struct presence__cl_node *n)
{
    n->loading = false;
    if (n->reload) {
        n->reload = false;
        presence__cl_sync_load(c, n->id);
    }
    presence__cl_update_synced(c);
    presence__cl_sync_read(c);
}

/* EXEC of: GET lease, HGETALL members, XREVRANGE log + - COUNT 1. */
static void on_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct load_ctx *ctx = privdata;
    struct presence_cluster *c = ctx->c;
    redisReply *reply = r;
    struct presence__cl_node *n = node_find(c, ctx->id, strlen(ctx->id));
    if (reply == NULL || ctx->generation != c->generation || n == NULL ||
        !n->loading) {
        presence__cl_free(&c->alloc, ctx, sizeof *ctx);
        return; /* the connection is gone: the reconnection loads again */
    }
    presence__cl_free(&c->alloc, ctx, sizeof *ctx);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[1]->type != REDIS_REPLY_ARRAY ||
        reply->element[2]->type != REDIS_REPLY_ARRAY) {
        presence__cl_log(c, PRESENCE_CLUSTER_LOG_ERROR,
                         "snapshot of node %s: bad reply", n->id);
        n->reload = true;
        load_done(c, n);
        return;
    }
    char inc[PRESENCE__CL_ID_MAX + 1];
    reply_copy(reply->element[0], inc, sizeof inc);
    if (inc[0] == '\0') {
        /* No lease: the node is gone (or not back yet). */
        n->loading = false;
        if (!n->live) {
            reap(c, n); /* a directory entry left by a dead node */
            node_remove(c, n);
        } else if (presence__cl_now_ms(c) >= c->grace_until) {
            presence__cl_sync_node_down(c, n, PRESENCE_LEAVE_NODE_DOWN);
        } /* else: in the grace after a reconnection, the lease check decides
           */
        presence__cl_update_synced(c);
        presence__cl_sync_read(c);
        return;
    }
    const redisReply *last = reply->element[2];
    const redisReply *entry = last->elements == 1 ? last->element[0] : NULL;
    char entry_inc[PRESENCE__CL_ID_MAX + 1];
    if (entry == NULL || entry->type != REDIS_REPLY_ARRAY ||
        entry->elements != 2) {
        entry_inc[0] = '\0';
    } else {
        reply_copy(entry_field(entry->element[1], "inc"), entry_inc,
                   sizeof entry_inc);
    }
    if (strcmp(entry_inc, inc) != 0) {
        /* Its log does not match its lease yet: read again. */
        n->reload = true;
        load_done(c, n);
        return;
    }
    bool whole = apply_snapshot(c, n, reply->element[1]);
    memcpy(n->inc, inc, sizeof n->inc);
    if (!whole) {
        lost_changes(c, n, "its snapshot");
    }
    n->seq = field_u64(entry_field(entry->element[1], "seq"));
    reply_copy(entry->element[0], n->last_id, sizeof n->last_id);
    if (!n->live) {
        n->live = true;
        atomic_fetch_add(&c->live_nodes, 1);
    }
    atomic_fetch_add(&c->snapshots, 1);
    c->read_stale = true; /* follow it from its new position at once */
    load_done(c, n);
}

void presence__cl_sync_load(struct presence_cluster *c, const char *node_id)
{
    if (strcmp(node_id, c->node_id) == 0) {
        return;
    }
    struct presence__cl_node *n = node_get(c, node_id, strlen(node_id));
    if (n == NULL) {
        return;
    }
    if (n->loading) {
        n->reload = true;
        return;
    }
    struct load_ctx *ctx = presence__cl_malloc(&c->alloc, sizeof *ctx);
    if (ctx == NULL) {
        return; /* the next check finds it again */
    }
    *ctx = (struct load_ctx){.c = c, .generation = c->generation};
    memcpy(ctx->id, n->id, sizeof ctx->id);
    char lease[KEY_MAX], members[KEY_MAX], log[KEY_MAX];
    node_key(c, n->id, "lease", lease, sizeof lease);
    node_key(c, n->id, "members", members, sizeof members);
    node_key(c, n->id, "log", log, sizeof log);
    const char *multi[] = {"MULTI"};
    const char *get[] = {"GET", lease};
    const char *all[] = {"HGETALL", members};
    const char *rev[] = {"XREVRANGE", log, "+", "-", "COUNT", "1"};
    const char *exec[] = {"EXEC"};
    bool ok = PRESENCE__CL_SEND(&c->cmd, NULL, NULL, multi) &&
              PRESENCE__CL_SEND(&c->cmd, NULL, NULL, get) &&
              PRESENCE__CL_SEND(&c->cmd, NULL, NULL, all) &&
              PRESENCE__CL_SEND(&c->cmd, NULL, NULL, rev) &&
              PRESENCE__CL_SEND(&c->cmd, on_loaded, ctx, exec);
    if (!ok) {
        /* the connection is down: reconnecting loads again */
        presence__cl_free(&c->alloc, ctx, sizeof *ctx);
        return;
    }
    n->loading = true;
    atomic_store(&c->synced, false);
}

/* ---- the directory and the leases --------------------------------------- */

static void on_directory(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct presence_cluster *c = privdata;
    redisReply *reply = r;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        char id[PRESENCE__CL_ID_MAX + 1], inc[PRESENCE__CL_ID_MAX + 1];
        reply_copy(reply->element[i], id, sizeof id);
        reply_copy(reply->element[i + 1], inc, sizeof inc);
        if (id[0] == '\0' || strcmp(id, c->node_id) == 0) {
            continue;
        }
        struct presence__cl_node *n = node_find(c, id, strlen(id));
        if (n == NULL || (!n->loading && strcmp(n->inc, inc) != 0)) {
            presence__cl_sync_load(c, id);
            n = node_find(c, id, strlen(id));
        }
        if (n != NULL) {
            memcpy(n->dir_inc, inc, sizeof n->dir_inc);
        }
    }
    presence__cl_update_synced(c);
}

static void on_events_position(redisAsyncContext *ac, void *r,
                               void *privdata)
{
    (void)ac;
    struct presence_cluster *c = privdata;
    redisReply *reply = r;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }
    if (reply->elements == 1 &&
        reply->element[0]->type == REDIS_REPLY_ARRAY &&
        reply->element[0]->elements == 2) {
        reply_copy(reply->element[0]->element[0], c->events_id,
                   sizeof c->events_id);
    } else {
        snprintf(c->events_id, sizeof c->events_id, "0-0");
    }
    c->events_id_known = true;
    presence__cl_update_synced(c);
    presence__cl_sync_read(c);
}

void presence__cl_sync_start(struct presence_cluster *c)
{
    /* The events position first, then the directory: a node that says
     * hello after the position is read shows up in the stream. */
    const char *rev[] = {"XREVRANGE", c->key_events, "+", "-", "COUNT", "1"};
    const char *all[] = {"HGETALL", c->key_nodes};
    PRESENCE__CL_SEND(&c->cmd, on_events_position, c, rev);
    PRESENCE__CL_SEND(&c->cmd, on_directory, c, all);
    /* Nodes known from before a reconnection: load them again. */
    for (struct presence__cl_node *n = c->nodes; n != NULL; n = n->next) {
        presence__cl_sync_load(c, n->id);
    }
}

struct lease_ctx {
    struct presence_cluster *c;
    uint64_t generation;
    char id[PRESENCE__CL_ID_MAX + 1];
    bool last; /* the check ends with this reply */
};

static void on_lease(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct lease_ctx *ctx = privdata;
    struct presence_cluster *c = ctx->c;
    redisReply *reply = r;
    if (ctx->last) {
        c->check_running = false;
    }
    struct presence__cl_node *n = node_find(c, ctx->id, strlen(ctx->id));
    if (reply != NULL && ctx->generation == c->generation && n != NULL &&
        !n->loading) {
        char inc[PRESENCE__CL_ID_MAX + 1];
        reply_copy(reply, inc, sizeof inc);
        if (inc[0] == '\0') {
            if (presence__cl_now_ms(c) >= c->grace_until) {
                presence__cl_sync_node_down(c, n, PRESENCE_LEAVE_NODE_DOWN);
            }
        } else if (strcmp(inc, n->inc) != 0 || !n->live) {
            presence__cl_sync_load(c, n->id); /* a new incarnation we missed */
        }
    }
    presence__cl_free(&c->alloc, ctx, sizeof *ctx);
}

void presence__cl_sync_check(struct presence_cluster *c)
{
    if (c->check_running || c->self != SELF_ONLINE) {
        return;
    }
    const char *all[] = {"HGETALL", c->key_nodes};
    if (!PRESENCE__CL_SEND(&c->cmd, on_directory, c, all)) {
        return;
    }
    struct lease_ctx *last = NULL;
    for (struct presence__cl_node *n = c->nodes; n != NULL; n = n->next) {
        struct lease_ctx *ctx = presence__cl_malloc(&c->alloc, sizeof *ctx);
        if (ctx == NULL) {
            break;
        }
        *ctx = (struct lease_ctx){.c = c, .generation = c->generation};
        memcpy(ctx->id, n->id, sizeof ctx->id);
        char lease[KEY_MAX];
        node_key(c, n->id, "lease", lease, sizeof lease);
        const char *get[] = {"GET", lease};
        if (!PRESENCE__CL_SEND(&c->cmd, on_lease, ctx, get)) {
            presence__cl_free(&c->alloc, ctx, sizeof *ctx);
            break;
        }
        last = ctx;
    }
    if (last != NULL) {
        last->last = true;
        c->check_running = true;
    }
}

/* ---- following the logs ------------------------------------------------- */

static void read_node_entries(struct presence_cluster *c,
                              struct presence__cl_node *n,
                              const redisReply *entries)
{
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (n->loading || e->type != REDIS_REPLY_ARRAY || e->elements != 2) {
            return; /* a snapshot is coming: it covers these */
        }
        char id[PRESENCE__CL_STREAM_ID], inc[PRESENCE__CL_ID_MAX + 1];
        reply_copy(e->element[0], id, sizeof id);
        if (stream_id_cmp(id, n->last_id) <= 0) {
            continue; /* already covered by a snapshot */
        }
        reply_copy(entry_field(e->element[1], "inc"), inc, sizeof inc);
        uint64_t seq = field_u64(entry_field(e->element[1], "seq"));
        if (strcmp(inc, n->inc) != 0 || seq != n->seq + 1) {
            if (strcmp(inc, n->inc) == 0 && seq <= n->seq) {
                continue;
            }
            /* A gap (the log was trimmed past us) or a new incarnation. */
            presence__cl_log(c, PRESENCE_CLUSTER_LOG_INFO,
                             "node %s: %s; loading its snapshot", n->id,
                             strcmp(inc, n->inc) != 0 ? "new incarnation"
                                                      : "gap in its log");
            presence__cl_sync_load(c, n->id);
            return;
        }
        const redisReply *ops = entry_field(e->element[1], "ops");
        bool lost = false;
        if (ops != NULL && ops->type == REDIS_REPLY_STRING &&
            !apply_ops(c, n->id, ops->str, ops->len, &lost)) {
            presence__cl_log(c, PRESENCE_CLUSTER_LOG_ERROR,
                             "node %s: malformed log entry %s", n->id, id);
        }
        n->seq = seq;
        memcpy(n->last_id, id, sizeof n->last_id);
        if (lost) {
            lost_changes(c, n, "its log");
            return;
        }
    }
}

static void read_events(struct presence_cluster *c, const redisReply *entries)
{
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) {
            continue;
        }
        reply_copy(e->element[0], c->events_id, sizeof c->events_id);
        char type[16], id[PRESENCE__CL_ID_MAX + 1],
            inc[PRESENCE__CL_ID_MAX + 1];
        reply_copy(entry_field(e->element[1], "type"), type, sizeof type);
        reply_copy(entry_field(e->element[1], "node"), id, sizeof id);
        reply_copy(entry_field(e->element[1], "inc"), inc, sizeof inc);
        if (id[0] == '\0' || strcmp(id, c->node_id) == 0) {
            continue;
        }
        struct presence__cl_node *n = node_find(c, id, strlen(id));
        if (strcmp(type, "hello") == 0) {
            if (n == NULL || strcmp(n->inc, inc) != 0) {
                presence__cl_sync_load(c, id);
            }
        } else if (strcmp(type, "bye") == 0 && n != NULL &&
                   strcmp(n->inc, inc) == 0) {
            presence__cl_sync_node_down(c, n, PRESENCE_LEAVE_NODE_DOWN);
        }
    }
}

static void on_read(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct presence_cluster *c = privdata;
    redisReply *reply = r;
    c->reading = false;
    c->read_stale = false;
    c->unblock_sent = false;
    if (reply == NULL) {
        return; /* the reader is gone */
    }
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *s = reply->element[i];
            if (s->type != REDIS_REPLY_ARRAY || s->elements != 2 ||
                s->element[1]->type != REDIS_REPLY_ARRAY) {
                continue;
            }
            char key[KEY_MAX];
            reply_copy(s->element[0], key, sizeof key);
            if (strcmp(key, c->key_events) == 0) {
                read_events(c, s->element[1]);
                continue;
            }
            for (struct presence__cl_node *n = c->nodes; n != NULL;
                 n = n->next) {
                char log[KEY_MAX];
                node_key(c, n->id, "log", log, sizeof log);
                if (strcmp(log, key) == 0) {
                    read_node_entries(c, n, s->element[1]);
                    break;
                }
            }
        }
    } else if (reply->type == REDIS_REPLY_ERROR) {
        presence__cl_log(c, PRESENCE_CLUSTER_LOG_ERROR, "XREAD failed: %s",
                         reply->str);
    }
    presence__cl_update_synced(c);
    presence__cl_sync_read(c);
}

/* End the blocked XREAD early (it then returns nil), so that the next one
 * covers the streams and positions that changed. */
static void unblock_reader(struct presence_cluster *c)
{
    if (c->unblock_sent || c->reader_id <= 0) {
        return;
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", c->reader_id);
    const char *argv[] = {"CLIENT", "UNBLOCK", id};
    c->unblock_sent = PRESENCE__CL_SEND(&c->cmd, NULL, NULL, argv);
}

void presence__cl_sync_read(struct presence_cluster *c)
{
    if (c->reading && c->read_stale && !any_loading(c)) {
        unblock_reader(c);
    }
    if (c->reading || any_loading(c) || !c->events_id_known ||
        c->self != SELF_ONLINE || c->reader.state != CONN_UP) {
        return;
    }
    size_t streams = 1;
    for (struct presence__cl_node *n = c->nodes; n != NULL; n = n->next) {
        streams += n->live && !n->loading;
    }
    size_t argc = 6 + 2 * streams;
    const presence_allocator *a = &c->alloc;
    size_t argv_size = presence__cl_mul_size(argc, sizeof(const char *));
    size_t lens_size = presence__cl_mul_size(argc, sizeof(size_t));
    size_t keys_size = presence__cl_mul_size(streams, KEY_MAX);
    const char **argv = presence__cl_malloc(a, argv_size);
    size_t *lens = presence__cl_malloc(a, lens_size);
    char (*keys)[KEY_MAX] = presence__cl_malloc(a, keys_size);
    if (argv == NULL || lens == NULL || keys == NULL) {
        presence__cl_free(a, argv, argv_size);
        presence__cl_free(a, lens, lens_size);
        presence__cl_free(a, keys, keys_size);
        return; /* the next turn tries again */
    }
    argv[0] = "XREAD";
    argv[1] = "COUNT";
    argv[2] = "8"; /* entries per stream: bounds one turn's work */
    argv[3] = "BLOCK";
    char block[16];
    snprintf(block, sizeof block, "%d", PRESENCE__CL_READ_BLOCK_MS);
    argv[4] = block;
    argv[5] = "STREAMS";
    argv[6] = c->key_events;
    argv[6 + streams] = c->events_id;
    size_t k = 1;
    for (struct presence__cl_node *n = c->nodes; n != NULL; n = n->next) {
        if (n->live && !n->loading) {
            node_key(c, n->id, "log", keys[k], KEY_MAX);
            argv[6 + k] = keys[k];
            argv[6 + streams + k] = n->last_id;
            k++;
        }
    }
    for (size_t i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    c->reading = presence__cl_conn_command(&c->reader, on_read, c, (int)argc,
                                           argv, lens);
    presence__cl_free(a, argv, argv_size);
    presence__cl_free(a, lens, lens_size);
    presence__cl_free(a, keys, keys_size);
}
