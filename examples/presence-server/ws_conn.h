/*
 * The WebSocket endpoint on the loop: the upgrade handshake, then RFC 6455
 * frames through wslay around a client connection (conn.h) whose protocol
 * is session.c's. wslay enforces the framing: masked client frames, no
 * RSV bit (no extension is negotiated), control frames of at most 125
 * bytes and never fragmented, UTF-8 in text messages, the message size
 * limit (1009); it answers pings with the same payload, and closes.
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
