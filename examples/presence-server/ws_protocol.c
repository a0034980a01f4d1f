/*
 * The client protocol's commands: connect, subscribe, unsubscribe, presence,
 * presence_stats, refresh, and pongs. Replies and pushes all go through the
 * connection's queue, which keeps them in order.
 *
 * libpresence is never called with a lock of ours held: its callbacks (the
 * hub's fan-out) may run inside the call, on this thread.
 * SPDX-License-Identifier: MIT
 */
#include "ws_protocol.h"

#include "config.h"
#include "conn.h"
#include "heartbeat.h"
#include "json_text.h"
#include "mem.h"
#include "server.h"
#include "token.h"
#include "util.h"
#include "wire.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Close codes (Centrifugo's disconnect codes). */
#define CLOSE_INVALID_TOKEN 3500
#define CLOSE_BAD_REQUEST 3501
#define CLOSE_CONNECTION_LIMIT 3504

typedef struct command {
    ps_conn *conn;
    ps_server *server;
    json_int_t id;
    json_t *params;
} command;

/* What a handler tells the loop: go on, or the connection was closed. */
typedef enum outcome { GO_ON, CLOSED } outcome;

static outcome close_with(ps_conn *conn, int code, const char *reason)
{
    ps_conn_close_now(conn, code, reason);
    return CLOSED;
}

static outcome bad_request(ps_conn *conn)
{
    return close_with(conn, CLOSE_BAD_REQUEST, "bad request");
}

/* Memory ran out half way: the client gets 3004 and reconnects, and the
 * close handler takes back whatever the connection held. */
static outcome internal_error(ps_conn *conn)
{
    return close_with(conn, PS_CLOSE_INTERNAL, "internal server error");
}

/* {"id":N,FIELD:RESULT}, queued. RESULT is stolen. */
static ps_msg *reply_msg(const command *cmd, const char *field, json_t *result)
{
    json_t *reply = json_object();
    if ((json_object_set_new(reply, "id", json_integer(cmd->id)) |
         json_object_set_new(reply, field, result)) != 0) {
        json_decref(reply); /* result was stolen either way */
        return NULL;
    }
    size_t len = 0;
    char *text = ps_wire_dump(reply, &len);
    ps_msg *msg = text ? ps_msg_new(text, len) : NULL;
    ps_free(text);
    return msg;
}

/* The common replies are written as text, as the presence replies and the
 * pushes are: {"id":N,FIELD: is opened here, the result follows, and
 * reply_finish() closes it into a message (NULL when memory ran out). */
static void reply_start(ps_text *t, const command *cmd, const char *field)
{
    ps_text_init(t);
    PS_TEXT_LITERAL(t, "{\"id\":");
    ps_text_i64(t, cmd->id);
    PS_TEXT_LITERAL(t, ",\"");
    ps_text_raw(t, field, strlen(field));
    PS_TEXT_LITERAL(t, "\":");
}

static ps_msg *reply_finish(ps_text *t)
{
    PS_TEXT_LITERAL(t, "}");
    size_t len = 0;
    char *text = ps_text_take(t, &len);
    ps_msg *msg = text != NULL ? ps_msg_new(text, len) : NULL;
    ps_free(text);
    return msg;
}

/* Queue a reply. If it cannot be built (no memory), the client gets an
 * error 100 reply instead, and if even that fails a 3004 close: every
 * command is answered one way or another. A failed queueing closes the
 * connection by itself (ps_conn_send). */
static outcome send_reply(const command *cmd, ps_msg *msg, bool is_error)
{
    if (msg == NULL && !is_error) {
        msg = reply_msg(cmd, "error", ps_wire_error(PS_ERR_INTERNAL, true));
    }
    if (msg == NULL) {
        return internal_error(cmd->conn);
    }
    ps_conn_send(cmd->conn, msg);
    ps_msg_unref(msg);
    return GO_ON;
}

static outcome reply(const command *cmd, const char *field, json_t *result)
{
    return send_reply(cmd, reply_msg(cmd, field, result),
                      strcmp(field, "error") == 0);
}

