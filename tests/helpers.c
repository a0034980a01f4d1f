/*
 * Shared helpers of the libpresence test suites.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* Fake clock */

void fake_clock_init(fake_clock *clock, int64_t start_ms)
{
    atomic_init(&clock->now_ms, start_ms);
}

void fake_clock_set(fake_clock *clock, int64_t now_ms)
{
    atomic_store(&clock->now_ms, now_ms);
}

void fake_clock_advance(fake_clock *clock, int64_t delta_ms)
{
    atomic_fetch_add(&clock->now_ms, delta_ms);
}

int64_t fake_clock_get(fake_clock *clock)
{
    return atomic_load(&clock->now_ms);
}

int64_t fake_clock_read(void *user_data)
{
    return fake_clock_get(user_data);
}

/* ------------------------------------------------------------------------ */
/* Test allocator */

#define BLOCK_MAGIC 0x5052455355L /* live */
#define BLOCK_DEAD 0xdeadbeefL

/* 16 bytes keep the user part 16-aligned relative to the base. */
typedef struct block_header {
    size_t size;
    long magic;
} block_header;

void test_alloc_init(test_alloc *alloc, bool use_cmocka)
{
    memset(alloc, 0, sizeof(*alloc));
    alloc->use_cmocka = use_cmocka;
    alloc->fail_at = -1;
    atomic_init(&alloc->live_blocks, 0);
    atomic_init(&alloc->live_bytes, 0);
    atomic_init(&alloc->requests, 0);
    atomic_init(&alloc->total_allocs, 0);
    atomic_init(&alloc->injected, 0);
    atomic_init(&alloc->bad_sizes, 0);
    atomic_init(&alloc->bad_pointers, 0);
    atomic_init(&alloc->zero_requests, 0);
    atomic_init(&alloc->realloc_calls, 0);
    atomic_init(&alloc->watch_size, 0);
    atomic_init(&alloc->watch_live, 0);
}

void test_alloc_install(test_alloc *alloc, presence_config *config,
                        bool without_realloc)
{
    config->allocator.malloc_fn = test_alloc_malloc;
    config->allocator.realloc_fn = without_realloc ? NULL : test_alloc_realloc;
    config->allocator.free_fn = test_alloc_free;
    config->allocator.user_data = alloc;
}

void test_alloc_arm(test_alloc *alloc, long n)
{
    atomic_store(&alloc->requests, 0);
    alloc->fail_at = n;
}

void test_alloc_disarm(test_alloc *alloc)
{
    alloc->fail_at = -1;
}

void test_alloc_assert_clean(test_alloc *alloc)
{
    assert_int_equal(atomic_load(&alloc->live_blocks), 0);
    assert_int_equal(atomic_load(&alloc->live_bytes), 0);
    assert_int_equal(atomic_load(&alloc->bad_sizes), 0);
    assert_int_equal(atomic_load(&alloc->bad_pointers), 0);
    assert_int_equal(atomic_load(&alloc->zero_requests), 0);
}

static bool alloc_should_fail(test_alloc *alloc)
{
    if (alloc->paused) {
        return false;
    }
    unsigned long n = atomic_fetch_add(&alloc->requests, 1);
    if (alloc->fail_at >= 0 && n >= (unsigned long)alloc->fail_at) {
        atomic_fetch_add(&alloc->injected, 1);
        return true;
    }
    return false;
}

static void *raw_alloc(test_alloc *alloc, size_t size)
{
    return alloc->use_cmocka ? test_malloc(size) : malloc(size);
}

static void raw_free(test_alloc *alloc, void *ptr)
{
    if (alloc->use_cmocka) {
        test_free(ptr);
    } else {
        free(ptr);
    }
}

static block_header *header_of(test_alloc *alloc, void *ptr)
{
    block_header *h = (block_header *)((char *)ptr - sizeof(block_header));
    if (h->magic != BLOCK_MAGIC) {
        atomic_fetch_add(&alloc->bad_pointers, 1);
        return NULL;
    }
    return h;
}

