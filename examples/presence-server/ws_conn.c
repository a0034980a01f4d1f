/*
 * WebSocket connections: the frames of ws_frame.c around a ps_conn. See
 * ws_conn.h.
 *
 * Writes come from ps_conn_flush() and the session (both on the loop,
 * under conn->wlock) and go straight to the socket, which counts what the
 * peer has not taken. The socket is closed only at the top of a loop
 * callback (a read, a timer), never under conn->wlock, since closing
 * runs ps_session_closed(), which takes it.
 * SPDX-License-Identifier: MIT
 */
#include "ws_conn.h"

#include "conn.h"
#include "heartbeat.h"
#include "http_server.h"
#include "mem.h"
#include "net.h"
#include "server.h"
#include "session.h"
#include "sock.h"
#include "util.h"
#include "ws_frame.h"

#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <string.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* A Sec-WebSocket-Key is 16 bytes in base64. */
#define WS_KEY_LEN 24
/* Frames up to this size go out header and payload in one write. */
#define SMALL_FRAME 4096

typedef struct ps_ws {
    ps_sock *sock; /* NULL once closed */
    ps_conn *conn; /* the transport's reference, until closed */
    ps_ws_parser parser;
    bool session_done;  /* the session closed: no more messages to it */
    bool close_sent;
    bool close_received;
    bool reading_done;  /* a framing error: nothing more is read */
    uint64_t ping_mark; /* 0, or the byte count that carries a ping */
} ps_ws;

/* ---- writing ------------------------------------------------------------- */

static void publish_pending(ps_ws *ws)
{
    if (ws->conn != NULL && ws->sock != NULL) {
        atomic_store(&ws->conn->transport_pending, ws->sock->pending);
    }
}

static void check_ping(ps_ws *ws)
{
    if (ws->ping_mark != 0 && ws->sock != NULL &&
        ws->sock->written >= ws->ping_mark) {
        ws->ping_mark = 0;
        ps_heartbeat_ping_written(ws->conn);
    }
}

static void shut_if_done(ps_ws *ws);

/* One server frame. 0 or -1 (the socket failed, or a close went out). */
static int send_frame(ps_ws *ws, int opcode, const void *data, size_t len)
{
    if (ws->sock == NULL || ws->sock->failed || ws->close_sent) {
        return -1;
    }
    uint8_t buf[PS_WS_HEADER_MAX + SMALL_FRAME];
    size_t h = ps_ws_frame_header(buf, opcode, len);
    int rc;
    if (len <= SMALL_FRAME) {
        if (len > 0) {
            memcpy(buf + h, data, len);
        }
        rc = ps_sock_write(ws->sock, buf, h + len);
    } else {
        rc = ps_sock_write(ws->sock, buf, h);
        if (rc == 0) {
            rc = ps_sock_write(ws->sock, data, len);
        }
    }
    if (opcode == PS_WS_CLOSE) {
        ws->close_sent = true;
        /* The peer has this long to answer; past it the socket goes. */
        ps_sock_set_deadline(ws->sock, ps_now_ms() + PS_NET_CLOSE_TIMEOUT_MS);
        shut_if_done(ws); /* an answer to the peer's close ends it here */
    }
    publish_pending(ws);
    return rc;
}

int ps_ws_write_frame(void *transport, int opcode, const char *data,
                      size_t len)
{
    return send_frame(transport, opcode, data, len) == 0 ? 1 : -1;
}

void ps_ws_mark_ping(void *transport)
{
    ps_ws *ws = transport;
    if (ws->sock == NULL) {
        return;
    }
    ws->ping_mark = ws->sock->submitted > 0 ? ws->sock->submitted : 1;
    check_ping(ws);
}

/* ---- reading ------------------------------------------------------------- */

