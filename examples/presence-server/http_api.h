/*
 * Centrifugo's HTTP server API, the presence part: POST /api (the legacy
 * {"method":..,"params":..} form), /api/presence and /api/presence_stats.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_HTTP_API_H
#define PS_HTTP_API_H

struct ps_net;
struct ps_server;

/** Add the /api routes to @p net. 0 or -1 (memory). */
int ps_http_api_install(struct ps_net *net, struct ps_server *server);

#endif
