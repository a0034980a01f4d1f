/*
 * Writer threads. Each takes a ready connection and writes its whole queue;
 * conn->scheduled guarantees a single writer per connection, which keeps a
 * connection's messages in order.
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

static void *writer_main(void *arg)
{
    ps_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        ps_conn *conn = pop_ready(w);
        if (conn == NULL) {
            if (w->stop) {
                break;
            }
            pthread_cond_wait(&w->wake, &w->lock);
            continue;
        }
        pthread_mutex_unlock(&w->lock);
        ps_conn_flush(conn);
        ps_conn_unref(conn);
        pthread_mutex_lock(&w->lock);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

void ps_writer_init(ps_writer *w)
{
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    w->head = w->tail = NULL;
    w->stop = false;
    w->started = 0;
}

int ps_writer_start(ps_writer *w, size_t threads)
{
    for (size_t i = 0; i < threads && i < PS_WRITER_THREADS; i++) {
        if (pthread_create(&w->threads[i], NULL, writer_main, w) != 0) {
            return -1;
        }
        w->started++;
    }
    return 0;
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
    conn->ready_next = NULL;
    if (w->tail != NULL) {
        w->tail->ready_next = conn;
    } else {
        w->head = conn;
    }
    w->tail = conn;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void ps_writer_stop(ps_writer *w)
{
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_broadcast(&w->wake);
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < w->started; i++) {
        pthread_join(w->threads[i], NULL);
    }
    w->started = 0;
    ps_writer_drain(w); /* a pool without threads */
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
}
