/*
 * presence-scaling ttl [C H K]: C*K memberships (default 200000 * 5 = 1M,
 * the presence-mix names and channel formula) in a namespace with a TTL,
 * on a fake clock, in a single-threaded registry:
 *
 *   join            C*K joins at t0
 *   touch           t0 + 10 s: presence_touch of every membership
 *   touch_client    t0 + 20 s: presence_touch_client of every client
 *   next_deadline   must be t0 + 20 s + ttl
 *   expire early    presence_expire at deadline - 1 ms: nothing expires
 *   expire          presence_expire at the deadline: all C*K expire
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"
#include "bench-modes.h"

#include <inttypes.h>
#include <string.h>

#define TTL_MS 30000
#define DEADLINE_CALLS 100000

static void row(const char *what, uint64_t ops, uint64_t ns) {
    printf("| %s | %" PRIu64 " | %.1f | %.0f |\n", what, ops, (double)ns / 1e6,
           ops ? (double)ns / (double)ops : 0.0);
}

int bench_mode_ttl(int argc, char **argv) {
    bench_params p;
    bench_names clients, users, channels;
    bench_infos infos;
    presence_config cfg;
    presence_namespace_options ns;
    presence_registry *reg = NULL;
    presence_counts counts;
    const int64_t t0_ms = 1000000;
    int64_t now_ms = t0_ms, deadline = 0;
    uint64_t t0, step, M;
    size_t expired = 0;

    bench_params_default(&p);
    if (argc > 3) {
        fprintf(stderr, "usage: presence-scaling ttl [C H K]\n");
        return 2;
    }
    bench_params_parse(&p, argc, argv);
    step = p.H / p.K;
    M = p.C * p.K;

    bench_names_make(&clients, (size_t)p.C, "c", 1);
    bench_names_make(&users, (size_t)((p.C + 1) / 2), "u", 1);
    bench_names_make(&channels, (size_t)p.H, "ttl:", 1);
    bench_infos_make(&infos, (size_t)p.C, (size_t)p.I, "c");

    bench_config(&cfg, true, (size_t)p.I);
    cfg.clock = bench_fake_clock;
    cfg.clock_user_data = &now_ms;
    BENCH_CHECK(presence_registry_new(&cfg, &reg));
    presence_namespace_options_init(&ns);
    ns.ttl_ms = TTL_MS;
    BENCH_CHECK(presence_namespace_set(reg, "ttl", &ns));

    printf("## ttl: %" PRIu64 " memberships (C=%" PRIu64 " H=%" PRIu64
           " K=%" PRIu64 ") with a %d ms TTL (libpresence %s)\n\n",
           M, p.C, p.H, p.K, TTL_MS, presence_version());
    printf("| step | ops | ms | ns/op |\n| --- | ---: | ---: | ---: |\n");

    t0 = bench_now_ns();
    for (uint64_t i = 0; i < p.C; i++) {
        const char *id = bench_name(&clients, i);
        const char *user = bench_name(&users, i / 2);
        const void *info = bench_info(&infos, i);
        uint64_t j = bench_channel0(i, p.H);
        for (uint64_t k = 0; k < p.K; k++) {
            BENCH_CHECK(presence_join(reg, bench_name(&channels, j), id, user,
                                      info, (size_t)p.I, NULL, 0));
            j = bench_channel_next(j, step, p.H);
        }
    }
    row("join (t0)", M, bench_now_ns() - t0);

    now_ms = t0_ms + 10000;
    t0 = bench_now_ns();
    for (uint64_t i = 0; i < p.C; i++) {
        const char *id = bench_name(&clients, i);
        uint64_t j = bench_channel0(i, p.H);
        for (uint64_t k = 0; k < p.K; k++) {
            BENCH_CHECK(presence_touch(reg, bench_name(&channels, j), id));
            j = bench_channel_next(j, step, p.H);
        }
    }
    row("presence_touch, each membership (t0 + 10 s)", M, bench_now_ns() - t0);

    now_ms = t0_ms + 20000;
    t0 = bench_now_ns();
    for (uint64_t i = 0; i < p.C; i++)
        BENCH_CHECK(presence_touch_client(reg, bench_name(&clients, i)));
    {
        uint64_t ns_used = bench_now_ns() - t0;
        row("presence_touch_client, each client (t0 + 20 s)", p.C, ns_used);
        row("  the same per membership", M, ns_used);
    }

    t0 = bench_now_ns();
    for (int c = 0; c < DEADLINE_CALLS; c++)
        deadline = presence_next_deadline_ms(reg);
    row("presence_next_deadline_ms", DEADLINE_CALLS, bench_now_ns() - t0);
    if (M && deadline != now_ms + TTL_MS)
        bench_die("next deadline %" PRId64 ", want %" PRId64, deadline,
                  now_ms + TTL_MS);

    now_ms = deadline - 1;
    t0 = bench_now_ns();
    BENCH_CHECK(presence_expire(reg, now_ms, &expired, NULL));
    row("presence_expire 1 ms before the deadline (calls)", 1,
        bench_now_ns() - t0);
    if (expired != 0)
        bench_die("%zu memberships expired before their deadline", expired);

    now_ms = deadline;
    t0 = bench_now_ns();
    BENCH_CHECK(presence_expire(reg, now_ms, &expired, NULL));
    row("presence_expire at the deadline (per membership expired)", expired,
        bench_now_ns() - t0);
    if (expired != M)
        bench_die("expired %zu of %" PRIu64, expired, M);

    BENCH_CHECK(presence_registry_counts(reg, &counts));
    if (counts.channels || counts.clients || counts.users ||
        counts.memberships)
        bench_die("not empty after expiry");
    if (presence_next_deadline_ms(reg) != PRESENCE_NO_DEADLINE)
        bench_die("a deadline remains after expiry");
    printf("\npeak RSS %ld KiB (%.0f B/membership, names included)\n",
           bench_peak_rss_kb(),
           M ? (double)bench_peak_rss_kb() * 1024.0 / (double)M : 0.0);

    BENCH_CHECK(presence_registry_free(reg));
    bench_names_free(&clients);
    bench_names_free(&users);
    bench_names_free(&channels);
    bench_infos_free(&infos);
    return 0;
}
