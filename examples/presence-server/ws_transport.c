/*
 * WebSocket transport. CivetWeb runs each WebSocket on a worker thread of its
 * own, calling the data handler with every frame and the close handler once
 * at the end, after which its connection object is reused: the close handler
 * is where the connection is detached, so that no writer touches it again.
 * SPDX-License-Identifier: MIT
 */
#include "ws_transport.h"

#include "conn.h"
#include "heartbeat.h"
#include "hub.h"
#include "server.h"
#include "ws_protocol.h"

#include <civetweb.h>
#include <stdlib.h>
#include <string.h>

/* Close code for an oversized message, as gorilla/websocket (Centrifugo's
 * WebSocket library) sends; centrifuge-js does not reconnect after it. */
#define CLOSE_MESSAGE_TOO_BIG 1009

static int on_connect(const struct mg_connection *mg, void *cbdata)
{
    (void)mg;
    (void)cbdata;
    return 0; /* accept; authentication is the connect command's job */
}

static void on_ready(struct mg_connection *mg, void *cbdata)
{
    ps_server *server = cbdata;
    ps_conn *conn = ps_conn_new(server, mg);
    if (conn == NULL) {
        return; /* no user data: the data handler closes it */
    }
    mg_set_user_connection_data(mg, conn);
    ps_heartbeat_watch(conn);
    if (!ps_server_add_transport(server, conn)) {
        ps_conn_close_now(conn, 3001, "shutdown");
    }
}

/* Append a fragment; false when the message grows past the limit. */
static bool append_fragment(ps_conn *conn, const char *data, size_t len,
                            size_t limit)
{
    if (conn->frag_len + len > limit) {
        return false;
    }
    char *grown = realloc(conn->frag, conn->frag_len + len + 1);
    if (grown == NULL) {
        return false;
    }
    memcpy(grown + conn->frag_len, data, len);
    conn->frag = grown;
    conn->frag_len += len;
    return true;
}

static void drop_fragments(ps_conn *conn)
{
    free(conn->frag);
    conn->frag = NULL;
    conn->frag_len = 0;
}

/* A data frame: text, binary or continuation. */
static int on_message_frame(ps_conn *conn, bool fin, const char *data,
                            size_t len)
{
    size_t limit = conn->server->cfg->websocket_message_size_limit;
    if (fin && conn->frag_len == 0) {
        if (len > limit) {
            ps_conn_close_now(conn, CLOSE_MESSAGE_TOO_BIG, "message too big");
            return 0;
        }
        return ps_ws_handle_message(conn, data, len) ? 1 : 0;
    }
    if (!append_fragment(conn, data, len, limit)) {
        drop_fragments(conn);
        ps_conn_close_now(conn, CLOSE_MESSAGE_TOO_BIG, "message too big");
        return 0;
    }
    if (!fin) {
        return 1;
    }
    bool keep = ps_ws_handle_message(conn, conn->frag, conn->frag_len);
    drop_fragments(conn);
    return keep ? 1 : 0;
}

static int on_data(struct mg_connection *mg, int bits, char *data, size_t len,
                   void *cbdata)
{
    (void)cbdata;
    ps_conn *conn = mg_get_user_connection_data(mg);
    if (conn == NULL) {
        return 0;
    }
    int opcode = bits & 0x0f;
    bool fin = (bits & 0x80) != 0;
    switch (opcode) {
    case MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE:
        /* Echo the close (RFC 6455 5.5.1): CivetWeb 1.15 does not, and a
         * peer would otherwise see 1006 instead of its own code. */
        ps_conn_write_control(conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE,
                              data, len >= 2 ? 2 : 0);
        return 0;
    case MG_WEBSOCKET_OPCODE_PING:
        /* CivetWeb 1.15 hands pings to the application to answer. */
        ps_conn_write_control(conn, MG_WEBSOCKET_OPCODE_PONG, data, len);
        return 1;
    case MG_WEBSOCKET_OPCODE_PONG:
        return 1;
    case MG_WEBSOCKET_OPCODE_TEXT:
    case MG_WEBSOCKET_OPCODE_BINARY:
    case MG_WEBSOCKET_OPCODE_CONTINUATION:
        return on_message_frame(conn, fin, data, len);
    default:
        return 0;
    }
}

/* The socket is gone (closed by either side, or dead): leave every channel
 * and stop writing to it. */
static void on_close(const struct mg_connection *mg, void *cbdata)
{
    ps_server *server = cbdata;
    ps_conn *conn = mg_get_user_connection_data(mg);
    if (conn == NULL) {
        return;
    }
    mg_set_user_connection_data(mg, NULL);
    ps_server_remove(server, conn);
    /* Out of the hub before the leave: the closing connection gets no
     * pushes, and its leave goes to everybody else. */
    ps_hub_remove_all(&server->hub, conn);
    if (conn->connected) {
        presence_disconnect(server->registry, conn->client_id, NULL);
    }
    ps_conn_detach(conn);
    ps_conn_unref(conn);
}

void ps_ws_transport_install(struct mg_context *ctx, ps_server *server)
{
    mg_set_websocket_handler(ctx, PS_WS_PATH, on_connect, on_ready, on_data,
                             on_close, server);
}
