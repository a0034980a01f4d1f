/*
 * presence-scaling storm [N S M P]: a reconnect storm. N (default 10,000)
 * clients in one big channel and S (default 200) small channels of M
 * (default 10) members; every client disconnects and then reconnects with
 * the same infos (but P percent, default 0, that do not come back), all
 * inside one window (the disconnects spread over the
 * first 200 ms, the reconnects over the next 200), on a fake clock.
 *
 * What a subscriber of every channel receives, three ways:
 *
 *   events      presence_subscribe(): one callback per join and leave
 *   coalesced   presence_subscribe_coalesced() with a 1000 ms window
 *   counts      the same, counts only above 1000 members (below 800)
 *
 * For each: callback calls, members carried by them, and the pushes a
 * server would send if every member of a channel is also a subscriber of
 * it (each event, or diff, sent to the channel's members at that time:
 * Centrifugo's O(N^2) join/leave fan-out), with the storm's wall time.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"
#include "bench-modes.h"

#include <inttypes.h>
#include <string.h>

#define WINDOW_MS 1000
#define SPREAD_MS 200
#define COUNT_HIGH 1000
#define COUNT_LOW 800
#define INFO_LEN 32

typedef struct storm_counts {
    uint64_t calls;   /* callback invocations */
    uint64_t members; /* members carried by them (1 per event) */
    uint64_t pushes;  /* messages to the channels' members */
    uint64_t pushed_members; /* member entries in those messages */
    double storm_ms;  /* the storm's changes, with delivery */
    double flush_ms;  /* presence_flush at the window's end */
} storm_counts;

static void on_event(presence_registry *reg, const presence_event *ev,
                     void *ud) {
    (void)reg;
    storm_counts *c = ud;
    c->calls++;
    c->members++;
    /* A leave is pushed to those still there, a join to all with it. */
    c->pushes += ev->stats.num_clients;
    c->pushed_members += ev->stats.num_clients;
}

static void on_diff(presence_registry *reg, const presence_diff *d,
                    void *ud) {
    (void)reg;
    storm_counts *c = ud;
    c->calls++;
    c->members += d->member_count;
    /* One message per member of the channel, even an empty diff (it
     * carries the new version and counts). */
    c->pushes += d->stats.num_clients;
    c->pushed_members += d->member_count * d->stats.num_clients;
}

typedef enum storm_way { WAY_EVENTS, WAY_COALESCED, WAY_COUNTS } storm_way;

