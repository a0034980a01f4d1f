/*
 * The other nodes' members, as libpresence-cluster applies them: with
 * presence_remote_join(), presence_remote_leave() and presence_node_down()
 * called from a thread of their own, as the cluster's thread calls them
 * (the registry's event callback, ps_hub_on_event, then runs there). Local
 * subscribers get the join and leave pushes, presence and presence_stats
 * answer with the remote members, and nothing needs Redis.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../writer.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static const char config_json[] =
    "{\"allow_anonymous_connect_without_token\":true,"
    "\"namespaces\":[{\"name\":\"room\",\"presence\":true,\"join_leave\":true,"
    "\"allow_subscribe_for_client\":true,\"allow_subscribe_for_anonymous\":true,"
    "\"allow_presence_for_subscriber\":true,\"allow_presence_for_anonymous\":true},"
    "{\"name\":\"quiet\",\"presence\":true,"
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

/* ---- the cluster's thread, played by a thread of the test ------------- */

typedef enum remote_op { REMOTE_JOIN, REMOTE_LEAVE, NODE_DOWN } remote_op;

typedef struct remote_call {
    remote_op op;
    const char *node;
    const char *channel;
    const char *client;
    const char *user;
    const char *conn_info;
    int rc;
    size_t left;
} remote_call;

static void *remote_thread(void *arg)
{
    remote_call *c = arg;
    presence_registry *reg = t.server.registry;
    switch (c->op) {
    case REMOTE_JOIN:
        c->rc = presence_remote_join(reg, c->node, c->channel, c->client,
                                     c->user, c->conn_info,
                                     c->conn_info ? strlen(c->conn_info) : 0,
                                     NULL, 0);
        break;
    case REMOTE_LEAVE:
        c->rc = presence_remote_leave(reg, c->node, c->channel, c->client,
                                      PRESENCE_LEAVE_DISCONNECT);
        break;
    case NODE_DOWN:
        c->rc = presence_node_down(reg, c->node, PRESENCE_LEAVE_NODE_DOWN,
                                   &c->left);
        break;
    }
    return NULL;
}

/* Run one call on another thread, then flush what it queued to the peers
 * (the writer threads would). */
static remote_call remote(remote_call c)
{
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, remote_thread, &c), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    ps_writer_drain(&t.server.writer);
    return c;
}

static void remote_join(const char *node, const char *channel,
                        const char *client, const char *user,
                        const char *conn_info)
{
    remote_call c = remote((remote_call){REMOTE_JOIN, node, channel, client,
                                         user, conn_info, -1, 0});
    assert_int_equal(c.rc, PRESENCE_OK);
}

/* ---- helpers ------------------------------------------------------------ */

static ps_test_peer *subscriber(const char *channel, bool join_leave)
{
    ps_test_peer *p = ps_test_peer_open(&t);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "{\"connect\":{},\"id\":1}\n"
             "{\"subscribe\":{\"channel\":\"%s\",\"join_leave\":%s},\"id\":2}",
             channel, join_leave ? "true" : "false");
    assert_true(ps_test_peer_send(&t, p, cmd));
    json_t *m = peer_messages(p);
    assert_non_null(json_object_get(find_reply(m, 2), "subscribe"));
    /* Members that joined earlier, remote ones included, are in presence,
     * never pushed: the only push so far is the subscriber's own join. */
    size_t i;
    json_t *msg;
    json_array_foreach(m, i, msg) {
        json_t *push = json_object_get(msg, "push");
        if (push != NULL) {
            json_t *info = json_object_get(json_object_get(push, "join"), "info");
            assert_non_null(info);
            assert_string_equal(json_string_value(json_object_get(info, "client")),
                                p->conn->client_id);
        }
    }
    json_decref(m);
    ps_test_peer_clear(p);
    return p;
}

/* The presence reply's members for @p channel (a new reference). */
static json_t *presence_of(ps_test_peer *p, const char *channel)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "{\"presence\":{\"channel\":\"%s\"},\"id\":90}",
             channel);
    assert_true(ps_test_peer_send(&t, p, cmd));
    json_t *m = peer_messages(p);
    json_t *reply = find_reply(m, 90);
    json_t *out = json_incref(
        json_object_get(json_object_get(reply, "presence"), "presence"));
    assert_non_null(out);
    json_decref(m);
    ps_test_peer_clear(p);
    return out;
}

static void assert_stats(ps_test_peer *p, const char *channel, int clients,
                         int users)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "{\"presence_stats\":{\"channel\":\"%s\"},\"id\":91}", channel);
    assert_true(ps_test_peer_send(&t, p, cmd));
    json_t *m = peer_messages(p);
    json_t *st = json_object_get(find_reply(m, 91), "presence_stats");
    assert_int_equal(json_integer_value(json_object_get(st, "num_clients")),
                     clients);
    assert_int_equal(json_integer_value(json_object_get(st, "num_users")),
                     users);
    json_decref(m);
    ps_test_peer_clear(p);
}

/* ---- tests -------------------------------------------------------------- */

