/*
 * This node's side: its changes, written to Redis in batches, and its
 * announce (all of its members under a new incarnation).
 *
 * Every write is a script on this node's slot that first checks that the
 * lease still holds this incarnation: a node whose lease ran out (it was
 * paused, or cut off) cannot write into a state the others have already
 * dropped; it announces again instead.
 *
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cluster_internal.h"

/* KEYS lease members log; ARGV inc seq maxlen ops [field value]...
 * An empty value deletes the field. */
static const char FLUSH_SCRIPT[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "for i = 5, #ARGV, 2 do\n"
    "  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[2], ARGV[i])\n"
    "  else redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end\n"
    "end\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'inc', ARGV[1],"
    " 'seq', ARGV[2], 'ops', ARGV[4])\n"
    "return 1\n";

/* KEYS staging; ARGV ttl_ms field value [field value]...: one chunk of
 * an announce's members. The staging hash expires unless the announce
 * goes on: one that was abandoned (the node died, its connection broke)
 * leaves nothing behind for long. */
static const char STAGE_SCRIPT[] =
    "redis.call('HSET', KEYS[1], unpack(ARGV, 2))\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[1])\n"
    "return 1\n";

/* KEYS lease members staging log; ARGV inc lease_ms maxlen count. The
 * staged members become the node's state, the lease and the reset entry
 * appear with them, all at once -- if the staging hash holds exactly the
 * `count` members staged. Anything else (a part of it expired, or was
 * deleted) is refused: the node announces again rather than make a part
 * of its members its state. Returns {1 or 0, members found}. */
static const char ANNOUNCE_SCRIPT[] =
    "local n = redis.call('HLEN', KEYS[3])\n"
    "if n ~= tonumber(ARGV[4]) then\n"
    "  redis.call('DEL', KEYS[3])\n"
    "  return {0, n}\n"
    "end\n"
    "redis.call('DEL', KEYS[2])\n"
    "if n > 0 then\n"
    "  redis.call('RENAME', KEYS[3], KEYS[2])\n"
    "  redis.call('PERSIST', KEYS[2])\n"
    "end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[3], '*', 'inc', ARGV[1],"
    " 'seq', '1', 'reset', '1')\n"
    "return {1, n}\n";

/* How long a staging hash lives after its last chunk. */
#define STAGE_TTL_MS "60000"

/* Batches written and not yet confirmed, at most. */
#define SEND_WINDOW 4

/* Members staged per HSET command. */
#define STAGE_CHUNK 512

/* ---- changes, from the registry's callback ------------------------------ */

void presence__cl_outbox_event(presence_registry *registry,
                               const presence_event *event, void *user_data)
{
    (void)registry;
    struct presence_cluster *c = user_data;
    if (event->node_id != NULL && event->node_id[0] != '\0') {
        return; /* another node's change: it writes its own */
    }
    bool wake = false;
    /* Read before the lock, which is never held across a registry call. */
    int64_t now = c->batch_delay_ms > 0 ? presence__cl_now_ms(c) : 0;
    pthread_mutex_lock(&c->outbox_lock);
    if (c->outbox_keep && !c->outbox_lost) {
        size_t before = c->outbox_ops.len;
        bool ok;
        if (event->kind == PRESENCE_EVENT_LEAVE) {
            ok = presence__cl_encode_leave(&c->outbox_ops, event->channel,
                                           event->client_id,
                                           (int)event->reason);
        } else {
            ok = presence__cl_encode_join(
                &c->outbox_ops, event->channel, event->client_id,
                event->user_id, event->conn_info, event->conn_info_len,
                event->chan_info, event->chan_info_len);
        }
        if (ok) {
            if (c->outbox_count++ == 0) {
                c->outbox_since = now;
            }
        } else {
            /* The change cannot be kept: the next announce carries it. */
            c->outbox_ops.len = before;
            c->outbox_lost = true;
        }
        wake = !c->wake_pending;
        c->wake_pending = true;
    }
    pthread_mutex_unlock(&c->outbox_lock);
    if (wake) {
        presence__cl_wake(c);
    }
}

void presence__cl_outbox_keep(struct presence_cluster *c, bool keep)
{
    pthread_mutex_lock(&c->outbox_lock);
    c->outbox_keep = keep;
    c->outbox_ops.len = 0;
    c->outbox_count = 0;
    c->outbox_lost = false;
    pthread_mutex_unlock(&c->outbox_lock);
    /* What was not sent yet is in the announce that follows. */
    presence__cl_buf_free(&c->sending);
    c->sending_pos = 0;
    c->sending_count = 0;
    atomic_store(&c->sending_left, 0);
}

/* ---- writing them ------------------------------------------------------- */

struct flush_ctx {
    struct presence_cluster *c;
    uint64_t generation;
    size_t count;
};

static void announce_again(struct presence_cluster *c, const char *why)
{
    if (c->self == SELF_ONLINE) {
        presence__cl_log(c, PRESENCE_CLUSTER_LOG_WARNING,
                         "node %s: %s; announcing its members again",
                         c->node_id, why);
        presence__cl_announce(c);
    }
}

static void on_flushed(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct flush_ctx *ctx = privdata;
    struct presence_cluster *c = ctx->c;
    redisReply *reply = r;
    atomic_fetch_sub(&c->inflight, ctx->count);
    if (reply != NULL && ctx->generation == c->generation) {
        c->batches_inflight--;
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer == 1) {
            atomic_fetch_add(&c->sent, ctx->count);
            presence__cl_outbox_flush(c); /* room in the window */
        } else if (reply->type == REDIS_REPLY_INTEGER) {
            announce_again(c, "its lease ran out");
        } else {
            presence__cl_log(c, PRESENCE_CLUSTER_LOG_ERROR, "write failed: %s",
                             reply->type == REDIS_REPLY_ERROR ? reply->str
                                                              : "reply");
            announce_again(c, "a write failed");
        }
    }
    presence__cl_free(&c->alloc, ctx, sizeof *ctx);
}

