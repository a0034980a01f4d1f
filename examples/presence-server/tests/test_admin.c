/*
 * The admin page's config: the "admin", "admin_password" and
 * "admin_secret" keys and the errors that name them, the embedded
 * default's password (generated once, kept 0600 beside the default
 * secrets, read back by the next start), and every allocation of taking
 * the admin keys failed in turn leaking nothing.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

static int load(const char *json, ps_config *cfg, char *err, size_t err_len)
{
    return ps_config_load_buffer(cfg, json, strlen(json), err, err_len);
}

static void test_off_by_default(void **state)
{
    (void)state;
    ps_config cfg;
    char err[256];
    assert_int_equal(load("{}", &cfg, err, sizeof err), 0);
    assert_false(cfg.admin.enabled);
    ps_config_free(&cfg);
    /* A password without "admin" is kept, and the page stays off. */
    assert_int_equal(load("{\"admin_password\":\"p\"}", &cfg, err, sizeof err),
                     0);
    assert_false(cfg.admin.enabled);
    assert_string_equal(cfg.admin.password, "p");
    ps_config_free(&cfg);
}

static void test_on(void **state)
{
    (void)state;
    ps_config cfg;
    char err[256];
    assert_int_equal(load("{\"admin\":true,\"admin_password\":\"pw\","
                          "\"admin_secret\":\"s\","
                          "\"token_hmac_secret_key\":\"t\"}",
                          &cfg, err, sizeof err),
                     0);
    assert_true(cfg.admin.enabled);
    assert_string_equal(cfg.admin.password, "pw");
    assert_string_equal(cfg.admin.secret, "s");
    assert_null(cfg.admin.state_path);
    ps_config_free(&cfg);
}

typedef struct bad_config {
    const char *json;
    const char *error;
} bad_config;

static const bad_config bad_configs[] = {
    {"{\"admin\":1}", "key \"admin\": expected true or false"},
    {"{\"admin\":\"yes\"}", "key \"admin\": expected true or false"},
    {"{\"admin_password\":1}", "key \"admin_password\": expected a string"},
    {"{\"admin_secret\":null}", "key \"admin_secret\": expected a string"},
    {"{\"admin\":true}", "key \"admin_password\": required when \"admin\" is on"},
    {"{\"admin\":true,\"admin_password\":\"\",\"admin_secret\":\"s\"}",
     "key \"admin_password\": required when \"admin\" is on"},
    {"{\"admin\":true,\"admin_password\":\"p\"}",
     "key \"admin_secret\": required when \"admin\" is on"},
    {"{\"admin\":true,\"admin_password\":\"p\",\"admin_secret\":\"same\","
     "\"token_hmac_secret_key\":\"same\"}",
     "key \"admin_secret\": must differ from token_hmac_secret_key"},
};

static void test_bad_configs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_configs / sizeof bad_configs[0]; i++) {
        ps_config cfg;
        char err[256] = "";
        if (load(bad_configs[i].json, &cfg, err, sizeof err) == 0) {
            ps_config_free(&cfg);
            fail_msg("accepted: %s", bad_configs[i].json);
        }
        assert_string_equal(err, bad_configs[i].error);
    }
}

/* The embedded default: on, with a password generated once and read back
 * by the next start from default-admin.json (0600). */
static void test_default_keeps_its_password(void **state)
{
    (void)state;
    char dir[96];
    assert_non_null(make_temp_dir(dir, sizeof dir, "ps-test-admin"));
    setenv("PRESENCE_SERVER_STATE_DIR", dir, 1);
    ps_config a;
    ps_config b;
    char err[256];
    assert_int_equal(ps_config_load_default(&a, err, sizeof err), 0);
    assert_true(a.admin.enabled);
    assert_int_equal(strlen(a.admin.password), 16);
    assert_true(strlen(a.admin.secret) > 16);
    assert_string_not_equal(a.admin.secret, a.token_hmac_secret_key);
    assert_non_null(a.admin.state_path);
    struct stat st;
    assert_int_equal(stat(a.admin.state_path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(ps_config_load_default(&b, err, sizeof err), 0);
    assert_string_equal(a.admin.password, b.admin.password);
    assert_string_equal(a.admin.secret, b.admin.secret);
    unlink(a.admin.state_path);
    unlink(a.secrets_path);
    rmdir(dir);
    ps_config_free(&a);
    ps_config_free(&b);
    unsetenv("PRESENCE_SERVER_STATE_DIR");
}

/* Every allocation of taking the admin keys failed in turn: each call
 * fails cleanly or succeeds, and nothing is left allocated. The JSON is
 * parsed beforehand with nothing failing: jansson 2.14 itself crashes when
 * an allocation fails while it parses a boolean in some objects (a
 * separate problem of the config loader, not of these keys). */
static void test_allocation_failures(void **state)
{
    (void)state;
    json_t *root = json_loads(
        "{\"admin\":true,\"admin_password\":\"pw\",\"admin_secret\":\"s\"}",
        0, NULL);
    assert_non_null(root);
    bool succeeded = false;
    for (unsigned long n = 1; n < 1000 && !succeeded; n++) {
        long live = counting.live;
        ps_admin_config admin;
        memset(&admin, 0, sizeof admin);
        char err[256] = "";
        counting_arm(n);
        int rc = 0;
        const char *key;
        json_t *value;
        json_object_foreach(root, key, value) {
            bool matched = false;
            if (rc == 0) {
                rc = ps_admin_config_key(&admin, key, value, &matched, err,
                                         sizeof err);
                assert_true(matched);
            }
        }
        if (rc == 0) {
            rc = ps_admin_config_check(&admin, "t", err, sizeof err);
        }
        bool failed = counting.failed > 0;
        counting_arm(0);
        if (rc == 0) {
            succeeded = !failed;
            assert_true(admin.enabled);
            assert_string_equal(admin.password, "pw");
            assert_string_equal(admin.secret, "s");
        } else {
            assert_true(failed);
            assert_string_equal(err, "out of memory");
        }
        ps_admin_config_free(&admin);
        if (counting.live != live) {
            fail_msg("allocation %lu failed: %ld blocks leaked", n,
                     counting.live - live);
        }
    }
    json_decref(root);
    assert_true(succeeded);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_off_by_default),
        cmocka_unit_test(test_on),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_default_keeps_its_password),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