static void test_remote_join_and_leave_are_pushed(void **state)
{
    (void)state;
    ps_test_peer *a = subscriber("room:1", true);
    ps_test_peer *quiet = subscriber("room:1", false);
    ps_test_peer_clear(a); /* quiet's join */

    remote_join("node-b", "room:1", "remote-1", "bob", "{\"n\":1}");
    json_t *m = peer_messages(a);
    assert_int_equal(json_array_size(m), 1);
    assert_int_equal(count_pushes(m, "join", "remote-1"), 1);
    json_t *info = json_object_get(json_object_get(json_object_get(
        json_array_get(m, 0), "push"), "join"), "info");
    assert_string_equal(json_string_value(json_object_get(info, "user")), "bob");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(info, "conn_info"), "n")),
                     1);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_array_get(m, 0), "push"),
                            "channel")),
                        "room:1");
    json_decref(m);
    ps_test_peer_clear(a);
    /* A subscriber that did not ask for join/leave gets nothing. */
    assert_int_equal(quiet->count, 0);

    /* Presence and stats answer for the other node too. */
    json_t *members = presence_of(a, "room:1");
    assert_int_equal(json_object_size(members), 3);
    json_t *bob = json_object_get(members, "remote-1");
    assert_string_equal(json_string_value(json_object_get(bob, "user")), "bob");
    assert_string_equal(json_string_value(json_object_get(bob, "client")),
                        "remote-1");
    json_decref(members);
    assert_stats(a, "room:1", 3, 2); /* two anonymous locals count once */

    remote_call c = remote((remote_call){REMOTE_LEAVE, "node-b", "room:1",
                                         "remote-1", NULL, NULL, -1, 0});
    assert_int_equal(c.rc, PRESENCE_OK);
    m = peer_messages(a);
    assert_int_equal(json_array_size(m), 1);
    assert_int_equal(count_pushes(m, "leave", "remote-1"), 1);
    json_decref(m);
    ps_test_peer_clear(a);
    assert_stats(a, "room:1", 2, 1);

    ps_test_peer *peers[] = {a, quiet};
    char why[256];
    if (ps_test_check(&t, peers, 2, why, sizeof why) != 0) {
        fail_msg("%s", why);
    }
    ps_test_peer_free(&t, a);
    ps_test_peer_free(&t, quiet);
}

static void test_node_down_leaves_every_channel(void **state)
{
    (void)state;
    ps_test_peer *a = subscriber("room:1", true);
    ps_test_peer *b = subscriber("room:2", true);
    remote_join("node-c", "room:1", "c-1", "carol", NULL);
    remote_join("node-c", "room:2", "c-1", "carol", NULL);
    remote_join("node-c", "room:2", "c-2", "dan", NULL);
    remote_join("node-d", "room:2", "d-1", "erin", NULL);
    ps_test_peer_clear(a);
    ps_test_peer_clear(b);

    remote_call c = remote((remote_call){NODE_DOWN, "node-c", NULL, NULL, NULL,
                                         NULL, -1, 0});
    assert_int_equal(c.rc, PRESENCE_OK);
    assert_int_equal(c.left, 3);
    json_t *ma = peer_messages(a);
    json_t *mb = peer_messages(b);
    assert_int_equal(json_array_size(ma), 1);
    assert_int_equal(count_pushes(ma, "leave", "c-1"), 1);
    assert_int_equal(json_array_size(mb), 2);
    assert_int_equal(count_pushes(mb, "leave", "c-1"), 1);
    assert_int_equal(count_pushes(mb, "leave", "c-2"), 1);
    json_decref(ma);
    json_decref(mb);
    ps_test_peer_clear(a);
    ps_test_peer_clear(b);
    assert_stats(b, "room:2", 2, 2); /* b and node-d's erin */

    c = remote((remote_call){NODE_DOWN, "node-d", NULL, NULL, NULL, NULL, -1,
                             0});
    assert_int_equal(c.left, 1);
    ps_test_peer *peers[] = {a, b};
    char why[256];
    if (ps_test_check(&t, peers, 2, why, sizeof why) != 0) {
        fail_msg("%s", why);
    }
    ps_test_peer_free(&t, a);
    ps_test_peer_free(&t, b);
}

/* Remote members that joined before a subscriber are in its presence
 * reply, not pushed to it; a namespace without join_leave pushes nothing
 * but answers presence; a local client's unsubscribe and close leave the
 * remote members alone. */
static void test_earlier_members_and_quiet_namespaces(void **state)
{
    (void)state;
    remote_join("node-e", "room:3", "e-1", "eve", NULL);
    remote_join("node-e", "quiet:1", "e-1", "eve", NULL);
    ps_test_peer *a = subscriber("room:3", true);
    ps_test_peer *q = subscriber("quiet:1", true);
    json_t *members = presence_of(a, "room:3");
    assert_non_null(json_object_get(members, "e-1"));
    json_decref(members);
    members = presence_of(q, "quiet:1");
    assert_int_equal(json_object_size(members), 2);
    json_decref(members);
    remote_join("node-e", "quiet:1", "e-2", "eric", NULL);
    assert_int_equal(q->count, 0);
    assert_stats(q, "quiet:1", 3, 3);

    assert_true(ps_test_peer_send(
        &t, a, "{\"unsubscribe\":{\"channel\":\"room:3\"},\"id\":5}"));
    ps_test_peer_drop(&t, q);
    ps_test_peer *b = subscriber("quiet:1", false);
    assert_stats(b, "quiet:1", 3, 3);
    members = presence_of(b, "quiet:1");
    assert_non_null(json_object_get(members, "e-1"));
    assert_non_null(json_object_get(members, "e-2"));
    json_decref(members);

    remote_call c = remote((remote_call){NODE_DOWN, "node-e", NULL, NULL, NULL,
                                         NULL, -1, 0});
    assert_int_equal(c.left, 3);
    assert_stats(b, "quiet:1", 1, 1);
    ps_test_peer_free(&t, a);
    ps_test_peer_free(&t, q);
    ps_test_peer_free(&t, b);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_remote_join_and_leave_are_pushed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_down_leaves_every_channel,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_earlier_members_and_quiet_namespaces, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
