/*
 * The admin page on the server's HTTP server (http_server.h): sign-in,
 * the page's files, its JSON calls and a server-sent event stream.
 *
 * Threads. libpresence delivers events on whatever thread is delivering
 * (the loop, the cluster's thread), so the event callback only formats
 * the event and appends it to each stream's buffer under admin->lock,
 * which nobody holds across a library call or a socket write. Each stream
 * (at most STREAMS_MAX) is a streamed response that the loop pulls every
 * tick: it swaps its buffer out and writes it. A stream whose reader
 * falls more than STREAM_BUFFER_MAX bytes behind loses its buffer and is
 * told to resynchronise, so a slow browser costs bounded memory and never
 * slows the callback. The sampler thread reads the totals and the channel
 * list once a second, for the chart and for the streams' "tick".
 * SPDX-License-Identifier: MIT
 */
#include "admin.h"

#include "conn.h"
#include "http_server.h"
#include "net.h"
#include "mem.h"
#include "server.h"
#include "token.h"
#include "util.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

#define ADMIN_PREFIX "/admin"
#define COOKIE_NAME "ps_admin"
#define SESSION_TTL_S (24 * 3600)
#define BODY_MAX 65536
#define STREAMS_MAX 4
#define STREAM_BUFFER_MAX (4u << 20)
#define STREAM_KEEPALIVE_MS 15000
/* A stream whose browser leaves this much unread waits before the next
 * batch (its events pile up in its buffer, up to STREAM_BUFFER_MAX). */
#define STREAM_PENDING_MAX (256u << 10)
#define LOG_KEEP 200
#define HISTORY_LEN 600 /* one sample a second: ten minutes */
#define TICK_CHANNELS_MAX 200
#define PAGE_LIMIT_DEFAULT 50
#define PAGE_LIMIT_MAX 1000
#define TEST_MEMBERS_MAX 100000
#define WRONG_PASSWORD_DELAY_MS 300

typedef struct stream {
    char *buf; /* events, each followed by a comma */
    size_t len, cap;
    bool overflow;
    struct stream *next;
} stream;

typedef struct sample {
    int64_t t_ms; /* wall clock */
    size_t connections, clients, memberships, channels;
} sample;

typedef struct test_member {
    char client_id[PS_UUID_SIZE + 8];
} test_member;

typedef struct ps_admin {
    ps_server *server;
    presence_subscription events;

    pthread_mutex_t lock; /* everything below, up to the test members */
    pthread_cond_t wake;
    bool stopping;
    stream *streams;
    size_t stream_count;
    char *log[LOG_KEEP]; /* the last events, oldest at log_next */
    size_t log_next;
    sample history[HISTORY_LEN];
    size_t history_len, history_next;
    char *tick; /* the latest tick's JSON */
    uint64_t tick_seq;

    pthread_t sampler;
    bool sampler_started;

    pthread_mutex_t test_lock; /* the page's test members */
    test_member *tests;
    size_t test_count, test_cap, test_serial;
} ps_admin;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The registry's clock is monotonic: its times shown as wall-clock ones. */
static int64_t registry_to_wall(presence_registry *registry, int64_t t_ms)
{
    return t_ms + (wall_ms() - presence_now_ms(registry));
}

/* ---- responses ---------------------------------------------------------- */

/* The page loads nothing from elsewhere, and may not be framed. */
#define SECURITY_HEADERS                                                       \
    "Content-Security-Policy: default-src 'self'; connect-src 'self'; "       \
    "img-src 'self' data:; frame-ancestors 'none'\r\n"                        \
    "X-Content-Type-Options: nosniff\r\n"                                      \
    "X-Frame-Options: DENY\r\n"                                                \
    "Referrer-Policy: no-referrer\r\n"

static int respond(ps_http_exchange *ex, int status, const char *type,
                   const char *extra_headers, const void *body, size_t len)
{
    char headers[2048];
    snprintf(headers, sizeof headers, "Cache-Control: no-store\r\n" SECURITY_HEADERS "%s",
             extra_headers ? extra_headers : "");
    ps_http_respond(ex, status, type, headers, body, len);
    return status;
}

static int respond_json(ps_http_exchange *ex, int status, json_t *value,
                        const char *extra_headers)
{
    char *text = value ? ps_json_dumps(value, JSON_COMPACT) : NULL;
    json_decref(value);
    if (text == NULL) {
        return respond(ex, 500, "text/plain", NULL, "out of memory\n", 14);
    }
    int rc = respond(ex, status, "application/json", extra_headers, text,
                     strlen(text));
    ps_free(text);
    return rc;
}

static int respond_error(ps_http_exchange *ex, int status,
                         const char *message)
{
    return respond_json(ex, status, json_pack("{s:s}", "error", message),
                        NULL);
}

/* ---- sign-in ------------------------------------------------------------ */

