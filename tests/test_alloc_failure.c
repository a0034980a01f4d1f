/*
 * Out of memory, the jansson way: run a full scenario once to learn what
 * it does, then again and again with allocation N failing (and every one
 * after it, until the failing call returns), for N = 0, 1, 2... until a
 * run sees no injected failure.
 *
 * A call that fails must return PRESENCE_ERR_NOMEM (or absorb the failure
 * and succeed), leave the registry reading exactly as before (a dump taken
 * with injection off), deliver no event, and succeed when retried. The
 * batched calls (expire, channel_close) may stop half-way; retried, they
 * must finish the job. Every run must deliver the same events, read the
 * same results and end in the same state as the reference run, and
 * return every block.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct run {
    test_alloc alloc;
    fake_clock clock;
    presence_registry *reg;
    recorder all;     /* every event */
    recorder chat;    /* namespace chat, JOIN|LEAVE */
    recorder room;    /* channel chat:room */
    recorder every;   /* everything, EVERY_NAMESPACE (quiet has no events) */
    presence_subscription sub_chat;
    char *reads;      /* results of the read steps */
    size_t reads_len;
    size_t batched_total; /* expired/removed summed over attempts */
    bool single_threaded;
    bool no_realloc;
} run;

static void reads_add(run *r, const char *text)
{
    size_t n = strlen(text);
    char *p = realloc(r->reads, r->reads_len + n + 2);
    assert_non_null(p);
    memcpy(p + r->reads_len, text, n);
    p[r->reads_len + n] = '\n';
    p[r->reads_len + n + 1] = '\0';
    r->reads = p;
    r->reads_len += n + 1;
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A snapshot as sorted text. */
static void reads_snapshot(run *r, const char *what,
                           const presence_snapshot *snap)
{
    char **lines = calloc(snap->count + 1, sizeof(*lines));
    assert_non_null(lines);
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        lines[i] = str_printf(
            "  %s %s %s conn=%zu:%.*s chan=%zu:%.*s %" PRId64 " %" PRId64
            " node=%s",
            m->channel, m->client_id, m->user_id, m->conn_info_len,
            (int)m->conn_info_len, m->conn_info ? (const char *)m->conn_info : "",
            m->chan_info_len, (int)m->chan_info_len,
            m->chan_info ? (const char *)m->chan_info : "", m->joined_at_ms,
            m->touched_at_ms, m->node_id);
    }
    qsort(lines, snap->count, sizeof(*lines), cmp_strp);
    char *head = str_printf("%s count=%zu seq=%" PRIu64 " stats=%zu/%zu", what,
                            snap->count, snap->seq, snap->stats.num_clients,
                            snap->stats.num_users);
    reads_add(r, head);
    free(head);
    for (size_t i = 0; i < snap->count; i++) {
        reads_add(r, lines[i]);
        free(lines[i]);
    }
    free(lines);
}

/* ---- the steps ---------------------------------------------------------- */

typedef enum step_kind {
    STEP_ATOMIC,  /* fails completely or not at all */
    STEP_BATCHED, /* may stop half-way with NOMEM */
} step_kind;

typedef struct step {
    const char *name;
    step_kind kind;
    int (*fn)(run *r);
} step;

static int s_new(run *r)
{
    presence_config c;
    presence_config_init(&c);
    test_alloc_install(&r->alloc, &c, r->no_realloc);
    c.clock = fake_clock_read;
    c.clock_user_data = &r->clock;
    c.hash_seed = 42;
    c.single_threaded = r->single_threaded;
    presence_registry *sentinel = (presence_registry *)(uintptr_t)0x42;
    presence_registry *reg = sentinel;
    int rc = presence_registry_new(&c, &reg);
    if (rc == PRESENCE_OK) {
        r->reg = reg;
        r->all.registry = reg;
        r->chat.registry = reg;
        r->room.registry = reg;
        r->every.registry = reg;
    } else {
        assert_ptr_equal(reg, sentinel); /* untouched on failure */
    }
    return rc;
}

static int s_ns_chat(run *r)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.max_members = 100;
    o.history_size = 8; /* chat:big wraps it */
    return presence_namespace_set(r->reg, "chat", &o);
}

static int s_ns_ttl(run *r)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.ttl_ms = 100;
    o.history_size = 4;
    return presence_namespace_set(r->reg, "ttl", &o);
}

