/*
 * Connections: the outgoing queue and the write side. See conn.h for the
 * lock order.
 * SPDX-License-Identifier: MIT
 */
#include "conn.h"

#include "heartbeat.h"
#include "mem.h"
#include "server.h"
#include "writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frames are coalesced up to this size: several queued messages go out in
 * one text frame, separated by newlines, as the protocol allows. */
#define FRAME_TARGET 65536

ps_msg *ps_msg_new(const char *data, size_t len)
{
    ps_msg *msg = ps_malloc(sizeof *msg + len + 1);
    if (msg == NULL) {
        return NULL;
    }
    atomic_init(&msg->refs, 1);
    msg->len = len;
    memcpy(msg->data, data, len);
    msg->data[len] = '\0';
    return msg;
}

ps_msg *ps_msg_ref(ps_msg *msg)
{
    atomic_fetch_add(&msg->refs, 1);
    return msg;
}

void ps_msg_unref(ps_msg *msg)
{
    if (msg != NULL && atomic_fetch_sub(&msg->refs, 1) == 1) {
        ps_free(msg);
    }
}

ps_conn *ps_conn_new(ps_server *server, void *transport)
{
    ps_conn *conn = ps_calloc(1, sizeof *conn);
    if (conn == NULL) {
        return NULL;
    }
    atomic_init(&conn->refs, 1);
    atomic_init(&conn->transport_pending, 0);
    conn->server = server;
    conn->transport = transport;
    pthread_mutex_init(&conn->wlock, NULL);
    pthread_mutex_init(&conn->qlock, NULL);
    return conn;
}

ps_conn *ps_conn_ref(ps_conn *conn)
{
    atomic_fetch_add(&conn->refs, 1);
    return conn;
}

static void free_nodes(ps_outq_node *node)
{
    while (node != NULL) {
        ps_outq_node *next = node->next;
        ps_msg_unref(node->msg);
        ps_free(node);
        node = next;
    }
}

void ps_conn_unref(ps_conn *conn)
{
    if (conn == NULL || atomic_fetch_sub(&conn->refs, 1) != 1) {
        return;
    }
    free_nodes(conn->head);
    ps_free(conn->user);
    ps_free(conn->conn_info);
    ps_free(conn->frag);
    pthread_mutex_destroy(&conn->wlock);
    pthread_mutex_destroy(&conn->qlock);
    ps_free(conn);
}

/* Under qlock: take the whole queue. */
static ps_outq_node *detach_queue(ps_conn *conn)
{
    ps_outq_node *list = conn->head;
    conn->head = conn->tail = NULL;
    conn->queued_bytes = 0;
    return list;
}

/* Under qlock: mark scheduled; true if the caller must wake a writer. */
static bool take_schedule(ps_conn *conn)
{
    if (conn->scheduled) {
        return false;
    }
    conn->scheduled = true;
    return true;
}

/* Under qlock: a close for a writer to send, dropping nothing queued. */
static bool request_close_locked(ps_conn *conn, int code, const char *reason)
{
    if (conn->closing) {
        return false;
    }
    conn->closing = true;
    conn->close_code = code;
    snprintf(conn->close_reason, sizeof conn->close_reason, "%s", reason);
    return take_schedule(conn);
}

bool ps_conn_send(ps_conn *conn, ps_msg *msg)
{
    ps_outq_node *node = msg != NULL ? ps_malloc(sizeof *node) : NULL;
    if (node == NULL) {
        ps_conn_request_close(conn, PS_CLOSE_INTERNAL, "internal server error");
        return false;
    }
    node->msg = ps_msg_ref(msg);
    node->next = NULL;
    ps_outq_node *dropped = NULL;
    bool queued = false;
    bool wake = false;

    pthread_mutex_lock(&conn->qlock);
    size_t backlog = conn->queued_bytes + atomic_load(&conn->transport_pending);
    if (conn->closing) {
        /* nothing: a closing connection gets no more messages */
    } else if (backlog > 0 &&
               backlog + msg->len + 1 > conn->server->cfg->client_queue_max_size) {
        /* A client that does not read keeps no unbounded memory here. The
         * limit is on the backlog, queued here or taken by the transport
         * and not yet read: one message larger than it (the presence of a
         * huge channel) still goes out when nothing waits before it. */
        dropped = detach_queue(conn);
        conn->closing = true;
        conn->close_code = 3008;
        strcpy(conn->close_reason, "slow");
        wake = take_schedule(conn);
    } else {
        if (conn->tail != NULL) {
            conn->tail->next = node;
        } else {
            conn->head = node;
        }
        conn->tail = node;
        conn->queued_bytes += msg->len + 1;
        queued = true;
        node = NULL;
        wake = take_schedule(conn);
    }
    pthread_mutex_unlock(&conn->qlock);

    if (wake) {
        ps_writer_schedule(&conn->server->writer, conn);
    }
    if (node != NULL) {
        ps_msg_unref(node->msg);
        ps_free(node);
    }
    free_nodes(dropped);
    return queued;
}

