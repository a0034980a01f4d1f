/*
 * The server: a libpresence registry configured from the Centrifugo-style
 * config, CivetWeb for HTTP and WebSocket, the writer pool and the
 * heartbeat.
 * SPDX-License-Identifier: MIT
 */
#include "server.h"

#include "conn.h"
#include "http_api.h"
#include "util.h"
#include "ws_transport.h"

#include <civetweb.h>
#include <stdio.h>
#include <stdlib.h>
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

/*
 * libpresence's access check: Centrifugo's presence permission. It runs
 * with the registry's lock held, so it reads only the config, which is
 * immutable. Every query the server makes names its connection and user.
 */
static bool access_check(const presence_access *access, void *user_data)
{
    ps_server *server = user_data;
    const ps_channel_options *opts =
        ps_config_namespace(server->cfg, access->namespace_name);
    if (opts == NULL || access->user_id == NULL) {
        return false;
    }
    return ps_presence_allowed(opts, access->user_id, access->is_member);
}

static void to_library_options(const ps_channel_options *in,
                               presence_namespace_options *out)
{
    presence_namespace_options_init(out);
    out->presence = in->presence;
    out->join_leave = in->join_leave;
}

static int create_registry(ps_server *server, char *err, size_t err_len)
{
    const ps_config *cfg = server->cfg;
    presence_config pc;
    presence_config_init(&pc);
    pc.access_check = access_check;
    pc.access_user_data = server;
    pc.limits.channel_name_max = cfg->channel_max_length;
    pc.limits.channels_per_client_max = cfg->client_channel_limit;
    to_library_options(&cfg->root, &pc.default_namespace);
    int rc = presence_registry_new(&pc, &server->registry);
    for (size_t i = 0; rc == PRESENCE_OK && i < cfg->namespace_count; i++) {
        presence_namespace_options no;
        to_library_options(&cfg->namespaces[i].options, &no);
        rc = presence_namespace_set(server->registry, cfg->namespaces[i].name, &no);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_subscribe(server->registry, PRESENCE_SCOPE_ALL, NULL,
                                PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE,
                                ps_hub_on_event, server, &server->events);
    }
    if (rc != PRESENCE_OK) {
        snprintf(err, err_len, "libpresence: %s", presence_strerror(rc));
        return -1;
    }
    return 0;
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
    return 0;
}

int ps_server_start(ps_server **out, const ps_config *cfg, char *err,
                    size_t err_len)
{
    if (!mg_check_feature(16)) {
        snprintf(err, err_len, "this CivetWeb has no WebSocket support");
        return -1;
    }
    ps_server *server = calloc(1, sizeof *server);
    if (server == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    server->cfg = cfg;
    server->max_connections = cfg->client_connection_limit
                                  ? cfg->client_connection_limit
                                  : PS_MAX_CONNECTIONS_DEFAULT;
    pthread_mutex_init(&server->conns_lock, NULL);
    ps_hub_init(&server->hub);
    mg_init_library(0);
    if (create_registry(server, err, err_len) != 0) {
        goto fail;
    }
    if (ps_writer_start(&server->writer) != 0) {
        snprintf(err, err_len, "cannot start writer threads");
        goto fail;
    }
    if (ps_heartbeat_start(&server->heartbeat, server) != 0) {
        snprintf(err, err_len, "cannot start the heartbeat thread");
        ps_writer_stop(&server->writer);
        goto fail;
    }
    if (start_civetweb(server, err, err_len) != 0) {
        ps_heartbeat_stop(&server->heartbeat);
        ps_writer_stop(&server->writer);
        goto fail;
    }
    *out = server;
    return 0;
fail:
    presence_registry_free(server->registry);
    ps_hub_destroy(&server->hub);
    pthread_mutex_destroy(&server->conns_lock);
    mg_exit_library();
    free(server);
    return -1;
}

/* Say goodbye to every client with Centrifugo's shutdown code before the
 * sockets go: 3001 lets the SDKs reconnect to the next server. */
static void close_all(ps_server *server)
{
    pthread_mutex_lock(&server->conns_lock);
    server->stopping = true;
    size_t n = server->transport_count;
    ps_conn **all = calloc(n ? n : 1, sizeof *all);
    size_t k = 0;
    for (ps_conn *c = server->transports; all != NULL && c != NULL; c = c->next) {
        all[k++] = ps_conn_ref(c);
    }
    pthread_mutex_unlock(&server->conns_lock);
    for (size_t i = 0; i < k; i++) {
        ps_conn_close_now(all[i], 3001, "shutdown");
        ps_conn_unref(all[i]);
    }
    free(all);
}

void ps_server_stop(ps_server *server)
{
    if (server == NULL) {
        return;
    }
    close_all(server);
    /* CivetWeb runs every close handler before mg_stop() returns, so every
     * connection has left its channels and been detached after it. */
    mg_stop(server->mg);
    ps_heartbeat_stop(&server->heartbeat);
    ps_writer_stop(&server->writer);
    presence_unsubscribe(server->registry, server->events);
    presence_registry_free(server->registry);
    ps_hub_destroy(&server->hub);
    pthread_mutex_destroy(&server->conns_lock);
    mg_exit_library();
    free(server);
}

bool ps_server_add_transport(ps_server *server, ps_conn *conn)
{
    bool ok;
    pthread_mutex_lock(&server->conns_lock);
    ok = !server->stopping;
    if (ok) {
        ps_conn_ref(conn);
        conn->prev = NULL;
        conn->next = server->transports;
        if (server->transports != NULL) {
            server->transports->prev = conn;
        }
        server->transports = conn;
        server->transport_count++;
        conn->listed = true;
    }
    pthread_mutex_unlock(&server->conns_lock);
    return ok;
}

bool ps_server_add_client(ps_server *server, ps_conn *conn)
{
    bool ok;
    pthread_mutex_lock(&server->conns_lock);
    ok = !server->stopping && server->client_count < server->max_connections;
    if (ok) {
        HASH_ADD_STR(server->clients, client_id, conn);
        server->client_count++;
    }
    pthread_mutex_unlock(&server->conns_lock);
    return ok;
}

void ps_server_remove(ps_server *server, ps_conn *conn)
{
    bool listed = false;
    pthread_mutex_lock(&server->conns_lock);
    if (conn->connected) {
        ps_conn *found = NULL;
        HASH_FIND_STR(server->clients, conn->client_id, found);
        if (found == conn) {
            HASH_DEL(server->clients, conn);
            server->client_count--;
        }
    }
    listed = conn->listed;
    conn->listed = false;
    if (listed) {
        if (conn->prev != NULL) {
            conn->prev->next = conn->next;
        } else {
            server->transports = conn->next;
        }
        if (conn->next != NULL) {
            conn->next->prev = conn->prev;
        }
        conn->prev = conn->next = NULL;
        server->transport_count--;
    }
    pthread_mutex_unlock(&server->conns_lock);
    if (listed) {
        ps_conn_unref(conn);
    }
}

ps_conn **ps_server_transports(ps_server *server, size_t *count)
{
    pthread_mutex_lock(&server->conns_lock);
    size_t n = server->transport_count;
    ps_conn **all = malloc((n ? n : 1) * sizeof *all);
    size_t k = 0;
    for (ps_conn *c = server->transports; all != NULL && c != NULL; c = c->next) {
        all[k++] = ps_conn_ref(c);
    }
    pthread_mutex_unlock(&server->conns_lock);
    *count = k;
    return all;
}