static int s_ns_ttl_change(run *r)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.ttl_ms = 150;
    return presence_namespace_set(r->reg, "ttl", &o);
}

static int s_sub_all(run *r)
{
    presence_subscription s;
    return presence_subscribe(r->reg, PRESENCE_SCOPE_ALL, NULL,
                              PRESENCE_EVENTS_ALL, recorder_cb, &r->all, &s);
}

static int s_sub_chat(run *r)
{
    return presence_subscribe(r->reg, PRESENCE_SCOPE_NAMESPACE, "chat",
                              PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE,
                              recorder_cb, &r->chat, &r->sub_chat);
}

static int s_sub_room(run *r)
{
    presence_subscription s;
    return presence_subscribe(r->reg, PRESENCE_SCOPE_CHANNEL, "chat:room",
                              PRESENCE_EVENTS_ALL, recorder_cb, &r->room, &s);
}

static int s_ns_quiet(run *r)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.join_leave = false;
    return presence_namespace_set(r->reg, "quiet", &o);
}

static int s_sub_every(run *r)
{
    presence_subscription s;
    return presence_subscribe(r->reg, PRESENCE_SCOPE_ALL, NULL,
                              PRESENCE_EVENTS_ALL |
                                  PRESENCE_EVENTS_EVERY_NAMESPACE,
                              recorder_cb, &r->every, &s);
}

static int s_unsub_chat(run *r)
{
    return presence_unsubscribe(r->reg, r->sub_chat);
}

#define JOIN_STEP(fname, ch, cl, us, conn, chan)                               \
    static int fname(run *r)                                                   \
    {                                                                          \
        return join_info(r->reg, ch, cl, us, conn, chan);                      \
    }

JOIN_STEP(s_join1, "chat:room", "c1", "u1", "{\"k\":1}", "ci-1")
JOIN_STEP(s_join2, "chat:room", "c2", "u1", "{\"k\":2}", NULL)
JOIN_STEP(s_join3, "chat:room", "c3", "u2", NULL, "ci-3")
JOIN_STEP(s_join4, "chat:other", "c1", "u1", "{\"k\":1}", "ci-1b")
JOIN_STEP(s_join5, "lobby", "c4", NULL, "anon", NULL)
JOIN_STEP(s_join6, "ttl:x", "c5", "u3", NULL, NULL)
JOIN_STEP(s_join7, "ttl:x", "c6", "u3", NULL, "t6")
JOIN_STEP(s_join8, "ttl:y", "c1", "u1", "{\"k\":1}", NULL)
JOIN_STEP(s_join9, "lobby", "c2", "u1", "{\"k\":2}", "l2")
JOIN_STEP(s_upsert_same, "chat:room", "c1", "u1", "{\"k\":1}", "ci-1")
JOIN_STEP(s_upsert_new, "chat:room", "c3", "u2", NULL, "ci-3b")
JOIN_STEP(s_join_late, "chat:room", "c7", "u4", "late", "l")
JOIN_STEP(s_join_after_close, "chat:room", "c8", "u5", NULL, NULL)
JOIN_STEP(s_join_quiet, "quiet:a", "c9", "u1", "{\"k\":9}", "q")
#undef JOIN_STEP

#define RJOIN_STEP(fname, node, ch, cl, us, conn, chan)                        \
    static int fname(run *r)                                                   \
    {                                                                          \
        const char *conn_ = conn, *chan_ = chan;                               \
        return presence_remote_join(r->reg, node, ch, cl, us, conn_,           \
                                    conn_ ? strlen(conn_) : 0, chan_,          \
                                    chan_ ? strlen(chan_) : 0);                \
    }

RJOIN_STEP(s_rjoin1, "n1", "lobby", "r1", "u1", "rc1", "rj")
RJOIN_STEP(s_rjoin2, "n1", "ttl:x", "r1", "u1", "rc1", NULL)
RJOIN_STEP(s_rjoin3, "n2", "quiet:a", "r2", "u9", NULL, "q2")
RJOIN_STEP(s_rjoin4, "n1", "lobby2", "r3", "u5", NULL, NULL)
RJOIN_STEP(s_rjoin5, "n3", "lobby", "r4", "u1", "rc4", NULL)
RJOIN_STEP(s_rjoin6, "n3", "quiet:a", "r4", "u1", "rc4", NULL)
RJOIN_STEP(s_rupsert, "n1", "lobby", "r1", "u1", "rc1", "rj2")
#undef RJOIN_STEP

