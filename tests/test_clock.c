/*
 * The default clock's logic on made-up readings (it is private to the
 * library, built here from its source): no reading holds before the
 * counter's rate is known; a reading holds only until the next
 * millisecond can have begun; a counter that falls behind the clock is
 * turned off for good, one that jumps ahead is not.
 *
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/clock.h"

#define NS_PER_MS 1000000
#define T0 ((int64_t)1000 * 1000 * NS_PER_MS) /* the anchor: 1000 s */
#define TICKS0 ((uint64_t)777777)

/* A made-up counter: 2.5 ticks a ns from TICKS0 at the anchor. */
static uint64_t ticks_at(int64_t ns)
{
    return TICKS0 + (uint64_t)((ns - T0) * 5 / 2);
}

static void anchored(struct presence__clock_shared *shared,
                     struct presence__clock_thread *mine)
{
    memset(shared, 0, sizeof *shared);
    memset(mine, 0, sizeof *mine);
    shared->anchor_ns = T0;
    shared->anchor_ticks_after = ticks_at(T0);
}

/* Anchored, with a first reading 40 ms on (the rate known): its time. */
static int64_t calibrated(struct presence__clock_shared *shared,
                          struct presence__clock_thread *mine)
{
    anchored(shared, mine);
    int64_t ns = T0 + 40 * NS_PER_MS;
    presence__clock_reading(shared, mine, ticks_at(ns), ns);
    return ns;
}

/* Until the readings span 20 ms, none holds: every call reads the
 * clock. */
static void test_nothing_holds_before_the_rate(void **state)
{
    (void)state;
    struct presence__clock_shared shared;
    struct presence__clock_thread mine;
    anchored(&shared, &mine);
    int64_t ns = T0 + 5 * NS_PER_MS + 123;
    assert_int_equal(presence__clock_reading(&shared, &mine, ticks_at(ns), ns),
                     ns / NS_PER_MS);
    assert_int_equal(mine.span, 0);
    assert_false(presence__clock_holds(&mine, ticks_at(ns)));
    assert_int_equal(atomic_load(&shared.ticks_per_ms_min), 0);
}

/* Past 20 ms a reading holds while the counter says its millisecond can
 * still be on, and no longer: at most to the tick the next one begins,
 * and not much less (the rate's margin is 1/256). */
static void test_a_reading_holds_within_its_millisecond(void **state)
{
    (void)state;
    struct presence__clock_shared shared;
    struct presence__clock_thread mine;
    anchored(&shared, &mine);
    int64_t ns = T0 + 25 * NS_PER_MS;
    for (int i = 0; i < 1000; i++) {
        ns += 1000003; /* every offset within the millisecond, in turn */
        uint64_t ticks = ticks_at(ns) - 40; /* read just before the clock */
        assert_int_equal(presence__clock_reading(&shared, &mine, ticks, ns),
                         ns / NS_PER_MS);
        assert_false(atomic_load(&shared.off));
        int64_t next_ms_ns = (ns / NS_PER_MS + 1) * NS_PER_MS;
        uint64_t next_tick = ticks_at(next_ms_ns);
        assert_true(mine.span > 0);
        assert_true(mine.base + mine.span <= next_tick);
        assert_true(next_tick - (mine.base + mine.span) <=
                    (next_tick - ticks) / 128 + 100);
        assert_true(presence__clock_holds(&mine, mine.base + mine.span - 1));
        assert_false(presence__clock_holds(&mine, mine.base + mine.span));
        assert_false(presence__clock_holds(&mine, mine.base - 1));
    }
    /* The bound is the rate's, from below. */
    uint64_t tpm = atomic_load(&shared.ticks_per_ms_min);
    assert_true(tpm <= 2500000 && tpm > 2490000);
}

/* A slow first reading of the anchor (the thread preempted between the
 * clock and the counter) only lowers the bound: readings still end by
 * the next millisecond. */
static void test_a_slow_anchor_only_lowers_the_bound(void **state)
{
    (void)state;
    struct presence__clock_shared shared;
    struct presence__clock_thread mine;
    anchored(&shared, &mine);
    shared.anchor_ticks_after = ticks_at(T0 + 4 * NS_PER_MS); /* 4 ms late */
    int64_t ns = T0 + 30 * NS_PER_MS + 250000;
    presence__clock_reading(&shared, &mine, ticks_at(ns), ns);
    assert_true(mine.span > 0);
    assert_true(mine.base + mine.span <= ticks_at(31 * NS_PER_MS + T0));
    assert_true(atomic_load(&shared.ticks_per_ms_min) < 2500000 * 9 / 10);
}

