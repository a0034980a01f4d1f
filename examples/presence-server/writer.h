/*
 * The writer pool: a few threads that flush connections' outgoing queues, so
 * that a slow socket never blocks the thread that produced a message (a
 * libpresence event callback, above all, which delivers for everyone).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_WRITER_H
#define PS_WRITER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct ps_conn;

#define PS_WRITER_THREADS 4

typedef struct ps_writer {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct ps_conn *head, *tail; /* ready connections, each referenced */
    bool stop;
    size_t started;
    pthread_t threads[PS_WRITER_THREADS];
} ps_writer;

int ps_writer_start(ps_writer *writer);

/** Hand a connection whose queue just became non-empty to a writer. The
 *  caller has set conn->scheduled under conn->qlock. */
void ps_writer_schedule(ps_writer *writer, struct ps_conn *conn);

/** Stop the threads, after the connections still ready are flushed. */
void ps_writer_stop(ps_writer *writer);

#endif
