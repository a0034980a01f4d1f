/*
 * The zero-copy reader: a channel's members handed to a visitor in place.
 *
 * Members are taken in chunks: under the channel's shard, a chunk's
 * client records and chan_info blobs get a reference each (their bytes
 * never change while referenced) and their times are read; then the lock
 * is released and the visitor sees each member through pointers into
 * those records. So a visitor holds no lock of the library's: it may call
 * any function, on any channel, and never meets a deadlock or a torn
 * read. Only freeing the registry is refused while a visit runs. Chunks
 * follow the channel's cursor order, so a walk has the paged query's
 * guarantee: a member present throughout is visited exactly once.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"

/* Members taken per lock round trip. */
#define VISIT_CHUNK 64u

struct visit_item {
    struct presence__client *client;
    struct presence__blob *chan_info;
    int64_t joined, touched;
    bool in_grace;
};

/* A chunk: the scan returns at most the members it is asked for. */
struct visit_chunk {
    presence_registry *reg;
    struct presence__shard *hs;
    size_t n;
    struct visit_item items[VISIT_CHUNK];
};

/* Under the lock, the scan only notes each member: the references are
 * taken after it (chunk_hold), so that in a threaded registry no locked
 * add holds back the loads the scan has running ahead. */
static void chunk_take(struct presence__membership *m, void *ctx)
{
    struct visit_chunk *c = ctx;
    struct visit_item *it = &c->items[c->n++];
    it->client = m->client;
    it->chan_info = presence__membership_chan_info(c->hs, m);
    it->joined = presence__membership_joined(m);
    it->touched = presence__membership_touched(m);
    it->in_grace = presence__membership_in_grace(m);
}

/* Still under the lock: the chunk's records stay while it is visited. */
static void chunk_hold(struct visit_chunk *c)
{
    for (size_t i = 0; i < c->n; i++) {
        presence__client_ref(c->reg, c->items[i].client);
        presence__chan_info_ref(c->reg, c->items[i].chan_info);
    }
}

/* The member as a visitor sees it: every pointer into the records. */
static void member_view(presence_member *out, const char *channel,
                        const struct visit_item *it)
{
    const struct presence__client *c = it->client;
    const struct presence__node *node = presence__client_node(c);
    size_t conn_info_len = presence__client_conn_info_len(c);
    memset(out, 0, sizeof *out);
    out->channel = channel;
    out->client_id = c->id;
    out->user_id = presence__client_user_id(c);
    out->conn_info = conn_info_len > 0 ? presence__client_conn_info(c) : NULL;
    out->conn_info_len = conn_info_len;
    out->chan_info = it->chan_info != NULL ? it->chan_info->data : NULL;
    out->chan_info_len = it->chan_info != NULL ? it->chan_info->len : 0;
    out->joined_at_ms = it->joined;
    out->touched_at_ms = it->touched;
    out->node_id = node != NULL ? node->id : "";
    out->app = presence__client_app(c);
    out->in_grace = it->in_grace;
}

int presence_visit(presence_registry *reg, const char *channel,
                   const presence_requester *requester, uint64_t cursor,
                   size_t limit, presence_visit_fn fn, void *user_data,
                   presence_visit_info *info)
{
    if (reg == NULL || fn == NULL ||
        presence__requester_resolve(&requester) != PRESENCE_OK) {
        return PRESENCE_ERR_INVALID;
    }
    size_t left = limit != 0 ? limit : SIZE_MAX;
    presence_visit_info out = {0};
    bool first = true;
    int rc = PRESENCE_OK;
    atomic_fetch_add(&reg->visits, 1);
    do {
        struct presence__chref ref;
        rc = presence__lock_channel_read(reg, channel, requester, &ref);
        if (rc != PRESENCE_OK) {
            break; /* a later chunk may meet a namespace turned off */
        }
        if (first) {
            out.stats = presence__channel_stats(ref.ch);
            first = false;
        }
        struct visit_chunk c;
        c.reg = reg;
        c.hs = ref.shard;
        c.n = 0;
        uint64_t next = 0;
        if (ref.ch != NULL) {
            size_t want = left < VISIT_CHUNK ? left : VISIT_CHUNK;
            next = presence__memberset_scan(&ref.ch->members, cursor, want,
                                            chunk_take, &c);
            chunk_hold(&c);
        }
        presence__mutex_unlock(reg, &ref.shard->lock);
        for (size_t i = 0; i < c.n; i++) {
            presence_member m;
            member_view(&m, channel, &c.items[i]);
            fn(&m, user_data);
        }
        for (size_t i = 0; i < c.n; i++) {
            presence__chan_info_unref(reg, c.items[i].chan_info);
            presence__client_unref(reg, c.items[i].client);
        }
        out.visited += c.n;
        left -= c.n < left ? c.n : left;
        cursor = next;
    } while (cursor != 0 && left > 0);
    atomic_fetch_sub(&reg->visits, 1);
    out.next_cursor = limit != 0 ? cursor : 0;
    if (info != NULL && (rc == PRESENCE_OK || out.visited > 0)) {
        *info = out;
    }
    return rc;
}
