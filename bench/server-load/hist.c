/*
 * SPDX-License-Identifier: MIT
 */
#include "hist.h"

#include <stdbool.h>
#include <stdlib.h>

/* Values below 64 have a bucket each; above, 32 buckets per power of two. */
static unsigned bucket_of(uint64_t v)
{
    if (v < 64) {
        return (unsigned)v;
    }
    if (v > UINT32_MAX) {
        v = UINT32_MAX;
    }
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    return 64u + (msb - 6u) * 32u + (unsigned)((v >> (msb - 5u)) & 31u);
}

static uint64_t bucket_high(unsigned index)
{
    if (index < 64) {
        return index;
    }
    unsigned msb = 6u + (index - 64u) / 32u;
    uint64_t sub = (index - 64u) % 32u;
    uint64_t low = (32u + sub) << (msb - 5u);
    return low + ((uint64_t)1 << (msb - 5u)) - 1u;
}

void lg_hist_add(lg_hist *h, int64_t us)
{
    uint64_t v = us > 0 ? (uint64_t)us : 0;
    h->bucket[bucket_of(v)]++;
    h->count++;
    if (v > h->max_us) {
        h->max_us = v;
    }
}

uint64_t lg_hist_quantile(const lg_hist *h, double q)
{
    if (h->count == 0) {
        return 0;
    }
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t v = bucket_high(i);
            return v < h->max_us ? v : h->max_us;
        }
    }
    return h->max_us;
}

void lg_hist_merge(lg_hist *to, const lg_hist *from)
{
    to->count += from->count;
    if (from->max_us > to->max_us) {
        to->max_us = from->max_us;
    }
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
        to->bucket[i] += from->bucket[i];
    }
}

void lg_hist_print(FILE *out, const char *name, const lg_hist *h)
{
    fprintf(out, "hist %s %llu %llu", name, (unsigned long long)h->count,
            (unsigned long long)h->max_us);
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
        if (h->bucket[i] != 0) {
            fprintf(out, " %u:%llu", i, (unsigned long long)h->bucket[i]);
        }
    }
    fputc('\n', out);
}

bool lg_hist_parse(lg_hist *h, const char *text)
{
    char *end = NULL;
    h->count = strtoull(text, &end, 10);
    if (end == text) {
        return false;
    }
    text = end;
    h->max_us = strtoull(text, &end, 10);
    if (end == text) {
        return false;
    }
    text = end;
    for (;;) {
        while (*text == ' ') {
            text++;
        }
        if (*text == '\0' || *text == '\n') {
            return true;
        }
        unsigned long index = strtoul(text, &end, 10);
        if (end == text || *end != ':' || index >= LG_HIST_BUCKETS) {
            return false;
        }
        text = end + 1;
        h->bucket[index] = strtoull(text, &end, 10);
        if (end == text) {
            return false;
        }
        text = end;
    }
}
