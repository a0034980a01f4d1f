/*
 * Configuration: Centrifugo v5's flat JSON layout, validated strictly (a bad
 * value stops the server with the key's name) and leniently about the keys
 * this server does not know (a warning, since real Centrifugo configs carry
 * many options that have nothing to do with presence).
 * SPDX-License-Identifier: MIT
 */
#include "config.h"

#include "mem.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <presence.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The embedded default, in the very format a user would write. */
static const char default_config_json[] =
    "{\"namespaces\":[{\"name\":\"public\",\"presence\":true,"
    "\"join_leave\":true,\"allow_subscribe_for_client\":true,"
    "\"allow_presence_for_subscriber\":true}]}";

/* A flag of ps_channel_options, by its Centrifugo key. */
typedef struct option_field {
    const char *key;
    size_t offset;
} option_field;

#define FIELD(name) {#name, offsetof(ps_channel_options, name)}
static const option_field channel_fields[] = {
    FIELD(presence),
    FIELD(join_leave),
    FIELD(force_push_join_leave),
    FIELD(allow_subscribe_for_client),
    FIELD(allow_subscribe_for_anonymous),
    FIELD(allow_presence_for_subscriber),
    FIELD(allow_presence_for_client),
    FIELD(allow_presence_for_anonymous),
};
#undef FIELD

static void config_defaults(ps_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->port = 8000;
    cfg->client_channel_limit = 128;
    cfg->client_queue_max_size = 1048576;
    cfg->websocket_message_size_limit = 65536;
    cfg->channel_max_length = 255;
    cfg->ping_interval_ms = 25000;
    cfg->pong_timeout_ms = 8000;
    cfg->redis_batch_delay_ms = PS_REDIS_BATCH_DELAY_DEFAULT_MS;
}

static int get_duration(json_t *value, const char *key, int64_t *out_ms,
                        char *err, size_t err_len);

/* Sets *flag when key names a channel option. -1 on a non-boolean value,
 * or a presence_leave_grace that is not a duration. */
static int channel_option(ps_channel_options *opts, const char *path,
                          const char *key, json_t *value, bool *matched,
                          char *err, size_t err_len)
{
    *matched = strcmp(key, "presence_history_size") == 0;
    if (*matched) {
        if (!json_is_integer(value) || json_integer_value(value) < 0 ||
            json_integer_value(value) > PRESENCE_HISTORY_SIZE_MAX) {
            return ps_fail(err, err_len,
                           "key \"%s%s\": expected an integer 0-%u", path, key,
                           PRESENCE_HISTORY_SIZE_MAX);
        }
        opts->presence_history_size = (size_t)json_integer_value(value);
        return 0;
    }
    *matched = strcmp(key, "presence_leave_grace") == 0;
    if (*matched) {
        char where[96];
        snprintf(where, sizeof where, "%s%s", path, key);
        return get_duration(value, where, &opts->presence_leave_grace_ms, err,
                            err_len);
    }
    *matched = strcmp(key, "presence_coalesce") == 0;
    if (*matched) {
        char where[96];
        snprintf(where, sizeof where, "%s%s", path, key);
        return get_duration(value, where, &opts->presence_coalesce_ms, err,
                            err_len);
    }
    size_t *count = strcmp(key, "presence_count_only_above") == 0
                        ? &opts->presence_count_only_above
                    : strcmp(key, "presence_count_only_below") == 0
                        ? &opts->presence_count_only_below
                        : NULL;
    *matched = count != NULL;
    if (*matched) {
        if (!json_is_integer(value) || json_integer_value(value) < 0) {
            return ps_fail(err, err_len,
                           "key \"%s%s\": expected an integer 0 or more",
                           path, key);
        }
        *count = (size_t)json_integer_value(value);
        return 0;
    }
    for (size_t i = 0; i < sizeof channel_fields / sizeof channel_fields[0];
         i++) {
        if (strcmp(key, channel_fields[i].key) != 0) {
            continue;
        }
        *matched = true;
        if (!json_is_boolean(value)) {
            return ps_fail(err, err_len, "key \"%s%s\": expected true or false",
                        path, key);
        }
        bool *flag = (bool *)((char *)opts + channel_fields[i].offset);
        *flag = json_is_true(value);
        return 0;
    }
    return 0;
}

int ps_config_string(json_t *value, const char *key, char **out, char *err,
                     size_t err_len)
{
    if (!json_is_string(value)) {
        return ps_fail(err, err_len, "key \"%s\": expected a string", key);
    }
    char *copy = ps_strdup(json_string_value(value));
    if (copy == NULL) {
        return ps_fail(err, err_len, "out of memory");
    }
    ps_free(*out);
    *out = copy;
    return 0;
}

static int get_bool(json_t *value, const char *key, bool *out, char *err,
                    size_t err_len)
{
    if (!json_is_boolean(value)) {
        return ps_fail(err, err_len, "key \"%s\": expected true or false", key);
    }
    *out = json_is_true(value);
    return 0;
}

