/*
 * A generator connection's socket: non-blocking connect from one of the
 * loopback source addresses, the WebSocket upgrade, frames in and out,
 * the two ways of going away (a close handshake, or the TCP connection
 * dropped without one), and the deadlines of every wait.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include "loadgen.h"
#include "ws.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define OPEN_TIMEOUT_US (30 * 1000000LL)
#define CLOSE_TIMEOUT_US (2 * 1000000LL)
#define MAX_MESSAGE (16u << 20) /* a presence reply of a big lobby fits */
#define READS_PER_TURN 64

void lg_group_name(const lg_run *run, uint32_t group, char *out, size_t cap)
{
    (void)run;
    snprintf(out, cap, "group:%u", group);
}

void lg_lobby_name(const lg_run *run, uint32_t lobby, char *out, size_t cap)
{
    (void)run;
    snprintf(out, cap, "lobby:%u", lobby);
}

/* Servers sharing presence (through Redis) take connections in turn, so
 * that the members of one group sit on different servers. */
static int port_of(const lg_run *run, const lg_conn *c)
{
    return run->opt.ports[c->index % run->opt.nports];
}

static uint32_t mask_key(lg_run *run)
{
    return (uint32_t)lg_random(run);
}

/* Forget the socket and what was buffered; open again if asked to. */
static void finish(lg_run *run, lg_conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->in.len = 0;
    c->out.len = 0;
    c->msg.len = 0;
    c->nreqs = 0;
    c->state = LG_IDLE;
    if (c->read_more) {
        c->read_more = false;
        run->read_more--;
    }
    if (c->counted) {
        c->counted = false;
        run->in_flight--;
    }
    c->deadline_us = 0; /* no wait before the next opening, unless a retry's */
    if (c->reopen && !c->probe) {
        c->reopen = false;
        run->queue[(run->qhead + run->qlen) % run->count] = (uint32_t)(c - run->conns);
        run->qlen++;
    }
}

bool lg_conn_start(lg_run *run, lg_conn *c)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
    /* The kernel's receive time of what each read returns. */
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    /* The port is picked at connect(): many sources share the port space. */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    uint32_t sources = run->opt.sources ? run->opt.sources : 1;
    src.sin_addr.s_addr = htonl(0x7F000001u + (c->index % sources));
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_of(run, c))};
    inet_pton(AF_INET, run->opt.host, &dst.sin_addr);
    c->fd = fd;
    c->state = LG_CONNECTING;
    c->started_us = lg_now_us();
    c->deadline_us = c->started_us + OPEN_TIMEOUT_US;
    c->client[0] = '\0';
    c->next_id = 2; /* 1 is the Centrifugo connect */
    c->counted = true;
    run->in_flight++;
    if (bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS)) {
        lg_session_ended(run, c, LG_FAIL_CONNECT);
        return true;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.ptr = c};
    if (epoll_ctl(run->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        lg_session_ended(run, c, LG_FAIL_CONNECT);
    }
    return true;
}

bool lg_conn_flush(lg_run *run, lg_conn *c)
{
    (void)run;
    size_t done = 0;
    while (done < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + done, c->out.len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break; /* EAGAIN waits for EPOLLOUT; errors show up as EOF */
        }
    }
    lg_buf_consume(&c->out, done);
    return true;
}

bool lg_conn_send_text(lg_run *run, lg_conn *c, const lg_buf *text)
{
    if (c->fd < 0) {
        return false;
    }
    if (!lg_ws_frame_append(&c->out, LG_WS_TEXT, text->data, text->len, mask_key(run))) {
        return false;
    }
    return lg_conn_flush(run, c);
}

/* Count the request as sent: the caller sends the text, or ends the
 * session. */
