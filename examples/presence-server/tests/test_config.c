/*
 * The config's keys for several nodes: Redis addresses (URL and bare),
 * engine, redis_password / redis_db and which of them wins, redis_prefix,
 * name, node_lease, redis_batch_delay, redis_on_loop, and the errors that
 * name their key. Also: every allocation of loading such a config failed
 * in turn leaks nothing.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* ---- addresses ------------------------------------------------------- */

typedef struct good_address {
    const char *text;
    const char *host;
    int port;
    const char *password; /* NULL: none */
    int db;
    bool has_db;
} good_address;

static const good_address good_addresses[] = {
    {"localhost", "localhost", 6379, NULL, 0, false},
    {"127.0.0.1:7000", "127.0.0.1", 7000, NULL, 0, false},
    {"[::1]:6380", "::1", 6380, NULL, 0, false},
    {"[::1]", "::1", 6379, NULL, 0, false},
    {"redis://redis.example", "redis.example", 6379, NULL, 0, false},
    {"redis://127.0.0.1:6379/", "127.0.0.1", 6379, NULL, 0, false},
    {"redis://127.0.0.1:1/15", "127.0.0.1", 1, NULL, 15, true},
    {"redis://:s3cret@h:65535/0", "h", 65535, "s3cret", 0, true},
    {"redis://default:pw@h", "h", 6379, "pw", 0, false},
    {"redis://:p%40ss%3Aw%2Fd@h", "h", 6379, "p@ss:w/d", 0, false},
    {"redis://:a@b@h:1", "h", 1, "a@b", 0, false},
    {"redis://:@h", "h", 6379, "", 0, false},
    {"redis://[fe80::1]:7001/3", "fe80::1", 7001, NULL, 3, true},
};

static void test_good_addresses(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof good_addresses / sizeof good_addresses[0];
         i++) {
        const good_address *g = &good_addresses[i];
        ps_redis_address a;
        char err[200] = "";
        int rc = ps_redis_address_parse(g->text, &a, err, sizeof err);
        if (rc != 0) {
            fail_msg("%s: %s", g->text, err);
        }
        assert_string_equal(a.host, g->host);
        assert_int_equal(a.port, g->port);
        if (g->password == NULL) {
            assert_null(a.password);
        } else {
            assert_non_null(a.password);
            assert_string_equal(a.password, g->password);
        }
        assert_int_equal(a.db, g->db);
        assert_int_equal(a.has_db, g->has_db);
        ps_redis_address_free(&a);
    }
}

typedef struct bad_address {
    const char *text;
    const char *says; /* a part of the error message */
} bad_address;

static const bad_address bad_addresses[] = {
    {"", "empty"},
    {"rediss://h:6380", "TLS"},
    {"unix:///run/redis.sock", "expected redis://"},
    {"http://h:6379", "expected redis://"},
    {"redis://", "no host"},
    {"redis://:6379", "no host"},
    {":6379", "no host"},
    {"h:0", "port"},
    {"h:65536", "port"},
    {"h:63a", "port"},
    {"h:", "port"},
    {"redis://h:-1", "port"},
    {"[::1", "']'"},
    {"[::1]x", "port"},
    {"redis://h/x", "database"},
    {"redis://h/-1", "database"},
    {"redis://h/1?timeout=1", "options"},
    {"redis://h/1/2", "database"},
    {"redis://alice:pw@h", "ACL users"},
    {"redis://:p%zzw@h", "%-escape in the password"},
    {"redis://:p%4@h", "%-escape in the password"},
    {"redis://:p%00@h", "%-escape in the password"},
    {"redis://a%q:pw@h", "%-escape in the user"},
    {"ho st", "bad character"},
    {"h/0", "bad character"},
};

static void test_bad_addresses(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_addresses / sizeof bad_addresses[0];
         i++) {
        const bad_address *b = &bad_addresses[i];
        ps_redis_address a;
        char err[200] = "";
        if (ps_redis_address_parse(b->text, &a, err, sizeof err) == 0) {
            fail_msg("\"%s\" was accepted (host %s)", b->text, a.host);
        }
        if (strstr(err, b->says) == NULL) {
            fail_msg("\"%s\": \"%s\" does not say \"%s\"", b->text, err,
                     b->says);
        }
        /* Left empty: nothing to free, nothing leaked. */
        assert_null(a.host);
        assert_null(a.password);
    }
}

