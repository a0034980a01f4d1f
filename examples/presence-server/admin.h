/*
 * The admin page: a small web app under /admin (its files built into the
 * binary), signed in with admin_password, that shows the channels, their
 * members and a log of joins and leaves live, over server-sent events.
 * On only with "admin": true in the config (and in the embedded default).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_ADMIN_H
#define PS_ADMIN_H

#include <stddef.h>

struct ps_server;

/** One file of the page, built into the binary (admin_assets.c, generated
 *  from admin/ by admin/embed.py). */
typedef struct ps_admin_asset {
    const char *name; /**< "index.html", "app.js", ... */
    const char *type; /**< its Content-Type */
    const unsigned char *data;
    size_t len;
} ps_admin_asset;

extern const ps_admin_asset ps_admin_assets[];
extern const size_t ps_admin_asset_count;

/** With admin on: watch the registry's events, start the sampler thread
 *  (one sample a second for the chart) and add the /admin route to
 *  server->net. Does nothing with admin off. 0, or -1 with @p err. */
int ps_admin_start(struct ps_server *server, char *err, size_t err_len);

/** End every event stream (at its next tick) and take the page's test
 *  members out of their channels. Before the connections are closed.
 *  Safe to call again. */
void ps_admin_stop(struct ps_server *server);

/** Free what ps_admin_start() made, once the loop has stopped (no
 *  handler runs any more). NULL-safe on a server without admin. */
void ps_admin_free(struct ps_server *server);

#endif