bool lg_conn_append_request(lg_run *run, lg_conn *c, lg_req_kind kind, uint32_t arg,
                            lg_buf *text)
{
    if (c->fd < 0 || c->nreqs >= LG_REQ_MAX) {
        return false;
    }
    char channel[64];
    uint32_t group = c->index / run->opt.group_size;
    uint32_t lobby = c->index / run->opt.lobby_size;
    uint32_t ngroups = (run->opt.n + run->opt.group_size - 1) / run->opt.group_size;
    switch (kind) {
    case LG_REQ_SUB_GROUP:
    case LG_REQ_CHECK_GROUP:
        lg_group_name(run, group, channel, sizeof channel);
        break;
    case LG_REQ_SUB_LOBBY:
    case LG_REQ_CHECK_LOBBY:
        lg_lobby_name(run, lobby, channel, sizeof channel);
        break;
    case LG_REQ_PRESENCE:
    case LG_REQ_STATS:
        if (arg == 0) {
            lg_group_name(run, group, channel, sizeof channel);
        } else {
            lg_lobby_name(run, lobby, channel, sizeof channel);
        }
        break;
    case LG_REQ_PROBE:
        if (arg < ngroups) {
            lg_group_name(run, arg, channel, sizeof channel);
        } else {
            lg_lobby_name(run, arg - ngroups, channel, sizeof channel);
        }
        break;
    default:
        return false;
    }
    uint32_t id = c->next_id++;
    if (text->len > 0 && !lg_buf_append(text, "\n", 1)) {
        return false;
    }
    bool ok;
    switch (kind) {
    case LG_REQ_SUB_GROUP:
        ok = run->opt.proto->subscribe(text, id, channel, true);
        break;
    case LG_REQ_SUB_LOBBY:
        ok = run->opt.proto->subscribe(text, id, channel, false);
        break;
    case LG_REQ_STATS:
    case LG_REQ_PROBE:
        ok = run->opt.proto->presence_stats(text, id, channel);
        break;
    default:
        ok = run->opt.proto->presence(text, id, channel);
        break;
    }
    if (!ok) {
        return false;
    }
    lg_request *r = &c->reqs[c->nreqs++];
    r->id = id;
    r->kind = (uint8_t)kind;
    r->arg = arg;
    r->sent_us = lg_now_us();
    return true;
}

bool lg_conn_request(lg_run *run, lg_conn *c, lg_req_kind kind, uint32_t arg)
{
    lg_buf text = {0};
    bool ok = lg_conn_append_request(run, c, kind, arg, &text) && lg_conn_send_text(run, c, &text);
    lg_buf_free(&text);
    return ok;
}

bool lg_conn_request_all(lg_run *run, lg_conn *c, const lg_req_kind *kinds, size_t count)
{
    if (!run->opt.proto->batches) {
        for (size_t i = 0; i < count; i++) {
            if (!lg_conn_request(run, c, kinds[i], 0)) {
                return false;
            }
        }
        return true;
    }
    lg_buf text = {0};
    bool ok = true;
    for (size_t i = 0; ok && i < count; i++) {
        ok = lg_conn_append_request(run, c, kinds[i], 0, &text);
    }
    ok = ok && lg_conn_send_text(run, c, &text);
    lg_buf_free(&text);
    return ok;
}

void lg_conn_close_clean(lg_run *run, lg_conn *c)
{
    if (c->fd < 0) {
        return;
    }
    lg_ws_close_append(&c->out, 1000, mask_key(run));
    lg_conn_flush(run, c);
    c->state = LG_CLOSING;
    c->deadline_us = lg_now_us() + CLOSE_TIMEOUT_US;
}

void lg_conn_drop(lg_run *run, lg_conn *c, bool reset)
{
    if (c->fd >= 0 && reset) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    finish(run, c);
}

/* A whole text message: hand it to the protocol. */
static void on_text(void *ctx, const lg_msg *msg);

typedef struct dispatch {
    lg_run *run;
    lg_conn *conn;
} dispatch;

static void on_text(void *ctx, const lg_msg *msg)
{
    dispatch *d = ctx;
    if (d->conn->fd >= 0) {
        lg_session_message(d->run, d->conn, msg);
    }
}

