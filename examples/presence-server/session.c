/*
 * WebSocket sessions: framing, control frames and the end of a transport.
 * See session.h.
 * SPDX-License-Identifier: MIT
 */
#include "session.h"

#include "conn.h"
#include "heartbeat.h"
#include "hub.h"
#include "mem.h"
#include "server.h"
#include "util.h"
#include "ws_protocol.h"

#include <string.h>

/* Close code for an oversized message, as gorilla/websocket (Centrifugo's
 * WebSocket library) sends; centrifuge-js does not reconnect after it. */
#define CLOSE_MESSAGE_TOO_BIG 1009

/* presence_client_close() fails only when memory runs out, and then changes
 * nothing: a few more tries before the client would stay as a ghost. */
#define DISCONNECT_TRIES 5

bool ps_session_open(ps_conn *conn)
{
    ps_heartbeat_watch(conn);
    if (!ps_server_add_transport(conn->server, conn)) {
        ps_conn_close_now(conn, 3001, "shutdown");
        return false;
    }
    return true;
}

/* Append a fragment; false when the message grows past the limit or
 * memory runs out (*nomem). */
static bool append_fragment(ps_conn *conn, const char *data, size_t len,
                            size_t limit, bool *nomem)
{
    *nomem = false;
    if (len > limit || conn->frag_len > limit - len) {
        return false;
    }
    char *grown = ps_realloc(conn->frag, conn->frag_len + len + 1);
    if (grown == NULL) {
        *nomem = true;
        return false;
    }
    if (len > 0) {
        memcpy(grown + conn->frag_len, data, len);
    }
    conn->frag = grown;
    conn->frag_len += len;
    conn->fragmented = true;
    return true;
}

static void drop_fragments(ps_conn *conn)
{
    ps_free(conn->frag);
    conn->frag = NULL;
    conn->frag_len = 0;
    conn->fragmented = false;
}

/* A data frame: text, binary or continuation. */
static bool message_frame(ps_conn *conn, int opcode, bool fin,
                          const char *data, size_t len)
{
    size_t limit = conn->server->cfg->websocket_message_size_limit;
    bool continuation = opcode == PS_WS_CONTINUATION;
    /* RFC 6455 5.4: a continuation without a message to continue, or a new
     * message in the middle of one, is a protocol error (1002). */
    if (continuation != conn->fragmented) {
        drop_fragments(conn);
        ps_conn_close_now(conn, 1002, "protocol error");
        return false;
    }
    if (fin && !continuation) {
        if (len > limit) {
            ps_conn_close_now(conn, CLOSE_MESSAGE_TOO_BIG, "message too big");
            return false;
        }
        return ps_ws_handle_message(conn, data, len);
    }
    bool nomem = false;
    if (!append_fragment(conn, data, len, limit, &nomem)) {
        drop_fragments(conn);
        if (nomem) {
            ps_conn_close_now(conn, PS_CLOSE_INTERNAL, "internal server error");
        } else {
            ps_conn_close_now(conn, CLOSE_MESSAGE_TOO_BIG, "message too big");
        }
        return false;
    }
    if (!fin) {
        return true;
    }
    bool keep = ps_ws_handle_message(conn, conn->frag, conn->frag_len);
    drop_fragments(conn);
    return keep;
}

/* A close code a peer may send (RFC 6455 7.4). */
static bool close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

bool ps_session_frame(ps_conn *conn, int opcode, bool fin, const char *data,
                      size_t len)
{
    switch (opcode) {
    case PS_WS_CLOSE:
        /* Echo the close (RFC 6455 5.5.1), for a transport that hands
         * control frames here (the tests'; ws_conn.c answers them itself).
         * A code that may not be sent (0, 1005, 5000...) or a one-byte
         * body is a protocol error (7.4.1): 1002 goes back instead. */
        if (len == 0) {
            ps_conn_write_control(conn, PS_WS_CLOSE, NULL, 0);
        } else if (len >= 2 && close_code_valid(((unsigned char)data[0] << 8) |
                                                (unsigned char)data[1])) {
            ps_conn_write_control(conn, PS_WS_CLOSE, data, 2);
        } else {
            static const char protocol_error[2] = {0x03, (char)0xea}; /* 1002 */
            ps_conn_write_control(conn, PS_WS_CLOSE, protocol_error, 2);
        }
        return false;
    case PS_WS_PING:
        /* Answered with the same payload (5.5.2). */
        ps_conn_write_control(conn, PS_WS_PONG, data, len);
        return true;
    case PS_WS_PONG:
        return true;
    case PS_WS_TEXT:
    case PS_WS_BINARY:
    case PS_WS_CONTINUATION:
        return message_frame(conn, opcode, fin, data, len);
    default:
        return false;
    }
}

void ps_session_closed(ps_conn *conn)
{
    ps_server *server = conn->server;
    ps_server_remove(server, conn);
    /* Out of the hub before the leave: the closing connection gets no
     * pushes, and its leave goes to everybody else. */
    ps_hub_remove_all(&server->hub, conn);
    if (conn->presence != NULL) {
        int rc = PRESENCE_ERR_NOMEM;
        for (int i = 0; i < DISCONNECT_TRIES && rc == PRESENCE_ERR_NOMEM; i++) {
            rc = presence_client_close(server->registry, conn->presence, NULL);
        }
        if (rc != PRESENCE_OK) {
            /* Still open: the registry keeps it until it is freed. */
            ps_log("client %s: disconnect failed: %s", conn->client_id,
                   presence_strerror(rc));
        }
        conn->presence = NULL;
    }
    ps_conn_detach(conn);
    ps_conn_unref(conn);
}
