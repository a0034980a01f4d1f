/*
 * The loop thread: listener, wake-ups, the tick and the shutdown. See
 * net.h.
 * SPDX-License-Identifier: MIT
 */
#include "net.h"

#include "admin.h"
#include "conn.h"
#include "http_server.h"
#include "mem.h"
#include "server.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define LISTEN_BACKLOG 4096
/* Accept errors (EMFILE: out of descriptors) are logged at most this often. */
#define ACCEPT_LOG_EVERY_MS 5000
/* The registry's graces and coalesced diffs are looked at every this many
 * ticks. */
#define EXPIRE_TICKS 2

static void close_handles(ps_net *net);
static void on_source_timer(uv_timer_t *timer);

static void on_connection(uv_stream_t *listener, int status)
{
    ps_net *net = listener->data;
    if (status < 0) {
        /* Out of descriptors, say: libuv has already taken the waiting
         * connection off the backlog with its reserve descriptor and
         * closed it, so that the loop does not spin on it. */
        net->accept_errors++;
        int64_t now = ps_now_ms();
        if (now - net->last_accept_log_ms >= ACCEPT_LOG_EVERY_MS) {
            net->last_accept_log_ms = now;
            ps_log("accept: %s (%llu in all)", uv_strerror(status),
                   (unsigned long long)net->accept_errors);
        }
        return;
    }
    if (net->stopping) {
        return;
    }
    ps_http_accept(net);
}

static void begin_stop(ps_net *net)
{
    net->stopping = true;
    net->stop_started_ms = ps_now_ms();
    if (net->listening) {
        uv_close((uv_handle_t *)&net->listener, NULL);
        net->listening = false;
    }
    /* The admin page's streams end at their next tick. */
    ps_admin_stop(net->server);
    ps_http_close_idle(net);
    /* Centrifugo's shutdown code: the SDKs reconnect to the next server. */
    ps_server_close_all(net->server, 3001, "shutdown");
}

static void finish_stop(ps_net *net, int64_t now)
{
    if (net->sock_count > 0) {
        ps_log("closing %zu connections still open %lld ms after the "
               "shutdown closes", net->sock_count,
               (long long)(now - net->stop_started_ms));
    }
    ps_sock_close_all(net); /* every client leaves its channels */
    /* The wake handle closes below: from now on a schedule (the cluster's
     * thread, until it stops) only queues, and ps_server_fini drains. */
    ps_writer_set_wake(&net->server->writer, NULL, NULL);
    ps_writer_drain(&net->server->writer);
    close_handles(net);
}

static void on_wake(uv_async_t *async)
{
    ps_net *net = async->data;
    ps_writer_drain(&net->server->writer);
    if (atomic_load(&net->stop_requested) && !net->stopping) {
        begin_stop(net);
    }
}

/* The net whose loop runs on this thread, if any. */
static _Thread_local ps_net *loop_of_thread;

static void on_flush(uv_prepare_t *prepare)
{
    ps_net *net = prepare->data;
    ps_writer_drain(&net->server->writer);
    /* The loop waits next: what it did since it last waited, less the
     * wait, is one turn's work. */
    uint64_t now = uv_hrtime();
    uint64_t idle = uv_metrics_idle_time(&net->loop);
    if (net->turn_ns != 0) {
        uint64_t spent = now - net->turn_ns;
        uint64_t waited = idle - net->turn_idle_ns;
        ps_metrics_loop_busy(&net->server->metrics,
                             spent > waited ? spent - waited : 0);
    }
    net->turn_ns = now;
    net->turn_idle_ns = idle;
}

static void on_tick(uv_timer_t *timer)
{
    ps_net *net = timer->data;
    int64_t now = ps_now_ms();
    if (!net->stopping && ++net->ticks % EXPIRE_TICKS == 0) {
        ps_server_expire_due(net->server);
    }
    /* Pings, heartbeat closes, the sockets' deadlines and stalls, the
     * streams that wait: only what is due. */
    ps_timers_run(&net->timers, now);
    ps_writer_drain(&net->server->writer);
    if (net->stopping && (net->sock_count == 0 || now >= net->stop_deadline_ms)) {
        finish_stop(net, now);
    }
}

static void source_fire(ps_net *net)
{
    int64_t due = net->source_run(net->source_ctx);
    if (due >= 0) {
        uv_timer_start(&net->source_timer, on_source_timer, (uint64_t)due, 0);
    } else {
        uv_timer_stop(&net->source_timer);
    }
}

static void on_source_poll(uv_poll_t *poll, int status, int events)
{
    (void)status; /* an error on the descriptor: the source sees it too */
    (void)events;
    source_fire(poll->data);
}

static void on_source_timer(uv_timer_t *timer)
{
    source_fire(timer->data);
}

int ps_net_add_source(ps_net *net, int fd, int64_t (*run)(void *ctx),
                      void *ctx)
{
    if (net->has_source || uv_poll_init(&net->loop, &net->source_poll, fd) != 0) {
        return -1;
    }
    net->source_poll.data = net;
    uv_timer_init(&net->loop, &net->source_timer);
    net->source_timer.data = net;
    net->source_run = run;
    net->source_ctx = ctx;
    net->has_source = true;
    uv_poll_start(&net->source_poll, UV_READABLE, on_source_poll);
    uv_timer_start(&net->source_timer, on_source_timer, 0, 0);
    return 0;
}

