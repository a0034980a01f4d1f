/*
 * WebSocket connections: wslay around a ps_conn. See ws_conn.h.
 *
 * Writes come from ps_conn_flush() and the session (both on the loop,
 * under conn->wlock): they queue on wslay and are sent at once, also
 * while wslay reads, since wslay sends control frames before queued data:
 * a close queued behind replies would overtake them. The socket is closed
 * only at the top of a loop callback (a read, the sweep), never under
 * conn->wlock, since closing runs ps_session_closed(), which takes it.
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

#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <string.h>
#include <wslay/wslay.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
/* A Sec-WebSocket-Key is 16 bytes in base64. */
#define WS_KEY_LEN 24

typedef struct ps_ws {
    ps_sock *sock; /* NULL once closed */
    ps_conn *conn; /* the transport's reference, until closed */
    wslay_event_context_ptr ctx;
    const char *in; /* bytes being read */
    size_t in_len;
    size_t msg_len;     /* the incoming message's bytes so far */
    bool discard;       /* closed for a message too big: read no more */
    bool raw_closed;    /* closed past wslay (raw_close()): it sends no more */
    bool session_done;  /* the session closed: no more messages to it */
    bool close_ours;    /* the close frame is the server's (counted) */
    bool close_counted;
    uint64_t ping_mark; /* 0, or the byte count that carries a ping */
} ps_ws;

/* ---- wslay's callbacks ------------------------------------------------- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *user_data)
{
    (void)flags;
    ps_ws *ws = user_data;
    if (ws->discard) {
        ws->in_len = 0;
    }
    if (ws->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_len ? len : ws->in_len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *user_data)
{
    (void)flags;
    ps_ws *ws = user_data;
    if (ws->sock == NULL || ps_sock_write(ws->sock, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void on_msg(wslay_event_context_ptr ctx,
                   const struct wslay_event_on_msg_recv_arg *arg,
                   void *user_data)
{
    (void)ctx;
    ps_ws *ws = user_data;
    if (ws->session_done || ws->conn == NULL) {
        return;
    }
    if (arg->opcode == WSLAY_TEXT_FRAME || arg->opcode == WSLAY_BINARY_FRAME) {
        if (!ps_session_frame(ws->conn, arg->opcode, true,
                              (const char *)arg->msg, arg->msg_length)) {
            ws->session_done = true;
        }
    }
    /* Pings are answered by wslay, pongs need nothing, and a close is
     * echoed by wslay (see count_close()). */
}

/* The message size limit, checked as each frame starts: 1009 "message too
 * big", as the session says it (wslay's own check, a backstop further up,
 * gives no reason). Nothing more of the peer is read, so the message is
 * never buffered, and the socket closes once the close frame is out. */
static void on_frame_start(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *arg,
                           void *user_data)
{
    (void)ctx;
    ps_ws *ws = user_data;
    if (arg->opcode & 0x8) {
        return; /* a control frame, within a message or not */
    }
    if (arg->opcode != WSLAY_CONTINUATION_FRAME) {
        ws->msg_len = 0;
    }
    size_t limit = ws->conn != NULL
                       ? ws->conn->server->cfg->websocket_message_size_limit
                       : 0;
    if (arg->payload_length > limit - ws->msg_len) {
        if (!ws->session_done && ws->conn != NULL) {
            ps_conn_close_now(ws->conn, 1009, "message too big");
        }
        ws->session_done = true;
        ws->discard = true;
        return;
    }
    ws->msg_len += (size_t)arg->payload_length;
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_frame_recv_start_callback = on_frame_start,
    .on_msg_recv_callback = on_msg,
};

/* ---- writing ------------------------------------------------------------- */

/* A close frame wslay sent by itself (an echo, or a protocol error) is
 * counted here; the server's own are counted by conn.c. */
static void count_close(ps_ws *ws)
{
    if (!ws->close_counted && wslay_event_get_close_sent(ws->ctx)) {
        ws->close_counted = true;
        if (!ws->close_ours && ws->conn != NULL) {
            uint16_t code = wslay_event_get_status_code_sent(ws->ctx);
            ps_metrics_close(&ws->conn->server->metrics,
                             code == WSLAY_CODE_NO_STATUS_RCVD ? 1005 : code);
        }
        /* Our close is out: the peer has this long to answer it. */
        if (ws->sock != NULL && ws->sock->deadline_ms == 0) {
            ws->sock->deadline_ms = ps_now_ms() + PS_NET_CLOSE_TIMEOUT_MS;
        }
    }
}

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

static void send_queued(ps_ws *ws)
{
    if (ws->sock == NULL || ws->raw_closed) {
        return;
    }
    (void)wslay_event_send(ws->ctx); /* a failed write marks the socket */
    count_close(ws);
    publish_pending(ws);
}