static int get_size(json_t *value, const char *key, size_t min, size_t *out,
                    char *err, size_t err_len)
{
    if (!json_is_integer(value) || json_integer_value(value) < (json_int_t)min) {
        return ps_fail(err, err_len, "key \"%s\": expected an integer >= %zu", key,
                    min);
    }
    *out = (size_t)json_integer_value(value);
    return 0;
}

/* Centrifugo accepts the port as a number or a string of digits. */
static int get_port(json_t *value, int *out, char *err, size_t err_len)
{
    long port = -1;
    if (json_is_integer(value)) {
        port = (long)json_integer_value(value);
    } else if (json_is_string(value)) {
        char *end = NULL;
        const char *s = json_string_value(value);
        port = strtol(s, &end, 10);
        if (*s == '\0' || *end != '\0') {
            port = -1;
        }
    }
    if (port < 1 || port > 65535) {
        return ps_fail(err, err_len, "key \"port\": expected a port number 1-65535");
    }
    *out = (int)port;
    return 0;
}

/* "25s", "500ms", "1m": a number and a unit, below a day. */
static int duration_with_unit(const char *s, int64_t *out_ms)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (end == s || errno != 0 || n < 0 || n >= 86400000 ||
        !(*s >= '0' && *s <= '9')) {
        return -1;
    }
    if (strcmp(end, "ms") == 0) {
        *out_ms = n;
    } else if (strcmp(end, "s") == 0) {
        *out_ms = n * 1000;
    } else if (strcmp(end, "m") == 0) {
        *out_ms = n * 60000;
    } else {
        return -1;
    }
    return 0;
}

int ps_parse_duration_ms(const char *text, int64_t *out_ms)
{
    if (duration_with_unit(text, out_ms) == 0) {
        return 0;
    }
    /* A bare number of seconds, as in a JSON config. */
    size_t n = strlen(text);
    if (n == 0 || n > 6 || strspn(text, "0123456789") != n) {
        return -1;
    }
    *out_ms = (int64_t)strtol(text, NULL, 10) * 1000;
    return 0;
}

/* A Go-style duration ("25s", "500ms", "1m") or a number of seconds, as
 * Centrifugo v5 writes ping_interval and pong_timeout. */
static int get_duration(json_t *value, const char *key, int64_t *out_ms,
                        char *err, size_t err_len)
{
    if (json_is_integer(value) && json_integer_value(value) >= 0 &&
        json_integer_value(value) < 86400000) {
        *out_ms = (int64_t)json_integer_value(value) * 1000;
        return 0;
    }
    if (json_is_string(value) &&
        duration_with_unit(json_string_value(value), out_ms) == 0) {
        return 0;
    }
    return ps_fail(err, err_len,
                "key \"%s\": expected a duration such as \"25s\" or \"500ms\"",
                key);
}

/* Centrifugo's namespace name rule (the code's, which allows dots) with
 * libpresence's length limit, as the library checks it; "" names the
 * default namespace, which is not listed. */
static bool namespace_name_valid(const char *name)
{
    return *name != '\0' &&
           presence_name_check(PRESENCE_NAME_NAMESPACE, name, SIZE_MAX,
                               NULL) == PRESENCE_OK;
}

static int parse_namespace(ps_config *cfg, size_t index, json_t *obj,
                           char *err, size_t err_len)
{
    char path[64];
    snprintf(path, sizeof path, "namespaces[%zu].", index);
    if (!json_is_object(obj)) {
        return ps_fail(err, err_len, "key \"namespaces[%zu]\": expected an object",
                    index);
    }
    ps_namespace *ns = &cfg->namespaces[index];
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        bool matched = false;
        if (strcmp(key, "name") == 0) {
            if (!json_is_string(value) ||
                !namespace_name_valid(json_string_value(value))) {
                return ps_fail(err, err_len,
                            "key \"%sname\": expected 2 to %d characters "
                            "of A-Z a-z 0-9 - _ .",
                            path, PRESENCE_NAMESPACE_NAME_MAX);
            }
            ns->name = ps_strdup(json_string_value(value));
            if (ns->name == NULL) {
                return ps_fail(err, err_len, "out of memory");
            }
            continue;
        }
        if (channel_option(&ns->options, path, key, value, &matched, err,
                           err_len) != 0) {
            return -1;
        }
        if (!matched) {
            ps_log("warning: config key \"%s%s\" is not supported, ignored",
                   path, key);
        }
    }
    if (ns->name == NULL) {
        return ps_fail(err, err_len, "key \"%sname\": missing", path);
    }
    for (size_t i = 0; i < index; i++) {
        if (strcmp(cfg->namespaces[i].name, ns->name) == 0) {
            return ps_fail(err, err_len,
                        "key \"%sname\": namespace \"%s\" defined twice", path,
                        ns->name);
        }
    }
    return 0;
}

