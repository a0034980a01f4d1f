/*
 * RFC 6455 framing: see ws_frame.h.
 * SPDX-License-Identifier: MIT
 */
#include "ws_frame.h"

#include "mem.h"

#include <string.h>

#define OP_CONTINUATION 0x0
#define OP_TEXT 0x1
#define OP_BINARY 0x2
#define OP_CLOSE 0x8
#define OP_PING 0x9
#define OP_PONG 0xa

/* ---- UTF-8 ----------------------------------------------------------------
 * The state packs the continuation bytes still due and the range the next
 * one must fall in (RFC 3629's table: no overlong forms, no surrogates,
 * nothing above U+10FFFF). */

#define U8_STATE(need, lo, hi) ((uint32_t)(need) | ((uint32_t)(lo) << 8) | ((uint32_t)(hi) << 16))

bool ps_utf8_feed(uint32_t *state, const uint8_t *data, size_t len)
{
    uint32_t need = *state & 0xff;
    uint32_t lo = (*state >> 8) & 0xff;
    uint32_t hi = (*state >> 16) & 0xff;
    for (size_t i = 0; i < len; i++) {
        /* Most text is ASCII: skip it a word at a time between
         * characters. */
        while (need == 0 && len - i >= 8) {
            uint64_t w;
            memcpy(&w, data + i, sizeof w);
            if ((w & 0x8080808080808080ULL) != 0) {
                break;
            }
            i += 8;
        }
        if (i == len) {
            break;
        }
        uint32_t b = data[i];
        if (need > 0) {
            if (b < lo || b > hi) {
                return false;
            }
            need--;
            lo = 0x80;
            hi = 0xbf;
            continue;
        }
        if (b < 0x80) {
            continue;
        }
        lo = 0x80;
        hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
        } else if (b == 0xe0) {
            need = 2;
            lo = 0xa0;
        } else if ((b >= 0xe1 && b <= 0xec) || b == 0xee || b == 0xef) {
            need = 2;
        } else if (b == 0xed) {
            need = 2;
            hi = 0x9f;
        } else if (b == 0xf0) {
            need = 3;
            lo = 0x90;
        } else if (b >= 0xf1 && b <= 0xf3) {
            need = 3;
        } else if (b == 0xf4) {
            need = 3;
            hi = 0x8f;
        } else {
            return false;
        }
    }
    *state = need > 0 ? U8_STATE(need, lo, hi) : 0;
    return true;
}

bool ps_ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* ---- the parser ---------------------------------------------------------- */

void ps_ws_parser_init(ps_ws_parser *p, size_t max_message)
{
    memset(p, 0, sizeof *p);
    p->max_message = max_message;
}

void ps_ws_parser_fini(ps_ws_parser *p)
{
    ps_free(p->msg);
    p->msg = NULL;
    p->msg_len = p->msg_cap = 0;
}

/* How long the header is, from what of it has come (at least 2 bytes). */
static size_t header_size(const ps_ws_parser *p)
{
    uint8_t n = p->head[1] & 0x7f;
    return 2 + (n == 126 ? 2 : n == 127 ? 8 : 0) + 4;
}

static int fail(ps_ws_parser *p, int code)
{
    p->failed = true;
    ps_ws_parser_fini(p);
    return code;
}

/* The header is in: check it and set the frame up. 0 or a close code. */
static int begin_frame(ps_ws_parser *p)
{
    const uint8_t *h = p->head;
    p->fin = (h[0] & 0x80) != 0;
    p->opcode = h[0] & 0x0f;
    uint64_t len = h[1] & 0x7f;
    size_t at = 2;
    if (len == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
        at = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) {
            len = (len << 8) | h[2 + i];
        }
        at = 10;
        if (len >> 63) {
            return PS_WS_CLOSE_PROTOCOL_ERROR;
        }
    }
    memcpy(p->mask, h + at, 4);
    p->mask_pos = 0;
    p->remaining = len;
    if (p->opcode & 0x8) {
        if (p->opcode > OP_PONG || !p->fin || len > 125) {
            return PS_WS_CLOSE_PROTOCOL_ERROR;
        }
        p->ctrl_len = 0;
        return 0;
    }
    if (p->opcode > OP_BINARY) {
        return PS_WS_CLOSE_PROTOCOL_ERROR;
    }
    /* A continuation needs a message under way; a new message may not
     * start inside one (5.4). */
    if ((p->opcode == OP_CONTINUATION) != (p->msg_opcode != 0)) {
        return PS_WS_CLOSE_PROTOCOL_ERROR;
    }
    if (len > p->max_message - p->msg_len) {
        return PS_WS_CLOSE_TOO_BIG;
    }
    if (p->opcode != OP_CONTINUATION) {
        p->msg_opcode = p->opcode;
        p->msg_len = 0;
        p->utf8 = 0;
    }
    size_t need = p->msg_len + (size_t)len + 1;
    if (need > p->msg_cap) {
        char *grown = ps_realloc(p->msg, need);
        if (grown == NULL) {
            return PS_WS_CLOSE_INTERNAL;
        }
        p->msg = grown;
        p->msg_cap = need;
    }
    return 0;
}