/* One EVAL of FLUSH_SCRIPT for the ops in ops[0, len). */
static bool send_batch(struct presence_cluster *c, const char *ops,
                       size_t len, size_t count)
{
    const presence_allocator *a = &c->alloc;
    size_t argc = 10 + 2 * count;
    size_t argv_size = presence__cl_mul_size(argc, sizeof(const char *));
    size_t lens_size = presence__cl_mul_size(argc, sizeof(size_t));
    const char **argv = presence__cl_malloc(a, argv_size);
    size_t *lens = presence__cl_malloc(a, lens_size);
    struct flush_ctx *ctx = presence__cl_malloc(a, sizeof *ctx);
    char seq[24], maxlen[24];
    bool ok = argv != NULL && lens != NULL && ctx != NULL;
    if (ok) {
        snprintf(seq, sizeof seq, "%" PRIu64, c->seq + 1);
        snprintf(maxlen, sizeof maxlen, "%zu", c->log_max_len);
        const char *fixed[10] = {"EVAL",         FLUSH_SCRIPT, "3",
                                 c->key_lease,   c->key_members, c->key_log,
                                 c->inc,         seq,          maxlen,
                                 NULL};
        for (size_t i = 0; i < 9; i++) {
            argv[i] = fixed[i];
            lens[i] = strlen(fixed[i]);
        }
        argv[9] = ops;
        lens[9] = len;
        size_t pos = 0;
        for (size_t i = 0; ok && i < count; i++) {
            const char *value;
            size_t value_len;
            ok = presence__cl_split_op(ops, len, &pos, &argv[10 + 2 * i],
                                       &lens[10 + 2 * i], &value, &value_len);
            argv[11 + 2 * i] = value != NULL ? value : "";
            lens[11 + 2 * i] = value_len;
        }
    }
    if (ok) {
        *ctx = (struct flush_ctx){c, c->generation, count};
        ok = presence__cl_conn_command(&c->cmd, on_flushed, ctx, (int)argc,
                                       argv, lens);
    }
    if (ok) {
        c->seq++;
        c->batches_inflight++;
        atomic_fetch_add(&c->inflight, count);
    } else {
        presence__cl_free(a, ctx, sizeof *ctx);
    }
    presence__cl_free(a, argv, argv_size);
    presence__cl_free(a, lens, lens_size);
    return ok;
}

void presence__cl_outbox_flush(struct presence_cluster *c)
{
    if (c->self != SELF_ONLINE) {
        return;
    }
    if (c->sending_count == 0) {
        /* Take what the callbacks queued, once the oldest has waited the
         * batch delay. */
        bool lost;
        bool wait = c->batch_delay_ms > 0 && !c->leaving;
        int64_t now = wait ? presence__cl_now_ms(c) : 0;
        pthread_mutex_lock(&c->outbox_lock);
        int64_t due = c->outbox_since + c->batch_delay_ms;
        if (c->outbox_count > 0 && wait && now < due) {
            pthread_mutex_unlock(&c->outbox_lock);
            c->flush_at = due;
            return;
        }
        c->flush_at = 0;
        presence__cl_buf_free(&c->sending);
        c->sending = c->outbox_ops;
        c->sending_count = c->outbox_count;
        lost = c->outbox_lost;
        c->outbox_ops = (struct presence__cl_buf){.alloc = &c->alloc};
        c->outbox_count = 0;
        c->wake_pending = false;
        pthread_mutex_unlock(&c->outbox_lock);
        c->sending_pos = 0;
        atomic_store(&c->sending_left, c->sending_count);
        if (lost) {
            announce_again(c, "a change could not be queued");
            return;
        }
    }
    while (c->sending_count > 0 && c->batches_inflight < SEND_WINDOW) {
        size_t start = c->sending_pos, pos = start, n = 0;
        while (n < c->sending_count && n < c->batch_max) {
            const char *f, *v;
            size_t fl, vl;
            if (!presence__cl_split_op(c->sending.data, c->sending.len, &pos,
                                       &f, &fl, &v, &vl)) {
                break; /* cannot happen: we encoded them */
            }
            n++;
        }
        if (n == 0 ||
            !send_batch(c, c->sending.data + start, pos - start, n)) {
            announce_again(c, "a batch could not be sent");
            return;
        }
        c->sending_pos = pos;
        c->sending_count -= n;
        atomic_store(&c->sending_left, c->sending_count);
    }
}

