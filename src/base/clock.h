/*
 * The default clock: CLOCK_MONOTONIC in milliseconds, read without making
 * the processor wait.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_BASE_CLOCK_H
#define PRESENCE_BASE_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in whole milliseconds, as clock_gettime() gives it
 * (tv_sec * 1000 + tv_nsec / 1000000), at an instant during the call. */
int64_t presence__monotonic_ms(void);

#endif
