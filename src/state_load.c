/*
 * presence_registry_load(): a new registry from a saved state (the format
 * of state_format.h). Nothing of the input is trusted: the header and the
 * checksum are checked first, then every count against the bytes left
 * (so no count makes the loader allocate more than the input could
 * describe), every index, every name (through the registry's own checks
 * and limits), every option and time. Members are put in through the
 * join path, with the registry's limits; their times, epochs, seqs and
 * graces are restored after. Namespaces get their TTL, grace and change
 * logs last, so that the TTL lists are built once, in the documented
 * order, members in grace are linked in (drop time, client id, channel
 * name) order, and each log starts at its channel's restored seq. On any error the new registry is freed whole: nothing of it
 * was ever visible.
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "domain/domain.h"
#include "state_format.h"

/* ---- reading ------------------------------------------------------------ */

struct in {
    const unsigned char *p, *end;
    bool bad;
};

static uint64_t get_varint(struct in *in)
{
    uint64_t v = 0;
    for (unsigned shift = 0; !in->bad; shift += 7) {
        if (in->p == in->end || shift > 63) {
            in->bad = true;
            break;
        }
        unsigned char b = *in->p++;
        if (shift == 63 && b > 1) {
            in->bad = true; /* past 64 bits */
            break;
        }
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            if (b == 0 && shift > 0) {
                in->bad = true; /* not the shortest form: not canonical */
            }
            return v;
        }
    }
    return 0;
}

/* A count of records of at least min_bytes each: no more than the bytes
 * left could hold. */
static size_t get_count(struct in *in, size_t min_bytes)
{
    uint64_t n = get_varint(in);
    if (n > (uint64_t)(in->end - in->p) / min_bytes) {
        in->bad = true;
        return 0;
    }
    return (size_t)n;
}

static const unsigned char *get_bytes(struct in *in, size_t n)
{
    if (in->bad || (size_t)(in->end - in->p) < n) {
        in->bad = true;
        return NULL;
    }
    const unsigned char *p = in->p;
    in->p += n;
    return p;
}

/* A string: its bytes and a NUL, with no NUL inside. */
static const char *get_string(struct in *in, size_t *len)
{
    uint64_t n = get_varint(in);
    const unsigned char *p =
        n < (uint64_t)(in->end - in->p) ? get_bytes(in, (size_t)n + 1) : NULL;
    if (p == NULL || p[n] != 0 || memchr(p, 0, (size_t)n) != NULL) {
        in->bad = true;
        return NULL;
    }
    *len = (size_t)n;
    return (const char *)p;
}

static const unsigned char *get_blob(struct in *in, size_t *len)
{
    uint64_t n = get_varint(in);
    const unsigned char *p =
        n <= (uint64_t)(in->end - in->p) ? get_bytes(in, (size_t)n) : NULL;
    if (p == NULL) {
        in->bad = true;
        return NULL;
    }
    *len = (size_t)n;
    return p;
}

/* A time relative to saved_at, in the range the registry keeps. */
static int64_t get_time(struct in *in, int64_t saved_at)
{
    int64_t d = presence__unzigzag(get_varint(in));
    if (d > PRESENCE__TIME_MAX - saved_at || d < PRESENCE__TIME_MIN - saved_at) {
        in->bad = true;
        return 0;
    }
    return saved_at + d;
}

/* ---- the tables ------------------------------------------------------------- */

struct name {
    const char *s;
    size_t len;
};

struct client_entry {
    const char *id;
    size_t id_len;
    uint64_t hash;
    uint32_t user;
    uint32_t node; /* 0: local, else node - 1 */
    const void *conn_info;
    size_t conn_info_len;
    struct presence__client *made;
};

struct graced {
    struct presence__membership *m;
    struct presence__channel *ch;
    presence_leave_reason reason;
};

struct saved_ns {
    const char *name;
    presence_namespace_options options; /* as saved */
};

