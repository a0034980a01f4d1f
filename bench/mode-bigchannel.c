/*
 * presence-scaling bigchannel [N]: one channel of N (default 1,000,000)
 * members against the same N clients in channels of 10 members, each in a
 * fresh single-threaded registry whose namespace has a TTL and whose clock
 * is a fake one:
 *
 *   join    N joins (ns/op over all, over the first 1% and the last 1%)
 *   stats   1,000,000 presence_stats calls (O(1) whatever the size)
 *   pages   the big channel walked with presence_query_page by 100, every
 *           member visited (ns/page over the first 1% and last 1% pages)
 *   leave   presence_leave of 1% of the members (every 100th client)
 *   expire  the clock moves past the TTL, one presence_expire removes the
 *           remaining 99%
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"
#include "bench-modes.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define TTL_MS 60000
#define STATS_CALLS 1000000
#define PAGE 100
#define SMALL 10

typedef struct big_result {
    double join_all, join_first, join_last; /* ns per join */
    double stats;                            /* ns per call */
    double page_all, page_first, page_last;  /* ns per page */
    uint64_t pages, walked;
    double leave;                            /* ns per leave */
    double expire_ms, expire_per;            /* whole call, ns per member */
    uint64_t expired;
    long rss_kb;                             /* RSS with all N joined */
} big_result;

static void run(uint64_t N, int big, big_result *out) {
    const char *nsname = big ? "big" : "small";
    bench_names clients, users, channels;
    bench_infos infos;
    presence_config cfg;
    presence_namespace_options ns;
    presence_registry *reg = NULL;
    presence_counts counts;
    int64_t now_ms = 1000000;
    uint64_t nch = big ? 1 : (N + SMALL - 1) / SMALL;
    uint64_t pct = N / 100 ? N / 100 : 1;
    uint64_t t0, t1, t2, t3;
    size_t expired = 0;

    memset(out, 0, sizeof *out);
    bench_names_make(&clients, (size_t)N, big ? "b" : "s", 1);
    bench_names_make(&users, (size_t)((N + 1) / 2), "u", 1);
    bench_names_make(&channels, (size_t)nch, big ? "big:" : "small:", 1);
    bench_infos_make(&infos, (size_t)N, 32, big ? "b" : "s");

    bench_config(&cfg, true, 32);
    cfg.clock = bench_fake_clock;
    cfg.clock_user_data = &now_ms;
    BENCH_CHECK(presence_registry_new(&cfg, &reg));
    presence_namespace_options_init(&ns);
    ns.ttl_ms = TTL_MS;
    BENCH_CHECK(presence_namespace_set(reg, nsname, &ns));

#define CH(i) bench_name(&channels, big ? 0 : (size_t)((i) / SMALL))

    /* join: first 1%, the middle, last 1%, timed separately */
    t0 = bench_now_ns();
    for (uint64_t i = 0; i < pct && i < N; i++)
        BENCH_CHECK(presence_join(reg, CH(i), bench_name(&clients, i),
                                  bench_name(&users, i / 2),
                                  bench_info(&infos, i), 32, NULL, 0));
    t1 = bench_now_ns();
    for (uint64_t i = pct; i + pct < N; i++)
        BENCH_CHECK(presence_join(reg, CH(i), bench_name(&clients, i),
                                  bench_name(&users, i / 2),
                                  bench_info(&infos, i), 32, NULL, 0));
    t2 = bench_now_ns();
    for (uint64_t i = (N > 2 * pct ? N - pct : pct); i < N; i++)
        BENCH_CHECK(presence_join(reg, CH(i), bench_name(&clients, i),
                                  bench_name(&users, i / 2),
                                  bench_info(&infos, i), 32, NULL, 0));
    t3 = bench_now_ns();
    out->join_all = (double)(t3 - t0) / (double)N;
    out->join_first = (double)(t1 - t0) / (double)pct;
    out->join_last = (double)(t3 - t2) / (double)pct;
    out->rss_kb = bench_current_rss_kb();

    BENCH_CHECK(presence_registry_counts(reg, &counts));
    if (counts.memberships != N || counts.channels != nch)
        bench_die("%s: %zu memberships in %zu channels after join", nsname,
                  counts.memberships, counts.channels);

    /* stats */
    {
        uint64_t sum = 0;
        t0 = bench_now_ns();
        for (uint64_t s = 0; s < STATS_CALLS; s++) {
            presence_channel_stats st;
            BENCH_CHECK(presence_stats(reg, bench_name(&channels, s % nch),
                                       presence_trusted(), &st));
            sum += st.num_clients;
        }
        out->stats = (double)(bench_now_ns() - t0) / STATS_CALLS;
        if (big && sum != (uint64_t)STATS_CALLS * N)
            bench_die("big: stats disagree with the joins");
    }

    /* pages (the big channel only) */
    if (big) {
        uint64_t npages_max = N / PAGE + 2;
        uint64_t *page_ns = malloc(npages_max * sizeof *page_ns);
        uint64_t cursor = 0, sum = 0, first = 0, last = 0, n1;
        if (!page_ns)
            bench_die("out of memory");
        do {
            presence_snapshot *snap = NULL;
            uint64_t bytes = 0;
            if (out->pages == npages_max)
                bench_die("big: more pages than expected");
            t0 = bench_now_ns();
            BENCH_CHECK(presence_query_page(reg, CH(0), presence_trusted(), cursor, PAGE,
                                            &snap));
            for (size_t m = 0; m < snap->count; m++)
                bytes += strlen(snap->members[m].client_id) +
                         strlen(snap->members[m].user_id) +
                         snap->members[m].conn_info_len;
            cursor = snap->next_cursor;
            out->walked += snap->count;
            presence_snapshot_free(snap);
            page_ns[out->pages++] = bench_now_ns() - t0;
            if (bytes == 0 && out->walked < N)
                bench_die("big: empty page before the end");
        } while (cursor != 0);
        if (out->walked != N)
            bench_die("big: walked %" PRIu64 " members of %" PRIu64,
                      out->walked, N);
        n1 = out->pages / 100 ? out->pages / 100 : 1;
        for (uint64_t p = 0; p < out->pages; p++) {
            sum += page_ns[p];
            if (p < n1)
                first += page_ns[p];
            if (p >= out->pages - n1)
                last += page_ns[p];
        }
        out->page_all = (double)sum / (double)out->pages;
        out->page_first = (double)first / (double)n1;
        out->page_last = (double)last / (double)n1;
        free(page_ns);
    }

    /* leave 1%: every 100th client */
    {
        uint64_t n = 0;
        t0 = bench_now_ns();
        for (uint64_t i = 0; i < N; i += 100, n++)
            BENCH_CHECK(presence_leave(reg, CH(i), bench_name(&clients, i)));
        out->leave = n ? (double)(bench_now_ns() - t0) / (double)n : 0.0;
        n = N - n;
        /* expire the rest in one call, one TTL later */
        now_ms += TTL_MS;
        t0 = bench_now_ns();
        BENCH_CHECK(presence_expire(reg, presence_now_ms(reg), &expired, NULL));
        t1 = bench_now_ns();
        out->expired = expired;
        out->expire_ms = (double)(t1 - t0) / 1e6;
        out->expire_per = expired ? (double)(t1 - t0) / (double)expired : 0.0;
        if (expired != n)
            bench_die("%s: expired %zu of %" PRIu64, nsname, expired, n);
    }
#undef CH

    BENCH_CHECK(presence_registry_counts(reg, &counts));
    if (counts.channels || counts.clients || counts.users ||
        counts.memberships)
        bench_die("%s: not empty after expiry", nsname);
    BENCH_CHECK(presence_registry_free(reg));
    bench_names_free(&clients);
    bench_names_free(&users);
    bench_names_free(&channels);
    bench_infos_free(&infos);
}