static outcome reply_error(const command *cmd, int code)
{
    ps_metrics_error(&cmd->server->metrics, code);
    /* Internal errors are temporary: the SDK retries them. */
    return reply(cmd, "error", ps_wire_error(code, code == PS_ERR_INTERNAL));
}

/* The "channel" of a command's params; NULL (a bad request) if missing,
 * not a string or empty, as Centrifugo disconnects for those. */
static const char *param_channel(const command *cmd)
{
    const char *channel = json_string_value(json_object_get(cmd->params, "channel"));
    return (channel != NULL && *channel != '\0') ? channel : NULL;
}

/* A channel name this server accepts: libpresence's rule at the
 * configured length, checked here too for namespaces without presence
 * (their channels never reach the registry). */
static bool channel_name_ok(const ps_config *cfg, const char *channel)
{
    return presence_name_check(PRESENCE_NAME_CHANNEL, channel,
                               cfg->channel_max_length,
                               NULL) == PRESENCE_OK;
}

static int ping_seconds(const ps_config *cfg)
{
    return (int)((cfg->ping_interval_ms + 999) / 1000);
}

/* The connect reply: client, version, expiry, ping/pong (the keys in
 * Centrifugo's order). */
static ps_msg *connect_reply(const command *cmd, int64_t expires_at)
{
    const ps_config *cfg = cmd->server->cfg;
    ps_text t;
    reply_start(&t, cmd, "connect");
    PS_TEXT_LITERAL(&t, "{\"client\":");
    ps_text_string(&t, cmd->conn->client_id, strlen(cmd->conn->client_id));
    PS_TEXT_LITERAL(&t, ",\"version\":");
    ps_text_string(&t, PS_SERVER_VERSION, strlen(PS_SERVER_VERSION));
    if (expires_at > 0) {
        int64_t ttl = expires_at - ps_unix_time();
        PS_TEXT_LITERAL(&t, ",\"expires\":true,\"ttl\":");
        ps_text_i64(&t, ttl > 0 ? ttl : 1);
    }
    if (cfg->ping_interval_ms > 0) {
        PS_TEXT_LITERAL(&t, ",\"ping\":");
        ps_text_i64(&t, ping_seconds(cfg));
        if (cfg->pong_timeout_ms > 0) {
            PS_TEXT_LITERAL(&t, ",\"pong\":true");
        }
    }
    PS_TEXT_LITERAL(&t, "}");
    return reply_finish(&t);
}

/* A connection token (for connect and refresh): as ps_token_verify(), but
 * a token with a "channel" claim is a subscription token and invalid here,
 * as Centrifugo refuses it ("connection JWT can not contain channel
 * claim"), before looking at its expiry. */
static ps_token_status verify_connection_token(const ps_config *cfg,
                                               const char *token,
                                               ps_token_claims *claims)
{
    ps_token_status status = ps_token_verify(token, cfg->token_hmac_secret_key,
                                             ps_unix_time(), claims);
    if ((status == PS_TOKEN_OK || status == PS_TOKEN_EXPIRED) &&
        claims->channel != NULL && *claims->channel != '\0') {
        ps_token_claims_free(claims);
        return PS_TOKEN_INVALID;
    }
    return status;
}

/* Who the connection is: from its token, or anonymous when allowed. */
static outcome authenticate(const command *cmd, bool *replied,
                            int64_t *expires_at)
{
    const ps_config *cfg = cmd->server->cfg;
    ps_conn *conn = cmd->conn;
    const char *token = json_string_value(json_object_get(cmd->params, "token"));
    *replied = false;
    if (token == NULL || *token == '\0') {
        if (!cfg->allow_anonymous_connect_without_token) {
            return bad_request(conn); /* Centrifugo: credentials not found */
        }
        conn->user = ps_strdup("");
        return conn->user != NULL ? GO_ON : internal_error(conn);
    }
    ps_token_claims claims;
    switch (verify_connection_token(cfg, token, &claims)) {
    case PS_TOKEN_INVALID:
        return close_with(conn, CLOSE_INVALID_TOKEN, "invalid token");
    case PS_TOKEN_NOMEM:
        return internal_error(conn);
    case PS_TOKEN_EXPIRED:
        /* An error reply, not a close: the SDK may fetch a fresh token. */
        ps_token_claims_free(&claims);
        *replied = true;
        return reply_error(cmd, PS_ERR_TOKEN_EXPIRED);
    case PS_TOKEN_OK:
        break;
    }
    conn->user = claims.sub;
    conn->conn_info = claims.info;
    conn->conn_info_len = claims.info ? strlen(claims.info) : 0;
    *expires_at = claims.exp;
    claims.sub = claims.info = NULL;
    ps_token_claims_free(&claims);
    return GO_ON;
}

