/*
 * Centrifugo's client protocol v2 (JSON) over WebSocket: the commands.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_WS_PROTOCOL_H
#define PS_WS_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>

struct ps_conn;

/**
 * Run the commands of one complete WebSocket message (newline-separated
 * JSON commands, in order). On the reading thread. Returns false when the
 * connection has been closed (close frame sent): nothing more of it is
 * to be run.
 */
bool ps_ws_handle_message(struct ps_conn *conn, const char *data, size_t len);

#endif
