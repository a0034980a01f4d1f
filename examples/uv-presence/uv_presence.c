/*
 * libpresence in a libuv server: the recommended integration, in one file.
 *
 * A TCP line protocol (one command per line, replies and pushes one per
 * line):
 *
 *   HELLO <client> <user>   OK HELLO <client>
 *   JOIN <channel> [info]   OK JOIN <channel> <joined|updated|none> <stats>
 *   LEAVE <channel>         OK LEAVE <channel> left <stats>
 *   WHO <channel>           MEMBER <channel> <client> <user> [info] ...,
 *                           then OK WHO <channel> <stats>
 *   PING                    OK PONG (renews the TTL of every membership)
 *   QUIT                    closes the connection
 *
 * where <stats> is "clients=N users=N epoch=E seq=S", the channel right
 * after the call; a failure is "ERR <command> <error name>". Pushed to the
 * other members of a channel:
 *
 *   JOINED <channel> <client> <user>
 *   LEFT <channel> <client> <user> <explicit|disconnect|expired>
 *
 * Channels of the namespace "ttl" ("ttl:room") expire members that send
 * nothing (no JOIN, no PING) for --ttl-ms milliseconds.
 *
 *   uv-presence [--port N] [--ttl-ms MS]      (--port 0: any free port)
 *
 * What it shows, each at one place below:
 * - one presence_client handle per connection, opened at HELLO with the
 *   connection as its application pointer, closed on disconnect;
 * - joins and leaves by handle, replying with what presence_change says;
 * - TTL from one uv_timer, armed from the deadline presence_expire()
 *   returns and brought forward after a join or touch;
 * - fan-out from an event callback: presence_visit() walks the channel in
 *   place and each member's connection is member->app, no lookup by id.
 *
 * The loop is one thread, so the registry is single-threaded (no locks).
 * SPDX-License-Identifier: MIT
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <presence.h>
#include <uv.h>

#define LINE_MAX_BYTES 1024
/* A connection that does not read its pushes is dropped once this much
 * is queued for it, rather than letting its queue grow without bound. */
#define WRITE_QUEUE_MAX ((size_t)1 << 20)

typedef struct server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t ttl_timer;
    uv_signal_t sigint, sigterm;
    presence_registry *reg;
    int64_t ttl_ms;      /* the TTL of the namespace "ttl" */
    int64_t timer_due;   /* when ttl_timer fires (registry clock), or
                            PRESENCE_NO_DEADLINE when it is stopped */
} server;

typedef struct conn {
    uv_tcp_t tcp;            /* tcp.data points back to this conn */
    server *srv;
    presence_client *client; /* NULL until HELLO */
    bool closing;
    size_t in_len;
    char in[LINE_MAX_BYTES];
} conn;

typedef struct write_req {
    uv_write_t req;
    char data[];
} write_req;

/* ---- output ------------------------------------------------------------ */

static void on_written(uv_write_t *req, int status)
{
    (void)status; /* a failed write shows up as a read error too */
    free(req);
}

static void conn_close(conn *c);