static outcome cmd_connect(const command *cmd)
{
    ps_conn *conn = cmd->conn;
    if (conn->connected) {
        return bad_request(conn);
    }
    bool replied = false;
    int64_t expires_at = 0;
    if (authenticate(cmd, &replied, &expires_at) == CLOSED) {
        return CLOSED;
    }
    if (replied) {
        return GO_ON;
    }
    if (conn->user == NULL || ps_uuid4(conn->client_id) != 0) {
        return internal_error(conn);
    }
    /* Identity once, for the connection's life; the connection rides
     * along in every event and member. */
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = conn->client_id;
    o.user_id = conn->user;
    o.conn_info = conn->conn_info;
    o.conn_info_len = conn->conn_info_len;
    o.app = conn;
    if (presence_client_open(cmd->server->registry, &o, &conn->presence) !=
        PRESENCE_OK) {
        return internal_error(conn);
    }
    conn->connected = true;
    ps_add_result added = ps_server_add_client(cmd->server, conn);
    if (added != PS_ADD_OK) {
        /* In no channel yet: the close cannot need memory for events. */
        (void)presence_client_close(cmd->server->registry, conn->presence,
                                    NULL);
        conn->presence = NULL;
        conn->connected = false;
    }
    switch (added) {
    case PS_ADD_OK:
        break;
    case PS_ADD_FULL:
    case PS_ADD_USER_FULL:
        /* Both limits close with 3504, as Centrifugo's
         * DisconnectConnectionLimit does for the user one. */
        return close_with(conn, CLOSE_CONNECTION_LIMIT, "connection limit");
    case PS_ADD_NOMEM:
        return internal_error(conn);
    }
    ps_heartbeat_arm(cmd->server, conn, expires_at);
    /* Connected but not told so would leave the client half in: a reply
     * that cannot be built closes the connection instead. */
    ps_msg *msg = connect_reply(cmd, expires_at);
    if (msg == NULL) {
        return internal_error(conn);
    }
    ps_conn_send(conn, msg);
    ps_msg_unref(msg);
    return GO_ON;
}

/* May the connection subscribe? With a subscription token the token
 * decides (and may carry chan_info); otherwise the namespace's options. */
static outcome subscribe_permission(const command *cmd, const char *channel,
                                    const ps_channel_options *opts,
                                    char **chan_info, int *error_code)
{
    ps_conn *conn = cmd->conn;
    const char *token = json_string_value(json_object_get(cmd->params, "token"));
    *error_code = 0;
    if (token == NULL || *token == '\0') {
        bool user_ok = *conn->user != '\0' || opts->allow_subscribe_for_anonymous;
        if (!(opts->allow_subscribe_for_client && user_ok)) {
            *error_code = PS_ERR_PERMISSION_DENIED;
        }
        return GO_ON;
    }
    ps_token_claims claims;
    ps_token_status status = ps_token_verify(
        token, cmd->server->cfg->token_hmac_secret_key, ps_unix_time(), &claims);
    if (status == PS_TOKEN_EXPIRED) {
        ps_token_claims_free(&claims);
        *error_code = PS_ERR_TOKEN_EXPIRED;
        return GO_ON;
    }
    if (status == PS_TOKEN_NOMEM) {
        return internal_error(conn);
    }
    if (status != PS_TOKEN_OK || strcmp(claims.sub, conn->user) != 0 ||
        claims.channel == NULL || strcmp(claims.channel, channel) != 0) {
        if (status == PS_TOKEN_OK) {
            ps_token_claims_free(&claims);
        }
        return close_with(conn, CLOSE_INVALID_TOKEN, "invalid token");
    }
    *chan_info = claims.info;
    claims.info = NULL;
    ps_token_claims_free(&claims);
    return GO_ON;
}