static void test_format_hides_password(void **state)
{
    (void)state;
    ps_redis_address a;
    char err[200];
    char buf[128];
    assert_int_equal(ps_redis_address_parse("redis://:hush@[::1]:7/2", &a, err,
                                            sizeof err),
                     0);
    ps_redis_address_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "[::1]:7/2");
    ps_redis_address_free(&a);
    assert_int_equal(ps_redis_address_parse("h", &a, err, sizeof err), 0);
    ps_redis_address_format(&a, buf, sizeof buf);
    assert_string_equal(buf, "h:6379/0");
    ps_redis_address_free(&a);
    ps_redis_address_free(NULL);
}

static void test_durations(void **state)
{
    (void)state;
    int64_t ms = -1;
    assert_int_equal(ps_parse_duration_ms("3s", &ms), 0);
    assert_int_equal(ms, 3000);
    assert_int_equal(ps_parse_duration_ms("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(ps_parse_duration_ms("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(ps_parse_duration_ms("4", &ms), 0);
    assert_int_equal(ms, 4000);
    const char *bad[] = {"", "s", "-1s", "+1s", " 1s", "1h", "1.5s", "1sx",
                         "99999999s", "1234567"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ps_parse_duration_ms(bad[i], &ms) == 0) {
            fail_msg("duration \"%s\" accepted", bad[i]);
        }
    }
}

/* ---- the config keys ------------------------------------------------- */

static int load(const char *json, ps_config *cfg, char *err, size_t err_len)
{
    return ps_config_load_buffer(cfg, json, strlen(json), err, err_len);
}

static void test_memory_is_the_default(void **state)
{
    (void)state;
    ps_config cfg;
    char err[256];
    assert_int_equal(load("{}", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.engine, PS_ENGINE_MEMORY);
    assert_null(cfg.redis.host);
    ps_config_free(&cfg);
    /* An address without the engine: a warning, still one node. */
    assert_int_equal(load("{\"redis_address\":\"h:1\"}", &cfg, err, sizeof err),
                     0);
    assert_int_equal(cfg.engine, PS_ENGINE_MEMORY);
    assert_null(cfg.redis.host);
    ps_config_free(&cfg);
}

static void test_redis_engine(void **state)
{
    (void)state;
    ps_config cfg;
    char err[256];
    /* Centrifugo's default address. */
    assert_int_equal(load("{\"engine\":\"redis\"}", &cfg, err, sizeof err), 0);
    assert_int_equal(cfg.engine, PS_ENGINE_REDIS);
    assert_string_equal(cfg.redis.host, "127.0.0.1");
    assert_int_equal(cfg.redis.port, 6379);
    assert_null(cfg.redis.password);
    assert_int_equal(cfg.redis.db, 0);
    assert_null(cfg.redis_prefix);
    assert_null(cfg.name);
    assert_int_equal(cfg.node_lease_ms, 0);
    assert_int_equal(cfg.redis_batch_delay_ms, PS_REDIS_BATCH_DELAY_DEFAULT_MS);
    assert_false(cfg.redis_on_loop);
    ps_config_free(&cfg);

    /* Every key; the separate password and db apply to a bare address. */
    assert_int_equal(
        load("{\"engine\":\"redis\",\"redis_address\":\"10.0.0.2:7000\","
             "\"redis_password\":\"pw\",\"redis_db\":4,\"redis_user\":"
             "\"default\",\"redis_prefix\":\"app1\",\"name\":\"node-a\","
             "\"node_lease\":\"750ms\",\"redis_batch_delay\":\"0ms\","
             "\"redis_on_loop\":true}",
             &cfg, err, sizeof err),
        0);
    assert_string_equal(cfg.redis.host, "10.0.0.2");
    assert_int_equal(cfg.redis.port, 7000);
    assert_string_equal(cfg.redis.password, "pw");
    assert_int_equal(cfg.redis.db, 4);
    assert_string_equal(cfg.redis_prefix, "app1");
    assert_string_equal(cfg.name, "node-a");
    assert_int_equal(cfg.node_lease_ms, 750);
    assert_int_equal(cfg.redis_batch_delay_ms, 0);
    assert_true(cfg.redis_on_loop);
    ps_config_free(&cfg);

    /* The URL's own password and db win; an array of one address is
     * Centrifugo's shard list with one shard. */
    assert_int_equal(
        load("{\"engine\":\"redis\",\"redis_address\":"
             "[\"redis://:url-pw@h/2\"],\"redis_password\":\"key-pw\","
             "\"redis_db\":5,\"node_lease\":2}",
             &cfg, err, sizeof err),
        0);
    assert_string_equal(cfg.redis.password, "url-pw");
    assert_int_equal(cfg.redis.db, 2);
    assert_int_equal(cfg.node_lease_ms, 2000);
    ps_config_free(&cfg);

    /* Turned off, the unsupported set-ups are fine. */
    assert_int_equal(load("{\"redis_tls\":false,\"redis_sentinel_address\":\"\"}",
                          &cfg, err, sizeof err),
                     0);
    ps_config_free(&cfg);

    /* An empty redis_password is no password. */
    assert_int_equal(load("{\"engine\":\"redis\",\"redis_password\":\"\"}",
                          &cfg, err, sizeof err),
                     0);
    assert_null(cfg.redis.password);
    ps_config_free(&cfg);
}

typedef struct bad_config {
    const char *json;
    const char *says;
} bad_config;

static const bad_config bad_configs[] = {
    {"{\"engine\":\"tarantool\"}", "key \"engine\": expected \"memory\" or \"redis\""},
    {"{\"engine\":true}", "key \"engine\""},
    {"{\"engine\":\"redis\",\"redis_address\":\"rediss://h\"}",
     "key \"redis_address\": TLS"},
    {"{\"engine\":\"redis\",\"redis_address\":\"h:99999\"}",
     "key \"redis_address\": the port"},
    {"{\"redis_address\":[\"a:1\",\"b:1\"]}", "key \"redis_address\": one address only"},
    {"{\"redis_address\":[]}", "key \"redis_address\": one address only"},
    {"{\"redis_address\":[1]}", "key \"redis_address\": expected a string"},
    {"{\"redis_address\":6379}", "key \"redis_address\": expected a string"},
    {"{\"redis_db\":-1}", "key \"redis_db\""},
    {"{\"redis_db\":\"1\"}", "key \"redis_db\""},
    {"{\"redis_password\":1}", "key \"redis_password\": expected a string"},
    {"{\"redis_user\":\"alice\"}", "key \"redis_user\": Redis ACL users"},
    {"{\"redis_prefix\":\"\"}", "key \"redis_prefix\""},
    {"{\"redis_prefix\":\"a{b}\"}", "key \"redis_prefix\""},
    {"{\"redis_prefix\":\"a b\"}", "key \"redis_prefix\""},
    {"{\"name\":\"\"}", "key \"name\""},
    {"{\"name\":\"n{1}\"}", "key \"name\""},
    {"{\"name\":\"tab\\there\"}", "key \"name\""},
    {"{\"name\":\"n\\u00e9\"}", "key \"name\""},
    {"{\"name\":\"0123456789012345678901234567890123456789012345678901234567890123X\"}",
     "key \"name\": expected 1 to 64"},
    {"{\"node_lease\":\"50ms\"}", "key \"node_lease\": at least 100ms"},
    {"{\"node_lease\":\"3 s\"}", "key \"node_lease\": expected a duration"},
    {"{\"node_lease\":-1}", "key \"node_lease\": expected a duration"},
    {"{\"redis_batch_delay\":\"1001ms\"}", "key \"redis_batch_delay\": at most 1000ms"},
    {"{\"redis_batch_delay\":-1}", "key \"redis_batch_delay\": expected a duration"},
    {"{\"redis_on_loop\":1}", "key \"redis_on_loop\": expected true or false"},
    {"{\"redis_cluster_address\":[\"h:30001\"]}", "key \"redis_cluster_address\": not supported"},
    {"{\"redis_sentinel_address\":\"h:26379\"}", "key \"redis_sentinel_address\": not supported"},
    {"{\"redis_tls\":true}", "key \"redis_tls\": not supported"},
};

static void test_bad_configs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_configs / sizeof bad_configs[0]; i++) {
        ps_config cfg;
        char err[256] = "";
        if (load(bad_configs[i].json, &cfg, err, sizeof err) == 0) {
            ps_config_free(&cfg);
            fail_msg("%s was accepted", bad_configs[i].json);
        }
        if (strstr(err, bad_configs[i].says) == NULL) {
            fail_msg("%s: \"%s\" does not say \"%s\"", bad_configs[i].json,
                     err, bad_configs[i].says);
        }
    }
    /* The longest name is fine. */
    ps_config cfg;
    char err[256];
    assert_int_equal(
        load("{\"name\":\"0123456789012345678901234567890123456789012345678901234567890123\"}",
             &cfg, err, sizeof err),
        0);
    ps_config_free(&cfg);
    /* The longest prefix libpresence-cluster takes is fine; one more
     * character is refused here, not later by presence_cluster_new(). */
    char json[64 + PS_REDIS_PREFIX_MAX];
    char prefix[PS_REDIS_PREFIX_MAX + 2];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[PS_REDIS_PREFIX_MAX] = '\0';
    snprintf(json, sizeof json, "{\"redis_prefix\":\"%s\"}", prefix);
    assert_int_equal(load(json, &cfg, err, sizeof err), 0);
    assert_int_equal(strlen(cfg.redis_prefix), PRESENCE_CLUSTER_PREFIX_MAX);
    ps_config_free(&cfg);
    prefix[PS_REDIS_PREFIX_MAX] = 'p';
    prefix[PS_REDIS_PREFIX_MAX + 1] = '\0';
    snprintf(json, sizeof json, "{\"redis_prefix\":\"%s\"}", prefix);
    assert_int_not_equal(load(json, &cfg, err, sizeof err), 0);
    assert_non_null(strstr(err, "key \"redis_prefix\": expected 1 to 128"));
}

