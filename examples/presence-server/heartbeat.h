/*
 * Heartbeats: server pings ({}), pong deadlines (3012 no pong), connection
 * token expiry (3005 expired) and transports that never send a connect
 * command (3502 stale).
 *
 * Each connection has one timer on the loop's wheel (server->timers,
 * timers.h), armed for the earliest of its deadlines: the stale deadline,
 * the next ping, the pong deadline and the token's expiry. The functions
 * below that change one re-arm it; when it fires, the connection is looked
 * at under its qlock as a whole (a ping, or the close that is due), and
 * the timer is armed for what comes next. A connection that is closing
 * has no heartbeat. A firing only queues messages or asks for closes,
 * which the transport then enforces (ws_conn.h).
 *
 * Loop thread only (the thread that owns server->timers), like the
 * deadlines they write; without a wheel (the tests' servers) the fields
 * are kept and nothing fires.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_HEARTBEAT_H
#define PS_HEARTBEAT_H

#include <stdint.h>

struct ps_server;
struct ps_conn;

/** Start the stale timer of a new transport (3502 without a connect). */
void ps_heartbeat_watch(struct ps_conn *conn);

/** Arm the timers of a connection that just connected; @p expires_at is
 *  its token's expiry (unix seconds, 0 = none). */
void ps_heartbeat_arm(struct ps_server *server, struct ps_conn *conn,
                      int64_t expires_at);

/** A new token expiry (a refresh command): set it and move the
 *  connection's timer to it. Loop thread (or no loop, in the tests). */
void ps_heartbeat_set_expiry(struct ps_conn *conn, int64_t expires_at);

/** The ping has been written (the kernel has it): the pong deadline
 *  starts now, not when the ping was queued, so that a backlog of the
 *  server's own never counts against the client. Takes conn->qlock. */
void ps_heartbeat_ping_written(struct ps_conn *conn);

/** A pong arrived. */
void ps_heartbeat_pong(struct ps_conn *conn);

/** The transport is gone: disarm its timer (before the connection can be
 *  freed). Safe to call twice, and for a connection never armed. */
void ps_heartbeat_stop(struct ps_conn *conn);

#endif
