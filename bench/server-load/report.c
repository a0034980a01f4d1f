/*
 * SPDX-License-Identifier: MIT
 */
#include "report.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum kind { U64, DBL, LL } kind;
typedef enum merge { SUM, MAX, FIRST } merge;

typedef struct field {
    const char *name;
    size_t offset;
    kind type;
    merge how;
} field;

#define F(name, type, how) {#name, offsetof(lg_stats, name), type, how}
#define FK(key, member, type, how) {key, offsetof(lg_stats, member), type, how}
static const field fields[] = {
    F(ramp_ready, U64, SUM),
    F(ramp_s, DBL, MAX),
    FK("ramp_fail_connect", ramp_fail[LG_FAIL_CONNECT], U64, SUM),
    FK("ramp_fail_handshake", ramp_fail[LG_FAIL_HANDSHAKE], U64, SUM),
    FK("ramp_fail_refused", ramp_fail[LG_FAIL_REFUSED], U64, SUM),
    FK("ramp_fail_closed", ramp_fail[LG_FAIL_CLOSED], U64, SUM),
    FK("ramp_fail_timeout", ramp_fail[LG_FAIL_TIMEOUT], U64, SUM),
    FK("churn_fail_connect", churn_fail[LG_FAIL_CONNECT], U64, SUM),
    FK("churn_fail_handshake", churn_fail[LG_FAIL_HANDSHAKE], U64, SUM),
    FK("churn_fail_refused", churn_fail[LG_FAIL_REFUSED], U64, SUM),
    FK("churn_fail_closed", churn_fail[LG_FAIL_CLOSED], U64, SUM),
    FK("churn_fail_timeout", churn_fail[LG_FAIL_TIMEOUT], U64, SUM),
    F(abandoned, U64, SUM),
    F(churn_clean, U64, SUM),
    F(churn_drop, U64, SUM),
    F(churn_reopened, U64, SUM),
    F(server_closes, U64, SUM),
    F(calls_sent, U64, SUM),
    F(calls_answered, U64, SUM),
    F(call_errors, U64, SUM),
    F(pushes, U64, SUM),
    F(pushes_ignored, U64, SUM),
    F(expected, U64, SUM),
    F(lost, U64, SUM),
    F(dup, U64, SUM),
    F(unexpected, U64, SUM),
    F(bad_messages, U64, SUM),
    F(groups_checked, U64, SUM),
    F(lobbies_checked, U64, SUM),
    F(ghosts, U64, SUM),
    F(missing, U64, SUM),
    F(probe_channels, U64, SUM),
    F(probe_nonzero, U64, SUM),
    F(probe_failed, U64, SUM),
    F(rss_before_kb, LL, FIRST),
    F(rss_plateau_kb, LL, FIRST),
    F(rss_after_kb, LL, FIRST),
    F(threads_plateau, LL, FIRST),
    FK("ramp_cpu_server_s", ramp_cpu.server_s, DBL, FIRST),
    FK("ramp_cpu_gen_s", ramp_cpu.gen_s, DBL, SUM),
    FK("ramp_cpu_wall_s", ramp_cpu.wall_s, DBL, MAX),
    FK("churn_cpu_server_s", churn_cpu.server_s, DBL, FIRST),
    FK("churn_cpu_gen_s", churn_cpu.gen_s, DBL, SUM),
    FK("churn_cpu_wall_s", churn_cpu.wall_s, DBL, MAX),
    FK("total_cpu_server_s", total_cpu.server_s, DBL, FIRST),
    FK("total_cpu_gen_s", total_cpu.gen_s, DBL, SUM),
    FK("total_cpu_wall_s", total_cpu.wall_s, DBL, MAX),
};
#undef F
#undef FK

typedef struct hist_field {
    const char *name;
    size_t offset;
} hist_field;