static int s_rleave(run *r)
{
    return presence_remote_leave(r->reg, "n2", "quiet:a", "r2",
                                 PRESENCE_LEAVE_RESYNC);
}

static int node_down_step(run *r, const char *node)
{
    size_t n = 0;
    int rc = presence_node_down(r->reg, node, PRESENCE_LEAVE_NODE_DOWN, &n);
    r->batched_total += n;
    if (rc == PRESENCE_OK) {
        char *t = str_printf("node_down %s left=%zu", node, r->batched_total);
        reads_add(r, t);
        free(t);
        r->batched_total = 0;
    }
    return rc;
}

static int s_node_down_n1(run *r)
{
    return node_down_step(r, "n1");
}

static int s_node_down_n3(run *r)
{
    return node_down_step(r, "n3");
}

static int s_node_memberships(run *r)
{
    /* Reads are recorded only when every call succeeded. */
    static const char *const nodes[] = {"", "n1", "n2", "n3", "none"};
    enum { N = sizeof(nodes) / sizeof(nodes[0]) };
    presence_snapshot *snaps[N] = {0};
    int rc = PRESENCE_OK;
    for (size_t i = 0; i < N && rc == PRESENCE_OK; i++) {
        rc = presence_node_memberships(r->reg, nodes[i], &snaps[i]);
    }
    for (size_t i = 0; i < N; i++) {
        if (rc == PRESENCE_OK) {
            char *what = str_printf("node_memberships '%s'", nodes[i]);
            reads_snapshot(r, what, snaps[i]);
            free(what);
        }
        presence_snapshot_free(snaps[i]);
    }
    return rc;
}

static int s_many_joins(run *r)
{
    /* Enough members that internal tables grow. Each join is its own
     * call, so the first failing one stops the step; the ones before it
     * stay (they succeeded), and the retry continues (joins are upserts:
     * redoing a successful one changes nothing). */
    char cl[32];
    for (int i = 0; i < 40; i++) {
        snprintf(cl, sizeof(cl), "m%d", i);
        int rc = join_info(r->reg, i % 2 ? "chat:big" : "lobby", cl, "um",
                           "mc", NULL);
        if (rc != PRESENCE_OK) {
            return rc;
        }
    }
    return PRESENCE_OK;
}

static int s_update(run *r)
{
    return presence_update(r->reg, "chat:room", "c2", "upd", 3);
}

/* History turned on where channels exist: a log for each, or none. */
static int s_history_default(run *r)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.history_size = 16;
    return presence_namespace_set(r->reg, "", &o);
}

static int s_history_chat_small(run *r)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.max_members = 100;
    o.history_size = 3;
    return presence_namespace_set(r->reg, "chat", &o);
}

/* The changes of chat:room from its start, as text. */
static int s_changes_since(run *r)
{
    presence_history *h = NULL;
    int rc = presence_changes_since(r->reg, "chat:room", presence_trusted(),
                                    0, 0, &h);
    if (rc == PRESENCE_OK) {
        char *t = str_printf("changes chat:room count=%zu seq=%" PRIu64,
                             h->count, h->stats.seq);
        reads_add(r, t);
        free(t);
        for (size_t i = 0; i < h->count; i++) {
            const presence_history_entry *e = &h->entries[i];
            t = str_printf("  %" PRIu64 " %s %s %s chan=%.*s", e->seq,
                           presence_event_kind_name(e->kind),
                           e->member.client_id, e->member.user_id,
                           (int)e->member.chan_info_len,
                           e->member.chan_info != NULL
                               ? (const char *)e->member.chan_info
                               : "");
            reads_add(r, t);
            free(t);
        }
        presence_history_free(h);
    }
    return rc;
}

static int s_query(run *r)
{
    presence_snapshot *snap = NULL;
    int rc = presence_query(r->reg, "chat:room", presence_trusted(), &snap);
    if (rc == PRESENCE_OK) {
        reads_snapshot(r, "query chat:room", snap);
        presence_snapshot_free(snap);
    }
    return rc;
}