void *test_alloc_malloc(size_t size, void *user_data)
{
    test_alloc *alloc = user_data;
    if (size == 0) {
        atomic_fetch_add(&alloc->zero_requests, 1);
    }
    if (alloc_should_fail(alloc)) {
        return NULL;
    }
    if (size > SIZE_MAX - sizeof(block_header)) {
        return NULL;
    }
    block_header *h = raw_alloc(alloc, sizeof(block_header) + size);
    if (h == NULL) {
        return NULL;
    }
    h->size = size;
    h->magic = BLOCK_MAGIC;
    atomic_fetch_add(&alloc->live_blocks, 1);
    atomic_fetch_add(&alloc->live_bytes, (long long)size);
    atomic_fetch_add(&alloc->total_allocs, 1);
    size_t watched = atomic_load(&alloc->watch_size);
    if (watched != 0 && size == watched) {
        atomic_fetch_add(&alloc->watch_live, 1);
    }
    /* Poison, so that reads of uninitialised memory show. */
    memset(h + 1, 0xa5, size);
    return h + 1;
}

void test_alloc_free(void *ptr, size_t size, void *user_data)
{
    test_alloc *alloc = user_data;
    if (ptr == NULL) {
        return;
    }
    block_header *h = header_of(alloc, ptr);
    if (h == NULL) {
        return; /* leak it rather than crash; counted as misuse */
    }
    if (size != 0 && size != h->size) {
        atomic_fetch_add(&alloc->bad_sizes, 1);
    }
    atomic_fetch_sub(&alloc->live_blocks, 1);
    atomic_fetch_sub(&alloc->live_bytes, (long long)h->size);
    size_t watched = atomic_load(&alloc->watch_size);
    if (watched != 0 && h->size == watched) {
        atomic_fetch_sub(&alloc->watch_live, 1);
    }
    h->magic = BLOCK_DEAD;
    raw_free(alloc, h);
}

void *test_alloc_realloc(void *ptr, size_t old_size, size_t new_size,
                         void *user_data)
{
    test_alloc *alloc = user_data;
    atomic_fetch_add(&alloc->realloc_calls, 1);
    if (ptr == NULL) {
        return test_alloc_malloc(new_size, user_data);
    }
    block_header *h = header_of(alloc, ptr);
    if (h == NULL) {
        return NULL;
    }
    if (old_size != 0 && old_size != h->size) {
        atomic_fetch_add(&alloc->bad_sizes, 1);
    }
    if (new_size == 0) {
        atomic_fetch_add(&alloc->zero_requests, 1);
    }
    /* A fresh block every time, so that stale pointers into the old one
     * are caught by the sanitizers. */
    void *fresh = test_alloc_malloc(new_size, user_data);
    if (fresh == NULL) {
        return NULL;
    }
    memcpy(fresh, ptr, h->size < new_size ? h->size : new_size);
    test_alloc_free(ptr, 0, user_data);
    return fresh;
}

/* ------------------------------------------------------------------------ */
/* Strings */

static char *xstrdup(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    assert_non_null(p);
    memcpy(p, s, n);
    return p;
}

static unsigned char *xmemdup(const void *p, size_t n)
{
    unsigned char *q = malloc(n ? n : 1);
    assert_non_null(q);
    if (n) {
        memcpy(q, p, n);
    }
    return q;
}

typedef struct strbuf {
    char *s;
    size_t len;
    size_t cap;
} strbuf;

static void sb_vprintf(strbuf *sb, const char *fmt, va_list ap)
    TEST_PRINTF(2, 0);

static void sb_vprintf(strbuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    assert_true(n >= 0);
    if (sb->len + (size_t)n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (sb->len + (size_t)n + 1 > cap) {
            cap *= 2;
        }
        char *s = realloc(sb->s, cap);
        assert_non_null(s);
        sb->s = s;
        sb->cap = cap;
    }
    vsnprintf(sb->s + sb->len, (size_t)n + 1, fmt, ap);
    sb->len += (size_t)n;
}

static void sb_printf(strbuf *sb, const char *fmt, ...) TEST_PRINTF(2, 3);

