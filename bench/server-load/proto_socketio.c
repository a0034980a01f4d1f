/*
 * Engine.IO v4 over WebSocket, carrying Socket.IO packets, as the peer in
 * bench/peers/socketio-server speaks them: one packet per text frame, the
 * first character the Engine.IO type (0 open, 1 close, 2 ping, 3 pong,
 * 4 message), a message's second the Socket.IO type (0 connect,
 * 1 disconnect, 2 event, 3 ack, 4 connect error). Events that want an ack
 * carry its id before their JSON array.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include "proto.h"

#include <stdio.h>
#include <string.h>

static bool hello(lg_buf *out, const char *user, const char *token)
{
    (void)token;
    char text[256];
    int n = snprintf(text, sizeof text, "40{\"user\":\"%s\"}", user);
    return n > 0 && (size_t)n < sizeof text && lg_buf_append(out, text, (size_t)n);
}

static bool event(lg_buf *out, uint32_t id, const char *name, const char *channel)
{
    char text[256];
    int n = snprintf(text, sizeof text, "42%u[\"%s\",\"%s\"]", id, name, channel);
    return n > 0 && (size_t)n < sizeof text && lg_buf_append(out, text, (size_t)n);
}

/* Rooms have no per-subscriber switch: every member hears joins and leaves. */
static bool subscribe(lg_buf *out, uint32_t id, const char *channel, bool join_leave)
{
    (void)join_leave;
    return event(out, id, "subscribe", channel);
}

static bool presence(lg_buf *out, uint32_t id, const char *channel)
{
    return event(out, id, "presence", channel);
}

static bool presence_stats(lg_buf *out, uint32_t id, const char *channel)
{
    return event(out, id, "presence_stats", channel);
}

static bool pong(lg_buf *out)
{
    return lg_buf_append(out, "3", 1);
}

/* "43<id>[{...}]": the ack's first argument. A presence ack whose body
 * is not wanted is a reply without parsing it. */
static void parse_ack(const char *text, size_t len, lg_body_cb want, void *ctx,
                      lg_msg *msg, json_t **root)
{
    static const char head[] = "[{\"clients\":";
    size_t i = 0;
    uint64_t id = 0;
    while (i < len && text[i] >= '0' && text[i] <= '9' && id < UINT32_MAX) {
        id = id * 10 + (uint64_t)(text[i] - '0');
        i++;
    }
    if (i > 0 && len - i >= sizeof head - 1 &&
        memcmp(text + i, head, sizeof head - 1) == 0 && !want(ctx, (uint32_t)id)) {
        msg->kind = LG_MSG_REPLY;
        msg->id = (uint32_t)id;
        msg->ok = true;
        msg->body_skipped = true;
        return;
    }
    *root = json_loadb(text + i, len - i, 0, NULL);
    json_t *arg = json_array_get(*root, 0);
    if (i == 0 || !json_is_object(arg)) {
        return;
    }
    msg->kind = LG_MSG_REPLY;
    msg->id = (uint32_t)id;
    json_t *ok = json_object_get(arg, "ok");
    msg->ok = ok == NULL || json_is_true(ok);
    json_t *clients = json_object_get(arg, "clients");
    if (json_is_object(clients)) {
        msg->presence = clients;
    }
    json_t *c = json_object_get(arg, "num_clients");
    json_t *u = json_object_get(arg, "num_users");
    if (json_is_integer(c) && json_is_integer(u)) {
        msg->num_clients = json_integer_value(c);
        msg->num_users = json_integer_value(u);
    }
}

/* "42[\"join\"|\"leave\",{channel, client, user}]" */
static void parse_event(const char *text, size_t len, lg_msg *msg, json_t **root)
{
    /* Rooms tell every member of a lobby about every join and leave; the
     * workload does not follow lobbies, so these are counted unparsed. */
    static const char lobby[] = "\"channel\":\"lobby:";
    if (memmem(text, len < 48 ? len : 48, lobby, sizeof lobby - 1) != NULL) {
        msg->kind = LG_MSG_PUSH;
        msg->channel = "lobby:";
        msg->client = "";
        return;
    }
    *root = json_loadb(text, len, 0, NULL);
    const char *name = json_string_value(json_array_get(*root, 0));
    json_t *body = json_array_get(*root, 1);
    if (name == NULL || !json_is_object(body)) {
        return;
    }
    bool join = strcmp(name, "join") == 0;
    if (!join && strcmp(name, "leave") != 0) {
        return;
    }
    msg->kind = LG_MSG_PUSH;
    msg->join = join;
    msg->channel = json_string_value(json_object_get(body, "channel"));
    msg->client = json_string_value(json_object_get(body, "client"));
    if (msg->channel == NULL || msg->client == NULL) {
        msg->kind = LG_MSG_BAD;
    }
}

static void parse(const char *text, size_t len, lg_msg_cb cb, lg_body_cb want,
                  void *ctx)
{
    lg_msg msg = {.kind = LG_MSG_BAD, .num_clients = -1, .num_users = -1};
    json_t *root = NULL;
    if (len >= 1 && text[0] == '0') {
        msg.kind = LG_MSG_OPEN;
    } else if (len >= 1 && text[0] == '1') {
        msg.kind = LG_MSG_DISCONNECT;
    } else if (len == 1 && text[0] == '2') {
        msg.kind = LG_MSG_PING;
    } else if (len >= 2 && text[0] == '4') {
        switch (text[1]) {
        case '0':
            root = json_loadb(text + 2, len - 2, 0, NULL);
            msg.client = json_string_value(json_object_get(root, "sid"));
            if (msg.client != NULL) {
                msg.kind = LG_MSG_CONNECTED;
            }
            break;
        case '1':
        case '4':
            msg.kind = LG_MSG_DISCONNECT;
            break;
        case '2':
            parse_event(text + 2, len - 2, &msg, &root);
            break;
        case '3':
            parse_ack(text + 2, len - 2, want, ctx, &msg, &root);
            break;
        default:
            break;
        }
    }
    cb(ctx, &msg);
    json_decref(root);
}

const lg_proto lg_proto_socketio = {
    .name = "socket.io",
    .path = "/socket.io/?EIO=4&transport=websocket",
    .hello_after_open = true,
    .hello = hello,
    .subscribe = subscribe,
    .presence = presence,
    .presence_stats = presence_stats,
    .pong = pong,
    .parse = parse,
};