static int s_query_requester(run *r)
{
    presence_snapshot *snap = NULL;
    int rc = presence_query(r->reg, "chat:room", REQ("c3"), &snap);
    if (rc == PRESENCE_OK) {
        reads_snapshot(r, "query chat:room by c3", snap);
        presence_snapshot_free(snap);
    }
    return rc;
}

static int s_query_page(run *r)
{
    /* A whole walk; the read is only recorded when every page came. */
    uint64_t cursor = 0;
    presence_snapshot *pages[64];
    size_t n = 0;
    int rc = PRESENCE_OK;
    do {
        presence_snapshot *page = NULL;
        rc = presence_query_page(r->reg, "chat:big", presence_trusted(), cursor, 3, &page);
        if (rc != PRESENCE_OK) {
            break;
        }
        assert_true(n < 64);
        pages[n++] = page;
        cursor = page->next_cursor;
    } while (cursor != 0);
    if (rc == PRESENCE_OK) {
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            total += pages[i]->count;
        }
        char *t = str_printf("page walk chat:big members=%zu", total);
        reads_add(r, t);
        free(t);
    }
    for (size_t i = 0; i < n; i++) {
        presence_snapshot_free(pages[i]);
    }
    return rc;
}

static int s_client_channels(run *r)
{
    presence_snapshot *snap = NULL;
    int rc = presence_client_channels(r->reg, "c1", &snap);
    if (rc == PRESENCE_OK) {
        reads_snapshot(r, "client_channels c1", snap);
        presence_snapshot_free(snap);
    }
    return rc;
}

static int s_user_connections(run *r)
{
    presence_snapshot *snap = NULL;
    int rc = presence_user_connections(r->reg, "chat:room", "u1", &snap);
    if (rc == PRESENCE_OK) {
        reads_snapshot(r, "user_connections chat:room u1", snap);
        presence_snapshot_free(snap);
    }
    return rc;
}

static int s_channels(run *r)
{
    presence_channel_list *list = NULL;
    int rc = presence_channels(r->reg, "chat", &list);
    if (rc == PRESENCE_OK) {
        char **lines = calloc(list->count + 1, sizeof(*lines));
        assert_non_null(lines);
        for (size_t i = 0; i < list->count; i++) {
            const presence_channel_entry *e = &list->channels[i];
            lines[i] = str_printf("  %s %zu/%zu seq=%" PRIu64, e->channel,
                                  e->stats.num_clients, e->stats.num_users,
                                  e->seq);
        }
        qsort(lines, list->count, sizeof(*lines), cmp_strp);
        reads_add(r, "channels chat");
        for (size_t i = 0; i < list->count; i++) {
            reads_add(r, lines[i]);
            free(lines[i]);
        }
        free(lines);
        presence_channel_list_free(list);
    }
    return rc;
}

static int s_stats(run *r)
{
    presence_channel_stats st;
    size_t n = 0;
    int rc = presence_stats(r->reg, "chat:room", presence_trusted(), &st);
    if (rc == PRESENCE_OK) {
        rc = presence_user_present(r->reg, "chat:room", "u1", &n);
    }
    if (rc == PRESENCE_OK) {
        char *t = str_printf("stats chat:room %zu/%zu u1=%zu", st.num_clients,
                             st.num_users, n);
        reads_add(r, t);
        free(t);
    }
    return rc;
}

static int s_leave(run *r)
{
    return presence_leave(r->reg, "chat:room", "c3");
}

static int s_touch(run *r)
{
    fake_clock_set(&r->clock, 1050);
    int rc = presence_touch(r->reg, "ttl:x", "c5");
    if (rc == PRESENCE_OK) {
        rc = presence_touch_client(r->reg, "c6");
    }
    return rc;
}

static int s_disconnect(run *r)
{
    size_t left = 0;
    int rc = presence_disconnect(r->reg, "c1", &left);
    if (rc == PRESENCE_OK) {
        char *t = str_printf("disconnect c1 left=%zu", left);
        reads_add(r, t);
        free(t);
    }
    return rc;
}

static int s_expire(run *r)
{
    fake_clock_set(&r->clock, 1200);
    size_t n = 0;
    int rc = presence_expire(r->reg, 1200, &n, NULL);
    r->batched_total += n;
    if (rc == PRESENCE_OK) {
        char *t = str_printf("expired total=%zu", r->batched_total);
        reads_add(r, t);
        free(t);
        r->batched_total = 0;
    }
    return rc;
}

