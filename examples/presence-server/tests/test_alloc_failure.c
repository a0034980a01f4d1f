/*
 * Allocation failure on the server's command paths: connect, subscribe,
 * presence, unsubscribe and the end of a transport. Each path is run again
 * and again with its 1st, 2nd, 3rd... allocation failing (the server's,
 * jansson's and libpresence's all go through the same hooks), until it runs
 * through without a failure. Every time, the client must get its answer,
 * an error reply, or a 3004 close, and the hub and the registry must agree:
 * no membership is left half made, no subscriber without its membership,
 * no ghost; and under AddressSanitizer, no leak.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../token.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static const char config_json[] =
    "{\"token_hmac_secret_key\":\"oom-secret\","
    "\"allow_anonymous_connect_without_token\":true,"
    "\"namespaces\":[{\"name\":\"room\",\"presence\":true,\"join_leave\":true,"
    "\"allow_subscribe_for_client\":true,"
    "\"allow_presence_for_subscriber\":true}]}";

typedef struct world {
    ps_test_server t;
    ps_test_peer *watcher; /* subscribed to room:1 with join/leave pushes */
    ps_test_peer *subject; /* the peer whose command fails */
    char watcher_id[PS_UUID_SIZE];
    char *token;
} world;

static void send_ok(world *w, ps_test_peer *p, const char *text)
{
    assert_true(ps_test_peer_send(&w->t, p, text));
}

static void world_up(world *w, bool subject_connected, bool subject_subscribed)
{
    char err[256];
    assert_int_equal(ps_test_server_init(&w->t, config_json, err, sizeof err), 0);
    w->token = ps_token_mint("oom-secret", "alice", 0, "{\"name\":\"Alice\"}",
                             NULL, err, sizeof err);
    assert_non_null(w->token);
    char *watcher_token = ps_token_mint("oom-secret", "bob", 0, NULL, NULL,
                                        err, sizeof err);
    assert_non_null(watcher_token);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "{\"connect\":{\"token\":\"%s\"},\"id\":1}\n"
             "{\"subscribe\":{\"channel\":\"room:1\",\"join_leave\":true},\"id\":2}",
             watcher_token);
    ps_free(watcher_token);
    w->watcher = ps_test_peer_open(&w->t);
    send_ok(w, w->watcher, cmd);
    memcpy(w->watcher_id, w->watcher->conn->client_id, PS_UUID_SIZE);
    w->subject = ps_test_peer_open(&w->t);
    if (subject_connected) {
        snprintf(cmd, sizeof cmd, "{\"connect\":{\"token\":\"%s\"},\"id\":1}",
                 w->token);
        send_ok(w, w->subject, cmd);
        assert_true(w->subject->conn->connected);
    }
    if (subject_subscribed) {
        send_ok(w, w->subject,
                "{\"subscribe\":{\"channel\":\"room:1\",\"join_leave\":true},\"id\":2}");
    }
    ps_test_peer_clear(w->watcher);
    ps_test_peer_clear(w->subject);
}

static void world_check(world *w)
{
    ps_test_peer *peers[] = {w->watcher, w->subject};
    char why[256] = "";
    if (ps_test_check(&w->t, peers, 2, why, sizeof why) != 0) {
        fail_msg("hub and registry disagree: %s", why);
    }
}

static void world_down(world *w)
{
    ps_test_peer_free(&w->t, w->watcher);
    ps_test_peer_free(&w->t, w->subject);
    ps_test_server_fini(&w->t);
    ps_free(w->token);
    /* Leaks: LeakSanitizer, in the sanitizer build. (Counting live blocks
     * does not work here: libjwt frees some of jansson's blocks with
     * free() itself.) */
}

/* Is the subject in room:1, as the registry says? */
static bool subject_member(world *w)
{
    if (w->subject->conn == NULL) {
        return false;
    }
    presence_snapshot *snap = NULL;
    int rc = presence_client_channels(w->t.server.registry,
                                      w->subject->conn->client_id, &snap);
    bool member = rc == PRESENCE_OK && snap->count == 1;
    presence_snapshot_free(snap);
    return member;
}

