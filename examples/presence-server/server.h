/*
 * The server object: the libpresence registry, the configuration, the
 * connection tables and the writer's ready list.
 *
 * server.c holds what needs no network: ps_server_init() gives a server
 * that the tests and fuzzers drive without sockets (testing.h).
 * listener.c puts the event loop around it (ps_server_start(), net.h).
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_SERVER_H
#define PS_SERVER_H

#include "config.h"
#include "hub.h"
#include "metrics.h"
#include "writer.h"

#include <presence.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct ps_conn;
struct ps_net;
struct presence_cluster;

/** The version reported in connect replies. */
#define PS_SERVER_VERSION "libpresence-server/" PRESENCE_VERSION_STRING

/** Writes one WebSocket frame to a transport; > 0 on success. */
typedef int (*ps_frame_writer)(void *transport, int opcode, const char *data,
                               size_t len);

typedef struct ps_server {
    const ps_config *cfg;
    presence_registry *registry;
    presence_subscription events;
    /* Some namespace has presence_coalesce: its pushes come as diffs,
     * which the tick flushes (ps_server_expire_due). */
    bool coalescing;
    ps_hub hub;
    ps_writer writer;
    size_t max_connections;
    ps_frame_writer write_frame;
    /* The transport's ps_ws_mark_ping(), or NULL: see conn.c. */
    void (*mark_ping)(void *transport);

    /* Every open transport, and the connected ones by client id. */
    pthread_mutex_t conns_lock;
    struct ps_conn *transports;     /* list through conn->prev/next */
    struct ps_conn *clients;        /* uthash through conn->hh */
    size_t transport_count;
    size_t client_count;
    struct ps_user_count *user_counts; /* uthash: connected clients per
                                          user, with a per-user limit */
    bool stopping;

    ps_metrics metrics;

    /* The event loop, the listener and the routes (net.h). */
    struct ps_net *net;
    /* The loop's timing wheel (timers.h), which the heartbeats are armed
     * on; NULL without a loop (the tests, which may set their own). Loop
     * thread only. */
    struct ps_timers *timers;
    /* With "engine": "redis" (cluster_link.c): the registry's link to the
     * other nodes, freed before the registry. */
    struct presence_cluster *cluster;
    int64_t cluster_lease_ms;
    /* With "admin": true (admin.c): the page's streams and sampler. */
    struct ps_admin *admin;
} ps_server;

/** The registry (on the ps_mem allocator), the hub, the tables and a
 *  writer without a wake hook. No thread is started and nothing listens.
 *  On error @p err says why. 0 or -1. */
int ps_server_init(ps_server *server, const ps_config *cfg,
                   ps_frame_writer write_frame, char *err, size_t err_len);

/** End the leave graces (and TTLs) that are due, and push the coalesced
 *  diffs that are due (presence_coalesce): the loop calls it every other
 *  tick (net.h), so a grace ends, and a diff goes out, at most two ticks
 *  late. */
void ps_server_expire_due(ps_server *server);

/** Save the registry to the config's state_file (nothing without one),
 *  for the next start to load: before the connections close, so that
 *  their memberships are in it. 0, or -1 (logged). */
int ps_server_save_state(ps_server *server);

/** Undo ps_server_init(). Every transport must have closed. */
void ps_server_fini(ps_server *server);

/** Create the server, start its threads and listen (listener.c). On error
 *  @p err says why (for example, the port is taken). */
int ps_server_start(ps_server **out, const ps_config *cfg, char *err,
                    size_t err_len);

/** Close every connection with 3001 "shutdown", stop, free (listener.c).
 *  Peers that answer the close go at once; the others are closed after a
 *  short grace, every client leaving its channels either way. Waits at
 *  most @p wait_ms for the loop thread; false if it did not end, in which
 *  case nothing is freed and the caller should exit the process. */
bool ps_server_stop(ps_server *server, long wait_ms);

/** Refuse new transports, and close every open one now with @p code. */
void ps_server_close_all(ps_server *server, int code, const char *reason);

/** Register a transport (a WebSocket after its upgrade). False when
 *  stopping. */
bool ps_server_add_transport(ps_server *server, struct ps_conn *conn);

typedef enum ps_add_result {
    PS_ADD_OK = 0,
    PS_ADD_FULL,       /* client_connection_limit, or stopping */
    PS_ADD_USER_FULL,  /* client_user_connection_limit for its user */
    PS_ADD_NOMEM,
} ps_add_result;

/** How many connections this process can hold when client_connection_limit
 *  is 0: its open-file limit less what the server needs besides, at most
 *  PS_MAX_CONNECTIONS. */
size_t ps_server_connection_capacity(void);

/** Publish a connected client under its client id, counting it against
 *  both connection limits (its user's when it has one). */
ps_add_result ps_server_add_client(ps_server *server, struct ps_conn *conn);

/** Forget a transport and its client id (its socket closed), and stop its
 *  heartbeat's timer (on the thread that owns server->timers). */
void ps_server_remove(ps_server *server, struct ps_conn *conn);


/** References to every open transport, for the metrics. The caller
 *  unrefs each and frees the array (ps_free). */
struct ps_conn **ps_server_transports(ps_server *server, size_t *count);

#endif
