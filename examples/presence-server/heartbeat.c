/*
 * Heartbeats on the loop's timing wheel. See heartbeat.h.
 * SPDX-License-Identifier: MIT
 */
#include "heartbeat.h"

#include "conn.h"
#include "server.h"
#include "timers.h"
#include "util.h"

#include <stddef.h>
#include <time.h>

/* A transport that sends no connect command in time is closed with 3502
 * "stale", as Centrifugo's client_stale_close_delay (10 s) does. */
#define STALE_CLOSE_DELAY_MS 10000

static const char ping_message[] = "{}";

/* The wall clock in ms: a token's expiry is a unix time, and the timer
 * that waits for it runs on the monotonic clock. */
static int64_t unix_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void earliest(int64_t *due, int64_t deadline_ms)
{
    if (deadline_ms > 0 && (*due == 0 || deadline_ms < *due)) {
        *due = deadline_ms;
    }
}

/* Under qlock: when the heartbeat next has something to decide for @p conn
 * (monotonic ms), or 0 for never. */
static int64_t next_due_locked(const ps_conn *conn, int64_t now_ms)
{
    if (conn->closing) {
        return 0;
    }
    int64_t due = 0;
    earliest(&due, conn->stale_deadline_ms);
    earliest(&due, conn->pong_deadline_ms);
    earliest(&due, conn->next_ping_ms);
    if (conn->expires_at > 0) {
        /* The expiry second begins this far from now (the check itself
         * reads the unix time, as before, and re-arms if it comes early). */
        int64_t left = conn->expires_at * 1000 - unix_now_ms();
        earliest(&due, now_ms + (left > 0 ? left : 0));
    }
    return due;
}

static void on_timer(ps_timer *timer, int64_t now_ms);

/* Arm the connection's timer for its earliest deadline, or disarm it. */
static void schedule(ps_conn *conn)
{
    ps_timers *wheel = conn->server->timers;
    if (wheel == NULL) {
        return;
    }
    pthread_mutex_lock(&conn->qlock);
    int64_t due = next_due_locked(conn, ps_now_ms());
    pthread_mutex_unlock(&conn->qlock);
    conn->heartbeat.fire = on_timer;
    if (due == 0) {
        ps_timer_cancel(wheel, &conn->heartbeat);
    } else if (!ps_timer_armed(&conn->heartbeat) || conn->heartbeat.due_ms != due) {
        ps_timer_arm(wheel, &conn->heartbeat, due);
    }
}

void ps_heartbeat_watch(ps_conn *conn)
{
    pthread_mutex_lock(&conn->qlock);
    conn->stale_deadline_ms = ps_now_ms() + STALE_CLOSE_DELAY_MS;
    pthread_mutex_unlock(&conn->qlock);
    schedule(conn);
}

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
    schedule(conn);
}

void ps_heartbeat_set_expiry(ps_conn *conn, int64_t expires_at)
{
    pthread_mutex_lock(&conn->qlock);
    conn->expires_at = expires_at;
    pthread_mutex_unlock(&conn->qlock);
    schedule(conn);
}

void ps_heartbeat_ping_written(ps_conn *conn)
{
    int64_t timeout = conn->server->cfg->pong_timeout_ms;
    pthread_mutex_lock(&conn->qlock);
    bool started = false;
    if (conn->awaiting_pong && conn->pong_deadline_ms == 0 && timeout > 0) {
        conn->pong_deadline_ms = ps_now_ms() + timeout;
        started = true;
    }
    pthread_mutex_unlock(&conn->qlock);
    if (started) {
        schedule(conn);
    }
}

void ps_heartbeat_pong(ps_conn *conn)
{
    pthread_mutex_lock(&conn->qlock);
    bool was_waiting = conn->pong_deadline_ms != 0;
    conn->pong_deadline_ms = 0;
    conn->awaiting_pong = false;
    pthread_mutex_unlock(&conn->qlock);
    if (was_waiting) {
        schedule(conn); /* the next ping, not the deadline, is next */
    }
}

void ps_heartbeat_stop(ps_conn *conn)
{
    if (conn->server->timers != NULL) {
        ps_timer_cancel(conn->server->timers, &conn->heartbeat);
    }
}

/* What a firing decides for one connection. */
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

static void on_timer(ps_timer *timer, int64_t now_ms)
{
    ps_conn *conn = (ps_conn *)((char *)timer - offsetof(ps_conn, heartbeat));
    /* The transport's reference keeps the connection: it is dropped only
     * once its socket has closed, which disarms this timer first. */
    switch (check(conn->server, conn, now_ms, ps_unix_time())) {
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
    schedule(conn);
}
