/*
 * Centrifugo's JSON shapes, shared by the HTTP API and the client protocol.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_WIRE_H
#define PS_WIRE_H

#include "json_text.h"

#include <jansson.h>
#include <presence.h>
#include <stdbool.h>
#include <stddef.h>

/* Centrifugo's error codes (client protocol and server API). */
enum {
    PS_ERR_INTERNAL = 100,
    PS_ERR_UNAUTHORIZED = 101,
    PS_ERR_UNKNOWN_CHANNEL = 102,
    PS_ERR_PERMISSION_DENIED = 103,
    PS_ERR_METHOD_NOT_FOUND = 104,
    PS_ERR_ALREADY_SUBSCRIBED = 105,
    PS_ERR_LIMIT_EXCEEDED = 106,
    PS_ERR_BAD_REQUEST = 107,
    PS_ERR_NOT_AVAILABLE = 108,
    PS_ERR_TOKEN_EXPIRED = 109,
};

/** Centrifugo's message for one of its error codes. */
const char *ps_wire_error_message(int code);

/** The Centrifugo code for a libpresence error (see presence.h's table). */
int ps_wire_code_from_presence(int error);

/** {"code":C,"message":M} plus "temporary":true when asked (never false:
 *  centrifuge-js would read an explicit false just the same, but Centrifugo
 *  omits it). New reference. */
json_t *ps_wire_error(int code, bool temporary);

/** ClientInfo: {"user","client","conn_info"?,"chan_info"?}, the infos
 *  embedded as raw JSON. New reference, NULL on OOM. */
json_t *ps_wire_client_info(const char *user, const char *client,
                            const void *conn_info, size_t conn_info_len,
                            const void *chan_info, size_t chan_info_len);

/** A coalesced diff as the push extension "presence_diff" (the
 *  server's own, beside Centrifugo's join and leave pushes):
 *  {"from":{"epoch":E,"offset":N},"epoch":E,"offset":N,
 *   "num_clients":C,"num_users":U,"joined":J,"left":L,"updated":D,
 *   "count_only":B?,"resync":B?,"join":[ClientInfo]?,"leave":[...]?,
 *   "update":[...]?} (epochs as decimal strings, as in recovery; the
 *  flags and lists only when set / not empty). New reference, NULL on
 *  OOM. */
json_t *ps_wire_presence_diff(const presence_diff *diff);

/** {CLIENT_ID: ClientInfo, ...} of a snapshot. New reference. */
json_t *ps_wire_presence(const presence_snapshot *snapshot);

/** ps_wire_client_info() written into @p t as text (t->failed on no
 *  memory or a name that is not UTF-8). */
void ps_wire_client_info_text(ps_text *t, const char *user, const char *client,
                              const void *conn_info, size_t conn_info_len,
                              const void *chan_info, size_t chan_info_len);

/** The same map written into @p t as text (t->failed on no memory or a
 *  name that is not UTF-8, where ps_wire_presence gives NULL). */
void ps_wire_presence_text(ps_text *t, const presence_snapshot *snapshot);

/** {"num_clients":N,"num_users":M}. New reference. */
json_t *ps_wire_stats(const presence_channel_stats *stats);

/** How deep JSON from a client or an API caller may nest (objects and
 *  arrays). Deeper input is refused before it is parsed: 3501 on a
 *  WebSocket, 400 on the HTTP API. */
#define PS_JSON_MAX_DEPTH 64

/** Whether the JSON text nests at most @p max_depth deep. A linear scan
 *  that respects strings; the text need not be valid JSON. */
bool ps_wire_depth_ok(const char *text, size_t len, unsigned max_depth);

/** Compact text of @p value, which is released (stolen). malloc'd. */
char *ps_wire_dump(json_t *value, size_t *len);

#endif
