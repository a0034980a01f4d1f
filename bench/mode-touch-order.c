/*
 * presence-scaling touch-order [C H K]: what a renewal by name
 * (presence_touch) costs depending on where a client's memberships lie and
 * in what order they are renewed, in a single-threaded registry of C*K
 * memberships (the presence-mix names and channel formula).
 *
 * Two layouts: "together", each client joining its K channels in a row
 * (a connection subscribing at connect), and "apart", round k joining
 * every client to its k-th channel (each client's memberships far from one
 * another). Three orders for renewing every membership once: client by
 * client (the workload's, and a server's that renews a connection's
 * channels together), clients shuffled with each client's channels
 * together, and every membership shuffled. The best of three passes.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"
#include "bench-modes.h"

#include <inttypes.h>
#include <stdlib.h>

enum { ORDER_CLIENTS, ORDER_CLIENTS_SHUFFLED, ORDER_SHUFFLED, ORDERS };

static const char *const order_names[ORDERS] = {
    "client by client",
    "clients shuffled, a client's channels together",
    "every membership shuffled",
};

static uint64_t next_random(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

/* Fisher-Yates over v[0..n). */
static void shuffle(uint64_t *v, uint64_t n, uint64_t *state) {
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = next_random(state) % i;
        uint64_t t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

/* The memberships i*K + k in the given order. */
static void make_order(uint64_t *order, int which, uint64_t C, uint64_t K) {
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    for (uint64_t x = 0; x < C * K; x++)
        order[x] = x;
    if (which == ORDER_SHUFFLED) {
        shuffle(order, C * K, &state);
    } else if (which == ORDER_CLIENTS_SHUFFLED) {
        uint64_t *clients = malloc((size_t)C * sizeof *clients);
        if (clients == NULL)
            bench_die("out of memory");
        for (uint64_t i = 0; i < C; i++)
            clients[i] = i;
        shuffle(clients, C, &state);
        for (uint64_t i = 0; i < C; i++)
            for (uint64_t k = 0; k < K; k++)
                order[i * K + k] = clients[i] * K + k;
        free(clients);
    }
}

int bench_mode_touch_order(int argc, char **argv) {
    bench_params p;
    bench_names clients, users, channels;
    presence_config cfg;
    presence_namespace_options ns;

    bench_params_default(&p);
    if (argc > 3) {
        fprintf(stderr, "usage: presence-scaling touch-order [C H K]\n");
        return 2;
    }
    bench_params_parse(&p, argc, argv);
    const uint64_t C = p.C, H = p.H, K = p.K, M = C * K, step = H / K;
    bench_names_make(&clients, (size_t)C, "c", 1);
    bench_names_make(&users, (size_t)((C + 1) / 2), "u", 1);
    bench_names_make(&channels, (size_t)H, "chat:", 1);
    /* channel[i*K + k]: client i's k-th channel */
    uint64_t *channel = malloc((size_t)M * sizeof *channel);
    uint64_t *order = malloc((size_t)M * sizeof *order);
    if (channel == NULL || order == NULL)
        bench_die("out of memory");
    for (uint64_t i = 0; i < C; i++) {
        uint64_t j = bench_channel0(i, H);
        for (uint64_t k = 0; k < K; k++) {
            channel[i * K + k] = j;
            j = bench_channel_next(j, step, H);
        }
    }

    printf("## touch-order: presence_touch of %" PRIu64
           " memberships (C=%" PRIu64 " H=%" PRIu64 " K=%" PRIu64
           "), single-threaded (libpresence %s)\n\n",
           M, C, H, K, presence_version());
    printf("| memberships made | renewed | ns/op |\n| --- | --- | ---: |\n");
    for (int apart = 0; apart < 2; apart++) {
        presence_registry *reg = NULL;
        bench_config(&cfg, true, 0);
        BENCH_CHECK(presence_registry_new(&cfg, &reg));
        presence_namespace_options_init(&ns);
        BENCH_CHECK(presence_namespace_set(reg, "chat", &ns));
        for (uint64_t a = 0; a < (apart ? K : C); a++) {
            for (uint64_t b = 0; b < (apart ? C : K); b++) {
                uint64_t i = apart ? b : a, k = apart ? a : b;
                BENCH_CHECK(presence_join(
                    reg, bench_name(&channels, channel[i * K + k]),
                    bench_name(&clients, i), bench_name(&users, i / 2), NULL,
                    0, NULL, 0));
            }
        }
        for (int which = 0; which < ORDERS; which++) {
            make_order(order, which, C, K);
            uint64_t best = UINT64_MAX;
            for (int pass = 0; pass < 3; pass++) {
                uint64_t t0 = bench_now_ns();
                for (uint64_t x = 0; x < M; x++) {
                    uint64_t i = order[x] / K;
                    BENCH_CHECK(presence_touch(
                        reg, bench_name(&channels, channel[order[x]]),
                        bench_name(&clients, i)));
                }
                uint64_t ns_used = bench_now_ns() - t0;
                best = ns_used < best ? ns_used : best;
            }
            printf("| %s | %s | %.1f |\n",
                   apart ? "apart (round by round)" : "together (client by client)",
                   order_names[which], (double)best / (double)M);
        }
        BENCH_CHECK(presence_registry_free(reg));
    }
    free(order);
    free(channel);
    bench_names_free(&clients);
    bench_names_free(&users);
    bench_names_free(&channels);
    return 0;
}
