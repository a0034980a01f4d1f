/*
 * The server API's presence_changes method, an extension beside
 * Centrifugo's presence and presence_stats: the joins, leaves and updates
 * of a channel since a version (libpresence's presence_changes_since()),
 * or, when they are not all kept, the presence with its version, so that
 * one method serves the first call and every later one. Transport-free:
 * http_api.c hands it the parsed request.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_HISTORY_API_H
#define PS_HISTORY_API_H

#include "server.h"

#include <jansson.h>

/**
 * Answer {"channel":C, "epoch":E, "offset":N} (epoch a decimal string,
 * offset an integer; without "epoch" the answer is the presence):
 *
 *   {"recovered":true, "epoch":E, "offset":N,
 *    "changes":[{"type":"join"|"leave"|"update", "offset":N, "time":MS,
 *                "reason":R (leaves), "info":ClientInfo}, ...]}
 *   {"recovered":false, "epoch":E, "offset":N, "presence":{ID:ClientInfo}}
 *
 * A trusted, server-side read, as the other API methods. Returns the
 * result (a new reference), or NULL with *error_code a Centrifugo code
 * (107 for bad parameters, 100 when memory runs out).
 */
json_t *ps_history_api_changes(ps_server *server, json_t *params,
                               int *error_code);

#endif