static int parse_namespaces(ps_config *cfg, json_t *value, char *err,
                            size_t err_len)
{
    if (!json_is_array(value)) {
        return ps_fail(err, err_len, "key \"namespaces\": expected an array");
    }
    size_t n = json_array_size(value);
    cfg->namespaces = ps_calloc(n ? n : 1, sizeof *cfg->namespaces);
    if (cfg->namespaces == NULL) {
        return ps_fail(err, err_len, "out of memory");
    }
    cfg->namespace_count = n;
    for (size_t i = 0; i < n; i++) {
        if (parse_namespace(cfg, i, json_array_get(value, i), err, err_len) !=
            0) {
            return -1;
        }
    }
    return 0;
}

/* ---- several nodes: the engine, Redis and the node ------------------- */

#define REDIS_PORT_DEFAULT 6379
#define REDIS_ADDRESS_DEFAULT "127.0.0.1:6379"

void ps_redis_address_free(ps_redis_address *addr)
{
    if (addr == NULL) {
        return;
    }
    ps_free(addr->host);
    ps_free(addr->password);
    memset(addr, 0, sizeof *addr);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* A percent-decoded copy of [s, s + n), or NULL (*bad set on a bad %XX or
 * a decoded NUL, else out of memory). */
static char *percent_decode(const char *s, size_t n, bool *bad)
{
    char *out = ps_malloc(n + 1);
    if (out == NULL) {
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            out[k++] = s[i];
            continue;
        }
        int hi = i + 2 < n ? hex_digit(s[i + 1]) : -1;
        int lo = i + 2 < n ? hex_digit(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            ps_free(out);
            *bad = true;
            return NULL;
        }
        out[k++] = (char)(hi * 16 + lo);
        i += 2;
    }
    out[k] = '\0';
    return out;
}

/* A decimal number in [min, max] spelled by all of [s, s + n). */
static bool number_in(const char *s, size_t n, long min, long max, long *out)
{
    if (n == 0 || n > 9 || strspn(s, "0123456789") < n) {
        return false;
    }
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* host[:port] or [v6][:port], all of [s, s + n). */
static int parse_host_port(const char *s, size_t n, ps_redis_address *out,
                           char *err, size_t err_len)
{
    const char *host = s;
    size_t host_len;
    const char *rest;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL) {
            return ps_fail(err, err_len, "an IPv6 address without its ']'");
        }
        host = s + 1;
        host_len = (size_t)(close - host);
        rest = close + 1;
    } else {
        const char *colon = memchr(s, ':', n);
        host_len = colon ? (size_t)(colon - s) : n;
        rest = s + host_len;
    }
    size_t rest_len = (size_t)(s + n - rest);
    if (host_len == 0) {
        return ps_fail(err, err_len, "no host");
    }
    for (size_t i = 0; i < host_len; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= ' ' || c >= 0x7f || c == '@' || c == '/' || c == '?' ||
            c == '#' || c == '[' || c == ']') {
            return ps_fail(err, err_len, "a bad character in the host");
        }
    }
    long port = REDIS_PORT_DEFAULT;
    if (rest_len > 0) {
        if (rest[0] != ':' ||
            !number_in(rest + 1, rest_len - 1, 1, 65535, &port)) {
            return ps_fail(err, err_len, "the port must be a number 1-65535");
        }
    }
    out->host = ps_malloc(host_len + 1);
    if (out->host == NULL) {
        return ps_fail(err, err_len, "out of memory");
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (int)port;
    return 0;
}

/* [user][:password] of a URL's userinfo, all of [s, s + n). */
static int parse_userinfo(const char *s, size_t n, ps_redis_address *out,
                          char *err, size_t err_len)
{
    const char *colon = memchr(s, ':', n);
    size_t user_len = colon ? (size_t)(colon - s) : n;
    bool bad = false;
    char *user = percent_decode(s, user_len, &bad);
    if (user == NULL) {
        return ps_fail(err, err_len, bad ? "a bad %%-escape in the user"
                                         : "out of memory");
    }
    /* presence_cluster authenticates with a password only (AUTH
     * password), which is Redis's "default" user. */
    bool user_ok = *user == '\0' || strcmp(user, "default") == 0;
    ps_free(user);
    if (!user_ok) {
        return ps_fail(err, err_len,
                       "Redis ACL users are not supported, only a password "
                       "(redis://:PASSWORD@host)");
    }
    if (colon == NULL) {
        return 0;
    }
    size_t pass_len = n - user_len - 1;
    out->password = percent_decode(colon + 1, pass_len, &bad);
    if (out->password == NULL) {
        return ps_fail(err, err_len, bad ? "a bad %%-escape in the password"
                                         : "out of memory");
    }
    return 0;
}