static void sb_printf(strbuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(sb, fmt, ap);
    va_end(ap);
}

static void sb_hex(strbuf *sb, const void *p, size_t n)
{
    const unsigned char *b = p;
    if (p == NULL) {
        sb_printf(sb, n ? "<NULL:%zu>" : "-", n);
        return;
    }
    if (n == 0) {
        sb_printf(sb, "<nonnull-empty>");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        sb_printf(sb, "%02x", b[i]);
    }
}

static char *sb_take(strbuf *sb)
{
    if (sb->s == NULL) {
        return xstrdup("");
    }
    return sb->s;
}

char *str_printf(const char *fmt, ...)
{
    strbuf sb = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&sb, fmt, ap);
    va_end(ap);
    return sb_take(&sb);
}

char *repeat_char(char c, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------------------ */
/* Return codes */

static const char *code_name(int code)
{
    switch (code) {
#define NAME_CASE_(name, value, message)                                       \
    case (value):                                                              \
        return #name;
        PRESENCE_ERROR_LIST(NAME_CASE_)
#undef NAME_CASE_
    default:
        return "?";
    }
}

void assert_rc_at(int got, int want, const char *expr, const char *file,
                  int line)
{
    if (got != want) {
        print_error("%s returned %d (%s), expected %d (%s)\n", expr, got,
                    code_name(got), want, code_name(want));
        _fail(file, line);
    }
}

/* ------------------------------------------------------------------------ */
/* Recorder */

void recorder_init(recorder *rec)
{
    memset(rec, 0, sizeof(*rec));
}

static void rec_event_free(rec_event *e)
{
    free(e->channel);
    free(e->namespace_name);
    free(e->client_id);
    free(e->user_id);
    free(e->node_id);
    free(e->conn_info);
    free(e->chan_info);
}

void recorder_clear(recorder *rec)
{
    for (size_t i = 0; i < rec->count; i++) {
        rec_event_free(&rec->events[i]);
    }
    rec->count = 0;
}

void recorder_free(recorder *rec)
{
    recorder_clear(rec);
    free(rec->events);
    rec->events = NULL;
    rec->cap = 0;
}

static bool event_is_sane(const presence_event *e)
{
    bool leave = e->kind == PRESENCE_EVENT_LEAVE ||
                 e->kind == PRESENCE_EVENT_USER_LEAVE;
    switch (e->kind) {
    case PRESENCE_EVENT_JOIN:
    case PRESENCE_EVENT_LEAVE:
    case PRESENCE_EVENT_UPDATE:
    case PRESENCE_EVENT_USER_JOIN:
    case PRESENCE_EVENT_USER_LEAVE:
        break;
    default:
        return false;
    }
    if (leave) {
        if (e->reason < PRESENCE_LEAVE_EXPLICIT ||
            e->reason > PRESENCE_LEAVE_RESYNC) {
            return false;
        }
    } else if (e->reason != PRESENCE_LEAVE_NONE) {
        return false;
    }
    if (e->seq == 0 || e->channel == NULL || e->namespace_name == NULL ||
        e->client_id == NULL || e->user_id == NULL || e->node_id == NULL) {
        return false;
    }
    if ((e->conn_info == NULL && e->conn_info_len != 0) ||
        (e->chan_info == NULL && e->chan_info_len != 0)) {
        return false;
    }
    /* The version of the change, in the event and in its stats. */
    return e->epoch != 0 && e->stats.epoch == e->epoch &&
           e->stats.seq == e->seq;
}

void recorder_add(recorder *rec, presence_registry *registry,
                  const presence_event *e)
{
    if (rec->registry != NULL && registry != rec->registry) {
        rec->wrong_registry++;
    }
    if (!event_is_sane(e)) {
        rec->malformed++;
    }
    if (rec->count == rec->cap) {
        size_t cap = rec->cap ? rec->cap * 2 : 64;
        rec_event *ev = realloc(rec->events, cap * sizeof(*ev));
        assert_non_null(ev);
        rec->events = ev;
        rec->cap = cap;
    }
    rec_event *r = &rec->events[rec->count++];
    memset(r, 0, sizeof(*r));
    r->kind = (unsigned)e->kind;
    r->reason = (int)e->reason;
    r->seq = e->seq;
    r->time_ms = e->time_ms;
    r->channel = xstrdup(e->channel ? e->channel : "<NULL>");
    r->namespace_name =
        xstrdup(e->namespace_name ? e->namespace_name : "<NULL>");
    r->client_id = xstrdup(e->client_id ? e->client_id : "<NULL>");
    r->user_id = xstrdup(e->user_id ? e->user_id : "<NULL>");
    r->node_id = xstrdup(e->node_id ? e->node_id : "<NULL>");
    r->conn_info_null = e->conn_info == NULL;
    r->chan_info_null = e->chan_info == NULL;
    r->conn_info_len = e->conn_info ? e->conn_info_len : 0;
    r->chan_info_len = e->chan_info ? e->chan_info_len : 0;
    r->conn_info = xmemdup(e->conn_info, r->conn_info_len);
    r->chan_info = xmemdup(e->chan_info, r->chan_info_len);
    r->stats = e->stats;
    r->epoch = e->epoch;
}

void recorder_enter(recorder *rec)
{
    rec->depth++;
    if (rec->depth > rec->max_depth) {
        rec->max_depth = rec->depth;
    }
}

void recorder_leave(recorder *rec)
{
    rec->depth--;
}

void recorder_cb(presence_registry *registry, const presence_event *event,
                 void *user_data)
{
    recorder *rec = user_data;
    recorder_enter(rec);
    recorder_add(rec, registry, event);
    recorder_leave(rec);
}

size_t recorder_count(const recorder *rec, unsigned kind_mask)
{
    size_t n = 0;
    for (size_t i = 0; i < rec->count; i++) {
        if (rec->events[i].kind & kind_mask) {
            n++;
        }
    }
    return n;
}

size_t recorder_count_reason(const recorder *rec, unsigned kind_mask,
                             int reason)
{
    size_t n = 0;
    for (size_t i = 0; i < rec->count; i++) {
        if ((rec->events[i].kind & kind_mask) &&
            rec->events[i].reason == reason) {
            n++;
        }
    }
    return n;
}

const rec_event *recorder_find(const recorder *rec, size_t from,
                               unsigned kind_mask, const char *channel,
                               const char *client_id)
{
    for (size_t i = from; i < rec->count; i++) {
        const rec_event *e = &rec->events[i];
        if (!(e->kind & kind_mask)) {
            continue;
        }
        if (channel != NULL && strcmp(channel, e->channel) != 0) {
            continue;
        }
        if (client_id != NULL && strcmp(client_id, e->client_id) != 0) {
            continue;
        }
        return e;
    }
    return NULL;
}

void recorder_assert_sane(const recorder *rec)
{
    assert_int_equal(rec->malformed, 0);
    assert_int_equal(rec->wrong_registry, 0);
    assert_int_equal(rec->depth, 0);
    assert_true(rec->max_depth <= 1);
}

char *event_line(const rec_event *e, bool with_time)
{
    strbuf sb = {0};
    sb_printf(&sb, "%s ch=%s ns=%s seq=%" PRIu64 " client=%s user=%s",
              presence_event_kind_name(e->kind), e->channel, e->namespace_name, e->seq,
              e->client_id, e->user_id);
    if (e->node_id[0] != '\0') { /* local clients: as before nodes */
        sb_printf(&sb, " node=%s", e->node_id);
    }
    sb_printf(&sb, " reason=%d stats=%zu/%zu conn=", e->reason,
              e->stats.num_clients, e->stats.num_users);
    sb_hex(&sb, e->conn_info_len ? e->conn_info : NULL, e->conn_info_len);
    sb_printf(&sb, " chan=");
    sb_hex(&sb, e->chan_info_len ? e->chan_info : NULL, e->chan_info_len);
    if (with_time) {
        sb_printf(&sb, " t=%" PRId64, e->time_ms);
    }
    return sb_take(&sb);
}

static int cmp_event_ptr(const void *a, const void *b)
{
    const rec_event *x = *(const rec_event *const *)a;
    const rec_event *y = *(const rec_event *const *)b;
    int c = strcmp(x->channel, y->channel);
    if (c != 0) {
        return c;
    }
    if (x->seq != y->seq) {
        return x->seq < y->seq ? -1 : 1;
    }
    if (x->kind != y->kind) {
        return x->kind < y->kind ? -1 : 1;
    }
    return strcmp(x->client_id, y->client_id);
}

char *recorder_text(const recorder *rec, bool canonical, bool with_time)
{
    strbuf sb = {0};
    const rec_event **order = malloc((rec->count + 1) * sizeof(*order));
    assert_non_null(order);
    for (size_t i = 0; i < rec->count; i++) {
        order[i] = &rec->events[i];
    }
    if (canonical) {
        qsort(order, rec->count, sizeof(*order), cmp_event_ptr);
    }
    for (size_t i = 0; i < rec->count; i++) {
        char *line = event_line(order[i], with_time);
        sb_printf(&sb, "%s\n", line);
        free(line);
    }
    free(order);
    return sb_take(&sb);
}

/* ------------------------------------------------------------------------ */
/* Dump */

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct strlist {
    char **items;
    size_t count;
    size_t cap;
} strlist;

static void sl_push(strlist *l, char *s)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **items = realloc(l->items, cap * sizeof(*items));
        assert_non_null(items);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->count++] = s;
}

