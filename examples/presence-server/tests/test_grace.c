/*
 * The presence_leave_grace key: a user whose connection drops and who
 * reconnects (with a new client id, as every connection gets) within the
 * grace keeps its place, and nobody is pushed a leave or a join; one who
 * does not come back is pushed as leaving when the grace ends. And the
 * key's parsing.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"


#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#define SECRET "grace-secret"

static ps_test_server t;

static const char config_json[] =
    "{\"token_hmac_secret_key\":\"" SECRET "\","
    "\"namespaces\":[{\"name\":\"room\",\"presence\":true,\"join_leave\":true,"
    "\"allow_subscribe_for_client\":true,\"allow_presence_for_subscriber\":true,"
    "\"presence_leave_grace\":\"5s\"},"
    "{\"name\":\"plain\",\"presence\":true,\"join_leave\":true,"
    "\"allow_subscribe_for_client\":true,\"allow_presence_for_subscriber\":true}]}";

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

static size_t pushes(ps_test_peer *p, const char *kind, const char *client)
{
    json_t *all = peer_messages(p);
    size_t n = count_pushes(all, kind, client);
    json_decref(all);
    return n;
}

static size_t num_clients(const char *channel)
{
    presence_channel_stats st;
    assert_int_equal(presence_stats(t.server.registry, channel,
                                    presence_trusted(), &st),
                     PRESENCE_OK);
    return st.num_clients;
}

static void check(ps_test_peer **peers, size_t n)
{
    char why[256];
    if (ps_test_check(&t, peers, n, why, sizeof why) != 0) {
        fail_msg("%s", why);
    }
}

static void test_reconnect_within_grace(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(ps_test_server_init(&t, config_json, err, sizeof err), 0);
    ps_test_peer *watcher = connect_as("bob");
    subscribe(watcher, "room:1");
    subscribe(watcher, "plain:1");
    ps_test_peer *a1 = connect_as("alice");
    subscribe(a1, "room:1");
    subscribe(a1, "plain:1");
    char a1_id[PS_UUID_SIZE];
    memcpy(a1_id, a1->conn->client_id, PS_UUID_SIZE);
    assert_int_equal(pushes(watcher, "join", a1_id), 2);
    ps_test_peer_clear(watcher);

    /* The socket dies: in room, alice stays (in grace); plain has none. */
    ps_test_peer_drop(&t, a1);
    assert_int_equal(pushes(watcher, "leave", a1_id), 1); /* plain:1 only */
    assert_int_equal(num_clients("room:1"), 2);
    assert_int_equal(num_clients("plain:1"), 1);
    ps_test_peer *peers[4] = {watcher, a1, NULL, NULL};
    check(peers, 2);

    /* She reconnects with a new client id and takes her place. */
    ps_test_peer_clear(watcher);
    ps_test_peer *a2 = connect_as("alice");
    subscribe(a2, "room:1");
    assert_int_equal(watcher->count, 0);
    assert_int_equal(num_clients("room:1"), 2);
    presence_snapshot *snap;
    assert_int_equal(presence_query(t.server.registry, "room:1",
                                    presence_trusted(), &snap),
                     PRESENCE_OK);
    bool old_seen = false, new_seen = false;
    for (size_t i = 0; i < snap->count; i++) {
        old_seen |= strcmp(snap->members[i].client_id, a1_id) == 0;
        new_seen |= strcmp(snap->members[i].client_id,
                           a2->conn->client_id) == 0;
        assert_false(snap->members[i].in_grace);
    }
    presence_snapshot_free(snap);
    assert_false(old_seen);
    assert_true(new_seen);
    peers[2] = a2;
    check(peers, 3);

    /* Her new connection gets the pushes that follow. */
    ps_test_peer_clear(a2);
    ps_test_peer *carol = connect_as("carol");
    subscribe(carol, "room:1");
    assert_int_equal(pushes(a2, "join", carol->conn->client_id), 1);
    assert_int_equal(pushes(watcher, "join", carol->conn->client_id), 1);
    peers[3] = carol;

    /* Gone for good: the leave is pushed when the grace ends. */
    ps_test_peer_clear(watcher);
    char a2_id[PS_UUID_SIZE];
    memcpy(a2_id, a2->conn->client_id, PS_UUID_SIZE);
    ps_test_peer_drop(&t, a2);
    assert_int_equal(watcher->count, 0);
    ps_server_expire_due(&t.server); /* not due yet */
    assert_int_equal(watcher->count, 0);
    size_t expired = 0;
    assert_int_equal(presence_expire(t.server.registry,
                                     presence_now_ms(t.server.registry) + 5000,
                                     &expired, NULL),
                     PRESENCE_OK);
    assert_int_equal(expired, 1);
    ps_writer_drain(&t.server.writer);
    assert_int_equal(pushes(watcher, "leave", a2_id), 1);
    assert_int_equal(num_clients("room:1"), 2);
    check(peers, 4);
    for (size_t i = 0; i < 4; i++) {
        ps_test_peer_free(&t, peers[i]);
    }
    assert_int_equal(presence_expire(t.server.registry, INT64_MAX - 1, NULL,
                                     NULL),
                     PRESENCE_OK);
    ps_test_server_fini(&t);
}

