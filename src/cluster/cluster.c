/*
 * The cluster handle: configuration, the two Redis connections and their
 * reconnection, the lease, timers, and the loop that drives them through
 * one epoll descriptor.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "cluster_internal.h"

/* KEYS lease; ARGV inc ms: renew the lease if it is still ours. */
static const char RENEW_SCRIPT[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v == ARGV[1] then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return 1\n"
    "end\n"
    "if v then return 2 end\n"
    "return 0\n";

/* KEYS lease members log staging; ARGV inc: leave, if still ours (the
 * staging hash is the last announce's, renamed away unless it failed). */
static const char LEAVE_SCRIPT[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

#define RECONNECT_FIRST_MS 50

/* Times beyond +-2^46 ms are read as that bound, as the registry does:
 * differences of two of them cannot overflow. */
#define CLOCK_BOUND ((int64_t)1 << 46)

static int64_t registry_time(struct presence_cluster *c)
{
    int64_t t = presence_now_ms(c->registry);
    if (t > CLOCK_BOUND) {
        return CLOCK_BOUND;
    }
    return t < -CLOCK_BOUND ? -CLOCK_BOUND : t;
}

int64_t presence__cl_now_ms(struct presence_cluster *c)
{
    int64_t now = registry_time(c) - c->clock_origin;
    int64_t last = atomic_load(&c->clock_last);
    while (now > last) {
        if (atomic_compare_exchange_weak(&c->clock_last, &last, now)) {
            return now;
        }
    }
    return last; /* the clock went back: time stands still meanwhile */
}

void presence__cl_log(struct presence_cluster *c,
                      presence_cluster_log_level level, const char *fmt, ...)
{
    if (c->log == NULL) {
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->log(level, msg, c->log_user_data);
}

void presence__cl_wake(struct presence_cluster *c)
{
    uint64_t one = 1;
    ssize_t n = write(c->wake_fd, &one, sizeof one);
    (void)n; /* a full counter is still readable: the wake is not lost */
}

/* ---- configuration ------------------------------------------------------ */

void presence_cluster_config_init_sized(presence_cluster_config *config,
                                        size_t size)
{
    presence_cluster_config d = {
        .struct_size = sizeof d,
        .redis_host = "127.0.0.1",
        .redis_port = 6379,
        .prefix = "presence",
        .lease_ms = 3000,
        .connect_timeout_ms = 1000,
        .reconnect_max_ms = 1000,
        .log_max_len = 100000,
        .batch_max = 4096,
    };
    if (config == NULL) {
        return;
    }
    size_t n = size < sizeof d ? size : sizeof d;
    memcpy(config, &d, n);
    config->struct_size = n;
}

/* Printable ASCII without braces (they would break the hash tags). */
static bool key_part_ok(const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len == 0 || len > max) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '{' || ch == '}') {
            return false;
        }
    }
    return true;
}

/* "{prefix:node}.what" (or "{prefix}.what"), in a block of its length
 * + 1 + `room` bytes. */
static char *key_of(struct presence_cluster *c, const char *node,
                    const char *what, size_t room)
{
    size_t size = strlen(c->prefix) + (node ? strlen(node) + 1 : 0) +
                  strlen(what) + 4 + room;
    char *k = presence__cl_malloc(&c->alloc, size);
    if (k != NULL) {
        if (node != NULL) {
            snprintf(k, size, "{%s:%s}.%s", c->prefix, node, what);
        } else {
            snprintf(k, size, "{%s}.%s", c->prefix, what);
        }
    }
    return k;
}

static void random_node_id(struct presence_cluster *c, char *out, size_t size)
{
    uint64_t r = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(&r, sizeof r, 1, f) != 1) {
        r = (uint64_t)presence__cl_now_ms(c) ^ ((uint64_t)getpid() << 32);
    }
    if (f != NULL) {
        fclose(f);
    }
    snprintf(out, size, "%016" PRIx64, r);
}

/* ---- connections -------------------------------------------------------- */

static void both_up_check(struct presence_cluster *c);

