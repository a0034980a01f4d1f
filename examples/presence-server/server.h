/*
 * The server object: the libpresence registry, the configuration, the
 * connection tables, and the threads around CivetWeb.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_SERVER_H
#define PS_SERVER_H

#include "config.h"
#include "heartbeat.h"
#include "hub.h"
#include "writer.h"

#include <presence.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct mg_context;
struct ps_conn;

/** The version reported in connect replies. */
#define PS_SERVER_VERSION "libpresence-server/" PRESENCE_VERSION_STRING

typedef struct ps_server {
    const ps_config *cfg;
    presence_registry *registry;
    presence_subscription events;
    ps_hub hub;
    ps_writer writer;
    ps_heartbeat heartbeat;
    size_t max_connections;

    /* Every open transport, and the connected ones by client id. */
    pthread_mutex_t conns_lock;
    struct ps_conn *transports;     /* list through conn->prev/next */
    struct ps_conn *clients;        /* uthash through conn->hh */
    size_t transport_count;
    size_t client_count;
    bool stopping;

    struct mg_context *mg;
} ps_server;

/** Create the registry, start the threads and listen. On error @p err says
 *  why (for example, the port is taken). */
int ps_server_start(ps_server **out, const ps_config *cfg, char *err,
                    size_t err_len);

/** Close every connection with 3001 "shutdown", stop, free. */
void ps_server_stop(ps_server *server);

/** Register a transport (CivetWeb ready handler). False when stopping. */
bool ps_server_add_transport(ps_server *server, struct ps_conn *conn);

/** Publish a connected client under its client id. False when the server
 *  is full (client_connection_limit). */
bool ps_server_add_client(ps_server *server, struct ps_conn *conn);

/** Forget a transport and its client id (CivetWeb close handler). */
void ps_server_remove(ps_server *server, struct ps_conn *conn);


/** References to every open transport, for the heartbeat. The caller
 *  unrefs each and frees the array. */
struct ps_conn **ps_server_transports(ps_server *server, size_t *count);

#endif