static void test_config_key(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int64_t ms; /* -1: refused */
    } cases[] = {
        {"\"500ms\"", 500}, {"\"2s\"", 2000}, {"3", 3000},
        {"\"soon\"", -1},   {"-1", -1},       {"true", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[256];
        snprintf(json, sizeof json,
                 "{\"namespaces\":[{\"name\":\"ns\",\"presence_leave_grace\":%s}],"
                 "\"presence_leave_grace\":%s}",
                 cases[i].value, cases[i].value);
        ps_config cfg;
        char err[256] = "";
        int rc = ps_config_load_buffer(&cfg, json, strlen(json), err,
                                       sizeof err);
        if (cases[i].ms < 0) {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(err, "presence_leave_grace"));
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(cfg.root.presence_leave_grace_ms, cases[i].ms);
        assert_int_equal(cfg.namespaces[0].options.presence_leave_grace_ms,
                         cases[i].ms);
        ps_config_free(&cfg);
    }
}

/* Warm restart: saved at shutdown, loaded at start, every old
 * connection in grace; users who reconnect take their places with
 * nothing pushed to anyone. */
static void test_warm_restart(void **state)
{
    (void)state;
    char dir[128];
    assert_non_null(make_temp_dir(dir, sizeof dir, "ps-state"));
    char path[256];
    snprintf(path, sizeof path, "%s/registry.state", dir);
    char json[1024];
    snprintf(json, sizeof json,
             "{\"token_hmac_secret_key\":\"" SECRET "\","
             "\"state_file\":\"%s\","
             "\"namespaces\":[{\"name\":\"room\",\"presence\":true,"
             "\"join_leave\":true,\"allow_subscribe_for_client\":true,"
             "\"allow_presence_for_subscriber\":true,"
             "\"presence_leave_grace\":\"5s\"}]}",
             path);
    char err[256];
    assert_int_equal(ps_test_server_init(&t, json, err, sizeof err), 0);
    ps_test_peer *bob = connect_as("bob");
    subscribe(bob, "room:1");
    ps_test_peer *alice = connect_as("alice");
    subscribe(alice, "room:1");
    assert_int_equal(ps_server_save_state(&t.server), 0);
    ps_test_peer_free(&t, bob);
    ps_test_peer_free(&t, alice);
    ps_test_server_fini(&t);

    /* The next start. */
    assert_int_equal(ps_test_server_init(&t, json, err, sizeof err), 0);
    assert_int_equal(num_clients("room:1"), 2);
    ps_test_peer *bob2 = connect_as("bob");
    subscribe(bob2, "room:1");
    ps_test_peer_clear(bob2);
    ps_test_peer *alice2 = connect_as("alice");
    subscribe(alice2, "room:1");
    assert_int_equal(bob2->count, 0); /* no join pushed */
    assert_int_equal(num_clients("room:1"), 2);
    assert_int_equal(presence_expire(t.server.registry,
                                     presence_now_ms(t.server.registry) + 6000,
                                     NULL, NULL),
                     PRESENCE_OK);
    ps_writer_drain(&t.server.writer);
    assert_int_equal(bob2->count, 0); /* and no leave */
    assert_int_equal(num_clients("room:1"), 2);
    ps_test_peer *peers[] = {bob2, alice2};
    check(peers, 2);
    ps_test_peer_free(&t, bob2);
    ps_test_peer_free(&t, alice2);
    assert_int_equal(presence_expire(t.server.registry, INT64_MAX - 1, NULL,
                                     NULL),
                     PRESENCE_OK);
    ps_test_server_fini(&t);
    /* A damaged file: the server starts empty. */
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fputc('X', f), 'X');
    fclose(f);
    assert_int_equal(ps_test_server_init(&t, json, err, sizeof err), 0);
    assert_int_equal(num_clients("room:1"), 0);
    ps_test_server_fini(&t);
    assert_int_equal(remove(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reconnect_within_grace),
        cmocka_unit_test(test_config_key),
        cmocka_unit_test(test_warm_restart),
    };
    return cmocka_run_group_tests_name("server leave grace", tests, NULL,
                                       NULL);
}
