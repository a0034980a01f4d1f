/*
 * The HTTP server API. Checks run in Centrifugo's order: method (405), API
 * key (401, empty body), body (400 "Bad Request"), then the command, whose
 * errors are HTTP 200 with {"error":{code,message}} unless the request asks
 * for transport error mode. Presence is answered by libpresence as a
 * trusted, server-side read (no requesting client, no access check).
 * SPDX-License-Identifier: MIT
 */
#include "http_api.h"

#include "history_api.h"
#include "http_server.h"
#include "mem.h"
#include "net.h"
#include "server.h"
#include "util.h"
#include "wire.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define API_PREFIX "/api"
/* The largest request body (413 above it): an API caller holds the key
 * and is trusted, but a body is read whole into memory. */
#define BODY_MAX (1024 * 1024)
#define PS_STR_(x) #x
#define PS_STR(x) PS_STR_(x)

typedef enum route {
    ROUTE_NONE,
    ROUTE_LEGACY,
    ROUTE_PRESENCE,
    ROUTE_STATS,
    ROUTE_USER, /* an extension: a user's connections across channels */
    ROUTE_CHANGES, /* an extension: a channel's changes since a version */
} route;

static int respond(ps_http_exchange *ex, int status, const char *type,
                   const char *body, size_t len)
{
    ps_http_respond(ex, status, type, status == 405 ? "Allow: POST\r\n" : NULL,
                    body, len);
    return status;
}

static int respond_empty(ps_http_exchange *ex, int status)
{
    return respond(ex, status, "text/plain; charset=utf-8", "", 0);
}

