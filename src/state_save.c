/*
 * presence_registry_save(): the whole registry, as one instant, in the
 * format of state_format.h. Every channel shard is taken (in index order,
 * as namespace changes take them), the state is written into one growing
 * buffer, the locks are released, and only then is the caller's write
 * function called.
 *
 * Clients, users and nodes are numbered in the order memberships first
 * name them (a small pointer -> number table each); the reason a member
 * in grace dropped for is which grace list it is on, read once per shard.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"
#include "state_format.h"

/* ---- the output buffer -------------------------------------------------- */

struct out {
    const presence_allocator *alloc;
    unsigned char *data;
    size_t len, cap;
    bool nomem;
};

static void put_bytes(struct out *o, const void *p, size_t n)
{
    if (o->nomem || n == 0) {
        return;
    }
    if (o->cap - o->len < n) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap - o->len < n) {
            cap = presence__mul_size(cap, 2);
        }
        unsigned char *grown =
            cap == SIZE_MAX ? NULL
                            : presence__realloc(o->alloc, o->data, o->cap, cap);
        if (grown == NULL) {
            o->nomem = true;
            return;
        }
        o->data = grown;
        o->cap = cap;
    }
    memcpy(o->data + o->len, p, n);
    o->len += n;
}

static void put_varint(struct out *o, uint64_t v)
{
    unsigned char b[10];
    size_t n = 0;
    do {
        b[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    put_bytes(o, b, n);
}

static void put_string(struct out *o, const char *s, size_t n)
{
    put_varint(o, n);
    put_bytes(o, s, n);
    put_bytes(o, "", 1);
}

static void put_blob(struct out *o, const void *p, size_t n)
{
    put_varint(o, n);
    put_bytes(o, p, n);
}

/* ---- pointer -> number tables --------------------------------------------- */

struct numbering {
    const presence_allocator *alloc;
    const void **keys;
    uint32_t *values;
    size_t cap; /* a power of two, more than twice the entries */
    /* The pointers in the order they were numbered (room: cap / 2). */
    const void **order;
    size_t count;
    bool nomem;
};

static void numbering_free(struct numbering *t)
{
    presence__free(t->alloc, t->keys, t->cap * sizeof *t->keys);
    presence__free(t->alloc, t->values, t->cap * sizeof *t->values);
    presence__free(t->alloc, t->order, t->cap / 2 * sizeof *t->order);
}

static size_t slot_of(const struct numbering *t, const void *key)
{
    uint64_t h = (uint64_t)(uintptr_t)key * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 32) & (t->cap - 1);
}

static void put_key(struct numbering *t, const void *key, uint32_t value)
{
    size_t i = slot_of(t, key);
    while (t->keys[i] != NULL) {
        i = (i + 1) & (t->cap - 1);
    }
    t->keys[i] = key;
    t->values[i] = value;
}

/* Double the table (or make its first one); false when memory ran out. */
static bool numbering_grow(struct numbering *t)
{
    struct numbering next = *t;
    next.cap = t->cap ? t->cap * 2 : 64;
    next.keys = presence__malloc(t->alloc,
                                 presence__mul_size(next.cap, sizeof *next.keys));
    next.values = presence__malloc(
        t->alloc, presence__mul_size(next.cap, sizeof *next.values));
    next.order = presence__malloc(
        t->alloc, presence__mul_size(next.cap / 2, sizeof *next.order));
    if (next.keys == NULL || next.values == NULL || next.order == NULL) {
        numbering_free(&next);
        t->nomem = true;
        return false;
    }
    memset(next.keys, 0, next.cap * sizeof *next.keys);
    for (size_t i = 0; i < t->cap; i++) {
        if (t->keys[i] != NULL) {
            put_key(&next, t->keys[i], t->values[i]);
        }
    }
    if (t->count > 0) {
        memcpy(next.order, t->order, t->count * sizeof *next.order);
    }
    numbering_free(t);
    *t = next;
    return true;
}

/* The number of key, numbering it now if it has none (UINT32_MAX when
 * memory ran out). */
static uint32_t number_of(struct numbering *t, const void *key)
{
    if (t->cap > 0) {
        size_t i = slot_of(t, key);
        while (t->keys[i] != NULL) {
            if (t->keys[i] == key) {
                return t->values[i];
            }
            i = (i + 1) & (t->cap - 1);
        }
    }
    if ((t->count + 1) * 2 > t->cap && !numbering_grow(t)) {
        return UINT32_MAX;
    }
    put_key(t, key, (uint32_t)t->count);
    t->order[t->count] = key;
    return (uint32_t)t->count++;
}

/* The number of a key that has one. */
static uint32_t number_known(const struct numbering *t, const void *key)
{
    size_t i = slot_of(t, key);
    while (t->keys[i] != key) {
        i = (i + 1) & (t->cap - 1);
    }
    return t->values[i];
}

/* ---- the walk -------------------------------------------------------------- */

struct save {
    presence_registry *reg;
    struct out out;
    struct numbering clients, users, nodes;
    /* Memberships in grace, numbered in the order of their lists; their
     * reasons by number. */
    struct numbering graced;
    unsigned char *reasons;
    size_t reasons_cap;
    int64_t saved_at;
};

static void note_graced(struct presence__membership *m,
                        presence_leave_reason reason, void *ctx)
{
    struct save *sv = ctx;
    uint32_t n = number_of(&sv->graced, m);
    if (n == UINT32_MAX) {
        return;
    }
    if (n >= sv->reasons_cap) {
        size_t cap = sv->reasons_cap ? sv->reasons_cap * 2 : 64;
        unsigned char *grown = presence__realloc(&sv->reg->alloc, sv->reasons,
                                                 sv->reasons_cap, cap);
        if (grown == NULL) {
            sv->graced.nomem = true;
            return;
        }
        sv->reasons = grown;
        sv->reasons_cap = cap;
    }
    sv->reasons[n] = (unsigned char)reason;
}

static uint32_t grace_reason(const struct save *sv,
                             const struct presence__membership *m)
{
    return presence__membership_in_grace(m)
               ? sv->reasons[number_known(&sv->graced, m)]
               : 0;
}

/* Every membership of every channel, in shard and table order. */
#define FOR_EACH_MEMBER(reg, s, ch, m)                                         \
    for (size_t s = 0; s < PRESENCE__SHARDS; s++)                              \
        for (size_t ci_ = 0;                                                   \
             ci_ < presence__index_slots(&(reg)->shards[s].channels); ci_++)   \
            for (struct presence__channel *ch =                                \
                     presence__index_at(&(reg)->shards[s].channels, ci_);      \
                 ch != NULL; ch = NULL)                                        \
                for (size_t mi_ = 0; mi_ < ch->members.nslots; mi_++)          \
                    for (struct presence__membership *m =                      \
                             presence__memberset_at(&ch->members, mi_);        \
                         m != NULL; m = NULL)

static bool number_everything(struct save *sv)
{
    presence_registry *reg = sv->reg;
    FOR_EACH_MEMBER(reg, s, ch, m)
    {
        const struct presence__client *c = m->client;
        uint32_t n = number_of(&sv->clients, c);
        if (n == UINT32_MAX) {
            return false;
        }
        if (n + 1 == sv->clients.count) { /* new */
            (void)number_of(&sv->users, c->user);
            if (presence__client_node(c) != NULL) {
                (void)number_of(&sv->nodes, presence__client_node(c));
            }
        }
    }
    return !sv->users.nomem && !sv->nodes.nomem;
}

static void write_namespaces(struct save *sv)
{
    struct out *o = &sv->out;
    put_varint(o, HASH_COUNT(sv->reg->namespaces));
    for (const struct presence__namespace *ns = sv->reg->namespaces; ns != NULL;
         ns = ns->hh.next) {
        const presence_namespace_options *op = &ns->options;
        put_string(o, ns->name, ns->name_len);
        unsigned char flags =
            (unsigned char)((op->presence ? PRESENCE__NS_PRESENCE : 0) |
                            (op->join_leave ? PRESENCE__NS_JOIN_LEAVE : 0) |
                            (op->grace_on_leave ? PRESENCE__NS_GRACE_ON_LEAVE
                                                : 0) |
                            (op->grace_same_user ? PRESENCE__NS_GRACE_SAME_USER
                                                 : 0));
        put_bytes(o, &flags, 1);
        put_varint(o, (uint64_t)op->ttl_ms);
        put_varint(o, op->max_members);
        put_varint(o, (uint64_t)op->leave_grace_ms);
        put_varint(o, op->history_size);
    }
}

static void write_tables(struct save *sv)
{
    struct out *o = &sv->out;
    put_varint(o, sv->nodes.count);
    for (size_t i = 0; i < sv->nodes.count; i++) {
        const struct presence__node *n = sv->nodes.order[i];
        put_string(o, n->id, n->id_len);
    }
    put_varint(o, sv->users.count);
    for (size_t i = 0; i < sv->users.count; i++) {
        const struct presence__user *u = sv->users.order[i];
        put_string(o, u->id, u->id_len);
    }
    put_varint(o, sv->clients.count);
    for (size_t i = 0; i < sv->clients.count; i++) {
        const struct presence__client *c = sv->clients.order[i];
        put_string(o, c->id, c->id_len);
        put_varint(o, number_known(&sv->users, c->user));
        put_blob(o, presence__client_conn_info(c),
                 presence__client_conn_info_len(c));
        const struct presence__node *n = presence__client_node(c);
        put_varint(o, n != NULL ? (uint64_t)number_known(&sv->nodes, n) + 1 : 0);
    }
}

static void write_channels(struct save *sv)
{
    presence_registry *reg = sv->reg;
    struct out *o = &sv->out;
    size_t channels = 0;
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        /* Idle ones (pinned, no member) are no channels: not saved. */
        channels += reg->shards[s].channels.count - reg->shards[s].idle;
    }
    put_varint(o, channels);
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        struct presence__shard *hs = &reg->shards[s];
        for (size_t i = 0; i < presence__index_slots(&hs->channels); i++) {
            const struct presence__channel *ch =
                presence__index_at(&hs->channels, i);
            if (ch == NULL || ch->members.count == 0) {
                continue;
            }
            put_string(o, ch->name, ch->name_len);
            put_varint(o, ch->epoch);
            put_varint(o, ch->seq);
            put_varint(o, ch->members.count);
            for (size_t j = 0; j < ch->members.nslots; j++) {
                const struct presence__membership *m =
                    presence__memberset_at(&ch->members, j);
                if (m == NULL) {
                    continue;
                }
                put_varint(o, number_known(&sv->clients, m->client));
                put_varint(o, presence__zigzag(presence__membership_joined(m) -
                                               sv->saved_at));
                put_varint(o, presence__zigzag(
                                  presence__membership_touched(m) -
                                  sv->saved_at));
                unsigned char grace = (unsigned char)grace_reason(sv, m);
                put_bytes(o, &grace, 1);
                const struct presence__blob *b =
                    presence__membership_chan_info(hs, m);
                put_blob(o, b != NULL ? b->data : NULL, b != NULL ? b->len : 0);
            }
        }
    }
}

