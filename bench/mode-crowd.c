/*
 * presence-scaling crowd [N]: one channel of N (default 100,000) members,
 * in three shapes of users, each in a fresh single-threaded registry:
 *
 *   distinct  every member its own user
 *   pairs     two members a user (the presence-mix workload's shape)
 *   one user  every member under user "" (a stream's anonymous viewers)
 *
 * A channel's member set keeps up to 8 members of a user side by side and
 * a crowd's others apart (src/containers/memberset.h): each shape must
 * cost about the same. Per shape, ns per call of: join (N new clients),
 * stats, touch (every member), a page walk by 100 (ns per member), leave
 * (every member, by name), and the distinct-user count seen after the
 * joins.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"
#include "bench-modes.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define STATS_CALLS 1000000
#define PAGE 100

typedef struct crowd_result {
    double join, stats, touch, page_member, leave; /* ns */
    size_t users;
} crowd_result;

/* Member i's user in each shape. */
static const char *user_of(int shape, const bench_names *users, uint64_t i)
{
    switch (shape) {
    case 0:
        return bench_name(users, (size_t)i);
    case 1:
        return bench_name(users, (size_t)(i / 2));
    default:
        return "";
    }
}

static void run(uint64_t N, int shape, crowd_result *out)
{
    bench_names clients, users;
    presence_config cfg;
    presence_registry *reg = NULL;
    uint64_t t0;

    bench_names_make(&clients, (size_t)N, "v", 1);
    bench_names_make(&users, (size_t)N, "u", 1);
    bench_config(&cfg, true, 0);
    BENCH_CHECK(presence_registry_new(&cfg, &reg));

    t0 = bench_now_ns();
    for (uint64_t i = 0; i < N; i++)
        BENCH_CHECK(presence_join(reg, "live", bench_name(&clients, i),
                                  user_of(shape, &users, i), NULL, 0, NULL,
                                  0));
    out->join = (double)(bench_now_ns() - t0) / (double)N;

    presence_channel_stats st;
    t0 = bench_now_ns();
    for (int s = 0; s < STATS_CALLS; s++)
        BENCH_CHECK(presence_stats(reg, "live", presence_trusted(), &st));
    out->stats = (double)(bench_now_ns() - t0) / STATS_CALLS;
    out->users = st.num_users;
    if (st.num_clients != N)
        bench_die("crowd: %zu clients of %" PRIu64, st.num_clients, N);

    t0 = bench_now_ns();
    for (uint64_t i = 0; i < N; i++)
        BENCH_CHECK(presence_touch(reg, "live", bench_name(&clients, i)));
    out->touch = (double)(bench_now_ns() - t0) / (double)N;

    uint64_t cursor = 0, walked = 0;
    t0 = bench_now_ns();
    do {
        presence_snapshot *snap = NULL;
        BENCH_CHECK(presence_query_page(reg, "live", presence_trusted(),
                                        cursor, PAGE, &snap));
        walked += snap->count;
        cursor = snap->next_cursor;
        presence_snapshot_free(snap);
    } while (cursor != 0);
    out->page_member = (double)(bench_now_ns() - t0) / (double)N;
    if (walked != N)
        bench_die("crowd: walked %" PRIu64 " of %" PRIu64, walked, N);

    t0 = bench_now_ns();
    for (uint64_t i = 0; i < N; i++)
        BENCH_CHECK(presence_leave(reg, "live", bench_name(&clients, i)));
    out->leave = (double)(bench_now_ns() - t0) / (double)N;

    BENCH_CHECK(presence_registry_free(reg));
    bench_names_free(&clients);
    bench_names_free(&users);
}

int bench_mode_crowd(int argc, char **argv)
{
    uint64_t N = argc > 0 ? bench_parse_u64(argv[0]) : 100000;
    static const char *const shapes[] = {"distinct", "pairs", "one user"};
    printf("One channel of %" PRIu64 " members (ns per call; page: per "
           "member):\n\n",
           N);
    printf("| users | distinct users | join | stats | touch | page | leave |\n");
    printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for (int shape = 0; shape < 3; shape++) {
        crowd_result r;
        run(N, shape, &r);
        printf("| %s | %zu | %.0f | %.0f | %.0f | %.0f | %.0f |\n",
               shapes[shape], r.users, r.join, r.stats, r.touch,
               r.page_member, r.leave);
    }
    return 0;
}
