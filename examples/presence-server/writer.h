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

/** Set up an empty pool, with no thread yet. */
void ps_writer_init(ps_writer *writer);

/** Start @p threads threads (at most PS_WRITER_THREADS). A pool without
 *  threads is flushed by whoever calls ps_writer_drain(). 0 or -1. */
int ps_writer_start(ps_writer *writer, size_t threads);

/** Flush every ready connection on the calling thread (a pool without
 *  threads: the tests and fuzzers). */
void ps_writer_drain(ps_writer *writer);

/** Hand a connection whose queue just became non-empty to a writer. The
 *  caller has set conn->scheduled under conn->qlock. */
void ps_writer_schedule(ps_writer *writer, struct ps_conn *conn);

/** Stop the threads, after the connections still ready are flushed, and
 *  tear the pool down. */
void ps_writer_stop(ps_writer *writer);

#endif
