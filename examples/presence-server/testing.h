/*
 * The presence server without sockets, for the tests and the fuzzers (it
 * is not part of the server program). A ps_test_server is a server made by
 * ps_server_init() from a JSON config, with no thread and no listener; a
 * ps_test_peer is one fake WebSocket transport whose frames are fed to the
 * session layer (session.c) and whose outgoing frames are collected. Every
 * call drains the writer pool, so what the server would have written is in
 * the peers when it returns.
 *
 * Single-threaded; memory of the harness itself comes from libc, not from
 * the ps_mem hooks, so that a test counting allocations counts only the
 * server's.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_TESTING_H
#define PS_TESTING_H

#include "config.h"
#include "server.h"
#include "util.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct ps_test_frame {
    int opcode;
    size_t len;
    char *data; /* NUL-terminated copy */
} ps_test_frame;

typedef struct ps_test_peer {
    struct ps_conn *conn;  /* NULL once the transport is gone */
    /* Frames the server wrote to this peer, in order. */
    ps_test_frame *frames;
    size_t count, cap;
    int close_code;        /* of the first close frame written, else 0 */
    char close_reason[128];
    bool closed;           /* the transport is gone */
    bool was_connected;    /* it had a client id ... */
    char client_id[PS_UUID_SIZE]; /* ... this one */
} ps_test_peer;

typedef struct ps_test_server {
    ps_config cfg;
    ps_server server;
} ps_test_server;

/** Load @p config_json and make the server. 0, or -1 with @p err. */
int ps_test_server_init(ps_test_server *t, const char *config_json, char *err,
                        size_t err_len);

/** Tear it down; every peer must have been closed or dropped. */
void ps_test_server_fini(ps_test_server *t);

/** A new transport. NULL if memory runs out (the ps_mem hooks may fail). */
ps_test_peer *ps_test_peer_open(ps_test_server *t);

/** Feed one frame. If the server drops the transport (it returned false),
 *  the transport is closed, as ws_conn.c would close it. Returns whether the
 *  transport is still open. */
bool ps_test_peer_frame(ps_test_server *t, ps_test_peer *peer, int opcode,
                        bool fin, const void *data, size_t len);

/** A text frame with @p text (one or more newline-separated commands). */
bool ps_test_peer_send(ps_test_server *t, ps_test_peer *peer, const char *text);

/** The peer answers a close frame of the server, as clients do: its echo
 *  ends the transport. Does nothing if the server sent no close. */
void ps_test_peer_answer_close(ps_test_server *t, ps_test_peer *peer);

/** The socket dies without a close frame (or the peer echoes a close):
 *  the transport is gone. Nothing if it is gone already. */
void ps_test_peer_drop(ps_test_server *t, ps_test_peer *peer);

/** Free a peer (dropping its transport first). */
void ps_test_peer_free(ps_test_server *t, ps_test_peer *peer);

/** Forget the frames collected so far. */
void ps_test_peer_clear(ps_test_peer *peer);

/**
 * Check that hub and registry agree: for every open, connected peer, the
 * channels it is subscribed to in namespaces that keep presence are
 * exactly its memberships in the registry; a closed peer has none; the
 * registry holds no other membership (no ghost) and the hub no other
 * subscription. 0, or -1 with the first difference in @p why.
 * Makes queries, which allocate: do not inject failures around it.
 */
int ps_test_check(ps_test_server *t, ps_test_peer *const *peers, size_t count,
                  char *why, size_t why_len);

#endif
