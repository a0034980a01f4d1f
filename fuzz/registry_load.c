/*
 * The saved-state loader as a fuzz target. Input: one byte of flags (bit
 * 0: seal the rest with a correct checksum, so that mutations get past
 * it; bit 1: a single-threaded registry; bits 2-7: fail that allocation,
 * 0 for none), then the state. A load must either fail with a documented
 * code, leaving nothing allocated, or give a registry that is whole: it
 * saves and loads again to a registry that reads the same, and empties
 * cleanly.
 *
 * The generator (for the replay test) saves registries made by random
 * calls, and hands them on untouched or damaged.
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <presence.h>

#include "../src/state_format.h"
#include "registry_load.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* ---- allocator and clock ----------------------------------------------- */

struct harness {
    size_t allocs, fail_at; /* fail_at 0: never */
    size_t injected;
    long live;
    int64_t now;
};

static void *h_malloc(size_t size, void *ud)
{
    struct harness *h = ud;
    if (h->fail_at != 0 && ++h->allocs == h->fail_at) {
        h->injected++;
        return NULL;
    }
    void *p = malloc(size);
    h->live += p != NULL;
    return p;
}

static void *h_realloc(void *p, size_t old, size_t size, void *ud)
{
    (void)old;
    struct harness *h = ud;
    if (h->fail_at != 0 && ++h->allocs == h->fail_at) {
        h->injected++;
        return NULL;
    }
    return realloc(p, size);
}

static void h_free(void *p, size_t size, void *ud)
{
    (void)size;
    struct harness *h = ud;
    h->live -= p != NULL;
    free(p);
}

static int64_t h_clock(void *ud)
{
    return ((struct harness *)ud)->now;
}

static void config_for(presence_config *c, struct harness *h, bool single)
{
    presence_config_init(c);
    c->allocator.malloc_fn = h_malloc;
    c->allocator.realloc_fn = h_realloc;
    c->allocator.free_fn = h_free;
    c->allocator.user_data = h;
    c->clock = h_clock;
    c->clock_user_data = h;
    c->hash_seed = 0x5eed;
    c->single_threaded = single;
    c->limits.channels_per_client_max = 16;
}

/* ---- a registry as text ------------------------------------------------ */

struct text {
    char *s;
    size_t len, cap;
};

static void add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char line[512];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    CHECK(n >= 0);
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (t->cap - t->len <= len) {
        t->cap = (t->cap + len + 1) * 2;
        t->s = realloc(t->s, t->cap);
        CHECK(t->s != NULL);
    }
    memcpy(t->s + t->len, line, len + 1);
    t->len += len;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_bytes(struct text *t, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        add(t, "%02x", ((const unsigned char *)p)[i]);
    }
}

/* Everything a reader sees, channels and members sorted. */
static char *describe(presence_registry *reg)
{
    struct text t = {NULL, 0, 0};
    presence_counts c;
    CHECK(presence_registry_counts(reg, &c) == PRESENCE_OK);
    add(&t, "counts %zu %zu %zu %zu deadline %" PRId64 "\n", c.channels,
        c.clients, c.users, c.memberships, presence_next_deadline_ms(reg));
    presence_channel_list *list;
    CHECK(presence_channels(reg, NULL, &list) == PRESENCE_OK);
    const char **names = calloc(list->count + 1, sizeof *names);
    CHECK(names != NULL);
    for (size_t i = 0; i < list->count; i++) {
        names[i] = list->channels[i].channel;
    }
    qsort(names, list->count, sizeof *names, cmp_str);
    for (size_t i = 0; i < list->count; i++) {
        presence_snapshot *snap;
        CHECK(presence_query(reg, names[i], presence_trusted(), &snap) ==
              PRESENCE_OK);
        add(&t, "channel %s epoch %" PRIu64 " seq %" PRIu64 " %zu/%zu\n",
            names[i], snap->epoch, snap->seq, snap->stats.num_clients,
            snap->stats.num_users);
        char **lines = calloc(snap->count + 1, sizeof *lines);
        CHECK(lines != NULL);
        for (size_t j = 0; j < snap->count; j++) {
            const presence_member *m = &snap->members[j];
            struct text l = {NULL, 0, 0};
            add(&l, " %s %s %s %" PRId64 " %" PRId64 " %d ", m->client_id,
                m->user_id, m->node_id, m->joined_at_ms, m->touched_at_ms,
                m->in_grace);
            add_bytes(&l, m->conn_info, m->conn_info_len);
            add(&l, " ");
            add_bytes(&l, m->chan_info, m->chan_info_len);
            lines[j] = l.s;
        }
        qsort(lines, snap->count, sizeof *lines, cmp_str);
        for (size_t j = 0; j < snap->count; j++) {
            add(&t, "%s\n", lines[j]);
            free(lines[j]);
        }
        free(lines);
        presence_snapshot_free(snap);
    }
    free(names);
    presence_channel_list_free(list);
    return t.s;
}

