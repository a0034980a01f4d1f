/*
 * Fuzz target: the presence server's HTTP/1.1 code (http_server.c) and its
 * API (http_api.c) on a real socket. A server (ps_server_init) gets a real
 * loop and listener (ps_net_init, on 127.0.0.1, an ephemeral port) with
 * the routes the server has (/api, /metrics, /health), a streamed route
 * and one with a 16-byte body limit; a loopback TCP client, accepted by
 * the real accept path, sends the input in pieces, and the loop runs on
 * this thread until it is quiet after each piece. Then the shutdown the
 * loop thread makes (net.c: idle connections closed, WebSockets told
 * 3001, then every socket closed), and the loop and the server are torn
 * down.
 *
 * Input: byte 0 the piece size (0: the stream in one write); byte 1 flags
 * (bit 0: the client half-closes after its last piece; bit 1: ten seconds
 * pass before the shutdown, so that the keep-alive, request, linger and
 * write stall deadlines fire; bit 2: two clients send the same bytes,
 * piece for piece, so that two exchanges, two streams, run at once;
 * bit 3: a slow network, the server's send buffers small and the clients
 * reading only after their last piece, so that writes wait and drain;
 * bit 4: the clients reset their connections after the last piece, so
 * that whatever is being written fails; bit 5: the shutdown begins before
 * the last piece, which then comes to a server that is stopping);
 * byte 2: N > 0 fails the server's Nth allocation from the accepts on.
 * The rest is what each client sends.
 *
 * Checked (abort on violation), against a second http_parser that reads
 * the same bytes (the "mirror": where each request begins and ends, its
 * method, whether it allows keep-alive, where the stream is malformed):
 *   - what comes back is a sequence of well-formed HTTP/1.1 responses
 *     (status line, headers, a body framed by Content-Length, chunks, or
 *     the close), 100 Continue aside, up to a 101 (then WebSocket); a
 *     response to HEAD has no body; a JSON body is one JSON object a line;
 *   - response k answers request k: no more responses than requests the
 *     mirror saw begin; one to a request that is not complete is a 4xx
 *     (a 5xx after an allocation failure) that closes;
 *   - nothing follows a "Connection: close" response; keep-alive only for
 *     a complete request that allows it, with a Content-Length, and the
 *     connection then stays open;
 *   - silence is no answer: the first request, and each one after a
 *     kept-alive response, gets a response once it is complete or
 *     malformed (unless an allocation failed);
 *   - once the shutdown began, no response keeps the connection alive;
 *   - the shutdown closes every socket, and afterwards the server's
 *     allocations are back where they were (no leak, besides ASan's).
 * SPDX-License-Identifier: MIT
 */
#include "server_fuzz.h"

#include "http_api.h"
#include "http_server.h"
#include "mem.h"
#include "metrics_http.h"
#include "net.h"
#include "server.h"
#include "util.h"
#include "ws_conn.h"

#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <jansson.h>
#include <linux/tcp.h> /* tcp_info's byte counts, which glibc's lacks */
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

/* The input and what the client got, shown when a check fails. */
static const uint8_t *input;
static size_t input_len;
static const char *shown;
static size_t shown_len;

static void show_input(void)
{
    fprintf(stderr, "input (%zu bytes): \"", input_len);
    for (size_t i = 0; i < input_len; i++) {
        uint8_t c = input[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            fputc(c, stderr);
        } else {
            fprintf(stderr, "\\x%02x", c);
        }
    }
    fprintf(stderr, "\"\n");
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "server_http: ");                                  \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\nreceived (%zu bytes):\n%.*s\n", shown_len,     \
                    (int)shown_len, shown ? shown : "");                       \
            show_input();                                                      \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define FLAG_HALF_CLOSE 0x01
#define FLAG_TIME_PASSES 0x02
#define FLAG_TWO_CLIENTS 0x04
#define FLAG_SLOW_READER 0x08
#define FLAG_RESET 0x10
#define FLAG_STOP_EARLY 0x20
/* Past every deadline of an HTTP socket (5 s request and keep-alive,
 * 2 s linger), short of the write stall limit's next turn. */
#define TIME_JUMP_MS 10000
/* Passes of the loop without an event before it counts as quiet. */
#define QUIET_PASSES 3
/* A loop that never settles on a finite input is a bug (a busy stream). */
#define MAX_PASSES 200000
/* How long bytes on the loopback may take to arrive (a loaded machine). */
#define DELIVERY_WAIT_MS 5000
#define SMALL_BODY_MAX 16
/* /stream?big=1's pieces: a few fill what the loopback takes from a slow
 * socket (a small send buffer, the client's receive window) and pass the
 * server's low water mark (64 KiB) behind it. */
#define BIG_PIECE 32768

static const char config_json[] =
    "{\"api_key\":\"k\",\"presence\":true,"
    "\"namespaces\":[{\"name\":\"chat\",\"presence\":true,"
    "\"join_leave\":true,\"presence_history_size\":4}]}";

/* ---- the server's memory: counted, and failed on request --------------- */

static long live_blocks;
static unsigned long fail_countdown; /* 0: no failure armed */
static bool failure_injected;
/* A response may be cut short or missing: an allocation failed, or a
 * write stalled past its limit. */
static bool may_cut;

static bool fail_now(void)
{
    if (fail_countdown == 0 || --fail_countdown != 0) {
        return false;
    }
    failure_injected = true;
    return true;
}