static bool wants_body(void *ctx, uint32_t id)
{
    const dispatch *d = ctx;
    return lg_session_wants_body(d->conn, id);
}

static void deliver(lg_run *run, lg_conn *c, const char *text, size_t len)
{
    dispatch d = {run, c};
    run->opt.proto->parse(text, len, on_text, wants_body, &d);
}

/* One frame; false when the connection ended. */
static bool on_frame(lg_run *run, lg_conn *c, const lg_ws_frame *f)
{
    switch (f->opcode) {
    case LG_WS_TEXT:
    case LG_WS_BINARY:
    case LG_WS_CONTINUATION:
        if (f->fin && c->msg.len == 0 && f->opcode != LG_WS_CONTINUATION) {
            deliver(run, c, f->payload, f->len);
        } else {
            if (c->msg.len + f->len > MAX_MESSAGE || !lg_buf_append(&c->msg, f->payload, f->len)) {
                lg_session_ended(run, c, LG_FAIL_CLOSED);
                return false;
            }
            if (f->fin) {
                /* deliver() may end the connection, which empties msg. */
                lg_buf whole = c->msg;
                c->msg = (lg_buf){0};
                deliver(run, c, whole.data, whole.len);
                whole.len = 0;
                if (c->msg.data == NULL) {
                    c->msg = whole;
                } else {
                    lg_buf_free(&whole);
                }
            }
        }
        return c->fd >= 0;
    case LG_WS_PING:
        lg_ws_frame_append(&c->out, LG_WS_PONG, f->payload, f->len, mask_key(run));
        lg_conn_flush(run, c);
        return true;
    case LG_WS_PONG:
        return true;
    case LG_WS_CLOSE:
        if (c->state == LG_CLOSING) {
            finish(run, c);
        } else {
            lg_session_ended(run, c, LG_FAIL_CLOSED);
        }
        return false;
    default:
        lg_session_ended(run, c, LG_FAIL_CLOSED);
        return false;
    }
}

/* What is in c->in: the upgrade answer, then frames. */
static void process_input(lg_run *run, lg_conn *c)
{
    size_t at = 0;
    if (c->state == LG_UPGRADING) {
        long n = lg_ws_response(c->in.data, c->in.len);
        if (n == 0) {
            return;
        }
        if (n < 0) {
            lg_session_ended(run, c, LG_FAIL_HANDSHAKE);
            return;
        }
        at = (size_t)n;
        if (run->opt.proto->hello_after_open) {
            c->state = LG_OPENING;
        } else {
            lg_session_message(run, c, &(lg_msg){.kind = LG_MSG_OPEN});
        }
    }
    while (c->fd >= 0 && at < c->in.len) {
        lg_ws_frame f;
        long n = lg_ws_parse(c->in.data + at, c->in.len - at, MAX_MESSAGE, &f);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            lg_session_ended(run, c, LG_FAIL_CLOSED);
            return;
        }
        at += (size_t)n;
        if (!on_frame(run, c, &f)) {
            return;
        }
    }
    if (c->fd >= 0) {
        lg_buf_consume(&c->in, at);
    }
}

/* The connect is done: writable without an error or a hang-up is a
 * connection (no getsockopt(SO_ERROR) needed to tell). */
static void connected(lg_run *run, lg_conn *c, uint32_t events)
{
    if (events & (EPOLLERR | EPOLLHUP)) {
        lg_session_ended(run, c, LG_FAIL_CONNECT);
        return;
    }
    char host_port[96];
    snprintf(host_port, sizeof host_port, "%s:%d", run->opt.host, port_of(run, c));
    c->state = LG_UPGRADING;
    if (!lg_ws_request(&c->out, host_port, run->opt.proto->path, lg_random(run))) {
        lg_session_ended(run, c, LG_FAIL_HANDSHAKE);
        return;
    }
    lg_conn_flush(run, c);
}