static int parse_redis_url(const char *s, ps_redis_address *out, char *err,
                           size_t err_len)
{
    size_t n = strlen(s);
    const char *slash = memchr(s, '/', n);
    size_t auth_len = slash ? (size_t)(slash - s) : n;
    /* The host part ends at the first '/'; userinfo at its last '@' (a
     * password may hold an '@' only %-escaped, but be lenient). */
    const char *at = NULL;
    for (const char *p = s; p < s + auth_len; p++) {
        if (*p == '@') {
            at = p;
        }
    }
    if (at != NULL &&
        parse_userinfo(s, (size_t)(at - s), out, err, err_len) != 0) {
        return -1;
    }
    const char *hp = at ? at + 1 : s;
    if (parse_host_port(hp, (size_t)(s + auth_len - hp), out, err,
                        err_len) != 0) {
        return -1;
    }
    if (slash != NULL && slash[1] != '\0') {
        long db = 0;
        if (strpbrk(slash + 1, "?#") != NULL) {
            return ps_fail(err, err_len,
                           "options after the database are not supported");
        }
        if (!number_in(slash + 1, strlen(slash + 1), 0, 1000000, &db)) {
            return ps_fail(err, err_len,
                           "the database must be a number (redis://host:port/DB)");
        }
        out->db = (int)db;
        out->has_db = true;
    }
    return 0;
}

int ps_redis_address_parse(const char *text, ps_redis_address *out,
                           char *err, size_t err_len)
{
    memset(out, 0, sizeof *out);
    static const char scheme[] = "redis://";
    int rc;
    if (text == NULL || *text == '\0') {
        rc = ps_fail(err, err_len, "empty");
    } else if (strncmp(text, scheme, sizeof scheme - 1) == 0) {
        rc = parse_redis_url(text + sizeof scheme - 1, out, err, err_len);
    } else if (strncmp(text, "rediss://", 9) == 0) {
        rc = ps_fail(err, err_len, "TLS (rediss://) is not supported");
    } else if (strstr(text, "://") != NULL) {
        rc = ps_fail(err, err_len,
                     "expected redis://[:password@]host[:port][/db] or "
                     "host[:port]");
    } else {
        rc = parse_host_port(text, strlen(text), out, err, err_len);
    }
    if (rc != 0) {
        ps_redis_address_free(out);
    }
    return rc;
}

void ps_redis_address_format(const ps_redis_address *addr, char *buf,
                             size_t len)
{
    bool v6 = addr->host != NULL && strchr(addr->host, ':') != NULL;
    snprintf(buf, len, v6 ? "[%s]:%d/%d" : "%s:%d/%d",
             addr->host ? addr->host : "?", addr->port, addr->db);
}

/* libpresence-cluster's rule for key prefixes and node ids: printable
 * ASCII without braces (the braces delimit Redis hash tags). */
static bool cluster_name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '{' || c == '}') {
            return false;
        }
    }
    return true;
}

/* Centrifugo allows an array of addresses (shards); one is what we do. */
static int get_redis_address(ps_config *cfg, json_t *value, char *err,
                             size_t err_len)
{
    if (json_is_array(value)) {
        if (json_array_size(value) != 1) {
            return ps_fail(err, err_len,
                           "key \"redis_address\": one address only (this "
                           "server does not shard over several Redis "
                           "servers)");
        }
        value = json_array_get(value, 0);
    }
    if (!json_is_string(value)) {
        return ps_fail(err, err_len,
                       "key \"redis_address\": expected a string");
    }
    return ps_config_string(value, "redis_address", &cfg->redis_address, err,
                      err_len);
}

/* The keys of the cluster; *matched tells whether key was one of them. */
static int parse_cluster_key(ps_config *cfg, const char *key, json_t *value,
                             bool *matched, char *err, size_t err_len)
{
    *matched = true;
    if (strcmp(key, "engine") == 0) {
        const char *v = json_string_value(value);
        if (v != NULL && strcmp(v, "memory") == 0) {
            cfg->engine = PS_ENGINE_MEMORY;
        } else if (v != NULL && strcmp(v, "redis") == 0) {
            cfg->engine = PS_ENGINE_REDIS;
        } else {
            return ps_fail(err, err_len,
                           "key \"engine\": expected \"memory\" or \"redis\"");
        }
        return 0;
    }
    if (strcmp(key, "redis_address") == 0) {
        return get_redis_address(cfg, value, err, err_len);
    }
    if (strcmp(key, "redis_password") == 0) {
        return ps_config_string(value, key, &cfg->redis_password, err, err_len);
    }
    if (strcmp(key, "redis_user") == 0) {
        return ps_config_string(value, key, &cfg->redis_user, err, err_len);
    }
    if (strcmp(key, "redis_db") == 0) {
        if (!json_is_integer(value) || json_integer_value(value) < 0 ||
            json_integer_value(value) > 1000000) {
            return ps_fail(err, err_len,
                           "key \"redis_db\": expected an integer >= 0");
        }
        cfg->redis_db = (int)json_integer_value(value);
        return 0;
    }
    if (strcmp(key, "redis_prefix") == 0) {
        return ps_config_string(value, key, &cfg->redis_prefix, err, err_len);
    }
    if (strcmp(key, "name") == 0) {
        return ps_config_string(value, key, &cfg->name, err, err_len);
    }
    if (strcmp(key, "node_lease") == 0) {
        return get_duration(value, key, &cfg->node_lease_ms, err, err_len);
    }
    if (strcmp(key, "redis_batch_delay") == 0) {
        return get_duration(value, key, &cfg->redis_batch_delay_ms, err,
                            err_len);
    }
    if (strcmp(key, "redis_on_loop") == 0) {
        return get_bool(value, key, &cfg->redis_on_loop, err, err_len);
    }
    /* Centrifugo's ways to other Redis set-ups: ignoring them would connect
     * to the default address instead, so they are refused. */
    static const char *const unsupported[] = {
        "redis_cluster_address", "redis_sentinel_address", "redis_tls",
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        if (strcmp(key, unsupported[i]) == 0) {
            if (json_is_false(value) || (json_is_string(value) &&
                                         *json_string_value(value) == '\0')) {
                return 0;
            }
            return ps_fail(err, err_len,
                           "key \"%s\": not supported (one Redis server, "
                           "without TLS, in redis_address)",
                           key);
        }
    }
    *matched = false;
    return 0;
}

