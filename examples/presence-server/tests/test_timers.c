/*
 * The timing wheel (timers.h): a timer fires at the first run at or after
 * its due time and never before, whatever the distance (later in the
 * slot, a later turn of the wheel, a loop held up for more than a turn);
 * moving and cancelling work, also from inside a callback on timers of
 * the same batch; a run fires only what is due.
 * SPDX-License-Identifier: MIT
 */
#include "../timers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#define BASE 1000000 /* an arbitrary "now" of the tests, in ms */

typedef struct probe {
    ps_timer timer;
    int fired;
    int64_t fired_at;
    /* What the callback does besides counting. */
    ps_timers *wheel;
    struct probe *cancel_other; /* cancel this one */
    int64_t rearm_in_ms;        /* > 0: arm itself again, this far on */
    struct probe *arm_other;    /* arm this one due now */
} probe;

static void on_fire(ps_timer *timer, int64_t now_ms)
{
    probe *p = (probe *)timer; /* the timer is the first member */
    p->fired++;
    p->fired_at = now_ms;
    if (p->cancel_other != NULL) {
        ps_timer_cancel(p->wheel, &p->cancel_other->timer);
    }
    if (p->arm_other != NULL) {
        ps_timer_arm(p->wheel, &p->arm_other->timer, now_ms);
    }
    if (p->rearm_in_ms > 0) {
        ps_timer_arm(p->wheel, &p->timer, now_ms + p->rearm_in_ms);
    }
}

static void probe_init(probe *p, ps_timers *wheel)
{
    *p = (probe){.wheel = wheel};
    ps_timer_init(&p->timer, on_fire);
}

static void test_fires_when_due_never_before(void **state)
{
    (void)state;
    ps_timers w;
    ps_timers_init(&w, BASE);
    probe a, b, c;
    probe_init(&a, &w);
    probe_init(&b, &w);
    probe_init(&c, &w);
    ps_timer_arm(&w, &a.timer, BASE + 250);
    ps_timer_arm(&w, &b.timer, BASE + 30);  /* later in the current slot */
    ps_timer_arm(&w, &c.timer, BASE - 500); /* already past */
    assert_int_equal(w.armed, 3);
    assert_true(ps_timer_armed(&a.timer));

    assert_int_equal(ps_timers_run(&w, BASE + 10), 1); /* c only */
    assert_int_equal(c.fired, 1);
    assert_int_equal(b.fired, 0);
    /* The same slot again: b is due now. */
    assert_int_equal(ps_timers_run(&w, BASE + 30), 1);
    assert_int_equal(b.fired, 1);
    assert_int_equal(b.fired_at, BASE + 30);
    assert_int_equal(ps_timers_run(&w, BASE + 249), 0);
    assert_int_equal(a.fired, 0);
    assert_int_equal(ps_timers_run(&w, BASE + 250), 1);
    assert_int_equal(a.fired, 1);
    assert_false(ps_timer_armed(&a.timer));
    assert_int_equal(w.armed, 0);
    /* Nothing fires twice. */
    assert_int_equal(ps_timers_run(&w, BASE + 100000), 0);
    assert_int_equal(a.fired + b.fired + c.fired, 3);
}

static void test_later_turns_and_long_stalls(void **state)
{
    (void)state;
    const int64_t turn = (int64_t)PS_TIMER_SLOTS * PS_TIMER_SLOT_MS;
    ps_timers w;
    ps_timers_init(&w, BASE);
    probe far, farther, near;
    probe_init(&far, &w);
    probe_init(&farther, &w);
    probe_init(&near, &w);
    /* Same slot index as near, one and three turns later. */
    ps_timer_arm(&w, &near.timer, BASE + 500);
    ps_timer_arm(&w, &far.timer, BASE + 500 + turn);
    ps_timer_arm(&w, &farther.timer, BASE + 500 + 3 * turn);
    for (int64_t t = BASE; t <= BASE + 500 + turn - 1; t += PS_TIMER_SLOT_MS) {
        ps_timers_run(&w, t);
    }
    assert_int_equal(near.fired, 1);
    assert_int_equal(far.fired, 0);
    ps_timers_run(&w, BASE + 500 + turn);
    assert_int_equal(far.fired, 1);
    assert_int_equal(farther.fired, 0);
    /* The loop is held up for more than two turns: one run sees it. */
    assert_int_equal(ps_timers_run(&w, BASE + 500 + 3 * turn + 7), 1);
    assert_int_equal(farther.fired, 1);
    assert_int_equal(farther.fired_at, BASE + 500 + 3 * turn + 7);
    assert_int_equal(w.armed, 0);
}