static void on_reader_id(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct presence_cluster *c = privdata;
    redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        c->reader_id = reply->integer;
    }
}

/* The connection is usable: its AUTH and SELECT were accepted. */
static void conn_ready(struct presence__cl_conn *conn)
{
    struct presence_cluster *c = conn->cluster;
    conn->ready = true;
    if (conn == &c->reader) {
        const char *id[] = {"CLIENT", "ID"};
        PRESENCE__CL_SEND(conn, on_reader_id, c, id);
    }
    both_up_check(c);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct presence__cl_conn *conn = privdata;
    redisReply *reply = r;
    (void)ac;
    if (reply == NULL) {
        return; /* closing */
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        presence__cl_log(conn->cluster, PRESENCE_CLUSTER_LOG_ERROR,
                         "%s connection set-up refused: %s", conn->name,
                         reply->str);
        presence__cl_conn_close(conn);
    } else if (--conn->setup_pending == 0) {
        conn_ready(conn);
    }
}

static void conn_up(struct presence__cl_conn *conn)
{
    struct presence_cluster *c = conn->cluster;
    conn->setup_pending = 0;
    if (c->password != NULL) {
        const char *auth[] = {"AUTH", c->password};
        conn->setup_pending +=
            PRESENCE__CL_SEND(conn, on_setup_reply, conn, auth);
    }
    if (c->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->db);
        const char *sel[] = {"SELECT", db};
        conn->setup_pending +=
            PRESENCE__CL_SEND(conn, on_setup_reply, conn, sel);
    }
    if (conn->setup_pending == 0) {
        conn_ready(conn);
    }
}

static void conn_down(struct presence__cl_conn *conn)
{
    struct presence_cluster *c = conn->cluster;
    bool was_online = c->self != SELF_OFFLINE;
    c->self = SELF_OFFLINE;
    atomic_store(&c->connected, false);
    c->generation++; /* replies still in flight are stale */
    c->reading = false;
    c->read_stale = false;
    c->unblock_sent = false;
    c->reader_id = 0;
    c->check_running = false;
    c->lease_renewing = false;
    c->events_id_known = false;
    for (struct presence__cl_node *n = c->nodes; n != NULL; n = n->next) {
        n->loading = false;
        n->reload = false;
    }
    presence__cl_outbox_keep(c, false);
    atomic_store(&c->synced, false);
    atomic_store(&c->inflight, 0);
    c->batches_inflight = 0;
    /* One connection is useless without the other. */
    struct presence__cl_conn *other = conn == &c->cmd ? &c->reader : &c->cmd;
    presence__cl_conn_close(other);
    if (c->cmd.state == CONN_DOWN && c->reader.state == CONN_DOWN) {
        if (was_online) {
            c->reconnect_delay = RECONNECT_FIRST_MS;
        }
        c->reconnect_at = presence__cl_now_ms(c) + c->reconnect_delay;
        c->reconnect_delay = c->reconnect_delay * 2 > c->reconnect_max_ms
                                 ? c->reconnect_max_ms
                                 : c->reconnect_delay * 2;
    }
}

static void both_up_check(struct presence_cluster *c)
{
    if (!c->cmd.ready || !c->reader.ready || c->self != SELF_OFFLINE) {
        return;
    }
    atomic_fetch_add(&c->connects, 1);
    atomic_store(&c->connected, true);
    c->reconnect_delay = RECONNECT_FIRST_MS;
    /* Nodes we knew may be re-announcing too: none is declared down
     * before they had a lease's time to come back. */
    c->grace_until = presence__cl_now_ms(c) + c->lease_ms;
    c->check_at = presence__cl_now_ms(c) + c->lease_ms / 4;
    presence__cl_log(c, PRESENCE_CLUSTER_LOG_INFO,
                     "node %s connected to %s:%d", c->node_id, c->host,
                     c->port);
    presence__cl_announce(c);
}

static void start_connections(struct presence_cluster *c)
{
    c->reconnect_at = 0;
    if (!presence__cl_conn_start(&c->cmd) ||
        !presence__cl_conn_start(&c->reader)) {
        presence__cl_conn_close(&c->cmd);
        presence__cl_conn_close(&c->reader);
        c->reconnect_at = presence__cl_now_ms(c) + c->reconnect_delay;
    }
}

