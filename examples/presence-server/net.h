/*
 * The server's network side: one libuv loop on a thread of its own, the
 * listener, every socket (sock.h) and the routes of the HTTP server
 * (http_server.h). Everything here runs on the loop thread but
 * ps_net_start(), ps_net_stop() and ps_net_wake(), which any thread calls,
 * and ps_net_add_source(), called before the loop starts (the cluster
 * handle, with "redis_on_loop").
 *
 * Other threads reach the loop through one uv_async: the writer's ready
 * list (writer.h) and the stop request are looked at each time it fires.
 * On the loop itself a schedule fires nothing: the ready list is drained
 * once a turn, before the loop waits, so that the replies and pushes a
 * turn's reads make for one connection leave in one write.
 * One uv timer ticks every PS_NET_TICK_MS and runs the timing wheel
 * (timers.h), which holds every deadline of the sockets (sock.h) and of
 * the connections' heartbeats (heartbeat.h): a tick costs what is due,
 * not what is open. Every other tick it also ends the registry's graces
 * that are due (ps_server_expire_due()).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_NET_H
#define PS_NET_H

#include "sock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct ps_server;
struct ps_http_route;

#define PS_NET_TICK_MS 100

/** How long a client has to send its request (or its WebSocket upgrade)
 *  from the moment it is accepted: a slow sender is closed after it. */
#define PS_NET_REQUEST_TIMEOUT_MS 5000

/** How long a close the server decided waits for the peer's close frame
 *  before the socket is closed anyway. */
#define PS_NET_CLOSE_TIMEOUT_MS 1000

typedef struct ps_net {
    struct ps_server *server;
    uv_loop_t loop;
    uv_async_t wake;
    uv_prepare_t flush; /* drains the writer before each wait */
    /* At the last wait's start: the time and the loop's idle time (the
     * metrics' loop_busy is the difference of their differences). */
    uint64_t turn_ns, turn_idle_ns;
    uv_timer_t tick;
    uv_tcp_t listener;
    bool listening;
    pthread_t thread;
    bool started;

    ps_sock *socks; /* every open socket */
    size_t sock_count;
    ps_timers timers; /* the sockets' and the heartbeats' (loop only) */

    struct ps_http_route *routes; /* see http_server.h */
    size_t route_count;
    struct ps_http_exchange *more; /* streams with more to write */
    uv_idle_t more_idle;

    /* An outside source of work (ps_net_add_source): its descriptor and
     * its own deadline. */
    uv_poll_t source_poll;
    uv_timer_t source_timer;
    int64_t (*source_run)(void *ctx);
    void *source_ctx;
    bool has_source;

    unsigned ticks;
    uint64_t accept_errors;
    int64_t last_accept_log_ms;

    /* Shutdown: asked by ps_net_stop(), run on the loop. */
    atomic_bool stop_requested;
    bool stopping;
    int64_t stop_deadline_ms;
    int64_t stop_started_ms;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done; /* the loop thread has finished */
} ps_net;

/** Create the loop and listen on the config's address and port; no
 *  thread yet. 0, or -1 with @p err (the port is taken, say). */
int ps_net_init(ps_net *net, struct ps_server *server, char *err,
                size_t err_len);

/**
 * Before ps_net_start(): run @p run(@p ctx) on the loop thread whenever
 * @p fd is readable or the time @p run last returned (ms from then; -1:
 * none) has passed, and once at the loop's start. The loop stops
 * watching when it stops. One source per net. 0, or -1 (a second source,
 * or libuv refused the descriptor).
 */
int ps_net_add_source(ps_net *net, int fd, int64_t (*run)(void *ctx),
                      void *ctx);

/** Run the loop on a thread of its own. 0 or -1. */
int ps_net_start(ps_net *net);

/** From any thread: have the loop look at the writer's ready list. */
void ps_net_wake(ps_net *net);

/**
 * From any thread but the loop's: close every WebSocket with 3001
 * "shutdown", give the peers @p grace_ms to answer, close whatever is
 * left (each client leaving its channels), stop the loop and wait for its
 * thread. Returns false if the thread did not end within @p wait_ms (it
 * then still owns the net: the caller must not free it).
 */
bool ps_net_stop(ps_net *net, long grace_ms, long wait_ms);

/** Undo ps_net_init() after the thread ended (or was never started). */
void ps_net_fini(ps_net *net);

#endif