static bool signed_in(ps_http_exchange *ex, const ps_admin *admin)
{
    char token[1024];
    if (!ps_http_cookie(ex, COOKIE_NAME, token, sizeof token)) {
        return false;
    }
    const ps_admin_config *cfg = &admin->server->cfg->admin;
    ps_token_claims claims;
    ps_token_status st =
        ps_token_verify(token, cfg->secret, ps_unix_time(), &claims);
    if (st != PS_TOKEN_OK && st != PS_TOKEN_EXPIRED) {
        return false;
    }
    bool ok = st == PS_TOKEN_OK && claims.sub != NULL &&
              strcmp(claims.sub, "admin") == 0 && claims.channel == NULL;
    ps_token_claims_free(&claims);
    return ok;
}

/* The body (within BODY_MAX: the route's limit) as a JSON object, or
 * NULL (with *status set). */
static json_t *read_json_body(ps_http_exchange *ex, int *status)
{
    size_t n = 0;
    const char *body = ps_http_body(ex, &n);
    bool nomem = false;
    json_t *value = ps_json_loadb(body, n, 0, NULL, &nomem);
    if (!json_is_object(value)) {
        json_decref(value);
        *status = nomem ? 500 : 400;
        return NULL;
    }
    return value;
}

static int handle_auth(ps_http_exchange *ex, ps_admin *admin)
{
    int status = 400;
    json_t *body = read_json_body(ex, &status);
    if (body == NULL) {
        return respond_error(ex, status, "expected {\"password\": ...}");
    }
    const char *given = json_string_value(json_object_get(body, "password"));
    const ps_admin_config *cfg = &admin->server->cfg->admin;
    bool ok = given != NULL && ps_secret_equal(given, cfg->password);
    json_decref(body);
    if (!ok) {
        /* Slows guessing down, without holding the loop meanwhile. */
        static const char wrong[] = "{\"error\":\"wrong password\"}";
        ps_http_respond_later(ex, WRONG_PASSWORD_DELAY_MS, 401,
                              "application/json",
                              "Cache-Control: no-store\r\n" SECURITY_HEADERS,
                              wrong, sizeof wrong - 1);
        return 401;
    }
    char err[128];
    char *token = ps_token_mint(cfg->secret, "admin",
                                ps_unix_time() + SESSION_TTL_S, NULL, NULL,
                                err, sizeof err);
    if (token == NULL) {
        return respond_error(ex, 500, err);
    }
    char header[1400];
    snprintf(header, sizeof header,
             "Set-Cookie: " COOKIE_NAME "=%s; Path=" ADMIN_PREFIX
             "; Max-Age=%d; HttpOnly; SameSite=Strict\r\n",
             token, SESSION_TTL_S);
    ps_free(token);
    return respond_json(ex, 200, json_pack("{s:b}", "ok", 1), header);
}

static int handle_logout(ps_http_exchange *ex)
{
    return respond_json(ex, 200, json_pack("{s:b}", "ok", 1),
                        "Set-Cookie: " COOKIE_NAME "=; Path=" ADMIN_PREFIX
                        "; Max-Age=0; HttpOnly; SameSite=Strict\r\n");
}

/* ---- events --------------------------------------------------------------- */

/* One event as the page reads it: {"k","ch","client","user","info"?,
 * "reason"?,"t","nc","nu"}. Caller frees with ps_free(). */
static char *event_json(presence_registry *registry,
                        const presence_event *event)
{
    json_t *e = json_pack(
        "{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "k",
        presence_event_kind_name(event->kind), "ch", event->channel, "client",
        event->client_id, "user", event->user_id ? event->user_id : "", "t",
        (json_int_t)registry_to_wall(registry, event->time_ms), "nc",
        (json_int_t)event->stats.num_clients, "nu",
        (json_int_t)event->stats.num_users);
    if (e != NULL && event->conn_info_len > 0) {
        json_object_set_new(e, "info",
                            json_stringn((const char *)event->conn_info,
                                         event->conn_info_len));
    }
    if (e != NULL && event->kind == PRESENCE_EVENT_LEAVE) {
        json_object_set_new(e, "reason",
                            json_string(presence_leave_reason_name(event->reason)));
    }
    if (e != NULL && event->node_id != NULL && *event->node_id != '\0') {
        json_object_set_new(e, "node", json_string(event->node_id));
    }
    char *text = e ? ps_json_dumps(e, JSON_COMPACT) : NULL;
    json_decref(e);
    return text;
}

/* Under admin->lock. */
static void stream_append(stream *s, const char *text, size_t len)
{
    if (s->overflow) {
        return;
    }
    if (s->len + len + 1 > STREAM_BUFFER_MAX) {
        s->overflow = true; /* the reader resynchronises */
        s->len = 0;
        return;
    }
    if (s->len + len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len + 1) {
            cap *= 2;
        }
        char *grown = ps_realloc(s->buf, cap);
        if (grown == NULL) {
            s->overflow = true;
            s->len = 0;
            return;
        }
        s->buf = grown;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, text, len);
    s->buf[s->len + len] = ',';
    s->len += len + 1;
}