/* The outcome of the subject's command: its reply, or a 3004 close. Any
 * other close, or silence, fails the test. Returns the reply (in *all, to
 * be released) or NULL for a close. */
static json_t *outcome(world *w, json_int_t id, json_t **all)
{
    *all = peer_messages(w->subject);
    json_t *reply = find_reply(*all, id);
    if (w->subject->close_code != 0) {
        if (w->subject->close_code != PS_CLOSE_INTERNAL) {
            fail_msg("allocation %lu failed: close %d %s", counting.fail_at_last,
                     w->subject->close_code, w->subject->close_reason);
        }
        assert_string_equal(w->subject->close_reason, "internal server error");
        assert_true(w->subject->closed);
        return reply;
    }
    assert_false(w->subject->closed);
    if (reply == NULL) {
        fail_msg("no reply to command %d, and no close", (int)id);
    }
    return reply;
}

/* An error reply must be error 100, temporary. */
static bool is_internal_error(json_t *reply)
{
    json_t *err = json_object_get(reply, "error");
    if (err == NULL) {
        return false;
    }
    assert_int_equal(json_integer_value(json_object_get(err, "code")), 100);
    assert_true(json_is_true(json_object_get(err, "temporary")));
    return true;
}

/* The watcher is either closed with 3004 (it missed a push) or its pushes
 * match the subject's membership. */
static void watcher_consistent(world *w, const char *subject_id, bool was_member,
                               bool is_member)
{
    json_t *all = peer_messages(w->watcher);
    if (w->watcher->close_code != 0) {
        assert_int_equal(w->watcher->close_code, PS_CLOSE_INTERNAL);
    } else {
        size_t joins = count_pushes(all, "join", subject_id);
        size_t leaves = count_pushes(all, "leave", subject_id);
        if ((int)was_member + (int)joins - (int)leaves != (int)is_member) {
            char *text = json_dumps(all, JSON_COMPACT);
            fail_msg("allocation %lu failed: member %d -> %d, but the watcher "
                     "saw %zu joins and %zu leaves: %s",
                     counting.fail_at_last, was_member, is_member, joins,
                     leaves, text);
        }
    }
    json_decref(all);
}

typedef void (*step_fn)(world *w, unsigned long fail_at, bool *failed);

/* Run a step with its Nth allocation failing, N = 1, 2, ... until the step
 * runs through without a failure; at least @p min_failures allocations must
 * have been failed on the way (the path allocates, the test bites). */
static void each_failure(step_fn step, unsigned long min_failures)
{
    unsigned long n;
    bool failed = true;
    for (n = 1; failed; n++) {
        world w;
        memset(&w, 0, sizeof w);
        step(&w, n, &failed);
        assert_true(n < 100000);
    }
    printf("# %lu allocations on the path, each failed once\n", n - 2);
    assert_true(n - 2 >= min_failures);
}

/* ---- the paths ---------------------------------------------------------- */


/* Send a frame from the subject with allocation number fail_at (counted
 * from here) failing; tells whether an allocation did fail. */
static bool send_failing(world *w, unsigned long fail_at, const char *frame)
{
    counting_arm(fail_at);
    ps_test_peer_send(&w->t, w->subject, frame);
    bool failed = counting.failed > 0;
    counting_arm(0);
    return failed;
}

static void connect_step(world *w, unsigned long fail_at, bool *failed)
{
    world_up(w, false, false);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "{\"connect\":{\"token\":\"%s\"},\"id\":7}",
             w->token);
    *failed = send_failing(w, fail_at, cmd);
    json_t *all = NULL;
    json_t *reply = outcome(w, 7, &all);
    if (w->subject->conn != NULL && !is_internal_error(reply)) {
        json_t *result = json_object_get(reply, "connect");
        assert_non_null(json_object_get(result, "client"));
        assert_non_null(json_object_get(result, "version"));
        assert_true(w->subject->conn->connected);
        assert_int_equal(w->t.server.client_count, 2);
    } else {
        assert_int_equal(w->t.server.client_count, 1);
    }
    json_decref(all);
    world_check(w);
    world_down(w);
}