static void *fz_malloc(size_t size, void *ud)
{
    (void)ud;
    void *p = fail_now() ? NULL : malloc(size);
    live_blocks += p != NULL;
    return p;
}

static void *fz_realloc(void *ptr, size_t size, void *ud)
{
    (void)ud;
    void *p = fail_now() ? NULL : realloc(ptr, size);
    live_blocks += p != NULL && ptr == NULL;
    return p;
}

static void fz_free(void *ptr, void *ud)
{
    (void)ud;
    if (ptr != NULL) {
        live_blocks--;
        free(ptr);
    }
}

/* jansson's own allocations are counted but never failed: jansson 2.14's
 * lexer drops a character it cannot save and then walks past its buffer
 * (a heap overflow in lex_scan_string, akheron/jansson#362, fixed by
 * #747), a crash of the library that no caller can avoid. The server's
 * guard against what jansson does when memory runs out (ps_json_loadb)
 * is tested by the allocation failure tests and server_frames. */
static void *fz_jansson_malloc(size_t size)
{
    void *p = malloc(size);
    live_blocks += p != NULL;
    return p;
}

static ps_config config;

static void setup_once(void)
{
    static bool done;
    if (done) {
        return;
    }
    done = true;
    /* As main.c: a write to a peer that reset is an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    static const ps_mem_hooks hooks = {fz_malloc, fz_realloc, fz_free, NULL};
    ps_mem_set_hooks(&hooks);
    ps_mem_install_jansson();
    json_set_alloc_funcs(fz_jansson_malloc, ps_free);
    ps_log_set_quiet(true);
    char err[256];
    CHECK(ps_config_load_buffer(&config, config_json, strlen(config_json), err,
                                sizeof err) == 0,
          "config: %s", err);
    /* Any free port of the loopback: each input has a listener of its own. */
    config.port = 0;
}

/* ---- the mirror: the requests as a second parser sees them ------------- */

#define URL_KEPT 64

typedef struct request {
    char url[URL_KEPT];   /* its first bytes */
    size_t url_len;
    size_t body_len;
    bool complete;
    bool head;            /* HEAD, and its head was parsed whole */
    bool keep_alive;      /* complete, and allows keep-alive */
    bool malformed;       /* the parser failed inside it */
    bool control_byte;    /* one in a header value, which the server
                             refuses (the parser lets a first one by) */
} request;

typedef struct mirror {
    request *req;
    size_t count, cap;
} mirror;

static request *mirror_add(mirror *m)
{
    if (m->count == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->req = realloc(m->req, m->cap * sizeof *m->req);
        CHECK(m->req != NULL, "out of memory");
    }
    request *q = &m->req[m->count++];
    memset(q, 0, sizeof *q);
    return q;
}

static int mirror_begin(http_parser *p)
{
    mirror_add(p->data);
    return 0;
}

static int mirror_url(http_parser *p, const char *at, size_t len)
{
    mirror *m = p->data;
    request *q = &m->req[m->count - 1];
    size_t room = URL_KEPT - 1 - q->url_len;
    size_t n = len < room ? len : room;
    memcpy(q->url + q->url_len, at, n);
    q->url_len += n;
    return 0;
}

static int mirror_value(http_parser *p, const char *at, size_t len)
{
    mirror *m = p->data;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)at[i];
        m->req[m->count - 1].control_byte |= (c < 0x20 && c != '\t') || c == 0x7f;
    }
    return 0;
}

static int mirror_headers_done(http_parser *p)
{
    mirror *m = p->data;
    request *q = &m->req[m->count - 1];
    /* The server refused a control byte before the head was whole. */
    q->head = p->method == HTTP_HEAD && !q->control_byte;
    return 0;
}

static int mirror_body(http_parser *p, const char *at, size_t len)
{
    (void)at;
    mirror *m = p->data;
    m->req[m->count - 1].body_len += len;
    return 0;
}

static int mirror_complete(http_parser *p)
{
    mirror *m = p->data;
    request *q = &m->req[m->count - 1];
    q->complete = true;
    q->keep_alive = http_should_keep_alive(p) != 0;
    return 0;
}

static const http_parser_settings mirror_settings = {
    .on_message_begin = mirror_begin,
    .on_url = mirror_url,
    .on_header_value = mirror_value,
    .on_headers_complete = mirror_headers_done,
    .on_body = mirror_body,
    .on_message_complete = mirror_complete,
};

/* One byte at a time: http_parser_execute() stops after a request with
 * Upgrade, and the mirror goes on with the next byte, as the server goes
 * on with the next request unless it switched (the replies stop at the
 * 101). */
static void mirror_parse(mirror *m, const uint8_t *data, size_t size)
{
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = m;
    for (size_t i = 0; i < size; i++) {
        http_parser_execute(&p, &mirror_settings, (const char *)data + i, 1);
        if (HTTP_PARSER_ERRNO(&p) != HPE_OK) {
            /* Garbage before a method letter begins no message. */
            if (m->count == 0 || m->req[m->count - 1].complete) {
                mirror_add(m);
            }
            m->req[m->count - 1].malformed = true;
            break;
        }
    }
}

/* ---- what the client receives -------------------------------------------- */

typedef struct response {
    size_t start;     /* offset of its status line in what came */
    int status;
    const char *body; /* the whole body, when it came whole */
    size_t body_len;
    char *dechunked;  /* a chunked body's bytes (malloc'd) */
    bool json;        /* Content-Type: application/json */
    bool close;
    bool keep_alive;
    bool framed_by_length;
} response;

