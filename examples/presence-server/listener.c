/*
 * The server on the network: the event loop of net.c around the server of
 * server.c, with every route on it (the WebSocket endpoint is
 * http_server.c's own).
 * SPDX-License-Identifier: MIT
 */
#include "server.h"

#include "admin.h"
#include "cluster_link.h"
#include "http_api.h"
#include "mem.h"
#include "metrics_http.h"
#include "net.h"
#include "util.h"
#include "ws_conn.h"

#include <stdio.h>
#include <sys/resource.h>

/* After the shutdown's close frames, how long peers have to answer them
 * before their sockets are closed anyway. */
#define SHUTDOWN_GRACE_MS 200

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

static void wake_loop(void *data)
{
    ps_net_wake(data);
}

static int install_routes(ps_server *server, char *err, size_t err_len)
{
    if (ps_http_api_install(server->net, server) != 0 ||
        ps_metrics_http_install(server->net, server) != 0) {
        return ps_fail(err, err_len, "out of memory");
    }
    return ps_admin_start(server, err, err_len);
}

int ps_server_start(ps_server **out, const ps_config *cfg, char *err,
                    size_t err_len)
{
    raise_open_file_limit();
    ps_server *server = ps_calloc(1, sizeof *server);
    ps_net *net = ps_calloc(1, sizeof *net);
    if (server == NULL || net == NULL) {
        ps_free(server);
        ps_free(net);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    if (ps_server_init(server, cfg, ps_ws_write_frame, err, err_len) != 0) {
        ps_free(server);
        ps_free(net);
        return -1;
    }
    server->mark_ping = ps_ws_mark_ping;
    if (ps_net_init(net, server, err, err_len) != 0) {
        ps_free(net);
        goto fail;
    }
    server->net = net;
    /* Before listening: the first clients see the other nodes' members. */
    if (ps_cluster_link_start(server, err, err_len) != 0) {
        goto fail_net;
    }
    if (install_routes(server, err, err_len) != 0) {
        ps_cluster_link_stop(server);
        goto fail_net;
    }
    ps_writer_set_wake(&server->writer, wake_loop, net);
    if (ps_net_start(net) != 0) {
        snprintf(err, err_len, "cannot start the event loop's thread");
        ps_writer_set_wake(&server->writer, NULL, NULL);
        ps_admin_free(server);
        ps_cluster_link_stop(server);
        goto fail_net;
    }
    *out = server;
    return 0;
fail_net:
    ps_net_fini(net);
    ps_free(net);
    server->net = NULL;
fail:
    ps_server_fini(server);
    ps_free(server);
    return -1;
}

bool ps_server_stop(ps_server *server, long wait_ms)
{
    if (server == NULL) {
        return true;
    }
    long grace = SHUTDOWN_GRACE_MS < wait_ms / 2 ? SHUTDOWN_GRACE_MS : wait_ms / 2;
    if (!ps_net_stop(server->net, grace, wait_ms)) {
        return false;
    }
    ps_writer_set_wake(&server->writer, NULL, NULL);
    ps_admin_free(server);
    /* Every local client has left: the link writes those leaves, removes
     * this node from Redis and stops its thread, which may be delivering
     * the other nodes' events to the hub until then. Before the registry
     * goes (ps_server_fini). */
    ps_cluster_link_stop(server);
    ps_net_fini(server->net);
    ps_free(server->net);
    server->net = NULL;
    ps_server_fini(server);
    ps_free(server);
    return true;
}
