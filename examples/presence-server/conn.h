/*
 * One client connection: identity, an outgoing queue and the WebSocket
 * write side.
 *
 * Two kinds of threads touch a connection: the event loop, which reads it,
 * runs its commands and alone writes to its socket (ws_conn.c), and
 * whatever thread delivers libpresence events (join/leave pushes), which
 * only appends to the queue and has the writer wake the loop. Locks,
 * always taken in this order and never held across a libpresence call:
 *
 *     hub lock  ->  conn->qlock  ->  writer lock        (enqueue)
 *     conn->wlock  ->  conn->qlock                      (flush, close)
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_CONN_H
#define PS_CONN_H

#include "hash.h"
#include "timers.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ps_server;
struct ps_sub;

/** An immutable, shared outgoing message (one JSON text, no newline), so
 *  that a join pushed to a thousand subscribers is built once. */
/* WebSocket opcodes (RFC 6455), as ps_server::write_frame takes them. */
#define PS_WS_CONTINUATION 0x0
#define PS_WS_TEXT 0x1
#define PS_WS_BINARY 0x2
#define PS_WS_CLOSE 0x8
#define PS_WS_PING 0x9
#define PS_WS_PONG 0xa

/* Close code for a server-side failure (out of memory, say): Centrifugo's
 * 3004 "internal server error", after which clients reconnect. */
#define PS_CLOSE_INTERNAL 3004

typedef struct ps_msg {
    atomic_uint refs;
    size_t len;
    char data[];
} ps_msg;

ps_msg *ps_msg_new(const char *data, size_t len);
ps_msg *ps_msg_ref(ps_msg *msg);
void ps_msg_unref(ps_msg *msg);

typedef struct ps_outq_node {
    ps_msg *msg;
    struct ps_outq_node *next;
} ps_outq_node;

typedef struct ps_conn {
    atomic_int refs;
    struct ps_server *server;

    /* Identity: written by the reader thread at connect, before the
     * connection is published in the server's client table, then fixed. */
    bool connected;
    char client_id[PS_UUID_SIZE];
    /* Its presence handle, open from connect to close; events and members
     * carry this connection as the handle's application pointer. */
    presence_client *presence;
    char *user;
    char *conn_info; /* compact JSON or NULL */
    size_t conn_info_len;

    /* Write side (wlock): the transport handed to server->write_frame (a
     * ps_ws of ws_conn.c), NULL once it closed. */
    pthread_mutex_t wlock;
    void *transport;
    bool close_sent;

    /* Outgoing queue and timers (qlock). */
    pthread_mutex_t qlock;
    ps_outq_node *head, *tail;
    size_t queued_bytes;
    /* Bytes the transport has taken from the queue and the peer has not
     * read yet (set by the loop): they count against
     * client_queue_max_size too. */
    atomic_size_t transport_pending;
    bool scheduled;        /* a writer owns the flush */
    bool closing;          /* no more messages are accepted */
    int close_code;        /* a close to be sent by a writer, or 0 */
    char close_reason[64];
    int64_t next_ping_ms;   /* 0 = no pings */
    int64_t pong_deadline_ms; /* 0 = not running (yet) */
    bool awaiting_pong;     /* a ping went out and no pong came yet */
    bool ping_queued;       /* the queue holds a ping (the next flush takes
                               it, and tells the transport) */
    int64_t expires_at;     /* unix seconds; 0 = never */
    int64_t stale_deadline_ms; /* no connect command by then: 3502 */

    /* The heartbeat's timer, for the earliest of the deadlines above
     * (heartbeat.h). Loop thread only. */
    ps_timer heartbeat;

    /* Subscriptions, owned by the hub (hub lock). */
    struct ps_sub *subs;
    size_t sub_count;

    /* The writer pool's ready list (writer lock); a connection is on it at
     * most once, while scheduled is set. */
    struct ps_conn *ready_next;

    /* Reader thread only: reassembly of fragmented messages. */
    char *frag;
    size_t frag_len;
    bool fragmented; /* a message's first fragment has come */

    /* Server tables (server conns lock). */
    UT_hash_handle hh;              /* by client_id, once connected */
    struct ps_conn *prev, *next;   /* every open transport */
    bool listed;                    /* on that list */
} ps_conn;

/** A connection for a new transport, with one reference (the transport's). */
ps_conn *ps_conn_new(struct ps_server *server, void *transport);
ps_conn *ps_conn_ref(ps_conn *conn);
void ps_conn_unref(ps_conn *conn);

/**
 * Queue a message (a reference is taken) and wake a writer. When messages
 * already wait and this one would take the backlog past
 * client_queue_max_size, the client is too slow: the queue is dropped and
 * it is closed with 3008. When memory runs out the connection is closed
 * with 3004, since its stream of replies and pushes has a hole: the
 * client reconnects and starts afresh. Returns false if the message was
 * not queued. Safe under the hub lock; never blocks on the network.
 */
bool ps_conn_send(ps_conn *conn, ps_msg *msg);

/** ps_conn_send() of a copy of @p text. */
bool ps_conn_send_text(ps_conn *conn, const char *text, size_t len);

/** Ask a writer to close the connection with @p code after what is queued.
 *  For threads that must not block on the socket. */
void ps_conn_request_close(ps_conn *conn, int code, const char *reason);

/** Whether the connection is closing (a close was requested or sent). */
bool ps_conn_closing(ps_conn *conn);

/** The reading thread, once it sees ps_conn_closing(): write what is
 *  queued and the requested close frame now. */
void ps_conn_finish_close(ps_conn *conn);

/** Write what is queued and a close frame now, on the calling thread (the
 *  loop: the reading side, and shutdown). */
void ps_conn_close_now(ps_conn *conn, int code, const char *reason);

/** Write one control frame (a pong, or the echo of a close) now, on the
 *  reader thread. A close also ends all writing. */
void ps_conn_write_control(ps_conn *conn, int opcode, const char *data,
                           size_t len);

/** The drainer (writer.h): write everything queued, coalesced into few
 *  frames. */
void ps_conn_flush(ps_conn *conn);

/** The transport is gone: no write may touch it any more. */
void ps_conn_detach(ps_conn *conn);

#endif
