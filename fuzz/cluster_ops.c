/*
 * Fuzz target for the cluster's wire decoder (src/cluster/codec.c): the
 * bytes a node reads from Redis. Whatever they are, decoding must stay in
 * bounds and refuse what is malformed; whatever it accepts must encode
 * back to bytes that decode to the same op, and the split view (what the
 * members hash sees) must agree with the full decode.
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "cluster_internal.h"
#include "cluster_ops.h"

static bool same(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* Re-encode one decoded op and check that it reads back the same. */
static void check_round_trip(const struct presence__cl_op *op)
{
    presence_allocator a;
    presence__cl_alloc_init(&a, NULL);
    char *ch = presence__cl_strndup(&a, op->channel, op->channel_len);
    char *cl = presence__cl_strndup(&a, op->client, op->client_len);
    char *user = op->kind == 'J' ? presence__cl_strndup(&a, op->member.user,
                                                        op->member.user_len)
                                 : NULL;
    if (ch == NULL || cl == NULL || (op->kind == 'J' && user == NULL)) {
        abort();
    }
    /* Names with a NUL or a tab are not what a node writes: the registry
     * refuses them, and the field encoding relies on it. */
    bool writable = strlen(ch) == op->channel_len &&
                    strlen(cl) == op->client_len &&
                    memchr(ch, '\t', op->channel_len) == NULL &&
                    memchr(cl, '\t', op->client_len) == NULL &&
                    (user == NULL || strlen(user) == op->member.user_len);
    struct presence__cl_buf b = {.alloc = &a};
    bool ok = !writable;
    if (writable && op->kind == 'J') {
        ok = presence__cl_encode_join(
            &b, ch, cl, user, op->member.conn_info, op->member.conn_info_len,
            op->member.chan_info, op->member.chan_info_len);
    } else if (writable) {
        ok = presence__cl_encode_leave(&b, ch, cl, op->reason);
    }
    if (!ok) {
        abort();
    }
    if (writable) {
        size_t pos = 0;
        struct presence__cl_op again;
        if (!presence__cl_decode_op(b.data, b.len, &pos, &again) ||
            pos != b.len || again.kind != op->kind ||
            !same(again.channel, again.channel_len, ch, op->channel_len) ||
            !same(again.client, again.client_len, cl, op->client_len) ||
            (op->kind == 'L' && again.reason != op->reason) ||
            (op->kind == 'J' &&
             (!same(again.member.conn_info, again.member.conn_info_len,
                    op->member.conn_info, op->member.conn_info_len) ||
              !same(again.member.chan_info, again.member.chan_info_len,
                    op->member.chan_info, op->member.chan_info_len)))) {
            abort();
        }
    }
    presence__cl_buf_free(&b);
    presence__cl_free(&a, ch, op->channel_len + 1);
    presence__cl_free(&a, cl, op->client_len + 1);
    presence__cl_free(&a, user, op->member.user_len + 1);
}

int presence_fuzz_cluster_ops(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so that ASan sees any overread. */
    char *ops = malloc(size ? size : 1);
    if (ops == NULL) {
        return 0;
    }
    memcpy(ops, data, size);
    size_t pos = 0, split_pos = 0;
    struct presence__cl_op op;
    while (presence__cl_decode_op(ops, size, &pos, &op)) {
        const char *field, *value;
        size_t field_len, value_len;
        if (!presence__cl_split_op(ops, size, &split_pos, &field, &field_len,
                                   &value, &value_len) ||
            split_pos != pos || (value == NULL) != (op.kind == 'L') ||
            field != op.channel ||
            field_len != op.channel_len + 1 + op.client_len) {
            abort();
        }
        check_round_trip(&op);
    }
    struct presence__cl_member m;
    const char *ch, *cl;
    size_t chl, cll;
    if (presence__cl_decode_member(ops, size, &m) &&
        (m.user_len > size || m.conn_info_len > size)) {
        abort();
    }
    if (presence__cl_decode_field(ops, size, &ch, &chl, &cl, &cll) &&
        chl + 1 + cll != size) {
        abort();
    }
    free(ops);
    return 0;
}
