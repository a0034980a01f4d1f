/*
 * Centrifugo's JSON shapes. conn_info and chan_info are stored in
 * libpresence as JSON text and go back on the wire as JSON values, not as
 * strings or base64, exactly as Centrifugo embeds them (its Raw type).
 * SPDX-License-Identifier: MIT
 */
#include "wire.h"

#include "mem.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *ps_wire_error_message(int code)
{
    switch (code) {
    case PS_ERR_INTERNAL: return "internal server error";
    case PS_ERR_UNAUTHORIZED: return "unauthorized";
    case PS_ERR_UNKNOWN_CHANNEL: return "unknown channel";
    case PS_ERR_PERMISSION_DENIED: return "permission denied";
    case PS_ERR_METHOD_NOT_FOUND: return "method not found";
    case PS_ERR_ALREADY_SUBSCRIBED: return "already subscribed";
    case PS_ERR_LIMIT_EXCEEDED: return "limit exceeded";
    case PS_ERR_BAD_REQUEST: return "bad request";
    case PS_ERR_NOT_AVAILABLE: return "not available";
    case PS_ERR_TOKEN_EXPIRED: return "token expired";
    default: return "internal server error";
    }
}

int ps_wire_code_from_presence(int error)
{
    switch (error) {
    case PRESENCE_ERR_BAD_NAME:
    case PRESENCE_ERR_TOO_LONG:
        return PS_ERR_BAD_REQUEST;
    case PRESENCE_ERR_UNKNOWN_NAMESPACE:
        return PS_ERR_UNKNOWN_CHANNEL;
    case PRESENCE_ERR_NOT_AVAILABLE:
        return PS_ERR_NOT_AVAILABLE;
    case PRESENCE_ERR_DENIED:
        return PS_ERR_PERMISSION_DENIED;
    case PRESENCE_ERR_CLIENT_CHANNEL_LIMIT:
    case PRESENCE_ERR_CHANNEL_MEMBER_LIMIT:
    case PRESENCE_ERR_CHANNEL_LIMIT:
        return PS_ERR_LIMIT_EXCEEDED;
    default:
        return PS_ERR_INTERNAL;
    }
}

json_t *ps_wire_error(int code, bool temporary)
{
    if (temporary) {
        return json_pack("{s:i,s:s,s:b}", "code", code, "message",
                         ps_wire_error_message(code), "temporary", 1);
    }
    return json_pack("{s:i,s:s}", "code", code, "message",
                     ps_wire_error_message(code));
}

/* Stored info bytes back to a JSON value. This server stores only JSON;
 * bytes that are not (another writer of the registry) travel as a string
 * rather than as invalid output. */
static json_t *raw_json(const void *bytes, size_t len)
{
    bool nomem = false;
    json_t *value = ps_json_loadb(bytes, len, JSON_DECODE_ANY, NULL, &nomem);
    if (value == NULL && !nomem) {
        value = json_stringn(bytes, len);
    }
    return value;
}

json_t *ps_wire_client_info(const char *user, const char *client,
                            const void *conn_info, size_t conn_info_len,
                            const void *chan_info, size_t chan_info_len)
{
    json_t *info = json_pack("{s:s,s:s}", "user", user, "client", client);
    if (info == NULL) {
        return NULL;
    }
    int rc = 0;
    if (conn_info_len > 0) {
        rc |= json_object_set_new(info, "conn_info", raw_json(conn_info, conn_info_len));
    }
    if (chan_info_len > 0) {
        rc |= json_object_set_new(info, "chan_info", raw_json(chan_info, chan_info_len));
    }
    if (rc != 0) { /* out of memory: nothing rather than a partial info */
        json_decref(info);
        return NULL;
    }
    return info;
}

static json_t *version(uint64_t epoch, uint64_t seq)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, epoch);
    return json_pack("{s:s,s:I}", "epoch", text, "offset", (json_int_t)seq);
}

/* Append a diff's member to the list of its kind in obj (made on first
 * use). 0, or -1 on OOM. */
static int diff_member_add(json_t *obj, const presence_diff_member *m)
{
    const char *key = m->kind == PRESENCE_EVENT_JOIN    ? "join"
                      : m->kind == PRESENCE_EVENT_LEAVE ? "leave"
                                                        : "update";
    json_t *list = json_object_get(obj, key);
    if (list == NULL) {
        list = json_array();
        if (list == NULL || json_object_set_new(obj, key, list) != 0) {
            return -1;
        }
    }
    const presence_member *pm = &m->member;
    json_t *info = ps_wire_client_info(pm->user_id, pm->client_id,
                                       pm->conn_info, pm->conn_info_len,
                                       pm->chan_info, pm->chan_info_len);
    return info != NULL && json_array_append_new(list, info) == 0 ? 0 : -1;
}