typedef struct reply_parse {
    const char *base, *at, *end;
    response *resp;
    size_t count, cap;
    bool switched; /* a 101: the rest is WebSocket */
    bool truncated;
} reply_parse;

static const char *find_crlf(const char *at, const char *end)
{
    for (const char *p = at; p + 1 < end; p++) {
        if (p[0] == '\r' && p[1] == '\n') {
            return p;
        }
    }
    return NULL;
}

static bool is_token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
}

/* A decimal or hex number of [at, end): the whole of it. */
static bool parse_number(const char *at, const char *end, int base,
                         size_t *out)
{
    if (at == end || end - at > 12) {
        return false;
    }
    size_t n = 0;
    for (const char *p = at; p < end; p++) {
        int d = *p >= '0' && *p <= '9'                 ? *p - '0'
                : base == 16 && *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                                                       : -1;
        if (d < 0) {
            return false;
        }
        n = n * (size_t)base + (size_t)d;
    }
    *out = n;
    return true;
}

static void append(response *resp, const char *data, size_t len)
{
    char *grown = realloc(resp->dechunked, resp->body_len + len + 1);
    CHECK(grown != NULL, "out of memory");
    memcpy(grown + resp->body_len, data, len);
    resp->dechunked = grown;
    resp->body = grown;
    resp->body_len += len;
}

/* A chunked body from r->at, its bytes into resp; false when cut short. */
static bool read_chunks(reply_parse *r, response *resp)
{
    append(resp, "", 0);
    for (;;) {
        const char *eol = find_crlf(r->at, r->end);
        if (eol == NULL) {
            return false;
        }
        size_t size = 0;
        CHECK(parse_number(r->at, eol, 16, &size), "bad chunk size line");
        r->at = eol + 2;
        if (size == 0) {
            CHECK(r->end - r->at < 2 || memcmp(r->at, "\r\n", 2) == 0,
                  "trailers after the last chunk");
            if (r->end - r->at < 2) {
                return false;
            }
            r->at += 2;
            return true;
        }
        if ((size_t)(r->end - r->at) < size + 2) {
            return false;
        }
        CHECK(memcmp(r->at + size, "\r\n", 2) == 0, "a chunk not ended by CRLF");
        append(resp, r->at, size);
        r->at += size + 2;
    }
}

/* The next response's head and body (none when the request it answers,
 * the mirror's of the same rank, was HEAD); false when the bytes end
 * inside it. */
static bool next_response(reply_parse *r, const mirror *m)
{
    const char *line_end = find_crlf(r->at, r->end);
    if (line_end == NULL) {
        return false;
    }
    CHECK(line_end - r->at > 13 && memcmp(r->at, "HTTP/1.1 ", 9) == 0 &&
              r->at[12] == ' ',
          "bad status line: %.*s", (int)(line_end - r->at), r->at);
    size_t status = 0;
    CHECK(parse_number(r->at + 9, r->at + 12, 10, &status) && status >= 100,
          "bad status: %.*s", (int)(line_end - r->at), r->at);
    response resp = {.start = (size_t)(r->at - r->base), .status = (int)status};
    bool chunked = false;
    bool has_length = false;
    bool has_connection = false;
    size_t length = 0;
    const char *at = line_end + 2;
    for (;;) {
        const char *eol = find_crlf(at, r->end);
        if (eol == NULL) {
            return false;
        }
        if (eol == at) {
            at += 2;
            break;
        }
        const char *colon = memchr(at, ':', (size_t)(eol - at));
        CHECK(colon != NULL && colon > at, "bad header line: %.*s",
              (int)(eol - at), at);
        for (const char *c = at; c < colon; c++) {
            CHECK(is_token_char(*c), "bad header name: %.*s",
                  (int)(colon - at), at);
        }
        const char *value = colon + 1;
        CHECK(value < eol && *value == ' ', "no space after the colon");
        value++;
        size_t name_len = (size_t)(colon - at);
        size_t value_len = (size_t)(eol - value);
        for (size_t i = 0; i < value_len; i++) {
            unsigned char c = (unsigned char)value[i];
            CHECK((c >= 0x20 && c != 0x7f) || c == '\t',
                  "a control byte in a header value");
        }
#define IS(name) (name_len == sizeof name - 1 && strncasecmp(at, name, name_len) == 0)
        if (IS("Content-Length")) {
            CHECK(!has_length, "two Content-Length headers");
            CHECK(parse_number(value, eol, 10, &length), "bad Content-Length");
            has_length = true;
        } else if (IS("Transfer-Encoding")) {
            CHECK(value_len == 7 && memcmp(value, "chunked", 7) == 0,
                  "Transfer-Encoding %.*s", (int)value_len, value);
            chunked = true;
        } else if (IS("Content-Type")) {
            resp.json = value_len >= 16 && memcmp(value, "application/json", 16) == 0;
        } else if (IS("Connection")) {
            CHECK(!has_connection, "two Connection headers");
            has_connection = true;
            resp.close = value_len == 5 && memcmp(value, "close", 5) == 0;
            resp.keep_alive = value_len == 10 && memcmp(value, "keep-alive", 10) == 0;
        }
#undef IS
        at = eol + 2;
    }
    CHECK(!(chunked && has_length), "both Content-Length and chunked");
    if (status == 100) {
        CHECK(!chunked && !has_length && !has_connection,
              "a 100 Continue with headers");
        r->at = at;
        return true; /* interim: the final response follows */
    }
    CHECK(has_connection, "status %zu without a Connection header", status);
    if (status == 101) {
        r->switched = true;
    }
    size_t k = r->count;
    bool head = k < m->count && m->req[k].head;
    resp.framed_by_length = has_length;
    if (status == 101 || head) {
        r->at = at;
    } else if (chunked) {
        r->at = at;
        if (!read_chunks(r, &resp)) {
            free(resp.dechunked);
            return false;
        }
    } else if (has_length) {
        if ((size_t)(r->end - at) < length) {
            return false;
        }
        resp.body = at;
        resp.body_len = length;
        r->at = at + length;
    } else {
        CHECK(resp.close, "status %zu: a body to the close without saying so",
              status);
        resp.body = at;
        resp.body_len = (size_t)(r->end - at);
        r->at = r->end;
    }
    if (r->count == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->resp = realloc(r->resp, r->cap * sizeof *r->resp);
        CHECK(r->resp != NULL, "out of memory");
    }
    r->resp[r->count++] = resp;
    return true;
}