/* ---- the announce ------------------------------------------------------- */

static void new_incarnation(struct presence_cluster *c)
{
    uint64_t r[2] = {0, 0};
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        r[0] ^= (uint64_t)presence__cl_now_ms(c);
        r[1] ^= (uint64_t)(uintptr_t)c;
    }
    snprintf(c->inc, sizeof c->inc, "%016" PRIx64 "%016" PRIx64, r[0], r[1]);
}

/* Tell the others: the directory entry, and hello (they load it). */
static void say_hello(struct presence_cluster *c)
{
    const char *dir[] = {"HSET", c->key_nodes, c->node_id, c->inc};
    const char *hello[] = {"XADD",   c->key_events, "MAXLEN", "~", "10000",
                           "*",      "type",        "hello",  "node",
                           c->node_id, "inc",       c->inc};
    PRESENCE__CL_SEND(&c->cmd, NULL, NULL, dir);
    PRESENCE__CL_SEND(&c->cmd, NULL, NULL, hello);
}

static void on_announced(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct flush_ctx *ctx = privdata;
    struct presence_cluster *c = ctx->c;
    redisReply *reply = r;
    if (reply != NULL && ctx->generation == c->generation &&
        c->self == SELF_ANNOUNCING) {
        bool well_formed = reply->type == REDIS_REPLY_ARRAY &&
                           reply->elements == 2 &&
                           reply->element[0]->type == REDIS_REPLY_INTEGER &&
                           reply->element[1]->type == REDIS_REPLY_INTEGER;
        if (well_formed && reply->element[0]->integer == 1) {
            c->self = SELF_ONLINE;
            c->seq = 1;
            c->renew_at = presence__cl_now_ms(c) + c->lease_ms / 3;
            presence__cl_log(c, PRESENCE_CLUSTER_LOG_INFO,
                             "node %s announced %zu members (incarnation %s)",
                             c->node_id, ctx->count, c->inc);
            say_hello(c);
            presence__cl_sync_start(c);
            presence__cl_outbox_flush(c);
        } else if (well_formed) {
            /* Not all that was staged is there: the staging hash expired
             * or was deleted under the announce. Nothing was changed. */
            presence__cl_log(
                c, PRESENCE_CLUSTER_LOG_WARNING,
                "node %s: announce refused: %lld of its %zu members "
                "reached Redis; announcing again",
                c->node_id, reply->element[1]->integer, ctx->count);
            presence__cl_announce(c);
        } else {
            presence__cl_log(
                c, PRESENCE_CLUSTER_LOG_ERROR, "announce failed: %s",
                reply->type == REDIS_REPLY_ERROR ? reply->str : "reply");
            c->self = SELF_OFFLINE;
            presence__cl_conn_drop(&c->cmd);
        }
    }
    presence__cl_free(&c->alloc, ctx, sizeof *ctx);
}

static bool send_argv(struct presence_cluster *c, size_t argc,
                      const char **argv, const size_t *lens)
{
    return presence__cl_conn_command(&c->cmd, NULL, NULL, (int)argc, argv,
                                     lens);
}

