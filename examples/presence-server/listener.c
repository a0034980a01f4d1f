/*
 * The server on the network: CivetWeb for HTTP and WebSocket around the
 * server of server.c, with the writer threads and the heartbeat.
 * SPDX-License-Identifier: MIT
 */
#include "server.h"

#include "admin.h"
#include "cluster_link.h"
#include "conn.h"
#include "http_api.h"
#include "metrics_http.h"
#include "mem.h"
#include "util.h"
#include "ws_transport.h"

#include <civetweb.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Worker threads beyond the WebSocket ones, for HTTP API calls and for
 * upgrades that are turned away with "connection limit". */
#define SPARE_THREADS 16

/* See start_civetweb(). */
#define WS_IDLE_PING_MS 5000

/* Startup errors from CivetWeb (a port in use, say), kept for the caller. */
static char start_error[256];

static int log_message(const struct mg_connection *mg, const char *message)
{
    (void)mg;
    if (start_error[0] == '\0') { /* the first one says why */
        snprintf(start_error, sizeof start_error, "%s", message);
    }
    ps_log("civetweb: %s", message);
    return 1;
}

static int start_civetweb(ps_server *server, char *err, size_t err_len)
{
    const ps_config *cfg = server->cfg;
    char ports[300];
    char threads[32];
    char ws_timeout[32];
    /* An IPv6 address goes in brackets, as CivetWeb expects. */
    bool v6 = strchr(cfg->address, ':') != NULL;
    snprintf(ports, sizeof ports, v6 ? "[%s]:%d" : "%s:%d", cfg->address,
             cfg->port);
    snprintf(threads, sizeof threads, "%zu", server->max_connections + SPARE_THREADS);
    /* CivetWeb sends a WebSocket ping after this much silence and drops the
     * peer after several unanswered ones: that catches dead peers, which
     * never answer a close frame either. Browsers and ws answer these
     * pings by themselves. */
    snprintf(ws_timeout, sizeof ws_timeout, "%d", WS_IDLE_PING_MS);
    const char *options[] = {
        "listening_ports", ports,
        "num_threads", threads,
        "listen_backlog", "1024",
        "request_timeout_ms", "10000",
        "websocket_timeout_ms", ws_timeout,
        "enable_keep_alive", "no",
        "enable_websocket_ping_pong", "yes",
        NULL,
    };
    struct mg_callbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.log_message = log_message;
    start_error[0] = '\0';
    server->mg = mg_start(&callbacks, server, options);
    if (server->mg == NULL) {
        snprintf(err, err_len, "cannot listen on %s: %s", ports,
                 start_error[0] ? start_error : "CivetWeb failed to start");
        return -1;
    }
    ps_http_api_install(server->mg, server);
    ps_metrics_http_install(server->mg, server);
    ps_ws_transport_install(server->mg, server);
    if (ps_admin_start(server, err, err_len) != 0) {
        mg_stop(server->mg);
        return -1;
    }
    return 0;
}

/* With client_connection_limit 0 the descriptors are the limit: take all
 * the hard limit allows, as Go programs (Centrifugo) do by themselves. */
