/*
 * presence-reconnect [N S K]: a reconnect storm, with and without leave
 * grace. N clients (default 10,000), each its own user, in channels of S
 * members (default 100), each client in K of them (default 1); every
 * client's connection drops and it reconnects and joins its channels
 * again 2 s later (on a fake clock), as a server sees when a load
 * balancer restarts. Counted: the events the library produces, and the
 * pushes a server would send for them (each join or leave event goes to
 * every subscriber of its channel, here every member: the event's
 * num_clients), up to the end of every grace.
 *
 *   no grace       the reconnect is a new client id: a leave and a join
 *   grace, new id  leave_grace_ms 5 s with grace_same_user: the new
 *                  connection takes the old one's place (Centrifugo's case)
 *   grace, same id leave_grace_ms 5 s: a handle reopened with its id
 *   grace, 10 % gone  as "new id", but one client in ten never returns:
 *                  its leaves come when the grace ends
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define GRACE_MS 5000
#define AWAY_MS 2000

static int64_t fake_clock(void *ud)
{
    return *(const int64_t *)ud;
}

struct counter {
    uint64_t events;
    uint64_t pushes;
};

static void count_cb(presence_registry *reg, const presence_event *e,
                     void *ud)
{
    (void)reg;
    struct counter *c = ud;
    c->events++;
    if (e->kind == PRESENCE_EVENT_JOIN || e->kind == PRESENCE_EVENT_LEAVE) {
        c->pushes += e->stats.num_clients;
    }
}

enum scenario { NO_GRACE, GRACE_NEW_ID, GRACE_SAME_ID, GRACE_SOME_GONE };

static const char *const scenario_names[] = {
    "no grace", "grace 5 s, new client id", "grace 5 s, same client id",
    "grace 5 s, 10 % never return",
};

struct storm {
    uint64_t n, s, k;
    presence_client **handles;
    char **channel_names;
};

static presence_client *open_client(presence_registry *reg, uint64_t i,
                                    unsigned generation)
{
    char id[32], user[32];
    snprintf(id, sizeof id, "c%" PRIu64 "-%u", i, generation);
    snprintf(user, sizeof user, "u%" PRIu64, i);
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = id;
    o.user_id = user;
    presence_client *h = NULL;
    BENCH_CHECK(presence_client_open(reg, &o, &h));
    return h;
}

/* Client i's j-th channel: S consecutive clients make a group, and the
 * group's K channels hold exactly them. */
static const char *channel_of(const struct storm *st, uint64_t i, uint64_t j)
{
    return st->channel_names[i / st->s * st->k + j];
}

static void join_all(presence_registry *reg, struct storm *st, uint64_t i)
{
    for (uint64_t j = 0; j < st->k; j++) {
        BENCH_CHECK(presence_client_join(reg, st->handles[i],
                                         channel_of(st, i, j), NULL, 0, NULL));
    }
}

static void run(struct storm *st, enum scenario sc)
{
    int64_t now = 1000000;
    presence_config cfg;
    presence_config_init(&cfg);
    cfg.single_threaded = true;
    cfg.clock = fake_clock;
    cfg.clock_user_data = &now;
    cfg.limits.channels_per_client_max = 0;
    presence_registry *reg;
    BENCH_CHECK(presence_registry_new(&cfg, &reg));
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.leave_grace_ms = sc == NO_GRACE ? 0 : GRACE_MS;
    o.grace_same_user = sc != GRACE_SAME_ID;
    BENCH_CHECK(presence_namespace_set(reg, "room", &o));
    for (uint64_t i = 0; i < st->n; i++) {
        st->handles[i] = open_client(reg, i, 0);
        join_all(reg, st, i);
    }
    struct counter c = {0, 0};
    presence_subscription sub;
    BENCH_CHECK(presence_subscribe(reg, PRESENCE_SCOPE_ALL, NULL,
                                   PRESENCE_EVENTS_ALL, count_cb, &c, &sub));

    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < st->n; i++) {
        BENCH_CHECK(presence_client_close(reg, st->handles[i], NULL));
    }
    uint64_t t1 = bench_now_ns();
    now += AWAY_MS;
    BENCH_CHECK(presence_expire(reg, now, NULL, NULL));
    uint64_t back = 0;
    for (uint64_t i = 0; i < st->n; i++) {
        if (sc == GRACE_SOME_GONE && i % 10 == 0) {
            continue;
        }
        st->handles[i] = open_client(reg, i, sc == GRACE_SAME_ID ? 0 : 1);
        join_all(reg, st, i);
        back++;
    }
    uint64_t t2 = bench_now_ns();
    now += GRACE_MS;
    size_t expired = 0;
    BENCH_CHECK(presence_expire(reg, now, &expired, NULL));
    presence_counts counts;
    BENCH_CHECK(presence_registry_counts(reg, &counts));
    if (counts.memberships != back * st->k) {
        bench_die("%s: %zu memberships after the storm, expected %" PRIu64,
                  scenario_names[sc], counts.memberships, back * st->k);
    }
    printf("| %s | %" PRIu64 " | %" PRIu64 " | %zu | %.0f | %.0f |\n",
           scenario_names[sc], c.events, c.pushes, expired,
           (double)(t1 - t0) / (double)st->n,
           back ? (double)(t2 - t1) / (double)back : 0.0);
    for (uint64_t i = 0; i < st->n; i++) {
        if (sc != GRACE_SOME_GONE || i % 10 != 0) {
            BENCH_CHECK(presence_client_close(reg, st->handles[i], NULL));
        }
    }
    BENCH_CHECK(presence_registry_free(reg));
}

int main(int argc, char **argv)
{
    struct storm st = {10000, 100, 1, NULL, NULL};
    if (argc > 4) {
        fprintf(stderr, "usage: presence-reconnect [N S K]\n");
        return 2;
    }
    if (argc > 1) {
        st.n = bench_parse_u64(argv[1]);
    }
    if (argc > 2) {
        st.s = bench_parse_u64(argv[2]);
    }
    if (argc > 3) {
        st.k = bench_parse_u64(argv[3]);
    }
    if (st.n == 0 || st.s == 0 || st.k == 0 || st.s > st.n ||
        st.n % st.s != 0) {
        bench_die("need 0 < S <= N, S dividing N, and K > 0");
    }
    uint64_t channels = st.n * st.k / st.s;
    st.handles = calloc(st.n, sizeof *st.handles);
    st.channel_names = calloc(channels, sizeof *st.channel_names);
    if (st.handles == NULL || st.channel_names == NULL) {
        bench_die("out of memory");
    }
    for (uint64_t h = 0; h < channels; h++) {
        st.channel_names[h] = malloc(32);
        if (st.channel_names[h] == NULL) {
            bench_die("out of memory");
        }
        snprintf(st.channel_names[h], 32, "room:%" PRIu64, h);
    }
    printf("# libpresence %s: %" PRIu64 " clients (one user each) in %" PRIu64
           " channels of %" PRIu64 ", %" PRIu64
           " channel(s) each; all drop, and reconnect %d ms later\n",
           presence_version(), st.n, channels, st.s, st.k, AWAY_MS);
    printf("| scenario | events | pushes | leaves at grace end | close ns/client "
           "| reconnect+join ns/client |\n|---|---|---|---|---|---|\n");
    for (int sc = NO_GRACE; sc <= GRACE_SOME_GONE; sc++) {
        run(&st, (enum scenario)sc);
    }
    for (uint64_t h = 0; h < channels; h++) {
        free(st.channel_names[h]);
    }
    free(st.channel_names);
    free(st.handles);
    return 0;
}