/* The staging hash, STAGE_CHUNK members at a time (STAGE_SCRIPT). */
static bool stage_members(struct presence_cluster *c,
                          const presence_snapshot *snap)
{
    enum { FIXED = 5 }; /* EVAL script 1 key ttl */
    const presence_allocator *a = &c->alloc;
    const size_t argv_size = (FIXED + 2 * STAGE_CHUNK) * sizeof(char *);
    const size_t lens_size = (FIXED + 2 * STAGE_CHUNK) * sizeof(size_t);
    const size_t offs_size = 2 * STAGE_CHUNK * sizeof(size_t);
    const char **argv = presence__cl_malloc(a, argv_size);
    size_t *lens = presence__cl_malloc(a, lens_size);
    size_t *offs = presence__cl_malloc(a, offs_size);
    struct presence__cl_buf b = {.alloc = a};
    bool ok = argv != NULL && lens != NULL && offs != NULL;
    for (size_t at = 0; ok && at < snap->count; at += STAGE_CHUNK) {
        size_t n = snap->count - at < STAGE_CHUNK ? snap->count - at
                                                  : STAGE_CHUNK;
        b.len = 0;
        for (size_t i = 0; ok && i < n; i++) {
            const presence_member *m = &snap->members[at + i];
            offs[2 * i] = b.len;
            ok = presence__cl_encode_field(&b, m->channel, m->client_id);
            offs[2 * i + 1] = b.len;
            ok = ok && presence__cl_encode_member(
                           &b, m->user_id, m->conn_info, m->conn_info_len,
                           m->chan_info, m->chan_info_len);
        }
        if (!ok) {
            break;
        }
        const char *fixed[FIXED] = {"EVAL", STAGE_SCRIPT, "1",
                                    c->key_staging, STAGE_TTL_MS};
        for (size_t i = 0; i < FIXED; i++) {
            argv[i] = fixed[i];
            lens[i] = strlen(fixed[i]);
        }
        for (size_t i = 0; i < 2 * n; i++) {
            size_t end = i + 1 < 2 * n ? offs[i + 1] : b.len;
            argv[FIXED + i] = b.data + offs[i];
            lens[FIXED + i] = end - offs[i];
        }
        ok = send_argv(c, FIXED + 2 * n, argv, lens);
    }
    presence__cl_buf_free(&b);
    presence__cl_free(a, argv, argv_size);
    presence__cl_free(a, lens, lens_size);
    presence__cl_free(a, offs, offs_size);
    return ok;
}

/* Each announce stages into a hash of its own, "{P:N}.staging.<inc>":
 * no reap of this node (which a node that finds its lease gone may meet)
 * and no earlier announce of it can touch the one under way. */
static void set_staging_key(struct presence_cluster *c)
{
    snprintf(c->key_staging + c->key_staging_base, PRESENCE__CL_ID_MAX + 1,
             "%s", c->inc);
}

void presence__cl_announce(struct presence_cluster *c)
{
    c->announce_at = 0;
    c->self = SELF_ANNOUNCING;
    /* Changes from now on are kept and written after the announce; the
     * snapshot taken next already holds those made before. */
    presence__cl_outbox_keep(c, true);
    presence_snapshot *snap = NULL;
    struct flush_ctx *ctx = presence__cl_malloc(&c->alloc, sizeof *ctx);
    int rc = presence_node_memberships(c->registry, "", &snap);
    if (rc != PRESENCE_OK || ctx == NULL) {
        presence__cl_log(
            c, PRESENCE_CLUSTER_LOG_ERROR,
            "announce: no snapshot of the local members (%s)",
            presence_strerror(rc != PRESENCE_OK ? rc : PRESENCE_ERR_NOMEM));
        presence__cl_free(&c->alloc, ctx, sizeof *ctx);
        presence_snapshot_free(snap);
        c->self = SELF_OFFLINE;
        presence__cl_outbox_keep(c, false);
        c->announce_at = presence__cl_now_ms(c) + 100;
        return;
    }
    bool ok = true;
    if (c->inc[0] != '\0') {
        /* What an earlier announce may have left (it expires anyway). */
        const char *del[] = {"DEL", c->key_staging};
        ok = PRESENCE__CL_SEND(&c->cmd, NULL, NULL, del);
    }
    new_incarnation(c);
    set_staging_key(c);
    char lease[24], maxlen[24], count[24];
    snprintf(lease, sizeof lease, "%" PRId64, c->lease_ms);
    snprintf(maxlen, sizeof maxlen, "%zu", c->log_max_len);
    snprintf(count, sizeof count, "%zu", snap->count);
    const char *fin[] = {"EVAL",        ANNOUNCE_SCRIPT, "4",
                         c->key_lease,  c->key_members,  c->key_staging,
                         c->key_log,    c->inc,          lease,
                         maxlen,        count};
    *ctx = (struct flush_ctx){c, c->generation, snap->count};
    ok = ok && stage_members(c, snap) &&
         PRESENCE__CL_SEND(&c->cmd, on_announced, ctx, fin);
    if (!ok) {
        /* not handed to hiredis */
        presence__cl_free(&c->alloc, ctx, sizeof *ctx);
    }
    presence_snapshot_free(snap);
    if (!ok) {
        /* This may run inside hiredis's connect callback. */
        presence__cl_log(c, PRESENCE_CLUSTER_LOG_ERROR,
                         "announce could not be sent");
        presence__cl_conn_drop(&c->cmd);
    }
}