static void raise_open_file_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int ps_server_start(ps_server **out, const ps_config *cfg, char *err,
                    size_t err_len)
{
    if (!mg_check_feature(16)) {
        snprintf(err, err_len, "this CivetWeb has no WebSocket support");
        return -1;
    }
    if (cfg->client_connection_limit == 0) {
        raise_open_file_limit();
    }
    ps_server *server = ps_calloc(1, sizeof *server);
    if (server == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (ps_server_init(server, cfg, ps_ws_transport_write, err, err_len) != 0) {
        ps_free(server);
        return -1;
    }
    mg_init_library(0);
    if (ps_writer_start(&server->writer, PS_WRITER_THREADS) != 0) {
        snprintf(err, err_len, "cannot start writer threads");
        goto fail;
    }
    if (ps_heartbeat_start(&server->heartbeat, server) != 0) {
        snprintf(err, err_len, "cannot start the heartbeat thread");
        goto fail;
    }
    /* Before listening: the first clients see the other nodes' members. */
    if (ps_cluster_link_start(server, err, err_len) != 0) {
        ps_heartbeat_stop(&server->heartbeat);
        goto fail;
    }
    if (start_civetweb(server, err, err_len) != 0) {
        ps_cluster_link_stop(server);
        ps_heartbeat_stop(&server->heartbeat);
        goto fail;
    }
    *out = server;
    return 0;
fail:
    ps_server_fini(server);
    mg_exit_library();
    ps_free(server);
    return -1;
}

/* mg_stop() on a thread of its own, so that ps_server_stop() can give up
 * waiting for it. */
typedef struct civetweb_stop {
    struct mg_context *mg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
} civetweb_stop;

static void *civetweb_stop_thread(void *arg)
{
    civetweb_stop *st = arg;
    mg_stop(st->mg);
    pthread_mutex_lock(&st->lock);
    st->done = true;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

/* CivetWeb's master thread sees mg_stop() only when its poll() of the
 * listening socket returns, which takes up to its 2 s quantum when nobody
 * connects: connect (and close at once) to wake it. A connection accepted
 * just before the stop reads EOF and ends at once too. */
static void poke_listener(const ps_config *cfg)
{
    const char *host = cfg->address;
    if (strcmp(host, "0.0.0.0") == 0 || *host == '\0') {
        host = "127.0.0.1";
    } else if (strcmp(host, "::") == 0) {
        host = "::1";
    }
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        return;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        (void)connect(fd, ai->ai_addr, ai->ai_addrlen);
        close(fd);
    }
    freeaddrinfo(ai);
}

static void deadline_after(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Stop CivetWeb, waking its master thread every POKE_EVERY_MS, for at
 * most @p wait_ms. True when it stopped (every close handler has run). */
#define POKE_EVERY_MS 50
static bool stop_civetweb(ps_server *server, long wait_ms)
{
    civetweb_stop *st = ps_calloc(1, sizeof *st);
    if (st == NULL) {
        mg_stop(server->mg); /* no memory: wait as long as it takes */
        return true;
    }
    st->mg = server->mg;
    pthread_mutex_init(&st->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cond, &attr);
    pthread_condattr_destroy(&attr);
    pthread_t thread;
    bool threaded = pthread_create(&thread, NULL, civetweb_stop_thread, st) == 0;
    if (!threaded) {
        civetweb_stop_thread(st); /* no thread: wait as long as it takes */
    }
    struct timespec end;
    deadline_after(&end, wait_ms);
    pthread_mutex_lock(&st->lock);
    for (long waited = 0; !st->done && waited < wait_ms; waited += POKE_EVERY_MS) {
        pthread_mutex_unlock(&st->lock);
        poke_listener(server->cfg);
        pthread_mutex_lock(&st->lock);
        struct timespec next;
        deadline_after(&next, POKE_EVERY_MS);
        if (next.tv_sec > end.tv_sec ||
            (next.tv_sec == end.tv_sec && next.tv_nsec > end.tv_nsec)) {
            next = end;
        }
        while (!st->done &&
               pthread_cond_timedwait(&st->cond, &st->lock, &next) != ETIMEDOUT) {
        }
    }
    bool done = st->done;
    pthread_mutex_unlock(&st->lock);
    if (!done) {
        /* The thread still runs mg_stop() and owns st: the caller exits. */
        return false;
    }
    if (threaded) {
        pthread_join(thread, NULL);
    }
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    ps_free(st);
    return true;
}

bool ps_server_stop(ps_server *server, long wait_ms)
{
    if (server == NULL) {
        return true;
    }
    /* The admin page's streams end first: CivetWeb waits for them. */
    ps_admin_stop(server);
    /* Say goodbye with Centrifugo's shutdown code before the sockets go:
     * 3001 lets the SDKs reconnect to the next server. */
    ps_server_close_all(server, 3001, "shutdown");
    /* CivetWeb runs every close handler before mg_stop() returns, so every
     * connection has left its channels and been detached after it. A peer
     * that neither echoes the close nor goes away holds its thread until
     * CivetWeb's next poll quantum (2 s) and its lingering close: past
     * wait_ms the caller exits without them. */
    if (!stop_civetweb(server, wait_ms)) {
        return false;
    }
    ps_admin_free(server);
    /* Every local client has left: the link writes those leaves, removes
     * this node from Redis and stops its thread, which may be delivering
     * the other nodes' events to the hub until then. Before the registry
     * goes (ps_server_fini). */
    ps_cluster_link_stop(server);
    ps_heartbeat_stop(&server->heartbeat);
    ps_server_fini(server);
    mg_exit_library();
    ps_free(server);
    return true;
}
