/*
 * The Centrifugo client protocol v2 in JSON, as the presence server
 * speaks it (examples/presence-server/ws_protocol.c): commands, and the
 * replies and pushes, may share a frame, one per line.
 * SPDX-License-Identifier: MIT
 */
#include "proto.h"

#include <stdio.h>
#include <string.h>

/* The connect command always carries id 1: its reply is CONNECTED. */
#define CONNECT_ID 1u

static bool append_fmt_cmd(lg_buf *out, uint32_t id, const char *method,
                           const char *channel, const char *extra)
{
    char text[256];
    int n = snprintf(text, sizeof text, "{\"id\":%u,\"%s\":{\"channel\":\"%s\"%s}}",
                     id, method, channel, extra);
    return n > 0 && (size_t)n < sizeof text && lg_buf_append(out, text, (size_t)n);
}

static bool hello(lg_buf *out, const char *user, const char *token)
{
    (void)user;
    char text[512];
    int n = snprintf(text, sizeof text, "{\"id\":%u,\"connect\":{\"token\":\"%s\"}}",
                     CONNECT_ID, token);
    return n > 0 && (size_t)n < sizeof text && lg_buf_append(out, text, (size_t)n);
}

static bool subscribe(lg_buf *out, uint32_t id, const char *channel, bool join_leave)
{
    return append_fmt_cmd(out, id, "subscribe", channel,
                          join_leave ? ",\"join_leave\":true" : "");
}

static bool presence(lg_buf *out, uint32_t id, const char *channel)
{
    return append_fmt_cmd(out, id, "presence", channel, "");
}

static bool presence_stats(lg_buf *out, uint32_t id, const char *channel)
{
    return append_fmt_cmd(out, id, "presence_stats", channel, "");
}

static bool pong(lg_buf *out)
{
    return lg_buf_append(out, "{}", 2);
}

static void parse_push(json_t *push, lg_msg *msg)
{
    json_t *join = json_object_get(push, "join");
    json_t *leave = json_object_get(push, "leave");
    json_t *event = join ? join : leave;
    if (event == NULL) {
        msg->kind = json_object_get(push, "disconnect") ? LG_MSG_DISCONNECT : LG_MSG_BAD;
        return;
    }
    json_t *info = json_object_get(event, "info");
    msg->kind = LG_MSG_PUSH;
    msg->join = join != NULL;
    msg->channel = json_string_value(json_object_get(push, "channel"));
    msg->client = json_string_value(json_object_get(info, "client"));
    if (msg->channel == NULL || msg->client == NULL) {
        msg->kind = LG_MSG_BAD;
    }
}

static void parse_reply(json_t *root, json_int_t id, lg_msg *msg)
{
    msg->kind = LG_MSG_REPLY;
    msg->id = (uint32_t)id;
    msg->ok = json_object_get(root, "error") == NULL;
    if (!msg->ok) {
        return;
    }
    json_t *connect = json_object_get(root, "connect");
    if (connect != NULL && id == CONNECT_ID) {
        msg->kind = LG_MSG_CONNECTED;
        msg->client = json_string_value(json_object_get(connect, "client"));
        if (msg->client == NULL) {
            msg->kind = LG_MSG_BAD;
        }
        return;
    }
    json_t *p = json_object_get(root, "presence");
    if (p != NULL) {
        msg->presence = json_object_get(p, "presence");
        if (!json_is_object(msg->presence)) {
            msg->ok = false;
            msg->presence = NULL;
        }
        return;
    }
    json_t *s = json_object_get(root, "presence_stats");
    if (s != NULL) {
        json_t *c = json_object_get(s, "num_clients");
        json_t *u = json_object_get(s, "num_users");
        /* Centrifugo leaves zero counts out of the JSON. */
        msg->num_clients = c ? json_integer_value(c) : 0;
        msg->num_users = u ? json_integer_value(u) : 0;
    }
}

/* Text that starts at *at with @p word: step over it. */
static bool take(const char *text, size_t len, size_t *at, const char *word)
{
    size_t n = strlen(word);
    if (len - *at < n || memcmp(text + *at, word, n) != 0) {
        return false;
    }
    *at += n;
    return true;
}

/* A JSON string's body up to its closing quote, copied into @p out (of
 * @p cap bytes) when it has no escape; *at moves past the quote. */
static bool take_plain_string(const char *text, size_t len, size_t *at, char *out,
                              size_t cap)
{
    size_t i = *at;
    while (i < len && text[i] != '"' && text[i] != '\\') {
        i++;
    }
    if (i == len || text[i] != '"' || i - *at >= cap) {
        return false;
    }
    if (out != NULL) {
        memcpy(out, text + *at, i - *at);
        out[i - *at] = '\0';
    }
    *at = i + 1;
    return true;
}

