/*
 * What /proc says about the servers under test, and the generator's own
 * CPU time, so that a figure limited by the generator is seen as such.
 * SPDX-License-Identifier: MIT
 */
#ifndef LG_SYSINFO_H
#define LG_SYSINFO_H

/** VmRSS in KiB summed over @p pids; -1 when one cannot be read. */
long long lg_sys_rss_kb(const int *pids, unsigned n);
/** Threads summed over @p pids; -1 when one cannot be read. */
long long lg_sys_threads(const int *pids, unsigned n);
/** User plus system CPU seconds summed over @p pids (all their threads). */
double lg_sys_cpu_s(const int *pids, unsigned n);
/** This process's user plus system CPU seconds. */
double lg_sys_self_cpu_s(void);

#endif
