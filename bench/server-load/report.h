/*
 * The figures of a run as "key value" lines (histograms as "hist" lines),
 * which one process prints and a merge of several reads back and adds up;
 * then the derived figures (rates, per-connection bytes, percentiles).
 * SPDX-License-Identifier: MIT
 */
#ifndef LG_REPORT_H
#define LG_REPORT_H

#include "loadgen.h"

#include <stdio.h>

/** Print @p st of @p count connections (N = @p n) with derived figures. */
void lg_report_print(FILE *out, const char *proto, uint32_t n, uint64_t count,
                     const lg_stats *st);
/** Read a printed report into @p st and @p count; adds to what is there
 *  (sums, maxima, the server's figures from the first file). False when
 *  the file is not a report. */
bool lg_report_merge(FILE *in, lg_stats *st, uint64_t *count, bool first,
                     char *proto, size_t proto_cap, uint32_t *n);

#endif
