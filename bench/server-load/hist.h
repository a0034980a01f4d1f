/*
 * Latency histograms: log-linear buckets (about 3% wide) over microseconds,
 * small enough to print and to add up across generator processes.
 * SPDX-License-Identifier: MIT
 */
#ifndef LG_HIST_H
#define LG_HIST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define LG_HIST_BUCKETS 896

typedef struct lg_hist {
    uint64_t count;
    uint64_t max_us;
    uint64_t bucket[LG_HIST_BUCKETS];
} lg_hist;

/** Record one value (negative values count as 0). */
void lg_hist_add(lg_hist *h, int64_t us);
/** The value at quantile @p q (0..1): the upper bound of its bucket,
 *  never above the largest value seen; 0 for an empty histogram. */
uint64_t lg_hist_quantile(const lg_hist *h, double q);
/** Add @p from into @p to. */
void lg_hist_merge(lg_hist *to, const lg_hist *from);
/** One line "hist NAME count max idx:n idx:n ..." for lg_hist_parse. */
void lg_hist_print(FILE *out, const char *name, const lg_hist *h);
/** Read the part after "hist NAME " of such a line; false when malformed. */
bool lg_hist_parse(lg_hist *h, const char *text);

#endif