static void parse_replies(reply_parse *r, const mirror *m)
{
    while (r->at < r->end && !r->switched) {
        if (!next_response(r, m)) {
            r->truncated = true;
            return;
        }
        if (r->count > 0 && r->resp[r->count - 1].close) {
            CHECK(r->at == r->end, "%zu bytes after a Connection: close response",
                  (size_t)(r->end - r->at));
        }
    }
}

/* Whether a request's URL is the route's path itself (with a query or
 * not): where nothing but the route can answer. */
static bool url_is(const request *q, const char *path)
{
    size_t n = strlen(path);
    return q->url_len >= n && memcmp(q->url, path, n) == 0 &&
           (q->url_len == n || q->url[n] == '?');
}

/* The harness's /small route: a complete request to it is answered by
 * its handler (which echoes the method), or refused 413 over the limit;
 * nothing else answers it. */
static void check_small(const response *resp, const request *q)
{
    if (!q->complete || !url_is(q, "/small") || memchr(q->url, '%', q->url_len)) {
        return;
    }
    if (q->control_byte) {
        CHECK(resp->status == 400, "status %d to a control byte in a header",
              resp->status);
        return;
    }
    if (q->body_len > SMALL_BODY_MAX) {
        CHECK(resp->status == 413, "status %d to /small with %zu bytes",
              resp->status, q->body_len);
        return;
    }
    CHECK(resp->status == 200, "status %d to a request to /small",
          resp->status);
    if (!q->head) {
        /* "METHOD /small q=.. c=.. body=.." */
        const char *space = memchr(resp->body, ' ', resp->body_len);
        CHECK(space != NULL &&
                  (size_t)(resp->body + resp->body_len - space) > 6 &&
                  memcmp(space + 1, "/small", 6) == 0,
              "/small's answer is not its echo");
    }
}

/* A JSON body is one object per line (a batch's replies are several). */
static void check_json(const response *resp)
{
    const char *line = resp->body;
    const char *end = resp->body + resp->body_len;
    CHECK(resp->body_len > 0, "status %d: an empty JSON body", resp->status);
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = (size_t)((nl ? nl : end) - line);
        json_t *value = json_loadb(line, n, 0, NULL);
        CHECK(json_is_object(value), "not a JSON object: %.*s", (int)n, line);
        json_decref(value);
        line = nl ? nl + 1 : end;
    }
}

/* Response k against request k, and the silences the server must not
 * keep (unless it may: the shutdown closed the connection as it waited). */
static void check_replies(const reply_parse *r, const mirror *m,
                          bool silence_ok)
{
    CHECK(!r->truncated || may_cut,
          "a response cut short without an allocation failure or a stall");
    CHECK(r->count <= m->count, "%zu responses to %zu requests", r->count,
          m->count);
    for (size_t k = 0; k < r->count; k++) {
        const response *resp = &r->resp[k];
        const request *q = &m->req[k];
        if (!q->complete) {
            CHECK(resp->close && k + 1 == r->count,
                  "an open connection after answering an incomplete request");
            CHECK((resp->status >= 400 && resp->status < 500) ||
                      (failure_injected && resp->status == 500),
                  "status %d to an incomplete request", resp->status);
        }
        if (resp->keep_alive) {
            CHECK(q->complete && q->keep_alive,
                  "keep-alive for a request that does not allow it");
            CHECK(resp->framed_by_length, "keep-alive without a Content-Length");
        }
        CHECK(resp->close || resp->keep_alive || resp->status == 101,
              "status %d: neither close nor keep-alive", resp->status);
        CHECK(resp->status != 101 || url_is(q, PS_WS_PATH),
              "a 101 to a request that is not for the WebSocket endpoint");
        if (!may_cut) {
            check_small(resp, q);
            if (resp->json && !q->head && resp->status != 101) {
                check_json(resp);
            }
        }
    }
    if (may_cut || r->switched || silence_ok) {
        return;
    }
    /* The request the server reads next: the first one, or the one after
     * a kept-alive response. */
    size_t k = r->count;
    bool reached = k == 0 || r->resp[k - 1].keep_alive;
    if (reached && k < m->count && (m->req[k].complete || m->req[k].malformed)) {
        CHECK(false, "no response to request %zu (%s)", k,
              m->req[k].complete ? "complete" : "malformed");
    }
}