/* ---- lease -------------------------------------------------------------- */

struct renew_ctx {
    struct presence_cluster *c;
    uint64_t generation;
};

static void on_renewed(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct renew_ctx *ctx = privdata;
    struct presence_cluster *c = ctx->c;
    redisReply *reply = r;
    if (reply != NULL && ctx->generation == c->generation) {
        c->lease_renewing = false;
        if (reply->type == REDIS_REPLY_INTEGER && reply->integer != 1 &&
            c->self == SELF_ONLINE) {
            if (reply->integer == 2) {
                presence__cl_log(
                    c, PRESENCE_CLUSTER_LOG_ERROR,
                    "another process holds the lease of node id %s: "
                    "node ids must be unique",
                    c->node_id);
            } else {
                presence__cl_log(
                    c, PRESENCE_CLUSTER_LOG_WARNING,
                    "node %s lost its lease; announcing its members "
                    "again",
                    c->node_id);
            }
            presence__cl_announce(c);
        }
    }
    presence__cl_free(&c->alloc, ctx, sizeof *ctx);
}

static void renew_lease(struct presence_cluster *c)
{
    struct renew_ctx *ctx = presence__cl_malloc(&c->alloc, sizeof *ctx);
    if (ctx == NULL) {
        return;
    }
    *ctx = (struct renew_ctx){c, c->generation};
    char ms[24];
    snprintf(ms, sizeof ms, "%" PRId64, c->lease_ms);
    const char *argv[] = {"EVAL", RENEW_SCRIPT, "1", c->key_lease, c->inc,
                          ms};
    if (PRESENCE__CL_SEND(&c->cmd, on_renewed, ctx, argv)) {
        c->lease_renewing = true;
    } else {
        presence__cl_free(&c->alloc, ctx, sizeof *ctx);
    }
}

/* ---- the handle --------------------------------------------------------- */

static void cluster_free_memory(struct presence_cluster *c)
{
    if (c->epoll_fd >= 0) {
        close(c->epoll_fd);
    }
    if (c->wake_fd >= 0) {
        close(c->wake_fd);
    }
    const presence_allocator *a = &c->alloc;
    presence__cl_free_str(a, c->host);
    presence__cl_free_str(a, c->password);
    presence__cl_free_str(a, c->key_lease);
    presence__cl_free_str(a, c->key_members);
    if (c->key_staging != NULL) {
        presence__cl_free(a, c->key_staging,
                          c->key_staging_base + 1 + PRESENCE__CL_ID_MAX);
    }
    presence__cl_free_str(a, c->key_log);
    presence__cl_free_str(a, c->key_nodes);
    presence__cl_free_str(a, c->key_events);
    presence__cl_free_str(a, c->prefix);
    presence__cl_buf_free(&c->outbox_ops);
    presence__cl_buf_free(&c->sending);
    presence__cl_sync_free(c);
    pthread_mutex_destroy(&c->process_lock);
    pthread_mutex_destroy(&c->outbox_lock);
    presence_allocator alloc = c->alloc;
    presence__cl_free(&alloc, c, sizeof *c);
}

