/*
 * SPDX-License-Identifier: MIT
 */
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

bool lg_buf_reserve(lg_buf *buf, size_t extra)
{
    if (extra > SIZE_MAX - buf->len) {
        return false;
    }
    size_t need = buf->len + extra;
    if (need <= buf->cap) {
        return true;
    }
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            return false;
        }
        cap *= 2;
    }
    char *grown = realloc(buf->data, cap);
    if (grown == NULL) {
        return false;
    }
    buf->data = grown;
    buf->cap = cap;
    return true;
}

bool lg_buf_append(lg_buf *buf, const void *data, size_t len)
{
    if (!lg_buf_reserve(buf, len)) {
        return false;
    }
    if (len > 0) {
        memcpy(buf->data + buf->len, data, len);
    }
    buf->len += len;
    return true;
}

bool lg_buf_append_str(lg_buf *buf, const char *text)
{
    return lg_buf_append(buf, text, strlen(text));
}

void lg_buf_consume(lg_buf *buf, size_t len)
{
    if (len >= buf->len) {
        buf->len = 0;
        return;
    }
    memmove(buf->data, buf->data + len, buf->len - len);
    buf->len -= len;
}

void lg_buf_free(lg_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}