static const hist_field hists[] = {
    {"presence", offsetof(lg_stats, presence)},
    {"presence_stats", offsetof(lg_stats, presence_stats)},
    {"presence_arrival", offsetof(lg_stats, presence_arrival)},
    {"presence_stats_arrival", offsetof(lg_stats, presence_stats_arrival)},
    {"join_delay", offsetof(lg_stats, join_delay)},
    {"join_delay_arrival", offsetof(lg_stats, join_delay_arrival)},
    {"connect", offsetof(lg_stats, connect)},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void print_ms(FILE *out, const char *name, const lg_hist *h)
{
    fprintf(out, "derived.%s_p50_ms %.3f\n", name, (double)lg_hist_quantile(h, 0.50) / 1000.0);
    fprintf(out, "derived.%s_p99_ms %.3f\n", name, (double)lg_hist_quantile(h, 0.99) / 1000.0);
    fprintf(out, "derived.%s_max_ms %.3f\n", name, (double)h->max_us / 1000.0);
    fprintf(out, "derived.%s_count %llu\n", name, (unsigned long long)h->count);
}

void lg_report_print(FILE *out, const char *proto, uint32_t n, uint64_t count,
                     const lg_stats *st)
{
    fprintf(out, "proto %s\nn %u\nconnections %llu\n", proto, n, (unsigned long long)count);
    const char *base = (const char *)st;
    for (size_t i = 0; i < COUNT(fields); i++) {
        const void *p = base + fields[i].offset;
        switch (fields[i].type) {
        case U64:
            fprintf(out, "%s %llu\n", fields[i].name, (unsigned long long)*(const uint64_t *)p);
            break;
        case DBL:
            fprintf(out, "%s %.6f\n", fields[i].name, *(const double *)p);
            break;
        case LL:
            fprintf(out, "%s %lld\n", fields[i].name, *(const long long *)p);
            break;
        }
    }
    for (size_t i = 0; i < COUNT(hists); i++) {
        lg_hist_print(out, hists[i].name, (const lg_hist *)(const void *)(base + hists[i].offset));
    }
    uint64_t fails = 0;
    uint64_t refused = 0;
    for (int k = 0; k < LG_FAIL_KINDS; k++) {
        fails += st->ramp_fail[k];
        refused += st->churn_fail[k];
    }
    fprintf(out, "derived.ramp_per_s %.1f\n", st->ramp_s > 0 ? (double)st->ramp_ready / st->ramp_s : 0.0);
    fprintf(out, "derived.ramp_failures %llu\n", (unsigned long long)fails);
    fprintf(out, "derived.churn_failures %llu\n", (unsigned long long)refused);
    double per_conn = count > 0 && st->rss_plateau_kb >= 0 && st->rss_before_kb >= 0
                          ? (double)(st->rss_plateau_kb - st->rss_before_kb) * 1024.0 / (double)count
                          : -1;
    fprintf(out, "derived.bytes_per_conn %.0f\n", per_conn);
    double growth = (double)(st->rss_plateau_kb - st->rss_before_kb);
    double left = (double)(st->rss_after_kb - st->rss_before_kb);
    fprintf(out, "derived.rss_after_vs_growth %.3f\n", growth > 0 ? left / growth : 0.0);
    print_ms(out, "presence", &st->presence);
    print_ms(out, "presence_stats", &st->presence_stats);
    print_ms(out, "presence_arrival", &st->presence_arrival);
    print_ms(out, "presence_stats_arrival", &st->presence_stats_arrival);
    print_ms(out, "join_delay", &st->join_delay);
    print_ms(out, "join_delay_arrival", &st->join_delay_arrival);
    print_ms(out, "connect", &st->connect);
}

static const field *find_field(const char *name)
{
    for (size_t i = 0; i < COUNT(fields); i++) {
        if (strcmp(fields[i].name, name) == 0) {
            return &fields[i];
        }
    }
    return NULL;
}

static void merge_field(const field *f, char *base, const char *value, bool first)
{
    void *p = base + f->offset;
    switch (f->type) {
    case U64: {
        uint64_t v = strtoull(value, NULL, 10);
        uint64_t *to = p;
        *to = f->how == SUM ? *to + v : (f->how == MAX ? (v > *to ? v : *to) : (first ? v : *to));
        break;
    }
    case DBL: {
        double v = strtod(value, NULL);
        double *to = p;
        *to = f->how == SUM ? *to + v : (f->how == MAX ? (v > *to ? v : *to) : (first ? v : *to));
        break;
    }
    case LL: {
        long long v = strtoll(value, NULL, 10);
        long long *to = p;
        *to = f->how == SUM ? *to + v : (f->how == MAX ? (v > *to ? v : *to) : (first ? v : *to));
        break;
    }
    }
}

bool lg_report_merge(FILE *in, lg_stats *st, uint64_t *count, bool first,
                     char *proto, size_t proto_cap, uint32_t *n)
{
    static char line[65536];
    bool seen = false;
    while (fgets(line, sizeof line, in) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *space = strchr(line, ' ');
        if (space == NULL) {
            continue;
        }
        *space = '\0';
        const char *value = space + 1;
        if (strcmp(line, "proto") == 0) {
            snprintf(proto, proto_cap, "%s", value);
            seen = true;
        } else if (strcmp(line, "n") == 0) {
            *n = (uint32_t)strtoul(value, NULL, 10);
        } else if (strcmp(line, "connections") == 0) {
            *count += strtoull(value, NULL, 10);
        } else if (strcmp(line, "hist") == 0) {
            char *name_end = strchr(value, ' ');
            if (name_end == NULL) {
                return false;
            }
            *name_end = '\0';
            for (size_t i = 0; i < COUNT(hists); i++) {
                if (strcmp(hists[i].name, value) == 0) {
                    lg_hist h;
                    memset(&h, 0, sizeof h);
                    if (!lg_hist_parse(&h, name_end + 1)) {
                        return false;
                    }
                    lg_hist_merge((lg_hist *)(void *)((char *)st + hists[i].offset), &h);
                }
            }
        } else {
            const field *f = find_field(line);
            if (f != NULL) {
                merge_field(f, (char *)st, value, first);
            }
        }
    }
    return seen;
}
