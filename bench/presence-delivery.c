/*
 * presence-delivery [S W]: event delivery under sustained load with
 * subscription churn, for S seconds (default 60) with W writer threads
 * (default 2).
 *
 * Each writer joins and leaves clients of its own channel in a loop, so
 * that every call makes one event; a churn thread subscribes a callback
 * to every channel and unsubscribes it again, as fast as it can (at most
 * one such subscription at a time); a counting subscriber, there all
 * along, sees every event and how late it came (the registry's clock, in
 * ms). Events are delivered by the threads that make them, as the library
 * does. Every 10 s, and at the end, a row: events produced and delivered
 * so far, the backlog, subscribe/unsubscribe pairs, the registry's live
 * heap and the worst lateness of the last 10 s. Once the writers stop,
 * the time until the backlog is delivered.
 *
 * Only the public API is used, so the same file builds against any
 * version of the library (for a before/after comparison).
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_WRITERS 8
#define CLIENTS_PER_WRITER 64
#define ROW_SECONDS 10

static atomic_bool stop;
static atomic_uint_fast64_t produced, delivered, pairs;
static atomic_int_fast64_t worst_lag_ms; /* since the last row */
static atomic_int_fast64_t heap_bytes, heap_peak;
static presence_registry *reg;

/* ---- a counting allocator ---------------------------------------------- */

static void heap_add(int64_t delta) {
    int64_t now = atomic_fetch_add(&heap_bytes, delta) + delta;
    int64_t peak = atomic_load(&heap_peak);
    while (now > peak && !atomic_compare_exchange_weak(&heap_peak, &peak, now))
        ;
}

static void *count_malloc(size_t size, void *ud) {
    (void)ud;
    void *p = malloc(size);
    if (p != NULL)
        heap_add((int64_t)size);
    return p;
}

static void *count_realloc(void *ptr, size_t old_size, size_t new_size,
                           void *ud) {
    (void)ud;
    void *p = realloc(ptr, new_size);
    if (p != NULL)
        heap_add((int64_t)new_size - (int64_t)old_size);
    return p;
}

static void count_free(void *ptr, size_t size, void *ud) {
    (void)ud;
    if (ptr != NULL)
        heap_add(-(int64_t)size);
    free(ptr);
}

/* ---- the threads ---------------------------------------------------------- */

static void on_event(presence_registry *r, const presence_event *ev,
                     void *ud) {
    (void)ud;
    int64_t lag = presence_now_ms(r) - ev->time_ms;
    int64_t worst = atomic_load(&worst_lag_ms);
    while (lag > worst &&
           !atomic_compare_exchange_weak(&worst_lag_ms, &worst, lag))
        ;
    atomic_fetch_add(&delivered, 1);
}

static void on_event_ignored(presence_registry *r, const presence_event *ev,
                             void *ud) {
    (void)r;
    (void)ev;
    (void)ud;
}

static void *writer(void *arg) {
    int t = (int)(intptr_t)arg;
    char channel[32], user[32], clients[CLIENTS_PER_WRITER][32];
    snprintf(channel, sizeof channel, "dl:w%d", t);
    snprintf(user, sizeof user, "u%d", t);
    for (int i = 0; i < CLIENTS_PER_WRITER; i++)
        snprintf(clients[i], sizeof clients[i], "w%dc%d", t, i);
    for (uint64_t i = 0; !atomic_load(&stop); i++) {
        const char *c = clients[i % CLIENTS_PER_WRITER];
        BENCH_CHECK(presence_join(reg, channel, c, user, NULL, 0, NULL, 0));
        BENCH_CHECK(presence_leave(reg, channel, c));
        atomic_fetch_add(&produced, 2);
    }
    return NULL;
}

static void *churn(void *arg) {
    (void)arg;
    while (!atomic_load(&stop)) {
        presence_subscription sub;
        BENCH_CHECK(presence_subscribe(reg, PRESENCE_SCOPE_ALL, NULL,
                                       PRESENCE_EVENT_JOIN |
                                           PRESENCE_EVENT_LEAVE,
                                       on_event_ignored, NULL, &sub));
        BENCH_CHECK(presence_unsubscribe(reg, sub));
        atomic_fetch_add(&pairs, 1);
    }
    return NULL;
}

