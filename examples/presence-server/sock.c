/*
 * Sockets on the loop: see sock.h.
 * SPDX-License-Identifier: MIT
 */
#include "sock.h"

#include "mem.h"
#include "net.h"
#include "util.h"

#include <stddef.h>
#include <string.h>

/* One uv_write: the request and the bytes it owns. */
typedef struct write_req {
    uv_write_t req;
    ps_sock *sock;
    size_t len;
    char data[];
} write_req;

/* One buffer serves every read: the loop reads one socket at a time and
 * each owner consumes (or copies) the bytes before the next read. */
static char read_buffer[65536];

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)handle;
    (void)suggested;
    *buf = uv_buf_init(read_buffer, sizeof read_buffer);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    ps_sock *sock = stream->data;
    (void)buf;
    if (nread > 0) {
        if (sock->ops->on_read != NULL) {
            sock->ops->on_read(sock, read_buffer, (size_t)nread);
        }
    } else if (nread == UV_EOF && sock->ops->on_eof != NULL) {
        ps_sock_read_stop(sock);
        sock->ops->on_eof(sock);
    } else if (nread < 0) {
        ps_sock_close(sock);
    }
}

static void link_sock(ps_net *net, ps_sock *sock)
{
    sock->prev = NULL;
    sock->next = net->socks;
    if (net->socks != NULL) {
        net->socks->prev = sock;
    }
    net->socks = sock;
    net->sock_count++;
}

static void unlink_sock(ps_net *net, ps_sock *sock)
{
    if (sock->prev != NULL) {
        sock->prev->next = sock->next;
    } else {
        net->socks = sock->next;
    }
    if (sock->next != NULL) {
        sock->next->prev = sock->prev;
    }
    sock->prev = sock->next = NULL;
    net->sock_count--;
}

/* When the timer must next look at the socket; 0 for never. */
static int64_t next_due(const ps_sock *sock)
{
    if (sock->failed) {
        return 1; /* long past: the next run */
    }
    int64_t due = sock->deadline_ms;
    if (sock->pending > 0) {
        int64_t stall = sock->last_progress_ms + PS_SOCK_WRITE_TIMEOUT_MS;
        due = due == 0 || stall < due ? stall : due;
    }
    if (sock->call_at_ms > 0) {
        due = due == 0 || sock->call_at_ms < due ? sock->call_at_ms : due;
    }
    return due;
}

static void schedule(ps_sock *sock)
{
    if (sock->closing) {
        return;
    }
    int64_t due = next_due(sock);
    if (due == 0) {
        ps_timer_cancel(&sock->net->timers, &sock->timer);
    } else if (!ps_timer_armed(&sock->timer) || sock->timer.due_ms != due) {
        ps_timer_arm(&sock->net->timers, &sock->timer, due);
    }
}

static void on_timer(ps_timer *timer, int64_t now_ms)
{
    ps_sock *sock = (ps_sock *)((char *)timer - offsetof(ps_sock, timer));
    if (sock->failed ||
        (sock->deadline_ms > 0 && now_ms >= sock->deadline_ms) ||
        (sock->pending > 0 &&
         now_ms - sock->last_progress_ms >= PS_SOCK_WRITE_TIMEOUT_MS)) {
        ps_sock_close(sock);
        return;
    }
    if (sock->call_at_ms > 0 && now_ms >= sock->call_at_ms) {
        sock->call_at_ms = 0;
        if (sock->ops->on_timer != NULL) {
            sock->ops->on_timer(sock, now_ms);
        }
        /* It may have closed the socket, whose memory stays until the
         * next turn of the loop. */
    }
    schedule(sock);
}

void ps_sock_set_deadline(ps_sock *sock, int64_t deadline_ms)
{
    sock->deadline_ms = deadline_ms;
    schedule(sock);
}

void ps_sock_call_at(ps_sock *sock, int64_t at_ms)
{
    sock->call_at_ms = at_ms;
    schedule(sock);
}

static void free_sock(uv_handle_t *handle)
{
    ps_free(handle->data);
}

