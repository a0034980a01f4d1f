/*
 * What the workload says to a server, and what it hears back, independent
 * of the wire: the Centrifugo client protocol (JSON over WebSocket,
 * proto_centrifugo.c) and Engine.IO v4 / Socket.IO (proto_socketio.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef LG_PROTO_H
#define LG_PROTO_H

#include "buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define LG_CLIENT_MAX 48 /* a client id with its NUL */

typedef enum lg_msg_kind {
    LG_MSG_OPEN,        /**< transport open: send the hello now */
    LG_MSG_CONNECTED,   /**< the hello was accepted: client is the id */
    LG_MSG_REPLY,       /**< the answer to request id */
    LG_MSG_PUSH,        /**< a join or leave in channel about client */
    LG_MSG_PING,        /**< the server's ping: answer with pong() */
    LG_MSG_DISCONNECT,  /**< the server ends the session */
    LG_MSG_BAD,         /**< nothing this generator understands */
} lg_msg_kind;

/** One message; strings and the presence map are borrowed for the
 *  duration of the callback. */
typedef struct lg_msg {
    lg_msg_kind kind;
    uint32_t id;
    bool ok;                  /**< REPLY: no error */
    bool join;                /**< PUSH: join, else leave */
    const char *channel;      /**< PUSH */
    const char *client;       /**< CONNECTED, PUSH */
    json_t *presence;         /**< REPLY to presence: client id -> info */
    long long num_clients;    /**< REPLY to presence_stats, -1 otherwise */
    long long num_users;
    bool body_skipped;        /**< REPLY to presence not parsed: see lg_body_cb */
} lg_msg;

typedef void (*lg_msg_cb)(void *ctx, const lg_msg *msg);
/** Whether the reply to request @p id is read in full; a presence reply
 *  wanted only for its latency is not (a lobby's is ~100 KB of JSON). */
typedef bool (*lg_body_cb)(void *ctx, uint32_t id);

typedef struct lg_proto {
    const char *name;
    const char *path;         /**< the WebSocket URL path */
    bool hello_after_open;    /**< wait for LG_MSG_OPEN before the hello */
    /** Several commands may share a text frame, newline-joined, as
     *  centrifuge-js sends the subscriptions it has at once. */
    bool batches;
    /** The subscribes go in the hello's frame, before its answer: as
     *  centrifuge-js 5 sends the connect command and the subscribe
     *  commands of the subscriptions it already has when the socket
     *  opens. (socket.io-client holds its emits until connected.) */
    bool subscribe_with_hello;
    /** The first message: authenticate as @p user (@p token if needed). */
    bool (*hello)(lg_buf *out, const char *user, const char *token);
    bool (*subscribe)(lg_buf *out, uint32_t id, const char *channel, bool join_leave);
    bool (*presence)(lg_buf *out, uint32_t id, const char *channel);
    bool (*presence_stats)(lg_buf *out, uint32_t id, const char *channel);
    bool (*pong)(lg_buf *out);
    /** Parse one text message (a frame's payload) into @p cb calls. */
    void (*parse)(const char *text, size_t len, lg_msg_cb cb, lg_body_cb want,
                  void *ctx);
} lg_proto;

extern const lg_proto lg_proto_centrifugo;
extern const lg_proto lg_proto_socketio;

#endif