/* Queue one line for the connection; it is copied. */
static void conn_send(conn *c, const char *line, size_t len)
{
    if (c->closing) {
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) >
        WRITE_QUEUE_MAX) {
        conn_close(c);
        return;
    }
    write_req *w = malloc(sizeof *w + len);
    if (w == NULL) {
        conn_close(c);
        return;
    }
    memcpy(w->data, line, len);
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written) != 0) {
        free(w);
        conn_close(c);
    }
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void conn_printf(conn *c, const char *fmt, ...)
{
    /* Room for a line read (info) and three names at their default limit
     * of 255 bytes: nothing this server sends is cut. */
    char line[2 * LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    conn_send(c, line, len);
}

#define STATS_FMT "clients=%zu users=%zu epoch=%" PRIu64 " seq=%" PRIu64
#define STATS_ARGS(s) (s).num_clients, (s).num_users, (s).epoch, (s).seq

/* ---- TTL: one timer for the whole registry ----------------------------- */

static void on_ttl_timer(uv_timer_t *timer);

/* Arm the timer for a deadline on the registry's clock. */
static void ttl_timer_arm(server *s, int64_t deadline)
{
    s->timer_due = deadline;
    if (deadline == PRESENCE_NO_DEADLINE) {
        uv_timer_stop(&s->ttl_timer);
        return;
    }
    int64_t now = presence_now_ms(s->reg);
    /* If libuv fires a little early (its loop time is cached), expire
     * finds nothing due yet and hands the same deadline back. */
    uint64_t delay = deadline > now ? (uint64_t)(deadline - now) : 0;
    uv_timer_start(&s->ttl_timer, on_ttl_timer, delay, 0);
}

static void on_ttl_timer(uv_timer_t *timer)
{
    server *s = timer->data;
    int64_t next = PRESENCE_NO_DEADLINE;
    /* Expired members leave with PRESENCE_LEAVE_EXPIRED: their events are
     * delivered (and fanned out) before this returns. */
    int rc = presence_expire(s->reg, presence_now_ms(s->reg), NULL, &next);
    if (rc != PRESENCE_OK) {
        /* Out of memory part way: some are left; try again soon. */
        fprintf(stderr, "expire: %s\n", presence_strerror(rc));
        next = presence_now_ms(s->reg) + 100;
    }
    ttl_timer_arm(s, next);
}

/* After a join or a touch: the new deadline is now + TTL, never earlier,
 * so the timer needs moving only if it is due later than that. This server
 * has one TTL (the namespace "ttl"); with several, bring it forward by the
 * namespace's own TTL, or by the shortest: firing early costs one empty
 * presence_expire(). */
static void ttl_timer_touched(server *s)
{
    int64_t due = presence_now_ms(s->reg) + s->ttl_ms;
    if (due < s->timer_due) {
        ttl_timer_arm(s, due);
    }
}

/* ---- fan-out: events to the connections of a channel ------------------- */

typedef struct fanout {
    const char *line;
    size_t len;
    const void *skip; /* the connection the event is about */
} fanout;

static void fanout_visit(const presence_member *member, void *user_data)
{
    const fanout *f = user_data;
    conn *c = member->app; /* our connection, set at presence_client_open */
    if (c != NULL && c != f->skip) {
        conn_send(c, f->line, f->len);
    }
}

/* Events are delivered after the change, outside any lock, so the callback
 * may read the registry: presence_visit() hands it each member in place. A
 * member it sees is whoever is in the channel now, which is what a push
 * needs. */
static void on_event(presence_registry *reg, const presence_event *ev,
                     void *user_data)
{
    (void)user_data;
    char line[LINE_MAX_BYTES];
    int n;
    if (ev->kind == PRESENCE_EVENT_JOIN) {
        n = snprintf(line, sizeof line, "JOINED %s %s %s\n", ev->channel,
                     ev->client_id, ev->user_id);
    } else {
        n = snprintf(line, sizeof line, "LEFT %s %s %s %s\n", ev->channel,
                     ev->client_id, ev->user_id,
                     presence_leave_reason_name(ev->reason));
    }
    if (n < 0 || (size_t)n >= sizeof line) {
        return; /* names are bounded by the registry's limits: not here */
    }
    fanout f = {line, (size_t)n, ev->client_app};
    int rc = presence_visit(reg, ev->channel, presence_trusted(), 0, 0,
                            fanout_visit, &f, NULL);
    if (rc != PRESENCE_OK) {
        fprintf(stderr, "fan-out %s: %s\n", ev->channel,
                presence_strerror(rc));
    }
}

/* ---- commands ---------------------------------------------------------- */

/* The next space-separated word of *p, NUL-terminated in place; NULL at
 * the end of the line. */
static char *next_word(char **p)
{
    char *s = *p;
    while (*s == ' ') {
        s++;
    }
    if (*s == '\0') {
        *p = s;
        return NULL;
    }
    char *word = s;
    while (*s != '\0' && *s != ' ') {
        s++;
    }
    if (*s == ' ') {
        *s++ = '\0';
    }
    *p = s;
    return word;
}

static void cmd_hello(conn *c, char *args)
{
    char *client_id = next_word(&args);
    char *user_id = next_word(&args);
    if (user_id == NULL) {
        conn_printf(c, "ERR HELLO usage: HELLO <client> <user>");
        return;
    }
    if (c->client != NULL) {
        conn_printf(c, "ERR HELLO already");
        return;
    }
    presence_client_options opts;
    presence_client_options_init(&opts);
    opts.client_id = client_id;
    opts.user_id = user_id;
    opts.app = c; /* handed back in every event and member of this client */
    int rc = presence_client_open(c->srv->reg, &opts, &c->client);
    if (rc != PRESENCE_OK) {
        c->client = NULL;
        conn_printf(c, "ERR HELLO %s", presence_error_name(rc));
        return;
    }
    conn_printf(c, "OK HELLO %s", client_id);
}

static const char *change_name(presence_change_kind kind)
{
    switch (kind) {
    case PRESENCE_CHANGE_JOINED:
        return "joined";
    case PRESENCE_CHANGE_UPDATED:
        return "updated";
    case PRESENCE_CHANGE_LEFT:
        return "left";
    default:
        return "none";
    }
}

static void cmd_join(conn *c, char *args)
{
    char *channel = next_word(&args);
    if (channel == NULL) {
        conn_printf(c, "ERR JOIN usage: JOIN <channel> [info]");
        return;
    }
    while (*args == ' ') {
        args++;
    }
    size_t info_len = strlen(args); /* the rest of the line, if any */
    presence_change change;
    /* Other members see JOINED through on_event before this returns. */
    int rc = presence_client_join(c->srv->reg, c->client, channel,
                                  info_len > 0 ? args : NULL, info_len,
                                  &change);
    if (rc != PRESENCE_OK) {
        conn_printf(c, "ERR JOIN %s", presence_error_name(rc));
        return;
    }
    ttl_timer_touched(c->srv);
    conn_printf(c, "OK JOIN %s %s " STATS_FMT, channel,
                change_name(change.kind), STATS_ARGS(change.stats));
}

static void cmd_leave(conn *c, char *args)
{
    char *channel = next_word(&args);
    if (channel == NULL) {
        conn_printf(c, "ERR LEAVE usage: LEAVE <channel>");
        return;
    }
    presence_change change;
    int rc = presence_client_leave(c->srv->reg, c->client, channel, &change);
    if (rc != PRESENCE_OK) {
        conn_printf(c, "ERR LEAVE %s", presence_error_name(rc));
        return;
    }
    conn_printf(c, "OK LEAVE %s %s " STATS_FMT, channel,
                change_name(change.kind), STATS_ARGS(change.stats));
}

static void who_visit(const presence_member *member, void *user_data)
{
    conn *c = user_data;
    const char *info = member->chan_info_len > 0 ? member->chan_info : "";
    conn_printf(c, "MEMBER %s %s %s%s%.*s", member->channel,
                member->client_id, member->user_id,
                member->chan_info_len > 0 ? " " : "",
                (int)member->chan_info_len, info);
}

/* A server-side read: anyone may list any channel here. To apply
 * presence_config::access_check instead, pass the connection as the
 * requester ({client id, user id}). */
static void cmd_who(conn *c, char *args)
{
    char *channel = next_word(&args);
    if (channel == NULL) {
        conn_printf(c, "ERR WHO usage: WHO <channel>");
        return;
    }
    presence_visit_info info;
    int rc = presence_visit(c->srv->reg, channel, presence_trusted(), 0, 0,
                            who_visit, c, &info);
    if (rc != PRESENCE_OK) {
        conn_printf(c, "ERR WHO %s", presence_error_name(rc));
        return;
    }
    conn_printf(c, "OK WHO %s " STATS_FMT, channel, STATS_ARGS(info.stats));
}

static void cmd_ping(conn *c)
{
    int rc = presence_client_touch(c->srv->reg, c->client, NULL);
    if (rc != PRESENCE_OK) {
        conn_printf(c, "ERR PING %s", presence_error_name(rc));
        return;
    }
    ttl_timer_touched(c->srv);
    conn_printf(c, "OK PONG");
}

static void conn_line(conn *c, char *line)
{
    char *cmd = next_word(&line);
    if (cmd == NULL) {
        return;
    }
    if (strcmp(cmd, "QUIT") == 0) {
        conn_close(c);
    } else if (strcmp(cmd, "HELLO") == 0) {
        cmd_hello(c, line);
    } else if (strcmp(cmd, "WHO") == 0) {
        cmd_who(c, line);
    } else if (c->client == NULL) {
        conn_printf(c, "ERR %s HELLO first", cmd);
    } else if (strcmp(cmd, "JOIN") == 0) {
        cmd_join(c, line);
    } else if (strcmp(cmd, "LEAVE") == 0) {
        cmd_leave(c, line);
    } else if (strcmp(cmd, "PING") == 0) {
        cmd_ping(c);
    } else {
        conn_printf(c, "ERR %s unknown command", cmd);
    }
}

/* ---- connections ------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *handle)
{
    free(handle->data);
}

/* The disconnect: closing the handle makes the client leave every channel
 * (LEFT ... disconnect, fanned out before this returns) and forgets it.
 * The conn itself is freed once libuv is done with it, so a pointer to it
 * that an event or a visit still holds stays valid meanwhile. */
static void conn_close(conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    if (c->client != NULL) {
        int rc = presence_client_close(c->srv->reg, c->client, NULL);
        if (rc != PRESENCE_OK) {
            /* Only out of memory: the handle stays open and would keep a
             * pointer to a freed conn. A real server retries later; an
             * example gives up. */
            fprintf(stderr, "client close: %s\n", presence_strerror(rc));
            abort();
        }
        c->client = NULL;
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = handle->data;
    *buf = uv_buf_init(c->in + c->in_len,
                       (unsigned)(sizeof c->in - c->in_len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf; /* it points into c->in */
    conn *c = stream->data;
    if (nread < 0) {
        conn_close(c); /* UV_EOF or an error */
        return;
    }
    c->in_len += (size_t)nread;
    char *start = c->in;
    char *end = c->in + c->in_len;
    char *nl;
    while (!c->closing && (nl = memchr(start, '\n', (size_t)(end - start)))) {
        *nl = '\0';
        if (nl > start && nl[-1] == '\r') {
            nl[-1] = '\0';
        }
        conn_line(c, start);
        start = nl + 1;
    }
    if (c->closing) {
        return;
    }
    c->in_len = (size_t)(end - start);
    memmove(c->in, start, c->in_len);
    if (c->in_len == sizeof c->in) {
        conn_printf(c, "ERR line too long");
        conn_close(c);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    server *s = listener->data;
    if (status < 0) {
        fprintf(stderr, "accept: %s\n", uv_strerror(status));
        return;
    }
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return; /* the connection waits in the backlog */
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    }
}

/* ---- start and stop ---------------------------------------------------- */

static void close_handle(uv_handle_t *handle, void *arg)
{
    server *s = arg;
    if (uv_is_closing(handle)) {
        return;
    }
    if (handle->type == UV_TCP && handle != (uv_handle_t *)&s->listener) {
        conn *c = handle->data;
        c->closing = true; /* the registry goes, handles and all */
        uv_close(handle, on_conn_closed);
    } else {
        uv_close(handle, NULL);
    }
}

/* SIGINT, SIGTERM: close everything; uv_run() then returns in main(). */
static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    server *s = sig->data;
    uv_walk(s->loop, close_handle, s);
}

static int registry_setup(server *s)
{
    presence_config cfg;
    presence_config_init(&cfg);
    cfg.single_threaded = true; /* one loop, one thread: no locks */
    int rc = presence_registry_new(&cfg, &s->reg);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence_namespace_options ttl;
    presence_namespace_options_init(&ttl);
    ttl.ttl_ms = s->ttl_ms;
    rc = presence_namespace_set(s->reg, "ttl", &ttl);
    if (rc == PRESENCE_OK) {
        presence_subscription sub;
        rc = presence_subscribe(s->reg, PRESENCE_SCOPE_ALL, NULL,
                                PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE,
                                on_event, s, &sub);
    }
    return rc;
}

static int listen_on(server *s, int port)
{
    struct sockaddr_in addr;
    int rc = uv_ip4_addr("127.0.0.1", port, &addr);
    if (rc == 0) {
        rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&addr, 0);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    }
    if (rc == 0) {
        int len = (int)sizeof addr;
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &len);
    }
    if (rc != 0) {
        fprintf(stderr, "listen on port %d: %s\n", port, uv_strerror(rc));
        return rc;
    }
    /* The test reads the port from this line. */
    printf("listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    int port = 7400;
    server s = {.ttl_ms = 15000, .timer_due = PRESENCE_NO_DEADLINE};
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 < argc && strcmp(argv[i], "--port") == 0) {
            port = atoi(argv[i + 1]);
        } else if (i + 1 < argc && strcmp(argv[i], "--ttl-ms") == 0) {
            s.ttl_ms = atoll(argv[i + 1]);
        } else {
            fprintf(stderr, "usage: %s [--port N] [--ttl-ms MS]\n", argv[0]);
            return 2;
        }
    }
    if (s.ttl_ms <= 0 || port < 0 || port > 65535) {
        fprintf(stderr, "bad --port or --ttl-ms\n");
        return 2;
    }

    int rc = registry_setup(&s);
    if (rc != PRESENCE_OK) {
        fprintf(stderr, "registry: %s\n", presence_strerror(rc));
        presence_registry_free(s.reg);
        return 1;
    }
    s.loop = uv_default_loop();
    uv_tcp_init(s.loop, &s.listener);
    uv_timer_init(s.loop, &s.ttl_timer);
    uv_signal_init(s.loop, &s.sigint);
    uv_signal_init(s.loop, &s.sigterm);
    s.listener.data = s.ttl_timer.data = s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);

    int status = 0;
    if (listen_on(&s, port) != 0) {
        uv_walk(s.loop, close_handle, &s);
        status = 1;
    }
    uv_run(s.loop, UV_RUN_DEFAULT);
    /* Every connection is closed; open client handles go with the
     * registry, silently. */
    presence_registry_free(s.reg);
    uv_loop_close(s.loop);
    return status;
}