static int s_close(run *r)
{
    size_t n = 0;
    int rc = presence_channel_close(r->reg, "chat:room", &n);
    r->batched_total += n;
    if (rc == PRESENCE_OK) {
        char *t = str_printf("closed total=%zu", r->batched_total);
        reads_add(r, t);
        free(t);
        r->batched_total = 0;
    }
    return rc;
}

static int s_close_big(run *r)
{
    size_t n = 0;
    int rc = presence_channel_close(r->reg, "chat:big", &n);
    r->batched_total += n;
    if (rc == PRESENCE_OK) {
        char *t = str_printf("closed chat:big total=%zu", r->batched_total);
        reads_add(r, t);
        free(t);
        r->batched_total = 0;
    }
    return rc;
}

static int s_ns_chat_off(run *r)
{
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.presence = false;
    return presence_namespace_set(r->reg, "chat", &o);
}

static int s_disconnect_lobby(run *r)
{
    int rc = presence_disconnect(r->reg, "c4", NULL);
    if (rc == PRESENCE_OK) {
        rc = presence_leave(r->reg, "lobby", "c2");
    }
    return rc;
}

/* Steps made of two calls (touch, stats, disconnect_lobby) are atomic
 * only if the second call needs no memory: touch and stats never
 * allocate, and disconnect_lobby is marked batched. */
static const step scenario[] = {
    {"registry_new", STEP_ATOMIC, s_new},
    {"namespace chat", STEP_ATOMIC, s_ns_chat},
    {"namespace ttl", STEP_ATOMIC, s_ns_ttl},
    {"subscribe all", STEP_ATOMIC, s_sub_all},
    {"subscribe ns chat", STEP_ATOMIC, s_sub_chat},
    {"subscribe chat:room", STEP_ATOMIC, s_sub_room},
    {"namespace quiet", STEP_ATOMIC, s_ns_quiet},
    {"subscribe every namespace", STEP_ATOMIC, s_sub_every},
    {"join1", STEP_ATOMIC, s_join1},
    {"join2", STEP_ATOMIC, s_join2},
    {"join3", STEP_ATOMIC, s_join3},
    {"join4", STEP_ATOMIC, s_join4},
    {"join5", STEP_ATOMIC, s_join5},
    {"join6", STEP_ATOMIC, s_join6},
    {"join7", STEP_ATOMIC, s_join7},
    {"join8", STEP_ATOMIC, s_join8},
    {"join9", STEP_ATOMIC, s_join9},
    {"remote join1", STEP_ATOMIC, s_rjoin1},
    {"remote join2", STEP_ATOMIC, s_rjoin2},
    {"remote join3", STEP_ATOMIC, s_rjoin3},
    {"join quiet", STEP_ATOMIC, s_join_quiet},
    {"remote join4", STEP_ATOMIC, s_rjoin4},
    {"remote join5", STEP_ATOMIC, s_rjoin5},
    {"remote join6", STEP_ATOMIC, s_rjoin6},
    {"many joins", STEP_BATCHED, s_many_joins},
    {"upsert same", STEP_ATOMIC, s_upsert_same},
    {"upsert new info", STEP_ATOMIC, s_upsert_new},
    {"update", STEP_ATOMIC, s_update},
    {"history on default", STEP_ATOMIC, s_history_default},
    {"changes_since", STEP_ATOMIC, s_changes_since},
    {"remote upsert", STEP_ATOMIC, s_rupsert},
    {"query", STEP_ATOMIC, s_query},
    {"query by requester", STEP_ATOMIC, s_query_requester},
    {"query_page walk", STEP_ATOMIC, s_query_page},
    {"client_channels", STEP_ATOMIC, s_client_channels},
    {"user_connections", STEP_ATOMIC, s_user_connections},
    {"node_memberships", STEP_ATOMIC, s_node_memberships},
    {"channels", STEP_ATOMIC, s_channels},
    {"stats", STEP_ATOMIC, s_stats},
    {"leave", STEP_ATOMIC, s_leave},
    {"touch", STEP_ATOMIC, s_touch},
    {"ttl change", STEP_ATOMIC, s_ns_ttl_change},
    {"history resize chat", STEP_ATOMIC, s_history_chat_small},
    {"join late", STEP_ATOMIC, s_join_late},
    {"unsubscribe chat", STEP_ATOMIC, s_unsub_chat},
    {"disconnect c1", STEP_ATOMIC, s_disconnect},
    {"expire", STEP_BATCHED, s_expire},
    {"node_memberships after expire", STEP_ATOMIC, s_node_memberships},
    {"channel_close", STEP_BATCHED, s_close},
    {"join after close", STEP_ATOMIC, s_join_after_close},
    {"remote leave", STEP_ATOMIC, s_rleave},
    {"node_down n1", STEP_BATCHED, s_node_down_n1},
    {"channel_close chat:big", STEP_BATCHED, s_close_big},
    {"namespace chat off", STEP_ATOMIC, s_ns_chat_off},
    {"disconnect lobby", STEP_BATCHED, s_disconnect_lobby},
    {"node_down n3", STEP_BATCHED, s_node_down_n3},
};
#define N_STEPS (sizeof(scenario) / sizeof(scenario[0]))

