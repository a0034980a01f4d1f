/*
 * HTTP/1.1 on the loop (http-parser): accept, parse a request, route it
 * by path prefix, answer, and keep the connection for the next request
 * (keep-alive) or close it. The WebSocket endpoint's upgrade is handed to
 * ws_conn.c.
 *
 * A handler runs on the loop thread once the whole request (its body
 * included, within the route's limit) is in. It must not block: it
 * answers at once with ps_http_respond(), or hands a pull function to
 * ps_http_stream() that writes the response a piece at a time, as the
 * peer takes it (a batch's replies) or as it comes (an event stream).
 * Keep-alive: a whole response to a complete request that came alone
 * (nothing pipelined behind it), when the request allows it (HTTP/1.1
 * without "Connection: close", HTTP/1.0 with "Connection: keep-alive"),
 * says "Connection: keep-alive" and "Keep-Alive: timeout=5"; once it is
 * written the connection waits 5 s for its next request, as a new one
 * does. Streams, refusals, pipelined requests and responses during a
 * shutdown say "Connection: close" and close. A shutdown closes the
 * connections that wait (ps_http_close_idle()).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_HTTP_SERVER_H
#define PS_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct ps_net;
struct ps_sock;

typedef struct ps_http_exchange ps_http_exchange;

typedef void (*ps_http_handler)(ps_http_exchange *ex, void *data);

/** A path prefix: it matches the path itself and the paths under it. */
typedef struct ps_http_route {
    const char *prefix;
    size_t body_max; /* 413 above it */
    ps_http_handler handler;
    void *data;
} ps_http_route;

/** Add a route (the prefix is borrowed: a literal). 0 or -1 (memory). */
int ps_http_route_add(struct ps_net *net, const char *prefix, size_t body_max,
                      ps_http_handler handler, void *data);

/** The listener's callback: accept one connection. */
void ps_http_accept(struct ps_net *net);

/** Shutting down: close the kept-alive connections that wait for their
 *  next request (one in progress is answered, with Connection: close). */
void ps_http_close_idle(struct ps_net *net);

/** The net's idle handle: streams that have more to write go on. */
void ps_http_more_run(uv_idle_t *idle);

/* For ws_conn.c: the exchange's socket, and handing it over (the exchange
 * is freed; the socket's ops and owner are the caller's to set). */
struct ps_sock *ps_http_socket(const ps_http_exchange *ex);
void ps_http_release_socket(ps_http_exchange *ex);

/* ---- the request -------------------------------------------------------- */

const char *ps_http_method(const ps_http_exchange *ex);
/** The path, percent-decoded, without the query. */
const char *ps_http_path(const ps_http_exchange *ex);
/** The raw query string (after '?'), or NULL. */
const char *ps_http_query(const ps_http_exchange *ex);
/** A header's value (case-insensitive name; the first if repeated), or
 *  NULL. */
const char *ps_http_header(const ps_http_exchange *ex, const char *name);
/** Whether the request said HTTP/1.0. */
bool ps_http_is_1_0(const ps_http_exchange *ex);
/** The body (NUL-terminated; "" without one). */
const char *ps_http_body(const ps_http_exchange *ex, size_t *len);
/** The body's buffer, which the caller then owns (ps_free); the exchange
 *  keeps an empty one. NULL when memory runs out. */
char *ps_http_take_body(ps_http_exchange *ex, size_t *len);

/** A query variable, percent-decoded into @p buf. False when absent or
 *  longer than @p len - 1. */
bool ps_http_query_var(const ps_http_exchange *ex, const char *name, char *buf,
                       size_t len);
/** A cookie's value. False when absent or too long. */
bool ps_http_cookie(const ps_http_exchange *ex, const char *name, char *buf,
                    size_t len);

/** Matches of a comma-separated header value: whether @p token is one of
 *  its elements (case-insensitive, as "Connection: keep-alive, Upgrade"). */
bool ps_http_token_in(const char *value, const char *token);

/* ---- the response ----------------------------------------------------- */

/** Reason phrase of a status code. */
const char *ps_http_status_text(int status);

/** The whole response: status line, Content-Type, Content-Length, the
 *  @p extra_headers (each ending "\r\n", or NULL), Connection (see
 *  keep-alive above), then the body (none for HEAD; a request refused
 *  before its head was parsed whole is taken for no HEAD, whatever its
 *  first letters). Once it is out, the connection waits for its next
 *  request or closes.
 *  Inside a pull (ps_http_stream()), it is the stream's whole response,
 *  and the pull then returns PS_HTTP_DONE. */
void ps_http_respond(ps_http_exchange *ex, int status, const char *type,
                     const char *extra_headers, const void *body, size_t len);

/** ps_http_respond() in @p delay_ms (a wrong password, say), without
 *  holding the loop meanwhile. */
void ps_http_respond_later(ps_http_exchange *ex, int64_t delay_ms, int status,
                           const char *type, const char *extra_headers,
                           const void *body, size_t len);

typedef enum ps_http_step {
    PS_HTTP_DONE, /* the response is complete: close when written */
    PS_HTTP_MORE, /* call again once what is written has drained */
    PS_HTTP_WAIT, /* nothing now: call again at the next tick */
} ps_http_step;

typedef ps_http_step (*ps_http_pull)(ps_http_exchange *ex, void *state);

/** Write the response with @p pull (which writes the status line and
 *  headers first, with ps_http_write()). It runs now, then as its steps
 *  ask. @p free_state runs once, when the response is done or the peer
 *  went. */
void ps_http_stream(ps_http_exchange *ex, ps_http_pull pull,
                    void (*free_state)(void *state), void *state);

/** Raw bytes of a streamed response. 0, or -1 when the peer is gone. */
int ps_http_write(ps_http_exchange *ex, const void *data, size_t len);

/** Bytes written and not yet taken by the peer's kernel. */
size_t ps_http_pending(const ps_http_exchange *ex);

#endif
