/*
 * The HTTP server on the loop: see http_server.h. One request per
 * connection: once its response is out, our side is shut down and the
 * socket waits (a short deadline) for the peer to close, so that no reset
 * cuts the response short.
 * SPDX-License-Identifier: MIT
 */
#include "http_server.h"

#include "mem.h"
#include "net.h"
#include "server.h"
#include "sock.h"
#include "util.h"
#include "ws_conn.h"

#include <ctype.h>
#include <http_parser.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The request line and headers together, and how many headers. */
#define HEAD_MAX 16384
#define HEADERS_MAX 64
/* After the response: how long the peer has to close its side. */
#define LINGER_MS 2000
/* A kept-alive connection has this long to send its next request (as a
 * new one has PS_NET_REQUEST_TIMEOUT_MS), and is told so in Keep-Alive. */
#define KEEP_ALIVE_IDLE_S 5
#define KEEP_ALIVE_IDLE_MS (KEEP_ALIVE_IDLE_S * 1000)
#define STRINGIFY(x) #x
#define AS_TEXT(x) STRINGIFY(x)
/* A streamed response is pulled again while less than this waits. */
#define LOW_WATER 65536
/* Pull steps a stream makes per turn of the loop, so that one long
 * response never holds the others up. */
#define STEPS_PER_TURN 4

struct ps_http_exchange {
    ps_net *net;
    ps_sock *sock;
    http_parser parser;
    /* The URL, then each header as "field\0value\0". */
    char *head;
    size_t head_len, head_cap;
    uint16_t field_off[HEADERS_MAX], value_off[HEADERS_MAX];
    size_t header_count;
    enum { IN_URL, IN_FIELD, IN_VALUE } head_state;
    int refuse; /* a status to answer instead of the route (413, 431...) */
    bool headers_done; /* the head is parsed: its method is sure */
    const ps_http_route *route;
    bool websocket; /* the WebSocket endpoint */
    char *path;
    const char *query;
    char *body;
    size_t body_len, body_cap;
    bool message_done;
    bool responded;
    bool pipelined;  /* bytes came after the request: closed after it */
    bool keep_alive; /* the response keeps the connection for the next */
    bool idle;       /* kept alive, no byte of the next request yet */
    /* Inside a handler or a pull (busy): a close then only marks the
     * exchange, which is freed once they return. */
    int busy;
    bool sock_closed;
    bool finishing;
    /* A streamed response. */
    ps_http_pull pull;
    void (*free_state)(void *state);
    void *state;
    bool waiting;        /* its last step was PS_HTTP_WAIT */
    bool in_more_list;
    ps_http_exchange *more_prev, *more_next;
};

/* ---- routes ------------------------------------------------------------ */

int ps_http_route_add(ps_net *net, const char *prefix, size_t body_max,
                      ps_http_handler handler, void *data)
{
    ps_http_route *grown =
        ps_realloc(net->routes, (net->route_count + 1) * sizeof *grown);
    if (grown == NULL) {
        return -1;
    }
    net->routes = grown;
    net->routes[net->route_count++] =
        (ps_http_route){prefix, body_max, handler, data};
    return 0;
}

static const ps_http_route *find_route(const ps_net *net, const char *path)
{
    for (size_t i = 0; i < net->route_count; i++) {
        const ps_http_route *r = &net->routes[i];
        size_t n = strlen(r->prefix);
        if (strncmp(path, r->prefix, n) == 0 &&
            (path[n] == '\0' || path[n] == '/')) {
            return r;
        }
    }
    return NULL;
}

/* ---- the list of streams that want to go on ---------------------------- */

static void more_remove(ps_http_exchange *ex)
{
    if (!ex->in_more_list) {
        return;
    }
    ps_net *net = ex->net;
    if (ex->more_prev != NULL) {
        ex->more_prev->more_next = ex->more_next;
    } else {
        net->more = ex->more_next;
    }
    if (ex->more_next != NULL) {
        ex->more_next->more_prev = ex->more_prev;
    }
    ex->more_prev = ex->more_next = NULL;
    ex->in_more_list = false;
    if (net->more == NULL) {
        uv_idle_stop(&net->more_idle);
    }
}