/* What main() does for --redis and friends: set the fields, resolve again. */
static void test_override_and_resolve_again(void **state)
{
    (void)state;
    ps_config cfg;
    char err[256];
    assert_int_equal(load("{\"redis_password\":\"pw\",\"redis_db\":3}", &cfg,
                          err, sizeof err),
                     0);
    assert_int_equal(cfg.engine, PS_ENGINE_MEMORY);
    cfg.engine = PS_ENGINE_REDIS;
    cfg.redis_address = ps_strdup("redis://10.1.1.1:6390");
    assert_int_equal(ps_config_resolve_cluster(&cfg, err, sizeof err), 0);
    assert_string_equal(cfg.redis.host, "10.1.1.1");
    assert_int_equal(cfg.redis.port, 6390);
    assert_string_equal(cfg.redis.password, "pw");
    assert_int_equal(cfg.redis.db, 3);
    /* Resolving twice frees the first result (the leak check below). */
    assert_int_equal(ps_config_resolve_cluster(&cfg, err, sizeof err), 0);
    ps_free(cfg.redis_address);
    cfg.redis_address = ps_strdup("redis://bob:x@h");
    assert_int_equal(ps_config_resolve_cluster(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "key \"redis_address\": Redis ACL users"));
    assert_null(cfg.redis.host);
    cfg.node_lease_ms = 99;
    ps_free(cfg.redis_address);
    cfg.redis_address = ps_strdup("h");
    assert_int_equal(ps_config_resolve_cluster(&cfg, err, sizeof err), -1);
    assert_non_null(strstr(err, "node_lease"));
    ps_config_free(&cfg);
}