static void on_event(presence_registry *registry, const presence_event *event,
                     void *user_data)
{
    ps_admin *admin = user_data;
    if (event->kind != PRESENCE_EVENT_JOIN &&
        event->kind != PRESENCE_EVENT_LEAVE) {
        return;
    }
    char *text = event_json(registry, event);
    pthread_mutex_lock(&admin->lock);
    if (text == NULL) {
        for (stream *s = admin->streams; s != NULL; s = s->next) {
            s->overflow = true; /* an event is missing: resynchronise */
            s->len = 0;
        }
    } else {
        size_t len = strlen(text);
        for (stream *s = admin->streams; s != NULL; s = s->next) {
            stream_append(s, text, len);
        }
        ps_free(admin->log[admin->log_next]);
        admin->log[admin->log_next] = text;
        admin->log_next = (admin->log_next + 1) % LOG_KEEP;
        text = NULL;
    }
    pthread_mutex_unlock(&admin->lock);
    ps_free(text);
}

/* ---- the sampler ---------------------------------------------------------- */

static int by_clients(const void *a, const void *b)
{
    const presence_channel_entry *x = a;
    const presence_channel_entry *y = b;
    if (x->stats.num_clients != y->stats.num_clients) {
        return x->stats.num_clients < y->stats.num_clients ? 1 : -1;
    }
    return strcmp(x->channel, y->channel);
}

static json_t *sample_json(const sample *s)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I}", "t", (json_int_t)s->t_ms,
                     "connections", (json_int_t)s->connections, "clients",
                     (json_int_t)s->clients, "memberships",
                     (json_int_t)s->memberships, "channels",
                     (json_int_t)s->channels);
}

/* {"sample":{..},"channels":[{"ch","nc","nu"}...],"channel_count"}: the
 * largest TICK_CHANNELS_MAX channels. */
static char *tick_json(ps_admin *admin, sample *out)
{
    ps_server *server = admin->server;
    presence_counts counts;
    memset(&counts, 0, sizeof counts);
    presence_registry_counts(server->registry, &counts);
    pthread_mutex_lock(&server->conns_lock);
    out->connections = server->client_count;
    pthread_mutex_unlock(&server->conns_lock);
    out->t_ms = wall_ms();
    out->clients = counts.clients;
    out->memberships = counts.memberships;
    out->channels = counts.channels;

    presence_channel_list *list = NULL;
    if (presence_channels(server->registry, NULL, &list) != PRESENCE_OK) {
        return NULL;
    }
    if (list->count > 1) { /* channels is NULL when there are none */
        qsort(list->channels, list->count, sizeof list->channels[0],
              by_clients);
    }
    json_t *channels = json_array();
    for (size_t i = 0; channels && i < list->count && i < TICK_CHANNELS_MAX;
         i++) {
        const presence_channel_entry *c = &list->channels[i];
        json_array_append_new(
            channels, json_pack("{s:s,s:I,s:I}", "ch", c->channel, "nc",
                                (json_int_t)c->stats.num_clients, "nu",
                                (json_int_t)c->stats.num_users));
    }
    json_t *tick = json_pack("{s:o,s:o,s:I}", "sample", sample_json(out),
                             "channels", channels, "channel_count",
                             (json_int_t)list->count);
    presence_channel_list_free(list);
    char *text = tick ? ps_json_dumps(tick, JSON_COMPACT) : NULL;
    json_decref(tick);
    return text;
}