static void more_add(ps_http_exchange *ex)
{
    if (ex->in_more_list) {
        return;
    }
    ps_net *net = ex->net;
    ex->more_prev = NULL;
    ex->more_next = net->more;
    if (net->more != NULL) {
        net->more->more_prev = ex;
    }
    net->more = ex;
    ex->in_more_list = true;
    /* An idle handle keeps the loop from sleeping in poll meanwhile. */
    uv_idle_start(&net->more_idle, ps_http_more_run);
}

/* ---- the exchange's life ----------------------------------------------- */

static void free_exchange(ps_http_exchange *ex)
{
    more_remove(ex);
    if (ex->free_state != NULL) {
        ex->free_state(ex->state);
    }
    ps_free(ex->head);
    ps_free(ex->path);
    ps_free(ex->body);
    ps_free(ex);
}

static void http_on_close(ps_sock *sock)
{
    ps_http_exchange *ex = sock->owner;
    ex->sock_closed = true;
    if (ex->busy == 0) {
        free_exchange(ex);
    }
}

static void enter(ps_http_exchange *ex)
{
    ex->busy++;
}

static void next_request(ps_http_exchange *ex);

/* False when the exchange is gone (freed here). */
static bool leave(ps_http_exchange *ex)
{
    if (--ex->busy == 0 && ex->sock_closed) {
        free_exchange(ex);
        return false;
    }
    if (ex->busy == 0 && ex->finishing && ex->keep_alive &&
        ex->sock->pending == 0) {
        next_request(ex); /* what finish() left for after the handler */
    }
    return !ex->sock_closed;
}

/* Kept alive: once the response is written and its handler has returned,
 * the exchange starts over for the connection's next request. */
static void next_request(ps_http_exchange *ex)
{
    ps_free(ex->head);
    ps_free(ex->path);
    ps_free(ex->body);
    ex->head = NULL;
    ex->head_len = ex->head_cap = 0;
    ex->header_count = 0;
    ex->head_state = IN_URL;
    ex->refuse = 0;
    ex->headers_done = false;
    ex->route = NULL;
    ex->websocket = false; /* a refused upgrade kept alive: HTTP again */
    ex->path = NULL;
    ex->query = NULL;
    ex->body = NULL;
    ex->body_len = ex->body_cap = 0;
    ex->message_done = ex->responded = ex->finishing = false;
    ex->pipelined = ex->keep_alive = false;
    ex->idle = true;
    http_parser_init(&ex->parser, HTTP_REQUEST);
    ex->parser.data = ex;
    ps_sock_set_deadline(ex->sock, ps_now_ms() + KEEP_ALIVE_IDLE_MS);
    ps_sock_read_start(ex->sock);
}

/* The response is complete: shut down once written, then linger; or,
 * kept alive, wait for the next request. */
static void finish(ps_http_exchange *ex)
{
    if (ex->sock_closed) {
        return;
    }
    ex->finishing = true;
    ps_sock *sock = ex->sock;
    if (sock->pending > 0) {
        return; /* http_on_drain comes back */
    }
    if (ex->keep_alive) {
        if (ex->busy == 0) {
            next_request(ex);
        }
        return; /* else leave() starts it once the handler returns */
    }
    ps_sock_shutdown(sock);
    if (!sock->closing) {
        ps_sock_set_deadline(sock, ps_now_ms() + LINGER_MS);
        ps_sock_read_start(sock); /* to see the peer's EOF */
    }
}

