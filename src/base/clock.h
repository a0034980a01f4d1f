/*
 * The default clock: CLOCK_MONOTONIC in milliseconds, read without making
 * the processor wait (clock.c says how).
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_BASE_CLOCK_H
#define PRESENCE_BASE_CLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in whole milliseconds, as clock_gettime() gives it
 * (tv_sec * 1000 + tv_nsec / 1000000), at an instant during the call. */
int64_t presence__monotonic_ms(void);

/* What every thread shares: a lower bound on the counter's rate, measured
 * from a first reading (the anchor), and whether the counter is off. */
struct presence__clock_shared {
    atomic_uint_fast64_t ticks_per_ms_min; /* 0: none yet */
    atomic_bool off;                       /* for good */
    int64_t anchor_ns;           /* the first reading of the clock */
    uint64_t anchor_ticks_after; /* the counter just after it */
};

/* A thread's last reading, and how long it holds. */
struct presence__clock_thread {
    uint64_t base;   /* the counter just before the reading */
    uint64_t span;   /* ticks from base during which `ms` still holds */
    int64_t ms;
    int64_t base_ns; /* the reading, in ns (0: none yet) */
};

/* Whether the thread's last reading still holds at counter value ticks
 * (unsigned: a counter behind base, another core's or reset, does not). */
static inline bool presence__clock_holds(const struct presence__clock_thread *t,
                                         uint64_t ticks)
{
    return ticks - t->base < t->span;
}

/* The clock read as ns, the counter read just before it as ticks: raises
 * the shared bound, turns the counter off if it fell behind the clock
 * since the thread's last reading, and makes this reading the thread's,
 * with the span it holds for. Returns ns's milliseconds. */
int64_t presence__clock_reading(struct presence__clock_shared *shared,
                                struct presence__clock_thread *mine,
                                uint64_t ticks, int64_t ns);

#endif