int presence_cluster_new(presence_registry *registry,
                         const presence_cluster_config *config,
                         presence_cluster **out)
{
    if (registry == NULL || config == NULL || out == NULL ||
        config->struct_size == 0) {
        return PRESENCE_ERR_INVALID;
    }
    presence_cluster_config cfg;
    presence_cluster_config_init(&cfg);
    memcpy(&cfg, config,
           config->struct_size < sizeof cfg ? config->struct_size
                                            : sizeof cfg);
    if (cfg.redis_host == NULL || cfg.redis_host[0] == '\0' ||
        cfg.redis_port <= 0 || cfg.redis_port > 65535 || cfg.redis_db < 0 ||
        cfg.prefix == NULL ||
        !key_part_ok(cfg.prefix, PRESENCE_CLUSTER_PREFIX_MAX) ||
        cfg.lease_ms < PRESENCE_CLUSTER_LEASE_MIN_MS ||
        cfg.connect_timeout_ms <= 0 ||
        cfg.reconnect_max_ms <= 0 || cfg.log_max_len == 0 ||
        cfg.batch_max == 0 || cfg.batch_delay_ms < 0 ||
        cfg.batch_delay_ms > 1000) {
        return PRESENCE_ERR_INVALID;
    }
    if (cfg.node_id != NULL && strlen(cfg.node_id) > PRESENCE__CL_ID_MAX) {
        return PRESENCE_ERR_TOO_LONG;
    }
    if (cfg.node_id != NULL &&
        !key_part_ok(cfg.node_id, PRESENCE__CL_ID_MAX)) {
        return PRESENCE_ERR_INVALID;
    }
    presence_allocator alloc;
    if (!presence__cl_alloc_init(&alloc, &cfg.allocator)) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence_cluster *c = presence__cl_calloc(&alloc, 1, sizeof *c);
    if (c == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    c->alloc = alloc;
    c->outbox_ops = (struct presence__cl_buf){.alloc = &c->alloc};
    c->sending = (struct presence__cl_buf){.alloc = &c->alloc};
    c->epoll_fd = -1;
    c->wake_fd = -1;
    pthread_mutex_init(&c->process_lock, NULL);
    pthread_mutex_init(&c->outbox_lock, NULL);
    c->registry = registry;
    /* The handle's times count from 1 here (0 means "not set"). */
    c->clock_origin = registry_time(c) - 1;
    atomic_store(&c->clock_last, 1);
    c->port = cfg.redis_port;
    c->db = cfg.redis_db;
    c->lease_ms = cfg.lease_ms;
    c->connect_timeout_ms = cfg.connect_timeout_ms;
    c->reconnect_max_ms = cfg.reconnect_max_ms;
    c->reconnect_delay = RECONNECT_FIRST_MS;
    c->log_max_len = cfg.log_max_len;
    c->batch_max = cfg.batch_max;
    c->batch_delay_ms = cfg.batch_delay_ms;
    c->log = cfg.log;
    c->log_user_data = cfg.log_user_data;
    if (cfg.node_id != NULL) {
        snprintf(c->node_id, sizeof c->node_id, "%s", cfg.node_id);
    } else {
        random_node_id(c, c->node_id, sizeof c->node_id);
    }
    c->host = presence__cl_strdup(&c->alloc, cfg.redis_host);
    c->password = cfg.redis_password
                      ? presence__cl_strdup(&c->alloc, cfg.redis_password)
                      : NULL;
    c->prefix = presence__cl_strdup(&c->alloc, cfg.prefix);
    bool ok = c->host != NULL && c->prefix != NULL &&
              (cfg.redis_password == NULL || c->password != NULL);
    if (ok) {
        c->key_lease = key_of(c, c->node_id, "lease", 0);
        c->key_members = key_of(c, c->node_id, "members", 0);
        /* "{P:N}.staging.<inc>": the incarnation follows (outbox.c) */
        c->key_staging =
            key_of(c, c->node_id, "staging.", PRESENCE__CL_ID_MAX);
        c->key_staging_base = c->key_staging ? strlen(c->key_staging) : 0;
        c->key_log = key_of(c, c->node_id, "log", 0);
        c->key_nodes = key_of(c, NULL, "nodes", 0);
        c->key_events = key_of(c, NULL, "events", 0);
        ok = c->key_lease && c->key_members && c->key_staging &&
             c->key_log && c->key_nodes && c->key_events;
    }
    if (ok) {
        c->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        ok = c->epoll_fd >= 0 && c->wake_fd >= 0 &&
             epoll_ctl(c->epoll_fd, EPOLL_CTL_ADD, c->wake_fd, &ev) == 0;
    }
    presence__cl_conn_init(&c->cmd, c, "command", conn_up, conn_down);
    presence__cl_conn_init(&c->reader, c, "reader", conn_up, conn_down);
    int rc = PRESENCE_ERR_NOMEM;
    if (ok) {
        rc = presence_subscribe(
            registry, PRESENCE_SCOPE_ALL, NULL,
            PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE |
                PRESENCE_EVENT_UPDATE | PRESENCE_EVENTS_EVERY_NAMESPACE,
            presence__cl_outbox_event, c, &c->subscription);
    }
    if (rc != PRESENCE_OK) {
        cluster_free_memory(c);
        return rc;
    }
    c->reconnect_at = presence__cl_now_ms(c); /* connect at the first turn */
    *out = c;
    return PRESENCE_OK;
}

const char *presence_cluster_node_id(const presence_cluster *c)
{
    return c != NULL ? c->node_id : NULL;
}

int presence_cluster_fd(const presence_cluster *c)
{
    return c != NULL ? c->epoll_fd : -1;
}

/* How long replies may be awaited in silence: half a lease, so that a
 * cut connection is replaced before this node's lease runs out (the
 * reader's own wait, XREAD BLOCK, comes on top). */
static int64_t stall_limit(const struct presence_cluster *c,
                           const struct presence__cl_conn *conn)
{
    return c->lease_ms / 2 +
           (conn == &c->reader ? PRESENCE__CL_READ_BLOCK_MS : 0);
}

static int64_t next_deadline(struct presence_cluster *c)
{
    int64_t d = INT64_MAX;
#define EARLIER(t)                                                             \
    do {                                                                       \
        if ((t) > 0 && (t) < d) {                                              \
            d = (t);                                                           \
        }                                                                      \
    } while (0)
    if (c->cmd.state == CONN_DOWN && c->reader.state == CONN_DOWN) {
        EARLIER(c->reconnect_at);
    }
    if (c->cmd.state == CONN_CONNECTING) {
        EARLIER(c->cmd.connect_deadline);
    }
    if (c->reader.state == CONN_CONNECTING) {
        EARLIER(c->reader.connect_deadline);
    }
    if (c->self == SELF_ONLINE) {
        EARLIER(c->renew_at);
        EARLIER(c->check_at);
    }
    int64_t stall;
    presence__cl_conn_stalled(&c->cmd, presence__cl_now_ms(c),
                              stall_limit(c, &c->cmd), &stall);
    EARLIER(stall);
    presence__cl_conn_stalled(&c->reader, presence__cl_now_ms(c),
                              stall_limit(c, &c->reader), &stall);
    EARLIER(stall);
    EARLIER(c->announce_at);
    EARLIER(c->flush_at);
#undef EARLIER
    return d;
}

int64_t presence_cluster_timeout_ms(presence_cluster *c)
{
    if (c == NULL) {
        return -1;
    }
    /* Busy (another thread processes, or a callback asks from inside
     * processing): "now" is always a safe answer. */
    if (pthread_mutex_trylock(&c->process_lock) != 0) {
        return 0;
    }
    int64_t d = next_deadline(c);
    pthread_mutex_unlock(&c->process_lock);
    if (d == INT64_MAX) {
        return -1;
    }
    int64_t now = presence__cl_now_ms(c);
    return d <= now ? 0 : d - now;
}

static void run_timers(struct presence_cluster *c)
{
    int64_t now = presence__cl_now_ms(c);
    if (c->cmd.state == CONN_DOWN && c->reader.state == CONN_DOWN &&
        c->reconnect_at > 0 && now >= c->reconnect_at) {
        start_connections(c);
    }
    presence__cl_conn_check_timeout(&c->cmd, now);
    presence__cl_conn_check_timeout(&c->reader, now);
    if (c->announce_at > 0 && now >= c->announce_at &&
        c->self == SELF_OFFLINE && c->cmd.ready && c->reader.ready) {
        presence__cl_announce(c);
    }
    /* A connection that stopped answering (a silent network cut) is given
     * up: the lease would run out anyway, and the others drop this node;
     * reconnecting brings it back. */
    struct presence__cl_conn *conns[2] = {&c->cmd, &c->reader};
    for (int i = 0; i < 2; i++) {
        int64_t deadline;
        if (presence__cl_conn_stalled(conns[i], now, stall_limit(c, conns[i]),
                                      &deadline)) {
            presence__cl_log(c, PRESENCE_CLUSTER_LOG_WARNING,
                             "%s connection: no answer for %" PRId64
                             " ms; reconnecting",
                             conns[i]->name, stall_limit(c, conns[i]));
            presence__cl_conn_close(conns[i]);
        }
    }
    if (c->self == SELF_ONLINE && now >= c->renew_at) {
        c->renew_at = now + c->lease_ms / 3;
        if (!c->lease_renewing) {
            renew_lease(c);
        }
    }
    if (c->self == SELF_ONLINE && now >= c->check_at) {
        c->check_at = now + c->lease_ms / 4;
        presence__cl_sync_check(c);
    }
}

/* Everything that is ready; the caller holds process_lock. */
static void process_locked(struct presence_cluster *c)
{
    struct epoll_event evs[8];
    int n = epoll_wait(c->epoll_fd, evs, 8, 0);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL) {
            uint64_t count;
            ssize_t r = read(c->wake_fd, &count, sizeof count);
            (void)r;
        } else {
            presence__cl_conn_handle(evs[i].data.ptr, evs[i].events);
        }
    }
    run_timers(c);
    /* An XREAD that could not be issued (out of memory) is tried again. */
    presence__cl_sync_read(c);
    presence__cl_outbox_flush(c);
    /* Connections given up during the turn, now that no hiredis callback
     * is running. */
    struct presence__cl_conn *conns[2] = {&c->cmd, &c->reader};
    for (int i = 0; i < 2; i++) {
        if (conns[i]->drop) {
            presence__cl_conn_close(conns[i]);
        }
    }
}