static void *sampler_main(void *arg)
{
    ps_admin *admin = arg;
    prctl(PR_SET_NAME, "ps-admin", 0, 0, 0);
    pthread_mutex_lock(&admin->lock);
    while (!admin->stopping) {
        pthread_mutex_unlock(&admin->lock);
        sample s;
        char *tick = tick_json(admin, &s);
        pthread_mutex_lock(&admin->lock);
        admin->history[admin->history_next] = s;
        admin->history_next = (admin->history_next + 1) % HISTORY_LEN;
        if (admin->history_len < HISTORY_LEN) {
            admin->history_len++;
        }
        if (tick != NULL) {
            ps_free(admin->tick);
            admin->tick = tick;
            admin->tick_seq++;
            pthread_cond_broadcast(&admin->wake);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        while (!admin->stopping &&
               pthread_cond_timedwait(&admin->wake, &admin->lock, &until) == 0) {
            /* woken for the streams; sleep on until the second is over */
        }
    }
    pthread_mutex_unlock(&admin->lock);
    return NULL;
}

/* ---- the event stream ------------------------------------------------------ */

static bool write_event(ps_http_exchange *ex, const char *name,
                        const char *data, size_t len)
{
    char head[64];
    int n = snprintf(head, sizeof head, "event: %s\ndata: ", name);
    return ps_http_write(ex, head, (size_t)n) == 0 &&
           (len == 0 || ps_http_write(ex, data, len) == 0) &&
           ps_http_write(ex, "\n\n", 2) == 0;
}

/* Under admin->lock: what a new stream starts with. */
static char *hello_json(ps_admin *admin)
{
    json_t *history = json_array();
    size_t first = (admin->history_next + HISTORY_LEN - admin->history_len) %
                   HISTORY_LEN;
    for (size_t i = 0; history && i < admin->history_len; i++) {
        json_array_append_new(
            history, sample_json(&admin->history[(first + i) % HISTORY_LEN]));
    }
    json_t *log = json_array();
    for (size_t i = 0; log && i < LOG_KEEP; i++) {
        const char *e = admin->log[(admin->log_next + i) % LOG_KEEP];
        json_t *v = e ? json_loads(e, 0, NULL) : NULL;
        if (v != NULL) {
            json_array_append_new(log, v);
        }
    }
    json_t *hello = json_pack("{s:o,s:o,s:I}", "history", history, "log", log,
                              "history_len", (json_int_t)HISTORY_LEN);
    char *text = hello ? ps_json_dumps(hello, JSON_COMPACT) : NULL;
    json_decref(hello);
    return text;
}

static void stream_unlink(ps_admin *admin, stream *s)
{
    for (stream **p = &admin->streams; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            admin->stream_count--;
            break;
        }
    }
    if (admin->stream_count == 0 || admin->stopping) {
        pthread_cond_broadcast(&admin->wake);
    }
}

/* One open event stream: the state of its pull. */
typedef struct stream_state {
    ps_admin *admin;
    stream *s;
    char *hello; /* written first, then NULL */
    uint64_t seen_tick;
    int64_t last_write;
    char *batch; /* the spare buffer, swapped with the stream's */
    size_t batch_cap;
} stream_state;

static void stream_free(void *arg)
{
    stream_state *st = arg;
    pthread_mutex_lock(&st->admin->lock);
    stream_unlink(st->admin, st->s);
    pthread_mutex_unlock(&st->admin->lock);
    ps_free(st->hello);
    ps_free(st->batch);
    ps_free(st->s->buf);
    ps_free(st->s);
    ps_free(st);
}

static ps_http_step stream_pull(ps_http_exchange *ex, void *arg)
{
    stream_state *st = arg;
    ps_admin *admin = st->admin;
    stream *s = st->s;
    if (st->hello != NULL) {
        static const char head[] = "HTTP/1.1 200 OK\r\n"
                                   "Content-Type: text/event-stream\r\n"
                                   "Cache-Control: no-store\r\n" SECURITY_HEADERS
                                   "Connection: close\r\n\r\n"
                                   "retry: 2000\n\n";
        bool ok = ps_http_write(ex, head, sizeof head - 1) == 0 &&
                  write_event(ex, "hello", st->hello, strlen(st->hello));
        ps_free(st->hello);
        st->hello = NULL;
        st->last_write = ps_now_ms();
        return ok ? PS_HTTP_WAIT : PS_HTTP_DONE;
    }
    pthread_mutex_lock(&admin->lock);
    if (admin->stopping) {
        pthread_mutex_unlock(&admin->lock);
        return PS_HTTP_DONE;
    }
    if (ps_http_pending(ex) > STREAM_PENDING_MAX ||
        (s->len == 0 && !s->overflow && admin->tick_seq == st->seen_tick &&
         ps_now_ms() - st->last_write < STREAM_KEEPALIVE_MS)) {
        pthread_mutex_unlock(&admin->lock);
        return PS_HTTP_WAIT;
    }
    /* Take the buffer: the callback starts a new one meanwhile. */
    bool overflow = s->overflow;
    char *events = s->buf;
    size_t events_len = s->len;
    size_t events_cap = s->cap;
    s->buf = st->batch;
    s->cap = st->batch_cap;
    s->len = 0;
    s->overflow = false;
    char *tick = NULL;
    if (admin->tick_seq != st->seen_tick && admin->tick != NULL) {
        tick = ps_strdup(admin->tick);
        st->seen_tick = admin->tick_seq;
    }
    pthread_mutex_unlock(&admin->lock);

    bool ok = true;
    if (overflow) {
        ok = write_event(ex, "resync", "{}", 2);
    }
    if (ok && events_len > 0) {
        /* "e1,e2," becomes "[e1,e2]" in place. */
        events[events_len - 1] = ']';
        static const char head[] = "event: batch\ndata: [";
        ok = ps_http_write(ex, head, sizeof head - 1) == 0 &&
             ps_http_write(ex, events, events_len) == 0 &&
             ps_http_write(ex, "\n\n", 2) == 0;
    }
    if (ok && tick != NULL) {
        ok = write_event(ex, "tick", tick, strlen(tick));
    }
    if (ok && !overflow && events_len == 0 && tick == NULL) {
        ok = ps_http_write(ex, ": keepalive\n\n", 13) == 0;
    }
    ps_free(tick);
    st->last_write = ps_now_ms();
    st->batch = events;
    st->batch_cap = events_cap;
    return ok ? PS_HTTP_WAIT : PS_HTTP_DONE;
}