static int respond_text(ps_http_exchange *ex, int status, const char *text)
{
    return respond(ex, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Go's http.Error(w, "Bad Request", 400), as Centrifugo answers. */
static int respond_bad_request(ps_http_exchange *ex)
{
    return respond_text(ex, 400, "Bad Request\n");
}

static int respond_json(ps_http_exchange *ex, int status, json_t *value)
{
    size_t len = 0;
    char *text = ps_wire_dump(value, &len);
    if (text == NULL) {
        return respond_empty(ex, 500);
    }
    int rc = respond(ex, status, "application/json", text, len);
    ps_free(text);
    return rc;
}

static route find_route(const char *uri)
{
    if (strcmp(uri, API_PREFIX) == 0 || strcmp(uri, API_PREFIX "/") == 0) {
        return ROUTE_LEGACY;
    }
    if (strcmp(uri, API_PREFIX "/presence") == 0) {
        return ROUTE_PRESENCE;
    }
    if (strcmp(uri, API_PREFIX "/presence_stats") == 0) {
        return ROUTE_STATS;
    }
    if (strcmp(uri, API_PREFIX "/user_presence") == 0) {
        return ROUTE_USER;
    }
    if (strcmp(uri, API_PREFIX "/presence_changes") == 0) {
        return ROUTE_CHANGES;
    }
    return ROUTE_NONE;
}


/* X-API-Key, then "Authorization: apikey KEY", then ?api_key=KEY. An
 * empty configured key lets nobody in, as in Centrifugo. */
static bool authorized(ps_http_exchange *ex, const ps_config *cfg)
{
    if (cfg->api_insecure) {
        return true;
    }
    if (*cfg->api_key == '\0') {
        return false;
    }
    const char *header = ps_http_header(ex, "X-API-Key");
    if (header != NULL) {
        return ps_secret_equal(header, cfg->api_key);
    }
    header = ps_http_header(ex, "Authorization");
    if (header != NULL) {
        const char *space = strchr(header, ' ');
        if (space != NULL && (size_t)(space - header) == 6 &&
            strncasecmp(header, "apikey", 6) == 0) {
            return ps_secret_equal(space + 1, cfg->api_key);
        }
        return false;
    }
    char given[256];
    if (ps_http_query_var(ex, "api_key", given, sizeof given)) {
        return ps_secret_equal(given, cfg->api_key);
    }
    return false;
}

/* One presence or presence_stats call: {"result":..} or {"error":..}. */
static json_t *execute(ps_server *server, bool stats, const char *channel,
                       int *error_code)
{
    *error_code = 0;
    ps_metrics_api_command(&server->metrics, stats);
    if (*channel == '\0') {
        *error_code = PS_ERR_BAD_REQUEST;
        return NULL;
    }
    if (stats) {
        presence_channel_stats st;
        int rc = presence_stats(server->registry, channel, presence_trusted(), &st);
        if (rc != PRESENCE_OK) {
            *error_code = ps_wire_code_from_presence(rc);
            return NULL;
        }
        return ps_wire_stats(&st);
    }
    presence_snapshot *snap = NULL;
    int rc = presence_query(server->registry, channel, presence_trusted(), &snap);
    if (rc != PRESENCE_OK) {
        *error_code = ps_wire_code_from_presence(rc);
        return NULL;
    }
    json_t *map = ps_wire_presence(snap);
    presence_snapshot_free(snap);
    if (map == NULL) {
        *error_code = PS_ERR_INTERNAL;
        return NULL;
    }
    return json_pack("{s:o}", "presence", map);
}

/* {"user":U,"online":B,"connections":N,"clients":{CLIENT_ID:ClientInfo}}
 * of a user across every channel (and server, with Redis). */
static json_t *user_presence(ps_server *server, const char *user,
                             int *error_code)
{
    presence_snapshot *snap = NULL;
    int rc = presence_user_clients(server->registry, user, &snap);
    if (rc != PRESENCE_OK) {
        *error_code = ps_wire_code_from_presence(rc);
        return NULL;
    }
    json_t *clients = ps_wire_presence(snap);
    size_t n = snap->count;
    presence_snapshot_free(snap);
    json_t *result =
        clients == NULL
            ? NULL
            : json_pack("{s:s,s:b,s:I,s:o}", "user", user, "online", n > 0,
                        "connections", (json_int_t)n, "clients", clients);
    if (result == NULL) {
        *error_code = PS_ERR_INTERNAL;
    }
    return result;
}

/* An extension method's answer: {"result":..}, or {"error":..} (counted)
 * when result is NULL. */
static int respond_result(ps_http_exchange *ex, ps_server *server,
                          json_t *result, int code)
{
    if (result != NULL) {
        return respond_json(ex, 200, json_pack("{s:o}", "result", result));
    }
    ps_metrics_api_error(&server->metrics, code);
    return respond_json(ex, 200,
                        json_pack("{s:o}", "error", ps_wire_error(code, false)));
}

/* POST /api/user_presence: {"user":..} ("" or absent: anonymous). */
static int handle_user(ps_http_exchange *ex, ps_server *server,
                       const char *body, size_t len)
{
    bool nomem = false;
    json_t *req = ps_json_loadb(body, len, 0, NULL, &nomem);
    if (nomem) {
        return respond_empty(ex, 500);
    }
    json_t *user = json_object_get(req, "user");
    if (!json_is_object(req) || (user != NULL && !json_is_string(user))) {
        json_decref(req);
        return respond_bad_request(ex);
    }
    int code = 0;
    json_t *result =
        user_presence(server, user ? json_string_value(user) : "", &code);
    json_decref(req);
    return respond_result(ex, server, result, code);
}

/* POST /api/presence_changes: see history_api.h. */
static int handle_changes(ps_http_exchange *ex, ps_server *server,
                          const char *body, size_t len)
{
    bool nomem = false;
    json_t *req = ps_json_loadb(body, len, 0, NULL, &nomem);
    if (nomem) {
        return respond_empty(ex, 500);
    }
    if (!json_is_object(req)) {
        json_decref(req);
        return respond_bad_request(ex);
    }
    int code = 0;
    json_t *result = ps_history_api_changes(server, req, &code);
    json_decref(req);
    return respond_result(ex, server, result, code);
}

/* Centrifugo's MapErrorToHTTPCode, for transport error mode. */
static int transport_status(int code)
{
    switch (code) {
    case PS_ERR_UNKNOWN_CHANNEL:
    case PS_ERR_METHOD_NOT_FOUND:
        return 404;
    case PS_ERR_BAD_REQUEST:
    case PS_ERR_NOT_AVAILABLE:
        return 400;
    default:
        return 500;
    }
}

static bool transport_error_mode(ps_http_exchange *ex)
{
    const char *mode = ps_http_header(ex, "X-Centrifugo-Error-Mode");
    return mode != NULL && strcasecmp(mode, "transport") == 0;
}

/* POST /api/presence and /api/presence_stats: {"channel":..}. */
static int handle_method(ps_http_exchange *ex, ps_server *server,
                         bool stats, const char *body, size_t len)
{
    bool nomem = false;
    json_t *req = ps_json_loadb(body, len, 0, NULL, &nomem);
    if (nomem) {
        return respond_empty(ex, 500);
    }
    json_t *channel = json_object_get(req, "channel");
    if (!json_is_object(req) || (channel != NULL && !json_is_string(channel))) {
        json_decref(req);
        return respond_bad_request(ex);
    }
    int code = 0;
    json_t *result = execute(server, stats,
                             channel ? json_string_value(channel) : "", &code);
    json_decref(req);
    if (result != NULL) {
        return respond_json(ex, 200, json_pack("{s:o}", "result", result));
    }
    ps_metrics_api_error(&server->metrics, code);
    if (transport_error_mode(ex)) {
        return respond_json(ex, transport_status(code), ps_wire_error(code, false));
    }
    return respond_json(ex, 200,
                        json_pack("{s:o}", "error", ps_wire_error(code, false)));
}

/* The legacy method: a string (any case) or its number (4, 5). */
static int legacy_method(json_t *method)
{
    const char *name = json_string_value(method);
    if (name != NULL) {
        if (strcasecmp(name, "presence") == 0) {
            return 4;
        }
        if (strcasecmp(name, "presence_stats") == 0) {
            return 5;
        }
        return -1;
    }
    if (json_is_integer(method)) {
        json_int_t n = json_integer_value(method);
        return (n == 4 || n == 5) ? (int)n : -1;
    }
    return -1;
}

/* One legacy command to its reply object. */
static json_t *legacy_reply(ps_server *server, json_t *cmd)
{
    json_t *reply = json_object();
    json_t *id = json_object_get(cmd, "id");
    int rc = reply != NULL ? 0 : -1;
    if (id != NULL) {
        rc |= json_object_set(reply, "id", id);
    }
    int method = legacy_method(json_object_get(cmd, "method"));
    json_t *params = json_object_get(cmd, "params");
    json_t *channel = json_object_get(params, "channel");
    int code = 0;
    json_t *result = NULL;
    if (method < 0) {
        code = PS_ERR_METHOD_NOT_FOUND;
    } else if ((params != NULL && !json_is_object(params)) ||
               (channel != NULL && !json_is_string(channel))) {
        code = PS_ERR_BAD_REQUEST;
    } else {
        result = execute(server, method == 5,
                         channel ? json_string_value(channel) : "", &code);
    }
    if (result != NULL) {
        rc |= json_object_set_new(reply, "result", result);
    } else {
        ps_metrics_api_error(&server->metrics, code);
        rc |= json_object_set_new(reply, "error", ps_wire_error(code, false));
    }
    if (rc != 0) { /* out of memory: the caller answers 500 */
        json_decref(reply);
        return NULL;
    }
    return reply;
}

/* The next line of [*line, end): its length, and *line moved past it. */
static const char *next_line(const char **line, const char *end, size_t *n)
{
    const char *start = *line;
    const char *nl = memchr(start, '\n', (size_t)(end - start));
    *n = (size_t)((nl ? nl : end) - start);
    *line = nl ? nl + 1 : end;
    return start;
}

static bool blank_line(const char *line, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
            return false;
        }
    }
    return true;
}

