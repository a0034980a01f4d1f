/*
 * The presence-mix workload of ../shared/bench/WORKLOAD.md on libpresence,
 * through the public API only.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

const char *const bench_phase_names[BENCH_PHASES] = {
    "join", "stats", "query", "refresh", "leave",
};

/* --loop-clock: the time as of the phase's start, as an event loop's
 * cached time is the time as of its iteration's start. */
static int64_t loop_now_ms;

static int64_t loop_clock(void *user_data) {
    (void)user_data;
    return loop_now_ms;
}

#define PHASE_BEGIN(ph)                                                        \
    do {                                                                       \
        loop_now_ms = (int64_t)(bench_now_ns() / 1000000);                     \
        if (hooks && hooks->phase)                                             \
            hooks->phase((ph), true, hooks->ctx);                              \
        t0 = bench_now_ns();                                                   \
    } while (0)
#define PHASE_END(ph)                                                          \
    do {                                                                       \
        out->ns[(ph)] = bench_now_ns() - t0;                                   \
        if (hooks && hooks->phase)                                             \
            hooks->phase((ph), false, hooks->ctx);                             \
    } while (0)

/* 0 .. n-1 in a shuffled order (Fisher-Yates with a fixed xorshift
 * seed: the same order in every run), or NULL when not shuffling. */
static uint32_t *shuffled(uint64_t n, bool shuffle, uint64_t seed) {
    if (!shuffle)
        return NULL;
    uint32_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order)
        bench_die("out of memory for a shuffled order");
    for (uint64_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    uint64_t x = seed;
    for (uint64_t i = n; i > 1; i--) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t k = x % i;
        uint32_t t = order[i - 1];
        order[i - 1] = order[k];
        order[k] = t;
    }
    return order;
}

/* The i-th of an order made by shuffled(). */
static inline uint64_t nth(const uint32_t *order, uint64_t i) {
    return order ? order[i] : i;
}

/* The query phase's visitor: the bytes of every member it is handed. */
static void count_member(const presence_member *mb, void *user_data) {
    uint64_t *bytes = user_data;
    *bytes += strlen(mb->client_id) + strlen(mb->user_id) + mb->conn_info_len;
}

