/*
 * This server as one node of several, on libpresence-cluster.
 *
 * The handle runs on a thread of its own (presence_cluster_start_thread()),
 * so that Redis never slows the server's event loop (net.h), or, with
 * "redis_on_loop", on that loop (ps_net_add_source(): its descriptor and
 * its deadline), where a remote change wakes no other thread. That thread
 * applies the other nodes' joins and leaves to the registry, so the
 * registry's event callback (ps_hub_on_event) also runs there. The hub
 * was written for any thread: it takes the hub lock and then queue locks,
 * which nobody holds across a libpresence call, and never waits for the
 * network. The handle's own callback, which queues this node's changes for
 * Redis, runs on the thread whose call made them (the loop) and never
 * waits for Redis either.
 * SPDX-License-Identifier: MIT
 */
#include "cluster_link.h"

#include "config.h"
#include "mem.h"
#include "net.h"
#include "server.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef PS_HAVE_CLUSTER

#include <presence_cluster.h>

bool ps_cluster_supported(void)
{
    return true;
}

/* Whether the handle's debug messages are logged (PRESENCE_SERVER_DEBUG). */
static bool log_debug;

static bool debug_enabled(void)
{
    const char *v = getenv("PRESENCE_SERVER_DEBUG");
    return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

/* The handle's diagnostics, through the server's log. Called on the
 * handle's thread. */
static void log_cluster(presence_cluster_log_level level, const char *message,
                        void *user_data)
{
    (void)user_data;
    switch (level) {
    case PRESENCE_CLUSTER_LOG_DEBUG:
        if (log_debug) {
            ps_log("redis: debug: %s", message);
        }
        break;
    case PRESENCE_CLUSTER_LOG_INFO:
        ps_log("redis: %s", message);
        break;
    case PRESENCE_CLUSTER_LOG_WARNING:
        ps_log("redis: warning: %s", message);
        break;
    default:
        ps_log("redis: error: %s", message);
        break;
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait for the first synchronisation, at most @p max_ms: a node that
 * answered before it had loaded the others' members would give a partial
 * picture to its first clients. */
static void wait_for_sync(presence_cluster *cluster, int64_t max_ms,
                          const char *where, bool drive)
{
    int64_t deadline = ps_now_ms() + max_ms;
    presence_cluster_status st;
    memset(&st, 0, sizeof st);
    for (;;) {
        if (presence_cluster_status_get(cluster, &st) == PRESENCE_OK &&
            st.synced) {
            return;
        }
        if (ps_now_ms() >= deadline) {
            break;
        }
        if (drive) {
            (void)presence_cluster_run(cluster, 10);
        } else {
            sleep_ms(10);
        }
    }
    ps_log("warning: redis: %s at %s; serving anyway, this node's "
           "presence is shared once it is",
           st.connected ? "not synchronised yet" : "not reachable yet", where);
}

/* The handle's turn on the server's loop: what is ready, then when it
 * must run again. */
static int64_t run_on_loop(void *ctx)
{
    presence_cluster *cluster = ctx;
    (void)presence_cluster_process(cluster);
    return presence_cluster_timeout_ms(cluster);
}

int ps_cluster_link_start(ps_server *server, char *err, size_t err_len)
{
    const ps_config *cfg = server->cfg;
    if (cfg->engine != PS_ENGINE_REDIS) {
        return 0;
    }
    log_debug = debug_enabled();
    presence_cluster_config cc;
    presence_cluster_config_init(&cc);
    cc.redis_host = cfg->redis.host;
    cc.redis_port = cfg->redis.port;
    cc.redis_password = cfg->redis.password;
    cc.redis_db = cfg->redis.db;
    cc.prefix = cfg->redis_prefix ? cfg->redis_prefix : PS_REDIS_PREFIX_DEFAULT;
    cc.node_id = cfg->name;
    if (cfg->node_lease_ms > 0) {
        cc.lease_ms = cfg->node_lease_ms;
    }
    cc.batch_delay_ms = cfg->redis_batch_delay_ms;
    cc.log = log_cluster;
    /* The handle allocates through the server's allocator, as the
     * registry does (mem.c). */
    ps_mem_presence_allocator(&cc.allocator);

    presence_cluster *cluster = NULL;
    int rc = presence_cluster_new(server->registry, &cc, &cluster);
    if (rc != PRESENCE_OK) {
        return ps_fail(err, err_len, "redis: cannot attach to %s:%d: %s",
                       cfg->redis.host, cfg->redis.port, presence_strerror(rc));
    }
    /* On the loop, the handle's work and the clients' share one thread:
     * no wake-up between them for each remote change, and a node's
     * snapshot is applied between two of the loop's turns. */
    bool on_loop = cfg->redis_on_loop;
    rc = on_loop ? PRESENCE_OK : presence_cluster_start_thread(cluster);
    if (rc != PRESENCE_OK) {
        presence_cluster_free(cluster);
        return ps_fail(err, err_len, "redis: cannot start its thread: %s",
                       presence_strerror(rc));
    }
    char where[300];
    ps_redis_address_format(&cfg->redis, where, sizeof where);
    wait_for_sync(cluster, cc.lease_ms, where, on_loop);
    if (on_loop && ps_net_add_source(server->net, presence_cluster_fd(cluster),
                                     run_on_loop, cluster) != 0) {
        presence_cluster_free(cluster);
        return ps_fail(err, err_len, "redis: cannot watch its descriptor");
    }
    server->cluster = cluster;
    server->cluster_lease_ms = cc.lease_ms;
    return 0;
}

void ps_cluster_link_stop(ps_server *server)
{
    if (server == NULL || server->cluster == NULL) {
        return;
    }
    int rc = presence_cluster_free(server->cluster);
    if (rc != PRESENCE_OK) {
        /* Only from the wrong thread, which this server never is. */
        ps_log("redis: leaving the cluster failed: %s", presence_strerror(rc));
        return;
    }
    server->cluster = NULL;
}

const char *ps_cluster_link_node_id(const ps_server *server)
{
    return server->cluster ? presence_cluster_node_id(server->cluster) : NULL;
}

#else /* !PS_HAVE_CLUSTER */

bool ps_cluster_supported(void)
{
    return false;
}

int ps_cluster_link_start(ps_server *server, char *err, size_t err_len)
{
    if (server->cfg->engine != PS_ENGINE_REDIS) {
        return 0;
    }
    return ps_fail(err, err_len,
                   "\"engine\": \"redis\" (--redis): this presence-server was "
                   "built without Redis support (hiredis was not found at "
                   "build time; install libhiredis-dev and rebuild)");
}

void ps_cluster_link_stop(ps_server *server)
{
    (void)server;
}

const char *ps_cluster_link_node_id(const ps_server *server)
{
    (void)server;
    return NULL;
}

#endif /* PS_HAVE_CLUSTER */

int64_t ps_cluster_link_lease_ms(const ps_server *server)
{
    return server->cluster ? server->cluster_lease_ms : 0;
}
