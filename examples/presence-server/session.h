/*
 * A WebSocket session of the client protocol, without the socket: what
 * happens when a transport opens, when a frame arrives, and when the
 * transport is gone. ws_conn.c calls these on the event loop; the tests
 * and fuzzers call them directly (testing.h).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_SESSION_H
#define PS_SESSION_H

#include <stdbool.h>
#include <stddef.h>

struct ps_conn;

/** A new transport: start its stale timer and list it. False if the
 *  server is stopping (the connection has been closed with 3001). */
bool ps_session_open(struct ps_conn *conn);

/**
 * One frame from the peer (opcode as in RFC 6455, @p fin its FIN bit).
 * Control frames are answered, fragments reassembled within
 * websocket_message_size_limit (else close 1009), and each complete text
 * or binary message runs as newline-separated commands. Returns false when
 * the connection has been closed (a close frame was sent or echoed): the
 * transport must be dropped.
 */
bool ps_session_frame(struct ps_conn *conn, int opcode, bool fin,
                      const char *data, size_t len);

/** The transport is gone, closed by either side or dead: leave every
 *  channel, stop writing to it, and drop the transport's reference. */
void ps_session_closed(struct ps_conn *conn);

#endif