static void run_pull(ps_http_exchange *ex, int steps)
{
    for (int i = 0; i < steps && ex->pull != NULL; i++) {
        enter(ex);
        ps_http_step step = ex->pull(ex, ex->state);
        if (!leave(ex)) {
            return; /* the socket closed: the exchange is gone */
        }
        if (ex->sock->failed) {
            more_remove(ex); /* the socket's timer closes it */
            return;
        }
        if (step == PS_HTTP_DONE) {
            ex->pull = NULL;
            more_remove(ex);
            void (*free_state)(void *) = ex->free_state;
            ex->free_state = NULL;
            if (free_state != NULL) {
                free_state(ex->state);
            }
            ex->state = NULL;
            finish(ex);
            return;
        }
        ex->waiting = step == PS_HTTP_WAIT;
        if (ex->waiting) {
            more_remove(ex);
            /* At the next tick, as the old per-tick pull did: asking
             * for "in a tick's time" lands on the tick after it (up to
             * 200 ms), and a busy event stream overflows meanwhile. */
            ps_sock_call_at(ex->sock, ps_now_ms() + 1);
            return; /* http_on_timer comes back */
        }
        if (ex->sock->pending >= LOW_WATER) {
            more_remove(ex);
            return; /* the drain comes back */
        }
    }
    if (ex->pull != NULL) {
        more_add(ex); /* more to do: after the others' turn */
    }
}

void ps_http_more_run(uv_idle_t *idle)
{
    ps_net *net = idle->data;
    /* Take the list: pulls may add themselves back. */
    ps_http_exchange *list = net->more;
    net->more = NULL;
    uv_idle_stop(&net->more_idle);
    for (ps_http_exchange *ex = list; ex != NULL; ex = ex->more_next) {
        ex->in_more_list = false;
        ex->more_prev = NULL;
    }
    while (list != NULL) {
        ps_http_exchange *ex = list;
        list = ex->more_next;
        ex->more_next = NULL;
        if (list != NULL) {
            list->more_prev = NULL;
        }
        /* Its socket may close during the pull, freeing it: the rest of
         * the list is already detached from it. */
        run_pull(ex, STEPS_PER_TURN);
    }
}

static void http_on_drain(ps_sock *sock)
{
    ps_http_exchange *ex = sock->owner;
    if (ex->finishing) {
        if (sock->pending == 0) {
            finish(ex);
        }
    } else if (ex->pull != NULL && !ex->waiting && sock->pending < LOW_WATER) {
        run_pull(ex, STEPS_PER_TURN);
    }
}

static void http_on_timer(ps_sock *sock, int64_t now_ms)
{
    (void)now_ms;
    ps_http_exchange *ex = sock->owner;
    if (ex->pull != NULL && ex->waiting && !ex->in_more_list) {
        run_pull(ex, STEPS_PER_TURN);
    }
}

static void http_on_eof(ps_sock *sock)
{
    /* The peer is done: after our response, or giving up on it. */
    ps_sock_close(sock);
}

static void http_on_read(ps_sock *sock, const char *data, size_t len);

static const ps_sock_ops http_ops = {
    .on_read = http_on_read,
    .on_eof = http_on_eof,
    .on_drain = http_on_drain,
    .on_timer = http_on_timer,
    .on_close = http_on_close,
};

/* ---- parsing ----------------------------------------------------------- */

static bool head_append(ps_http_exchange *ex, const char *at, size_t len)
{
    if (len > HEAD_MAX - ex->head_len) {
        ex->refuse = 431;
        return false;
    }
    if (ex->head_len + len > ex->head_cap) {
        size_t cap = ex->head_cap ? ex->head_cap : 1024;
        while (cap < ex->head_len + len) {
            cap *= 2;
        }
        char *grown = ps_realloc(ex->head, cap);
        if (grown == NULL) {
            ex->refuse = 500;
            return false;
        }
        ex->head = grown;
        ex->head_cap = cap;
    }
    memcpy(ex->head + ex->head_len, at, len);
    ex->head_len += len;
    return true;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    ps_http_exchange *ex = p->data;
    return head_append(ex, at, len) ? 0 : 1;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    ps_http_exchange *ex = p->data;
    if (ex->head_state != IN_FIELD) {
        if (ex->header_count == HEADERS_MAX) {
            ex->refuse = 431;
            return 1;
        }
        if (!head_append(ex, "", 1)) { /* ends the URL or a value */
            return 1;
        }
        ex->field_off[ex->header_count] = (uint16_t)ex->head_len;
        ex->head_state = IN_FIELD;
    }
    return head_append(ex, at, len) ? 0 : 1;
}