/* Join presence (when the namespace keeps it), then queue the reply ahead
 * of the pushes that the join caused. */
static outcome subscribe_join(const command *cmd, const char *channel,
                              const ps_channel_options *opts,
                              const char *chan_info)
{
    ps_conn *conn = cmd->conn;
    presence_change change = {PRESENCE_CHANGE_NONE, {0, 0, 0, 0}};
    if (opts->presence) {
        int rc = presence_client_join(cmd->server->registry, conn->presence,
                                      channel, chan_info,
                                      chan_info ? strlen(chan_info) : 0,
                                      &change);
        if (rc != PRESENCE_OK) {
            ps_hub_remove(&cmd->server->hub, conn, channel);
            return reply_error(cmd, ps_wire_code_from_presence(rc));
        }
    }
    ps_text t;
    reply_start(&t, cmd, "subscribe");
    PS_TEXT_LITERAL(&t, "{}");
    ps_msg *msg = reply_finish(&t);
    if (msg == NULL) {
        /* Joined but not answered: the close takes the membership back. */
        return internal_error(conn);
    }
    /* Back within a leave grace (the same user reconnected): nobody was
     * told of a join, and nobody is told of one now. */
    ps_hub_activate(&cmd->server->hub, conn, channel, msg,
                    change.kind == PRESENCE_CHANGE_RESUMED ? &change : NULL);
    ps_msg_unref(msg);
    return GO_ON;
}

static outcome cmd_subscribe(const command *cmd)
{
    const ps_config *cfg = cmd->server->cfg;
    ps_conn *conn = cmd->conn;
    const char *channel = param_channel(cmd);
    if (channel == NULL) {
        return bad_request(conn);
    }
    if (!channel_name_ok(cfg, channel)) {
        return reply_error(cmd, PS_ERR_BAD_REQUEST);
    }
    const ps_channel_options *opts = ps_config_channel(cfg, channel);
    if (opts == NULL) {
        return reply_error(cmd, PS_ERR_UNKNOWN_CHANNEL);
    }
    char *chan_info = NULL;
    int code = 0;
    if (subscribe_permission(cmd, channel, opts, &chan_info, &code) == CLOSED) {
        return CLOSED;
    }
    if (code != 0) {
        return reply_error(cmd, code);
    }
    /* Receiving join/leave is Centrifugo's PushJoinLeave rule (with the
     * fix of centrifugo#849: the subscriber counts as subscribed). */
    bool asked = json_is_true(json_object_get(cmd->params, "join_leave"));
    bool push = opts->force_push_join_leave ||
                (asked && opts->join_leave &&
                 ps_presence_allowed(opts, conn->user, true));
    outcome out = GO_ON;
    switch (ps_hub_add(&cmd->server->hub, conn, channel, push,
                       cfg->client_channel_limit)) {
    case PS_HUB_OK:
        out = subscribe_join(cmd, channel, opts, chan_info);
        break;
    case PS_HUB_ALREADY:
        out = reply_error(cmd, PS_ERR_ALREADY_SUBSCRIBED);
        break;
    case PS_HUB_LIMIT:
        out = reply_error(cmd, PS_ERR_LIMIT_EXCEEDED);
        break;
    case PS_HUB_NOMEM:
        out = reply_error(cmd, PS_ERR_INTERNAL);
        break;
    }
    ps_free(chan_info);
    return out;
}

static outcome cmd_unsubscribe(const command *cmd)
{
    const char *channel = param_channel(cmd);
    if (channel == NULL) {
        return bad_request(cmd->conn);
    }
    /* Out of the hub first: the leaver gets no push about itself. */
    if (ps_hub_remove(&cmd->server->hub, cmd->conn, channel)) {
        const ps_channel_options *opts = ps_config_channel(cmd->server->cfg, channel);
        if (opts != NULL && opts->presence) {
            int rc = presence_client_leave(cmd->server->registry,
                                           cmd->conn->presence, channel, NULL);
            if (rc != PRESENCE_OK && rc != PRESENCE_ERR_NOT_FOUND) {
                /* Still a member, no longer a subscriber: closing the
                 * connection takes the membership back. */
                return internal_error(cmd->conn);
            }
        }
    }
    return reply(cmd, "unsubscribe", json_object());
}

