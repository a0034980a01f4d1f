/*
 * The client side of RFC 6455: the opening handshake and frames (masked
 * from the client, unmasked from the server). No extensions.
 * SPDX-License-Identifier: MIT
 */
#ifndef LG_WS_H
#define LG_WS_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    LG_WS_CONTINUATION = 0x0,
    LG_WS_TEXT = 0x1,
    LG_WS_BINARY = 0x2,
    LG_WS_CLOSE = 0x8,
    LG_WS_PING = 0x9,
    LG_WS_PONG = 0xA,
};

/** A frame as read from the server; payload points into the read buffer. */
typedef struct lg_ws_frame {
    uint8_t opcode;
    bool fin;
    const char *payload;
    size_t len;
} lg_ws_frame;

/** Append the upgrade request for @p path on @p host_port. @p nonce makes
 *  the Sec-WebSocket-Key. */
bool lg_ws_request(lg_buf *out, const char *host_port, const char *path,
                   uint64_t nonce);

/**
 * Parse the server's handshake answer at the start of @p data.
 * Returns the bytes it took (the frames start after them), 0 when it is
 * not complete yet, -1 when it is complete but not "101 Switching
 * Protocols" or larger than 8 KiB.
 */
long lg_ws_response(const char *data, size_t len);

/** Append one masked frame (FIN set). */
bool lg_ws_frame_append(lg_buf *out, uint8_t opcode, const void *payload,
                        size_t len, uint32_t mask);

/** Append a close frame with @p code and no reason. */
bool lg_ws_close_append(lg_buf *out, uint16_t code, uint32_t mask);

/**
 * Parse one server frame at the start of @p data. Returns the bytes it
 * takes, 0 when incomplete, -1 when it is not a frame a server may send
 * (masked, reserved bits, a payload over @p max_payload).
 */
long lg_ws_parse(const char *data, size_t len, size_t max_payload,
                 lg_ws_frame *frame);

#endif