/* ---- routes of the harness --------------------------------------------- */

/* /small: a 16-byte body limit; echoes the body, the query variable "q"
 * and the cookie "c"; with ?later, through ps_http_respond_later(). */
static void small_handler(ps_http_exchange *ex, void *data)
{
    (void)data;
    char q[32] = "";
    char c[32] = "";
    size_t len = 0;
    const char *body = ps_http_body(ex, &len);
    bool later = ps_http_query_var(ex, "later", q, sizeof q);
    bool has_q = ps_http_query_var(ex, "q", q, sizeof q);
    bool has_c = ps_http_cookie(ex, "c", c, sizeof c);
    char text[256];
    const char *query = ps_http_query(ex);
    int n = snprintf(text, sizeof text, "%s %.40s q=%s c=%s body=%.*s query=%.40s\n",
                     ps_http_method(ex), ps_http_path(ex), has_q ? q : "-",
                     has_c ? c : "-", (int)len, body, query ? query : "-");
    size_t text_len = n < 0 ? 0 : (size_t)n < sizeof text ? (size_t)n : sizeof text - 1;
    if (later) { /* as a refused password is answered, after no delay */
        ps_http_respond_later(ex, 0, 200, "text/plain",
                              "Cache-Control: no-store\r\n", text, text_len);
        return;
    }
    ps_http_respond(ex, 200, "text/plain", "Cache-Control: no-store\r\n",
                    text, text_len);
}

/* /stream?n=K: K chunks, one per pull (MORE between them), over HTTP/1.1;
 * until the close over HTTP/1.0; ?whole=1 answers with ps_http_respond()
 * from the pull; ?wait=W waits W ticks (PS_HTTP_WAIT) first; ?big=1 makes
 * each piece BIG_PIECE bytes. */
typedef struct stream_state {
    int left;
    int waits; /* PS_HTTP_WAIT steps before the head */
    bool big;  /* pieces of BIG_PIECE bytes */
    bool started;
    bool whole;
    bool chunked;
    bool head;
} stream_state;

/* A piece of BIG_PIECE bytes, more than a slow socket takes at once. */
static int stream_big_piece(ps_http_exchange *ex, const stream_state *s)
{
    static char big[BIG_PIECE];
    if (big[0] == '\0') {
        memset(big, 'x', sizeof big);
    }
    char size[16];
    int n = snprintf(size, sizeof size, "%x\r\n", BIG_PIECE);
    if (s->chunked && ps_http_write(ex, size, (size_t)n) != 0) {
        return -1;
    }
    if (ps_http_write(ex, big, sizeof big) != 0) {
        return -1;
    }
    return s->chunked ? ps_http_write(ex, "\r\n", 2) : 0;
}

static ps_http_step stream_pull(ps_http_exchange *ex, void *state)
{
    stream_state *s = state;
    if (s->waits > 0) {
        s->waits--;
        return PS_HTTP_WAIT;
    }
    if (s->whole) {
        ps_http_respond(ex, 200, "text/plain", NULL, "whole\n", 6);
        return PS_HTTP_DONE;
    }
    if (!s->started) {
        s->started = true;
        const char *head = s->chunked ? "HTTP/1.1 200 OK\r\n"
                                        "Content-Type: text/plain\r\n"
                                        "Transfer-Encoding: chunked\r\n"
                                        "Connection: close\r\n\r\n"
                                      : "HTTP/1.1 200 OK\r\n"
                                        "Content-Type: text/plain\r\n"
                                        "Connection: close\r\n\r\n";
        if (ps_http_write(ex, head, strlen(head)) != 0 || s->head) {
            return PS_HTTP_DONE;
        }
        return PS_HTTP_MORE;
    }
    if (s->left == 0) {
        if (s->chunked) {
            (void)ps_http_write(ex, "0\r\n\r\n", 5);
        }
        return PS_HTTP_DONE;
    }
    char piece[32];
    s->left--;
    if (s->big) {
        return stream_big_piece(ex, s) == 0 ? PS_HTTP_MORE : PS_HTTP_DONE;
    }
    int n = s->chunked ? snprintf(piece, sizeof piece, "6\r\npiece%d\r\n", s->left % 10)
                       : snprintf(piece, sizeof piece, "piece%d", s->left % 10);
    return ps_http_write(ex, piece, (size_t)n) == 0 ? PS_HTTP_MORE : PS_HTTP_DONE;
}

static void stream_free(void *state)
{
    ps_free(state);
}

static void stream_handler(ps_http_exchange *ex, void *data)
{
    (void)data;
    stream_state *s = ps_calloc(1, sizeof *s);
    if (s == NULL) {
        ps_http_respond(ex, 500, "text/plain", NULL, "", 0);
        return;
    }
    char n[4];
    s->left = ps_http_query_var(ex, "n", n, sizeof n) ? atoi(n) % 10 : 2;
    if (s->left < 0) {
        s->left = 0;
    }
    s->whole = ps_http_query_var(ex, "whole", n, sizeof n);
    s->waits = ps_http_query_var(ex, "wait", n, sizeof n) ? atoi(n) % 4 : 0;
    s->big = ps_http_query_var(ex, "big", n, sizeof n);
    s->chunked = !ps_http_is_1_0(ex);
    s->head = strcmp(ps_http_method(ex), "HEAD") == 0;
    ps_http_stream(ex, stream_pull, stream_free, s);
}

