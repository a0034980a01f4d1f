/*
 * The presence_coalesce keys: join/leave subscribers of such a namespace
 * get one "presence_diff" push per channel per window instead of a push
 * per join and leave; a join and a leave inside the window cancel out;
 * above presence_count_only_above the diff carries counts only; the
 * heartbeat's tick sends what is due. And the keys' parsing.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"


#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define SECRET "coalesce-secret"

static ps_test_server t;

#define NS(name, extra)                                                        \
    "{\"name\":\"" name "\",\"presence\":true,\"join_leave\":true,"           \
    "\"allow_subscribe_for_client\":true,"                                     \
    "\"allow_presence_for_subscriber\":true" extra "}"

static const char config_json[] =
    "{\"token_hmac_secret_key\":\"" SECRET "\",\"namespaces\":["
    NS("room", ",\"presence_coalesce\":\"1s\"") ","
    NS("huge", ",\"presence_coalesce\":\"1s\",\"presence_count_only_above\":2,"
               "\"presence_count_only_below\":1") ","
    NS("fast", ",\"presence_coalesce\":\"1ms\"") ","
    NS("plain", "") "]}";

static ps_test_peer *connect_as(const char *user)
{
    ps_test_peer *p = peer_connect_as(&t, SECRET, user);
    assert_non_null(p);
    assert_true(p->conn != NULL && p->conn->connected);
    return p;
}

static void subscribe(ps_test_peer *p, const char *channel)
{
    assert_true(peer_subscribe(&t, p, channel));
}

/* Flush as if window_ms had passed, and hand the pushes to the peers. */
static void flush_after(int64_t window_ms)
{
    presence_registry *reg = t.server.registry;
    assert_int_equal(presence_flush(reg, presence_now_ms(reg) + window_ms,
                                     NULL),
                     PRESENCE_OK);
    ps_writer_drain(&t.server.writer);
}

/* The presence_diff pushes a peer got (a new array of their bodies). */
static json_t *diffs_of(const ps_test_peer *p, const char *channel)
{
    json_t *all = peer_messages(p);
    json_t *out = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m) {
        json_t *push = json_object_get(m, "push");
        json_t *d = json_object_get(push, "presence_diff");
        const char *ch = json_string_value(json_object_get(push, "channel"));
        if (d != NULL && ch != NULL && strcmp(ch, channel) == 0) {
            json_array_append(out, d);
        }
    }
    json_decref(all);
    return out;
}

/* The client ids in a diff's list of kind ("join", "leave", "update"),
 * comma-separated, in order (a static buffer: read it before the next
 * call). */
static char *ids_in(json_t *diff, const char *kind)
{
    static char buf[1024];
    buf[0] = '\0';
    size_t i;
    json_t *info;
    json_array_foreach(json_object_get(diff, kind), i, info) {
        if (buf[0] != '\0') {
            strcat(buf, ",");
        }
        strcat(buf, json_string_value(json_object_get(info, "client")));
    }
    return buf;
}

static size_t pushes(ps_test_peer *p, const char *kind, const char *client)
{
    json_t *all = peer_messages(p);
    size_t n = count_pushes(all, kind, client);
    json_decref(all);
    return n;
}

static void test_diff_pushes(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(ps_test_server_init(&t, config_json, err, sizeof err), 0);
    ps_test_peer *bob = connect_as("bob");
    subscribe(bob, "room:1");
    flush_after(1000); /* bob's own join: the first diff */
    json_t *d = diffs_of(bob, "room:1");
    assert_int_equal(json_array_size(d), 1);
    json_t *first = json_array_get(d, 0);
    assert_string_equal(ids_in(first, "join"), bob->conn->client_id);
    json_int_t offset = json_integer_value(json_object_get(first, "offset"));
    const char *epoch = json_string_value(json_object_get(first, "epoch"));
    assert_non_null(epoch);
    char epoch_copy[32];
    snprintf(epoch_copy, sizeof epoch_copy, "%s", epoch);
    json_decref(d);
    ps_test_peer_clear(bob);

    /* alice comes; carol comes and goes: nothing pushed before the window
     * ends, then one diff with alice's join and nothing of carol. */
    ps_test_peer *alice = connect_as("alice");
    subscribe(alice, "room:1");
    ps_test_peer *carol = connect_as("carol");
    subscribe(carol, "room:1");
    char carol_id[PS_UUID_SIZE];
    memcpy(carol_id, carol->conn->client_id, PS_UUID_SIZE);
    ps_test_peer_drop(&t, carol);
    ps_writer_drain(&t.server.writer);
    assert_int_equal(bob->count, 0);
    assert_int_equal(pushes(bob, "join", alice->conn->client_id), 0);
    flush_after(1000);
    assert_int_equal(pushes(bob, "join", alice->conn->client_id), 0);
    assert_int_equal(pushes(bob, "leave", carol_id), 0);
    d = diffs_of(bob, "room:1");
    assert_int_equal(json_array_size(d), 1);
    json_t *second = json_array_get(d, 0);
    assert_string_equal(ids_in(second, "join"), alice->conn->client_id);
    assert_null(json_object_get(second, "leave"));
    json_t *from = json_object_get(second, "from");
    assert_int_equal(json_integer_value(json_object_get(from, "offset")),
                     offset);
    assert_string_equal(json_string_value(json_object_get(from, "epoch")),
                        epoch_copy);
    assert_int_equal(json_integer_value(json_object_get(second, "offset")),
                     offset + 3);
    assert_int_equal(
        json_integer_value(json_object_get(second, "num_clients")), 2);
    json_decref(d);
    /* alice, whose own join started her, got the same diff. */
    d = diffs_of(alice, "room:1");
    assert_int_equal(json_array_size(d), 1);
    json_decref(d);

    /* A namespace without the key still pushes join by join. */
    ps_test_peer_clear(bob);
    subscribe(bob, "plain:1");
    subscribe(alice, "plain:1");
    assert_int_equal(pushes(bob, "join", alice->conn->client_id), 1);

    ps_test_peer *peers[] = {bob, alice, carol};
    char why[256];
    if (ps_test_check(&t, peers, 3, why, sizeof why) != 0) {
        fail_msg("%s", why);
    }
    for (size_t i = 0; i < 3; i++) {
        ps_test_peer_free(&t, peers[i]);
    }
    ps_test_server_fini(&t);
}

