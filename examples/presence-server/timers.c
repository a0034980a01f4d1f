/*
 * The timing wheel: see timers.h.
 * SPDX-License-Identifier: MIT
 */
#include "timers.h"

#define SLOT_MASK (PS_TIMER_SLOTS - 1)

static void list_init(ps_timer *head)
{
    head->prev = head->next = head;
}

static bool list_empty(const ps_timer *head)
{
    return head->next == head;
}

static void list_append(ps_timer *head, ps_timer *timer)
{
    timer->prev = head->prev;
    timer->next = head;
    head->prev->next = timer;
    head->prev = timer;
}

static void list_unlink(ps_timer *timer)
{
    timer->prev->next = timer->next;
    timer->next->prev = timer->prev;
    timer->prev = timer->next = NULL;
}

/* The slot of a due time. The slots before the current one have run: a
 * time in one of them goes to the current slot, which the next run looks
 * at again, rather than a turn of the wheel later. */
static int64_t slot_of(const ps_timers *wheel, int64_t due_ms)
{
    int64_t slot = due_ms >= 0 ? due_ms / PS_TIMER_SLOT_MS : 0;
    return slot < wheel->current ? wheel->current : slot;
}

void ps_timers_init(ps_timers *wheel, int64_t now_ms)
{
    for (size_t i = 0; i < PS_TIMER_SLOTS; i++) {
        list_init(&wheel->slots[i]);
    }
    wheel->current = now_ms >= 0 ? now_ms / PS_TIMER_SLOT_MS : 0;
    wheel->armed = 0;
}

void ps_timer_init(ps_timer *timer, ps_timer_fn fire)
{
    timer->prev = timer->next = NULL;
    timer->due_ms = 0;
    timer->fire = fire;
}

bool ps_timer_armed(const ps_timer *timer)
{
    return timer->next != NULL;
}

void ps_timer_arm(ps_timers *wheel, ps_timer *timer, int64_t due_ms)
{
    if (ps_timer_armed(timer)) {
        list_unlink(timer);
    } else {
        wheel->armed++;
    }
    timer->due_ms = due_ms;
    list_append(&wheel->slots[slot_of(wheel, due_ms) & SLOT_MASK], timer);
}

void ps_timer_cancel(ps_timers *wheel, ps_timer *timer)
{
    if (ps_timer_armed(timer)) {
        list_unlink(timer);
        wheel->armed--;
    }
}

size_t ps_timers_run(ps_timers *wheel, int64_t now_ms)
{
    int64_t last = now_ms >= 0 ? now_ms / PS_TIMER_SLOT_MS : 0;
    if (last < wheel->current) {
        last = wheel->current;
    }
    int64_t slot = wheel->current;
    if (last - slot >= PS_TIMER_SLOTS) {
        /* The loop was held up for a whole turn: one visit of each slot
         * sees every timer. */
        slot = last - PS_TIMER_SLOTS + 1;
    }
    /* From now on whatever is armed goes to the last slot or later: a
     * callback's timer due now fires in this run or the next. */
    wheel->current = last;
    size_t fired = 0;
    for (; slot <= last; slot++) {
        ps_timer *head = &wheel->slots[slot & SLOT_MASK];
        if (list_empty(head)) {
            continue;
        }
        /* The slot's timers move to a list of their own, from which the
         * callbacks may take any (a socket that closes cancels its
         * connection's timer); what is put back goes to the slot itself
         * or a later one, never into this list. */
        ps_timer batch;
        batch.next = head->next;
        batch.prev = head->prev;
        batch.next->prev = &batch;
        batch.prev->next = &batch;
        list_init(head);
        while (!list_empty(&batch)) {
            ps_timer *timer = batch.next;
            list_unlink(timer);
            if (timer->due_ms > now_ms) {
                /* Later in this slot, or a later turn of the wheel. */
                list_append(&wheel->slots[slot_of(wheel, timer->due_ms) & SLOT_MASK],
                            timer);
                continue;
            }
            wheel->armed--;
            fired++;
            timer->fire(timer, now_ms);
        }
    }
    return fired;
}
