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
#include "mem.h"
#include "util.h"
#include "ws_transport.h"

#include <civetweb.h>
#include <stdio.h>
#include <string.h>

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
    ps_ws_transport_install(server->mg, server);
    if (ps_admin_start(server, err, err_len) != 0) {
        mg_stop(server->mg);
        return -1;
    }
    return 0;
}

int ps_server_start(ps_server **out, const ps_config *cfg, char *err,
                    size_t err_len)
{
    if (!mg_check_feature(16)) {
        snprintf(err, err_len, "this CivetWeb has no WebSocket support");
        return -1;
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

void ps_server_stop(ps_server *server)
{
    if (server == NULL) {
        return;
    }
    /* The admin page's streams end first: CivetWeb waits for them. */
    ps_admin_stop(server);
    /* Say goodbye with Centrifugo's shutdown code before the sockets go:
     * 3001 lets the SDKs reconnect to the next server. */
    ps_server_close_all(server, 3001, "shutdown");
    /* CivetWeb runs every close handler before mg_stop() returns, so every
     * connection has left its channels and been detached after it. */
    mg_stop(server->mg);
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
}