int ps_config_resolve_cluster(ps_config *cfg, char *err, size_t err_len)
{
    ps_redis_address_free(&cfg->redis);
    if (cfg->redis_prefix != NULL &&
        !cluster_name_ok(cfg->redis_prefix, PS_REDIS_PREFIX_MAX)) {
        return ps_fail(err, err_len,
                       "key \"redis_prefix\": expected 1 to %d characters "
                       "of printable ASCII without spaces or braces",
                       PS_REDIS_PREFIX_MAX);
    }
    if (cfg->name != NULL && !cluster_name_ok(cfg->name, PS_NODE_NAME_MAX)) {
        return ps_fail(err, err_len,
                       "key \"name\": expected 1 to %d characters of "
                       "printable ASCII without spaces or braces",
                       PS_NODE_NAME_MAX);
    }
    if (cfg->node_lease_ms != 0 && cfg->node_lease_ms < PS_NODE_LEASE_MIN_MS) {
        return ps_fail(err, err_len, "key \"node_lease\": at least %dms",
                       PS_NODE_LEASE_MIN_MS);
    }
    if (cfg->redis_batch_delay_ms > PS_REDIS_BATCH_DELAY_MAX_MS) {
        return ps_fail(err, err_len,
                       "key \"redis_batch_delay\": at most %dms",
                       PS_REDIS_BATCH_DELAY_MAX_MS);
    }
    if (cfg->redis_user != NULL && *cfg->redis_user != '\0' &&
        strcmp(cfg->redis_user, "default") != 0) {
        return ps_fail(err, err_len,
                       "key \"redis_user\": Redis ACL users are not "
                       "supported, only redis_password");
    }
    if (cfg->engine != PS_ENGINE_REDIS) {
        if (cfg->redis_address != NULL) {
            ps_log("warning: redis_address is set but the engine is "
                   "\"memory\": this node shares nothing (set \"engine\": "
                   "\"redis\", or use --redis)");
        }
        return 0;
    }
    char why[200];
    const char *text = cfg->redis_address ? cfg->redis_address
                                          : REDIS_ADDRESS_DEFAULT;
    if (ps_redis_address_parse(text, &cfg->redis, why, sizeof why) != 0) {
        return ps_fail(err, err_len, "key \"redis_address\": %s", why);
    }
    if (cfg->redis.password == NULL && cfg->redis_password != NULL &&
        *cfg->redis_password != '\0') {
        cfg->redis.password = ps_strdup(cfg->redis_password);
        if (cfg->redis.password == NULL) {
            ps_redis_address_free(&cfg->redis);
            return ps_fail(err, err_len, "out of memory");
        }
    }
    if (!cfg->redis.has_db) {
        cfg->redis.db = cfg->redis_db;
    }
    return 0;
}

/* One top-level key. */
/* The top-level limits: a count each, with its smallest allowed value. */
static const struct {
    const char *key;
    size_t min;
    size_t offset;
} size_keys[] = {
    {"client_channel_limit", 0, offsetof(ps_config, client_channel_limit)},
    {"client_connection_limit", 0,
     offsetof(ps_config, client_connection_limit)},
    {"client_user_connection_limit", 0,
     offsetof(ps_config, client_user_connection_limit)},
    {"client_queue_max_size", 1, offsetof(ps_config, client_queue_max_size)},
    {"websocket_message_size_limit", 1,
     offsetof(ps_config, websocket_message_size_limit)},
    {"channel_max_length", 1, offsetof(ps_config, channel_max_length)},
};