/* A reply's leading {"id":N: N, or 0 when the text does not start so. */
static uint32_t take_id(const char *text, size_t len, size_t *at)
{
    if (!take(text, len, at, "{\"id\":")) {
        return 0;
    }
    uint64_t id = 0;
    while (*at < len && text[*at] >= '0' && text[*at] <= '9' && id < UINT32_MAX) {
        id = id * 10 + (uint64_t)(text[(*at)++] - '0');
    }
    return id <= UINT32_MAX ? (uint32_t)id : 0;
}

/* {"id":N,"presence":{"presence":... whose body is not wanted: a reply
 * without parsing it. The server writes "id" first (jansson keeps the
 * order keys were set in); anything else takes the full parse. */
static bool skip_presence(const char *text, size_t len, lg_body_cb want, void *ctx,
                          lg_msg *msg)
{
    size_t at = 0;
    uint32_t id = take_id(text, len, &at);
    if (id == 0 || !take(text, len, &at, ",\"presence\":{\"presence\":") ||
        want(ctx, id)) {
        return false;
    }
    msg->kind = LG_MSG_REPLY;
    msg->id = id;
    msg->ok = true;
    msg->body_skipped = true;
    return true;
}

/* The shapes this server writes most, read without a tree: the connect
 * reply's client, a subscribe's empty reply and a join or leave push (hub.c and wire.c write them in
 * this order). Anything else, or anything escaped, goes to jansson. The
 * strings land in @p channel and @p client, which outlive the callback. */
static bool fast_line(const char *text, size_t len, lg_msg *msg, char *channel,
                      char *client)
{
    size_t at = 0;
    uint32_t id = take_id(text, len, &at);
    if (at > 0) {
        if (id == CONNECT_ID && take(text, len, &at, ",\"connect\":{\"client\":\"") &&
            take_plain_string(text, len, &at, client, LG_CLIENT_MAX) &&
            text[len - 1] == '}') {
            msg->kind = LG_MSG_CONNECTED;
            msg->client = client;
            return true;
        }
        if (id == 0 || id == CONNECT_ID || !take(text, len, &at, ",\"subscribe\":{}}") ||
            at != len) {
            return false;
        }
        msg->kind = LG_MSG_REPLY;
        msg->id = id;
        msg->ok = true;
        return true;
    }
    bool join;
    if (!take(text, len, &at, "{\"push\":{\"channel\":\"") ||
        !take_plain_string(text, len, &at, channel, 64)) {
        return false;
    }
    if (take(text, len, &at, ",\"join\":{\"info\":{\"user\":\"")) {
        join = true;
    } else if (take(text, len, &at, ",\"leave\":{\"info\":{\"user\":\"")) {
        join = false;
    } else {
        return false;
    }
    if (!take_plain_string(text, len, &at, NULL, len) ||
        !take(text, len, &at, ",\"client\":\"") ||
        !take_plain_string(text, len, &at, client, LG_CLIENT_MAX) || len < 3 ||
        memcmp(text + len - 3, "}}}", 3) != 0) {
        return false;
    }
    msg->kind = LG_MSG_PUSH;
    msg->join = join;
    msg->channel = channel;
    msg->client = client;
    return true;
}

static void parse_line(const char *text, size_t len, lg_msg_cb cb, lg_body_cb want,
                       void *ctx)
{
    lg_msg msg = {.kind = LG_MSG_BAD, .num_clients = -1, .num_users = -1};
    char channel[64];
    char client[LG_CLIENT_MAX];
    if (skip_presence(text, len, want, ctx, &msg) ||
        fast_line(text, len, &msg, channel, client)) {
        cb(ctx, &msg);
        return;
    }
    json_t *root = json_loadb(text, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        cb(ctx, &msg);
        return;
    }
    json_t *id = json_object_get(root, "id");
    json_t *push = json_object_get(root, "push");
    if (json_object_size(root) == 0) {
        msg.kind = LG_MSG_PING;
    } else if (json_is_integer(id) && json_integer_value(id) > 0) {
        parse_reply(root, json_integer_value(id), &msg);
    } else if (json_is_object(push)) {
        parse_push(push, &msg);
    }
    cb(ctx, &msg);
    json_decref(root);
}

static void parse(const char *text, size_t len, lg_msg_cb cb, lg_body_cb want,
                  void *ctx)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || text[i] == '\n') {
            if (i > start) {
                parse_line(text + start, i - start, cb, want, ctx);
            }
            start = i + 1;
        }
    }
}

const lg_proto lg_proto_centrifugo = {
    .name = "presence-server",
    .path = "/connection/websocket",
    .hello_after_open = false,
    .batches = true,
    .subscribe_with_hello = true,
    .hello = hello,
    .subscribe = subscribe,
    .presence = presence,
    .presence_stats = presence_stats,
    .pong = pong,
    .parse = parse,
};