/* Every allocation of loading a Redis config failed in turn: the load
 * fails cleanly (or succeeds), and nothing is left allocated. */
static void test_allocation_failures(void **state)
{
    (void)state;
    static const char json[] =
        "{\"engine\":\"redis\",\"redis_address\":\"redis://:p%41ss@h:1/2\","
        "\"redis_password\":\"x\",\"redis_prefix\":\"pre\",\"name\":\"n1\","
        "\"node_lease\":\"1s\"}";
    bool succeeded = false;
    for (unsigned long n = 1; n < 1000 && !succeeded; n++) {
        long live = counting.live;
        ps_config cfg;
        char err[256];
        counting_arm(n);
        int rc = load(json, &cfg, err, sizeof err);
        bool failed = counting.failed > 0;
        counting_arm(0);
        if (rc == 0) {
            if (!failed) {
                succeeded = true;
                assert_string_equal(cfg.redis.password, "pAss");
            }
            ps_config_free(&cfg);
        } else {
            assert_true(failed);
            assert_non_null(strstr(err, "out of memory"));
        }
        if (counting.live != live) {
            fail_msg("allocation %lu failed: %ld blocks leaked", n,
                     counting.live - live);
        }
    }
    assert_true(succeeded);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_addresses),
        cmocka_unit_test(test_bad_addresses),
        cmocka_unit_test(test_format_hides_password),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_memory_is_the_default),
        cmocka_unit_test(test_redis_engine),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_override_and_resolve_again),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
