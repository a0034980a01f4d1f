/*
 * Centrifugo's HTTP server API, the presence part: POST /api (the legacy
 * {"method":..,"params":..} form), /api/presence and /api/presence_stats.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_HTTP_API_H
#define PS_HTTP_API_H

struct mg_context;
struct ps_server;

void ps_http_api_install(struct mg_context *ctx, struct ps_server *server);

#endif