static int handle_stream(ps_http_exchange *ex, ps_admin *admin)
{
    stream_state *st = ps_calloc(1, sizeof *st);
    stream *s = ps_calloc(1, sizeof *s);
    if (s == NULL || st == NULL) {
        ps_free(s);
        ps_free(st);
        return respond_error(ex, 500, "out of memory");
    }
    pthread_mutex_lock(&admin->lock);
    if (admin->stopping || admin->stream_count >= STREAMS_MAX) {
        pthread_mutex_unlock(&admin->lock);
        ps_free(s);
        ps_free(st);
        return respond_error(ex, 503, "too many admin streams");
    }
    char *hello = hello_json(admin);
    if (hello == NULL) {
        pthread_mutex_unlock(&admin->lock);
        ps_free(s);
        ps_free(st);
        return respond_error(ex, 500, "out of memory");
    }
    s->next = admin->streams;
    admin->streams = s;
    admin->stream_count++;
    pthread_mutex_unlock(&admin->lock);
    st->admin = admin;
    st->s = s;
    st->hello = hello;
    ps_http_stream(ex, stream_pull, stream_free, st);
    return 200;
}

/* ---- queries ---------------------------------------------------------------- */

static bool query_var(ps_http_exchange *ex, const char *name, char *buf,
                      size_t len)
{
    return ps_http_query_var(ex, name, buf, len);
}

static int handle_channels(ps_http_exchange *ex, ps_admin *admin)
{
    presence_channel_list *list = NULL;
    int rc = presence_channels(admin->server->registry, NULL, &list);
    if (rc != PRESENCE_OK) {
        return respond_error(ex, 500, presence_strerror(rc));
    }
    if (list->count > 1) { /* channels is NULL when there are none */
        qsort(list->channels, list->count, sizeof list->channels[0],
              by_clients);
    }
    json_t *channels = json_array();
    for (size_t i = 0; channels && i < list->count; i++) {
        const presence_channel_entry *c = &list->channels[i];
        json_array_append_new(
            channels, json_pack("{s:s,s:I,s:I}", "ch", c->channel, "nc",
                                (json_int_t)c->stats.num_clients, "nu",
                                (json_int_t)c->stats.num_users));
    }
    presence_channel_list_free(list);
    return respond_json(ex, 200, json_pack("{s:o}", "channels", channels),
                        NULL);
}

static json_t *member_json(presence_registry *registry,
                           const presence_member *m)
{
    json_t *j = json_pack("{s:s,s:s,s:I}", "client", m->client_id, "user",
                          m->user_id, "joined_at",
                          (json_int_t)registry_to_wall(registry,
                                                       m->joined_at_ms));
    if (j != NULL && m->conn_info_len > 0) {
        json_object_set_new(j, "conn_info",
                            json_stringn(m->conn_info, m->conn_info_len));
    }
    if (j != NULL && m->chan_info_len > 0) {
        json_object_set_new(j, "chan_info",
                            json_stringn(m->chan_info, m->chan_info_len));
    }
    if (j != NULL && m->node_id != NULL && *m->node_id != '\0') {
        json_object_set_new(j, "node", json_string(m->node_id));
    }
    return j;
}

/* GET members?channel=C&cursor=N&limit=L: one page, in the library's
 * cursor order; the cursor is a decimal string (a JS number cannot hold
 * every uint64). */
static int handle_members(ps_http_exchange *ex, ps_admin *admin)
{
    char channel[1024];
    char cursor_text[32] = "0";
    char limit_text[16] = "";
    if (!query_var(ex, "channel", channel, sizeof channel) ||
        channel[0] == '\0') {
        return respond_error(ex, 400, "channel is required");
    }
    if (!query_var(ex, "cursor", cursor_text, sizeof cursor_text) ||
        cursor_text[0] == '\0') {
        snprintf(cursor_text, sizeof cursor_text, "0");
    }
    query_var(ex, "limit", limit_text, sizeof limit_text);
    char *end = NULL;
    unsigned long long cursor = strtoull(cursor_text, &end, 10);
    if (end == cursor_text || *end != '\0' || cursor_text[0] == '-') {
        return respond_error(ex, 400, "bad cursor");
    }
    end = NULL;
    long limit = limit_text[0] ? strtol(limit_text, &end, 10)
                               : PAGE_LIMIT_DEFAULT;
    if (limit < 1 || limit > PAGE_LIMIT_MAX || (end != NULL && *end != '\0')) {
        return respond_error(ex, 400, "limit must be 1 to 1000");
    }
    presence_registry *registry = admin->server->registry;
    presence_snapshot *page = NULL;
    int rc = presence_query_page(registry, channel, presence_trusted(), cursor,
                                 (size_t)limit, &page);
    if (rc != PRESENCE_OK) {
        return respond_error(ex, rc == PRESENCE_ERR_NOMEM ? 500 : 400,
                             presence_strerror(rc));
    }
    json_t *members = json_array();
    for (size_t i = 0; members && i < page->count; i++) {
        json_array_append_new(members, member_json(registry, &page->members[i]));
    }
    char next[32];
    snprintf(next, sizeof next, "%llu", (unsigned long long)page->next_cursor);
    json_t *out = json_pack("{s:s,s:I,s:I,s:o,s:s?}", "channel", channel,
                            "nc", (json_int_t)page->stats.num_clients, "nu",
                            (json_int_t)page->stats.num_users, "members",
                            members, "next_cursor",
                            page->next_cursor ? next : NULL);
    presence_snapshot_free(page);
    return respond_json(ex, 200, out, NULL);
}

