/*
 * The heartbeat thread: server pings ({}), pong deadlines (3012 no pong),
 * connection token expiry (3005 expired) and transports that never send a
 * connect command (3502 stale).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_HEARTBEAT_H
#define PS_HEARTBEAT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct ps_server;
struct ps_conn;

typedef struct ps_heartbeat {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    bool running;
    pthread_t thread;
} ps_heartbeat;

int ps_heartbeat_start(ps_heartbeat *hb, struct ps_server *server);
void ps_heartbeat_stop(ps_heartbeat *hb);

/** Start the stale timer of a new transport (3502 without a connect). */
void ps_heartbeat_watch(struct ps_conn *conn);

/** Arm the timers of a connection that just connected; @p expires_at is
 *  its token's expiry (unix seconds, 0 = none). */
void ps_heartbeat_arm(struct ps_server *server, struct ps_conn *conn,
                      int64_t expires_at);

/** A pong arrived. */
void ps_heartbeat_pong(struct ps_conn *conn);

#endif