/* NTP may slew the clock up to 500 ppm faster than it ran while the
 * rate was measured: a reading still ends by the next millisecond, the
 * counter now ticking 0.05% fewer times a clock ns. */
static void test_a_slewed_clock_still_ends_in_time(void **state)
{
    (void)state;
    struct presence__clock_shared shared;
    struct presence__clock_thread mine;
    int64_t ns = calibrated(&shared, &mine);
    for (int i = 0; i < 1000; i++) {
        ns += 1000003;
        uint64_t ticks = ticks_at(ns);
        presence__clock_reading(&shared, &mine, ticks, ns);
        int64_t rest = (ns / NS_PER_MS + 1) * NS_PER_MS - ns;
        uint64_t slow_next = ticks + (uint64_t)(rest * 2.5 * 0.9995);
        assert_true(mine.base + mine.span <= slow_next);
    }
}

/* A counter that went back, or stood while the clock went on, is off for
 * good: every reading after holds for nothing. */
static void test_a_counter_behind_is_off_for_good(void **state)
{
    (void)state;
    struct presence__clock_shared shared;
    struct presence__clock_thread mine;
    int64_t ns = calibrated(&shared, &mine);
    assert_true(mine.span > 0);
    /* Back by a second's worth of ticks (a reset, another core's). */
    uint64_t back = mine.base - 2500000000u;
    assert_false(presence__clock_holds(&mine, back));
    ns += 3 * NS_PER_MS;
    presence__clock_reading(&shared, &mine, back, ns);
    assert_true(atomic_load(&shared.off));
    assert_int_equal(mine.span, 0);
    ns += 10 * NS_PER_MS;
    assert_int_equal(presence__clock_reading(&shared, &mine, ticks_at(ns), ns),
                     ns / NS_PER_MS);
    assert_int_equal(mine.span, 0);

    /* Standing: 5 ms of clock, 10 ticks of counter. */
    ns = calibrated(&shared, &mine);
    uint64_t stood = mine.base + 10;
    presence__clock_reading(&shared, &mine, stood, ns + 5 * NS_PER_MS);
    assert_true(atomic_load(&shared.off));
    assert_int_equal(mine.span, 0);
}

/* A counter a little behind another core's (under a millisecond) is no
 * reason to turn it off; one that jumped ahead (a suspend that it
 * counted) only ends the span early. */
static void test_small_skews_and_jumps_ahead_keep_it_on(void **state)
{
    (void)state;
    struct presence__clock_shared shared;
    struct presence__clock_thread mine;
    int64_t ns = calibrated(&shared, &mine);
    ns += 1000;
    presence__clock_reading(&shared, &mine, mine.base - 500, ns);
    assert_false(atomic_load(&shared.off));
    assert_true(mine.span > 0);
    ns += 2 * NS_PER_MS;
    uint64_t ahead = ticks_at(ns) + ((uint64_t)1 << 40);
    presence__clock_reading(&shared, &mine, ahead, ns);
    assert_false(atomic_load(&shared.off));
    assert_true(mine.span > 0);
}

/* The real clock: its readings advance, in milliseconds. */
static void test_the_real_clock_advances(void **state)
{
    (void)state;
    int64_t first = presence__monotonic_ms();
    int64_t last = first;
    for (int i = 0; i < 10000000 && last < first + 30; i++) {
        int64_t now = presence__monotonic_ms();
        assert_true(now >= last);
        last = now;
    }
    assert_true(last >= first + 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_holds_before_the_rate),
        cmocka_unit_test(test_a_reading_holds_within_its_millisecond),
        cmocka_unit_test(test_a_slow_anchor_only_lowers_the_bound),
        cmocka_unit_test(test_a_slewed_clock_still_ends_in_time),
        cmocka_unit_test(test_a_counter_behind_is_off_for_good),
        cmocka_unit_test(test_small_skews_and_jumps_ahead_keep_it_on),
        cmocka_unit_test(test_the_real_clock_advances),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
