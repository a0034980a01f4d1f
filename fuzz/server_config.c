/*
 * Fuzz target: the presence server's config loader fed arbitrary bytes as
 * its JSON config. A config that loads must be one the server accepts as
 * it is: valid namespace names, none twice, pong_timeout below
 * ping_interval, the connection limit within bounds, every string set; and
 * the server must build its registry from it, with each namespace's
 * presence option as written. A config that does not load must say why.
 * No crash, no leak, no undefined behaviour either way.
 * SPDX-License-Identifier: MIT
 */
#include "server_fuzz.h"

#include "config.h"
#include "mem.h"
#include "server.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "server_config: ");                                \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
            abort();                                                           \
        }                                                                      \
    } while (0)

static int no_write(void *transport, int opcode, const char *data, size_t len)
{
    (void)transport;
    (void)opcode;
    (void)data;
    return (int)len + 1;
}

static bool name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < 2 || n > 255) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) {
            return false;
        }
    }
    return true;
}

static void check_loaded(const ps_config *cfg)
{
    CHECK(cfg->api_key && cfg->token_hmac_secret_key && cfg->address,
          "a string left unset");
    CHECK(cfg->port >= 1 && cfg->port <= 65535, "port %d", cfg->port);
    CHECK(cfg->client_connection_limit <= PS_MAX_CONNECTIONS,
          "client_connection_limit %zu", cfg->client_connection_limit);
    CHECK(cfg->websocket_message_size_limit >= 1 && cfg->channel_max_length >= 1 &&
              cfg->client_queue_max_size >= 1,
          "a size limit of 0");
    CHECK(cfg->ping_interval_ms >= 0 && cfg->pong_timeout_ms >= 0,
          "a negative duration");
    CHECK(cfg->ping_interval_ms == 0 || cfg->pong_timeout_ms == 0 ||
              cfg->pong_timeout_ms < cfg->ping_interval_ms,
          "pong_timeout %lld >= ping_interval %lld",
          (long long)cfg->pong_timeout_ms, (long long)cfg->ping_interval_ms);
    for (size_t i = 0; i < cfg->namespace_count; i++) {
        const char *name = cfg->namespaces[i].name;
        CHECK(name != NULL && name_valid(name), "namespace %zu: bad name", i);
        for (size_t j = 0; j < i; j++) {
            CHECK(strcmp(cfg->namespaces[j].name, name) != 0,
                  "namespace %s twice", name);
        }
        CHECK(ps_config_namespace(cfg, name) == &cfg->namespaces[i].options,
              "namespace %s not found by name", name);
    }
    CHECK(ps_config_namespace(cfg, "") == &cfg->root, "root options");
}

static void check_server(const ps_config *cfg)
{
    ps_server server;
    char err[256];
    CHECK(ps_server_init(&server, cfg, no_write, err, sizeof err) == 0,
          "the server refuses a config that loaded: %s", err);
    for (size_t i = 0; i < cfg->namespace_count; i++) {
        presence_namespace_options o;
        presence_namespace_options_init(&o);
        CHECK(presence_namespace_get(server.registry, cfg->namespaces[i].name,
                                     &o) == PRESENCE_OK,
              "namespace %s not in the registry", cfg->namespaces[i].name);
        CHECK(o.presence == cfg->namespaces[i].options.presence,
              "namespace %s: presence differs", cfg->namespaces[i].name);
    }
    ps_server_fini(&server);
}

int ps_fuzz_server_config(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        ps_log_set_quiet(true);
        ps_mem_install_jansson();
        quiet = true;
    }
    ps_config cfg;
    char err[512] = "";
    if (ps_config_load_buffer(&cfg, (const char *)data, size, err, sizeof err) != 0) {
        CHECK(err[0] != '\0', "a config refused without a reason");
        return 0;
    }
    check_loaded(&cfg);
    check_server(&cfg);
    ps_config_free(&cfg);
    return 0;
}
