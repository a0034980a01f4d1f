/*
 * The server's configuration: Centrifugo v5's flat JSON layout.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_CONFIG_H
#define PS_CONFIG_H

#include "admin_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The cluster's limits: its header is there whether libpresence-cluster
 * is built or not. */
#include <presence_cluster.h>

/** The most WebSocket connections one server holds, whatever
 *  client_connection_limit says. A sanity bound only: the event loop holds
 *  as many as the process has descriptors for. */
#define PS_MAX_CONNECTIONS 1000000

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
    /** An extension: changes each channel keeps for the presence_changes
     *  API method (libpresence's history_size); 0 = none. */
    size_t presence_history_size;
    /** "presence_leave_grace" (an extension: Centrifugo has none): how
     *  long a member whose connection dropped stays present, in grace,
     *  for the same user to reconnect without a leave and a join being
     *  pushed (libpresence's leave grace). 0 (default): leaves at once. */
    int64_t presence_leave_grace_ms;
    /** "presence_coalesce" (an extension): join/leave pushes to
     *  subscribers go out as one presence_diff push per channel per this
     *  window instead (libpresence's coalesced diffs): joins and leaves of
     *  the same member inside it cancel out. 0 (default): one push per
     *  join and leave, as Centrifugo. */
    int64_t presence_coalesce_ms;
    /** "presence_count_only_above" / "presence_count_only_below" (with
     *  presence_coalesce): a channel with more members than the first
     *  gets counts only in its diffs until it has fewer than the second.
     *  0 (default): always members. below <= above. */
    size_t presence_count_only_above;
    size_t presence_count_only_below;
} ps_channel_options;

typedef struct ps_namespace {
    char *name;
    ps_channel_options options;
} ps_namespace;

/** Where Redis is, parsed from a redis://[:password@]host[:port][/db] URL
 *  or a bare host[:port] (Centrifugo's redis_address). */
typedef struct ps_redis_address {
    char *host;      /**< without IPv6 brackets */
    int port;        /**< default 6379 */
    char *password;  /**< NULL when the address has none */
    int db;          /**< default 0 */
    bool has_db;     /**< the address named a database */
} ps_redis_address;

/** Which engine keeps presence: this process alone, or every node on one
 *  Redis (libpresence-cluster). Centrifugo's "engine" option. */
typedef enum ps_engine {
    PS_ENGINE_MEMORY = 0,
    PS_ENGINE_REDIS = 1,
} ps_engine;

/** The key prefix when redis_prefix is not set (libpresence-cluster's
 *  default too). Nodes share presence when they use the same one. */
#define PS_REDIS_PREFIX_DEFAULT "presence"

/** The longest redis_prefix (presence_cluster_config::prefix's limit). */
#define PS_REDIS_PREFIX_MAX PRESENCE_CLUSTER_PREFIX_MAX

/** The longest node name (presence_cluster_config::node_id's limit). */
#define PS_NODE_NAME_MAX PRESENCE_CLUSTER_NODE_ID_MAX

/** The shortest node lease (presence_cluster_config::lease_ms's floor). */
#define PS_NODE_LEASE_MIN_MS PRESENCE_CLUSTER_LEASE_MIN_MS

/** redis_batch_delay: its default and its longest
 *  (presence_cluster_config::batch_delay_ms's range). */