/* recv() into c->in, noting when the kernel received the bytes (the
 * newest of them, if they came in several packets: a reply is never
 * timed earlier than it arrived). */
static ssize_t read_stamped(lg_conn *c, size_t room)
{
    struct iovec iov = {c->in.data + c->in.len, room};
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    ssize_t n = recvmsg(c->fd, &msg, 0);
    if (n <= 0) {
        return n;
    }
    c->arrived_us = 0; /* unless the kernel says: never an older read's */
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL;
         cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof ts);
            c->arrived_us = lg_realtime_to_us(&ts);
        }
    }
    return n;
}

void lg_conn_events(lg_run *run, lg_conn *c, uint32_t events)
{
    if (c->fd < 0) {
        return;
    }
    if (c->state == LG_CONNECTING) {
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
            return;
        }
        connected(run, c, events);
        if (c->fd < 0) {
            return;
        }
    }
    if (events & EPOLLOUT) {
        lg_conn_flush(run, c);
    }
    if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) {
        return;
    }
    bool eof = false;
    if (c->read_more) {
        c->read_more = false;
        run->read_more--;
    }
    /* Edge-triggered: read until the socket is drained, but at most
     * READS_PER_TURN times in one turn, so that one flooding server
     * connection cannot hold the loop; the rest is read in the next turn
     * (lg_conn_read_more). A read shorter than asked drained it (new bytes
     * make a new edge), unless the peer's FIN came with this edge: then on
     * to the end of file. */
    bool fin = (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
    if (c->in.cap == 0) {
        c->in = run->spare_in;
        run->spare_in = (lg_buf){0};
    }
    for (int reads = 0;; reads++) {
        if (reads == READS_PER_TURN) {
            c->read_more = true;
            run->read_more++;
            break;
        }
        if (!lg_buf_reserve(&c->in, 16384)) {
            eof = true;
            break;
        }
        size_t room = c->in.cap - c->in.len;
        ssize_t n = read_stamped(c, room);
        if (n > 0) {
            c->in.len += (size_t)n;
            if ((size_t)n < room && !fin) {
                break;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
    }
    process_input(run, c);
    if (c->in.len == 0 && c->in.cap > 0) {
        /* Most connections are quiet most of the time: no 16 KiB each. */
        if (run->spare_in.cap == 0) {
            run->spare_in = c->in;
            c->in = (lg_buf){0};
        } else {
            lg_buf_free(&c->in);
        }
    }
    if (eof && c->fd >= 0) {
        if (c->state == LG_CLOSING) {
            finish(run, c);
        } else {
            lg_session_ended(run, c, c->state == LG_UPGRADING ? LG_FAIL_HANDSHAKE
                                                              : LG_FAIL_CLOSED);
        }
    }
}

static void check_deadline(lg_run *run, lg_conn *c, int64_t now)
{
    if (c->fd < 0 || now < c->deadline_us) {
        return;
    }
    if (c->state == LG_CLOSING) {
        finish(run, c);
    } else if (c->state != LG_READY) {
        lg_session_ended(run, c, LG_FAIL_TIMEOUT);
    }
}

void lg_conn_timeouts(lg_run *run, int64_t now)
{
    for (uint32_t i = 0; i < run->count; i++) {
        check_deadline(run, &run->conns[i], now);
    }
    check_deadline(run, &run->probe, now);
}

void lg_conn_finish(lg_run *run, lg_conn *c)
{
    finish(run, c);
}

void lg_conn_read_more(lg_run *run)
{
    /* As for a FIN: to EAGAIN or the end, since the edge that brought a
     * FIN may be the one cut short. */
    for (uint32_t i = 0; i < run->count && run->read_more > 0; i++) {
        if (run->conns[i].read_more) {
            lg_conn_events(run, &run->conns[i], EPOLLIN | EPOLLRDHUP);
        }
    }
    if (run->probe.read_more) {
        lg_conn_events(run, &run->probe, EPOLLIN | EPOLLRDHUP);
    }
}
