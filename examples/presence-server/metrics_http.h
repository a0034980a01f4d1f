/*
 * /metrics and /health on the server's listener (metrics_http.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_METRICS_HTTP_H
#define PS_METRICS_HTTP_H

struct ps_net;
struct ps_server;

/** Add the routes to @p net. 0 or -1 (memory). */
int ps_metrics_http_install(struct ps_net *net, struct ps_server *server);

#endif
