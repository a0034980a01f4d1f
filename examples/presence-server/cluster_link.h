/*
 * This server as one node of several: its registry attached to Redis with
 * libpresence-cluster (include/presence_cluster.h), when the config says
 * "engine": "redis" (or --redis). Built with Redis support only when meson
 * found hiredis (PS_HAVE_CLUSTER); without it, asking for Redis is an error
 * at start-up.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_CLUSTER_LINK_H
#define PS_CLUSTER_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ps_server;

/** Whether this binary can share presence through Redis. */
bool ps_cluster_supported(void);

/**
 * When the engine is redis: attach the server's registry to Redis, run the
 * handle on a thread of its own, and wait a little (at most the node
 * lease) for the first synchronisation, so that the first queries already
 * answer for the other nodes. Redis being down is not an error: the
 * handle keeps trying, and says so in the log. Does nothing for the memory
 * engine. Call after ps_server_init(), before any client connects.
 * 0, or -1 with @p err saying why (no Redis support built in, a value the
 * library refused, out of memory).
 */
int ps_cluster_link_start(struct ps_server *server, char *err,
                          size_t err_len);

/**
 * Leave the cluster (the handle writes what is pending and removes this
 * node from Redis, so the others drop its members at once) and stop its
 * thread. Call once every local client has left and before the registry
 * is freed; from a thread that is neither the handle's nor inside a
 * registry callback. Accepts a server without a link.
 */
void ps_cluster_link_stop(struct ps_server *server);

/** This node's id, or NULL with the memory engine. */
const char *ps_cluster_link_node_id(const struct ps_server *server);

/** The lease the handle uses, in ms (the config's, or the library's
 *  default); 0 with the memory engine. */
int64_t ps_cluster_link_lease_ms(const struct ps_server *server);

#endif
