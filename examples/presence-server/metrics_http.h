/*
 * /metrics and /health on the server's listener (metrics_http.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_METRICS_HTTP_H
#define PS_METRICS_HTTP_H

struct mg_context;
struct ps_server;

void ps_metrics_http_install(struct mg_context *ctx, struct ps_server *server);

#endif