/* ---- saving into memory --------------------------------------------------- */

struct bytes {
    unsigned char *data;
    size_t len;
};

static int collect(const void *data, size_t len, void *ud)
{
    struct bytes *b = ud;
    b->data = realloc(b->data, b->len + len);
    CHECK(b->data != NULL);
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* ---- the target -------------------------------------------------------------- */

static bool documented(int rc)
{
    switch (rc) {
    case PRESENCE_ERR_CORRUPT:
    case PRESENCE_ERR_UNSUPPORTED:
    case PRESENCE_ERR_BAD_NAME:
    case PRESENCE_ERR_TOO_LONG:
    case PRESENCE_ERR_CLIENT_CHANNEL_LIMIT:
    case PRESENCE_ERR_CHANNEL_MEMBER_LIMIT:
    case PRESENCE_ERR_CHANNEL_LIMIT:
        return true;
    default:
        return false;
    }
}

int presence_fuzz_registry_load(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    uint8_t flags = data[0];
    size_t len = size - 1;
    unsigned char *state = malloc(len ? len : 1);
    CHECK(state != NULL);
    if (len > 0) {
        memcpy(state, data + 1, len);
    }
    if ((flags & 1) != 0 && len >= PRESENCE__STATE_HEADER +
                                       PRESENCE__STATE_CHECKSUM) {
        presence__put_u64le(state + len - 8,
                            presence__state_checksum(state, len - 8));
    }
    struct harness h = {0, (size_t)(flags >> 2), 0, 0, 1000000};
    presence_config c;
    config_for(&c, &h, (flags & 2) != 0);
    presence_registry *reg = (presence_registry *)&h; /* must stay */
    int rc = presence_registry_load(&c, state, len, &reg);
    if (rc != PRESENCE_OK) {
        CHECK(reg == (presence_registry *)&h);
        CHECK(documented(rc) || (rc == PRESENCE_ERR_NOMEM && h.injected > 0));
        CHECK(h.live == 0);
        free(state);
        return 0;
    }
    h.fail_at = 0;
    /* Whole: it saves, and loads again to the same. */
    struct bytes saved = {NULL, 0};
    CHECK(presence_registry_save(reg, collect, &saved, NULL) == PRESENCE_OK);
    presence_registry *again = NULL;
    CHECK(presence_registry_load(&c, saved.data, saved.len, &again) ==
          PRESENCE_OK);
    char *a = describe(reg);
    char *b = describe(again);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "loaded:\n%s\nsaved and loaded again:\n%s\n", a, b);
        abort();
    }
    free(a);
    free(b);
    free(saved.data);
    /* And it goes on: every deadline passes, everyone leaves. */
    CHECK(presence_expire(reg, INT64_MAX - 1, NULL, NULL) == PRESENCE_OK);
    presence_snapshot *mine;
    CHECK(presence_node_memberships(reg, "", &mine) == PRESENCE_OK);
    for (size_t i = 0; i < mine->count; i++) {
        CHECK(presence_disconnect(reg, mine->members[i].client_id, NULL) ==
              PRESENCE_OK);
    }
    presence_snapshot_free(mine);
    CHECK(presence_expire(reg, INT64_MAX - 1, NULL, NULL) == PRESENCE_OK);
    CHECK(presence_registry_free(again) == PRESENCE_OK);
    CHECK(presence_registry_free(reg) == PRESENCE_OK);
    CHECK(h.live == 0);
    free(state);
    return 0;
}

/* ---- the generator ------------------------------------------------------------ */

static uint32_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)(*s >> 24);
}

static const char *const channels[] = {"lobby", "tt:a", "tt:b", "gr:a",
                                       "gr:b",  "qq:x", "gr:c"};
static const char *const users[] = {"u0", "u1", "u2", ""};
static const char *const infos[] = {"", "x", "yy"};