static bool on_frame(void *user, int opcode, const char *data, size_t len,
                     int code)
{
    ps_ws *ws = user;
    switch (opcode) {
    case PS_WS_TEXT:
    case PS_WS_BINARY:
        if (!ws->session_done &&
            !ps_session_frame(ws->conn, opcode, true, data, len)) {
            ws->session_done = true;
        }
        return true;
    case PS_WS_PING:
        /* Answered here, with the same payload (5.5.2). */
        send_frame(ws, PS_WS_PONG, data, len);
        return true;
    case PS_WS_CLOSE:
        ws->close_received = true;
        if (!ws->close_sent) {
            /* The echo: the peer's code, or none when it sent none. */
            uint8_t echo[2] = {(uint8_t)(code >> 8), (uint8_t)code};
            bool none = code == PS_WS_CLOSE_NO_STATUS;
            ps_conn_write_control(ws->conn, PS_WS_CLOSE, (const char *)echo,
                                  none ? 0 : 2);
        }
        return false; /* nothing is read after a close */
    default:
        return true; /* a pong */
    }
}

/* Shut our side once the close handshake is over (or a framing error
 * closed it): the FIN follows what is queued, and the peer's EOF or the
 * deadline closes the socket, so that no reset cuts the close frame. */
static void shut_if_done(ps_ws *ws)
{
    if (ws->sock != NULL && !ws->sock->failed && ws->close_sent &&
        (ws->close_received || ws->reading_done)) {
        ps_sock_shutdown(ws->sock);
    }
}

static void ws_on_read(ps_sock *sock, const char *data, size_t len)
{
    ps_ws *ws = sock->owner;
    if (ws->close_received || ws->reading_done) {
        return; /* after a close: whatever comes is dropped */
    }
    int code = ps_ws_parse(&ws->parser, data, len, on_frame, ws);
    if (code != 0) {
        static const char *const reasons[] = {"protocol error",
                                              "invalid payload data",
                                              "message too big",
                                              "internal server error"};
        const char *reason = code == PS_WS_CLOSE_PROTOCOL_ERROR ? reasons[0]
                             : code == PS_WS_CLOSE_INVALID_DATA ? reasons[1]
                             : code == PS_WS_CLOSE_TOO_BIG      ? reasons[2]
                                                                : reasons[3];
        ws->reading_done = true;
        ws->session_done = true;
        ps_conn_close_now(ws->conn, code, reason);
    }
    /* The replies to what was read go out before the loop waits again
     * (net.h), with whatever else this turn had for the connection. */
    if (sock->failed) {
        ps_sock_close(sock);
        return;
    }
    shut_if_done(ws);
}

static void ws_on_drain(ps_sock *sock)
{
    ps_ws *ws = sock->owner;
    publish_pending(ws);
    check_ping(ws);
}

static void ws_on_close(ps_sock *sock)
{
    ps_ws *ws = sock->owner;
    ws->sock = NULL;
    /* The client leaves its channels now, and its presence handle goes. */
    ps_conn *conn = ws->conn;
    ws->conn = NULL;
    ps_session_closed(conn);
    ps_ws_parser_fini(&ws->parser);
    ps_free(ws);
}

static const ps_sock_ops ws_ops = {
    .on_read = ws_on_read,
    .on_drain = ws_on_drain,
    .on_close = ws_on_close,
};

/* ---- the handshake ------------------------------------------------------- */

static void accept_key(const char *key, char out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1])
{
    struct sha1_ctx sha;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&sha);
    sha1_update(&sha, strlen(key), (const uint8_t *)key);
    sha1_update(&sha, sizeof WS_GUID - 1, (const uint8_t *)WS_GUID);
    sha1_digest(&sha, sizeof digest, digest);
    base64_encode_raw(out, sizeof digest, digest);
    out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
}

/* Centrifugo's name for its binary protocol, which this server does not
 * speak (JSON only). */
#define PROTOBUF_PROTOCOL "centrifuge-protobuf"