bool ps_conn_send_text(ps_conn *conn, const char *text, size_t len)
{
    ps_msg *msg = ps_msg_new(text, len);
    bool ok = ps_conn_send(conn, msg); /* a NULL message closes with 3004 */
    ps_msg_unref(msg);
    return ok;
}

void ps_conn_request_close(ps_conn *conn, int code, const char *reason)
{
    pthread_mutex_lock(&conn->qlock);
    bool wake = request_close_locked(conn, code, reason);
    pthread_mutex_unlock(&conn->qlock);
    if (wake) {
        ps_writer_schedule(&conn->server->writer, conn);
    }
}

/* Under wlock: write one frame; a failed write means the socket is
 * broken, and the reader will see it end and clean up. */
static void write_text(ps_conn *conn, const char *data, size_t len)
{
    if (conn->server->write_frame(conn->transport, PS_WS_TEXT, data, len) <= 0) {
        conn->close_sent = true; /* stop writing */
    }
}

/* Under wlock: write a list of messages as few newline-joined frames. When
 * the buffer for joining cannot be had, each message goes out as a frame
 * of its own: nothing is lost for want of memory here. */
static void write_messages(ps_conn *conn, ps_outq_node *list)
{
    char *frame = NULL;
    size_t cap = 0;
    while (list != NULL && conn->transport != NULL && !conn->close_sent) {
        size_t len = 0;
        ps_outq_node *node = list;
        bool alone = false;
        do {
            size_t need = len + (len ? 1 : 0) + node->msg->len;
            if (need > cap) {
                size_t ncap = need > FRAME_TARGET ? need : FRAME_TARGET;
                char *grown = ps_realloc(frame, ncap);
                if (grown == NULL) {
                    alone = true;
                    break;
                }
                frame = grown;
                cap = ncap;
            }
            if (len) {
                frame[len++] = '\n';
            }
            memcpy(frame + len, node->msg->data, node->msg->len);
            len += node->msg->len;
            node = node->next;
        } while (node != NULL && len + 1 + node->msg->len <= FRAME_TARGET);
        if (len > 0) {
            write_text(conn, frame, len);
        }
        if (alone && !conn->close_sent) {
            write_text(conn, node->msg->data, node->msg->len);
            node = node->next;
        }
        list = node;
    }
    ps_free(frame);
}

/* Under wlock: a close frame, code in network order then the reason. */
static void write_close(ps_conn *conn, int code, const char *reason)
{
    if (conn->transport == NULL || conn->close_sent) {
        return;
    }
    unsigned char payload[2 + 64];
    size_t rlen = strlen(reason);
    if (rlen > sizeof payload - 2) {
        rlen = sizeof payload - 2;
    }
    payload[0] = (unsigned char)((code >> 8) & 0xff);
    payload[1] = (unsigned char)(code & 0xff);
    memcpy(payload + 2, reason, rlen);
    conn->server->write_frame(conn->transport, PS_WS_CLOSE,
                              (const char *)payload, 2 + rlen);
    conn->close_sent = true;
    ps_metrics_close(&conn->server->metrics, code);
}

/* Under wlock: a ping was among the messages just written. The transport
 * starts its pong deadline once the bytes leave; without a way to tell
 * (the tests), it starts now. */
