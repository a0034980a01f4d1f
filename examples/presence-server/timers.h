/*
 * Timers of the event loop: a hashed timing wheel, so that the loop's tick
 * costs what is due, not what is open. Each timer is a link embedded in
 * its owner (a socket, a connection's heartbeat); arming, moving and
 * cancelling one is O(1) and allocates nothing.
 *
 * The wheel has PS_TIMER_SLOTS slots of PS_TIMER_SLOT_MS each; a timer
 * sits in the slot of its due time. ps_timers_run() visits only the slots
 * whose time has come since the last run, and fires the timers in them
 * that are due; a timer due a whole turn of the wheel later or more (a
 * token that expires in an hour) stays where it is, looked at once a turn.
 * A timer fires at the first run at or after its due time, never before.
 *
 * One thread owns a wheel and its timers (the loop's): every call below
 * comes from it. Other threads that change a deadline ask that thread to
 * look again (net.h).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_TIMERS_H
#define PS_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The width of a slot: the loop's tick (net.h). */
#define PS_TIMER_SLOT_MS 100
/** Slots in the wheel (a power of two): one turn is about 102 s, longer
 *  than the default ping interval (25 s) and every other timeout of the
 *  server, so that most timers are looked at once, when due. */
#define PS_TIMER_SLOTS 1024

typedef struct ps_timer ps_timer;

/** What a timer does when due. The timer is disarmed when this runs; it
 *  may arm it again, and arm or cancel any other timer of the wheel. */
typedef void (*ps_timer_fn)(ps_timer *timer, int64_t now_ms);

struct ps_timer {
    ps_timer *prev, *next; /* NULL when not armed */
    int64_t due_ms;
    ps_timer_fn fire;
};

typedef struct ps_timers {
    ps_timer slots[PS_TIMER_SLOTS]; /* list heads (circular) */
    int64_t current;                /* the slot of the last run */
    size_t armed;                   /* timers armed */
} ps_timers;

/** An empty wheel whose first run looks at the slot of @p now_ms. */
void ps_timers_init(ps_timers *wheel, int64_t now_ms);

/** A disarmed timer that calls @p fire. */
void ps_timer_init(ps_timer *timer, ps_timer_fn fire);

/** (Re)arm @p timer for @p due_ms (monotonic ms), moving it if it was
 *  armed. A time already past fires at the next run. */
void ps_timer_arm(ps_timers *wheel, ps_timer *timer, int64_t due_ms);

/** Disarm @p timer; nothing if it is not armed. */
void ps_timer_cancel(ps_timers *wheel, ps_timer *timer);

/** Whether @p timer is armed. */
bool ps_timer_armed(const ps_timer *timer);

/** Fire every timer due at @p now_ms: the slots from that of the last run
 *  (looked at again: it may hold timers due later in it) to that of
 *  @p now_ms. Returns how many fired. */
size_t ps_timers_run(ps_timers *wheel, int64_t now_ms);

#endif