/* POST connect_token {"user","channel"}: a connection token and a
 * subscription token for that channel, so that the page connects over
 * the client protocol as that user, like any client. Signed with the
 * token secret, which stays here; the API key is never sent. */
static int handle_connect_token(ps_http_exchange *ex, ps_admin *admin)
{
    int status = 400;
    json_t *body = read_json_body(ex, &status);
    if (body == NULL) {
        return respond_error(ex, status, "expected {\"user\", \"channel\"}");
    }
    const char *user = json_string_value(json_object_get(body, "user"));
    const char *channel = json_string_value(json_object_get(body, "channel"));
    if (user == NULL || channel == NULL || *channel == '\0') {
        json_decref(body);
        return respond_error(ex, 400, "user and channel are required");
    }
    const char *secret = admin->server->cfg->token_hmac_secret_key;
    int64_t exp = ps_unix_time() + 3600;
    char err[128] = "";
    json_t *info = json_pack("{s:s,s:s}", "name", user, "via", "admin page");
    char *info_text = info ? ps_json_dumps(info, JSON_COMPACT) : NULL;
    json_decref(info);
    char *conn_token = info_text ? ps_token_mint(secret, user, exp, info_text,
                                                 NULL, err, sizeof err)
                                 : NULL;
    char *sub_token = conn_token ? ps_token_mint(secret, user, exp, NULL,
                                                 channel, err, sizeof err)
                                 : NULL;
    json_decref(body);
    ps_free(info_text);
    int rc;
    if (*secret == '\0') {
        rc = respond_error(ex, 400, "token_hmac_secret_key is not set");
    } else if (sub_token == NULL) {
        rc = respond_error(ex, 500, err[0] ? err : "out of memory");
    } else {
        rc = respond_json(ex, 200,
                          json_pack("{s:s,s:s,s:s}", "token", conn_token,
                                    "sub_token", sub_token, "path",
                                    "/connection/websocket"),
                          NULL);
    }
    ps_free(conn_token);
    ps_free(sub_token);
    return rc;
}

/* ---- test members ------------------------------------------------------------ */

/* POST test_members {"channel","count"}: count > 0 adds that many members
 * (users test-N, no connection behind them) to see how the page and the
 * server cope with a big channel; count 0 takes every test member of the
 * channel out. They are real memberships of the registry: presence and
 * stats over the API list them, and subscribers get their joins. */
static int add_test_members(ps_admin *admin, const char *channel, size_t count,
                            size_t *added)
{
    int rc = PRESENCE_OK;
    *added = 0;
    pthread_mutex_lock(&admin->test_lock);
    if (admin->test_count + count > TEST_MEMBERS_MAX) {
        pthread_mutex_unlock(&admin->test_lock);
        return PRESENCE_ERR_CHANNEL_MEMBER_LIMIT;
    }
    if (admin->test_count + count > admin->test_cap) {
        size_t cap = admin->test_count + count;
        test_member *grown = ps_realloc(admin->tests, cap * sizeof *grown);
        if (grown == NULL) {
            pthread_mutex_unlock(&admin->test_lock);
            return PRESENCE_ERR_NOMEM;
        }
        admin->tests = grown;
        admin->test_cap = cap;
    }
    static const char info[] = "{\"test\":true}";
    for (size_t i = 0; i < count && rc == PRESENCE_OK; i++) {
        test_member *t = &admin->tests[admin->test_count];
        char user[32];
        size_t serial = ++admin->test_serial;
        snprintf(user, sizeof user, "test-%zu", serial);
        snprintf(t->client_id, sizeof t->client_id, "test-%zu-", serial);
        size_t used = strlen(t->client_id);
        char uuid[PS_UUID_SIZE];
        if (ps_uuid4(uuid) != 0) {
            rc = PRESENCE_ERR_NOMEM;
            break;
        }
        snprintf(t->client_id + used, sizeof t->client_id - used, "%.8s",
                 uuid);
        rc = presence_join(admin->server->registry, channel, t->client_id,
                           user, info, sizeof info - 1, NULL, 0);
        if (rc == PRESENCE_OK) {
            admin->test_count++;
            (*added)++;
        }
    }
    pthread_mutex_unlock(&admin->test_lock);
    return rc;
}