static void test_count_only_and_tick(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(ps_test_server_init(&t, config_json, err, sizeof err), 0);
    ps_test_peer *peers[4];
    static const char *const users[] = {"u0", "u1", "u2", "u3"};
    for (size_t i = 0; i < 4; i++) {
        peers[i] = connect_as(users[i]);
        subscribe(peers[i], "huge:1");
    }
    flush_after(1000);
    /* Three members went above 2: the window's diff is counts only. */
    json_t *d = diffs_of(peers[0], "huge:1");
    assert_int_equal(json_array_size(d), 1);
    json_t *diff = json_array_get(d, 0);
    assert_true(json_is_true(json_object_get(diff, "count_only")));
    assert_null(json_object_get(diff, "join"));
    assert_int_equal(json_integer_value(json_object_get(diff, "joined")), 4);
    assert_int_equal(json_integer_value(json_object_get(diff, "num_clients")),
                     4);
    json_decref(d);

    /* The heartbeat's tick sends what is due on the real clock. */
    ps_test_peer_clear(peers[0]);
    subscribe(peers[0], "fast:1");
    subscribe(peers[1], "fast:1");
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    ps_server_expire_due(&t.server);
    ps_writer_drain(&t.server.writer);
    d = diffs_of(peers[0], "fast:1");
    assert_int_equal(json_array_size(d), 1);
    assert_int_equal(
        json_integer_value(json_object_get(json_array_get(d, 0), "joined")),
        2);
    json_decref(d);

    char why[256];
    if (ps_test_check(&t, peers, 4, why, sizeof why) != 0) {
        fail_msg("%s", why);
    }
    for (size_t i = 0; i < 4; i++) {
        ps_test_peer_free(&t, peers[i]);
    }
    ps_test_server_fini(&t);
}

static void test_config_keys(void **state)
{
    (void)state;
    static const struct {
        const char *keys;
        int64_t ms;      /* -1: refused */
        size_t above, below;
        const char *err; /* in the message when refused */
    } cases[] = {
        {"\"presence_coalesce\":\"500ms\"", 500, 0, 0, NULL},
        {"\"presence_coalesce\":2,\"presence_count_only_above\":100,"
         "\"presence_count_only_below\":80",
         2000, 100, 80, NULL},
        {"\"presence_coalesce\":\"later\"", -1, 0, 0, "presence_coalesce"},
        {"\"presence_count_only_above\":-1", -1, 0, 0,
         "presence_count_only_above"},
        {"\"presence_count_only_above\":\"x\"", -1, 0, 0,
         "presence_count_only_above"},
        {"\"presence_coalesce\":1,\"presence_count_only_above\":5,"
         "\"presence_count_only_below\":6",
         -1, 0, 0, "presence_count_only_below"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[512];
        snprintf(json, sizeof json, "{\"namespaces\":[{\"name\":\"ns\",%s}]}",
                 cases[i].keys);
        ps_config cfg;
        char err[256] = "";
        int rc = ps_config_load_buffer(&cfg, json, strlen(json), err,
                                       sizeof err);
        if (cases[i].ms < 0) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, cases[i].err));
            continue;
        }
        assert_int_equal(rc, 0);
        const ps_channel_options *o = &cfg.namespaces[0].options;
        assert_int_equal(o->presence_coalesce_ms, cases[i].ms);
        assert_int_equal(o->presence_count_only_above, cases[i].above);
        assert_int_equal(o->presence_count_only_below, cases[i].below);
        ps_config_free(&cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_pushes),
        cmocka_unit_test(test_count_only_and_tick),
        cmocka_unit_test(test_config_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
