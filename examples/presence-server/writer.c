/*
 * The ready list. conn->scheduled guarantees a connection is on it at most
 * once, and only the draining thread flushes, which keeps a connection's
 * messages in order.
 * SPDX-License-Identifier: MIT
 */
#include "writer.h"

#include "conn.h"

static ps_conn *pop_ready(ps_writer *w)
{
    ps_conn *conn = w->head;
    if (conn != NULL) {
        w->head = conn->ready_next;
        if (w->head == NULL) {
            w->tail = NULL;
        }
        conn->ready_next = NULL;
    }
    return conn;
}

void ps_writer_init(ps_writer *w)
{
    pthread_mutex_init(&w->lock, NULL);
    w->head = w->tail = NULL;
    w->wake = NULL;
    w->wake_data = NULL;
}

void ps_writer_set_wake(ps_writer *w, void (*wake)(void *data), void *data)
{
    pthread_mutex_lock(&w->lock);
    w->wake = wake;
    w->wake_data = data;
    pthread_mutex_unlock(&w->lock);
}

void ps_writer_drain(ps_writer *w)
{
    pthread_mutex_lock(&w->lock);
    for (ps_conn *conn; (conn = pop_ready(w)) != NULL;) {
        pthread_mutex_unlock(&w->lock);
        ps_conn_flush(conn);
        ps_conn_unref(conn);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
}

void ps_writer_schedule(ps_writer *w, ps_conn *conn)
{
    ps_conn_ref(conn);
    pthread_mutex_lock(&w->lock);
    bool was_empty = w->head == NULL;
    conn->ready_next = NULL;
    if (w->tail != NULL) {
        w->tail->ready_next = conn;
    } else {
        w->head = conn;
    }
    w->tail = conn;
    void (*wake)(void *) = was_empty ? w->wake : NULL;
    void *data = w->wake_data;
    pthread_mutex_unlock(&w->lock);
    if (wake != NULL) {
        wake(data);
    }
}

void ps_writer_stop(ps_writer *w)
{
    ps_writer_set_wake(w, NULL, NULL);
    ps_writer_drain(w);
    pthread_mutex_destroy(&w->lock);
}
