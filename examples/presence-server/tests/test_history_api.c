/*
 * The presence_changes API method (history_api.c) and its namespace key
 * presence_history_size: the first call gets the presence with its
 * version, later ones the changes since, or the presence again when the
 * log no longer reaches back; bad parameters are 107; an allocation that
 * fails is a 100, never a partial answer.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../history_api.h"
#include "../wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static const char config_json[] =
    "{\"namespaces\":[{\"name\":\"chat\",\"presence\":true,"
    "\"join_leave\":true,\"presence_history_size\":3},"
    "{\"name\":\"plain\",\"presence\":true}]}";

static ps_test_server t;

static int setup(void **state)
{
    (void)state;
    char err[256];
    return ps_test_server_init(&t, config_json, err, sizeof err);
}

static int teardown(void **state)
{
    (void)state;
    ps_test_server_fini(&t);
    return 0;
}

static json_t *call(const char *params_json, int *code)
{
    json_error_t jerr;
    json_t *params = json_loads(params_json, 0, &jerr);
    assert_non_null(params);
    *code = 0;
    json_t *result = ps_history_api_changes(&t.server, params, code);
    json_decref(params);
    return result;
}

static void join(const char *channel, const char *client, const char *info)
{
    assert_int_equal(presence_join(t.server.registry, channel, client, "u1",
                                   "{\"c\":1}", 7, info,
                                   info ? strlen(info) : 0),
                     PRESENCE_OK);
}

/* The version a result carries, as the next call's parameters. */
static char *next_params(const char *channel, json_t *result)
{
    char *text = malloc(512);
    assert_non_null(text);
    snprintf(text, 512, "{\"channel\":\"%s\",\"epoch\":\"%s\",\"offset\":%lld}",
             channel, json_string_value(json_object_get(result, "epoch")),
             (long long)json_integer_value(json_object_get(result, "offset")));
    return text;
}

static void test_snapshot_then_changes(void **state)
{
    (void)state;
    join("chat:a", "c1", NULL);
    int code;
    json_t *r = call("{\"channel\":\"chat:a\"}", &code);
    assert_non_null(r);
    assert_true(json_is_false(json_object_get(r, "recovered")));
    assert_non_null(json_object_get(json_object_get(r, "presence"), "c1"));
    assert_int_equal(json_integer_value(json_object_get(r, "offset")), 1);
    char *params = next_params("chat:a", r);
    json_decref(r);

    join("chat:a", "c2", "{\"x\":2}");
    assert_int_equal(presence_leave(t.server.registry, "chat:a", "c1"),
                     PRESENCE_OK);
    r = call(params, &code);
    assert_non_null(r);
    assert_true(json_is_true(json_object_get(r, "recovered")));
    json_t *changes = json_object_get(r, "changes");
    assert_int_equal(json_array_size(changes), 2);
    json_t *c0 = json_array_get(changes, 0);
    assert_string_equal(json_string_value(json_object_get(c0, "type")), "join");
    assert_int_equal(json_integer_value(json_object_get(c0, "offset")), 2);
    json_t *info = json_object_get(c0, "info");
    assert_string_equal(json_string_value(json_object_get(info, "client")),
                        "c2");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(info, "chan_info"), "x")),
                     2);
    json_t *c1 = json_array_get(changes, 1);
    assert_string_equal(json_string_value(json_object_get(c1, "type")),
                        "leave");
    assert_string_equal(json_string_value(json_object_get(c1, "reason")),
                        "explicit");
    assert_int_equal(json_integer_value(json_object_get(r, "offset")), 3);
    free(params);

    /* Nothing since: recovered, no change. */
    params = next_params("chat:a", r);
    json_decref(r);
    r = call(params, &code);
    assert_true(json_is_true(json_object_get(r, "recovered")));
    assert_int_equal(json_array_size(json_object_get(r, "changes")), 0);
    json_decref(r);

    /* More than the log keeps: the presence again, with its version. */
    join("chat:a", "c3", NULL);
    join("chat:a", "c4", NULL);
    join("chat:a", "c5", NULL);
    join("chat:a", "c6", NULL);
    r = call(params, &code);
    assert_true(json_is_false(json_object_get(r, "recovered")));
    assert_int_equal(json_object_size(json_object_get(r, "presence")), 5);
    assert_int_equal(json_integer_value(json_object_get(r, "offset")), 7);
    json_decref(r);
    free(params);
}

