/*
 * The wire encoding of memberships and changes (docs/CLUSTER.md).
 *
 * Ids and channel names never hold control characters (the registry
 * refuses them), so a tab separates them; the opaque infos are netstrings
 * ("<decimal length>:<bytes>"), so any byte can travel.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "cluster_internal.h"

bool presence__cl_buf_put(struct presence__cl_buf *b, const void *data,
                          size_t len)
{
    if (len > SIZE_MAX - b->len - 1) {
        return false;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + len) {
            cap = cap > SIZE_MAX / 2 ? b->len + len : cap * 2;
        }
        char *p = presence__cl_realloc(b->alloc, b->data, b->cap, cap);
        if (p == NULL) {
            return false;
        }
        b->data = p;
        b->cap = cap;
    }
    if (len > 0) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    return true;
}

bool presence__cl_buf_put_field(struct presence__cl_buf *b, const void *data,
                                size_t len)
{
    char head[24];
    int n = snprintf(head, sizeof head, "%zu:", len);
    return presence__cl_buf_put(b, head, (size_t)n) &&
           presence__cl_buf_put(b, data, len);
}

void presence__cl_buf_free(struct presence__cl_buf *b)
{
    presence__cl_free(b->alloc, b->data, b->cap);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Read a netstring at *pos. */
static bool get_field(const char *s, size_t len, size_t *pos,
                      const char **out, size_t *out_len)
{
    size_t n = 0;
    size_t i = *pos;
    size_t digits = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && digits < 19) {
        n = n * 10 + (size_t)(s[i] - '0');
        i++;
        digits++;
    }
    if (digits == 0 || i >= len || s[i] != ':' || n > len - i - 1) {
        return false;
    }
    *out = s + i + 1;
    *out_len = n;
    *pos = i + 1 + n;
    return true;
}

bool presence__cl_encode_field(struct presence__cl_buf *b, const char *channel,
                               const char *client)
{
    return presence__cl_buf_put(b, channel, strlen(channel)) &&
           presence__cl_buf_put(b, "\t", 1) &&
           presence__cl_buf_put(b, client, strlen(client));
}

bool presence__cl_decode_field(const char *field, size_t len,
                               const char **channel, size_t *channel_len,
                               const char **client, size_t *client_len)
{
    const char *tab = memchr(field, '\t', len);
    if (tab == NULL || tab == field || tab == field + len - 1) {
        return false;
    }
    *channel = field;
    *channel_len = (size_t)(tab - field);
    *client = tab + 1;
    *client_len = len - *channel_len - 1;
    return true;
}

bool presence__cl_encode_member(struct presence__cl_buf *b, const char *user,
                                const void *conn_info, size_t conn_info_len,
                                const void *chan_info, size_t chan_info_len)
{
    return presence__cl_buf_put_field(b, user, strlen(user)) &&
           presence__cl_buf_put_field(b, conn_info, conn_info_len) &&
           presence__cl_buf_put_field(b, chan_info, chan_info_len);
}

static bool get_member(const char *s, size_t len, size_t *pos,
                       struct presence__cl_member *m)
{
    return get_field(s, len, pos, &m->user, &m->user_len) &&
           get_field(s, len, pos, &m->conn_info, &m->conn_info_len) &&
           get_field(s, len, pos, &m->chan_info, &m->chan_info_len);
}

bool presence__cl_decode_member(const char *value, size_t len,
                                struct presence__cl_member *out)
{
    size_t pos = 0;
    return get_member(value, len, &pos, out) && pos == len;
}

/* An op: 'J' <field> <member> or 'L' <reason digit> <field>, where
 * <field> is the hash field as a netstring. */
static bool put_op_field(struct presence__cl_buf *b, const char *channel,
                         const char *client)
{
    size_t ch = strlen(channel);
    size_t cl = strlen(client);
    char head[24];
    int n = snprintf(head, sizeof head, "%zu:", ch + 1 + cl);
    return presence__cl_buf_put(b, head, (size_t)n) &&
           presence__cl_buf_put(b, channel, ch) &&
           presence__cl_buf_put(b, "\t", 1) &&
           presence__cl_buf_put(b, client, cl);
}

bool presence__cl_encode_join(struct presence__cl_buf *b, const char *channel,
                              const char *client, const char *user,
                              const void *conn_info, size_t conn_info_len,
                              const void *chan_info, size_t chan_info_len)
{
    return presence__cl_buf_put(b, "J", 1) &&
           put_op_field(b, channel, client) &&
           presence__cl_encode_member(b, user, conn_info, conn_info_len,
                                      chan_info, chan_info_len);
}

bool presence__cl_encode_leave(struct presence__cl_buf *b, const char *channel,
                               const char *client, int reason)
{
    char head[2] = {'L', (char)('0' + reason)};
    return reason >= 0 && reason <= 9 && presence__cl_buf_put(b, head, 2) &&
           put_op_field(b, channel, client);
}

bool presence__cl_decode_op(const char *ops, size_t len, size_t *pos,
                            struct presence__cl_op *op)
{
    if (*pos >= len) {
        return false;
    }
    const char *field;
    size_t field_len;
    op->kind = ops[(*pos)++];
    if (op->kind == 'L') {
        if (*pos >= len || ops[*pos] < '0' || ops[*pos] > '9') {
            return false;
        }
        op->reason = ops[(*pos)++] - '0';
    } else if (op->kind != 'J') {
        return false;
    }
    if (!get_field(ops, len, pos, &field, &field_len) ||
        !presence__cl_decode_field(field, field_len, &op->channel,
                                   &op->channel_len, &op->client,
                                   &op->client_len)) {
        return false;
    }
    return op->kind == 'L' || get_member(ops, len, pos, &op->member);
}

bool presence__cl_split_op(const char *ops, size_t len, size_t *pos,
                           const char **field, size_t *field_len,
                           const char **value, size_t *value_len)
{
    size_t start = *pos;
    struct presence__cl_op op;
    if (!presence__cl_decode_op(ops, len, pos, &op)) {
        return false;
    }
    /* The field netstring follows the kind (and a leave's reason). */
    size_t at = start + (op.kind == 'L' ? 2 : 1);
    if (!get_field(ops, len, &at, field, field_len)) {
        return false;
    }
    *value = op.kind == 'J' ? ops + at : NULL;
    *value_len = op.kind == 'J' ? *pos - at : 0;
    return true;
}
