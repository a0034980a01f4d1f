/*
 * presence-scaling alloc [C H K R I]: the presence-mix workload with a
 * counting allocator installed through presence_config::allocator:
 * allocations per operation of each phase, and the peak of the bytes the
 * library asked for per membership (what malloc was asked for, without
 * malloc's own overhead; compare with the RSS figures).
 *
 * Then a steady-state probe: C clients, each already in one channel, join
 * a second existing channel (pass 1), leave it, and join it again
 * (pass 2): allocations per join when client, user and channel exist.
 *
 * Times here include the counting allocator; use presence-bench for rates.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"
#include "bench-modes.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct counts {
    uint64_t mallocs, reallocs, frees;
    uint64_t live, peak;
} counts;

/* Every block carries its size in a 16-byte header, so that frees are
 * counted right even when the library passes size 0. */
#define HDR 16

static void *count_malloc(size_t size, void *ud) {
    counts *c = ud;
    unsigned char *p = malloc(size + HDR);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof size);
    c->mallocs++;
    c->live += size;
    if (c->live > c->peak)
        c->peak = c->live;
    return p + HDR;
}

static void *count_realloc(void *ptr, size_t old_size, size_t new_size,
                           void *ud) {
    counts *c = ud;
    unsigned char *p = ptr ? (unsigned char *)ptr - HDR : NULL;
    size_t was = 0;
    (void)old_size;
    if (p)
        memcpy(&was, p, sizeof was);
    p = realloc(p, new_size + HDR);
    if (!p)
        return NULL;
    memcpy(p, &new_size, sizeof new_size);
    c->reallocs++;
    c->live += new_size;
    c->live -= was;
    if (c->live > c->peak)
        c->peak = c->live;
    return p + HDR;
}

static void count_free(void *ptr, size_t size, void *ud) {
    counts *c = ud;
    unsigned char *p;
    size_t was;
    (void)size;
    if (!ptr)
        return;
    p = (unsigned char *)ptr - HDR;
    memcpy(&was, p, sizeof was);
    c->frees++;
    c->live -= was;
    free(p);
}

typedef struct phase_ctx {
    counts *c;
    counts at_begin[BENCH_PHASES];
    counts delta[BENCH_PHASES];
} phase_ctx;

static void on_phase(int phase, bool begin, void *ctx) {
    phase_ctx *pc = ctx;
    if (begin) {
        pc->at_begin[phase] = *pc->c;
    } else {
        counts *d = &pc->delta[phase];
        const counts *b = &pc->at_begin[phase];
        d->mallocs = pc->c->mallocs - b->mallocs;
        d->reallocs = pc->c->reallocs - b->reallocs;
        d->frees = pc->c->frees - b->frees;
        d->peak = pc->c->peak;
        d->live = pc->c->live;
    }
}

static double per(uint64_t n, uint64_t ops) {
    return ops ? (double)n / (double)ops : 0.0;
}

