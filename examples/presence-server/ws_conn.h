/*
 * The WebSocket endpoint on the loop: the upgrade handshake, then RFC 6455
 * frames (ws_frame.h, which enforces the framing: masking, RSV bits,
 * control frames, UTF-8, the message size limit) around a client
 * connection (conn.h) whose protocol is session.c's. Pings are answered
 * here with their payload, and a peer's close is echoed.
 *
 * Every close the server decides is enforced: the close frame goes out,
 * and the socket is closed when the peer answers it, or after
 * PS_NET_CLOSE_TIMEOUT_MS if it does not. Loop thread only.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_WS_CONN_H
#define PS_WS_CONN_H

#include <stdbool.h>
#include <stddef.h>

struct ps_http_exchange;

/** Centrifugo's endpoint. */
#define PS_WS_PATH "/connection/websocket"

/** The request on PS_WS_PATH is complete: answer the handshake and take
 *  its socket over, with @p rest (bytes after the request) as the first
 *  frames. False when it was refused with an HTTP response (400, 426) or
 *  the socket closed; true when the exchange is gone (the socket is the
 *  WebSocket's). */
bool ps_ws_upgrade(struct ps_http_exchange *ex, const char *rest,
                   size_t rest_len);

/** ps_frame_writer for these connections (the transport is a ps_ws). */
int ps_ws_write_frame(void *transport, int opcode, const char *data,
                      size_t len);

/** ps_server::mark_ping: the frames written so far hold a ping; its pong
 *  deadline starts once they have left (ps_heartbeat_ping_written()). */
void ps_ws_mark_ping(void *transport);

#endif