ps_sock *ps_sock_accept(ps_net *net, uv_stream_t *listener,
                        const ps_sock_ops *ops, void *owner,
                        int64_t deadline_ms)
{
    ps_sock *sock = ps_calloc(1, sizeof *sock);
    if (sock == NULL) {
        return NULL;
    }
    sock->net = net;
    sock->ops = ops;
    sock->owner = owner;
    ps_timer_init(&sock->timer, on_timer);
    if (uv_tcp_init(&net->loop, &sock->tcp) != 0) {
        ps_free(sock);
        return NULL;
    }
    sock->tcp.data = sock;
    if (uv_accept(listener, (uv_stream_t *)&sock->tcp) != 0) {
        uv_close((uv_handle_t *)&sock->tcp, free_sock);
        return NULL;
    }
    (void)uv_tcp_nodelay(&sock->tcp, 1);
    link_sock(net, sock);
    ps_sock_set_deadline(sock, deadline_ms);
    ps_sock_read_start(sock);
    return sock;
}

void ps_sock_read_start(ps_sock *sock)
{
    if (!sock->reading && !sock->closing &&
        uv_read_start((uv_stream_t *)&sock->tcp, on_alloc, on_read) == 0) {
        sock->reading = true;
    }
}

void ps_sock_read_stop(ps_sock *sock)
{
    if (sock->reading) {
        uv_read_stop((uv_stream_t *)&sock->tcp);
        sock->reading = false;
    }
}

static void on_written(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    ps_sock *sock = w->sock;
    sock->pending -= w->len;
    sock->written += w->len;
    sock->last_progress_ms = ps_now_ms();
    ps_free(w);
    if (status < 0) {
        ps_sock_close(sock);
        return;
    }
    if (!sock->closing && sock->ops->on_drain != NULL) {
        sock->ops->on_drain(sock);
    }
}

static int write_failed(ps_sock *sock)
{
    sock->failed = true;
    ps_sock_read_stop(sock);
    schedule(sock); /* closed at the next run of the wheel */
    return -1;
}

int ps_sock_write(ps_sock *sock, const void *data, size_t len)
{
    if (sock->closing || sock->shut || sock->failed) {
        return -1;
    }
    if (len == 0) {
        return 0;
    }
    const char *bytes = data;
    size_t done = 0;
    if (sock->pending == 0) {
        /* Most writes fit in the socket's buffer: no copy, no request. */
        /* uv_try_write() does not write to the buffer; uv_buf_t just has
         * no const. */
        char *base;
        memcpy(&base, &bytes, sizeof base);
        uv_buf_t buf = uv_buf_init(base, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&sock->tcp, &buf, 1);
        if (n > 0) {
            done = (size_t)n;
            sock->submitted += done;
            sock->written += done;
            sock->last_progress_ms = ps_now_ms();
        } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
            return write_failed(sock);
        }
        if (done == len) {
            return 0;
        }
    }
    size_t rest = len - done;
    write_req *w = ps_malloc(sizeof *w + rest);
    if (w == NULL) {
        return write_failed(sock);
    }
    w->sock = sock;
    w->len = rest;
    memcpy(w->data, bytes + done, rest);
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)rest);
    if (uv_write(&w->req, (uv_stream_t *)&sock->tcp, &buf, 1, on_written) != 0) {
        ps_free(w);
        return write_failed(sock);
    }
    bool first = sock->pending == 0;
    if (first) {
        sock->last_progress_ms = ps_now_ms();
    }
    sock->pending += rest;
    sock->submitted += rest;
    if (first) {
        /* The stall limit starts; progress only pushes it later, which
         * the timer sees when it fires. */
        schedule(sock);
    }
    return 0;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status; /* a failed shutdown: the peer went; the deadline closes */
    ps_free(req);
}

void ps_sock_shutdown(ps_sock *sock)
{
    if (sock->closing || sock->shut || sock->failed) {
        return;
    }
    uv_shutdown_t *req = ps_malloc(sizeof *req);
    if (req == NULL ||
        uv_shutdown(req, (uv_stream_t *)&sock->tcp, on_shutdown) != 0) {
        ps_free(req);
        write_failed(sock);
        return;
    }
    sock->shut = true;
}

void ps_sock_close(ps_sock *sock)
{
    if (sock->closing) {
        return;
    }
    sock->closing = true;
    ps_timer_cancel(&sock->net->timers, &sock->timer);
    ps_sock_read_stop(sock);
    unlink_sock(sock->net, sock);
    sock->ops->on_close(sock);
    sock->owner = NULL;
    /* Pending writes complete with UV_ECANCELED before free_sock runs. */
    uv_close((uv_handle_t *)&sock->tcp, free_sock);
}

void ps_sock_close_all(ps_net *net)
{
    while (net->socks != NULL) {
        ps_sock_close(net->socks);
    }
}