static void sl_sort(strlist *l)
{
    if (l->count > 1) {
        qsort(l->items, l->count, sizeof(*l->items), cmp_str_ptr);
    }
}

static void sl_free(strlist *l)
{
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i]);
    }
    free(l->items);
    memset(l, 0, sizeof(*l));
}

static char *member_line(const presence_member *m, bool with_channel)
{
    strbuf sb = {0};
    if (with_channel) {
        sb_printf(&sb, "ch=%s ", m->channel ? m->channel : "<NULL>");
    }
    sb_printf(&sb, "client=%s user=%s conn=",
              m->client_id ? m->client_id : "<NULL>",
              m->user_id ? m->user_id : "<NULL>");
    sb_hex(&sb, m->conn_info, m->conn_info_len);
    sb_printf(&sb, " chan=");
    sb_hex(&sb, m->chan_info, m->chan_info_len);
    sb_printf(&sb, " joined=%" PRId64 " touched=%" PRId64, m->joined_at_ms,
              m->touched_at_ms);
    if (m->in_grace) {
        sb_printf(&sb, " in_grace");
    }
    if (m->node_id == NULL) {
        sb_printf(&sb, " node=<NULL>");
    } else if (m->node_id[0] != '\0') { /* local members: as before nodes */
        sb_printf(&sb, " node=%s", m->node_id);
    }
    return sb_take(&sb);
}