#define PS_REDIS_BATCH_DELAY_DEFAULT_MS 2
#define PS_REDIS_BATCH_DELAY_MAX_MS 1000

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
    size_t client_connection_limit;     /**< in all; 0 = what the open-file
                                             limit allows, at most
                                             PS_MAX_CONNECTIONS */
    size_t client_user_connection_limit; /**< per user on this server; 0 =
                                              none; anonymous ones uncounted */
    size_t client_queue_max_size;       /**< bytes queued per connection */
    size_t websocket_message_size_limit; /**< bytes per incoming message */
    size_t channel_max_length;          /**< default 255 */
    int64_t ping_interval_ms;           /**< 0 disables server pings */
    int64_t pong_timeout_ms;            /**< 0 asks for no pongs */
    /* Several nodes (Centrifugo v5's flat keys, plus node_lease). The
     * strings are as given; ps_config_resolve_cluster() checks them and
     * fills redis. */
    ps_engine engine;            /**< "engine", default memory */
    char *redis_address;         /**< NULL: "127.0.0.1:6379" */
    char *redis_password;        /**< used when the address has none */
    char *redis_user;            /**< only "" or "default" (no ACL users) */
    int redis_db;                /**< used when the address has none */
    char *redis_prefix;          /**< NULL: PS_REDIS_PREFIX_DEFAULT */
    char *name;                  /**< this node's id; NULL: a random one */
    int64_t node_lease_ms;       /**< 0: libpresence-cluster's default */
    int64_t redis_batch_delay_ms; /**< how long a change may wait to be
                                   *  written with the next ones */
    bool redis_on_loop;          /**< the cluster handle on the event loop
                                  *  instead of a thread of its own */
    ps_redis_address redis;      /**< resolved, when engine is redis */
    /** Set when the embedded default is in use: where its secrets live
     *  (NULL if they could not be persisted). */
    bool is_default;
    char *secrets_path;
    ps_admin_config admin;       /**< the admin page (admin_config.h) */
    /** "state_file" (an extension): where the registry is saved on
     *  SIGTERM and loaded from at start (warm restart); NULL: neither. */
    char *state_file;
} ps_config;

/** Read and validate a config file. On error @p err names the key. */
/** A config key's string value, copied into *out (the old one freed):
 *  0, or -1 with @p err when it is not a string or memory runs out. */
typedef struct json_t json_t;
int ps_config_string(json_t *value, const char *key, char **out, char *err,
                     size_t err_len);

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

/**
 * Check the cluster keys and resolve the Redis address into cfg->redis
 * (again, after the command line changed them): the address's own
 * password and database win over redis_password and redis_db. Does
 * nothing but check when the engine is memory. 0, or -1 with @p err
 * naming the key.
 */
int ps_config_resolve_cluster(ps_config *cfg, char *err, size_t err_len);

/**
 * Parse a Redis address: redis://[[user]:password@]host[:port][/db] (user
 * empty or "default", password percent-decoded, host a name, an IPv4
 * address or a bracketed IPv6 one) or host[:port]. rediss:// (TLS),
 * unix:// and anything after the database are refused. 0, or -1 with
 * @p err saying what is wrong; on error @p out is left empty.
 */
int ps_redis_address_parse(const char *text, ps_redis_address *out,
                           char *err, size_t err_len);

void ps_redis_address_free(ps_redis_address *addr);

/** "host:port/db" (IPv6 in brackets), without the password: for logs. */
void ps_redis_address_format(const ps_redis_address *addr, char *buf,
                             size_t len);

/** A Go-style duration ("3s", "500ms", "1m") or a bare number of seconds.
 *  0 or -1. */
int ps_parse_duration_ms(const char *text, int64_t *out_ms);

/** The options of a namespace ("" for channels without one), or NULL. */
const ps_channel_options *ps_config_namespace(const ps_config *cfg,
                                              const char *name);

/** The namespace separator, the registry's too (server.c sets it). */
#define PS_NAMESPACE_SEPARATOR ':'

/** The options that govern @p channel, or NULL for an unknown namespace.
 *  Its namespace is what precedes the first PS_NAMESPACE_SEPARATOR, as
 *  libpresence splits it (presence_channel_split). */
const ps_channel_options *ps_config_channel(const ps_config *cfg,
                                            const char *channel);

/** Centrifugo's presence permission (hasAccessToPresence): may a
 *  connection of @p user read presence, given whether it subscribed? */
bool ps_presence_allowed(const ps_channel_options *options, const char *user,
                         bool subscribed);

#endif
