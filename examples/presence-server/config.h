/*
 * The server's configuration: Centrifugo v5's flat JSON layout.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_CONFIG_H
#define PS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The server can hold at most this many WebSocket connections when
 *  client_connection_limit is 0: CivetWeb serves each one on a thread of
 *  its own, so "unlimited" is not on offer. */
#define PS_MAX_CONNECTIONS_DEFAULT 1000

/** Channel options, with Centrifugo's names and meanings (all default false). */
typedef struct ps_channel_options {
    bool presence;
    bool join_leave;
    bool force_push_join_leave;
    bool allow_subscribe_for_client;
    bool allow_subscribe_for_anonymous;
    bool allow_presence_for_subscriber;
    bool allow_presence_for_client;
    bool allow_presence_for_anonymous;
} ps_channel_options;

typedef struct ps_namespace {
    char *name;
    ps_channel_options options;
} ps_namespace;

typedef struct ps_config {
    char *api_key;               /**< "" rejects every API call, as Centrifugo */
    bool api_insecure;           /**< skip the API key check */
    char *token_hmac_secret_key; /**< "" rejects every token */
    bool allow_anonymous_connect_without_token;
    char *address;               /**< listen address, default 127.0.0.1 */
    int port;                    /**< default 8000 */
    ps_channel_options root;     /**< channels without a namespace */
    ps_namespace *namespaces;
    size_t namespace_count;
    size_t client_channel_limit;        /**< per connection, default 128 */
    size_t client_connection_limit;     /**< in all; 0 = PS_MAX_CONNECTIONS_DEFAULT */
    size_t client_queue_max_size;       /**< bytes queued per connection */
    size_t websocket_message_size_limit; /**< bytes per incoming message */
    size_t channel_max_length;          /**< default 255 */
    int64_t ping_interval_ms;           /**< 0 disables server pings */
    int64_t pong_timeout_ms;            /**< 0 asks for no pongs */
    /** Set when the embedded default is in use: where its secrets live
     *  (NULL if they could not be persisted). */
    bool is_default;
    char *secrets_path;
} ps_config;

/** Read and validate a config file. On error @p err names the key. */
int ps_config_load_file(ps_config *cfg, const char *path, char *err,
                        size_t err_len);

/** ps_config_load_file() from memory: @p data is the JSON text. */
int ps_config_load_buffer(ps_config *cfg, const char *data, size_t len,
                          char *err, size_t err_len);

/**
 * The embedded default: namespace "public" with presence, join_leave,
 * allow_subscribe_for_client and allow_presence_for_subscriber, and an API
 * key and token secret that are generated once and kept in a state file
 * (see ps_config_secrets_path()), so that `presence-server --token USER`
 * run later signs tokens the running server accepts.
 */
int ps_config_load_default(ps_config *cfg, char *err, size_t err_len);

/** Where the default config keeps its secrets: $PRESENCE_SERVER_STATE_DIR,
 *  else $XDG_STATE_HOME/presence-server, else
 *  $HOME/.local/state/presence-server; the file is default-secrets.json.
 *  Returns a malloc'd path or NULL. */
char *ps_config_secrets_path(void);

void ps_config_free(ps_config *cfg);

/** The options of a namespace ("" for channels without one), or NULL. */
const ps_channel_options *ps_config_namespace(const ps_config *cfg,
                                              const char *name);

/** The options that govern @p channel, or NULL for an unknown namespace.
 *  The namespace is what precedes the first ':' (as libpresence splits). */
const ps_channel_options *ps_config_channel(const ps_config *cfg,
                                            const char *channel);

/** Centrifugo's presence permission (hasAccessToPresence): may a
 *  connection of @p user read presence, given whether it subscribed? */
bool ps_presence_allowed(const ps_channel_options *options, const char *user,
                         bool subscribed);

#endif
