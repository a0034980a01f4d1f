/*
 * A growable byte buffer: what a connection has read and not yet parsed,
 * and what it has to write and not yet written.
 * SPDX-License-Identifier: MIT
 */
#ifndef LG_BUF_H
#define LG_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct lg_buf {
    char *data;
    size_t len;
    size_t cap;
} lg_buf;

/** Room for @p extra more bytes; false when memory ran out (unchanged). */
bool lg_buf_reserve(lg_buf *buf, size_t extra);
/** Append @p len bytes; false when memory ran out (unchanged). */
bool lg_buf_append(lg_buf *buf, const void *data, size_t len);
/** Append a NUL-terminated string (without its NUL). */
bool lg_buf_append_str(lg_buf *buf, const char *text);
/** Drop the first @p len bytes. */
void lg_buf_consume(lg_buf *buf, size_t len);
/** Forget the contents and give the memory back. */
void lg_buf_free(lg_buf *buf);

#endif