/* First pass over a batch: every line blank or a JSON object, at least
 * one command. 0, or the HTTP status to answer (400, or 500 when memory
 * ran out). Nothing is kept: the second pass parses again, so that a
 * batch costs one parsed command at a time, not all of them at once. */
static int legacy_validate(const char *body, size_t len)
{
    const char *line = body;
    const char *end = body + len;
    size_t commands = 0;
    while (line < end) {
        size_t n = 0;
        const char *text = next_line(&line, end, &n);
        if (blank_line(text, n)) {
            continue;
        }
        bool nomem = false;
        json_t *cmd = ps_json_loadb(text, n, 0, NULL, &nomem);
        bool object = json_is_object(cmd);
        json_decref(cmd);
        if (nomem) {
            return 500;
        }
        if (!object) {
            return 400;
        }
        commands++;
    }
    return commands > 0 ? 0 : 400;
}

/* A batch's replies go out this much at a time, each piece written once
 * the peer has taken the one before: a batch's memory is its body and
 * this much, whatever it answers. */
#define LEGACY_PIECE (64 * 1024)

/* A batch being answered (the state of its pull). */
typedef struct legacy_batch {
    ps_server *server;
    char *body;
    const char *line, *end; /* the commands not yet run */
    char *buf;
    size_t len, cap;
    bool first;      /* no reply yet */
    bool streaming;  /* the headers went out: the rest is chunks */
    bool chunked;    /* HTTP/1.1: chunked; HTTP/1.0: until the close */
} legacy_batch;