static void steady_state(uint64_t C, uint64_t H) {
    counts c = {0};
    presence_allocator a = {count_malloc, count_realloc, count_free, &c};
    presence_config cfg;
    presence_namespace_options ns;
    presence_registry *reg = NULL;
    bench_names clients, users, channels;
    bench_infos infos;
    counts before;

    bench_names_make(&clients, (size_t)C, "c", 1);
    bench_names_make(&users, (size_t)((C + 1) / 2), "u", 1);
    bench_names_make(&channels, (size_t)H, "chat:", 1);
    bench_infos_make(&infos, (size_t)C, 32, "c");
    bench_config(&cfg, true, 32);
    cfg.allocator = a;
    BENCH_CHECK(presence_registry_new(&cfg, &reg));
    presence_namespace_options_init(&ns);
    BENCH_CHECK(presence_namespace_set(reg, "chat", &ns));

#define JOIN(i, j)                                                             \
    BENCH_CHECK(presence_join(reg, bench_name(&channels, (j)),                 \
                              bench_name(&clients, (i)),                      \
                              bench_name(&users, (i) / 2),                    \
                              bench_info(&infos, (i)), 32, NULL, 0))
    for (uint64_t i = 0; i < C; i++)
        JOIN(i, i % H);
    before = c;
    for (uint64_t i = 0; i < C; i++)
        JOIN(i, (i + 1) % H);
    printf("| join, client and channel exist (pass 1) | %.3f | %.3f |\n",
           per(c.mallocs - before.mallocs, C),
           per(c.reallocs - before.reallocs, C));
    for (uint64_t i = 0; i < C; i++)
        BENCH_CHECK(presence_leave(reg, bench_name(&channels, (i + 1) % H),
                                   bench_name(&clients, i)));
    before = c;
    for (uint64_t i = 0; i < C; i++)
        JOIN(i, (i + 1) % H);
    printf("| join, client and channel exist (pass 2, tables sized) | %.3f | "
           "%.3f |\n",
           per(c.mallocs - before.mallocs, C),
           per(c.reallocs - before.reallocs, C));
    before = c;
    for (uint64_t i = 0; i < C; i++)
        JOIN(i, (i + 1) % H);
    printf("| join again (an upsert: already a member) | %.3f | %.3f |\n",
           per(c.mallocs - before.mallocs, C),
           per(c.reallocs - before.reallocs, C));
#undef JOIN
    BENCH_CHECK(presence_registry_free(reg));
    if (c.live != 0)
        printf("\n%" PRIu64 " bytes still allocated after "
               "presence_registry_free\n",
               c.live);
    bench_names_free(&clients);
    bench_names_free(&users);
    bench_names_free(&channels);
    bench_infos_free(&infos);
}

int bench_mode_alloc(int argc, char **argv) {
    bench_params p;
    counts c = {0};
    presence_allocator a = {count_malloc, count_realloc, count_free, &c};
    phase_ctx pc;
    bench_hooks hooks = {&a, on_phase, &pc};
    bench_result r;
    uint64_t M;

    bench_params_default(&p);
    bench_params_parse(&p, argc, argv);
    M = p.C * p.K;
    memset(&pc, 0, sizeof pc);
    pc.c = &c;
    bench_workload_run(&p, &hooks, &r);

    printf("## alloc: presence-mix C=%" PRIu64 " H=%" PRIu64 " K=%" PRIu64
           " R=%" PRIu64 " I=%" PRIu64 " with a counting allocator "
           "(libpresence %s)\n\n",
           p.C, p.H, p.K, p.R, p.I, presence_version());
    printf("| phase | ops | mallocs/op | reallocs/op | frees/op |\n");
    printf("| --- | ---: | ---: | ---: | ---: |\n");
    for (int ph = 0; ph < BENCH_PHASES; ph++)
        printf("| %s | %" PRIu64 " | %.3f | %.3f | %.3f |\n",
               bench_phase_names[ph], r.ops[ph],
               per(pc.delta[ph].mallocs, r.ops[ph]),
               per(pc.delta[ph].reallocs, r.ops[ph]),
               per(pc.delta[ph].frees, r.ops[ph]));
    printf("\nPeak bytes asked of the allocator: %" PRIu64
           " (%.1f B/membership; without malloc's per-block overhead, "
           "about 8-16 B a block with glibc). Live after the join phase: "
           "%" PRIu64 " bytes in %" PRIu64 " blocks (%.2f blocks/membership)."
           "\n\n",
           c.peak, per(c.peak, M), pc.delta[BENCH_JOIN].live,
           pc.delta[BENCH_JOIN].mallocs - pc.delta[BENCH_JOIN].frees,
           per(pc.delta[BENCH_JOIN].mallocs - pc.delta[BENCH_JOIN].frees,
               M));
    if (c.live != 0)
        printf("%" PRIu64 " bytes still allocated after "
               "presence_registry_free\n\n",
               c.live);

    printf("Steady state, %" PRIu64 " clients over %" PRIu64
           " channels:\n\n",
           p.C, p.H);
    printf("| joins | mallocs/join | reallocs/join |\n");
    printf("| --- | ---: | ---: |\n");
    steady_state(p.C, p.H);
    return 0;
}
