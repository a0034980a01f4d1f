/*
 * The writer's ready list: connections whose outgoing queue became
 * non-empty, waiting to be flushed. Any thread schedules (a libpresence
 * event callback, above all, which delivers for everyone, and must never
 * wait for a socket); one thread drains: the event loop (net.h), which a
 * wake hook calls for, or, without a hook, whoever calls
 * ps_writer_drain() (the tests and fuzzers).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_WRITER_H
#define PS_WRITER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct ps_conn;

typedef struct ps_writer {
    pthread_mutex_t lock;
    struct ps_conn *head, *tail; /* ready connections, each referenced */
    /* Called (outside the lock) when the list stops being empty. */
    void (*wake)(void *data);
    void *wake_data;
} ps_writer;

/** Set up an empty list, with no wake hook. */
void ps_writer_init(ps_writer *writer);

/** Have @p wake called whenever connections become ready. */
void ps_writer_set_wake(ps_writer *writer, void (*wake)(void *data),
                        void *data);

/** Flush every ready connection on the calling thread. */
void ps_writer_drain(ps_writer *writer);

/** Hand a connection whose queue just became non-empty to the drainer.
 *  The caller has set conn->scheduled under conn->qlock. */
void ps_writer_schedule(ps_writer *writer, struct ps_conn *conn);

/** Flush what is still ready and tear the list down. */
void ps_writer_stop(ps_writer *writer);

#endif