/* The state into sv->out (every channel shard held). */
static int serialize(struct save *sv)
{
    presence_registry *reg = sv->reg;
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        presence__grace_walk(reg, s, note_graced, sv);
    }
    if (sv->graced.nomem || !number_everything(sv)) {
        return PRESENCE_ERR_NOMEM;
    }

    struct out *o = &sv->out;
    unsigned char header[PRESENCE__STATE_HEADER];
    memcpy(header, PRESENCE__STATE_MAGIC, PRESENCE__STATE_MAGIC_LEN);
    presence__put_u32le(header + PRESENCE__STATE_MAGIC_LEN,
                        PRESENCE_STATE_FORMAT);
    put_bytes(o, header, sizeof header);
    put_varint(o, presence__zigzag(sv->saved_at));
    put_bytes(o, &reg->separator, 1);
    write_namespaces(sv);
    write_tables(sv);
    write_channels(sv);
    if (!o->nomem) {
        unsigned char sum[PRESENCE__STATE_CHECKSUM];
        presence__put_u64le(sum, presence__state_checksum(o->data, o->len));
        put_bytes(o, sum, sizeof sum);
    }
    return o->nomem ? PRESENCE_ERR_NOMEM : PRESENCE_OK;
}

#define WRITE_PIECE ((size_t)1 << 20)