static void close_handles(ps_net *net)
{
    uv_handle_t *handles[] = {
        (uv_handle_t *)&net->wake,
        (uv_handle_t *)&net->flush,
        (uv_handle_t *)&net->tick,
        (uv_handle_t *)&net->more_idle,
        (uv_handle_t *)&net->source_poll,
        (uv_handle_t *)&net->source_timer,
    };
    /* The source's two come last: without one they were never made. */
    size_t count = sizeof handles / sizeof handles[0] - (net->has_source ? 0 : 2);
    for (size_t i = 0; i < count; i++) {
        if (!uv_is_closing(handles[i])) {
            uv_close(handles[i], NULL);
        }
    }
    if (net->listening) {
        uv_close((uv_handle_t *)&net->listener, NULL);
        net->listening = false;
    }
}

static int listen_on(ps_net *net, char *err, size_t err_len)
{
    const ps_config *cfg = net->server->cfg;
    struct sockaddr_storage addr;
    int rc = strchr(cfg->address, ':') != NULL
                 ? uv_ip6_addr(cfg->address, cfg->port, (struct sockaddr_in6 *)&addr)
                 : uv_ip4_addr(cfg->address, cfg->port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        return ps_fail(err, err_len, "cannot listen on %s:%d: bad address",
                       cfg->address, cfg->port);
    }
    rc = uv_tcp_init(&net->loop, &net->listener);
    if (rc == 0) {
        net->listening = true;
        net->listener.data = net;
        rc = uv_tcp_bind(&net->listener, (const struct sockaddr *)&addr, 0);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&net->listener, LISTEN_BACKLOG,
                       on_connection);
    }
    if (rc != 0) {
        return ps_fail(err, err_len, "cannot listen on %s:%d: %s",
                       cfg->address, cfg->port, uv_strerror(rc));
    }
    return 0;
}

int ps_net_init(ps_net *net, ps_server *server, char *err, size_t err_len)
{
    memset(net, 0, sizeof *net);
    net->server = server;
    ps_timers_init(&net->timers, ps_now_ms());
    server->timers = &net->timers;
    atomic_init(&net->stop_requested, false);
    int rc = uv_loop_init(&net->loop);
    if (rc != 0) {
        return ps_fail(err, err_len, "libuv: %s", uv_strerror(rc));
    }
    /* The time spent waiting for events, for the metrics. */
    rc = uv_loop_configure(&net->loop, UV_METRICS_IDLE_TIME);
    if (rc != 0) {
        (void)uv_loop_close(&net->loop);
        return ps_fail(err, err_len, "libuv: %s", uv_strerror(rc));
    }
    pthread_mutex_init(&net->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&net->cond, &attr);
    pthread_condattr_destroy(&attr);
    uv_async_init(&net->loop, &net->wake, on_wake);
    net->wake.data = net;
    uv_prepare_init(&net->loop, &net->flush);
    net->flush.data = net;
    uv_timer_init(&net->loop, &net->tick);
    net->tick.data = net;
    uv_idle_init(&net->loop, &net->more_idle);
    net->more_idle.data = net;
    if (listen_on(net, err, err_len) != 0) {
        ps_net_fini(net);
        return -1;
    }
    return 0;
}

static void *loop_main(void *arg)
{
    ps_net *net = arg;
    /* Named for an operator's top -H, perf and /proc. */
    prctl(PR_SET_NAME, "ps-loop", 0, 0, 0);
    loop_of_thread = net;
    uv_run(&net->loop, UV_RUN_DEFAULT);
    pthread_mutex_lock(&net->lock);
    net->done = true;
    pthread_cond_signal(&net->cond);
    pthread_mutex_unlock(&net->lock);
    return NULL;
}

int ps_net_start(ps_net *net)
{
    uv_timer_start(&net->tick, on_tick, PS_NET_TICK_MS, PS_NET_TICK_MS);
    uv_prepare_start(&net->flush, on_flush);
    if (pthread_create(&net->thread, NULL, loop_main, net) != 0) {
        return -1;
    }
    net->started = true;
    return 0;
}

void ps_net_wake(ps_net *net)
{
    if (loop_of_thread == net) {
        return; /* on_flush drains before the loop waits */
    }
    uv_async_send(&net->wake);
}

bool ps_net_stop(ps_net *net, long grace_ms, long wait_ms)
{
    if (!net->started) {
        return true;
    }
    /* Read on the loop thread once it sees stop_requested. */
    net->stop_deadline_ms = ps_now_ms() + grace_ms;
    atomic_store(&net->stop_requested, true);
    uv_async_send(&net->wake);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&net->lock);
    while (!net->done &&
           pthread_cond_timedwait(&net->cond, &net->lock, &until) != ETIMEDOUT) {
    }
    bool done = net->done;
    pthread_mutex_unlock(&net->lock);
    if (done) {
        pthread_join(net->thread, NULL);
        net->started = false;
    }
    return done;
}

void ps_net_fini(ps_net *net)
{
    /* Without a thread (a failed start): close and run the handles out. */
    close_handles(net);
    uv_run(&net->loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&net->loop);
    ps_free(net->routes);
    if (net->server != NULL && net->server->timers == &net->timers) {
        net->server->timers = NULL;
    }
    pthread_mutex_destroy(&net->lock);
    pthread_cond_destroy(&net->cond);
}
