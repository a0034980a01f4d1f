/*
 * Heartbeats, ticked by the loop. See heartbeat.h.
 * SPDX-License-Identifier: MIT
 */
#include "heartbeat.h"

#include "conn.h"
#include "mem.h"
#include "server.h"
#include "util.h"

#include <stdlib.h>

/* A transport that sends no connect command in time is closed with 3502
 * "stale", as Centrifugo's client_stale_close_delay (10 s) does. */
#define STALE_CLOSE_DELAY_MS 10000

void ps_heartbeat_watch(ps_conn *conn)
{
    pthread_mutex_lock(&conn->qlock);
    conn->stale_deadline_ms = ps_now_ms() + STALE_CLOSE_DELAY_MS;
    pthread_mutex_unlock(&conn->qlock);
}

static const char ping_message[] = "{}";

void ps_heartbeat_arm(ps_server *server, ps_conn *conn, int64_t expires_at)
{
    int64_t interval = server->cfg->ping_interval_ms;
    pthread_mutex_lock(&conn->qlock);
    conn->expires_at = expires_at;
    conn->next_ping_ms = interval > 0 ? ps_now_ms() + interval : 0;
    conn->pong_deadline_ms = 0;
    conn->awaiting_pong = false;
    conn->stale_deadline_ms = 0;
    pthread_mutex_unlock(&conn->qlock);
}

void ps_heartbeat_ping_written(ps_conn *conn)
{
    int64_t timeout = conn->server->cfg->pong_timeout_ms;
    pthread_mutex_lock(&conn->qlock);
    if (conn->awaiting_pong && conn->pong_deadline_ms == 0 && timeout > 0) {
        conn->pong_deadline_ms = ps_now_ms() + timeout;
    }
    pthread_mutex_unlock(&conn->qlock);
}

void ps_heartbeat_pong(ps_conn *conn)
{
    pthread_mutex_lock(&conn->qlock);
    conn->pong_deadline_ms = 0;
    conn->awaiting_pong = false;
    pthread_mutex_unlock(&conn->qlock);
}

/* What a tick decides for one connection. */
typedef enum verdict { KEEP, PING, NO_PONG, EXPIRED, STALE } verdict;

static verdict check(ps_server *server, ps_conn *conn, int64_t now_ms,
                     int64_t now_unix)
{
    verdict v = KEEP;
    pthread_mutex_lock(&conn->qlock);
    if (conn->closing) {
        v = KEEP;
    } else if (conn->stale_deadline_ms > 0 && now_ms >= conn->stale_deadline_ms) {
        v = STALE;
    } else if (conn->expires_at > 0 && now_unix >= conn->expires_at) {
        v = EXPIRED;
    } else if (conn->pong_deadline_ms > 0 && now_ms >= conn->pong_deadline_ms) {
        v = NO_PONG;
    } else if (conn->next_ping_ms > 0 && now_ms >= conn->next_ping_ms) {
        v = PING;
        conn->next_ping_ms = now_ms + server->cfg->ping_interval_ms;
        if (server->cfg->pong_timeout_ms > 0 && !conn->awaiting_pong) {
            /* The deadline starts once the ping is written (flush). */
            conn->awaiting_pong = true;
            conn->ping_queued = true;
        }
    }
    pthread_mutex_unlock(&conn->qlock);
    return v;
}

void ps_heartbeat_tick(ps_server *server)
{
    size_t count = 0;
    ps_conn **conns = ps_server_transports(server, &count);
    int64_t now_ms = ps_now_ms();
    int64_t now_unix = ps_unix_time();
    for (size_t i = 0; i < count; i++) {
        ps_conn *conn = conns[i];
        switch (check(server, conn, now_ms, now_unix)) {
        case PING:
            ps_conn_send_text(conn, ping_message, sizeof ping_message - 1);
            break;
        case NO_PONG:
            ps_conn_request_close(conn, 3012, "no pong");
            break;
        case EXPIRED:
            ps_conn_request_close(conn, 3005, "expired");
            break;
        case STALE:
            ps_conn_request_close(conn, 3502, "stale");
            break;
        case KEEP:
            break;
        }
        ps_conn_unref(conn);
    }
    ps_free(conns);
    ps_server_expire_due(server);
}