/* A snapshot's members, one line each, sorted (snapshot order depends on
 * the hash seed). */
static void dump_members(strbuf *sb, const presence_snapshot *snap)
{
    strlist members = {0};
    for (size_t j = 0; j < snap->count; j++) {
        sl_push(&members, member_line(&snap->members[j], true));
    }
    sl_sort(&members);
    for (size_t j = 0; j < members.count; j++) {
        sb_printf(sb, "  %s\n", members.items[j]);
    }
    sl_free(&members);
}

/* A channel's change log, whatever it still holds (presence_changes_since
 * answers for every seq from where the log begins to the channel's: find
 * that start by bisection). Nothing for a channel without a log. */
static void dump_history(strbuf *sb, presence_registry *registry,
                         const char *channel, const presence_snapshot *snap)
{
    uint64_t lo = 0;
    uint64_t hi = snap->seq;
    presence_history *h = NULL;
    int rc = presence_changes_since(registry, channel, presence_trusted(),
                                    snap->epoch, hi, &h);
    presence_history_free(h);
    h = NULL; /* a failed call leaves it untouched */
    if (rc != PRESENCE_OK) {
        if (rc != PRESENCE_ERR_SNAPSHOT_NEEDED) {
            sb_printf(sb, "  history ERROR %d\n", rc);
        }
        return;
    }
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        rc = presence_changes_since(registry, channel, presence_trusted(),
                                    snap->epoch, mid, &h);
        presence_history_free(h);
        h = NULL;
        if (rc == PRESENCE_OK) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    rc = presence_changes_since(registry, channel, presence_trusted(),
                                snap->epoch, lo, &h);
    if (rc != PRESENCE_OK) {
        sb_printf(sb, "  history ERROR %d\n", rc);
        return;
    }
    sb_printf(sb, "  history since=%" PRIu64 " count=%zu\n", lo, h->count);
    for (size_t i = 0; i < h->count; i++) {
        const presence_history_entry *e = &h->entries[i];
        char *line = member_line(&e->member, true);
        sb_printf(sb, "   %" PRIu64 " %s reason=%s time=%" PRId64 " %s\n",
                  e->seq, presence_event_kind_name(e->kind),
                  presence_leave_reason_name(e->reason), e->time_ms, line);
        free(line);
    }
    presence_history_free(h);
}