/* Unmask @p n payload bytes into the message or the control buffer. */
static int take_payload(ps_ws_parser *p, const uint8_t *in, size_t n)
{
    uint8_t *out = (p->opcode & 0x8) ? p->ctrl + p->ctrl_len
                                     : (uint8_t *)p->msg + p->msg_len;
    for (size_t i = 0; i < n; i++) {
        out[i] = in[i] ^ p->mask[p->mask_pos++ & 3];
    }
    if (p->opcode & 0x8) {
        p->ctrl_len = (uint8_t)(p->ctrl_len + n);
        return 0;
    }
    p->msg_len += n;
    /* Text is checked as it comes, so that a bad message fails early. */
    if (p->msg_opcode == OP_TEXT && !ps_utf8_feed(&p->utf8, out, n)) {
        return PS_WS_CLOSE_INVALID_DATA;
    }
    return 0;
}

/* The frame is complete. 0, a close code, or -1 when the handler said
 * stop. */
static int end_frame(ps_ws_parser *p, ps_ws_handler handler, void *user)
{
    p->head_len = 0;
    p->in_payload = false;
    bool go_on = true;
    if (p->opcode == OP_CLOSE) {
        int code = PS_WS_CLOSE_NO_STATUS;
        const char *reason = "";
        size_t rlen = 0;
        if (p->ctrl_len == 1) {
            return PS_WS_CLOSE_PROTOCOL_ERROR;
        }
        if (p->ctrl_len >= 2) {
            code = (p->ctrl[0] << 8) | p->ctrl[1];
            if (!ps_ws_close_code_valid(code)) {
                return PS_WS_CLOSE_PROTOCOL_ERROR;
            }
            uint32_t u = 0;
            rlen = p->ctrl_len - 2u;
            if (!ps_utf8_feed(&u, p->ctrl + 2, rlen) || u != 0) {
                return PS_WS_CLOSE_INVALID_DATA;
            }
            reason = (const char *)p->ctrl + 2;
        }
        go_on = handler(user, OP_CLOSE, reason, rlen, code);
    } else if (p->opcode & 0x8) {
        go_on = handler(user, p->opcode, (const char *)p->ctrl, p->ctrl_len, 0);
    } else if (p->fin) {
        if (p->msg_opcode == OP_TEXT && p->utf8 != 0) {
            return PS_WS_CLOSE_INVALID_DATA; /* a character cut off */
        }
        int opcode = p->msg_opcode;
        char *msg = p->msg;
        size_t len = p->msg_len;
        msg[len] = '\0';
        /* An idle connection keeps no buffer. */
        p->msg = NULL;
        p->msg_len = p->msg_cap = 0;
        p->msg_opcode = 0;
        go_on = handler(user, opcode, msg, len, 0);
        ps_free(msg);
    }
    return go_on ? 0 : -1;
}

int ps_ws_parse(ps_ws_parser *p, const char *data, size_t len,
                ps_ws_handler handler, void *user)
{
    if (p->failed) {
        return PS_WS_CLOSE_PROTOCOL_ERROR;
    }
    const uint8_t *in = (const uint8_t *)data;
    while (len > 0) {
        int rc = 0;
        if (!p->in_payload) {
            size_t want = p->head_len < 2 ? 2 : header_size(p);
            size_t n = want - p->head_len < len ? want - p->head_len : len;
            memcpy(p->head + p->head_len, in, n);
            p->head_len = (uint8_t)(p->head_len + n);
            in += n;
            len -= n;
            if (p->head_len == 2) {
                /* Fail fast on what two bytes tell: RSV bits (no extension
                 * is negotiated) and a frame not masked by the client. */
                if ((p->head[0] & 0x70) != 0 || (p->head[1] & 0x80) == 0) {
                    return fail(p, PS_WS_CLOSE_PROTOCOL_ERROR);
                }
                continue;
            }
            if (p->head_len < header_size(p)) {
                continue;
            }
            rc = begin_frame(p);
            if (rc != 0) {
                return fail(p, rc);
            }
            p->in_payload = true;
        } else {
            size_t n = p->remaining < len ? (size_t)p->remaining : len;
            rc = take_payload(p, in, n);
            if (rc != 0) {
                return fail(p, rc);
            }
            in += n;
            len -= n;
            p->remaining -= n;
        }
        if (p->in_payload && p->remaining == 0) {
            rc = end_frame(p, handler, user);
            if (rc < 0) {
                return 0;
            }
            if (rc != 0) {
                return fail(p, rc);
            }
        }
    }
    return 0;
}

size_t ps_ws_frame_header(uint8_t out[PS_WS_HEADER_MAX], int opcode,
                          size_t len)
{
    out[0] = (uint8_t)(0x80 | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    uint64_t v = len;
    for (int i = 7; i >= 0; i--) {
        out[2 + i] = (uint8_t)v;
        v >>= 8;
    }
    return 10;
}
