/*
 * SPDX-License-Identifier: MIT
 */
#include "ws.h"

#include <stdio.h>
#include <string.h>

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 16 bytes to 24 base64 characters and a NUL. */
static void key_from_nonce(uint64_t nonce, char key[25])
{
    uint8_t raw[18] = {0};
    for (int i = 0; i < 8; i++) {
        raw[i] = (uint8_t)(nonce >> (8 * i));
        raw[8 + i] = (uint8_t)((nonce * 0x9E3779B97F4A7C15ull) >> (8 * i));
    }
    size_t o = 0;
    for (size_t i = 0; i < 18; i += 3) {
        uint32_t v = ((uint32_t)raw[i] << 16) | ((uint32_t)raw[i + 1] << 8) | raw[i + 2];
        key[o++] = b64_alphabet[(v >> 18) & 63];
        key[o++] = b64_alphabet[(v >> 12) & 63];
        key[o++] = b64_alphabet[(v >> 6) & 63];
        key[o++] = b64_alphabet[v & 63];
    }
    /* 16 bytes encode to 22 characters and "==". */
    key[22] = '=';
    key[23] = '=';
    key[24] = '\0';
}

bool lg_ws_request(lg_buf *out, const char *host_port, const char *path,
                   uint64_t nonce)
{
    char key[25];
    key_from_nonce(nonce, key);
    char text[512];
    int n = snprintf(text, sizeof text,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     path, host_port, key);
    if (n < 0 || (size_t)n >= sizeof text) {
        return false;
    }
    return lg_buf_append(out, text, (size_t)n);
}

long lg_ws_response(const char *data, size_t len)
{
    const size_t max = 8192;
    size_t scan = len < max ? len : max;
    for (size_t i = 3; i < scan; i++) {
        if (data[i - 3] == '\r' && data[i - 2] == '\n' && data[i - 1] == '\r' &&
            data[i] == '\n') {
            bool ok = i >= 12 && (memcmp(data, "HTTP/1.1 101", 12) == 0 ||
                                  memcmp(data, "HTTP/1.0 101", 12) == 0);
            return ok ? (long)(i + 1) : -1;
        }
    }
    return len >= max ? -1 : 0;
}

bool lg_ws_frame_append(lg_buf *out, uint8_t opcode, const void *payload,
                        size_t len, uint32_t mask)
{
    uint8_t head[14];
    size_t h = 0;
    head[h++] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        head[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        head[h++] = 0x80 | 126;
        head[h++] = (uint8_t)(len >> 8);
        head[h++] = (uint8_t)len;
    } else {
        head[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) {
            head[h++] = (uint8_t)((uint64_t)len >> (8 * i));
        }
    }
    uint8_t key[4] = {(uint8_t)(mask >> 24), (uint8_t)(mask >> 16),
                      (uint8_t)(mask >> 8), (uint8_t)mask};
    memcpy(head + h, key, 4);
    h += 4;
    if (!lg_buf_reserve(out, h + len)) {
        return false;
    }
    lg_buf_append(out, head, h);
    const uint8_t *in = payload;
    uint8_t *dst = (uint8_t *)out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        dst[i] = in[i] ^ key[i & 3];
    }
    out->len += len;
    return true;
}

bool lg_ws_close_append(lg_buf *out, uint16_t code, uint32_t mask)
{
    uint8_t body[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    return lg_ws_frame_append(out, LG_WS_CLOSE, body, sizeof body, mask);
}

long lg_ws_parse(const char *data, size_t len, size_t max_payload,
                 lg_ws_frame *frame)
{
    const uint8_t *p = (const uint8_t *)data;
    if (len < 2) {
        return 0;
    }
    if ((p[0] & 0x70) != 0 || (p[1] & 0x80) != 0) {
        return -1; /* reserved bits, or a masked server frame */
    }
    size_t h = 2;
    uint64_t n = p[1] & 0x7F;
    if (n == 126) {
        if (len < 4) {
            return 0;
        }
        n = ((uint64_t)p[2] << 8) | p[3];
        h = 4;
    } else if (n == 127) {
        if (len < 10) {
            return 0;
        }
        n = 0;
        for (int i = 0; i < 8; i++) {
            n = (n << 8) | p[2 + i];
        }
        h = 10;
    }
    if (n > max_payload) {
        return -1;
    }
    if (len - h < n) {
        return 0;
    }
    frame->opcode = p[0] & 0x0F;
    frame->fin = (p[0] & 0x80) != 0;
    frame->payload = data + h;
    frame->len = (size_t)n;
    return (long)(h + n);
}
