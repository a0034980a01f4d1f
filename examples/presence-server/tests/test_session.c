/*
 * The session layer without sockets: framing (fragments, control frames,
 * protocol errors), the message size and JSON depth limits, the command
 * path from a text frame to its replies and pushes, and channel names.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static const char config_json[] =
    "{\"token_hmac_secret_key\":\"s\",\"allow_anonymous_connect_without_token\":true,"
    "\"websocket_message_size_limit\":1024,"
    "\"namespaces\":[{\"name\":\"room\",\"presence\":true,\"join_leave\":true,"
    "\"allow_subscribe_for_client\":true,\"allow_subscribe_for_anonymous\":true,"
    "\"allow_presence_for_subscriber\":true,\"allow_presence_for_anonymous\":true}]}";

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

static void check(ps_test_peer **peers, size_t n)
{
    char why[256];
    if (ps_test_check(&t, peers, n, why, sizeof why) != 0) {
        fail_msg("%s", why);
    }
}

static void test_commands_replies_and_pushes(void **state)
{
    (void)state;
    ps_test_peer *a = ps_test_peer_open(&t);
    ps_test_peer *b = ps_test_peer_open(&t);
    assert_true(ps_test_peer_send(&t, a,
        "{\"connect\":{},\"id\":1}\n"
        "{\"subscribe\":{\"channel\":\"room:1\",\"join_leave\":true},\"id\":2}"));
    assert_true(ps_test_peer_send(&t, b,
        "{\"connect\":{},\"id\":1}\n\n  \n"
        "{\"subscribe\":{\"channel\":\"room:1\"},\"id\":2}\n"
        "{\"presence_stats\":{\"channel\":\"room:1\"},\"id\":3}"));
    json_t *ma = peer_messages(a);
    json_t *mb = peer_messages(b);
    /* a: connect, subscribe, its own join, then b's join. */
    assert_int_equal(json_array_size(ma), 4);
    assert_non_null(json_object_get(find_reply(ma, 2), "subscribe"));
    assert_int_equal(count_pushes(ma, "join", a->conn->client_id), 1);
    assert_int_equal(count_pushes(ma, "join", b->conn->client_id), 1);
    json_t *stats = json_object_get(find_reply(mb, 3), "presence_stats");
    assert_int_equal(json_integer_value(json_object_get(stats, "num_clients")), 2);
    /* b did not ask for join/leave: no pushes. */
    assert_int_equal(json_array_size(mb), 3);
    ps_test_peer *peers[] = {a, b};
    check(peers, 2);
    json_decref(ma);
    json_decref(mb);
    ps_test_peer_clear(a);
    ps_test_peer_drop(&t, b); /* the socket dies */
    ma = peer_messages(a);
    assert_int_equal(json_array_size(ma), 1);
    assert_int_equal(count_pushes(ma, "leave", b->client_id), 1);
    json_decref(ma);
    check(peers, 2);
    ps_test_peer_free(&t, a);
    ps_test_peer_free(&t, b);
}

static void test_fragments(void **state)
{
    (void)state;
    ps_test_peer *a = ps_test_peer_open(&t);
    const char *cmd = "{\"connect\":{},\"id\":1}";
    assert_true(ps_test_peer_frame(&t, a, PS_WS_TEXT, false, cmd, 5));
    /* A ping between fragments is answered at once. */
    assert_true(ps_test_peer_frame(&t, a, PS_WS_PING, true, "hi", 2));
    assert_true(ps_test_peer_frame(&t, a, PS_WS_CONTINUATION, false, cmd + 5, 3));
    assert_true(ps_test_peer_frame(&t, a, PS_WS_CONTINUATION, true, cmd + 8,
                                   strlen(cmd) - 8));
    assert_int_equal(a->frames[0].opcode, PS_WS_PONG);
    assert_string_equal(a->frames[0].data, "hi");
    json_t *m = peer_messages(a);
    assert_non_null(json_object_get(find_reply(m, 1), "connect"));
    json_decref(m);
    ps_test_peer_free(&t, a);
}

static void test_protocol_errors(void **state)
{
    (void)state;
    /* A continuation with nothing to continue. */
    ps_test_peer *a = ps_test_peer_open(&t);
    assert_false(ps_test_peer_frame(&t, a, PS_WS_CONTINUATION, true, "{}", 2));
    assert_int_equal(a->close_code, 1002);
    assert_true(a->closed);
    /* A new message before the last one ended. */
    ps_test_peer *b = ps_test_peer_open(&t);
    assert_true(ps_test_peer_frame(&t, b, PS_WS_TEXT, false, "{", 1));
    assert_false(ps_test_peer_frame(&t, b, PS_WS_TEXT, true, "{}", 2));
    assert_int_equal(b->close_code, 1002);
    /* An unknown opcode drops the transport. */
    ps_test_peer *c = ps_test_peer_open(&t);
    assert_false(ps_test_peer_frame(&t, c, 0x3, true, "", 0));
    assert_true(c->closed);
    ps_test_peer_free(&t, a);
    ps_test_peer_free(&t, b);
    ps_test_peer_free(&t, c);
}