char *dump_registry(presence_registry *registry,
                    const char *const *namespaces)
{
    strbuf sb = {0};
    presence_counts counts;
    int rc = presence_registry_counts(registry, &counts);
    if (rc != PRESENCE_OK) {
        sb_printf(&sb, "counts ERROR %d\n", rc);
    } else {
        sb_printf(&sb, "counts channels=%zu clients=%zu users=%zu mem=%zu\n",
                  counts.channels, counts.clients, counts.users,
                  counts.memberships);
    }
    sb_printf(&sb, "deadline=%" PRId64 "\n",
              presence_next_deadline_ms(registry));
    for (size_t i = 0; namespaces != NULL && namespaces[i] != NULL; i++) {
        presence_namespace_options o;
        presence_namespace_options_init(&o);
        rc = presence_namespace_get(registry, namespaces[i], &o);
        if (rc != PRESENCE_OK) {
            sb_printf(&sb, "ns '%s' ERROR %d\n", namespaces[i], rc);
        } else {
            sb_printf(&sb,
                      "ns '%s' presence=%d join_leave=%d ttl=%" PRId64
                      " max=%zu history=%zu grace=%" PRId64 "/%d/%d\n",
                      namespaces[i], o.presence, o.join_leave, o.ttl_ms,
                      o.max_members, o.history_size, o.leave_grace_ms,
                      o.grace_on_leave, o.grace_same_user);
        }
    }

    presence_channel_list *list = NULL;
    rc = presence_channels(registry, NULL, &list);
    if (rc != PRESENCE_OK) {
        sb_printf(&sb, "channels ERROR %d\n", rc);
        return sb_take(&sb);
    }
    strlist names = {0};
    strlist clients = {0};
    for (size_t i = 0; i < list->count; i++) {
        const presence_channel_entry *c = &list->channels[i];
        sl_push(&names,
                str_printf("%s seq=%" PRIu64 " stats=%zu/%zu", c->channel,
                           c->seq, c->stats.num_clients, c->stats.num_users));
    }
    sl_sort(&names);
    for (size_t i = 0; i < names.count; i++) {
        sb_printf(&sb, "channel %s\n", names.items[i]);
    }
    /* Members, per channel, in channel-name order. */
    strlist chans = {0};
    for (size_t i = 0; i < list->count; i++) {
        sl_push(&chans, xstrdup(list->channels[i].channel));
    }
    sl_sort(&chans);
    presence_channel_list_free(list);
    for (size_t i = 0; i < chans.count; i++) {
        presence_snapshot *snap = NULL;
        rc = presence_query(registry, chans.items[i], presence_trusted(), &snap);
        if (rc != PRESENCE_OK) {
            sb_printf(&sb, " query %s ERROR %d\n", chans.items[i], rc);
            continue;
        }
        sb_printf(&sb, " query %s seq=%" PRIu64 " stats=%zu/%zu count=%zu"
                  " next=%" PRIu64 "\n",
                  chans.items[i], snap->seq, snap->stats.num_clients,
                  snap->stats.num_users, snap->count, snap->next_cursor);
        strlist members = {0};
        for (size_t j = 0; j < snap->count; j++) {
            sl_push(&members, member_line(&snap->members[j], true));
            bool known = false;
            for (size_t k = 0; k < clients.count && !known; k++) {
                known = strcmp(clients.items[k],
                               snap->members[j].client_id) == 0;
            }
            if (!known) {
                sl_push(&clients, xstrdup(snap->members[j].client_id));
            }
        }
        sl_sort(&members);
        for (size_t j = 0; j < members.count; j++) {
            sb_printf(&sb, "  %s\n", members.items[j]);
        }
        sl_free(&members);
        dump_history(&sb, registry, chans.items[i], snap);
        presence_snapshot_free(snap);
    }
    sl_sort(&clients);
    for (size_t i = 0; i < clients.count; i++) {
        presence_snapshot *snap = NULL;
        rc = presence_client_channels(registry, clients.items[i], &snap);
        if (rc != PRESENCE_OK) {
            sb_printf(&sb, " client %s ERROR %d\n", clients.items[i], rc);
            continue;
        }
        sb_printf(&sb, " client %s count=%zu seq=%" PRIu64 "\n",
                  clients.items[i], snap->count, snap->seq);
        dump_members(&sb, snap);
        presence_snapshot_free(snap);
    }
    sl_free(&clients);
    /* Every node's memberships ("" for the local clients), sorted. */
    strlist nodes = {0};
    sl_push(&nodes, xstrdup(""));
    for (size_t i = 0; i < chans.count; i++) {
        presence_snapshot *snap = NULL;
        if (presence_query(registry, chans.items[i], presence_trusted(), &snap) !=
            PRESENCE_OK) {
            continue;
        }
        for (size_t j = 0; j < snap->count; j++) {
            const char *node = snap->members[j].node_id;
            bool known = node == NULL;
            for (size_t k = 0; k < nodes.count && !known; k++) {
                known = strcmp(nodes.items[k], node) == 0;
            }
            if (!known) {
                sl_push(&nodes, xstrdup(node));
            }
        }
        presence_snapshot_free(snap);
    }
    sl_sort(&nodes);
    for (size_t i = 0; i < nodes.count; i++) {
        presence_snapshot *snap = NULL;
        rc = presence_node_memberships(registry, nodes.items[i], &snap);
        if (rc != PRESENCE_OK) {
            sb_printf(&sb, " node '%s' ERROR %d\n", nodes.items[i], rc);
            continue;
        }
        sb_printf(&sb, " node '%s' count=%zu seq=%" PRIu64 " stats=%zu/%zu\n",
                  nodes.items[i], snap->count, snap->seq,
                  snap->stats.num_clients, snap->stats.num_users);
        dump_members(&sb, snap);
        presence_snapshot_free(snap);
    }
    sl_free(&nodes);
    sl_free(&chans);
    sl_free(&names);
    return sb_take(&sb);
}

