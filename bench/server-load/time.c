/*
 * The generator's clock and random numbers (xorshift64*: fast, and the
 * same sequence for the same --seed).
 * SPDX-License-Identifier: MIT
 */
#include "loadgen.h"

#include <time.h>

int64_t lg_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t lg_realtime_to_us(const struct timespec *ts)
{
    struct timespec real, mono;
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    int64_t ago_ns = ((int64_t)real.tv_sec - (int64_t)ts->tv_sec) * 1000000000 +
                     (real.tv_nsec - ts->tv_nsec);
    return ((int64_t)mono.tv_sec * 1000000000 + mono.tv_nsec - ago_ns) / 1000;
}

uint64_t lg_random(lg_run *run)
{
    uint64_t x = run->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    run->rng = x;
    return x * 0x2545F4914F6CDD1Dull;
}
