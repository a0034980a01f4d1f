/*
 * One hiredis async connection, driven by the handle's epoll descriptor:
 * hiredis says when it wants to read or write through the ev hooks, and
 * we tell it when the socket is ready. hiredis frees a context itself when
 * the connection fails; its cleanup hook is where we learn that the
 * context is gone, whoever ended it.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>
#include <sys/epoll.h>

#include "cluster_internal.h"

static void watch(struct presence__cl_conn *conn, uint32_t want)
{
    if (conn->fd < 0 || want == conn->watching) {
        return;
    }
    struct epoll_event ev = {.events = want, .data.ptr = conn};
    int op = conn->watching == 0 ? EPOLL_CTL_ADD
             : want == 0         ? EPOLL_CTL_DEL
                                 : EPOLL_CTL_MOD;
    if (epoll_ctl(conn->cluster->epoll_fd, op, conn->fd, &ev) == 0) {
        conn->watching = want;
    } else {
        presence__cl_log(conn->cluster, PRESENCE_CLUSTER_LOG_ERROR,
                         "%s connection: epoll_ctl failed", conn->name);
    }
}

static void ev_add_read(void *p)
{
    struct presence__cl_conn *conn = p;
    watch(conn, conn->watching | EPOLLIN);
}

static void ev_del_read(void *p)
{
    struct presence__cl_conn *conn = p;
    watch(conn, conn->watching & ~(uint32_t)EPOLLIN);
}

static void ev_add_write(void *p)
{
    struct presence__cl_conn *conn = p;
    watch(conn, conn->watching | EPOLLOUT);
}

static void ev_del_write(void *p)
{
    struct presence__cl_conn *conn = p;
    watch(conn, conn->watching & ~(uint32_t)EPOLLOUT);
}

/* The context is being freed, by us or by hiredis after an error. */
static void ev_cleanup(void *p)
{
    struct presence__cl_conn *conn = p;
    watch(conn, 0);
    bool was_up = conn->state != CONN_DOWN;
    conn->ac = NULL;
    conn->fd = -1;
    conn->state = CONN_DOWN;
    conn->ready = false;
    conn->drop = false;
    if (was_up) {
        conn->on_down(conn);
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct presence__cl_conn *conn = ac->ev.data;
    if (status != REDIS_OK) {
        presence__cl_log(conn->cluster, PRESENCE_CLUSTER_LOG_WARNING,
                         "%s connection to %s:%d failed: %s", conn->name,
                         conn->cluster->host, conn->cluster->port,
                         ac->errstr[0] ? ac->errstr : "error");
        return; /* hiredis frees the context: ev_cleanup follows */
    }
    conn->state = CONN_UP;
    conn->on_up(conn);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct presence__cl_conn *conn = ac->ev.data;
    if (status != REDIS_OK) {
        presence__cl_log(conn->cluster, PRESENCE_CLUSTER_LOG_WARNING,
                         "%s connection lost: %s", conn->name,
                         ac->errstr[0] ? ac->errstr : "closed");
    }
}

void presence__cl_conn_init(struct presence__cl_conn *conn,
                            struct presence_cluster *c, const char *name,
                            void (*on_up)(struct presence__cl_conn *),
                            void (*on_down)(struct presence__cl_conn *))
{
    *conn = (struct presence__cl_conn){
        .cluster = c,
        .name = name,
        .fd = -1,
        .on_up = on_up,
        .on_down = on_down,
    };
}

bool presence__cl_conn_start(struct presence__cl_conn *conn)
{
    struct presence_cluster *c = conn->cluster;
    redisAsyncContext *ac = redisAsyncConnect(c->host, c->port);
    if (ac == NULL) {
        return false;
    }
    if (ac->err) {
        presence__cl_log(c, PRESENCE_CLUSTER_LOG_WARNING, "%s connection: %s",
                         conn->name, ac->errstr);
        redisAsyncFree(ac);
        return false;
    }
    conn->ac = ac;
    conn->fd = ac->c.fd;
    conn->watching = 0;
    conn->state = CONN_CONNECTING;
    conn->ready = false;
    conn->drop = false;
    conn->setup_pending = 0;
    conn->busy_since = 0;
    conn->last_read_at = 0;
    conn->connect_deadline = presence__cl_now_ms(c) + c->connect_timeout_ms;
    ac->ev.data = conn;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* A non-blocking connect completes when the socket turns writable. */
    ev_add_write(conn);
    return true;
}

void presence__cl_conn_handle(struct presence__cl_conn *conn, uint32_t events)
{
    if (events & EPOLLIN) {
        conn->last_read_at = presence__cl_now_ms(conn->cluster);
    }
    if (conn->ac != NULL && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
        redisAsyncHandleRead(conn->ac);
    }
    if (conn->ac != NULL && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        redisAsyncHandleWrite(conn->ac);
    }
}

void presence__cl_conn_check_timeout(struct presence__cl_conn *conn,
                                     int64_t now)
{
    if (conn->state == CONN_CONNECTING && now >= conn->connect_deadline) {
        presence__cl_log(conn->cluster, PRESENCE_CLUSTER_LOG_WARNING,
                         "%s connection to %s:%d timed out", conn->name,
                         conn->cluster->host, conn->cluster->port);
        presence__cl_conn_close(conn);
    }
}

void presence__cl_conn_close(struct presence__cl_conn *conn)
{
    if (conn->ac != NULL) {
        /* Pending callbacks run with a NULL reply; ev_cleanup follows. */
        redisAsyncFree(conn->ac);
    }
}

void presence__cl_conn_drop(struct presence__cl_conn *conn)
{
    if (conn->ac != NULL) {
        conn->drop = true;
    }
}

bool presence__cl_conn_command(struct presence__cl_conn *conn,
                               redisCallbackFn *fn, void *privdata, int argc,
                               const char **argv, const size_t *argvlen)
{
    if (conn->state != CONN_UP || conn->ac == NULL) {
        return false;
    }
    if (redisAsyncCommandArgv(conn->ac, fn, privdata, argc, argv, argvlen) !=
        REDIS_OK) {
        return false;
    }
    if (conn->busy_since == 0) {
        conn->busy_since = presence__cl_now_ms(conn->cluster);
    }
    return true;
}

bool presence__cl_conn_send(struct presence__cl_conn *conn,
                            redisCallbackFn *fn, void *privdata, size_t argc,
                            const char *const *argv)
{
    const char *words[PRESENCE__CL_WORDS_MAX];
    size_t lens[PRESENCE__CL_WORDS_MAX];
    if (argc > PRESENCE__CL_WORDS_MAX) {
        return false;
    }
    for (size_t i = 0; i < argc; i++) {
        words[i] = argv[i];
        lens[i] = strlen(argv[i]);
    }
    return presence__cl_conn_command(conn, fn, privdata, (int)argc, words,
                                     lens);
}

bool presence__cl_conn_stalled(struct presence__cl_conn *conn, int64_t now,
                               int64_t limit_ms, int64_t *deadline)
{
    *deadline = 0;
    if (conn->state != CONN_UP || conn->ac == NULL ||
        conn->ac->replies.head == NULL) {
        conn->busy_since = 0; /* every reply is in */
        return false;
    }
    if (conn->busy_since == 0) {
        conn->busy_since = now;
    }
    int64_t since = conn->busy_since > conn->last_read_at
                        ? conn->busy_since
                        : conn->last_read_at;
    *deadline = since + limit_ms;
    return now >= *deadline;
}
