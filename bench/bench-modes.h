/*
 * The extra modes of presence-scaling, one file each.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_BENCH_MODES_H
#define PRESENCE_BENCH_MODES_H

/* argc/argv are the arguments after the mode word. */
int bench_mode_scaling(int argc, char **argv);
int bench_mode_bigchannel(int argc, char **argv);
int bench_mode_ttl(int argc, char **argv);
int bench_mode_threads(int argc, char **argv);
int bench_mode_alloc(int argc, char **argv);
int bench_mode_storm(int argc, char **argv);
int bench_mode_touch_order(int argc, char **argv);
int bench_mode_crowd(int argc, char **argv);

/* The clock hook of the fake clock: returns *(int64_t *)user_data. */
int64_t bench_fake_clock(void *user_data);

#endif