/* A namespace without the key keeps no log: always the presence. */
static void test_without_history(void **state)
{
    (void)state;
    join("plain:a", "c1", NULL);
    int code;
    json_t *r = call("{\"channel\":\"plain:a\",\"epoch\":\"1\",\"offset\":1}",
                     &code);
    assert_true(json_is_false(json_object_get(r, "recovered")));
    assert_int_equal(json_object_size(json_object_get(r, "presence")), 1);
    json_decref(r);
}

static void test_bad_requests(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{}",
        "{\"channel\":\"\"}",
        "{\"channel\":5}",
        "{\"channel\":\"chat:a\",\"epoch\":5}",
        "{\"channel\":\"chat:a\",\"epoch\":\"-1\"}",
        "{\"channel\":\"chat:a\",\"epoch\":\"12x\"}",
        "{\"channel\":\"chat:a\",\"epoch\":\"\"}",
        "{\"channel\":\"chat:a\",\"epoch\":\"99999999999999999999\"}",
        "{\"channel\":\"chat:a\",\"epoch\":\"1\",\"offset\":-1}",
        "{\"channel\":\"chat:a\",\"epoch\":\"1\",\"offset\":\"1\"}",
        "[]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code;
        json_t *r = call(bad[i], &code);
        if (r != NULL) {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_int_equal(code, PS_ERR_BAD_REQUEST);
    }
    int code;
    assert_null(call("{\"channel\":\"nope:a\"}", &code));
    assert_int_equal(code, PS_ERR_UNKNOWN_CHANNEL);
    assert_null(call("{\"channel\":\"nope:a\",\"epoch\":\"1\"}", &code));
    assert_int_equal(code, PS_ERR_UNKNOWN_CHANNEL);
}

/* Fail each allocation in turn: a 100 and nothing else, until it works. */
static void test_out_of_memory(void **state)
{
    (void)state;
    join("chat:m", "c1", "{\"a\":1}");
    join("chat:m", "c2", NULL);
    presence_channel_stats st;
    assert_int_equal(presence_stats(t.server.registry, "chat:m",
                                    presence_trusted(), &st),
                     PRESENCE_OK);
    char params[128];
    snprintf(params, sizeof params,
             "{\"channel\":\"chat:m\",\"epoch\":\"%llu\",\"offset\":0}",
             (unsigned long long)st.epoch);
    json_error_t jerr;
    json_t *p = json_loads(params, 0, &jerr);
    assert_non_null(p);
    unsigned long n = 1;
    for (;; n++) {
        int code = 0;
        counting_arm(n);
        json_t *r = ps_history_api_changes(&t.server, p, &code);
        bool failed = counting.failed > 0;
        counting_arm(0);
        if (r != NULL) {
            assert_true(json_is_true(json_object_get(r, "recovered")));
            assert_int_equal(json_array_size(json_object_get(r, "changes")),
                             2);
            json_decref(r);
            if (!failed) {
                break;
            }
        } else {
            assert_true(failed);
            assert_int_equal(code, PS_ERR_INTERNAL);
        }
        assert_true(n < 1000);
    }
    assert_true(n > 5); /* the library's list and jansson's values */
    json_decref(p);
}

/* The key's values, checked when the config loads. */
static void test_config_key(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"presence_history_size\":-1}",
        "{\"presence_history_size\":true}",
        "{\"presence_history_size\":1048577}",
        "{\"namespaces\":[{\"name\":\"ab\",\"presence_history_size\":\"3\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ps_config cfg;
        char err[256] = "";
        assert_int_not_equal(
            ps_config_load_buffer(&cfg, bad[i], strlen(bad[i]), err,
                                  sizeof err),
            0);
        assert_non_null(strstr(err, "presence_history_size"));
    }
    ps_config cfg;
    char err[256];
    const char *good = "{\"presence_history_size\":16,\"namespaces\":"
                       "[{\"name\":\"ab\",\"presence_history_size\":0}]}";
    assert_int_equal(ps_config_load_buffer(&cfg, good, strlen(good), err,
                                           sizeof err),
                     0);
    assert_int_equal(cfg.root.presence_history_size, 16);
    assert_int_equal(cfg.namespaces[0].options.presence_history_size, 0);
    ps_config_free(&cfg);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_then_changes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_without_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_memory, setup, teardown),
        cmocka_unit_test(test_config_key),
    };
    return cmocka_run_group_tests_name("server presence_changes", tests, NULL,
                                       NULL);
}
