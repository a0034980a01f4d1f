/*
 * presence-server: Centrifugo's presence API and client protocol on
 * libpresence. The command line, the start-up banner and signals.
 * SPDX-License-Identifier: MIT
 */
#include "cluster_link.h"
#include "config.h"
#include "mem.h"
#include "server.h"
#include "token.h"
#include "util.h"

#include <presence.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The default lifetime of tokens from --token: 7 days, like
 * `centrifugo gentoken`. */
#define TOKEN_TTL_DEFAULT (7 * 24 * 3600)

typedef struct options {
    const char *config;
    const char *address;
    int port;
    const char *token_user; /* --token: print a token and exit */
    const char *channel;
    const char *info;
    long ttl;
    const char *redis;        /* --redis URL: engine redis at URL */
    const char *redis_prefix;
    const char *name;
    int64_t node_lease_ms;    /* 0: not given */
} options;

static void usage(FILE *out)
{
    fputs("Usage: presence-server [--config FILE] [--address ADDR] [--port PORT]\n"
          "                       [--redis URL [--redis-prefix PREFIX] [--name NAME]\n"
          "                        [--node-lease DURATION]]\n"
          "       presence-server --token USER [--config FILE] [--ttl SECONDS]\n"
          "                       [--info JSON] [--channel CHANNEL]\n"
          "\n"
          "Serves Centrifugo's presence HTTP API (POST /api, /api/presence,\n"
          "/api/presence_stats) and its client protocol over WebSocket\n"
          "(/connection/websocket), with presence kept by libpresence.\n"
          "\n"
          "  --config FILE     Centrifugo v5 JSON config (flat layout). Without it\n"
          "                    an embedded default is used: namespace \"public\"\n"
          "                    with presence and join/leave, and an API key and\n"
          "                    token secret generated once and kept in\n"
          "                    $PRESENCE_SERVER_STATE_DIR, $XDG_STATE_HOME/presence-server\n"
          "                    or ~/.local/state/presence-server.\n"
          "  --address ADDR    listen address (default 127.0.0.1, or the config's)\n"
          "  --port PORT       listen port (default 8000, or the config's)\n"
          "  --redis URL       share presence with the other servers on this Redis:\n"
          "                    redis://[:PASSWORD@]HOST[:PORT][/DB] or HOST[:PORT]\n"
          "                    (the config's \"engine\": \"redis\" and redis_address)\n"
          "  --redis-prefix P  key prefix; servers that share presence use the same\n"
          "                    one (default \"presence\", the config's redis_prefix)\n"
          "  --name NAME       this node's id, unique among them (default random,\n"
          "                    the config's name)\n"
          "  --node-lease DUR  how soon the others drop this node's members when\n"
          "                    it dies, e.g. 3s or 500ms (default 3s, the config's\n"
          "                    node_lease)\n"
          "  --token USER      print a connection token (HS256 JWT, sub=USER)\n"
          "                    signed with the config's token_hmac_secret_key\n"
          "  --ttl SECONDS     token lifetime (default 604800; 0 = no expiry)\n"
          "  --info JSON       the token's info claim (becomes conn_info)\n"
          "  --channel NAME    make a subscription token for this channel instead\n"
          "                    (its info becomes chan_info)\n"
          "  --help            this text\n"
          "  --version         print the versions\n",
          out);
}

/* "--name value" or "--name=value". */
static const char *option_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) {
        return NULL;
    }
    if (argv[*i][n] == '=') {
        return argv[*i] + n + 1;
    }
    if (argv[*i][n] == '\0' && *i + 1 < argc) {
        return argv[++*i];
    }
    return NULL;
}

