/*
 * RFC 6455 framing, server side, without I/O: a parser that takes the
 * client's bytes as they come (any split) and hands out whole messages,
 * pings, pongs and closes, and the header of a server frame.
 *
 * The parser enforces what a server must: every client frame masked, no
 * RSV bit (no extension is negotiated), known opcodes, control frames of
 * at most 125 bytes and never fragmented, continuation frames only inside
 * a fragmented message, UTF-8 in text messages (checked as bytes arrive)
 * and in close reasons, valid close codes, and a message size limit. It
 * keeps about 200 bytes per connection; a message is buffered only while
 * it is incomplete or being handed out.
 *
 * wslay was the first choice, but its context is 8.8 KB per connection
 * (fixed input and output buffers), which alone is over the server's
 * budget of 10 KB per idle connection.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_WS_FRAME_H
#define PS_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Close codes the parser fails with. */
#define PS_WS_CLOSE_PROTOCOL_ERROR 1002
#define PS_WS_CLOSE_INVALID_DATA 1007
#define PS_WS_CLOSE_TOO_BIG 1009
#define PS_WS_CLOSE_INTERNAL 1011

/* A close frame without a code is reported with this one (RFC 6455 7.1.5). */
#define PS_WS_CLOSE_NO_STATUS 1005

/** The largest header of a server frame. */
#define PS_WS_HEADER_MAX 10

typedef struct ps_ws_parser {
    size_t max_message;  /* bytes; a larger message fails with 1009 */
    uint8_t head[14];    /* the current frame's header, as it arrives */
    uint8_t head_len;
    bool in_payload;     /* the header is complete */
    uint8_t opcode;      /* of the current frame */
    bool fin;
    uint8_t mask[4];
    uint8_t mask_pos;
    uint64_t remaining;  /* payload bytes of the current frame still due */
    /* A data message: its opcode (0 = none under way), its bytes so far
     * and the UTF-8 check's state across frames. */
    uint8_t msg_opcode;
    char *msg;
    size_t msg_len, msg_cap;
    uint32_t utf8;
    /* A control frame's payload. */
    uint8_t ctrl[125];
    uint8_t ctrl_len;
    bool failed;
} ps_ws_parser;

/** What the parser hands out. For PS_WS_CLOSE, @p code is the peer's
 *  (PS_WS_CLOSE_NO_STATUS without one) and data/len its reason. Data is
 *  borrowed: valid during the call. Return false to stop parsing (the
 *  rest of the bytes are then not looked at). */
typedef bool (*ps_ws_handler)(void *user, int opcode, const char *data,
                              size_t len, int code);

/** An empty parser for messages of at most @p max_message bytes. */
void ps_ws_parser_init(ps_ws_parser *p, size_t max_message);

/** Free what it holds (a message under way). */
void ps_ws_parser_fini(ps_ws_parser *p);

/**
 * Feed @p len bytes. Returns 0 when they were all taken (or the handler
 * stopped), else the close code the connection must close with: 1002 (a
 * protocol error), 1007 (invalid UTF-8), 1009 (a message over the limit)
 * or 1011 (out of memory). After a failure the parser takes nothing more.
 */
int ps_ws_parse(ps_ws_parser *p, const char *data, size_t len,
                ps_ws_handler handler, void *user);

/** The header of a server frame (FIN set, unmasked) carrying @p len bytes
 *  with @p opcode, into @p out. Returns its length. */
size_t ps_ws_frame_header(uint8_t out[PS_WS_HEADER_MAX], int opcode,
                          size_t len);

/** Whether @p len bytes are valid UTF-8, going on from *@p state (0 at the
 *  start); *state is then 0 only at a character boundary. */
bool ps_utf8_feed(uint32_t *state, const uint8_t *data, size_t len);

/** Whether a peer may send close @p code (RFC 6455 7.4). */
bool ps_ws_close_code_valid(int code);

#endif