/* ---- one run ------------------------------------------------------------- */

#define MAX_CLIENTS 2

typedef struct client {
    int fd;
    int port;    /* its local port: the server's socket's peer port */
    size_t sent; /* bytes the kernel took from it */
    char *received;
    size_t received_len, received_cap;
    bool eof;
    bool eof_at_rest; /* the server had closed once every piece was in */
    /* An early shutdown: how much had come when it began (SIZE_MAX: not
     * known, the client was not reading), and whether it closed the
     * connection (a kept-alive one waiting for its next request). */
    size_t stop_at;
    bool closed_by_stop;
} client;

typedef struct run {
    ps_server server;
    ps_net net;
    client clients[MAX_CLIENTS];
    size_t nclients;
    bool slow; /* the clients read nothing until every piece is in */
    bool stopping;
} run;

/* Read what the server sent; whether anything came. */
static bool client_read(client *c)
{
    bool got = false;
    while (!c->eof) {
        if (c->received_cap - c->received_len < 4096) {
            c->received_cap = c->received_cap ? c->received_cap * 2 : 16384;
            c->received = realloc(c->received, c->received_cap);
            CHECK(c->received != NULL, "out of memory");
        }
        ssize_t n = recv(c->fd, c->received + c->received_len,
                         c->received_cap - c->received_len, 0);
        if (n > 0) {
            c->received_len += (size_t)n;
            got = true;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            c->eof = true; /* closed, or reset after our unread bytes */
            got = true;
        } else if (errno == EAGAIN) {
            break;
        }
    }
    return got;
}

/* Whether the server has work it can do now. Bytes it could not write
 * wait for a slow client, which reads only at the end. */
static bool net_busy(const run *r)
{
    if (r->net.more != NULL) {
        return true;
    }
    for (const ps_sock *s = r->net.socks; s != NULL && !r->slow; s = s->next) {
        if (s->pending > 0) {
            return true;
        }
    }
    return false;
}

/* The earliest time a socket asked to be called back at (a stream that
 * waits), or 0. */
static int64_t next_call(const ps_net *net)
{
    int64_t at = 0;
    for (const ps_sock *s = net->socks; s != NULL; s = s->next) {
        if (s->call_at_ms > 0 && (at == 0 || s->call_at_ms < at)) {
            at = s->call_at_ms;
        }
    }
    return at;
}

/* The bytes the kernel received on @p fd, or -1. */
static long long tcp_bytes_received(int fd)
{
    struct tcp_info info;
    socklen_t len = sizeof info;
    memset(&info, 0, sizeof info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0 ||
        len < offsetof(struct tcp_info, tcpi_bytes_received) +
                  sizeof info.tcpi_bytes_received) {
        return -1;
    }
    return (long long)info.tcpi_bytes_received;
}

/* The server's socket of a client, if it is open. */
static ps_sock *server_side(run *r, const client *c)
{
    for (ps_sock *s = r->net.socks; s != NULL; s = s->next) {
        struct sockaddr_in peer;
        int len = sizeof peer;
        if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&peer, &len) == 0 &&
            ntohs(peer.sin_port) == c->port) {
            return s;
        }
    }
    return NULL;
}

/* Whether what was sent either way, on the connections both ends still
 * hold, has arrived. The loopback delivers most bytes before send()
 * returns, but a busy machine may leave them to ksoftirqd for a while. */
static bool delivered(run *r)
{
    for (size_t i = 0; i < r->nclients; i++) {
        client *c = &r->clients[i];
        ps_sock *s = c->fd >= 0 && !c->eof ? server_side(r, c) : NULL;
        uv_os_fd_t fd;
        if (s == NULL || uv_fileno((uv_handle_t *)&s->tcp, &fd) != 0) {
            continue;
        }
        long long in = tcp_bytes_received(fd);
        if (in >= 0 && (unsigned long long)in < c->sent) {
            return false;
        }
        long long out = tcp_bytes_received(c->fd);
        /* A slow client's window may hold the server's bytes back. */
        if (!r->slow && out >= 0 && (unsigned long long)out < s->written) {
            return false;
        }
    }
    return true;
}

/* Run the loop (and what its tick and prepare handles would run) until
 * several passes in a row bring nothing new and, with @p delivery, nothing
 * is in flight either. Between pieces a late byte only joins the next
 * read, as on a network; before the checks and the shutdown everything
 * must be in. */
static void settle_until(run *r, bool delivery)
{
    int quiet = 0;
    long busy = 0;
    int64_t give_up = ps_now_ms() + DELIVERY_WAIT_MS;
    while (quiet < QUIET_PASSES) {
        uv_run(&r->net.loop, UV_RUN_NOWAIT);
        ps_writer_drain(&r->server.writer);
        int64_t now = ps_now_ms();
        ps_timers_run(&r->net.timers, now);
        bool events = net_busy(r);
        for (size_t i = 0; i < r->nclients && !r->slow; i++) {
            events |= client_read(&r->clients[i]);
        }
        int64_t call = next_call(&r->net);
        if (!events && call > 0) {
            /* Nothing else to do: the tick that comes next (a stream's
             * WAIT asks for the next millisecond). */
            ps_timers_run(&r->net.timers, call > now ? call : now);
            events = true;
        }
        if (events) {
            CHECK(++busy < MAX_PASSES, "the loop never settles");
        } else if (delivery && !delivered(r)) {
            CHECK(ps_now_ms() < give_up, "bytes in flight for %d ms",
                  DELIVERY_WAIT_MS);
            events = true;
        }
        quiet = events ? 0 : quiet + 1;
    }
}

