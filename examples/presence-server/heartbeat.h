/*
 * Heartbeats: server pings ({}), pong deadlines (3012 no pong), connection
 * token expiry (3005 expired) and transports that never send a connect
 * command (3502 stale). The event loop calls ps_heartbeat_tick() a few
 * times a second; a tick only queues messages or asks for closes, which
 * the transport then enforces (ws_conn.h).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_HEARTBEAT_H
#define PS_HEARTBEAT_H

#include <stdint.h>

struct ps_server;
struct ps_conn;

/** Look at every transport of @p server: ping, or close the ones due. */
void ps_heartbeat_tick(struct ps_server *server);

/** Start the stale timer of a new transport (3502 without a connect). */
void ps_heartbeat_watch(struct ps_conn *conn);

/** Arm the timers of a connection that just connected; @p expires_at is
 *  its token's expiry (unix seconds, 0 = none). */
void ps_heartbeat_arm(struct ps_server *server, struct ps_conn *conn,
                      int64_t expires_at);

/** The ping has been written (the kernel has it): the pong deadline
 *  starts now, not when the ping was queued, so that a backlog of the
 *  server's own never counts against the client. Takes conn->qlock. */
void ps_heartbeat_ping_written(struct ps_conn *conn);

/** A pong arrived. */
void ps_heartbeat_pong(struct ps_conn *conn);

#endif
