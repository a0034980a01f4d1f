/*
 * Run the whole workload for one generator process.
 * SPDX-License-Identifier: MIT
 */
#ifndef LG_DRIVER_H
#define LG_DRIVER_H

#include "loadgen.h"

/** Run ramp, plateau, churn, check, close and probe with @p opt; the
 *  figures go to @p out and this process's connection count to
 *  @p count_out. Returns 0, or -1 when it could not start (memory). */
int lg_driver_run(const lg_options *opt, lg_stats *out, uint32_t *count_out);

#endif
