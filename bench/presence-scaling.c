/*
 * presence-scaling MODE [args]: the benchmarks of issue 4 beyond the
 * presence-mix workload itself.
 *
 *   scaling    [C...]   presence-mix at C = 20k, 200k, 2M (K=5 R=10 I=32),
 *                       with H = C/10 and with H = 20000: ns/op per phase
 *   bigchannel [N]      one channel of N = 1,000,000 members against
 *                       channels of 10: join, stats, pages, leave, expiry
 *   ttl        [C H K]  C*K = 1M memberships with a TTL: join, touch,
 *                       touch_client, expire in one deadline
 *   threads    [N W]    join/stats/leave mix from 1 and 2 threads, disjoint
 *                       channels and one shared channel
 *   alloc      [C H K R I]  presence-mix with a counting allocator:
 *                       allocations per op, bytes per membership
 *   storm      [N S M P]  a reconnect storm: N clients in one channel and
 *                       S channels of M drop and (but P%) come back in one
 *                       window: what a subscriber gets with events and
 *                       with coalesced diffs
 *   touch-order [C H K] presence_touch of C*K memberships made together
 *                       or apart, renewed client by client or shuffled
 *   crowd      [N]      one channel of N members: every member its own
 *                       user, two a user, or all one user ("")
 *
 * Output is Markdown tables, ready for docs/PERFORMANCE.md.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"
#include "bench-modes.h"

#include <string.h>

int64_t bench_fake_clock(void *user_data) {
    return *(const int64_t *)user_data;
}

static int usage(void) {
    fprintf(stderr,
            "usage: presence-scaling scaling [C...]\n"
            "       presence-scaling bigchannel [N]\n"
            "       presence-scaling ttl [C H K]\n"
            "       presence-scaling threads [N W]\n"
            "       presence-scaling alloc [C H K R I]\n"
            "       presence-scaling storm [N S M P]\n"
            "       presence-scaling touch-order [C H K]\n"
            "       presence-scaling crowd [N]\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return usage();
    if (!strcmp(argv[1], "scaling"))
        return bench_mode_scaling(argc - 2, argv + 2);
    if (!strcmp(argv[1], "bigchannel"))
        return bench_mode_bigchannel(argc - 2, argv + 2);
    if (!strcmp(argv[1], "ttl"))
        return bench_mode_ttl(argc - 2, argv + 2);
    if (!strcmp(argv[1], "threads"))
        return bench_mode_threads(argc - 2, argv + 2);
    if (!strcmp(argv[1], "alloc"))
        return bench_mode_alloc(argc - 2, argv + 2);
    if (!strcmp(argv[1], "storm"))
        return bench_mode_storm(argc - 2, argv + 2);
    if (!strcmp(argv[1], "touch-order"))
        return bench_mode_touch_order(argc - 2, argv + 2);
    if (!strcmp(argv[1], "crowd"))
        return bench_mode_crowd(argc - 2, argv + 2);
    return usage();
}