static const char *const namespaces[] = {"", "chat", "ttl", "quiet", NULL};

static char *dump_paused(run *r)
{
    if (r->reg == NULL) {
        return str_printf("no registry");
    }
    bool was = r->alloc.paused;
    r->alloc.paused = true;
    char *d = dump_registry(r->reg, namespaces);
    r->alloc.paused = was;
    return d;
}

typedef struct outcome {
    char *final_dump;
    char *events_all;
    char *events_chat;
    char *events_room;
    char *events_every;
    char *reads;
    unsigned long injected;
    size_t absorbed; /* injected failures a call absorbed (returned OK) */
} outcome;

static void outcome_free(outcome *o)
{
    free(o->final_dump);
    free(o->events_all);
    free(o->events_chat);
    free(o->events_room);
    free(o->events_every);
    free(o->reads);
    memset(o, 0, sizeof(*o));
}

typedef struct variant {
    bool single_threaded;
    bool no_realloc;
} variant;

/* One run; fail_at < 0 for the reference run. */
static void run_scenario(const variant *v, long fail_at, outcome *out)
{
    run r;
    memset(&r, 0, sizeof(r));
    r.single_threaded = v->single_threaded;
    r.no_realloc = v->no_realloc;
    test_alloc_init(&r.alloc, true);
    fake_clock_init(&r.clock, 1000);
    recorder_init(&r.all);
    recorder_init(&r.chat);
    recorder_init(&r.room);
    recorder_init(&r.every);
    if (fail_at >= 0) {
        test_alloc_arm(&r.alloc, fail_at);
    }
    memset(out, 0, sizeof(*out));

    for (size_t i = 0; i < N_STEPS; i++) {
        const step *s = &scenario[i];
        char *before = dump_paused(&r);
        size_t ev_before =
            r.all.count + r.chat.count + r.room.count + r.every.count;
        unsigned long inj_before = atomic_load(&r.alloc.injected);
        int rc = s->fn(&r);
        bool injected = atomic_load(&r.alloc.injected) != inj_before;
        if (injected) {
            test_alloc_disarm(&r.alloc);
        }
        if (rc != PRESENCE_OK) {
            if (rc != PRESENCE_ERR_NOMEM || !injected) {
                print_error("fail_at=%ld step '%s': returned %s (%d), "
                            "injected=%d\n",
                            fail_at, s->name, presence_error_name(rc), rc,
                            injected);
                fail();
            }
            if (s->kind == STEP_ATOMIC) {
                char *after = dump_paused(&r);
                if (strcmp(before, after) != 0) {
                    print_error("fail_at=%ld step '%s' failed with NOMEM but "
                                "changed the registry.\nbefore:\n%s\nafter:"
                                "\n%s\n",
                                fail_at, s->name, before, after);
                    fail();
                }
                free(after);
                size_t ev_after = r.all.count + r.chat.count + r.room.count +
                                  r.every.count;
                if (ev_after != ev_before) {
                    print_error("fail_at=%ld step '%s' failed with NOMEM but "
                                "delivered %zu events\n",
                                fail_at, s->name, ev_after - ev_before);
                    fail();
                }
            }
            /* Retry with memory back: must succeed. */
            rc = s->fn(&r);
            if (rc != PRESENCE_OK) {
                print_error("fail_at=%ld step '%s': retry returned %s\n",
                            fail_at, s->name, presence_error_name(rc));
                fail();
            }
        } else if (injected) {
            out->absorbed++;
            print_message("fail_at=%ld: step '%s' absorbed the failure\n",
                          fail_at, s->name);
        }
        free(before);
    }

    out->final_dump = dump_paused(&r);
    out->events_all = recorder_text(&r.all, true, true);
    out->events_chat = recorder_text(&r.chat, true, true);
    out->events_room = recorder_text(&r.room, true, true);
    out->events_every = recorder_text(&r.every, true, true);
    out->reads = r.reads ? r.reads : str_printf("%s", "");
    out->injected = atomic_load(&r.alloc.injected);
    recorder_assert_sane(&r.all);
    recorder_assert_sane(&r.chat);
    recorder_assert_sane(&r.room);
    recorder_assert_sane(&r.every);

    assert_ok(presence_registry_free(r.reg));
    test_alloc_assert_clean(&r.alloc);
    recorder_free(&r.all);
    recorder_free(&r.chat);
    recorder_free(&r.room);
    recorder_free(&r.every);
}