/* Whether [at, at + len) holds a control byte (tab aside). */
static bool has_control_byte(const char *at, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)at[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return true;
        }
    }
    return false;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    ps_http_exchange *ex = p->data;
    /* http_parser 2.9 checks every byte of a value but its first: a
     * control byte there (a NUL that cuts the value short, or one that a
     * handler would echo into its response's headers, as the WebSocket
     * upgrade echoes the protocol) is refused like one further on. */
    if (has_control_byte(at, len)) {
        ex->refuse = 400;
        return 1;
    }
    if (ex->head_state != IN_VALUE) {
        if (!head_append(ex, "", 1)) {
            return 1;
        }
        ex->value_off[ex->header_count++] = (uint16_t)ex->head_len;
        ex->head_state = IN_VALUE;
    }
    return head_append(ex, at, len) ? 0 : 1;
}

static int hex_value(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode [in, in + len) into out (at least len + 1 bytes); '+' is
 * a space in a query. False on a bad escape or a NUL. */
static bool url_decode(const char *in, size_t len, char *out, bool query)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= len) {
                return false;
            }
            int a = hex_value(in[i + 1]);
            int b = hex_value(in[i + 2]);
            if (a < 0 || b < 0) {
                return false;
            }
            c = a * 16 + b;
            i += 2;
        } else if (c == '+' && query) {
            c = ' ';
        }
        if (c == 0) {
            return false;
        }
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return true;
}

static int on_headers_complete(http_parser *p)
{
    ps_http_exchange *ex = p->data;
    ex->headers_done = true;
    if (!head_append(ex, "", 1)) {
        return 1;
    }
    if (ex->head_state == IN_FIELD) { /* a last field without a value */
        ex->value_off[ex->header_count++] = (uint16_t)(ex->head_len - 1);
    }
    const char *url = ex->head;
    const char *q = strchr(url, '?');
    size_t path_len = q ? (size_t)(q - url) : strlen(url);
    const char *hash = strchr(url, '#');
    if (hash != NULL && (q == NULL || hash < q)) {
        path_len = (size_t)(hash - url);
    }
    ex->path = ps_malloc(path_len + 1);
    if (ex->path == NULL) {
        ex->refuse = 500;
        return 1;
    }
    if (*url != '/' || !url_decode(url, path_len, ex->path, false)) {
        ex->refuse = 400;
        return 1;
    }
    ex->query = q ? q + 1 : NULL;
    if (strcmp(ex->path, PS_WS_PATH) == 0) {
        ex->websocket = true;
        return 0;
    }
    ex->route = find_route(ex->net, ex->path);
    if (ex->route == NULL) {
        ex->refuse = 404;
        return 1;
    }
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > ex->route->body_max) {
        ex->refuse = 413; /* before a byte of it is read */
        return 1;
    }
    /* curl, for one, waits a second for this before a larger body. */
    const char *expect = ps_http_header(ex, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
        p->http_minor >= 1) {
        static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)ps_sock_write(ex->sock, go_on, sizeof go_on - 1);
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    ps_http_exchange *ex = p->data;
    size_t max = ex->websocket ? 0 : ex->route->body_max;
    if (len > max - ex->body_len) {
        ex->refuse = 413;
        return 1;
    }
    if (ex->body_len + len + 1 > ex->body_cap) {
        size_t cap = ex->body_cap ? ex->body_cap : 4096;
        while (cap < ex->body_len + len + 1) {
            cap *= 2;
        }
        char *grown = ps_realloc(ex->body, cap);
        if (grown == NULL) {
            ex->refuse = 500;
            return 1;
        }
        ex->body = grown;
        ex->body_cap = cap;
    }
    memcpy(ex->body + ex->body_len, at, len);
    ex->body_len += len;
    ex->body[ex->body_len] = '\0';
    return 0;
}