json_t *ps_wire_presence_diff(const presence_diff *d)
{
    json_t *obj = version(d->epoch, d->seq);
    json_t *from = version(d->from_epoch, d->from_seq);
    if (obj == NULL || from == NULL ||
        json_object_set_new(obj, "from", from) != 0) {
        json_decref(obj);
        return NULL;
    }
    int rc = 0;
    rc |= json_object_set_new(obj, "num_clients",
                              json_integer((json_int_t)d->stats.num_clients));
    rc |= json_object_set_new(obj, "num_users",
                              json_integer((json_int_t)d->stats.num_users));
    rc |= json_object_set_new(obj, "joined", json_integer((json_int_t)d->joined));
    rc |= json_object_set_new(obj, "left", json_integer((json_int_t)d->left));
    rc |= json_object_set_new(obj, "updated",
                              json_integer((json_int_t)d->updated));
    if ((d->flags & PRESENCE_DIFF_COUNT_ONLY) != 0) {
        rc |= json_object_set_new(obj, "count_only", json_true());
    }
    if ((d->flags & PRESENCE_DIFF_RESYNC) != 0) {
        rc |= json_object_set_new(obj, "resync", json_true());
    }
    for (size_t i = 0; rc == 0 && i < d->member_count; i++) {
        rc |= diff_member_add(obj, &d->members[i]);
    }
    if (rc != 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

json_t *ps_wire_presence(const presence_snapshot *snapshot)
{
    json_t *map = json_object();
    for (size_t i = 0; map != NULL && i < snapshot->count; i++) {
        const presence_member *m = &snapshot->members[i];
        json_t *info = ps_wire_client_info(m->user_id, m->client_id,
                                           m->conn_info, m->conn_info_len,
                                           m->chan_info, m->chan_info_len);
        if (info == NULL || json_object_set_new(map, m->client_id, info) != 0) {
            json_decref(map);
            return NULL;
        }
    }
    return map;
}

void ps_wire_client_info_text(ps_text *t, const char *user, const char *client,
                              const void *conn_info, size_t conn_info_len,
                              const void *chan_info, size_t chan_info_len)
{
    PS_TEXT_LITERAL(t, "{\"user\":");
    ps_text_string(t, user, strlen(user));
    PS_TEXT_LITERAL(t, ",\"client\":");
    ps_text_string(t, client, strlen(client));
    if (conn_info_len > 0) {
        PS_TEXT_LITERAL(t, ",\"conn_info\":");
        ps_text_info(t, conn_info, conn_info_len);
    }
    if (chan_info_len > 0) {
        PS_TEXT_LITERAL(t, ",\"chan_info\":");
        ps_text_info(t, chan_info, chan_info_len);
    }
    PS_TEXT_LITERAL(t, "}");
}

void ps_wire_presence_text(ps_text *t, const presence_snapshot *snapshot)
{
    PS_TEXT_LITERAL(t, "{");
    for (size_t i = 0; i < snapshot->count && !t->failed; i++) {
        const presence_member *m = &snapshot->members[i];
        if (i > 0) {
            PS_TEXT_LITERAL(t, ",");
        }
        ps_text_string(t, m->client_id, strlen(m->client_id));
        PS_TEXT_LITERAL(t, ":");
        ps_wire_client_info_text(t, m->user_id, m->client_id, m->conn_info,
                                 m->conn_info_len, m->chan_info,
                                 m->chan_info_len);
    }
    PS_TEXT_LITERAL(t, "}");
}

json_t *ps_wire_stats(const presence_channel_stats *stats)
{
    return json_pack("{s:I,s:I}", "num_clients", (json_int_t)stats->num_clients,
                     "num_users", (json_int_t)stats->num_users);
}

bool ps_wire_depth_ok(const char *text, size_t len, unsigned max_depth)
{
    unsigned depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                return false;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return true;
}

char *ps_wire_dump(json_t *value, size_t *len)
{
    if (value == NULL) {
        return NULL;
    }
    char *text = ps_json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(value);
    if (text != NULL && len != NULL) {
        *len = strlen(text);
    }
    return text;
}