static void row(double secs) {
    uint64_t p = atomic_load(&produced), d = atomic_load(&delivered);
    printf("| %.0f | %" PRIu64 " | %" PRIu64 " | %" PRIu64 " | %" PRIu64
           " | %.1f | %" PRIdFAST64 " |\n",
           secs, p, d, p > d ? p - d : 0, (uint64_t)atomic_load(&pairs),
           (double)atomic_load(&heap_bytes) / 1024.0,
           atomic_exchange(&worst_lag_ms, 0));
    fflush(stdout);
}

int main(int argc, char **argv) {
    uint64_t seconds = 60, writers = 2;
    if (argc > 3) {
        fprintf(stderr, "usage: presence-delivery [S W]\n");
        return 2;
    }
    if (argc > 1)
        seconds = bench_parse_u64(argv[1]);
    if (argc > 2)
        writers = bench_parse_u64(argv[2]);
    if (seconds == 0 || writers == 0 || writers > MAX_WRITERS)
        bench_die("S must be positive and W in 1..%d", MAX_WRITERS);

    presence_config cfg;
    presence_config_init(&cfg);
    cfg.allocator.malloc_fn = count_malloc;
    cfg.allocator.realloc_fn = count_realloc;
    cfg.allocator.free_fn = count_free;
    BENCH_CHECK(presence_registry_new(&cfg, &reg));
    presence_namespace_options ns;
    presence_namespace_options_init(&ns);
    BENCH_CHECK(presence_namespace_set(reg, "dl", &ns));
    presence_subscription counter;
    BENCH_CHECK(presence_subscribe(reg, PRESENCE_SCOPE_ALL, NULL,
                                   PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE,
                                   on_event, NULL, &counter));

    printf("## delivery: %" PRIu64 " writers joining and leaving, one thread "
           "subscribing and unsubscribing, %" PRIu64 " s (libpresence %s)\n\n",
           writers, seconds, presence_version());
    printf("| s | events produced | delivered | backlog | subscribe/"
           "unsubscribe pairs | registry heap KiB | worst lateness ms |\n");
    printf("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");

    pthread_t w[MAX_WRITERS], c;
    uint64_t t0 = bench_now_ns();
    for (uint64_t t = 0; t < writers; t++)
        if (pthread_create(&w[t], NULL, writer, (void *)(intptr_t)t) != 0)
            bench_die("pthread_create failed");
    if (pthread_create(&c, NULL, churn, NULL) != 0)
        bench_die("pthread_create failed");
    for (uint64_t s = ROW_SECONDS; s <= seconds; s += ROW_SECONDS) {
        uint64_t until = t0 + s * 1000000000ull;
        for (uint64_t now; (now = bench_now_ns()) < until;) {
            struct timespec ts = {.tv_sec = 0, .tv_nsec = 10000000};
            nanosleep(&ts, NULL);
        }
        row((double)s);
    }
    atomic_store(&stop, true);
    uint64_t t_stop = bench_now_ns();
    pthread_join(c, NULL);
    for (uint64_t t = 0; t < writers; t++)
        pthread_join(w[t], NULL); /* a writer that delivers returns drained */
    uint64_t t_drained = bench_now_ns();
    row((double)(t_drained - t0) / 1e9);
    uint64_t p = atomic_load(&produced), d = atomic_load(&delivered);
    printf("\nAfter the writers stopped, the backlog was delivered in %.3f s "
           "(%" PRIu64 " of %" PRIu64 " events delivered). Peak registry heap: "
           "%.1f KiB; peak RSS %ld KiB.\n",
           (double)(t_drained - t_stop) / 1e9, d, p,
           (double)atomic_load(&heap_peak) / 1024.0, bench_peak_rss_kb());
    BENCH_CHECK(presence_unsubscribe(reg, counter));
    BENCH_CHECK(presence_registry_free(reg));
    return d == p ? 0 : 1;
}