static int parse_key(ps_config *cfg, const char *key, json_t *value,
                     char *err, size_t err_len)
{
    bool matched = false;
    if (channel_option(&cfg->root, "", key, value, &matched, err, err_len) !=
        0) {
        return -1;
    }
    if (matched) {
        return 0;
    }
    if (strcmp(key, "api_key") == 0) {
        return ps_config_string(value, key, &cfg->api_key, err, err_len);
    }
    if (strcmp(key, "api_insecure") == 0) {
        return get_bool(value, key, &cfg->api_insecure, err, err_len);
    }
    if (strcmp(key, "token_hmac_secret_key") == 0) {
        return ps_config_string(value, key, &cfg->token_hmac_secret_key, err,
                          err_len);
    }
    if (strcmp(key, "allow_anonymous_connect_without_token") == 0) {
        return get_bool(value, key,
                        &cfg->allow_anonymous_connect_without_token, err,
                        err_len);
    }
    if (strcmp(key, "address") == 0) {
        return ps_config_string(value, key, &cfg->address, err, err_len);
    }
    if (strcmp(key, "port") == 0) {
        return get_port(value, &cfg->port, err, err_len);
    }
    if (strcmp(key, "namespaces") == 0) {
        return parse_namespaces(cfg, value, err, err_len);
    }
    if (strcmp(key, "state_file") == 0) {
        return ps_config_string(value, key, &cfg->state_file, err, err_len);
    }
    for (size_t i = 0; i < sizeof size_keys / sizeof size_keys[0]; i++) {
        if (strcmp(key, size_keys[i].key) == 0) {
            size_t *field = (size_t *)((char *)cfg + size_keys[i].offset);
            return get_size(value, key, size_keys[i].min, field, err,
                            err_len);
        }
    }
    if (strcmp(key, "ping_interval") == 0) {
        return get_duration(value, key, &cfg->ping_interval_ms, err, err_len);
    }
    if (strcmp(key, "pong_timeout") == 0) {
        return get_duration(value, key, &cfg->pong_timeout_ms, err, err_len);
    }
    if (parse_cluster_key(cfg, key, value, &matched, err, err_len) != 0) {
        return -1;
    }
    if (matched) {
        return 0;
    }
    if (ps_admin_config_key(&cfg->admin, key, value, &matched, err,
                            err_len) != 0) {
        return -1;
    }
    if (matched) {
        return 0;
    }
    ps_log("warning: config key \"%s\" is not supported, ignored", key);
    return 0;
}

static void warn_join_leave_without_presence(const char *where,
                                             const ps_channel_options *o)
{
    /* libpresence produces join and leave events from presence changes, so
     * join_leave means nothing in a namespace that keeps no presence. */
    if (o->join_leave && !o->presence) {
        ps_log("warning: %s: join_leave needs presence in this server, "
               "no join/leave events will be sent",
               where);
    }
}

/* The counts-only marks: below <= above (libpresence's rule), and they
 * mean something only with presence_coalesce. */
static int check_coalesce(const char *path, const ps_channel_options *o,
                          char *err, size_t err_len)
{
    if (o->presence_count_only_below > o->presence_count_only_above) {
        return ps_fail(err, err_len,
                       "key \"%spresence_count_only_below\": must be at "
                       "most presence_count_only_above",
                       path);
    }
    if (o->presence_count_only_above > 0 && o->presence_coalesce_ms == 0) {
        ps_log("warning: %spresence_count_only_above needs presence_coalesce, "
               "ignored",
               path);
    }
    return 0;
}

static int validate(ps_config *cfg, char *err, size_t err_len)
{
    if (check_coalesce("", &cfg->root, err, err_len) != 0) {
        return -1;
    }
    for (size_t i = 0; i < cfg->namespace_count; i++) {
        char path[64];
        snprintf(path, sizeof path, "namespaces[%zu].", i);
        if (check_coalesce(path, &cfg->namespaces[i].options, err, err_len) !=
            0) {
            return -1;
        }
    }
    if (cfg->ping_interval_ms > 0 && cfg->pong_timeout_ms > 0 &&
        cfg->pong_timeout_ms >= cfg->ping_interval_ms) {
        return ps_fail(err, err_len,
                    "key \"pong_timeout\": must be less than ping_interval");
    }
    if (cfg->client_connection_limit > PS_MAX_CONNECTIONS) {
        return ps_fail(err, err_len,
                    "key \"client_connection_limit\": at most %d",
                    PS_MAX_CONNECTIONS);
    }
    if (ps_config_resolve_cluster(cfg, err, err_len) != 0) {
        return -1;
    }
    if (ps_admin_config_check(&cfg->admin, cfg->token_hmac_secret_key, err,
                              err_len) != 0) {
        return -1;
    }
    warn_join_leave_without_presence("top-level channel options", &cfg->root);
    for (size_t i = 0; i < cfg->namespace_count; i++) {
        char where[128];
        snprintf(where, sizeof where, "namespace \"%s\"",
                 cfg->namespaces[i].name);
        warn_join_leave_without_presence(where, &cfg->namespaces[i].options);
    }
    if (cfg->address == NULL) {
        cfg->address = ps_strdup("127.0.0.1");
    }
    if (cfg->api_key == NULL) {
        cfg->api_key = ps_strdup("");
    }
    if (cfg->token_hmac_secret_key == NULL) {
        cfg->token_hmac_secret_key = ps_strdup("");
    }
    if (cfg->address == NULL || cfg->api_key == NULL ||
        cfg->token_hmac_secret_key == NULL) {
        return ps_fail(err, err_len, "out of memory");
    }
    return 0;
}