static outcome cmd_presence(const command *cmd)
{
    const char *channel = param_channel(cmd);
    if (channel == NULL) {
        return bad_request(cmd->conn);
    }
    presence_snapshot *snap = NULL;
    presence_requester who = {cmd->conn->client_id, cmd->conn->user};
    int rc = presence_query(cmd->server->registry, channel, &who, &snap);
    if (rc != PRESENCE_OK) {
        return reply_error(cmd, ps_wire_code_from_presence(rc));
    }
    /* Written as text, member by member: a lobby's presence is thousands
     * of members, and a tree of values costs several allocations each. */
    ps_text t;
    reply_start(&t, cmd, "presence");
    PS_TEXT_LITERAL(&t, "{\"presence\":");
    ps_wire_presence_text(&t, snap);
    PS_TEXT_LITERAL(&t, "}");
    presence_snapshot_free(snap);
    return send_reply(cmd, reply_finish(&t), false);
}

static outcome cmd_presence_stats(const command *cmd)
{
    const char *channel = param_channel(cmd);
    if (channel == NULL) {
        return bad_request(cmd->conn);
    }
    presence_channel_stats stats;
    presence_requester who = {cmd->conn->client_id, cmd->conn->user};
    int rc = presence_stats(cmd->server->registry, channel, &who, &stats);
    if (rc != PRESENCE_OK) {
        return reply_error(cmd, ps_wire_code_from_presence(rc));
    }
    ps_text t;
    reply_start(&t, cmd, "presence_stats");
    PS_TEXT_LITERAL(&t, "{\"num_clients\":");
    ps_text_u64(&t, stats.num_clients);
    PS_TEXT_LITERAL(&t, ",\"num_users\":");
    ps_text_u64(&t, stats.num_users);
    PS_TEXT_LITERAL(&t, "}");
    return send_reply(cmd, reply_finish(&t), false);
}

/* A new connection token for a connection whose token expires. */
static outcome cmd_refresh(const command *cmd)
{
    ps_conn *conn = cmd->conn;
    const char *token = json_string_value(json_object_get(cmd->params, "token"));
    if (token == NULL || *token == '\0') {
        return bad_request(conn);
    }
    ps_token_claims claims;
    ps_token_status status =
        verify_connection_token(cmd->server->cfg, token, &claims);
    if (status == PS_TOKEN_EXPIRED) {
        ps_token_claims_free(&claims);
        return reply_error(cmd, PS_ERR_TOKEN_EXPIRED);
    }
    if (status == PS_TOKEN_NOMEM) {
        return internal_error(conn);
    }
    if (status != PS_TOKEN_OK || strcmp(claims.sub, conn->user) != 0) {
        if (status == PS_TOKEN_OK) {
            ps_token_claims_free(&claims);
        }
        return close_with(conn, CLOSE_INVALID_TOKEN, "invalid token");
    }
    int64_t exp = claims.exp;
    ps_token_claims_free(&claims);
    ps_heartbeat_set_expiry(conn, exp); /* its timer moves with it */
    json_t *result = json_pack("{s:s,s:s}", "client", conn->client_id,
                               "version", PS_SERVER_VERSION);
    if (result != NULL && exp > 0) {
        int64_t ttl = exp - ps_unix_time();
        if ((json_object_set_new(result, "expires", json_true()) |
             json_object_set_new(result, "ttl", json_integer(ttl > 0 ? ttl : 1))) != 0) {
            json_decref(result);
            result = NULL; /* reply() answers with error 100 */
        }
    }
    return reply(cmd, "refresh", result);
}

/* Methods of the protocol this server does not offer (no publications, no
 * history, no RPC): "not available", as Centrifugo answers when a feature
 * is off. */
static outcome cmd_not_available(const command *cmd)
{
    return reply_error(cmd, PS_ERR_NOT_AVAILABLE);
}

typedef struct method {
    const char *name;
    outcome (*run)(const command *cmd);
    ps_metric_command metric;
} method;