static int on_message_complete(http_parser *p)
{
    ps_http_exchange *ex = p->data;
    ex->message_done = true;
    http_parser_pause(p, 1); /* one request at a time (keep-alive waits) */
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void refuse(ps_http_exchange *ex, int status)
{
    char text[128];
    if (status == 413) {
        snprintf(text, sizeof text, "Payload Too Large: the limit is %zu bytes\n",
                 ex->route ? ex->route->body_max : 0);
    } else {
        snprintf(text, sizeof text, "%s\n", ps_http_status_text(status));
    }
    ps_http_respond(ex, status, "text/plain; charset=utf-8", NULL, text,
                    status == 404 || status == 500 ? 0 : strlen(text));
}

static void http_on_read(ps_sock *sock, const char *data, size_t len)
{
    ps_http_exchange *ex = sock->owner;
    if (ex->message_done || ex->responded) {
        return; /* one request at a time: what follows it is not read */
    }
    ex->idle = false;
    size_t n = http_parser_execute(&ex->parser, &parser_settings, data, len);
    enum http_errno err = HTTP_PARSER_ERRNO(&ex->parser);
    if (ex->refuse != 0) {
        refuse(ex, ex->refuse);
        return;
    }
    if (err != HPE_OK && err != HPE_PAUSED) {
        refuse(ex, 400);
        return;
    }
    if (!ex->message_done) {
        return;
    }
    ps_sock_set_deadline(sock, 0); /* the request is in: no more timeout */
    ex->pipelined = n < len;
    if (ex->websocket) {
        if (n > len) {
            n = len;
        }
        /* Bytes after the request are the peer's first frames. The socket
         * goes on reading as the WebSocket's: stopping and starting again
         * costs libuv three epoll_ctl calls instead of none. */
        enter(ex);
        if (ps_ws_upgrade(ex, data + n, len - n)) {
            return; /* the socket is the WebSocket's, the exchange gone */
        }
        ps_sock_read_stop(sock);
        leave(ex); /* refused with a response, or the socket closed */
        return;
    }
    ps_sock_read_stop(sock);
    if (ex->body == NULL) {
        ex->body = ps_calloc(1, 1);
        if (ex->body == NULL) {
            refuse(ex, 500);
            return;
        }
    }
    enter(ex);
    ex->route->handler(ex, ex->route->data);
    leave(ex);
}

void ps_http_accept(ps_net *net)
{
    ps_http_exchange *ex = ps_calloc(1, sizeof *ex);
    if (ex == NULL) {
        /* Take the connection off the backlog all the same, and drop it. */
        uv_tcp_t *drop = ps_malloc(sizeof *drop);
        if (drop != NULL && uv_tcp_init(&net->loop, drop) == 0 &&
            uv_accept((uv_stream_t *)&net->listener, (uv_stream_t *)drop) >= 0) {
            uv_close((uv_handle_t *)drop, (uv_close_cb)ps_free);
        } else {
            ps_free(drop);
        }
        return;
    }
    ex->net = net;
    http_parser_init(&ex->parser, HTTP_REQUEST);
    ex->parser.data = ex;
    ex->sock = ps_sock_accept(net, (uv_stream_t *)&net->listener, &http_ops,
                              ex, ps_now_ms() + PS_NET_REQUEST_TIMEOUT_MS);
    if (ex->sock == NULL) {
        ps_free(ex);
    }
}

void ps_http_close_idle(ps_net *net)
{
    ps_sock *next = NULL;
    for (ps_sock *sock = net->socks; sock != NULL; sock = next) {
        next = sock->next; /* the close unlinks it */
        if (sock->ops == &http_ops && ((ps_http_exchange *)sock->owner)->idle) {
            ps_sock_close(sock);
        }
    }
}

void ps_http_release_socket(ps_http_exchange *ex)
{
    /* The socket goes on with another owner (a WebSocket); called inside
     * enter(), which never returns through leave() then. */
    ex->sock = NULL;
    free_exchange(ex);
}

ps_sock *ps_http_socket(const ps_http_exchange *ex)
{
    return ex->sock;
}

/* ---- the request ------------------------------------------------------- */

const char *ps_http_method(const ps_http_exchange *ex)
{
    return http_method_str((enum http_method)ex->parser.method);
}

const char *ps_http_path(const ps_http_exchange *ex)
{
    return ex->path;
}

const char *ps_http_query(const ps_http_exchange *ex)
{
    return ex->query;
}

const char *ps_http_header(const ps_http_exchange *ex, const char *name)
{
    for (size_t i = 0; i < ex->header_count; i++) {
        if (strcasecmp(ex->head + ex->field_off[i], name) == 0) {
            return ex->head + ex->value_off[i];
        }
    }
    return NULL;
}

bool ps_http_is_1_0(const ps_http_exchange *ex)
{
    return ex->parser.http_major == 1 && ex->parser.http_minor == 0;
}

const char *ps_http_body(const ps_http_exchange *ex, size_t *len)
{
    *len = ex->body_len;
    return ex->body ? ex->body : "";
}

char *ps_http_take_body(ps_http_exchange *ex, size_t *len)
{
    char *empty = ps_calloc(1, 1);
    if (empty == NULL) {
        return NULL;
    }
    char *body = ex->body ? ex->body : ps_calloc(1, 1);
    if (body == NULL) {
        ps_free(empty);
        return NULL;
    }
    *len = ex->body_len;
    ex->body = empty;
    ex->body_len = 0;
    ex->body_cap = 1;
    return body;
}

bool ps_http_query_var(const ps_http_exchange *ex, const char *name, char *buf,
                       size_t len)
{
    const char *q = ex->query;
    size_t name_len = strlen(name);
    while (q != NULL && *q != '\0' && *q != '#') {
        const char *end = q + strcspn(q, "&#");
        const char *eq = memchr(q, '=', (size_t)(end - q));
        if (eq != NULL && (size_t)(eq - q) == name_len &&
            strncmp(q, name, name_len) == 0) {
            size_t vlen = (size_t)(end - eq - 1);
            return vlen < len && url_decode(eq + 1, vlen, buf, true);
        }
        q = *end == '&' ? end + 1 : NULL;
    }
    return false;
}

bool ps_http_cookie(const ps_http_exchange *ex, const char *name, char *buf,
                    size_t len)
{
    const char *c = ps_http_header(ex, "Cookie");
    size_t name_len = strlen(name);
    while (c != NULL && *c != '\0') {
        c += strspn(c, " \t");
        const char *end = c + strcspn(c, ";");
        const char *eq = memchr(c, '=', (size_t)(end - c));
        if (eq != NULL && (size_t)(eq - c) == name_len &&
            strncmp(c, name, name_len) == 0) {
            size_t vlen = (size_t)(end - eq - 1);
            if (vlen >= len) {
                return false;
            }
            memcpy(buf, eq + 1, vlen);
            buf[vlen] = '\0';
            return vlen > 0;
        }
        c = *end == ';' ? end + 1 : NULL;
    }
    return false;
}

bool ps_http_token_in(const char *value, const char *token)
{
    size_t n = strlen(token);
    while (value != NULL && *value != '\0') {
        value += strspn(value, " \t,");
        size_t len = strcspn(value, ",");
        size_t trimmed = len;
        while (trimmed > 0 && (value[trimmed - 1] == ' ' || value[trimmed - 1] == '\t')) {
            trimmed--;
        }
        if (trimmed == n && strncasecmp(value, token, n) == 0) {
            return true;
        }
        value += len;
    }
    return false;
}

/* ---- the response ------------------------------------------------------ */

const char *ps_http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

/* The status line and headers of a complete response, ps_malloc'd. */
static char *response_head(int status, const char *type,
                           const char *extra_headers, size_t len,
                           bool keep_alive, size_t *head_len)
{
#define RESPONSE_HEAD                                                          \
    "HTTP/1.1 %d %s\r\n"                                                      \
    "Content-Type: %s\r\n"                                                    \
    "Content-Length: %zu\r\n"                                                 \
    "%s"                                                                       \
    "%s\r\n"
    const char *extra = extra_headers ? extra_headers : "";
    const char *connection =
        keep_alive ? "Connection: keep-alive\r\n"
                     "Keep-Alive: timeout=" AS_TEXT(KEEP_ALIVE_IDLE_S) "\r\n"
                   : "Connection: close\r\n";
    int n = snprintf(NULL, 0, RESPONSE_HEAD, status, ps_http_status_text(status),
                     type, len, extra, connection);
    char *head = n > 0 ? ps_malloc((size_t)n + 1) : NULL;
    if (head != NULL) {
        snprintf(head, (size_t)n + 1, RESPONSE_HEAD, status,
                 ps_http_status_text(status), type, len, extra, connection);
        *head_len = (size_t)n;
    }
#undef RESPONSE_HEAD
    return head;
}

static bool is_head_request(const ps_http_exchange *ex)
{
    /* The parser guesses the method from its first letters ("HEX" stops
     * with HEAD in it), so only a request whose head was parsed whole
     * surely said HEAD. A 400 to one that broke off before has its body,
     * as its Content-Length says, wherever the bytes were split. */
    return ex->headers_done && ex->parser.method == HTTP_HEAD;
}

void ps_http_respond(ps_http_exchange *ex, int status, const char *type,
                     const char *extra_headers, const void *body, size_t len)
{
    if (ex->sock_closed || (ex->responded && ex->pull == NULL)) {
        return;
    }
    /* Inside a pull, the stream's whole response (which its DONE ends). */
    bool in_stream = ex->pull != NULL;
    ex->responded = true;
    /* HTTP/1.1 keeps the connection unless asked not to (1.0 only when
     * asked to): a complete request that came alone, answered whole. */
    ex->keep_alive = !in_stream && ex->message_done && ex->refuse == 0 &&
                     !ex->pipelined && !ex->net->stopping &&
                     http_should_keep_alive(&ex->parser);
    ps_sock_read_stop(ex->sock);
    ps_sock_set_deadline(ex->sock, 0);
    size_t head_len = 0;
    char *head = response_head(status, type, extra_headers, len,
                               ex->keep_alive, &head_len);
    ps_sock *sock = ex->sock;
    if (head == NULL) {
        ps_sock_close(sock); /* no memory even for a 500 */
        return;
    }
    int rc = ps_sock_write(sock, head, head_len);
    ps_free(head);
    if (rc == 0 && len > 0 && !is_head_request(ex)) {
        rc = ps_sock_write(sock, body, len);
    }
    if (rc == 0 && !in_stream) {
        finish(ex);
    }
}

typedef struct later {
    int64_t due_ms;
    char *text;
    size_t len;
} later;

static ps_http_step later_pull(ps_http_exchange *ex, void *state)
{
    later *l = state;
    if (ps_now_ms() < l->due_ms) {
        return PS_HTTP_WAIT;
    }
    ps_http_write(ex, l->text, l->len);
    return PS_HTTP_DONE;
}

static void later_free(void *state)
{
    later *l = state;
    ps_free(l->text);
    ps_free(l);
}

void ps_http_respond_later(ps_http_exchange *ex, int64_t delay_ms, int status,
                           const char *type, const char *extra_headers,
                           const void *body, size_t len)
{
    size_t head_len = 0;
    char *head = response_head(status, type, extra_headers, len, false,
                               &head_len);
    later *l = ps_calloc(1, sizeof *l);
    if (!is_head_request(ex) && head != NULL) {
        char *all = ps_realloc(head, head_len + len);
        if (all == NULL) {
            ps_free(head);
            head = NULL;
        } else {
            memcpy(all + head_len, body, len);
            head = all;
            head_len += len;
        }
    }
    if (head == NULL || l == NULL) {
        ps_free(head);
        ps_free(l);
        ps_http_respond(ex, status, type, extra_headers, body, len);
        return;
    }
    l->due_ms = ps_now_ms() + delay_ms;
    l->text = head;
    l->len = head_len;
    ps_http_stream(ex, later_pull, later_free, l);
}

void ps_http_stream(ps_http_exchange *ex, ps_http_pull pull,
                    void (*free_state)(void *state), void *state)
{
    if (ex->responded || ex->sock_closed) {
        if (free_state != NULL) {
            free_state(state);
        }
        return;
    }
    ex->responded = true;
    ps_sock_read_stop(ex->sock);
    ps_sock_set_deadline(ex->sock, 0);
    ex->pull = pull;
    ex->free_state = free_state;
    ex->state = state;
    run_pull(ex, STEPS_PER_TURN);
}

int ps_http_write(ps_http_exchange *ex, const void *data, size_t len)
{
    return ex->sock_closed ? -1 : ps_sock_write(ex->sock, data, len);
}

size_t ps_http_pending(const ps_http_exchange *ex)
{
    return ex->sock_closed ? 0 : ex->sock->pending;
}