struct load {
    presence_registry *reg;
    struct in in;
    int64_t saved_at;
    struct saved_ns *ns;
    size_t ns_count;
    struct presence__nodename *nodes;
    size_t node_count;
    struct name *users;
    size_t user_count;
    struct client_entry *clients;
    size_t client_count;
    struct graced *graced;
    size_t graced_count, graced_cap;
    size_t memberships;
};

#define CORRUPT PRESENCE_ERR_CORRUPT

static void *table(struct load *ld, size_t n, size_t size)
{
    return presence__malloc(&ld->reg->alloc,
                            presence__mul_size(n ? n : 1, size));
}

static int read_namespaces(struct load *ld)
{
    struct in *in = &ld->in;
    /* name (2), flags, ttl, max, grace, history */
    ld->ns_count = get_count(in, 7);
    ld->ns = table(ld, ld->ns_count, sizeof *ld->ns);
    if (ld->ns == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    for (size_t i = 0; i < ld->ns_count && !in->bad; i++) {
        size_t len;
        const char *name = get_string(in, &len);
        const unsigned char *flags = get_bytes(in, 1);
        uint64_t ttl = get_varint(in);
        uint64_t max = get_varint(in);
        uint64_t grace = get_varint(in);
        uint64_t history = get_varint(in);
        if (in->bad || (*flags & ~PRESENCE__NS_FLAGS) != 0 ||
            ttl > INT64_MAX || max > SIZE_MAX || grace > INT64_MAX ||
            history > PRESENCE_HISTORY_SIZE_MAX) {
            return CORRUPT;
        }
        presence_namespace_options *o = &ld->ns[i].options;
        presence_namespace_options_init(o);
        o->presence = (*flags & PRESENCE__NS_PRESENCE) != 0;
        o->join_leave = (*flags & PRESENCE__NS_JOIN_LEAVE) != 0;
        o->grace_on_leave = (*flags & PRESENCE__NS_GRACE_ON_LEAVE) != 0;
        o->grace_same_user = (*flags & PRESENCE__NS_GRACE_SAME_USER) != 0;
        o->max_members = (size_t)max;
        o->ttl_ms = (int64_t)ttl;
        o->leave_grace_ms = (int64_t)grace;
        o->history_size = (size_t)history;
        ld->ns[i].name = name;
        /* TTL, grace and logs come last (see the top): a log made while
         * the members load would tell their loading as joins. */
        presence_namespace_options first = *o;
        first.ttl_ms = 0;
        first.leave_grace_ms = 0;
        first.history_size = 0;
        int rc = presence_namespace_set(ld->reg, name, &first);
        if (rc != PRESENCE_OK) {
            return rc == PRESENCE_ERR_NOMEM ? rc : CORRUPT;
        }
    }
    /* Each listed once, the default one included. */
    if (!in->bad && HASH_COUNT(ld->reg->namespaces) != ld->ns_count) {
        return CORRUPT;
    }
    return in->bad ? CORRUPT : PRESENCE_OK;
}

static int read_names(struct load *ld)
{
    struct in *in = &ld->in;
    presence_registry *reg = ld->reg;
    ld->node_count = get_count(in, 2);
    ld->nodes = table(ld, ld->node_count, sizeof *ld->nodes);
    if (ld->nodes == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    for (size_t i = 0; i < ld->node_count && !in->bad; i++) {
        size_t len;
        const char *id = get_string(in, &len);
        if (in->bad) {
            break;
        }
        int rc = presence__node_check(reg, id, &ld->nodes[i]);
        if (rc != PRESENCE_OK) {
            return rc;
        }
    }
    ld->user_count = get_count(in, 2);
    ld->users = table(ld, ld->user_count, sizeof *ld->users);
    if (ld->users == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    for (size_t i = 0; i < ld->user_count && !in->bad; i++) {
        struct name *u = &ld->users[i];
        u->s = get_string(in, &u->len);
        if (in->bad) {
            break;
        }
        int rc = presence__check_name(u->s, reg->limits.user_id_max, true,
                                      &u->len);
        if (rc != PRESENCE_OK) {
            return rc;
        }
    }
    /* id (2), user, conn_info, node */
    ld->client_count = get_count(in, 5);
    ld->clients = table(ld, ld->client_count, sizeof *ld->clients);
    if (ld->clients == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    for (size_t i = 0; i < ld->client_count && !in->bad; i++) {
        struct client_entry *c = &ld->clients[i];
        memset(c, 0, sizeof *c);
        c->id = get_string(in, &c->id_len);
        uint64_t user = get_varint(in);
        c->conn_info = get_blob(in, &c->conn_info_len);
        uint64_t node = get_varint(in);
        if (in->bad || user >= ld->user_count || node > ld->node_count) {
            return CORRUPT;
        }
        c->user = (uint32_t)user;
        c->node = (uint32_t)node;
        int rc = presence__check_hash_name(reg, c->id,
                                           reg->limits.client_id_max, false,
                                           &c->id_len, &c->hash);
        if (rc == PRESENCE_OK) {
            rc = presence__check_info(c->conn_info, c->conn_info_len,
                                      reg->limits.conn_info_max);
        }
        if (rc != PRESENCE_OK) {
            return rc;
        }
    }
    return in->bad ? CORRUPT : PRESENCE_OK;
}

/* ---- members ------------------------------------------------------------------ */

static int note_graced(struct load *ld, struct presence__membership *m,
                       struct presence__channel *ch,
                       presence_leave_reason reason)
{
    if (ld->graced_count == ld->graced_cap) {
        size_t cap = ld->graced_cap ? ld->graced_cap * 2 : 16;
        struct graced *grown = presence__realloc(
            &ld->reg->alloc, ld->graced, ld->graced_cap * sizeof *grown,
            presence__mul_size(cap, sizeof *grown));
        if (grown == NULL) {
            return PRESENCE_ERR_NOMEM;
        }
        ld->graced = grown;
        ld->graced_cap = cap;
    }
    ld->graced[ld->graced_count++] = (struct graced){m, ch, reason};
    return PRESENCE_OK;
}

/* One member of the channel t names (its shard held): joined through the
 * join path, then given its saved times. */
static int load_member(struct load *ld, struct presence__target *t)
{
    struct in *in = &ld->in;
    presence_registry *reg = ld->reg;
    uint64_t index = get_varint(in);
    int64_t joined = get_time(in, ld->saved_at);
    int64_t touched = get_time(in, ld->saved_at);
    const unsigned char *grace = get_bytes(in, 1);
    size_t info_len = 0;
    const unsigned char *info = get_blob(in, &info_len);
    if (in->bad || index >= ld->client_count || touched < joined ||
        *grace > PRESENCE_LEAVE_EXPIRED) {
        return CORRUPT;
    }
    struct client_entry *c = &ld->clients[index];
    if (*grace != 0 && c->node != 0) {
        return CORRUPT; /* another node's members never grace here */
    }
    int rc = presence__check_info(info, info_len, reg->limits.chan_info_max);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    t->client_id = c->id;
    t->client_len = c->id_len;
    t->client_hash = c->hash;
    t->cs = presence__cshard_of(reg, c->hash);
    struct presence__join_args a = {
        NULL, ld->users[c->user].s, ld->users[c->user].len, c->conn_info,
        c->conn_info_len, info, info_len, false};
    if (c->node != 0) {
        rc = presence__node_intern(reg, &ld->nodes[c->node - 1], &a.node);
        if (rc != PRESENCE_OK) {
            return rc;
        }
    }
    /* The client's shard before the channel's, as every join. */
    presence__mutex_unlock(reg, &t->chan.shard->lock);
    presence__mutex_lock(reg, &t->cs->lock);
    presence__mutex_lock(reg, &t->chan.shard->lock);
    if (c->made == NULL &&
        presence__client_find(t->cs, c->id, c->id_len, c->hash) != NULL) {
        rc = CORRUPT; /* two clients with one id */
    } else if (c->made != NULL && t->chan.ch != NULL &&
               presence__membership_find(t->chan.ch, c->made) != NULL) {
        rc = CORRUPT; /* in the channel twice */
    } else {
        rc = presence__join_locked(reg, t, c->made, &a, NULL);
    }
    if (rc == PRESENCE_OK && c->made == NULL) {
        c->made = presence__client_find(t->cs, c->id, c->id_len, c->hash);
    }
    struct presence__membership *m =
        rc == PRESENCE_OK ? presence__membership_find(t->chan.ch, c->made)
                          : NULL;
    if (m != NULL) {
        presence__time48_set(&m->joined_lo, &m->joined_hi, joined);
        presence__membership_set_touched(m, touched);
        if (*grace != 0) {
            rc = presence__grace_prepare(reg, t->chan.shard, m);
        }
        if (rc == PRESENCE_OK && *grace != 0) {
            rc = note_graced(ld, m, t->chan.ch, (presence_leave_reason)*grace);
        }
    }
    presence__mutex_unlock(reg, &t->cs->lock);
    if (a.node != NULL) {
        presence__node_unref(reg, a.node);
    }
    if (rc == PRESENCE_ERR_UNKNOWN_NAMESPACE || rc == PRESENCE_ERR_NOT_AVAILABLE ||
        rc == PRESENCE_ERR_CONFLICT) {
        rc = CORRUPT;
    }
    return rc;
}

static int load_channel(struct load *ld)
{
    struct in *in = &ld->in;
    presence_registry *reg = ld->reg;
    size_t len;
    const char *name = get_string(in, &len);
    uint64_t epoch = get_varint(in);
    uint64_t seq = get_varint(in);
    /* client, joined, touched, grace, chan_info */
    size_t members = get_count(in, 5);
    if (in->bad || epoch == 0 || members == 0 || seq < members) {
        return CORRUPT;
    }
    struct presence__target t;
    memset(&t, 0, sizeof t);
    int rc = presence__channel_check(reg, name, &t.chan);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence__mutex_lock(reg, &t.chan.shard->lock);
    rc = presence__channel_lookup_join(reg, &t.chan);
    if (rc == PRESENCE_OK && t.chan.ch != NULL) {
        rc = CORRUPT; /* listed twice */
    }
    for (size_t i = 0; i < members && rc == PRESENCE_OK; i++) {
        rc = load_member(ld, &t);
    }
    if (rc == PRESENCE_OK) {
        t.chan.ch->epoch = epoch;
        t.chan.ch->seq = seq;
        ld->memberships += members;
    }
    presence__mutex_unlock(reg, &t.chan.shard->lock);
    return rc == PRESENCE_ERR_UNKNOWN_NAMESPACE ||
                   rc == PRESENCE_ERR_NOT_AVAILABLE
               ? CORRUPT
               : rc;
}

/* ---- the end: graces, then TTLs and graces on --------------------------------- */

static int bytes_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

static int graced_cmp(const void *pa, const void *pb)
{
    const struct graced *a = pa, *b = pb;
    int64_t ta = presence__membership_touched(a->m);
    int64_t tb = presence__membership_touched(b->m);
    if (ta != tb) {
        return ta < tb ? -1 : 1;
    }
    const struct presence__client *ca = a->m->client, *cb = b->m->client;
    int c = bytes_cmp(ca->id, ca->id_len, cb->id, cb->id_len);
    return c != 0 ? c
                  : bytes_cmp(a->ch->name, a->ch->name_len, b->ch->name,
                              b->ch->name_len);
}

static int finish(struct load *ld)
{
    presence_registry *reg = ld->reg;
    if (ld->graced_count > 1) {
        qsort(ld->graced, ld->graced_count, sizeof *ld->graced, graced_cmp);
    }
    for (size_t i = 0; i < ld->graced_count; i++) {
        const struct graced *g = &ld->graced[i];
        presence__grace_restore(reg, presence__membership_shard(reg, g->m),
                                g->ch, g->m, g->reason);
    }
    for (size_t i = 0; i < ld->ns_count; i++) {
        const presence_namespace_options *o = &ld->ns[i].options;
        if (o->ttl_ms > 0 || o->leave_grace_ms > 0 || o->history_size > 0) {
            int rc = presence_namespace_set(reg, ld->ns[i].name, o);
            if (rc != PRESENCE_OK) {
                return rc;
            }
        }
    }
    /* Every client, user and node listed was used, each once. */
    presence_counts counts;
    int rc = presence_registry_counts(reg, &counts);
    if (rc == PRESENCE_OK &&
        (counts.clients != ld->client_count || counts.users != ld->user_count ||
         counts.memberships != ld->memberships ||
         reg->nodes.count != ld->node_count)) {
        rc = CORRUPT;
    }
    return rc;
}

static int load_body(struct load *ld)
{
    int rc = read_namespaces(ld);
    if (rc == PRESENCE_OK) {
        rc = read_names(ld);
    }
    /* name (2), epoch, seq, count, a member (5) */
    size_t channels = rc == PRESENCE_OK ? get_count(&ld->in, 10) : 0;
    if (rc == PRESENCE_OK && ld->in.bad) {
        rc = CORRUPT;
    }
    for (size_t i = 0; i < channels && rc == PRESENCE_OK; i++) {
        rc = load_channel(ld);
    }
    if (rc == PRESENCE_OK && ld->in.p != ld->in.end) {
        rc = CORRUPT; /* bytes after the last channel */
    }
    return rc == PRESENCE_OK ? finish(ld) : rc;
}

static void load_free(struct load *ld)
{
    const presence_allocator *alloc = &ld->reg->alloc;
    presence__free(alloc, ld->ns, (ld->ns_count ? ld->ns_count : 1) *
                                      sizeof *ld->ns);
    presence__free(alloc, ld->nodes, (ld->node_count ? ld->node_count : 1) *
                                         sizeof *ld->nodes);
    presence__free(alloc, ld->users, (ld->user_count ? ld->user_count : 1) *
                                         sizeof *ld->users);
    presence__free(alloc, ld->clients,
                   (ld->client_count ? ld->client_count : 1) *
                       sizeof *ld->clients);
    presence__free(alloc, ld->graced, ld->graced_cap * sizeof *ld->graced);
}

int presence_registry_load(const presence_config *config, const void *data,
                           size_t len, presence_registry **out)
{
    if (out == NULL || (data == NULL && len > 0) ||
        (config != NULL && config->struct_size < sizeof(size_t))) {
        return PRESENCE_ERR_INVALID;
    }
    const unsigned char *bytes = data;
    if (len < PRESENCE__STATE_HEADER + PRESENCE__STATE_CHECKSUM ||
        memcmp(bytes, PRESENCE__STATE_MAGIC, PRESENCE__STATE_MAGIC_LEN) != 0) {
        return CORRUPT;
    }
    if (presence__get_u32le(bytes + PRESENCE__STATE_MAGIC_LEN) !=
        PRESENCE_STATE_FORMAT) {
        return PRESENCE_ERR_UNSUPPORTED;
    }
    size_t body_end = len - PRESENCE__STATE_CHECKSUM;
    if (presence__get_u64le(bytes + body_end) !=
        presence__state_checksum(bytes, body_end)) {
        return CORRUPT;
    }
    struct load ld;
    memset(&ld, 0, sizeof ld);
    ld.in = (struct in){bytes + PRESENCE__STATE_HEADER, bytes + body_end,
                        false};
    ld.saved_at = presence__unzigzag(get_varint(&ld.in));
    const unsigned char *sep = get_bytes(&ld.in, 1);
    if (ld.in.bad || ld.saved_at > PRESENCE__TIME_MAX ||
        ld.saved_at < PRESENCE__TIME_MIN || !presence__separator_ok((char)*sep)) {
        return CORRUPT;
    }
    presence_config c;
    presence_config_init(&c);
    if (config != NULL) {
        memcpy(&c, config,
               config->struct_size < sizeof c ? config->struct_size : sizeof c);
        c.struct_size = sizeof c;
    }
    c.namespace_separator = (char)*sep;
    int rc = presence_registry_new(&c, &ld.reg);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    rc = load_body(&ld);
    load_free(&ld);
    if (rc != PRESENCE_OK) {
        (void)presence_registry_free(ld.reg);
        return rc;
    }
    *out = ld.reg;
    return PRESENCE_OK;
}