/* The cluster this thread is processing, if any: presence_cluster_free()
 * from one of its callbacks is refused. Per thread, so that no other
 * thread ever reads it (another thread's free only waits for the lock). */
static _Thread_local const struct presence_cluster *processing_here;

static int process_enter(struct presence_cluster *c,
                         const struct presence_cluster **outer)
{
    if (c->thread_started &&
        !pthread_equal(pthread_self(), c->thread)) {
        return PRESENCE_ERR_BUSY;
    }
    if (pthread_mutex_trylock(&c->process_lock) != 0) {
        return PRESENCE_ERR_BUSY;
    }
    /* A callback of another cluster may process this one. */
    *outer = processing_here;
    processing_here = c;
    return PRESENCE_OK;
}

static void process_leave(struct presence_cluster *c,
                          const struct presence_cluster *outer)
{
    processing_here = outer;
    pthread_mutex_unlock(&c->process_lock);
}

int presence_cluster_process(presence_cluster *c)
{
    if (c == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    const struct presence_cluster *outer = NULL;
    int rc = process_enter(c, &outer);
    if (rc == PRESENCE_OK) {
        process_locked(c);
        process_leave(c, outer);
    }
    return rc;
}

int presence_cluster_run(presence_cluster *c, int max_wait_ms)
{
    if (c == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    int64_t t = presence_cluster_timeout_ms(c);
    int wait = max_wait_ms;
    if (t >= 0 && (wait < 0 || t < wait)) {
        wait = (int)(t > 60000 ? 60000 : t);
    }
    struct pollfd p = {.fd = c->epoll_fd, .events = POLLIN};
    if (poll(&p, 1, wait) < 0 && errno != EINTR) {
        return PRESENCE_ERR_INVALID;
    }
    return presence_cluster_process(c);
}

static void *thread_main(void *arg)
{
    struct presence_cluster *c = arg;
    /* Named for the application's operators (top -H, perf, /proc). */
    prctl(PR_SET_NAME, "presence-redis", 0, 0, 0);
    while (!atomic_load(&c->stopping)) {
        presence_cluster_run(c, 100);
    }
    return NULL;
}

int presence_cluster_start_thread(presence_cluster *c)
{
    if (c == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    pthread_mutex_lock(&c->process_lock);
    int rc = PRESENCE_OK;
    if (c->thread_started) {
        rc = PRESENCE_ERR_BUSY;
    } else if (pthread_create(&c->thread, NULL, thread_main, c) != 0) {
        rc = PRESENCE_ERR_NOMEM;
    } else {
        c->thread_started = true;
    }
    pthread_mutex_unlock(&c->process_lock);
    return rc;
}

int presence_cluster_status_get(presence_cluster *c,
                                presence_cluster_status *out)
{
    if (c == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    pthread_mutex_lock(&c->outbox_lock);
    size_t waiting = c->outbox_count;
    pthread_mutex_unlock(&c->outbox_lock);
    *out = (presence_cluster_status){
        .connected = atomic_load(&c->connected),
        .synced = atomic_load(&c->synced),
        .nodes = atomic_load(&c->live_nodes),
        .pending = waiting + atomic_load(&c->sending_left) +
                   atomic_load(&c->inflight),
        .sent = atomic_load(&c->sent),
        .applied = atomic_load(&c->applied),
        .rejected = atomic_load(&c->rejected),
        .snapshots = atomic_load(&c->snapshots),
        .nodes_down = atomic_load(&c->nodes_down),
        .connects = atomic_load(&c->connects),
    };
    return PRESENCE_OK;
}

/* ---- leaving ------------------------------------------------------------ */

static void on_left(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    (void)r;
    *(bool *)privdata = true;
}

/* Write what waits, then remove this node from Redis and tell the others;
 * wait for it at most connect_timeout_ms. */
static void leave_cluster(struct presence_cluster *c)
{
    if (c->self != SELF_ONLINE) {
        return;
    }
    c->leaving = true; /* what waits goes now */
    presence__cl_outbox_flush(c);
    bool done = false;
    const char *del[] = {"EVAL",         LEAVE_SCRIPT,   "4",
                         c->key_lease,   c->key_members, c->key_log,
                         c->key_staging, c->inc};
    const char *dir[] = {"HDEL", c->key_nodes, c->node_id};
    const char *bye[] = {"XADD",      c->key_events, "MAXLEN", "~", "10000",
                         "*",         "type",        "bye",    "node",
                         c->node_id,  "inc",         c->inc};
    bool ok = PRESENCE__CL_SEND(&c->cmd, NULL, NULL, del) &&
              PRESENCE__CL_SEND(&c->cmd, NULL, NULL, dir) &&
              PRESENCE__CL_SEND(&c->cmd, on_left, &done, bye);
    int64_t until = presence__cl_now_ms(c) + c->connect_timeout_ms;
    while (ok && !done && c->cmd.state == CONN_UP) {
        int64_t now = presence__cl_now_ms(c);
        if (now >= until) {
            break;
        }
        struct pollfd p = {.fd = c->epoll_fd, .events = POLLIN};
        poll(&p, 1, (int)(until - now));
        struct epoll_event evs[8];
        int n = epoll_wait(c->epoll_fd, evs, 8, 0);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &c->cmd) {
                presence__cl_conn_handle(&c->cmd, evs[i].events);
            }
        }
    }
    if (!done) {
        /* on_left must not touch `done` once we return. */
        presence__cl_conn_close(&c->cmd);
    }
}

int presence_cluster_free(presence_cluster *c)
{
    if (c == NULL) {
        return PRESENCE_OK;
    }
    if (processing_here == c ||
        (c->thread_started && pthread_equal(c->thread, pthread_self()))) {
        return PRESENCE_ERR_BUSY;
    }
    presence_unsubscribe(c->registry, c->subscription);
    if (c->thread_started) {
        atomic_store(&c->stopping, true);
        presence__cl_wake(c);
        pthread_join(c->thread, NULL);
        c->thread_started = false;
    }
    pthread_mutex_lock(&c->process_lock);
    leave_cluster(c);
    /* Closing runs the pending callbacks with NULL replies; conn_down
     * would schedule a reconnection that no one will run. */
    presence__cl_conn_close(&c->reader);
    presence__cl_conn_close(&c->cmd);
    pthread_mutex_unlock(&c->process_lock);
    cluster_free_memory(c);
    return PRESENCE_OK;
}