static int parse_number(const char *text, long min, long max, long *out)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* 0 to go on, 1 to exit successfully (--help), 2 on a usage error. */
static int parse_args(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->ttl = TOKEN_TTL_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *v;
        long n;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 1;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("presence-server %s (libpresence %s)\n",
                   PRESENCE_VERSION_STRING, presence_version());
            printf("Redis support (--redis, \"engine\": \"redis\"): %s\n",
                   ps_cluster_supported()
                       ? "built in (libpresence-cluster)"
                       : "not built in (hiredis was not found at build time)");
            return 1;
        } else if ((v = option_value(argc, argv, &i, "--config")) != NULL) {
            o->config = v;
        } else if ((v = option_value(argc, argv, &i, "--address")) != NULL) {
            o->address = v;
        } else if ((v = option_value(argc, argv, &i, "--port")) != NULL) {
            if (parse_number(v, 1, 65535, &n) != 0) {
                fprintf(stderr, "presence-server: bad --port %s\n", v);
                return 2;
            }
            o->port = (int)n;
        } else if ((v = option_value(argc, argv, &i, "--token")) != NULL) {
            o->token_user = v;
        } else if ((v = option_value(argc, argv, &i, "--channel")) != NULL) {
            o->channel = v;
        } else if ((v = option_value(argc, argv, &i, "--info")) != NULL) {
            o->info = v;
        } else if ((v = option_value(argc, argv, &i, "--ttl")) != NULL) {
            if (parse_number(v, 0, 100L * 365 * 24 * 3600, &n) != 0) {
                fprintf(stderr, "presence-server: bad --ttl %s\n", v);
                return 2;
            }
            o->ttl = n;
        } else if ((v = option_value(argc, argv, &i, "--redis-prefix")) != NULL) {
            o->redis_prefix = v;
        } else if ((v = option_value(argc, argv, &i, "--redis")) != NULL) {
            o->redis = v;
        } else if ((v = option_value(argc, argv, &i, "--name")) != NULL) {
            o->name = v;
        } else if ((v = option_value(argc, argv, &i, "--node-lease")) != NULL) {
            if (ps_parse_duration_ms(v, &o->node_lease_ms) != 0 ||
                o->node_lease_ms < PS_NODE_LEASE_MIN_MS) {
                fprintf(stderr,
                        "presence-server: bad --node-lease %s (a duration of "
                        "at least %dms, such as 3s or 500ms)\n",
                        v, PS_NODE_LEASE_MIN_MS);
                return 2;
            }
        } else {
            fprintf(stderr, "presence-server: unknown argument %s\n\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

/* Replace a config string with a command-line value. */
static int override_string(char **field, const char *value)
{
    char *copy = ps_strdup(value);
    if (copy == NULL) {
        return -1;
    }
    ps_free(*field);
    *field = copy;
    return 0;
}

/* --redis and friends override the config's cluster keys, which are then
 * checked again (the message names the key the flag stands for). */
static int override_cluster(const options *o, ps_config *cfg)
{
    if (o->redis == NULL && o->redis_prefix == NULL && o->name == NULL &&
        o->node_lease_ms == 0) {
        return 0;
    }
    if (o->redis != NULL) {
        cfg->engine = PS_ENGINE_REDIS;
        if (override_string(&cfg->redis_address, o->redis) != 0) {
            fprintf(stderr, "presence-server: out of memory\n");
            return -1;
        }
    }
    if ((o->redis_prefix != NULL &&
         override_string(&cfg->redis_prefix, o->redis_prefix) != 0) ||
        (o->name != NULL && override_string(&cfg->name, o->name) != 0)) {
        fprintf(stderr, "presence-server: out of memory\n");
        return -1;
    }
    if (o->node_lease_ms != 0) {
        cfg->node_lease_ms = o->node_lease_ms;
    }
    char err[512];
    if (ps_config_resolve_cluster(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "presence-server: %s (given on the command line)\n",
                err);
        return -1;
    }
    return 0;
}

static int load_config(const options *o, ps_config *cfg)
{
    char err[512];
    int rc = o->config ? ps_config_load_file(cfg, o->config, err, sizeof err)
                       : ps_config_load_default(cfg, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "presence-server: config: %s\n", err);
        return -1;
    }
    if (o->address != NULL) {
        ps_free(cfg->address);
        cfg->address = ps_strdup(o->address);
    }
    if (o->port != 0) {
        cfg->port = o->port;
    }
    if (cfg->address == NULL || override_cluster(o, cfg) != 0) {
        ps_config_free(cfg);
        return -1;
    }
    return 0;
}

static int print_token(const options *o, const ps_config *cfg)
{
    char err[256];
    int64_t exp = o->ttl > 0 ? ps_unix_time() + o->ttl : 0;
    char *token = ps_token_mint(cfg->token_hmac_secret_key, o->token_user, exp,
                                o->info, o->channel, err, sizeof err);
    if (token == NULL) {
        fprintf(stderr, "presence-server: %s\n", err);
        return 1;
    }
    printf("%s\n", token);
    ps_free(token);
    return 0;
}

/* Which engine, and for Redis the node and where (never the password). */
static void print_engine(const ps_config *cfg, const ps_server *server)
{
    if (cfg->engine != PS_ENGINE_REDIS) {
        printf("  Engine:    memory, this process only (Redis support %s)\n",
               ps_cluster_supported() ? "built in: --redis URL"
                                      : "not built in");
        return;
    }
    char where[300];
    ps_redis_address_format(&cfg->redis, where, sizeof where);
    printf("  Engine:    redis %s, key prefix \"%s\"\n", where,
           cfg->redis_prefix ? cfg->redis_prefix : PS_REDIS_PREFIX_DEFAULT);
    printf("  Node:      %s (lease %lld ms)\n", ps_cluster_link_node_id(server),
           (long long)ps_cluster_link_lease_ms(server));
}

/* What a user needs to try the server at once: the URLs, a curl line that
 * works as pasted, and how to get a client token. */
static void print_banner(const ps_config *cfg, const ps_server *server,
                         const char *argv0, const char *config_path)
{
    bool loopback = strcmp(cfg->address, "127.0.0.1") == 0 ||
                    strcmp(cfg->address, "0.0.0.0") == 0;
    char host[300];
    snprintf(host, sizeof host, strchr(cfg->address, ':') ? "[%s]:%d" : "%s:%d",
             loopback ? "localhost" : cfg->address, cfg->port);
    printf("presence-server %s (libpresence %s) listening on %s:%d\n",
           PRESENCE_VERSION_STRING, presence_version(), cfg->address, cfg->port);
    printf("  WebSocket: ws://%s/connection/websocket\n", host);
    printf("  HTTP API:  http://%s/api\n", host);
    if (cfg->admin.enabled) {
        printf("  Admin:     http://%s/admin/ (password: %s)\n", host,
               cfg->is_default ? cfg->admin.password
                               : "admin_password in the config");
    }
    print_engine(cfg, server);
    if (cfg->is_default) {
        printf("Embedded default config: namespace \"public\" with presence, "
               "join_leave, allow_subscribe_for_client and "
               "allow_presence_for_subscriber.\n");
        if (cfg->secrets_path != NULL) {
            printf("API key and token secret: %s (delete it for new ones)\n",
                   cfg->secrets_path);
        }
    }
    if (*cfg->api_key != '\0') {
        printf("\nTry the HTTP API:\n\n"
               "curl --header \"Content-Type: application/json\" \\\n"
               "  --header \"Authorization: apikey %s\" \\\n"
               "  --request POST \\\n"
               "  --data '{\"method\": \"presence\", \"params\": {\"channel\": "
               "\"public:test\"}}' \\\n"
               "  http://%s/api\n\n",
               cfg->api_key, host);
    }
    printf("A client token for user USER: %s --token USER%s%s\n", argv0,
           config_path ? " --config " : "", config_path ? config_path : "");
    fflush(stdout);
}

/* How long a shutdown waits for connections to close: SIGTERM stops the
 * server within a second, as process managers expect. */
#define STOP_WAIT_MS 800

/* SIGINT and SIGTERM are blocked in every thread and taken here with
 * sigwait(), so that shutdown runs as ordinary code, not in a handler. */
static int run(const ps_config *cfg, sigset_t *signals, const char *argv0,
               const char *config_path)
{
    char err[512];
    ps_server *server = NULL;
    if (ps_server_start(&server, cfg, err, sizeof err) != 0) {
        fprintf(stderr, "presence-server: %s\n", err);
        return 1;
    }
    print_banner(cfg, server, argv0, config_path);
    int sig = 0;
    sigwait(signals, &sig);
    ps_log("signal %d: shutting down", sig);
    (void)ps_server_save_state(server);
    if (!ps_server_stop(server, STOP_WAIT_MS)) {
        /* Some peer holds its connection open past the close: stop
         * anyway, as promised. Its memberships go with the process (on
         * the other servers, within the node lease, as for a crash). */
        ps_log("warning: connections still open %d ms after the shutdown "
               "closes; exiting without them", STOP_WAIT_MS);
        fflush(stdout);
        _exit(0);
    }
    return 0;
}

int main(int argc, char **argv)
{
    ps_mem_install_jansson();
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    ps_config cfg;
    if (load_config(&o, &cfg) != 0) {
        return 1;
    }
    if (o.token_user != NULL) {
        rc = print_token(&o, &cfg);
        ps_config_free(&cfg);
        return rc;
    }
    if (cfg.engine == PS_ENGINE_REDIS && !ps_cluster_supported()) {
        fprintf(stderr,
                "presence-server: Redis (--redis, \"engine\": \"redis\") is "
                "not supported by this build: hiredis was not found when it "
                "was built (install libhiredis-dev and rebuild)\n");
        ps_config_free(&cfg);
        return 1;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = run(&cfg, &signals, argv[0], o.config);
    ps_config_free(&cfg);
    return rc;
}