static void subscribe_step(world *w, unsigned long fail_at, bool *failed)
{
    world_up(w, true, false);
    char id[PS_UUID_SIZE];
    memcpy(id, w->subject->conn->client_id, sizeof id);
    *failed = send_failing(w, fail_at, "{\"subscribe\":{\"channel\":\"room:1\",\"join_leave\":true},\"id\":7}");
    json_t *all = NULL;
    json_t *reply = outcome(w, 7, &all);
    bool member = subject_member(w);
    if (w->subject->conn == NULL) {
        assert_false(member);
    } else if (is_internal_error(reply)) {
        assert_false(member); /* refused: nothing half made */
    } else {
        assert_non_null(json_object_get(reply, "subscribe"));
        assert_true(member);
        /* Its own join comes after the reply. */
        assert_int_equal(count_pushes(all, "join", id), 1);
    }
    json_decref(all);
    watcher_consistent(w, id, false, member);
    world_check(w);
    world_down(w);
}

static void presence_step(world *w, unsigned long fail_at, bool *failed)
{
    world_up(w, true, true);
    *failed = send_failing(w, fail_at, "{\"presence\":{\"channel\":\"room:1\"},\"id\":7}");
    json_t *all = NULL;
    json_t *reply = outcome(w, 7, &all);
    if (w->subject->conn != NULL) {
        assert_true(subject_member(w)); /* a read changes nothing */
        if (!is_internal_error(reply)) {
            json_t *p = json_object_get(json_object_get(reply, "presence"),
                                        "presence");
            assert_int_equal(json_object_size(p), 2);
            json_t *me = json_object_get(p, w->subject->conn->client_id);
            assert_string_equal(json_string_value(json_object_get(me, "user")),
                                "alice");
            assert_string_equal(json_string_value(json_object_get(
                                    json_object_get(me, "conn_info"), "name")),
                                "Alice");
            assert_non_null(json_object_get(p, w->watcher_id));
        }
    }
    json_decref(all);
    world_check(w);
    world_down(w);
}

static void unsubscribe_step(world *w, unsigned long fail_at, bool *failed)
{
    world_up(w, true, true);
    char id[PS_UUID_SIZE];
    memcpy(id, w->subject->conn->client_id, sizeof id);
    *failed = send_failing(w, fail_at, "{\"unsubscribe\":{\"channel\":\"room:1\"},\"id\":7}");
    json_t *all = NULL;
    outcome(w, 7, &all);
    json_decref(all);
    watcher_consistent(w, id, true, subject_member(w));
    world_check(w);
    world_down(w);
}

static void drop_step(world *w, unsigned long fail_at, bool *failed)
{
    world_up(w, true, true);
    char id[PS_UUID_SIZE];
    memcpy(id, w->subject->conn->client_id, sizeof id);
    counting_arm(fail_at);
    ps_test_peer_drop(&w->t, w->subject);
    *failed = counting.failed > 0;
    counting_arm(0);
    assert_false(subject_member(w));
    watcher_consistent(w, id, true, false);
    world_check(w);
    world_down(w);
}

static void test_connect(void **state)
{
    (void)state;
    each_failure(connect_step, 3);
}

static void test_subscribe(void **state)
{
    (void)state;
    each_failure(subscribe_step, 5);
}

static void test_presence(void **state)
{
    (void)state;
    each_failure(presence_step, 5);
}

static void test_unsubscribe(void **state)
{
    (void)state;
    each_failure(unsubscribe_step, 2);
}

static void test_drop(void **state)
{
    (void)state;
    each_failure(drop_step, 1);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect),
        cmocka_unit_test(test_subscribe),
        cmocka_unit_test(test_presence),
        cmocka_unit_test(test_unsubscribe),
        cmocka_unit_test(test_drop),
    };
    return cmocka_run_group_tests_name("server allocation failure", tests,
                                       NULL, NULL);
}