int bench_mode_bigchannel(int argc, char **argv) {
    uint64_t N = 1000000;
    big_result sm, bg;

    if (argc > 1) {
        fprintf(stderr, "usage: presence-scaling bigchannel [N]\n");
        return 2;
    }
    if (argc == 1)
        N = bench_parse_u64(argv[0]);
    if (N < 100)
        bench_die("N must be at least 100");

    run(N, 0, &sm);
    run(N, 1, &bg);

    printf("## bigchannel: %" PRIu64 " clients in channels of %d vs in one "
           "channel (libpresence %s)\n\n",
           N, SMALL, presence_version());
    printf("| measure | %" PRIu64 " channels of %d | 1 channel of %" PRIu64
           " | big / small |\n",
           (N + SMALL - 1) / SMALL, SMALL, N);
    printf("| --- | ---: | ---: | ---: |\n");
#define ROW(label, a, b, fmt)                                                  \
    printf("| " label " | " fmt " | " fmt " | %.2fx |\n", (a), (b),            \
           (a) > 0 ? (b) / (a) : 0.0)
    ROW("join, ns/op (all)", sm.join_all, bg.join_all, "%.0f");
    ROW("join, ns/op (first 1%%)", sm.join_first, bg.join_first, "%.0f");
    ROW("join, ns/op (last 1%%)", sm.join_last, bg.join_last, "%.0f");
    ROW("stats, ns/op", sm.stats, bg.stats, "%.1f");
    ROW("leave, ns/op (1%% of members)", sm.leave, bg.leave, "%.0f");
    ROW("expire the other 99%%, ns/membership", sm.expire_per, bg.expire_per,
        "%.0f");
    ROW("expire, whole call, ms", sm.expire_ms, bg.expire_ms, "%.1f");
    ROW("RSS with all joined, B/membership",
        (double)sm.rss_kb * 1024.0 / (double)N,
        (double)bg.rss_kb * 1024.0 / (double)N, "%.0f");
#undef ROW
    printf("\nWalk of the big channel by pages of %d: %" PRIu64
           " pages, %" PRIu64 " members visited once each.\n\n",
           PAGE, bg.pages, bg.walked);
    printf("| pages | ns/page |\n| --- | ---: |\n");
    printf("| first 1%% | %.0f |\n| last 1%% | %.0f |\n| all | %.0f |\n",
           bg.page_first, bg.page_last, bg.page_all);
    printf("| last 1%% / first 1%% | %.2fx |\n",
           bg.page_first > 0 ? bg.page_last / bg.page_first : 0.0);
    return 0;
}