static int load_json(ps_config *cfg, json_t *root, char *err, size_t err_len)
{
    if (!json_is_object(root)) {
        return ps_fail(err, err_len, "the top level must be a JSON object");
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (parse_key(cfg, key, value, err, err_len) != 0) {
            return -1;
        }
    }
    return validate(cfg, err, err_len);
}

int ps_config_load_file(ps_config *cfg, const char *path, char *err,
                        size_t err_len)
{
    config_defaults(cfg);
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        ps_fail(err, err_len, "%s:%d:%d: %s", path, jerr.line, jerr.column,
             jerr.text);
        return -1;
    }
    int rc = load_json(cfg, root, err, err_len);
    json_decref(root);
    if (rc != 0) {
        ps_config_free(cfg);
    }
    return rc;
}

int ps_config_load_buffer(ps_config *cfg, const char *data, size_t len,
                          char *err, size_t err_len)
{
    config_defaults(cfg);
    json_error_t jerr;
    bool nomem = false;
    json_t *root = ps_json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr, &nomem);
    if (root == NULL) {
        if (nomem) {
            ps_fail(err, err_len, "out of memory");
        } else {
            ps_fail(err, err_len, "%d:%d: %s", jerr.line, jerr.column, jerr.text);
        }
        return -1;
    }
    int rc = load_json(cfg, root, err, err_len);
    json_decref(root);
    if (rc != 0) {
        ps_config_free(cfg);
    }
    return rc;
}

char *ps_config_secrets_path(void)
{
    const char *dir = getenv("PRESENCE_SERVER_STATE_DIR");
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    char buf[4096];
    if (dir != NULL && *dir != '\0') {
        snprintf(buf, sizeof buf, "%s/default-secrets.json", dir);
    } else if (xdg != NULL && *xdg != '\0') {
        snprintf(buf, sizeof buf, "%s/presence-server/default-secrets.json",
                 xdg);
    } else if (home != NULL && *home != '\0') {
        snprintf(buf, sizeof buf,
                 "%s/.local/state/presence-server/default-secrets.json", home);
    } else {
        return NULL;
    }
    return ps_strdup(buf);
}

/* mkdir -p for the directories of a file path, private to the user. */
static void make_parent_dirs(const char *path)
{
    char *copy = ps_strdup(path);
    if (copy == NULL) {
        return;
    }
    for (char *p = copy + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(copy, 0700);
            *p = '/';
        }
    }
    ps_free(copy);
}

/* The secrets file must be private to the server's user, as ssh wants
 * its keys: a regular file, owned by this user, neither readable nor
 * writable by group or others (a key others can read is no secret; one
 * they can write lets them choose it). 0, or -1 with @p err saying what
 * is wrong and what to do. */
static int check_secrets_file(const char *path, const struct stat *st,
                              char *err, size_t err_len)
{
    if (!S_ISREG(st->st_mode)) {
        return ps_fail(err, err_len,
                       "secrets file %s is not a regular file; delete it "
                       "for new secrets", path);
    }
    if (st->st_uid != geteuid()) {
        return ps_fail(err, err_len,
                       "secrets file %s is owned by uid %lu, not by this "
                       "user (uid %lu): chown it, or delete it for new "
                       "secrets", path, (unsigned long)st->st_uid,
                       (unsigned long)geteuid());
    }
    if ((st->st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        return ps_fail(err, err_len,
                       "secrets file %s has mode %04o, readable or writable "
                       "by others: run chmod 600 %s (and consider the "
                       "secrets leaked), or delete it for new secrets",
                       path, (unsigned)(st->st_mode & 07777), path);
    }
    return 0;
}

/* 0: read; 1: no usable file (absent, unreadable or not our JSON: new
 * secrets are made); -1: refused, with @p err (see check_secrets_file()). */
static int read_secrets(const char *path, ps_config *cfg, char *err,
                        size_t err_len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        return 1;
    }
    /* The checks are on the file opened, not on its name: it cannot be
     * swapped between the check and the read. */
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return 1;
    }
    if (check_secrets_file(path, &st, err, err_len) != 0) {
        close(fd);
        return -1;
    }
    json_t *root = json_loadfd(fd, 0, NULL);
    close(fd);
    if (root == NULL) {
        return 1;
    }
    const char *key = json_string_value(json_object_get(root, "api_key"));
    const char *secret =
        json_string_value(json_object_get(root, "token_hmac_secret_key"));
    int rc = 1;
    if (key != NULL && secret != NULL && *key != '\0' && *secret != '\0') {
        cfg->api_key = ps_strdup(key);
        cfg->token_hmac_secret_key = ps_strdup(secret);
        rc = (cfg->api_key && cfg->token_hmac_secret_key) ? 0 : 1;
    }
    json_decref(root);
    return rc;
}

/* Writes the secrets with O_EXCL, so that of two first starts racing, one
 * wins and the other reads its file. */
static int write_secrets(const char *path, const char *key, const char *secret)
{
    make_parent_dirs(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        return errno == EEXIST ? 1 : -1;
    }
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "{\"api_key\":\"%s\",\"token_hmac_secret_key\":\"%s\"}\n",
                     key, secret);
    int rc = (write(fd, buf, (size_t)n) == n) ? 0 : -1;
    close(fd);
    if (rc != 0) {
        unlink(path);
    }
    return rc;
}