/* A registry made by random calls, saved. */
static struct bytes random_state(uint64_t *s)
{
    int64_t now = 1000000 + (int64_t)(rnd(s) % 1000);
    presence_config c;
    presence_config_init(&c);
    c.clock = h_clock;
    struct harness h = {0, 0, 0, 0, now};
    c.clock_user_data = &h;
    c.hash_seed = 0x5eed;
    presence_registry *reg;
    CHECK(presence_registry_new(&c, &reg) == PRESENCE_OK);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.ttl_ms = rnd(s) % 2 ? 100 : 0;
    o.leave_grace_ms = rnd(s) % 2 ? 300 : 0;
    o.history_size = rnd(s) % 2 ? 4 : 0;
    CHECK(presence_namespace_set(reg, "tt", &o) == PRESENCE_OK);
    presence_namespace_options_init(&o);
    o.leave_grace_ms = 5000;
    o.grace_same_user = true;
    o.grace_on_leave = rnd(s) % 2;
    o.history_size = rnd(s) % 2 ? 16 : 0;
    CHECK(presence_namespace_set(reg, "gr", &o) == PRESENCE_OK);
    presence_namespace_options_init(&o);
    o.join_leave = false;
    CHECK(presence_namespace_set(reg, "qq", &o) == PRESENCE_OK);
    presence_client *handles[4] = {NULL, NULL, NULL, NULL};
    int ops = 5 + (int)(rnd(s) % 40);
    for (int i = 0; i < ops; i++) {
        const char *ch = channels[rnd(s) % 7];
        int k = (int)(rnd(s) % 8);
        char id[8], conn[8];
        snprintf(id, sizeof id, "c%d", k);
        snprintf(conn, sizeof conn, k % 3 ? "ci%d" : "", k);
        const char *info = infos[rnd(s) % 3];
        switch (rnd(s) % 9) {
        case 0:
        case 1:
        case 2:
            (void)presence_join(reg, ch, id, users[k % 4], conn, strlen(conn),
                                info, strlen(info));
            break;
        case 3:
            (void)presence_leave(reg, ch, id);
            break;
        case 4:
            (void)presence_disconnect(reg, id, NULL);
            break;
        case 5: {
            char rid[8];
            snprintf(rid, sizeof rid, "r%d", k % 4);
            (void)presence_remote_join(reg, k % 2 ? "n1" : "n2", ch, rid,
                                       users[k % 3], NULL, 0, info,
                                       strlen(info));
            break;
        }
        case 6:
            h.now += rnd(s) % 150;
            (void)presence_expire(reg, h.now, NULL, NULL);
            break;
        default: {
            int slot = k % 4;
            if (handles[slot] == NULL) {
                char hid[8];
                snprintf(hid, sizeof hid, "h%d", slot);
                presence_client_options co;
                presence_client_options_init(&co);
                co.client_id = hid;
                co.user_id = users[slot];
                if (presence_client_open(reg, &co, &handles[slot]) ==
                    PRESENCE_OK) {
                    (void)presence_client_join(reg, handles[slot], ch, info,
                                               strlen(info), NULL);
                }
            } else {
                (void)presence_client_close(reg, handles[slot], NULL);
                handles[slot] = NULL;
            }
            break;
        }
        }
    }
    struct bytes b = {NULL, 0};
    CHECK(presence_registry_save(reg, collect, &b, NULL) == PRESENCE_OK);
    CHECK(presence_registry_free(reg) == PRESENCE_OK);
    return b;
}

size_t presence_fuzz_registry_load_generate(uint8_t *buf, size_t cap,
                                            uint64_t *s)
{
    struct bytes b = random_state(s);
    size_t len = b.len < cap - 1 ? b.len : cap - 1;
    memcpy(buf + 1, b.data, len);
    free(b.data);
    uint32_t how = rnd(s) % 8;
    uint8_t flags = (uint8_t)(rnd(s) % 4 == 0 ? (1 + rnd(s) % 63) << 2 : 0);
    if (how >= 2 && len > 20) {
        /* Damaged, and sealed (or not) so the damage is read. */
        flags |= rnd(s) % 8 != 0 ? 1 : 0;
        int changes = 1 + (int)(rnd(s) % 4);
        for (int i = 0; i < changes; i++) {
            size_t at = 1 + PRESENCE__STATE_HEADER +
                        rnd(s) % (len - PRESENCE__STATE_HEADER - 8);
            switch (rnd(s) % 4) {
            case 0:
                buf[at] ^= (uint8_t)(1u << (rnd(s) % 8));
                break;
            case 1:
                buf[at] = (uint8_t)rnd(s);
                break;
            case 2: /* cut before buf[at] */
                len = at - 1;
                break;
            default: /* a byte more */
                if (len + 1 < cap - 1) {
                    memmove(buf + at + 1, buf + at, len + 1 - at);
                    buf[at] = (uint8_t)rnd(s);
                    len++;
                }
                break;
            }
            if (len <= PRESENCE__STATE_HEADER + 9) {
                break;
            }
        }
    }
    buf[0] = flags | (uint8_t)(rnd(s) % 2 ? 2 : 0);
    return len + 1;
}
