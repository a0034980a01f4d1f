/*
 * One accepted TCP socket on the event loop: non-blocking writes with their
 * bytes counted until the kernel has them, a deadline past which the
 * socket is closed, and the close. What runs on the socket (an HTTP
 * exchange, then perhaps a WebSocket) is its owner, reached through ops.
 *
 * Each socket has one timer on the net's wheel (timers.h), armed for the
 * earliest of what it waits for: its deadline, the write stall limit while
 * bytes wait, the time its owner asked to be called back at, and "now"
 * once a write failed. When it fires, the socket looks at all of them
 * again (a deadline that moved later, bytes that moved meanwhile) and is
 * closed, calls its owner, or arms the timer for what is next. So the
 * loop's tick touches only the sockets that have something due.
 *
 * Loop thread only, like everything libuv.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_SOCK_H
#define PS_SOCK_H

#include "timers.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct ps_net;
struct ps_sock;

/** What the socket's owner does with its events. Every member may be
 *  NULL but on_close. */
typedef struct ps_sock_ops {
    /** Bytes arrived (borrowed: valid during the call). */
    void (*on_read)(struct ps_sock *sock, const char *data, size_t len);
    /** The peer sent EOF (half close). NULL: close the socket. */
    void (*on_eof)(struct ps_sock *sock);
    /** Writes completed: sock->pending fell, sock->written grew. */
    void (*on_drain)(struct ps_sock *sock);
    /** The time asked for with ps_sock_call_at() has come. */
    void (*on_timer)(struct ps_sock *sock, int64_t now_ms);
    /** The socket is closing: the owner lets go of it (no write after). */
    void (*on_close)(struct ps_sock *sock);
} ps_sock_ops;

typedef struct ps_sock {
    uv_tcp_t tcp; /* tcp.data is this socket */
    struct ps_net *net;
    const ps_sock_ops *ops;
    void *owner;
    struct ps_sock *prev, *next; /* every open socket of the net */
    /* Closed at this monotonic time (0: no deadline); set it with
     * ps_sock_set_deadline(), which arms the timer. */
    int64_t deadline_ms;
    int64_t call_at_ms; /* ops->on_timer at this time (0: none) */
    ps_timer timer;
    /* Bytes handed to libuv and not yet taken by the kernel; with
     * last_progress_ms, when they last moved (a peer that reads nothing
     * is closed after PS_SOCK_WRITE_TIMEOUT_MS). */
    size_t pending;
    int64_t last_progress_ms;
    uint64_t submitted, written; /* bytes handed over and taken, in all */
    bool reading;
    bool failed;  /* a write failed: closed by the timer's next run */
    bool closing;
    bool shut; /* our side is shut down (FIN queued) */
} ps_sock;

/** A socket whose queued bytes do not move for this long is closed. */
#define PS_SOCK_WRITE_TIMEOUT_MS 10000

/** A new socket of @p net, listed, accepted from @p listener, reading,
 *  with @p ops and @p owner, closed at @p deadline_ms. NULL (nothing
 *  accepted stays open) on failure. */
ps_sock *ps_sock_accept(struct ps_net *net, uv_stream_t *listener,
                        const ps_sock_ops *ops, void *owner,
                        int64_t deadline_ms);

/** Queue @p len bytes (copied) after whatever is queued. 0, or -1 when
 *  the socket is closing or failed, or the write failed (memory, a reset):
 *  the socket is then marked failed and closed at the wheel's next run
 *  (the next tick), never here, so that a writer holding locks is not
 *  re-entered. */
int ps_sock_write(ps_sock *sock, const void *data, size_t len);

/** Start or stop reading. */
void ps_sock_read_start(ps_sock *sock);
void ps_sock_read_stop(ps_sock *sock);

/** Shut our side down once the queued bytes are written: the peer sees
 *  EOF; the socket stays for its reply until the deadline. */
void ps_sock_shutdown(ps_sock *sock);

/** Close now: on_close runs at once, the memory goes on the next turn of
 *  the loop. Unwritten bytes are dropped. Safe to call twice. */
void ps_sock_close(ps_sock *sock);

/** Close the socket at @p deadline_ms (monotonic), or never (0): this
 *  replaces the deadline it had. */
void ps_sock_set_deadline(ps_sock *sock, int64_t deadline_ms);

/** Call ops->on_timer at the first tick at or after @p at_ms (once; 0
 *  cancels), unless the socket closes first. */
void ps_sock_call_at(ps_sock *sock, int64_t at_ms);

/** Close every socket of @p net now. */
void ps_sock_close_all(struct ps_net *net);

#endif