void bench_workload_run(const bench_params *p, const bench_hooks *hooks,
                        bench_result *out) {
    const uint64_t C = p->C, H = p->H, K = p->K, R = p->R;
    const uint64_t step = H / K;
    bench_names clients, users, channels;
    bench_infos infos;
    presence_config cfg;
    presence_namespace_options ns;
    presence_registry *reg = NULL;
    presence_counts counts;
    uint64_t t0;

    memset(out, 0, sizeof *out);

    /* Names are built before the timed phases, as a server has them
     * already: client ids c<i>, user ids u<i/2>, channels chat:<j>, infos
     * "c<i>" padded with the letter x to I bytes. */
    bench_names_make(&clients, (size_t)C, "c", 1);
    bench_names_make(&users, (size_t)((C + 1) / 2), "u", 1);
    bench_names_make(&channels, (size_t)H, "chat:", 1);
    bench_infos_make(&infos, (size_t)C, (size_t)p->I, "c");
    if (p->prefault_mb > 0)
        bench_prefault(p->prefault_mb);
    out->names_rss_kb = bench_peak_rss_kb();

    bench_config(&cfg, !p->threaded, (size_t)p->I);
    if (hooks && hooks->allocator)
        cfg.allocator = *hooks->allocator;
    if (p->loop_clock)
        cfg.clock = loop_clock;
    BENCH_CHECK(presence_registry_new(&cfg, &reg));
    presence_namespace_options_init(&ns);
    ns.history_size = (size_t)p->history;
    BENCH_CHECK(presence_namespace_set(reg, "chat", &ns));

    presence_client **handles = NULL;
    presence_channel **chans = NULL;
    presence_channel_join_item *items = NULL;
    if (p->handles) {
        handles = calloc((size_t)C, sizeof *handles);
        chans = calloc((size_t)H, sizeof *chans);
        items = calloc((size_t)K, sizeof *items);
        if (handles == NULL || chans == NULL || items == NULL)
            bench_die("out of memory for handles");
    }

    /* 1. join: C*K joins with user id and conn_info, no chan_info. By
     * handles: a handle per channel, opened (its name checked and looked
     * up) on the channel's first use, inside the timed phase. */
    PHASE_BEGIN(BENCH_JOIN);
    for (uint64_t i = 0; p->handles && i < C; i++) {
        presence_client_options o;
        presence_client_options_init(&o);
        o.client_id = bench_name(&clients, i);
        o.user_id = bench_name(&users, i / 2);
        o.conn_info = bench_info(&infos, i);
        o.conn_info_len = (size_t)p->I;
        BENCH_CHECK(presence_client_open(reg, &o, &handles[i]));
        uint64_t j = bench_channel0(i, H);
        for (uint64_t k = 0; k < K; k++) {
            if (chans[j] == NULL)
                BENCH_CHECK(presence_channel_open(
                    reg, bench_name(&channels, j), &chans[j]));
            items[k].channel = chans[j];
            j = bench_channel_next(j, step, H);
        }
        BENCH_CHECK(presence_client_join_channel_many(reg, handles[i], items,
                                                      (size_t)K, NULL, NULL));
    }
    for (uint64_t i = 0; !p->handles && i < C; i++) {
        const char *id = bench_name(&clients, i);
        const char *user = bench_name(&users, i / 2);
        const void *info = bench_info(&infos, i);
        uint64_t j = bench_channel0(i, H);
        for (uint64_t k = 0; k < K; k++) {
            BENCH_CHECK(presence_join(reg, bench_name(&channels, j), id, user,
                                      info, (size_t)p->I, NULL, 0));
            j = bench_channel_next(j, step, H);
        }
    }
    PHASE_END(BENCH_JOIN);
    out->ops[BENCH_JOIN] = C * K;

    BENCH_CHECK(presence_registry_counts(reg, &counts));
    if (counts.memberships != C * K || counts.clients != C)
        bench_die("after join: %zu memberships, %zu clients (want %" PRIu64
                  ", %" PRIu64 ")",
                  counts.memberships, counts.clients, C * K, C);

    /* --shuffle: the orders the later phases take channels and clients
     * in, made outside the timed phases. */
    uint32_t *horder = shuffled(H, p->shuffle, UINT64_C(0x9e3779b97f4a7c15));
    uint32_t *corder = shuffled(C, p->shuffle, UINT64_C(0xbf58476d1ce4e5b9));

    /* 2. stats: R rounds over every channel. */
    PHASE_BEGIN(BENCH_STATS);
    for (uint64_t r = 0; r < R; r++) {
        uint64_t rc = 0, ru = 0;
        for (uint64_t jj = 0; jj < H; jj++) {
            const uint64_t j = nth(horder, jj);
            presence_channel_stats st;
            if (p->handles && chans[j] != NULL)
                BENCH_CHECK(presence_channel_stats_get(
                    reg, chans[j], presence_trusted(), &st));
            else
                BENCH_CHECK(presence_stats(reg, bench_name(&channels, j),
                                           presence_trusted(), &st));
            rc += st.num_clients;
            ru += st.num_users;
        }
        if (r == 0) {
            out->clients = rc;
            out->users = ru;
        } else if (rc != out->clients || ru != out->users) {
            bench_die("stats differ between rounds");
        }
    }
    PHASE_END(BENCH_STATS);
    out->ops[BENCH_STATS] = R * H;

    /* 3. query: the full presence of every channel, every member visited. */
    PHASE_BEGIN(BENCH_QUERY);
    for (uint64_t jj = 0; p->query_visit && jj < H; jj++) {
        const uint64_t j = nth(horder, jj);
        presence_visit_info seen;
        BENCH_CHECK(presence_visit(reg, bench_name(&channels, j),
                                   presence_trusted(), 0, 0, count_member,
                                   &out->bytes, &seen));
        out->listed += seen.visited;
    }
    for (uint64_t jj = 0; !p->query_visit && jj < H; jj++) {
        const uint64_t j = nth(horder, jj);
        presence_snapshot *snap = NULL;
        BENCH_CHECK(presence_query(reg, bench_name(&channels, j), presence_trusted(), &snap));
        for (size_t m = 0; m < snap->count; m++) {
            const presence_member *mb = &snap->members[m];
            out->bytes += strlen(mb->client_id) + strlen(mb->user_id) +
                          mb->conn_info_len;
        }
        out->listed += snap->count;
        presence_snapshot_free(snap);
    }
    PHASE_END(BENCH_QUERY);
    out->ops[BENCH_QUERY] = H;

    /* 4. refresh: touch every membership (by handle: a client's all at
     * once, as a connection's periodic refresh does). */
    PHASE_BEGIN(BENCH_REFRESH);
    for (uint64_t ii = 0; p->handles && ii < C; ii++)
        BENCH_CHECK(presence_client_touch(reg, handles[nth(corder, ii)], NULL));
    for (uint64_t ii = 0; !p->handles && ii < C; ii++) {
        const uint64_t i = nth(corder, ii);
        const char *id = bench_name(&clients, i);
        uint64_t j = bench_channel0(i, H);
        for (uint64_t k = 0; k < K; k++) {
            BENCH_CHECK(presence_touch(reg, bench_name(&channels, j), id));
            j = bench_channel_next(j, step, H);
        }
    }
    PHASE_END(BENCH_REFRESH);
    out->ops[BENCH_REFRESH] = C * K;

    /* 5. leave: every client disconnects (by handle, close_batch clients
     * a call: a loop closes the connections that ended in one turn). The
     * handles are put in the phase's order first (nothing reads them by
     * client after this). */
    if (p->handles && corder) {
        presence_client **in_order = malloc((size_t)C * sizeof *in_order);
        if (!in_order)
            bench_die("out of memory for the handles' order");
        for (uint64_t ii = 0; ii < C; ii++)
            in_order[ii] = handles[corder[ii]];
        memcpy(handles, in_order, (size_t)C * sizeof *handles);
        free(in_order);
    }
    PHASE_BEGIN(BENCH_LEAVE);
    const uint64_t batch = p->handles ? p->close_batch : 1;
    for (uint64_t i = 0; i < C; i += batch) {
        const uint64_t n = C - i < batch ? C - i : batch;
        size_t left = 0;
        if (p->handles && batch > 1)
            BENCH_CHECK(presence_client_close_many(reg, &handles[i],
                                                   (size_t)n, &left));
        else if (p->handles)
            BENCH_CHECK(presence_client_close(reg, handles[i], &left));
        else
            BENCH_CHECK(presence_disconnect(
                reg, bench_name(&clients, nth(corder, i)), &left));
        if (left != n * K)
            bench_die("clients %" PRIu64 "+%" PRIu64 " left %zu channels, "
                      "want %" PRIu64, i, n, left, n * K);
    }
    PHASE_END(BENCH_LEAVE);
    out->ops[BENCH_LEAVE] = C;

    for (uint64_t j = 0; p->handles && j < H; j++)
        BENCH_CHECK(presence_channel_release(reg, chans[j]));

    BENCH_CHECK(presence_registry_counts(reg, &counts));
    if (counts.channels || counts.clients || counts.users ||
        counts.memberships)
        bench_die("not empty after leave: channels=%zu clients=%zu users=%zu "
                  "memberships=%zu",
                  counts.channels, counts.clients, counts.users,
                  counts.memberships);

    out->peak_rss_kb = bench_peak_rss_kb();

    BENCH_CHECK(presence_registry_free(reg));
    free(horder);
    free(corder);
    free(handles);
    free(chans);
    free(items);
    bench_names_free(&clients);
    bench_names_free(&users);
    bench_names_free(&channels);
    bench_infos_free(&infos);
}

void bench_result_print(FILE *f, const bench_result *r) {
    for (int ph = 0; ph < BENCH_PHASES; ph++) {
        double secs = (double)r->ns[ph] / 1e9;
        double rate = secs > 0 ? (double)r->ops[ph] / secs : 0.0;
        fprintf(f, "phase=%s ops=%" PRIu64 " seconds=%.6f ops_per_s=%.0f\n",
                bench_phase_names[ph], r->ops[ph], secs, rate);
    }
    fprintf(f,
            "checksum clients=%" PRIu64 " users=%" PRIu64 " listed=%" PRIu64
            " bytes=%" PRIu64 "\n",
            r->clients, r->users, r->listed, r->bytes);
    fprintf(f, "peak_rss_kb=%ld\n", r->peak_rss_kb);
}
