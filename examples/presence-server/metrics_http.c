/*
 * GET /metrics (Prometheus text format 0.0.4, see metrics.h) and
 * GET /health ({} with 200 while the server serves, as Centrifugo's
 * health endpoint answers; 503 once it is shutting down). Neither needs
 * the API key: they show counts, never who is present or any secret, as
 * Centrifugo's serve them on its internal port. Keep the listener on a
 * private address, or filter these paths at the proxy, if counts should
 * not be public.
 * SPDX-License-Identifier: MIT
 */
#include "metrics_http.h"

#include "mem.h"
#include "metrics.h"
#include "http_server.h"
#include "net.h"
#include "server.h"

#include <stdio.h>
#include <string.h>

#ifdef PS_HAVE_CLUSTER
#include <presence_cluster.h>
#endif

static void respond(ps_http_exchange *ex, int status, const char *type,
                    const char *body, size_t len)
{
    ps_http_respond(ex, status, type,
                    status == 405 ? "Cache-Control: no-store\r\n"
                                    "Allow: GET, HEAD\r\n"
                                  : "Cache-Control: no-store\r\n",
                    body, len);
}

static bool get_or_head(ps_http_exchange *ex)
{
    const char *method = ps_http_method(ex);
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* The cluster's state, when the server has one. */
static bool cluster_state(ps_server *server, ps_metrics_cluster *out)
{
#ifdef PS_HAVE_CLUSTER
    presence_cluster_status st;
    if (server->cluster == NULL ||
        presence_cluster_status_get(server->cluster, &st) != PRESENCE_OK) {
        return false;
    }
    *out = (ps_metrics_cluster){
        .connected = st.connected, .synced = st.synced, .nodes = st.nodes,
        .pending = st.pending, .sent = st.sent, .applied = st.applied,
        .rejected = st.rejected, .snapshots = st.snapshots,
        .nodes_down = st.nodes_down, .connects = st.connects,
    };
    return true;
#else
    (void)server;
    (void)out;
    return false;
#endif
}

static void metrics_handler(ps_http_exchange *ex, void *data)
{
    ps_server *server = data;
    if (strcmp(ps_http_path(ex), "/metrics") != 0) {
        respond(ex, 404, "text/plain", "", 0);
        return;
    }
    if (!get_or_head(ex)) {
        respond(ex, 405, "text/plain", "", 0);
        return;
    }
    ps_metrics_cluster cluster;
    bool has_cluster = cluster_state(server, &cluster);
    size_t len = 0;
    char *text = ps_metrics_render(server, has_cluster ? &cluster : NULL, &len);
    if (text == NULL) {
        respond(ex, 500, "text/plain", "", 0);
        return;
    }
    respond(ex, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    ps_free(text);
}

static void health_handler(ps_http_exchange *ex, void *data)
{
    ps_server *server = data;
    if (strcmp(ps_http_path(ex), "/health") != 0) {
        respond(ex, 404, "text/plain", "", 0);
        return;
    }
    if (!get_or_head(ex)) {
        respond(ex, 405, "text/plain", "", 0);
        return;
    }
    pthread_mutex_lock(&server->conns_lock);
    bool stopping = server->stopping;
    pthread_mutex_unlock(&server->conns_lock);
    if (stopping) {
        respond(ex, 503, "application/json", "{\"error\":\"shutting down\"}", 25);
        return;
    }
    respond(ex, 200, "application/json", "{}", 2);
}

int ps_metrics_http_install(ps_net *net, ps_server *server)
{
    return ps_http_route_add(net, "/metrics", 0, metrics_handler, server) != 0 ||
                   ps_http_route_add(net, "/health", 0, health_handler, server) != 0
               ? -1
               : 0;
}