/* The subprotocol to echo back: the first one the client offers other
 * than centrifuge-protobuf (Chrome fails a handshake that offered one and
 * got none back). 0 when there is none; *protobuf_only says the offer
 * was centrifuge-protobuf and nothing else, which is refused rather than
 * answered in JSON to a client that waits for protobuf. */
static size_t chosen_protocol(const char *offer, const char **start,
                              bool *protobuf_only)
{
    *protobuf_only = false;
    bool protobuf = false;
    while (offer != NULL && *offer != '\0') {
        offer += strspn(offer, ", \t");
        size_t n = strcspn(offer, ", \t");
        if (n == 0) {
            break;
        }
        if (n == strlen(PROTOBUF_PROTOCOL) &&
            strncmp(offer, PROTOBUF_PROTOCOL, n) == 0) {
            protobuf = true;
        } else if (n <= 64) {
            *start = offer;
            return n;
        }
        offer += n;
    }
    *protobuf_only = protobuf;
    return 0;
}

static bool refuse(ps_http_exchange *ex, int status, const char *extra)
{
    const char *text = status == 426 ? "Upgrade Required\n" : "Bad Request\n";
    ps_http_respond(ex, status, "text/plain; charset=utf-8", extra, text,
                    strlen(text));
    return false;
}

static ps_ws *ws_new(ps_server *server)
{
    ps_ws *ws = ps_calloc(1, sizeof *ws);
    if (ws == NULL) {
        return NULL;
    }
    ws->conn = ps_conn_new(server, ws);
    if (ws->conn == NULL) {
        ps_free(ws);
        return NULL;
    }
    ps_ws_parser_init(&ws->parser, server->cfg->websocket_message_size_limit);
    return ws;
}

bool ps_ws_upgrade(ps_http_exchange *ex, const char *rest, size_t rest_len)
{
    ps_sock *sock = ps_http_socket(ex);
    ps_server *server = sock->net->server;
    const char *key = ps_http_header(ex, "Sec-WebSocket-Key");
    const char *version = ps_http_header(ex, "Sec-WebSocket-Version");
    if (strcmp(ps_http_method(ex), "GET") != 0 || ps_http_is_1_0(ex) ||
        !ps_http_token_in(ps_http_header(ex, "Upgrade"), "websocket") ||
        !ps_http_token_in(ps_http_header(ex, "Connection"), "upgrade") ||
        key == NULL || strlen(key) != WS_KEY_LEN) {
        return refuse(ex, 400, NULL);
    }
    if (version == NULL || strcmp(version, "13") != 0) {
        return refuse(ex, 426, "Sec-WebSocket-Version: 13\r\n");
    }
    const char *proto = NULL;
    bool protobuf_only;
    size_t proto_len = chosen_protocol(
        ps_http_header(ex, "Sec-WebSocket-Protocol"), &proto, &protobuf_only);
    if (protobuf_only) {
        return refuse(ex, 400, NULL);
    }
    ps_ws *ws = ws_new(server);
    if (ws == NULL) {
        ps_http_respond(ex, 500, "text/plain", NULL, "", 0);
        return false;
    }
    char accept[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1];
    accept_key(key, accept);
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s%.*s%s"
                     "\r\n",
                     accept, proto_len ? "Sec-WebSocket-Protocol: " : "",
                     (int)proto_len, proto_len ? proto : "",
                     proto_len ? "\r\n" : "");
    if (ps_sock_write(sock, head, (size_t)n) != 0) {
        ps_conn_unref(ws->conn);
        ps_free(ws);
        return false; /* the timer closes the failed socket */
    }
    ps_http_release_socket(ex);
    ws->sock = sock;
    sock->ops = &ws_ops;
    sock->owner = ws;
    ps_sock_set_deadline(sock, 0);
    ps_sock_read_start(sock);
    if (!ps_session_open(ws->conn)) {
        ws->session_done = true; /* stopping: closed with 3001 */
    }
    if (rest_len > 0 && ws->sock != NULL) {
        ws_on_read(sock, rest, rest_len);
    }
    return true;
}