static void settle(run *r)
{
    settle_until(r, false);
}

static void settle_all(run *r)
{
    settle_until(r, true);
}

static void client_send(run *r, client *c, const uint8_t *data, size_t len)
{
    size_t done = 0;
    while (done < len && !c->eof) {
        ssize_t n = send(c->fd, data + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            c->sent += (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            settle(r); /* the server reads, or its socket closes */
        } else if (n < 0 && errno != EINTR) {
            return; /* the server closed: the rest is not sent */
        }
    }
}

static void client_connect(run *r, client *c)
{
    struct sockaddr_in addr;
    int len = sizeof addr;
    CHECK(uv_tcp_getsockname(&r->net.listener, (struct sockaddr *)&addr, &len) == 0,
          "getsockname");
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(c->fd >= 0, "socket: %s", strerror(errno));
    int one = 1;
    /* Each piece leaves at once, not held back for an ACK. */
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A reset at the end: no TIME_WAIT left per input. */
    struct linger lg = {1, 0};
    (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    CHECK(connect(c->fd, (struct sockaddr *)&addr, sizeof addr) == 0,
          "connect: %s", strerror(errno));
    struct sockaddr_in local;
    socklen_t local_len = sizeof local;
    CHECK(getsockname(c->fd, (struct sockaddr *)&local, &local_len) == 0,
          "getsockname: %s", strerror(errno));
    c->port = ntohs(local.sin_port);
    CHECK(fcntl(c->fd, F_SETFL, O_NONBLOCK) == 0, "fcntl");
}

/* Close with a reset (SO_LINGER 0): the server's writes to it fail. */
static void client_reset(client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
        c->eof = true;
    }
}

/* A slow network: the accepted sockets' send buffers made small (the
 * loopback's would otherwise take megabytes), so that writes wait. (A
 * small receive buffer at the client would stall the loopback's TCP on
 * its persist timer instead: its segments are 64 KiB.) */
static void shrink_send_buffers(run *r)
{
    for (ps_sock *s = r->net.socks; s != NULL; s = s->next) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&s->tcp, &fd) == 0) {
            int small = 4096;
            (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
        }
    }
}

static void server_up(run *r)
{
    char err[256];
    CHECK(ps_server_init(&r->server, &config, ps_ws_write_frame, err,
                         sizeof err) == 0,
          "server: %s", err);
    r->server.mark_ping = ps_ws_mark_ping;
    CHECK(ps_net_init(&r->net, &r->server, err, sizeof err) == 0, "net: %s", err);
    r->server.net = &r->net;
    CHECK(ps_http_api_install(&r->net, &r->server) == 0 &&
              ps_metrics_http_install(&r->net, &r->server) == 0 &&
              ps_http_route_add(&r->net, "/small", SMALL_BODY_MAX,
                                small_handler, NULL) == 0 &&
              ps_http_route_add(&r->net, "/stream", 0, stream_handler, NULL) == 0,
          "routes");
    /* Someone to find for /api's presence calls. */
    static const char info[] = "{\"name\":\"Alice\"}";
    CHECK(presence_join(r->server.registry, "chat:a", "c1", "u1", NULL, 0,
                        info, sizeof info - 1) == PRESENCE_OK &&
              presence_join(r->server.registry, "chat:a", "c2", "u2", NULL, 0,
                            NULL, 0) == PRESENCE_OK &&
              presence_join(r->server.registry, "b", "c1", "u1", NULL, 0,
                            NULL, 0) == PRESENCE_OK,
          "joins");
}

/* What the loop thread does when asked to stop (net.c's begin_stop): the
 * listener and the kept-alive connections that wait close, WebSockets are
 * told 3001. */
static void begin_stop(run *r)
{
    if (r->stopping) {
        return;
    }
    r->stopping = true;
    settle_all(r); /* what the clients sent is in before it looks */
    ps_net *net = &r->net;
    net->stopping = true;
    if (net->listening) {
        uv_close((uv_handle_t *)&net->listener, NULL);
        net->listening = false;
    }
    ps_http_close_idle(net);
    ps_server_close_all(&r->server, 3001, "shutdown");
    settle_all(r);
}

/* Then (finish_stop) whatever is left is closed. */
static void shut_down(run *r)
{
    ps_net *net = &r->net;
    begin_stop(r);
    ps_sock_close_all(net);
    ps_writer_drain(&r->server.writer);
    settle_all(r);
    CHECK(net->sock_count == 0 && net->socks == NULL, "%zu sockets left open",
          net->sock_count);
    CHECK(net->more == NULL, "a stream left in the list");
    /* The closes' FIN or RST may still be on its way. */
    int64_t give_up = ps_now_ms() + DELIVERY_WAIT_MS;
    for (size_t i = 0; i < r->nclients; i++) {
        while (!r->clients[i].eof && ps_now_ms() < give_up) {
            client_read(&r->clients[i]);
        }
        CHECK(r->clients[i].eof, "client %zu's connection was not closed", i);
    }
}

static void server_down(run *r)
{
    ps_net_fini(&r->net);
    r->server.net = NULL;
    CHECK(r->server.transport_count == 0 && r->server.client_count == 0,
          "transports left: %zu", r->server.transport_count);
    ps_server_fini(&r->server);
}