int ps_ws_write_frame(void *transport, int opcode, const char *data,
                      size_t len)
{
    ps_ws *ws = transport;
    if (ws->sock == NULL || ws->sock->failed || ws->raw_closed) {
        return -1;
    }
    int rc;
    if (opcode == PS_WS_CLOSE) {
        uint16_t code = 0;
        const uint8_t *reason = NULL;
        size_t rlen = 0;
        if (len >= 2) {
            code = (uint16_t)(((unsigned char)data[0] << 8) | (unsigned char)data[1]);
            reason = (const uint8_t *)data + 2;
            rlen = len - 2 > 122 ? 122 : len - 2;
        }
        rc = wslay_event_queue_close(ws->ctx, code, reason, rlen);
        if (rc == 0) {
            ws->close_ours = true;
        }
    } else {
        struct wslay_event_msg msg = {(uint8_t)opcode, (const uint8_t *)data,
                                      len};
        rc = wslay_event_queue_msg(ws->ctx, &msg);
    }
    if (rc != 0) {
        return -1;
    }
    send_queued(ws);
    return ws->sock != NULL && !ws->sock->failed ? 1 : -1;
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

/* ---- the socket's events ----------------------------------------------- */

/* A close frame written past wslay (a server frame: unmasked), after
 * which wslay sends nothing, the session takes no more and the socket is
 * shut once it is out. Top of a loop callback only (it takes wlock). */
static void raw_close(ps_ws *ws, uint16_t code, const char *reason)
{
    unsigned char f[4 + 32];
    size_t rlen = strlen(reason) < 32 ? strlen(reason) : 32;
    f[0] = 0x88;
    f[1] = (unsigned char)(2 + rlen);
    f[2] = (unsigned char)(code >> 8);
    f[3] = (unsigned char)(code & 0xff);
    memcpy(f + 4, reason, rlen);
    ws->raw_closed = true;
    ws->session_done = true;
    ws->discard = true;
    if (ps_sock_write(ws->sock, f, 4 + rlen) == 0) {
        ps_metrics_close(&ws->conn->server->metrics, code);
        ws->sock->deadline_ms = ps_now_ms() + PS_NET_CLOSE_TIMEOUT_MS;
    }
    ps_conn_detach(ws->conn); /* closing: nothing more is queued */
}

/* At the top of a loop callback only (see the file's comment). */
static void close_if_done(ps_ws *ws)
{
    if (ws->sock == NULL) {
        return;
    }
    if (ws->discard && !ws->sock->failed &&
        (ws->raw_closed || (wslay_event_get_close_sent(ws->ctx) &&
                            !wslay_event_want_write(ws->ctx)))) {
        /* A FIN, not a close: a reset could cut the close frame off while
         * the peer's unread bytes wait. Its EOF, or the deadline, ends it. */
        ps_sock_shutdown(ws->sock);
        return;
    }
    if (ws->sock->failed ||
        (!wslay_event_want_read(ws->ctx) && !wslay_event_want_write(ws->ctx))) {
        ps_sock_close(ws->sock);
    }
}

static void ws_on_read(ps_sock *sock, const char *data, size_t len)
{
    ps_ws *ws = sock->owner;
    if (ws->discard) {
        return;
    }
    ws->in = data;
    ws->in_len = len;
    int rc = wslay_event_recv(ws->ctx);
    ws->in = NULL;
    ws->in_len = 0;
    if (rc != 0 && !sock->failed && !wslay_event_get_close_sent(ws->ctx)) {
        /* A framing error wslay only stops at (an oversized or fragmented
         * control frame): the close it queues has no code, so 1002 goes
         * out past it, and nothing more is read or sent. */
        raw_close(ws, 1002, "protocol error");
    } else if (rc != 0) {
        ps_sock_close(sock);
        return;
    }
    send_queued(ws); /* pongs, echoes, closes decided while reading */
    /* The replies to what was read, now rather than on the next wake. */
    ps_writer_drain(&ws->conn->server->writer);
    if (ws->sock != NULL) {
        close_if_done(ws);
    }
}

static void ws_on_drain(ps_sock *sock)
{
    ps_ws *ws = sock->owner;
    publish_pending(ws);
    check_ping(ws);
}

static void ws_on_tick(ps_sock *sock, int64_t now_ms)
{
    (void)now_ms;
    close_if_done(sock->owner);
}

static void ws_on_close(ps_sock *sock)
{
    ps_ws *ws = sock->owner;
    ws->sock = NULL;
    /* The client leaves its channels now, and its presence handle goes. */
    ps_conn *conn = ws->conn;
    ws->conn = NULL;
    ps_session_closed(conn);
    wslay_event_context_free(ws->ctx);
    ps_free(ws);
}

static const ps_sock_ops ws_ops = {
    .on_read = ws_on_read,
    .on_drain = ws_on_drain,
    .on_tick = ws_on_tick,
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

/* The first subprotocol the client offers, echoed as CivetWeb did (a
 * browser fails a handshake that offered one and got none back). */
static size_t first_protocol(const char *offer, const char **start)
{
    if (offer == NULL) {
        return 0;
    }
    offer += strspn(offer, " \t");
    size_t n = strcspn(offer, ", \t");
    *start = offer;
    return n > 64 ? 0 : n;
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
    if (ws->conn == NULL ||
        wslay_event_context_server_init(&ws->ctx, &callbacks, ws) != 0) {
        ps_conn_unref(ws->conn);
        ps_free(ws);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(
        ws->ctx, 2 * (uint64_t)server->cfg->websocket_message_size_limit + 1);
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
    ps_ws *ws = ws_new(server);
    if (ws == NULL) {
        ps_http_respond(ex, 500, "text/plain", NULL, "", 0);
        return false;
    }
    char accept[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE) + 1];
    accept_key(key, accept);
    const char *proto = NULL;
    size_t proto_len =
        first_protocol(ps_http_header(ex, "Sec-WebSocket-Protocol"), &proto);
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
        wslay_event_context_free(ws->ctx);
        ps_conn_unref(ws->conn);
        ps_free(ws);
        return false; /* the sweep closes the failed socket */
    }
    ps_http_release_socket(ex);
    ws->sock = sock;
    sock->ops = &ws_ops;
    sock->owner = ws;
    sock->deadline_ms = 0;
    ps_sock_read_start(sock);
    if (!ps_session_open(ws->conn)) {
        ws->session_done = true; /* stopping: closed with 3001 */
    }
    if (rest_len > 0 && ws->sock != NULL) {
        ws_on_read(sock, rest, rest_len);
    }
    return true;
}
