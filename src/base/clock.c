/*
 * The default clock without the wait. clock_gettime() reads the
 * time-stamp counter with an instruction that waits for every load before
 * it (rdtscp, or lfence then rdtsc, in the vDSO), so a call that reads the
 * clock cannot overlap its cache misses with the next call's: a third of
 * a renewal's time (docs/PERFORMANCE.md). Yet within one millisecond the
 * answer cannot change. So each thread keeps its last answer and how many
 * counter ticks must pass before the next millisecond can have begun, and
 * reads the counter with the instruction that does not wait; only past
 * that count does it read the clock again, about once a millisecond.
 *
 * The count needs a lower bound on the counter's rate, which readings at
 * least CALIBRATE_NS apart give, less a margin far wider than NTP's
 * slewing of CLOCK_MONOTONIC (at most 500 ppm). Until there is one, where
 * the counter's rate may vary (no invariant TSC, or not x86-64), and for
 * good once the counter fell behind the clock (it went back, stood or
 * slowed), every call reads the clock.
 *
 * SPDX-License-Identifier: MIT
 */
#include <time.h>

#include "base/clock.h"

#define NS_PER_MS 1000000
/* The shortest span a bound on the counter's rate is taken over. */
#define CALIBRATE_NS (20 * (int64_t)NS_PER_MS)

static int64_t clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Ticks counted from the anchor's reading to a reading `ns`, the counter
 * read just before it, are at most the ticks between the two readings of
 * the clock: a lower bound on the rate, however long either reading took.
 * The bound only rises. */
static void raise_bound(struct presence__clock_shared *shared, uint64_t ticks,
                        int64_t ns)
{
    if (ns - shared->anchor_ns < CALIBRATE_NS ||
        ticks <= shared->anchor_ticks_after) {
        return;
    }
    uint64_t bound = (uint64_t)((double)(ticks - shared->anchor_ticks_after) *
                                NS_PER_MS / (double)(ns - shared->anchor_ns));
    uint_fast64_t seen =
        atomic_load_explicit(&shared->ticks_per_ms_min, memory_order_relaxed);
    while (bound > seen && !atomic_compare_exchange_weak_explicit(
                               &shared->ticks_per_ms_min, &seen, bound,
                               memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* The counter ticked too few times since the thread's last reading for
 * the time the clock says passed (it went back, stood, or slowed). */
static bool fell_behind(const struct presence__clock_thread *mine,
                        uint64_t tpm, uint64_t ticks, int64_t ns)
{
    double counted = (double)(int64_t)(ticks - mine->base) * NS_PER_MS /
                     (double)tpm;
    double passed = (double)(ns - mine->base_ns);
    return counted < passed - (NS_PER_MS + passed / 256);
}

int64_t presence__clock_reading(struct presence__clock_shared *shared,
                                struct presence__clock_thread *mine,
                                uint64_t ticks, int64_t ns)
{
    mine->span = 0;
    if (!atomic_load_explicit(&shared->off, memory_order_relaxed)) {
        raise_bound(shared, ticks, ns);
        uint64_t tpm = atomic_load_explicit(&shared->ticks_per_ms_min,
                                            memory_order_relaxed);
        if (tpm != 0 && mine->base_ns != 0 &&
            fell_behind(mine, tpm, ticks, ns)) {
            atomic_store(&shared->off, true);
        } else if (tpm != 0) {
            /* The next millisecond begins at the earliest rest_ns after
             * the counter read `ticks` (the clock was read later); the
             * margin covers NTP slewing the clock's rate (500 ppm). */
            uint64_t rest_ns = (uint64_t)(NS_PER_MS - ns % NS_PER_MS);
            mine->span = rest_ns * (tpm - tpm / 256) / NS_PER_MS;
        }
    }
    mine->base = ticks;
    mine->base_ns = ns;
    mine->ms = ns / NS_PER_MS;
    return mine->ms;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

#include <cpuid.h>
#include <pthread.h>
#include <x86intrin.h>

/* An invariant TSC ticks at one rate in every power state. */
static bool counter_steady(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000007u) {
        return false;
    }
    __get_cpuid(0x80000007u, &a, &b, &c, &d);
    return (d & (1u << 8)) != 0;
}

/* The anchor is written once, before pthread_once returns to anyone. */
static struct presence__clock_shared shared;
static pthread_once_t anchor_once = PTHREAD_ONCE_INIT;

static void take_anchor(void)
{
    if (!counter_steady()) {
        atomic_store(&shared.off, true);
        return;
    }
    shared.anchor_ns = clock_ns();
    _mm_lfence(); /* the counter is read after the clock, not before */
    shared.anchor_ticks_after = __rdtsc();
}

/* Initial-exec: an offset from the thread pointer, not a call to
 * __tls_get_addr (loaded with dlopen, the library takes 32 bytes of the
 * static TLS that glibc keeps spare for such libraries). */
static _Thread_local struct presence__clock_thread mine
    __attribute__((tls_model("initial-exec")));

/* The slow path, out of line. */
__attribute__((noinline)) static int64_t read_clock(uint64_t ticks)
{
    int64_t ns = clock_ns();
    pthread_once(&anchor_once, take_anchor);
    return presence__clock_reading(&shared, &mine, ticks, ns);
}

int64_t presence__monotonic_ms(void)
{
    uint64_t ticks = __rdtsc(); /* does not wait for the loads before it */
    if (presence__clock_holds(&mine, ticks)) {
        return mine.ms;
    }
    return read_clock(ticks);
}

#else

int64_t presence__monotonic_ms(void)
{
    return clock_ns() / NS_PER_MS;
}

#endif