/* A read of the secrets file that ended it (read_secrets() gave 0: read,
 * the config keeps the path; -1: refused): its result. */
static int secrets_read(ps_config *cfg, char *path, int r)
{
    if (r == 0) {
        cfg->secrets_path = path;
    } else {
        ps_free(path);
    }
    return r;
}

/* The default secrets: read from the state file, or generated and saved. */
static int default_secrets(ps_config *cfg, char *err, size_t err_len)
{
    char *path = ps_config_secrets_path();
    int r = path != NULL ? read_secrets(path, cfg, err, err_len) : 1;
    if (r <= 0) {
        return secrets_read(cfg, path, r);
    }
    char key[PS_UUID_SIZE];
    char secret[PS_UUID_SIZE];
    if (ps_uuid4(key) != 0 || ps_uuid4(secret) != 0) {
        ps_free(path);
        return ps_fail(err, err_len, "no random numbers for the default secrets");
    }
    int w = path ? write_secrets(path, key, secret) : -1;
    if (w == 1) { /* another first start won the race: its file */
        r = read_secrets(path, cfg, err, err_len);
        if (r <= 0) {
            return secrets_read(cfg, path, r);
        }
    }
    if (w != 0) {
        ps_log("warning: cannot save the default secrets to %s; they last "
               "for this run only, and --token will not match them",
               path ? path : "(no HOME)");
        ps_free(path);
        path = NULL;
    }
    ps_free(cfg->api_key);
    ps_free(cfg->token_hmac_secret_key);
    cfg->api_key = ps_strdup(key);
    cfg->token_hmac_secret_key = ps_strdup(secret);
    cfg->secrets_path = path;
    if (cfg->api_key == NULL || cfg->token_hmac_secret_key == NULL) {
        return ps_fail(err, err_len, "out of memory");
    }
    return 0;
}

int ps_config_load_default(ps_config *cfg, char *err, size_t err_len)
{
    config_defaults(cfg);
    json_t *root = json_loads(default_config_json, 0, NULL);
    if (root == NULL) {
        return ps_fail(err, err_len, "internal: bad embedded config");
    }
    int rc = load_json(cfg, root, err, err_len);
    json_decref(root);
    if (rc == 0) {
        ps_free(cfg->api_key);
        ps_free(cfg->token_hmac_secret_key);
        cfg->api_key = NULL;
        cfg->token_hmac_secret_key = NULL;
        rc = default_secrets(cfg, err, err_len);
        cfg->is_default = true;
    }
    if (rc == 0) { /* the admin page is on in the default */
        rc = ps_admin_config_default(&cfg->admin, cfg->secrets_path, err,
                                     err_len);
    }
    if (rc != 0) {
        ps_config_free(cfg);
    }
    return rc;
}

void ps_config_free(ps_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    ps_free(cfg->api_key);
    ps_free(cfg->token_hmac_secret_key);
    ps_free(cfg->address);
    ps_free(cfg->secrets_path);
    ps_free(cfg->redis_address);
    ps_free(cfg->redis_password);
    ps_free(cfg->redis_user);
    ps_free(cfg->redis_prefix);
    ps_free(cfg->name);
    ps_free(cfg->state_file);
    ps_redis_address_free(&cfg->redis);
    ps_admin_config_free(&cfg->admin);
    for (size_t i = 0; i < cfg->namespace_count; i++) {
        ps_free(cfg->namespaces[i].name);
    }
    ps_free(cfg->namespaces);
    memset(cfg, 0, sizeof *cfg);
}

const ps_channel_options *ps_config_namespace(const ps_config *cfg,
                                              const char *name)
{
    if (*name == '\0') {
        return &cfg->root;
    }
    for (size_t i = 0; i < cfg->namespace_count; i++) {
        if (strcmp(cfg->namespaces[i].name, name) == 0) {
            return &cfg->namespaces[i].options;
        }
    }
    return NULL;
}

const ps_channel_options *ps_config_channel(const ps_config *cfg,
                                            const char *channel)
{
    size_t len = 0;
    if (presence_channel_split(channel, PS_NAMESPACE_SEPARATOR, &len, NULL) !=
        PRESENCE_OK) {
        return NULL;
    }
    if (len == 0) {
        return &cfg->root;
    }
    for (size_t i = 0; i < cfg->namespace_count; i++) {
        const char *name = cfg->namespaces[i].name;
        if (strlen(name) == len && memcmp(name, channel, len) == 0) {
            return &cfg->namespaces[i].options;
        }
    }
    return NULL;
}

bool ps_presence_allowed(const ps_channel_options *o, const char *user,
                         bool subscribed)
{
    bool user_ok = (user != NULL && *user != '\0') ||
                   o->allow_presence_for_anonymous;
    if (o->allow_presence_for_client && user_ok) {
        return true;
    }
    return o->allow_presence_for_subscriber && subscribed && user_ok;
}
