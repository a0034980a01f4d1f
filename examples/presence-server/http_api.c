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
#include "mem.h"
#include "server.h"
#include "util.h"
#include "wire.h"

#include <civetweb.h>
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
#define BODY_MAX_TEXT "1048576"
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

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Payload Too Large";
    default: return "Internal Server Error";
    }
}

static int respond(struct mg_connection *mg, int status, const char *type,
                   const char *body, size_t len)
{
    mg_printf(mg,
              "HTTP/1.1 %d %s\r\n"
              "Content-Type: %s\r\n"
              "Content-Length: %zu\r\n"
              "%s"
              "Connection: close\r\n\r\n",
              status, status_text(status), type, len,
              status == 405 ? "Allow: POST\r\n" : "");
    if (len > 0) {
        mg_write(mg, body, len);
    }
    return status;
}

static int respond_empty(struct mg_connection *mg, int status)
{
    return respond(mg, status, "text/plain; charset=utf-8", "", 0);
}

static int respond_text(struct mg_connection *mg, int status, const char *text)
{
    return respond(mg, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Go's http.Error(w, "Bad Request", 400), as Centrifugo answers. */
static int respond_bad_request(struct mg_connection *mg)
{
    return respond_text(mg, 400, "Bad Request\n");
}

static int respond_json(struct mg_connection *mg, int status, json_t *value)
{
    size_t len = 0;
    char *text = ps_wire_dump(value, &len);
    if (text == NULL) {
        return respond_empty(mg, 500);
    }
    int rc = respond(mg, status, "application/json", text, len);
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
static bool authorized(struct mg_connection *mg, const ps_config *cfg)
{
    if (cfg->api_insecure) {
        return true;
    }
    if (*cfg->api_key == '\0') {
        return false;
    }
    const char *header = mg_get_header(mg, "X-API-Key");
    if (header != NULL) {
        return ps_secret_equal(header, cfg->api_key);
    }
    header = mg_get_header(mg, "Authorization");
    if (header != NULL) {
        const char *space = strchr(header, ' ');
        if (space != NULL && (size_t)(space - header) == 6 &&
            strncasecmp(header, "apikey", 6) == 0) {
            return ps_secret_equal(space + 1, cfg->api_key);
        }
        return false;
    }
    const char *query = mg_get_request_info(mg)->query_string;
    char given[256];
    if (query != NULL &&
        mg_get_var(query, strlen(query), "api_key", given, sizeof given) >= 0) {
        return ps_secret_equal(given, cfg->api_key);
    }
    return false;
}

/* The request body, NUL-terminated. NULL with *status set on failure. A
 * body of exactly BODY_MAX bytes is read; one byte more is 413. */
static char *read_body(struct mg_connection *mg, size_t *len, int *status)
{
    long long declared = mg_get_request_info(mg)->content_length;
    if (declared > BODY_MAX) {
        *status = 413; /* refused before a byte of it is read */
        return NULL;
    }
    size_t cap = 4096;
    size_t n = 0;
    char *body = ps_malloc(cap + 1);
    if (body == NULL) {
        *status = 500;
        return NULL;
    }
    for (;;) {
        if (n == cap && cap < BODY_MAX) {
            char *grown = ps_realloc(body, cap * 2 + 1);
            if (grown == NULL) {
                ps_free(body);
                *status = 500;
                return NULL;
            }
            body = grown;
            cap *= 2;
        }
        /* At the limit, read into the byte kept for the NUL: anything
         * there means the body is too large. */
        int got = mg_read(mg, body + n, n == cap ? 1 : cap - n);
        if (got < 0) {
            ps_free(body);
            *status = 500; /* Centrifugo: an unreadable body is a 500 */
            return NULL;
        }
        if (got == 0) {
            break;
        }
        if (n == cap) {
            ps_free(body);
            *status = 413;
            return NULL;
        }
        n += (size_t)got;
    }
    body[n] = '\0';
    *len = n;
    return body;
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

/* POST /api/user_presence: {"user":..} ("" or absent: anonymous). */
static int handle_user(struct mg_connection *mg, ps_server *server,
                       const char *body, size_t len)
{
    bool nomem = false;
    json_t *req = ps_json_loadb(body, len, 0, NULL, &nomem);
    if (nomem) {
        return respond_empty(mg, 500);
    }
    json_t *user = json_object_get(req, "user");
    if (!json_is_object(req) || (user != NULL && !json_is_string(user))) {
        json_decref(req);
        return respond_bad_request(mg);
    }
    int code = 0;
    json_t *result =
        user_presence(server, user ? json_string_value(user) : "", &code);
    json_decref(req);
    if (result != NULL) {
        return respond_json(mg, 200, json_pack("{s:o}", "result", result));
    }
    ps_metrics_api_error(&server->metrics, code);
    return respond_json(mg, 200,
                        json_pack("{s:o}", "error", ps_wire_error(code, false)));
}

/* POST /api/presence_changes: see history_api.h. */
static int handle_changes(struct mg_connection *mg, ps_server *server,
                          const char *body, size_t len)
{
    bool nomem = false;
    json_t *req = ps_json_loadb(body, len, 0, NULL, &nomem);
    if (nomem) {
        return respond_empty(mg, 500);
    }
    if (!json_is_object(req)) {
        json_decref(req);
        return respond_bad_request(mg);
    }
    int code = 0;
    json_t *result = ps_history_api_changes(server, req, &code);
    json_decref(req);
    if (result != NULL) {
        return respond_json(mg, 200, json_pack("{s:o}", "result", result));
    }
    ps_metrics_api_error(&server->metrics, code);
    return respond_json(mg, 200,
                        json_pack("{s:o}", "error", ps_wire_error(code, false)));
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

static bool transport_error_mode(struct mg_connection *mg)
{
    const char *mode = mg_get_header(mg, "X-Centrifugo-Error-Mode");
    return mode != NULL && strcasecmp(mode, "transport") == 0;
}

/* POST /api/presence and /api/presence_stats: {"channel":..}. */
static int handle_method(struct mg_connection *mg, ps_server *server,
                         bool stats, const char *body, size_t len)
{
    bool nomem = false;
    json_t *req = ps_json_loadb(body, len, 0, NULL, &nomem);
    if (nomem) {
        return respond_empty(mg, 500);
    }
    json_t *channel = json_object_get(req, "channel");
    if (!json_is_object(req) || (channel != NULL && !json_is_string(channel))) {
        json_decref(req);
        return respond_bad_request(mg);
    }
    int code = 0;
    json_t *result = execute(server, stats,
                             channel ? json_string_value(channel) : "", &code);
    json_decref(req);
    if (result != NULL) {
        return respond_json(mg, 200, json_pack("{s:o}", "result", result));
    }
    ps_metrics_api_error(&server->metrics, code);
    if (transport_error_mode(mg)) {
        return respond_json(mg, transport_status(code), ps_wire_error(code, false));
    }
    return respond_json(mg, 200,
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

/* Once the replies outgrow this, they are sent as they come (chunked)
 * rather than held: a batch's memory is its body and this much. */
#define LEGACY_FLUSH_AT (64 * 1024)

/* The replies of a batch being written out. */
typedef struct legacy_out {
    struct mg_connection *mg;
    char *buf;
    size_t len, cap;
    bool streaming;  /* the headers went out: the rest is chunks */
    bool chunked;    /* HTTP/1.1: chunked; HTTP/1.0: until the close */
} legacy_out;

/* Append with geometric growth: a batch costs linear time. */
static int out_append(legacy_out *o, const char *data, size_t n)
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

static int out_flush(legacy_out *o)
{
    if (!o->streaming) {
        const char *version = mg_get_request_info(o->mg)->http_version;
        o->chunked = version == NULL || strcmp(version, "1.0") != 0;
        mg_printf(o->mg,
                  "HTTP/1.1 200 OK\r\n"
                  "Content-Type: application/json\r\n"
                  "%s"
                  "Connection: close\r\n\r\n",
                  o->chunked ? "Transfer-Encoding: chunked\r\n" : "");
        o->streaming = true;
    }
    int rc = o->len == 0 ? 1
             : o->chunked ? mg_send_chunk(o->mg, o->buf, (unsigned)o->len)
                          : mg_write(o->mg, o->buf, o->len);
    o->len = 0;
    return rc > 0 ? 0 : -1;
}

/* One command's reply, appended (after a newline but for the first). */
static int out_reply(legacy_out *o, ps_server *server, const char *text,
                     size_t n, bool first)
{
    bool nomem = false;
    json_t *cmd = ps_json_loadb(text, n, 0, NULL, &nomem);
    json_t *reply = cmd ? legacy_reply(server, cmd) : NULL;
    json_decref(cmd);
    char *dumped = reply ? ps_json_dumps(reply, JSON_COMPACT) : NULL;
    json_decref(reply);
    int rc = dumped != NULL &&
                     (first || out_append(o, "\n", 1) == 0) &&
                     out_append(o, dumped, strlen(dumped)) == 0
                 ? 0
                 : -1;
    ps_free(dumped);
    return rc;
}

/* POST /api: newline-separated commands, replies joined the same way. A
 * batch is checked whole first (a bad line is a 400 for all of it, as in
 * Centrifugo), then run one command at a time. Replies that fit in
 * LEGACY_FLUSH_AT go out with a Content-Length; longer ones stream. */
static int handle_legacy(struct mg_connection *mg, ps_server *server,
                         const char *body, size_t len)
{
    int status = legacy_validate(body, len);
    if (status == 400) {
        return respond_bad_request(mg);
    }
    if (status != 0) {
        return respond_empty(mg, status);
    }
    legacy_out o = {mg, NULL, 0, 0, false, false};
    const char *line = body;
    const char *end = body + len;
    bool first = true;
    while (line < end) {
        size_t n = 0;
        const char *text = next_line(&line, end, &n);
        if (blank_line(text, n)) {
            continue;
        }
        if (out_reply(&o, server, text, n, first) != 0 ||
            (o.len >= LEGACY_FLUSH_AT && out_flush(&o) != 0)) {
            ps_free(o.buf);
            if (o.streaming) {
                /* Too late for a status: the unfinished body (no final
                 * chunk) tells the client it failed. */
                return 500;
            }
            return respond_empty(mg, 500);
        }
        first = false;
    }
    int rc = 200;
    if (o.streaming) {
        if (out_flush(&o) == 0 && o.chunked) {
            mg_send_chunk(mg, "", 0); /* the last chunk */
        }
    } else {
        rc = respond(mg, 200, "application/json", o.buf, o.len);
    }
    ps_free(o.buf);
    return rc;
}

static int api_handler(struct mg_connection *mg, void *cbdata)
{
    ps_server *server = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(mg);
    route r = find_route(ri->local_uri);
    if (r == ROUTE_NONE) {
        return respond_empty(mg, 404);
    }
    if (strcmp(ri->request_method, "POST") != 0) {
        return respond_empty(mg, 405);
    }
    if (!authorized(mg, server->cfg)) {
        return respond_empty(mg, 401);
    }
    size_t len = 0;
    int status = 0;
    char *body = read_body(mg, &len, &status);
    if (body == NULL) {
        if (status == 413) {
            return respond_text(mg, 413, "Payload Too Large: the limit is "
                                         BODY_MAX_TEXT " bytes\n");
        }
        return respond_empty(mg, status);
    }
    if (!ps_wire_depth_ok(body, len, PS_JSON_MAX_DEPTH)) {
        ps_free(body);
        return respond_text(mg, 400, "Bad Request: JSON nested deeper than "
                                     PS_STR(PS_JSON_MAX_DEPTH) " levels\n");
    }
    int rc = r == ROUTE_LEGACY ? handle_legacy(mg, server, body, len)
             : r == ROUTE_USER ? handle_user(mg, server, body, len)
             : r == ROUTE_CHANGES ? handle_changes(mg, server, body, len)
                               : handle_method(mg, server, r == ROUTE_STATS,
                                               body, len);
    ps_free(body);
    return rc;
}

void ps_http_api_install(struct mg_context *ctx, ps_server *server)
{
    mg_set_request_handler(ctx, API_PREFIX, api_handler, server);
}