static size_t remove_test_members(ps_admin *admin, const char *channel)
{
    size_t removed = 0;
    pthread_mutex_lock(&admin->test_lock);
    size_t kept = 0;
    for (size_t i = 0; i < admin->test_count; i++) {
        test_member *t = &admin->tests[i];
        if (channel == NULL ||
            presence_leave(admin->server->registry, channel, t->client_id) ==
                PRESENCE_OK) {
            if (channel == NULL) {
                presence_disconnect(admin->server->registry, t->client_id,
                                    NULL);
            }
            removed++;
        } else {
            admin->tests[kept++] = *t;
        }
    }
    admin->test_count = kept;
    pthread_mutex_unlock(&admin->test_lock);
    return removed;
}

/* Test members are added this many per turn of the loop, so that a big
 * batch holds up no client, and the event streams are written between
 * two turns rather than overflow. */
#define TEST_MEMBERS_STEP 1000

typedef struct test_add {
    ps_admin *admin;
    char *channel;
    size_t remaining, added;
} test_add;

static void test_add_free(void *state)
{
    test_add *t = state;
    ps_free(t->channel);
    ps_free(t);
}

static ps_http_step test_add_pull(ps_http_exchange *ex, void *state)
{
    test_add *t = state;
    size_t step = t->remaining < TEST_MEMBERS_STEP ? t->remaining
                                                    : TEST_MEMBERS_STEP;
    size_t added = 0;
    int prc = add_test_members(t->admin, t->channel, step, &added);
    t->added += added;
    t->remaining -= added;
    if (prc != PRESENCE_OK) {
        respond_json(ex, 400,
                     json_pack("{s:s,s:I}", "error", presence_strerror(prc),
                               "added", (json_int_t)t->added),
                     NULL);
        return PS_HTTP_DONE;
    }
    if (t->remaining > 0) {
        return PS_HTTP_MORE;
    }
    respond_json(ex, 200, json_pack("{s:I}", "added", (json_int_t)t->added),
                 NULL);
    return PS_HTTP_DONE;
}

/* Start adding @p count test members; the response comes once they are
 * all in (or one failed). */
static int start_test_add(ps_http_exchange *ex, ps_admin *admin,
                          const char *channel, size_t count)
{
    pthread_mutex_lock(&admin->test_lock);
    bool room = admin->test_count + count <= TEST_MEMBERS_MAX;
    pthread_mutex_unlock(&admin->test_lock);
    if (!room) {
        return respond_json(
            ex, 400,
            json_pack("{s:s,s:I}", "error",
                      presence_strerror(PRESENCE_ERR_CHANNEL_MEMBER_LIMIT),
                      "added", (json_int_t)0),
            NULL);
    }
    test_add *t = ps_calloc(1, sizeof *t);
    char *copy = ps_strdup(channel);
    if (t == NULL || copy == NULL) {
        ps_free(t);
        ps_free(copy);
        return respond_error(ex, 500, "out of memory");
    }
    t->admin = admin;
    t->channel = copy;
    t->remaining = count;
    ps_http_stream(ex, test_add_pull, test_add_free, t);
    return 200;
}

static int handle_test_members(ps_http_exchange *ex, ps_admin *admin)
{
    int status = 400;
    json_t *body = read_json_body(ex, &status);
    if (body == NULL) {
        return respond_error(ex, status, "expected {\"channel\", \"count\"}");
    }
    const char *channel = json_string_value(json_object_get(body, "channel"));
    json_t *count = json_object_get(body, "count");
    int rc;
    if (channel == NULL || *channel == '\0' || !json_is_integer(count) ||
        json_integer_value(count) < 0 ||
        json_integer_value(count) > TEST_MEMBERS_MAX) {
        rc = respond_error(ex, 400,
                           "channel and a count of 0 to 100000 are required");
    } else if (json_integer_value(count) == 0) {
        size_t removed = remove_test_members(admin, channel);
        rc = respond_json(ex, 200, json_pack("{s:I}", "removed",
                                             (json_int_t)removed),
                          NULL);
    } else {
        rc = start_test_add(ex, admin, channel,
                            (size_t)json_integer_value(count));
    }
    json_decref(body);
    return rc;
}

/* ---- routing -------------------------------------------------------------------- */

static int serve_asset(ps_http_exchange *ex, const char *name)
{
    for (size_t i = 0; i < ps_admin_asset_count; i++) {
        const ps_admin_asset *a = &ps_admin_assets[i];
        if (strcmp(a->name, name) == 0) {
            return respond(ex, 200, a->type, NULL, a->data, a->len);
        }
    }
    return respond_error(ex, 404, "not found");
}