/* ------------------------------------------------------------------------ */
/* Fixture */

void fixture_config(fixture *f)
{
    memset(f, 0, sizeof(*f));
    test_alloc_init(&f->alloc, true);
    fake_clock_init(&f->clock, 1000);
    presence_config_init(&f->config);
    test_alloc_install(&f->alloc, &f->config, false);
    f->config.clock = fake_clock_read;
    f->config.clock_user_data = &f->clock;
    f->config.hash_seed = 0x1234567887654321ULL;
    /* The suites without threads run a second time single-threaded
     * (tests/meson.build): such a registry keeps everything in one shard. */
    const char *single = getenv("PRESENCE_TEST_SINGLE_THREADED");
    f->config.single_threaded = single != NULL && strcmp(single, "1") == 0;
    recorder_init(&f->rec);
}

void fixture_open(fixture *f)
{
    assert_ok(presence_registry_new(&f->config, &f->reg));
    assert_non_null(f->reg);
    f->rec.registry = f->reg;
    assert_ok(presence_subscribe(f->reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENTS_ALL, recorder_cb, &f->rec,
                                 &f->sub));
    assert_true(f->sub != 0);
}

void fixture_close(fixture *f)
{
    assert_ok(presence_registry_free(f->reg));
    f->reg = NULL;
    recorder_assert_sane(&f->rec);
    recorder_free(&f->rec);
    test_alloc_assert_clean(&f->alloc);
}

