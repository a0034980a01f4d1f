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
#include "server.h"

#include <civetweb.h>
#include <stdio.h>
#include <string.h>

#ifdef PS_HAVE_CLUSTER
#include <presence_cluster.h>
#endif

static int respond(struct mg_connection *mg, int status, const char *status_text,
                   const char *type, const char *body, size_t len)
{
    mg_printf(mg,
              "HTTP/1.1 %d %s\r\n"
              "Content-Type: %s\r\n"
              "Content-Length: %zu\r\n"
              "Cache-Control: no-store\r\n"
              "%s"
              "Connection: close\r\n\r\n",
              status, status_text, type, len,
              status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (len > 0 && strcmp(mg_get_request_info(mg)->request_method, "HEAD") != 0) {
        mg_write(mg, body, len);
    }
    return status;
}

static bool get_or_head(struct mg_connection *mg)
{
    const char *method = mg_get_request_info(mg)->request_method;
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

static int metrics_handler(struct mg_connection *mg, void *cbdata)
{
    ps_server *server = cbdata;
    if (strcmp(mg_get_request_info(mg)->local_uri, "/metrics") != 0) {
        return respond(mg, 404, "Not Found", "text/plain", "", 0);
    }
    if (!get_or_head(mg)) {
        return respond(mg, 405, "Method Not Allowed", "text/plain", "", 0);
    }
    ps_metrics_cluster cluster;
    bool has_cluster = cluster_state(server, &cluster);
    size_t len = 0;
    char *text = ps_metrics_render(server, has_cluster ? &cluster : NULL, &len);
    if (text == NULL) {
        return respond(mg, 500, "Internal Server Error", "text/plain", "", 0);
    }
    int rc = respond(mg, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
                     text, len);
    ps_free(text);
    return rc;
}

static int health_handler(struct mg_connection *mg, void *cbdata)
{
    ps_server *server = cbdata;
    if (strcmp(mg_get_request_info(mg)->local_uri, "/health") != 0) {
        return respond(mg, 404, "Not Found", "text/plain", "", 0);
    }
    if (!get_or_head(mg)) {
        return respond(mg, 405, "Method Not Allowed", "text/plain", "", 0);
    }
    pthread_mutex_lock(&server->conns_lock);
    bool stopping = server->stopping;
    pthread_mutex_unlock(&server->conns_lock);
    if (stopping) {
        return respond(mg, 503, "Service Unavailable", "application/json",
                       "{\"error\":\"shutting down\"}", 25);
    }
    return respond(mg, 200, "OK", "application/json", "{}", 2);
}

void ps_metrics_http_install(struct mg_context *ctx, ps_server *server)
{
    mg_set_request_handler(ctx, "/metrics", metrics_handler, server);
    mg_set_request_handler(ctx, "/health", health_handler, server);
}