static void test_move_and_cancel(void **state)
{
    (void)state;
    ps_timers w;
    ps_timers_init(&w, BASE);
    probe a, b;
    probe_init(&a, &w);
    probe_init(&b, &w);
    ps_timer_arm(&w, &a.timer, BASE + 300);
    ps_timer_arm(&w, &a.timer, BASE + 5000); /* moved later */
    ps_timer_arm(&w, &b.timer, BASE + 300);
    ps_timer_cancel(&w, &b.timer);
    ps_timer_cancel(&w, &b.timer); /* twice: nothing */
    assert_int_equal(w.armed, 1);
    assert_int_equal(ps_timers_run(&w, BASE + 4999), 0);
    ps_timer_arm(&w, &a.timer, BASE + 4000); /* moved earlier, past */
    assert_int_equal(ps_timers_run(&w, BASE + 4999), 1);
    assert_int_equal(a.fired, 1);
    assert_int_equal(b.fired, 0);
    /* Cancelling a timer never armed, or one that fired: nothing. */
    ps_timer_cancel(&w, &a.timer);
    assert_int_equal(w.armed, 0);
}

static void test_callbacks_change_the_batch(void **state)
{
    (void)state;
    ps_timers w;
    ps_timers_init(&w, BASE);
    probe a, b, c, d, e;
    probe_init(&a, &w);
    probe_init(&b, &w);
    probe_init(&c, &w);
    probe_init(&d, &w);
    probe_init(&e, &w);
    /* a, b and c share a slot; a cancels b before b's turn. */
    a.cancel_other = &b;
    ps_timer_arm(&w, &a.timer, BASE + 100);
    ps_timer_arm(&w, &b.timer, BASE + 110);
    ps_timer_arm(&w, &c.timer, BASE + 120);
    /* c arms d due now: it fires at the next run, not in a loop now. */
    c.arm_other = &d;
    /* e re-arms itself every 100 ms. */
    e.rearm_in_ms = 100;
    ps_timer_arm(&w, &e.timer, BASE + 150);
    assert_int_equal(ps_timers_run(&w, BASE + 199), 3); /* a, c, e */
    assert_int_equal(a.fired, 1);
    assert_int_equal(b.fired, 0);
    assert_false(ps_timer_armed(&b.timer));
    assert_int_equal(c.fired, 1);
    assert_int_equal(d.fired, 0);
    assert_true(ps_timer_armed(&d.timer));
    assert_int_equal(ps_timers_run(&w, BASE + 200), 1); /* d */
    assert_int_equal(d.fired, 1);
    assert_int_equal(ps_timers_run(&w, BASE + 298), 0); /* e is at 299 */
    assert_int_equal(ps_timers_run(&w, BASE + 300), 1);
    assert_int_equal(e.fired, 2);
    /* Nine periods of e in one run fire it once (it is due once). */
    assert_int_equal(ps_timers_run(&w, BASE + 1250), 1);
    assert_int_equal(e.fired, 3);
    assert_int_equal(e.fired_at, BASE + 1250);
    ps_timer_cancel(&w, &e.timer);
    assert_int_equal(w.armed, 0);
}

/* A run costs what is due: with many timers armed far ahead, the runs
 * before fire nothing, and the one at their time fires them all. */
static void test_many_timers(void **state)
{
    (void)state;
    enum { N = 19000 };
    ps_timers *w = malloc(sizeof *w);
    probe *p = calloc(N, sizeof *p);
    assert_non_null(w);
    assert_non_null(p);
    ps_timers_init(w, BASE);
    for (size_t i = 0; i < N; i++) {
        probe_init(&p[i], w);
        /* Spread over one second, 25 s ahead, as pings are. */
        ps_timer_arm(w, &p[i].timer, BASE + 25000 + (int64_t)(i % 1000));
    }
    size_t fired = 0;
    for (int64_t t = BASE; t < BASE + 25000; t += PS_TIMER_SLOT_MS) {
        fired += ps_timers_run(w, t);
    }
    assert_int_equal(fired, 0);
    for (int64_t t = BASE + 25000; t <= BASE + 26000; t += PS_TIMER_SLOT_MS) {
        size_t now = ps_timers_run(w, t);
        assert_true(now <= N / 10 + 19); /* one slot's worth */
        fired += now;
    }
    assert_int_equal(fired, N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(p[i].fired, 1);
        assert_true(p[i].fired_at >= p[i].timer.due_ms);
        assert_true(p[i].fired_at < p[i].timer.due_ms + PS_TIMER_SLOT_MS);
    }
    assert_int_equal(w->armed, 0);
    free(p);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fires_when_due_never_before),
        cmocka_unit_test(test_later_turns_and_long_stalls),
        cmocka_unit_test(test_move_and_cancel),
        cmocka_unit_test(test_callbacks_change_the_batch),
        cmocka_unit_test(test_many_timers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