static void compare(const char *what, long n, const char *want,
                    const char *got)
{
    if (strcmp(want, got) != 0) {
        print_error("fail_at=%ld: %s differ from the reference run.\n"
                    "reference:\n%s\nthis run:\n%s\n",
                    n, what, want, got);
        fail();
    }
}

static void chaos(const variant *v)
{
    outcome ref;
    run_scenario(v, -1, &ref);
    assert_int_equal(ref.injected, 0);
    /* The scenario does what it should (a few spot checks). */
    assert_non_null(strstr(ref.reads, "closed total=2"));
    assert_non_null(strstr(ref.reads, "closed chat:big total=20"));
    assert_non_null(strstr(ref.reads, "expired total=2"));
    assert_non_null(strstr(ref.reads, "disconnect c1 left=3"));
    assert_non_null(strstr(ref.reads, "page walk chat:big members=20"));
    assert_non_null(strstr(ref.events_all, "update ch=chat:room"));
    assert_non_null(strstr(ref.reads, "changes chat:room count="));
    assert_non_null(strstr(ref.reads, " update c2 "));
    assert_non_null(strstr(ref.reads, "node_down n1 left=3"));
    assert_non_null(strstr(ref.reads, "node_down n3 left=2"));
    assert_non_null(strstr(ref.reads, "node_memberships 'n1' count=3"));
    assert_non_null(strstr(ref.reads, "ttl:x r1 u1 conn=3:rc1"));
    assert_non_null(strstr(ref.events_all, "update ch=lobby ns= seq="));
    assert_null(strstr(ref.events_all, "ch=quiet:a"));
    assert_non_null(strstr(ref.events_every, "leave ch=quiet:a"));
    assert_non_null(strstr(ref.events_every, "node=n2 reason=6"));

    long n = 0;
    size_t absorbed = 0;
    for (;; n++) {
        outcome o;
        run_scenario(v, n, &o);
        compare("final states", n, ref.final_dump, o.final_dump);
        compare("events (all)", n, ref.events_all, o.events_all);
        compare("events (namespace chat)", n, ref.events_chat,
                o.events_chat);
        compare("events (channel chat:room)", n, ref.events_room,
                o.events_room);
        compare("events (every namespace)", n, ref.events_every,
                o.events_every);
        compare("read results", n, ref.reads, o.reads);
        absorbed += o.absorbed;
        unsigned long injected = o.injected;
        outcome_free(&o);
        if (injected == 0) {
            break;
        }
        assert_true(n < 1000000);
    }
    print_message("chaos: %ld allocation points, %zu failures absorbed\n", n,
                  absorbed);
    assert_true(n > 20);
    outcome_free(&ref);
}

static void test_chaos(void **state)
{
    (void)state;
    const variant v = {false, false};
    chaos(&v);
}

static void test_chaos_single_threaded(void **state)
{
    (void)state;
    const variant v = {true, false};
    chaos(&v);
}

static void test_chaos_without_realloc(void **state)
{
    (void)state;
    const variant v = {false, true};
    chaos(&v);
}

/* A config whose allocator is a, counting and (once armed) failing. */
static void config_on(test_alloc *a, presence_config *c)
{
    test_alloc_init(a, true);
    presence_config_init(c);
    test_alloc_install(a, c, false);
}

/* registry_new alone: every failure point, nothing leaked, out
 * untouched. */