/* Append with geometric growth: a batch costs linear time. */
static int out_append(legacy_batch *o, const char *data, size_t n)
{
    if (n > o->cap - o->len) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap - o->len < n) {
            if (cap > SIZE_MAX / 2) {
                return -1;
            }
            cap *= 2;
        }
        char *grown = ps_realloc(o->buf, cap);
        if (grown == NULL) {
            return -1;
        }
        o->buf = grown;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, data, n);
    o->len += n;
    return 0;
}

/* One command's reply, appended (after a newline but for the first). */
static int out_reply(legacy_batch *o, const char *text, size_t n)
{
    bool nomem = false;
    json_t *cmd = ps_json_loadb(text, n, 0, NULL, &nomem);
    json_t *reply = cmd ? legacy_reply(o->server, cmd) : NULL;
    json_decref(cmd);
    char *dumped = reply ? ps_json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    int rc = dumped != NULL &&
                     (o->first || out_append(o, "\n", 1) == 0) &&
                     out_append(o, dumped, strlen(dumped)) == 0
                 ? 0
                 : -1;
    ps_free(dumped);
    o->first = false;
    return rc;
}

/* Write what is buffered as the next piece (the headers first). */
static int out_flush(ps_http_exchange *ex, legacy_batch *o)
{
    if (!o->streaming) {
        o->chunked = !ps_http_is_1_0(ex);
        const char *head = o->chunked ? "HTTP/1.1 200 OK\r\n"
                                        "Content-Type: application/json\r\n"
                                        "Transfer-Encoding: chunked\r\n"
                                        "Connection: close\r\n\r\n"
                                      : "HTTP/1.1 200 OK\r\n"
                                        "Content-Type: application/json\r\n"
                                        "Connection: close\r\n\r\n";
        o->streaming = true;
        if (ps_http_write(ex, head, strlen(head)) != 0) {
            return -1;
        }
    }
    if (o->len == 0) {
        return 0;
    }
    char size[24];
    int n = snprintf(size, sizeof size, "%zx\r\n", o->len);
    int rc = o->chunked ? ps_http_write(ex, size, (size_t)n) : 0;
    rc |= ps_http_write(ex, o->buf, o->len);
    rc |= o->chunked ? ps_http_write(ex, "\r\n", 2) : 0;
    o->len = 0;
    return rc;
}