static void ping_flushed(ps_conn *conn)
{
    if (conn->transport != NULL && conn->server->mark_ping != NULL) {
        conn->server->mark_ping(conn->transport);
    } else {
        ps_heartbeat_ping_written(conn);
    }
}

void ps_conn_flush(ps_conn *conn)
{
    pthread_mutex_lock(&conn->wlock);
    for (;;) {
        pthread_mutex_lock(&conn->qlock);
        bool ping = conn->ping_queued;
        conn->ping_queued = false;
        ps_outq_node *list = detach_queue(conn);
        int code = conn->close_code;
        char reason[sizeof conn->close_reason];
        memcpy(reason, conn->close_reason, sizeof reason);
        conn->close_code = 0;
        if (list == NULL && code == 0) {
            conn->scheduled = false;
            pthread_mutex_unlock(&conn->qlock);
            break;
        }
        pthread_mutex_unlock(&conn->qlock);
        write_messages(conn, list);
        free_nodes(list);
        if (ping) {
            ping_flushed(conn);
        }
        if (code != 0) {
            write_close(conn, code, reason);
        }
    }
    pthread_mutex_unlock(&conn->wlock);
}

bool ps_conn_closing(ps_conn *conn)
{
    pthread_mutex_lock(&conn->qlock);
    bool closing = conn->closing;
    pthread_mutex_unlock(&conn->qlock);
    return closing;
}

void ps_conn_finish_close(ps_conn *conn)
{
    /* Whatever a writer has not taken yet is written here; a writer that
     * took the close already has sent it once we hold wlock. A writer may
     * still have the connection on its ready list: it finds nothing left.
     * Nothing schedules it again, since a closing connection takes no
     * more messages. */
    pthread_mutex_lock(&conn->wlock);
    pthread_mutex_lock(&conn->qlock);
    ps_outq_node *list = detach_queue(conn);
    int code = conn->close_code;
    char reason[sizeof conn->close_reason];
    memcpy(reason, conn->close_reason, sizeof reason);
    conn->close_code = 0;
    pthread_mutex_unlock(&conn->qlock);
    write_messages(conn, list);
    if (code != 0) {
        write_close(conn, code, reason);
    }
    pthread_mutex_unlock(&conn->wlock);
    free_nodes(list);
}

void ps_conn_close_now(ps_conn *conn, int code, const char *reason)
{
    pthread_mutex_lock(&conn->wlock);
    pthread_mutex_lock(&conn->qlock);
    ps_outq_node *list = detach_queue(conn);
    conn->closing = true;
    conn->close_code = 0; /* this close replaces any requested one */
    pthread_mutex_unlock(&conn->qlock);
    write_messages(conn, list);
    write_close(conn, code, reason);
    pthread_mutex_unlock(&conn->wlock);
    free_nodes(list);
}

void ps_conn_write_control(ps_conn *conn, int opcode, const char *data,
                           size_t len)
{
    bool is_close = opcode == PS_WS_CLOSE;
    ps_outq_node *list = NULL;
    if (len > 125) {
        len = 125; /* the limit of a control frame's payload */
    }
    pthread_mutex_lock(&conn->wlock);
    if (is_close) {
        pthread_mutex_lock(&conn->qlock);
        list = detach_queue(conn);
        conn->closing = true;
        conn->close_code = 0;
        pthread_mutex_unlock(&conn->qlock);
    }
    if (conn->transport != NULL && !conn->close_sent) {
        conn->server->write_frame(conn->transport, opcode, data, len);
        conn->close_sent = is_close;
        if (is_close) {
            ps_metrics_close(&conn->server->metrics,
                             len >= 2 ? ((unsigned char)data[0] << 8) |
                                            (unsigned char)data[1]
                                      : 1005);
        }
    }
    pthread_mutex_unlock(&conn->wlock);
    free_nodes(list);
}

void ps_conn_detach(ps_conn *conn)
{
    pthread_mutex_lock(&conn->wlock);
    pthread_mutex_lock(&conn->qlock);
    ps_outq_node *list = detach_queue(conn);
    conn->closing = true;
    conn->close_code = 0;
    pthread_mutex_unlock(&conn->qlock);
    conn->transport = NULL;
    pthread_mutex_unlock(&conn->wlock);
    free_nodes(list);
}