static void test_new_fails_cleanly(void **state)
{
    (void)state;
    for (long n = 0;; n++) {
        test_alloc a;
        presence_config c;
        config_on(&a, &c);
        test_alloc_arm(&a, n);
        presence_registry *reg = NULL;
        int rc = presence_registry_new(&c, &reg);
        if (rc == PRESENCE_OK) {
            assert_non_null(reg);
            bool injected = atomic_load(&a.injected) != 0;
            test_alloc_disarm(&a);
            assert_ok(join_simple(reg, "a", "c", "u"));
            assert_ok(presence_registry_free(reg));
            test_alloc_assert_clean(&a);
            if (!injected) {
                break;
            }
        } else {
            assert_rc(rc, PRESENCE_ERR_NOMEM);
            assert_null(reg);
            test_alloc_assert_clean(&a);
        }
        assert_true(n < 100000);
    }
}

/* What a failed join must leave as it was. */
typedef struct crowd_state {
    presence_counts counts;
    presence_channel_stats room;
    size_t user_in_room;
} crowd_state;

static crowd_state crowd_read(presence_registry *reg)
{
    crowd_state st;
    memset(&st, 0, sizeof st);
    assert_ok(presence_registry_counts(reg, &st.counts));
    assert_ok(presence_stats(reg, "room", presence_trusted(), &st.room));
    assert_ok(presence_user_present(reg, "room", "u", &st.user_in_room));
    return st;
}

static void crowd_assert_same(const crowd_state *a, const crowd_state *b)
{
    assert_int_equal(a->counts.channels, b->counts.channels);
    assert_int_equal(a->counts.clients, b->counts.clients);
    assert_int_equal(a->counts.users, b->counts.users);
    assert_int_equal(a->counts.memberships, b->counts.memberships);
    assert_int_equal(a->room.num_clients, b->room.num_clients);
    assert_int_equal(a->room.num_users, b->room.num_users);
    assert_int_equal(a->room.seq, b->room.seq);
    assert_int_equal(a->user_in_room, b->user_in_room);
}

/* A user with a full group in a channel (8 connections side by side)
 * gets a ninth: it goes apart, and the channel's crowd table is made
 * then, inside the member set's insert, the join's last step that can
 * fail. At every failure point, for a client already in another channel
 * and for a new one (taken back), the join fails whole: counts, stats
 * and the user's connections as before, nothing leaked; with memory back
 * it succeeds. */
static void test_crowd_join_fails_cleanly(void **state)
{
    (void)state;
    const char *joiners[2] = {"b", "fresh"};
    for (size_t w = 0; w < 2; w++) {
        for (long n = 0;; n++) {
            test_alloc a;
            presence_config c;
            config_on(&a, &c);
            presence_registry *reg = NULL;
            assert_ok(presence_registry_new(&c, &reg));
            char id[16];
            for (int i = 0; i < 8; i++) {
                snprintf(id, sizeof id, "a%d", i);
                assert_ok(join_simple(reg, "room", id, "u"));
            }
            assert_ok(join_simple(reg, "other", "b", "u"));
            crowd_state before = crowd_read(reg);
            assert_int_equal(before.user_in_room, 8);

            test_alloc_arm(&a, n);
            int rc = join_simple(reg, "room", joiners[w], "u");
            bool injected = atomic_load(&a.injected) != 0;
            test_alloc_disarm(&a);
            if (rc != PRESENCE_OK) {
                assert_rc(rc, PRESENCE_ERR_NOMEM);
                crowd_state after = crowd_read(reg);
                crowd_assert_same(&before, &after);
                assert_ok(join_simple(reg, "room", joiners[w], "u"));
            }
            crowd_state done = crowd_read(reg);
            assert_int_equal(done.user_in_room, 9);
            assert_int_equal(done.room.num_clients, 9);
            assert_int_equal(done.room.num_users, 1);
            assert_ok(presence_registry_free(reg));
            test_alloc_assert_clean(&a);
            if (!injected) {
                break;
            }
            assert_true(n < 10000);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_fails_cleanly),
        cmocka_unit_test(test_crowd_join_fails_cleanly),
        cmocka_unit_test(test_chaos),
        cmocka_unit_test(test_chaos_single_threaded),
        cmocka_unit_test(test_chaos_without_realloc),
    };
    return cmocka_run_group_tests_name("alloc_failure", tests, NULL, NULL);
}