static void legacy_free(void *state)
{
    legacy_batch *o = state;
    ps_free(o->body);
    ps_free(o->buf);
    ps_free(o);
}

/* Run commands until a piece is ready or the batch is over. Replies that
 * fit in one piece go out with a Content-Length; longer ones stream. */
static ps_http_step legacy_pull(ps_http_exchange *ex, void *state)
{
    legacy_batch *o = state;
    while (o->line < o->end && o->len < LEGACY_PIECE) {
        size_t n = 0;
        const char *text = next_line(&o->line, o->end, &n);
        if (blank_line(text, n)) {
            continue;
        }
        if (out_reply(o, text, n) != 0) {
            if (!o->streaming) {
                respond_empty(ex, 500);
            }
            /* Too late for a status: the unfinished body (no final chunk)
             * tells the client it failed. */
            return PS_HTTP_DONE;
        }
    }
    if (o->line < o->end) {
        return out_flush(ex, o) == 0 ? PS_HTTP_MORE : PS_HTTP_DONE;
    }
    if (!o->streaming) {
        respond(ex, 200, "application/json", o->buf, o->len);
    } else if (out_flush(ex, o) == 0 && o->chunked) {
        ps_http_write(ex, "0\r\n\r\n", 5); /* the last chunk */
    }
    return PS_HTTP_DONE;
}

/* POST /api: newline-separated commands, replies joined the same way. A
 * batch is checked whole first (a bad line is a 400 for all of it, as in
 * Centrifugo), then run a piece at a time as the peer reads. */
static int handle_legacy(ps_http_exchange *ex, ps_server *server,
                         const char *body, size_t len)
{
    int status = legacy_validate(body, len);
    if (status == 400) {
        return respond_bad_request(ex);
    }
    if (status != 0) {
        return respond_empty(ex, status);
    }
    legacy_batch *o = ps_calloc(1, sizeof *o);
    size_t taken = 0;
    char *own = o != NULL ? ps_http_take_body(ex, &taken) : NULL;
    if (own == NULL) {
        ps_free(o);
        return respond_empty(ex, 500);
    }
    o->server = server;
    o->body = own;
    o->line = own;
    o->end = own + taken;
    o->first = true;
    ps_http_stream(ex, legacy_pull, legacy_free, o);
    return 200;
}

static void api_handler(ps_http_exchange *ex, void *data)
{
    ps_server *server = data;
    route r = find_route(ps_http_path(ex));
    if (r == ROUTE_NONE) {
        respond_empty(ex, 404);
        return;
    }
    if (strcmp(ps_http_method(ex), "POST") != 0) {
        respond_empty(ex, 405);
        return;
    }
    if (!authorized(ex, server->cfg)) {
        respond_empty(ex, 401);
        return;
    }
    size_t len = 0;
    const char *body = ps_http_body(ex, &len);
    if (!ps_wire_depth_ok(body, len, PS_JSON_MAX_DEPTH)) {
        respond_text(ex, 400, "Bad Request: JSON nested deeper than "
                              PS_STR(PS_JSON_MAX_DEPTH) " levels\n");
        return;
    }
    if (r == ROUTE_LEGACY) {
        handle_legacy(ex, server, body, len);
    } else if (r == ROUTE_USER) {
        handle_user(ex, server, body, len);
    } else if (r == ROUTE_CHANGES) {
        handle_changes(ex, server, body, len);
    } else {
        handle_method(ex, server, r == ROUTE_STATS, body, len);
    }
}

int ps_http_api_install(ps_net *net, ps_server *server)
{
    /* A body of exactly BODY_MAX bytes is read; one byte more is 413. */
    return ps_http_route_add(net, API_PREFIX, BODY_MAX, api_handler, server);
}