static const method methods[] = {
    {"connect", cmd_connect, PS_CMD_CONNECT},
    {"subscribe", cmd_subscribe, PS_CMD_SUBSCRIBE},
    {"unsubscribe", cmd_unsubscribe, PS_CMD_UNSUBSCRIBE},
    {"presence", cmd_presence, PS_CMD_PRESENCE},
    {"presence_stats", cmd_presence_stats, PS_CMD_PRESENCE_STATS},
    {"refresh", cmd_refresh, PS_CMD_REFRESH},
    {"publish", cmd_not_available, PS_CMD_PUBLISH},
    {"history", cmd_not_available, PS_CMD_HISTORY},
    {"rpc", cmd_not_available, PS_CMD_RPC},
    {"sub_refresh", cmd_not_available, PS_CMD_SUB_REFRESH},
    /* asynchronous message: no reply, nothing to do */
    {"send", NULL, PS_CMD_SEND},
};

/* The command's method: the first request field that is set. */
static const method *find_method(json_t *obj, json_t **params)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        json_t *value = json_object_get(obj, methods[i].name);
        if (value != NULL && !json_is_null(value)) {
            *params = value;
            return &methods[i];
        }
    }
    return NULL;
}

/* A command's id: absent is 0; otherwise a uint32. -1 if malformed. */
static json_int_t command_id(json_t *obj)
{
    json_t *id = json_object_get(obj, "id");
    if (id == NULL) {
        return 0;
    }
    if (!json_is_integer(id) || json_integer_value(id) < 0 ||
        json_integer_value(id) > (json_int_t)UINT32_MAX) {
        return -1;
    }
    return json_integer_value(id);
}

static outcome dispatch(ps_conn *conn, json_t *obj)
{
    command cmd = {conn, conn->server, command_id(obj), NULL};
    if (cmd.id < 0) {
        return bad_request(conn);
    }
    const method *m = find_method(obj, &cmd.params);
    if (m == NULL) {
        /* {} (or {"id":0}) is the client's pong. Anything else is an
         * unknown command. */
        if (cmd.id == 0 && json_object_size(obj) <= 1) {
            ps_metrics_command(&conn->server->metrics, PS_CMD_PONG);
            ps_heartbeat_pong(conn);
            return GO_ON;
        }
        return bad_request(conn);
    }
    if (!json_is_object(cmd.params) || (!conn->connected && m->run != cmd_connect)) {
        return bad_request(conn);
    }
    ps_metrics_command(&conn->server->metrics, m->metric);
    if (m->run == NULL) {
        return GO_ON;
    }
    if (cmd.id == 0) {
        return bad_request(conn); /* a command that wants a reply needs an id */
    }
    ps_metrics *metrics = &conn->server->metrics; /* the server outlives it */
    uint64_t started = ps_now_ns();
    outcome out = m->run(&cmd);
    ps_metrics_command_time(metrics, m->metric, ps_now_ns() - started);
    return out;
}

static outcome handle_line(ps_conn *conn, const char *line, size_t len)
{
    if (!ps_wire_depth_ok(line, len, PS_JSON_MAX_DEPTH)) {
        return close_with(conn, CLOSE_BAD_REQUEST, "bad request: too deep");
    }
    bool nomem = false;
    json_t *obj = ps_json_loadb(line, len, 0, NULL, &nomem);
    if (nomem) {
        return internal_error(conn);
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        return bad_request(conn);
    }
    outcome out = dispatch(conn, obj);
    json_decref(obj);
    return out;
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
            return false;
        }
    }
    return true;
}

bool ps_ws_handle_message(ps_conn *conn, const char *data, size_t len)
{
    const char *end = data + len;
    while (data < end) {
        const char *nl = memchr(data, '\n', (size_t)(end - data));
        const char *stop = nl ? nl : end;
        size_t n = (size_t)(stop - data);
        if (ps_conn_closing(conn)) {
            /* Closed by a failure to queue (3004), a slow-client close
             * (3008) or the heartbeat: no more commands run. */
            ps_conn_finish_close(conn);
            return false;
        }
        if (!blank(data, n) && handle_line(conn, data, n) == CLOSED) {
            return false;
        }
        if (ps_conn_closing(conn)) {
            ps_conn_finish_close(conn);
            return false;
        }
        data = nl ? nl + 1 : end;
    }
    return true;
}
