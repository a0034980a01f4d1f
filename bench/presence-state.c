/*
 * presence-state [C H K I]: warm restart of C*K memberships (default
 * 200,000 * 5 = 1,000,000, the presence-mix names, channels and I = 32
 * bytes of conn_info): presence_registry_save into memory, its size, and
 * presence_registry_load of it into a new registry, which must read the
 * same counts. A tenth of the clients are disconnected into a 30 s leave
 * grace first, so that graces are saved and loaded too.
 *
 * SPDX-License-Identifier: MIT
 */
#include "bench-common.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

struct buffer {
    unsigned char *data;
    size_t len, cap;
};

static int collect(const void *data, size_t len, void *ud)
{
    struct buffer *b = ud;
    if (b->cap - b->len < len) {
        size_t cap = b->cap ? b->cap : 1 << 20;
        while (cap - b->len < len) {
            cap *= 2;
        }
        unsigned char *grown = realloc(b->data, cap);
        if (grown == NULL) {
            return 1;
        }
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void config(presence_config *cfg, uint64_t I)
{
    bench_config(cfg, true, (size_t)I);
}

int main(int argc, char **argv)
{
    bench_params p;
    bench_params_default(&p);
    if (argc > 5) {
        fprintf(stderr, "usage: presence-state [C H K I]\n");
        return 2;
    }
    /* C H K, then I in the place of R. */
    bench_params_parse(&p, argc > 4 ? 3 : argc - 1, argv + 1);
    if (argc > 4) {
        p.I = bench_parse_u64(argv[4]);
    }
    uint64_t M = p.C * p.K, step = p.H / p.K;
    bench_names clients, users, channels;
    bench_infos infos;
    bench_names_make(&clients, (size_t)p.C, "c", 1);
    bench_names_make(&users, (size_t)((p.C + 1) / 2), "u", 1);
    bench_names_make(&channels, (size_t)p.H, "chat:", 1);
    bench_infos_make(&infos, (size_t)p.C, (size_t)p.I, "c");

    presence_config cfg;
    config(&cfg, p.I);
    presence_registry *reg;
    BENCH_CHECK(presence_registry_new(&cfg, &reg));
    presence_namespace_options ns;
    presence_namespace_options_init(&ns);
    ns.leave_grace_ms = 30000;
    BENCH_CHECK(presence_namespace_set(reg, "chat", &ns));
    for (uint64_t i = 0; i < p.C; i++) {
        uint64_t j = bench_channel0(i, p.H);
        for (uint64_t k = 0; k < p.K; k++) {
            BENCH_CHECK(presence_join(reg, bench_name(&channels, j),
                                      bench_name(&clients, i),
                                      bench_name(&users, i / 2),
                                      bench_info(&infos, i), (size_t)p.I, NULL,
                                      0));
            j = bench_channel_next(j, step, p.H);
        }
    }
    for (uint64_t i = 0; i < p.C; i += 10) {
        BENCH_CHECK(presence_disconnect(reg, bench_name(&clients, i), NULL));
    }
    presence_counts before;
    BENCH_CHECK(presence_registry_counts(reg, &before));

    printf("## warm restart: %" PRIu64 " memberships (C=%" PRIu64
           " H=%" PRIu64 " K=%" PRIu64 " I=%" PRIu64
           "), a tenth of the clients in leave grace (libpresence %s)\n\n",
           M, p.C, p.H, p.K, p.I, presence_version());
    printf("| step | ms | ns/membership | bytes | bytes/membership |\n"
           "| --- | ---: | ---: | ---: | ---: |\n");
    struct buffer b = {NULL, 0, 0};
    uint64_t t0 = bench_now_ns();
    BENCH_CHECK(presence_registry_save(reg, collect, &b, NULL));
    uint64_t t1 = bench_now_ns();
    printf("| presence_registry_save (into memory) | %.1f | %.0f | %zu | %.1f "
           "|\n",
           (double)(t1 - t0) / 1e6, (double)(t1 - t0) / (double)M, b.len,
           (double)b.len / (double)M);
    BENCH_CHECK(presence_registry_free(reg));

    presence_registry *back;
    config(&cfg, p.I);
    t0 = bench_now_ns();
    BENCH_CHECK(presence_registry_load(&cfg, b.data, b.len, &back));
    t1 = bench_now_ns();
    printf("| presence_registry_load | %.1f | %.0f | | |\n",
           (double)(t1 - t0) / 1e6, (double)(t1 - t0) / (double)M);
    presence_counts after;
    BENCH_CHECK(presence_registry_counts(back, &after));
    if (memcmp(&before, &after, sizeof before) != 0) {
        bench_die("loaded counts differ from the saved registry's");
    }
    printf("\npeak RSS %ld KiB (two registries never coexist; the saved "
           "bytes and the names are included)\n",
           bench_peak_rss_kb());
    BENCH_CHECK(presence_registry_free(back));
    free(b.data);
    bench_names_free(&clients);
    bench_names_free(&users);
    bench_names_free(&channels);
    bench_infos_free(&infos);
    return 0;
}