/* One client's bytes against the mirror. */
static void check_client(const client *c, const mirror *m)
{
    shown = c->received;
    shown_len = c->received_len;
    if (getenv("PS_FUZZ_HTTP_SHOW") != NULL) {
        fprintf(stderr, "received (%zu bytes):\n%.*s\n", shown_len,
                (int)shown_len, shown ? shown : "");
    }
    reply_parse replies = {.base = c->received, .at = c->received,
                           .end = c->received ? c->received + c->received_len : NULL};
    parse_replies(&replies, m);
    check_replies(&replies, m, c->closed_by_stop);
    for (size_t i = 0; i < replies.count; i++) {
        CHECK(replies.resp[i].start < c->stop_at || !replies.resp[i].keep_alive,
              "keep-alive once the shutdown began");
    }
    /* Keep-alive is a promise: the connection waits for the next request
     * (until its deadline, a shutdown, or the client's own end). */
    CHECK(!c->eof_at_rest || may_cut || replies.count == 0 ||
              !replies.resp[replies.count - 1].keep_alive,
          "closed after a keep-alive response");
    for (size_t i = 0; i < replies.count; i++) {
        free(replies.resp[i].dechunked);
    }
    free(replies.resp);
    shown = NULL;
    shown_len = 0;
}

/* The shutdown begins with the last piece still to come. */
static void stop_before_last_piece(run *r)
{
    for (size_t i = 0; i < r->nclients; i++) {
        r->clients[i].eof_at_rest = r->clients[i].eof;
    }
    begin_stop(r);
    for (size_t i = 0; i < r->nclients; i++) {
        client *c = &r->clients[i];
        c->stop_at = r->slow ? SIZE_MAX : c->received_len;
        /* A client that does not read cannot tell: it may have been. */
        c->closed_by_stop = r->slow || (c->eof && !c->eof_at_rest);
    }
}

int ps_fuzz_server_http(const uint8_t *data, size_t size)
{
    setup_once();
    input = data;
    input_len = size;
    if (size < 3) {
        return 0;
    }
    size_t step = data[0] ? data[0] : size;
    uint8_t flags = data[1];
    unsigned long fail_at = data[2];
    data += 3;
    size -= 3;

    mirror m = {0};
    mirror_parse(&m, data, size);

    run r;
    memset(&r, 0, sizeof r);
    r.nclients = flags & FLAG_TWO_CLIENTS ? 2 : 1;
    r.slow = (flags & FLAG_SLOW_READER) != 0;
    long baseline = live_blocks;
    fail_countdown = 0;
    failure_injected = false;
    server_up(&r);
    /* From the accept on (the first allocation is the exchange's). */
    fail_countdown = fail_at;
    for (size_t i = 0; i < r.nclients; i++) {
        client_connect(&r, &r.clients[i]);
    }
    /* Accepted (the connections may take a moment on a busy machine). */
    int64_t give_up = ps_now_ms() + DELIVERY_WAIT_MS;
    do {
        settle(&r);
    } while (r.net.sock_count < r.nclients && !failure_injected &&
             ps_now_ms() < give_up);
    if (r.slow) {
        shrink_send_buffers(&r);
    }
    /* The clients send the same bytes, a piece each in turn, so that
     * their requests are served in the same turns of the loop. */
    for (size_t i = 0; i < r.nclients; i++) {
        r.clients[i].stop_at = SIZE_MAX;
    }
    for (size_t at = 0; at < size; at += step) {
        size_t n = size - at < step ? size - at : step;
        if ((flags & FLAG_STOP_EARLY) && at + n == size) {
            stop_before_last_piece(&r);
        }
        for (size_t i = 0; i < r.nclients; i++) {
            client_send(&r, &r.clients[i], data + at, n);
        }
        settle(&r);
    }
    settle_all(&r);
    for (size_t i = 0; i < r.nclients; i++) {
        if (!r.stopping) {
            r.clients[i].eof_at_rest = r.clients[i].eof;
        }
        if (flags & FLAG_HALF_CLOSE) {
            (void)shutdown(r.clients[i].fd, SHUT_WR);
        }
    }
    settle_all(&r);
    if (flags & FLAG_TIME_PASSES) {
        ps_timers_run(&r.net.timers, ps_now_ms() + TIME_JUMP_MS);
        settle_all(&r);
    }
    /* A slow client's writes that waited ten seconds may have been cut
     * (the write stall limit). */
    may_cut = failure_injected || (r.slow && (flags & FLAG_TIME_PASSES));
    if (flags & FLAG_RESET) {
        for (size_t i = 0; i < r.nclients; i++) {
            client_reset(&r.clients[i]);
        }
        may_cut = true; /* what was not read is gone */
    }
    r.slow = false; /* the clients read at last */
    settle_all(&r);
    fail_countdown = 0;
    shut_down(&r);
    for (size_t i = 0; i < r.nclients; i++) {
        client_reset(&r.clients[i]);
    }
    server_down(&r);
    CHECK(live_blocks == baseline, "%ld blocks of the server's leaked",
          live_blocks - baseline);
    may_cut |= failure_injected; /* one during the shutdown's settling */

    for (size_t i = 0; i < r.nclients; i++) {
        check_client(&r.clients[i], &m);
        free(r.clients[i].received);
    }
    free(m.req);
    return 0;
}
