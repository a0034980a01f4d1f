/*
 * WebSocket transport on CivetWeb. CivetWeb runs each WebSocket on a worker
 * thread of its own, calling the data handler with every frame and the
 * close handler once at the end, after which its connection object is
 * reused: the close handler is where the connection is detached, so that
 * no writer touches it again. The protocol itself is in session.c.
 * SPDX-License-Identifier: MIT
 */
#include "ws_transport.h"

#include "conn.h"
#include "server.h"
#include "session.h"

#include <civetweb.h>

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
    ps_session_open(conn);
}

static int on_data(struct mg_connection *mg, int bits, char *data, size_t len,
                   void *cbdata)
{
    (void)cbdata;
    ps_conn *conn = mg_get_user_connection_data(mg);
    if (conn == NULL) {
        return 0;
    }
    return ps_session_frame(conn, bits & 0x0f, (bits & 0x80) != 0, data, len)
               ? 1
               : 0;
}

static void on_close(const struct mg_connection *mg, void *cbdata)
{
    (void)cbdata;
    ps_conn *conn = mg_get_user_connection_data(mg);
    if (conn == NULL) {
        return;
    }
    mg_set_user_connection_data(mg, NULL);
    ps_session_closed(conn);
}

int ps_ws_transport_write(void *transport, int opcode, const char *data,
                          size_t len)
{
    return mg_websocket_write(transport, opcode, data, len);
}

void ps_ws_transport_install(struct mg_context *ctx, ps_server *server)
{
    mg_set_websocket_handler(ctx, PS_WS_PATH, on_connect, on_ready, on_data,
                             on_close, server);
}