static void test_size_limit(void **state)
{
    (void)state;
    char big[1100];
    memset(big, ' ', sizeof big);
    /* One frame over the limit. */
    ps_test_peer *a = ps_test_peer_open(&t);
    assert_false(ps_test_peer_frame(&t, a, PS_WS_TEXT, true, big, sizeof big));
    assert_int_equal(a->close_code, 1009);
    assert_string_equal(a->close_reason, "message too big");
    /* Fragments that add up to more than the limit. */
    ps_test_peer *b = ps_test_peer_open(&t);
    assert_true(ps_test_peer_frame(&t, b, PS_WS_TEXT, false, big, 600));
    assert_false(ps_test_peer_frame(&t, b, PS_WS_CONTINUATION, true, big, 600));
    assert_int_equal(b->close_code, 1009);
    /* Exactly the limit is fine (spaces: blank lines, nothing to run). */
    ps_test_peer *c = ps_test_peer_open(&t);
    assert_true(ps_test_peer_frame(&t, c, PS_WS_TEXT, true, big, 1024));
    assert_int_equal(c->close_code, 0);
    ps_test_peer_free(&t, a);
    ps_test_peer_free(&t, b);
    ps_test_peer_free(&t, c);
}

/* {"connect":{"data":[[...]]},"id":1} nesting @p depth in all. */
static char *nested_connect(int depth)
{
    char *s = malloc(64 + 2 * (size_t)depth);
    int arrays = depth - 2;
    strcpy(s, "{\"connect\":{\"data\":");
    size_t k = strlen(s);
    for (int i = 0; i < arrays; i++) s[k++] = '[';
    for (int i = 0; i < arrays; i++) s[k++] = ']';
    strcpy(s + k, "},\"id\":1}");
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    char *ok = nested_connect(PS_JSON_MAX_DEPTH);
    char *deep = nested_connect(PS_JSON_MAX_DEPTH + 1);
    ps_test_peer *a = ps_test_peer_open(&t);
    assert_true(ps_test_peer_send(&t, a, ok));
    assert_true(a->conn->connected);
    ps_test_peer *b = ps_test_peer_open(&t);
    assert_false(ps_test_peer_send(&t, b, deep));
    assert_int_equal(b->close_code, 3501);
    assert_string_equal(b->close_reason, "bad request: too deep");
    /* Brackets inside strings do not count. */
    ps_test_peer *c = ps_test_peer_open(&t);
    assert_true(ps_test_peer_send(&t, c,
        "{\"connect\":{\"data\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[\"},\"id\":1}"));
    assert_true(c->conn->connected);
    assert_true(ps_wire_depth_ok("[]", 2, 1));
    assert_false(ps_wire_depth_ok("[[]]", 4, 1));
    assert_true(ps_wire_depth_ok("\"[[\\\"[\"", 7, 0));
    free(ok);
    free(deep);
    ps_test_peer_free(&t, a);
    ps_test_peer_free(&t, b);
    ps_test_peer_free(&t, c);
}

static void test_closed_connection_runs_nothing(void **state)
{
    (void)state;
    ps_test_peer *a = ps_test_peer_open(&t);
    assert_true(ps_test_peer_send(&t, a, "{\"connect\":{},\"id\":1}"));
    /* A close requested elsewhere (a lost push, the heartbeat): the next
     * frame runs no command and ends the session with that close. */
    ps_conn_request_close(a->conn, 3004, "internal server error");
    assert_false(ps_test_peer_send(&t, a,
        "{\"subscribe\":{\"channel\":\"room:x\"},\"id\":2}"));
    assert_int_equal(a->close_code, 3004);
    presence_channel_stats st;
    assert_int_equal(presence_stats(t.server.registry, "room:x", presence_trusted(), &st), 0);
    assert_int_equal(st.num_clients, 0);
    ps_test_peer_free(&t, a);
}

static json_int_t error_code(json_t *all, json_int_t id)
{
    json_t *reply = find_reply(all, id);
    assert_non_null(reply);
    return json_integer_value(
        json_object_get(json_object_get(reply, "error"), "code"));
}

/* Channel names as libpresence checks and splits them, also before a
 * channel reaches the registry: a bad name is a bad request (107), a
 * namespace the config does not list an unknown channel (102), and a name
 * with nothing before the separator belongs to the default namespace. */
static void test_channel_names(void **state)
{
    (void)state;
    char msg[1024];
    char long_name[252]; /* "room:" and 251 bytes: one over 255 */
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    snprintf(msg, sizeof msg,
             "{\"connect\":{},\"id\":1}\n"
             "{\"subscribe\":{\"channel\":\"room:bad\\u0001name\"},\"id\":2}\n"
             "{\"subscribe\":{\"channel\":\"room:%s\"},\"id\":3}\n"
             "{\"subscribe\":{\"channel\":\"nope:1\"},\"id\":4}\n"
             "{\"subscribe\":{\"channel\":\":x\"},\"id\":5}\n"
             "{\"subscribe\":{\"channel\":\"plain\"},\"id\":6}\n"
             "{\"subscribe\":{\"channel\":\"room:ok\"},\"id\":7}",
             long_name);
    ps_test_peer *a = ps_test_peer_open(&t);
    assert_true(ps_test_peer_send(&t, a, msg));
    json_t *m = peer_messages(a);
    assert_int_equal(error_code(m, 2), 107);
    assert_int_equal(error_code(m, 3), 107);
    assert_int_equal(error_code(m, 4), 102);
    assert_int_not_equal(error_code(m, 5), 102);
    assert_int_equal(error_code(m, 5), error_code(m, 6));
    assert_non_null(json_object_get(find_reply(m, 7), "subscribe"));
    json_decref(m);
    ps_test_peer *peers[] = {a};
    check(peers, 1);
    ps_test_peer_free(&t, a);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands_replies_and_pushes),
        cmocka_unit_test(test_fragments),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_closed_connection_runs_nothing),
        cmocka_unit_test(test_channel_names),
    };
    return cmocka_run_group_tests_name("server sessions", tests, setup, teardown);
}