/* ------------------------------------------------------------------------ */
/* Wrappers */

struct saved_bytes {
    unsigned char *data;
    size_t len;
};

static int collect_saved(const void *data, size_t len, void *ud)
{
    struct saved_bytes *b = ud;
    unsigned char *grown = realloc(b->data, b->len + len);
    if (grown == NULL) {
        return 1;
    }
    memcpy(grown + b->len, data, len);
    b->data = grown;
    b->len += len;
    return 0;
}

int save_and_load(presence_registry *registry)
{
    struct saved_bytes b = {NULL, 0};
    int rc = presence_registry_save(registry, collect_saved, &b, NULL);
    presence_registry *copy = NULL;
    if (rc == PRESENCE_OK) {
        rc = presence_registry_load(NULL, b.data, b.len, &copy);
    }
    if (copy != NULL) {
        int freed = presence_registry_free(copy);
        rc = rc == PRESENCE_OK ? freed : rc;
    }
    free(b.data);
    return rc;
}

int join_simple(presence_registry *registry, const char *channel,
                const char *client_id, const char *user_id)
{
    return presence_join(registry, channel, client_id, user_id, NULL, 0, NULL,
                         0);
}

int join_info(presence_registry *registry, const char *channel,
              const char *client_id, const char *user_id,
              const char *conn_info, const char *chan_info)
{
    return presence_join(registry, channel, client_id, user_id, conn_info,
                         conn_info ? strlen(conn_info) : 0, chan_info,
                         chan_info ? strlen(chan_info) : 0);
}

presence_channel_stats stats_of(presence_registry *registry,
                                const char *channel)
{
    presence_channel_stats s = {99999, 99999};
    assert_ok(presence_stats(registry, channel, presence_trusted(), &s));
    return s;
}

presence_counts counts_of(presence_registry *registry)
{
    presence_counts c = {99999, 99999, 99999, 99999};
    assert_ok(presence_registry_counts(registry, &c));
    return c;
}

uint64_t seq_of(presence_registry *registry, const char *channel)
{
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(registry, channel, presence_trusted(), &snap));
    assert_non_null(snap);
    uint64_t seq = snap->seq;
    presence_snapshot_free(snap);
    return seq;
}

void ns_set(presence_registry *registry, const char *name, bool presence,
            bool join_leave, int64_t ttl_ms, size_t max_members)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.presence = presence;
    o.join_leave = join_leave;
    o.ttl_ms = ttl_ms;
    o.max_members = max_members;
    int rc = presence_namespace_set(registry, name, &o);
    if (rc != PRESENCE_OK) {
        print_error("namespace_set('%s') failed\n", name);
    }
    assert_ok(rc);
}

presence_client *open_handle(presence_registry *registry,
                             const char *client_id, const char *user_id,
                             void *app)
{
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = client_id;
    o.user_id = user_id;
    o.app = app;
    presence_client *h = NULL;
    assert_ok(presence_client_open(registry, &o, &h));
    return h;
}

static int64_t monotonic_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t clock_disagreements(presence_registry *registry, int64_t run_ms,
                           size_t *distinct)
{
    size_t bad = 0;
    int64_t last = INT64_MIN;
    *distinct = 0;
    int64_t end = monotonic_now_ms() + run_ms;
    for (int64_t before = 0; before < end;) {
        before = monotonic_now_ms();
        int64_t now = presence_now_ms(registry);
        int64_t after = monotonic_now_ms();
        bad += now < before || now > after;
        *distinct += now != last;
        last = now;
    }
    return bad;
}
