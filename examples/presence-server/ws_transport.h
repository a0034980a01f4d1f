/*
 * The WebSocket endpoint on CivetWeb: connection lifecycle and framing.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_WS_TRANSPORT_H
#define PS_WS_TRANSPORT_H

#include <stddef.h>

struct mg_context;
struct ps_server;

/** Centrifugo's endpoint. */
#define PS_WS_PATH "/connection/websocket"

/** ps_frame_writer for CivetWeb connections. */
int ps_ws_transport_write(void *transport, int opcode, const char *data,
                          size_t len);

/** Install the WebSocket handlers on @p ctx. */
void ps_ws_transport_install(struct mg_context *ctx, struct ps_server *server);

#endif