int presence_registry_save(presence_registry *reg, presence_write_fn write,
                           void *user_data, size_t *size)
{
    if (reg == NULL || write == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct save sv;
    memset(&sv, 0, sizeof sv);
    sv.reg = reg;
    sv.out.alloc = &reg->alloc;
    sv.clients.alloc = sv.users.alloc = sv.nodes.alloc = sv.graced.alloc =
        &reg->alloc;
    /* Every channel shard: no membership can come, go or change hands,
     * so the clients they name stay (and what a save reads of a client,
     * user or node never changes). */
    presence__lock_all_shards(reg);
    sv.saved_at = presence__now(reg);
    int rc = serialize(&sv);
    presence__unlock_all_shards(reg);
    numbering_free(&sv.clients);
    numbering_free(&sv.users);
    numbering_free(&sv.nodes);
    numbering_free(&sv.graced);
    presence__free(&reg->alloc, sv.reasons, sv.reasons_cap);
    for (size_t at = 0; rc == PRESENCE_OK && at < sv.out.len;) {
        size_t n = sv.out.len - at < WRITE_PIECE ? sv.out.len - at : WRITE_PIECE;
        if (write(sv.out.data + at, n, user_data) != 0) {
            rc = PRESENCE_ERR_IO;
        }
        at += n;
    }
    if (rc == PRESENCE_OK && size != NULL) {
        *size = sv.out.len;
    }
    presence__free(&reg->alloc, sv.out.data, sv.out.cap);
    return rc;
}