static void run(storm_way way, uint64_t N, uint64_t S, uint64_t M,
                uint64_t P, storm_counts *out) {
    uint64_t total = N + S * M;
    bench_names clients, channels;
    bench_infos infos;
    presence_config cfg;
    presence_registry *reg = NULL;
    presence_subscription sub = 0;
    int64_t now_ms = 1000000;
    int64_t t_start = now_ms;

    memset(out, 0, sizeof *out);
    bench_names_make(&clients, (size_t)total, "c", 1);
    bench_names_make(&channels, (size_t)S + 1, "ch", 1);
    bench_infos_make(&infos, (size_t)total, INFO_LEN, "i");
    bench_config(&cfg, true, INFO_LEN);
    cfg.clock = bench_fake_clock;
    cfg.clock_user_data = &now_ms;
    BENCH_CHECK(presence_registry_new(&cfg, &reg));

#define CH(i) bench_name(&channels, (i) < N ? 0 : (size_t)(1 + ((i) - N) / M))
#define JOIN(i)                                                                \
    BENCH_CHECK(presence_join(reg, CH(i), bench_name(&clients, (i)),         \
                              bench_name(&clients, (i)),                      \
                              bench_info(&infos, (i)), INFO_LEN, NULL, 0))

    for (uint64_t i = 0; i < total; i++) {
        JOIN(i);
    }
    if (way == WAY_EVENTS) {
        BENCH_CHECK(presence_subscribe(reg, PRESENCE_SCOPE_ALL, NULL,
                                       PRESENCE_EVENT_JOIN |
                                           PRESENCE_EVENT_LEAVE,
                                       on_event, out, &sub));
    } else {
        presence_coalesce_options o;
        presence_coalesce_options_init(&o);
        o.window_ms = WINDOW_MS;
        if (way == WAY_COUNTS) {
            o.count_only_above = COUNT_HIGH;
            o.count_only_below = COUNT_LOW;
        }
        BENCH_CHECK(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_ALL,
                                                 NULL, &o, on_diff, out,
                                                 &sub));
    }

    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < total; i++) {
        now_ms = t_start + (int64_t)(i * SPREAD_MS / total);
        size_t left = 0;
        BENCH_CHECK(presence_disconnect(reg, bench_name(&clients, i), &left));
        if (left != 1)
            bench_die("storm: a client in %zu channels", left);
    }
    uint64_t gone = 0;
    for (uint64_t i = 0; i < total; i++) {
        now_ms = t_start + SPREAD_MS + (int64_t)(i * SPREAD_MS / total);
        if (i % 100 < P) {
            gone++;
            continue;
        }
        JOIN(i);
    }
    uint64_t t1 = bench_now_ns();
    int64_t next = 0;
    BENCH_CHECK(presence_flush(reg, now_ms, &next));
    if (way != WAY_EVENTS && (next != t_start + WINDOW_MS || out->calls != 0))
        bench_die("storm: a diff before its window ended");
    now_ms = t_start + SPREAD_MS + WINDOW_MS; /* every window has ended */
    uint64_t t2 = bench_now_ns();
    BENCH_CHECK(presence_flush(reg, now_ms, &next));
    uint64_t t3 = bench_now_ns();
    if (next != PRESENCE_NO_DEADLINE)
        bench_die("storm: diffs left after the window");
    out->storm_ms = (double)(t1 - t0) / 1e6;
    out->flush_ms = (double)(t3 - t2) / 1e6;

    presence_counts counts;
    BENCH_CHECK(presence_registry_counts(reg, &counts));
    if (counts.memberships != total - gone)
        bench_die("storm: %zu memberships after it", counts.memberships);
    BENCH_CHECK(presence_unsubscribe(reg, sub));
    BENCH_CHECK(presence_registry_free(reg));
    bench_infos_free(&infos);
    bench_names_free(&channels);
    bench_names_free(&clients);
#undef JOIN
#undef CH
}

int bench_mode_storm(int argc, char **argv) {
    uint64_t N = argc > 0 ? bench_parse_u64(argv[0]) : 10000;
    uint64_t S = argc > 1 ? bench_parse_u64(argv[1]) : 200;
    uint64_t M = argc > 2 ? bench_parse_u64(argv[2]) : 10;
    uint64_t P = argc > 3 ? bench_parse_u64(argv[3]) : 0;
    if (N == 0 || M == 0 || P > 100)
        bench_die("storm: N and M must be positive, P at most 100");
    static const char *const names[] = {
        "events (presence_subscribe)",
        "coalesced, window 1000 ms",
        "coalesced, counts only above 1000",
    };
    printf("### Reconnect storm: %" PRIu64 " clients in one channel, %" PRIu64
           " channels of %" PRIu64 ", all drop, %" PRIu64
           "%% do not come back, in one window\n\n",
           N, S, M, P);
    printf("| subscriber | callbacks | members delivered | pushes to members "
           "| member entries pushed | storm ms | flush ms |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int w = WAY_EVENTS; w <= WAY_COUNTS; w++) {
        storm_counts c;
        run((storm_way)w, N, S, M, P, &c);
        printf("| %s | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64
               " | %.1f | %.2f |\n",
               names[w], c.calls, c.members, c.pushes, c.pushed_members,
               c.storm_ms, c.flush_ms);
    }
    return 0;
}