static int admin_route(ps_http_exchange *ex, ps_admin *admin)
{
    const char *uri = ps_http_path(ex);
    bool get = strcmp(ps_http_method(ex), "GET") == 0;
    bool post = strcmp(ps_http_method(ex), "POST") == 0;
    const char *path = uri + sizeof ADMIN_PREFIX - 1;
    if (strncmp(uri, ADMIN_PREFIX, sizeof ADMIN_PREFIX - 1) != 0 ||
        (*path != '\0' && *path != '/')) {
        return respond_error(ex, 404, "not found");
    }
    if (*path == '\0') {
        ps_http_respond(ex, 302, "text/plain", "Location: " ADMIN_PREFIX "/\r\n",
                        "", 0);
        return 302;
    }
    path++; /* past the '/' */
    if (strncmp(path, "api/", 4) != 0) {
        if (!get) {
            return respond_error(ex, 405, "method not allowed");
        }
        if (strcmp(path, "auth") == 0) {
            return respond_error(ex, 405, "method not allowed");
        }
        return serve_asset(ex, *path == '\0' ? "index.html" : path);
    }
    path += 4;
    if (strcmp(path, "auth") == 0) {
        return post ? handle_auth(ex, admin)
                    : respond_error(ex, 405, "method not allowed");
    }
    if (strcmp(path, "logout") == 0) {
        return post ? handle_logout(ex)
                    : respond_error(ex, 405, "method not allowed");
    }
    if (!signed_in(ex, admin)) {
        return respond_error(ex, 401, "sign in first");
    }
    if (strcmp(path, "session") == 0 && get) {
        return respond_json(ex, 200, json_pack("{s:b}", "ok", 1), NULL);
    }
    if (strcmp(path, "events") == 0 && get) {
        return handle_stream(ex, admin);
    }
    if (strcmp(path, "channels") == 0 && get) {
        return handle_channels(ex, admin);
    }
    if (strcmp(path, "members") == 0 && get) {
        return handle_members(ex, admin);
    }
    if (strcmp(path, "connect_token") == 0 && post) {
        return handle_connect_token(ex, admin);
    }
    if (strcmp(path, "test_members") == 0 && post) {
        return handle_test_members(ex, admin);
    }
    return respond_error(ex, 404, "not found");
}

static void admin_handler(ps_http_exchange *ex, void *data)
{
    (void)admin_route(ex, data);
}

/* ---- life cycle ------------------------------------------------------------------- */

static void admin_free(ps_admin *admin)
{
    for (size_t i = 0; i < LOG_KEEP; i++) {
        ps_free(admin->log[i]);
    }
    ps_free(admin->tick);
    ps_free(admin->tests);
    pthread_mutex_destroy(&admin->lock);
    pthread_mutex_destroy(&admin->test_lock);
    pthread_cond_destroy(&admin->wake);
    ps_free(admin);
}

int ps_admin_start(ps_server *server, char *err, size_t err_len)
{
    if (!server->cfg->admin.enabled) {
        return 0;
    }
    ps_admin *admin = ps_calloc(1, sizeof *admin);
    if (admin == NULL) {
        return ps_fail(err, err_len, "admin: out of memory");
    }
    admin->server = server;
    pthread_mutex_init(&admin->lock, NULL);
    pthread_mutex_init(&admin->test_lock, NULL);
    pthread_cond_init(&admin->wake, NULL);
    int rc = presence_subscribe(server->registry, PRESENCE_SCOPE_ALL, NULL,
                                PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE |
                                    PRESENCE_EVENTS_EVERY_NAMESPACE,
                                on_event, admin, &admin->events);
    if (rc != PRESENCE_OK) {
        admin_free(admin);
        return ps_fail(err, err_len, "admin: %s", presence_strerror(rc));
    }
    if (pthread_create(&admin->sampler, NULL, sampler_main, admin) != 0) {
        presence_unsubscribe(server->registry, admin->events);
        admin_free(admin);
        return ps_fail(err, err_len, "admin: cannot start its thread");
    }
    admin->sampler_started = true;
    server->admin = admin;
    if (ps_http_route_add(server->net, ADMIN_PREFIX, BODY_MAX, admin_handler,
                          admin) != 0) {
        ps_admin_free(server);
        return ps_fail(err, err_len, "admin: out of memory");
    }
    return 0;
}

void ps_admin_stop(ps_server *server)
{
    ps_admin *admin = server->admin;
    if (admin == NULL) {
        return;
    }
    pthread_mutex_lock(&admin->lock);
    admin->stopping = true;
    pthread_cond_broadcast(&admin->wake);
    pthread_mutex_unlock(&admin->lock);
    if (admin->sampler_started) {
        pthread_join(admin->sampler, NULL);
        admin->sampler_started = false;
    }
    remove_test_members(admin, NULL);
}

void ps_admin_free(ps_server *server)
{
    ps_admin *admin = server->admin;
    if (admin == NULL) {
        return;
    }
    ps_admin_stop(server);
    presence_unsubscribe(server->registry, admin->events);
    server->admin = NULL;
    admin_free(admin);
}
