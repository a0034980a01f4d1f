/*
 * Connection limits: client_user_connection_limit (per user on this
 * server, anonymous connections uncounted, close 3504 as Centrifugo's
 * DisconnectConnectionLimit) and client_connection_limit 0 meaning what
 * the open-file limit allows.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../token.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/resource.h>
#include <time.h>
#include <cmocka.h>

#define SECRET "limits-secret"

static ps_test_server t;

static void start(const char *config_json)
{
    char err[256];
    if (ps_test_server_init(&t, config_json, err, sizeof err) != 0) {
        fail_msg("%s", err);
    }
}

/* A peer that sends connect with a token for @p user (NULL: anonymous).
 * Returns it; whether it is connected is up to the server. */
static ps_test_peer *connect_as(const char *user)
{
    ps_test_peer *p = peer_connect_as(&t, SECRET, user);
    assert_non_null(p);
    return p;
}

/* Connected now (was_connected is only filled in when it closes). */
static bool connected(const ps_test_peer *p)
{
    return p->conn != NULL && p->conn->connected;
}

static void assert_limited(ps_test_peer *p)
{
    assert_false(connected(p));
    assert_int_equal(p->close_code, 3504);
    assert_string_equal(p->close_reason, "connection limit");
}

static void test_user_connection_limit(void **state)
{
    (void)state;
    start("{\"token_hmac_secret_key\":\"" SECRET "\","
          "\"allow_anonymous_connect_without_token\":true,"
          "\"client_user_connection_limit\":2}");
    ps_test_peer *a1 = connect_as("alice");
    ps_test_peer *a2 = connect_as("alice");
    assert_true(connected(a1));
    assert_true(connected(a2));
    ps_test_peer *a3 = connect_as("alice");
    assert_limited(a3);
    /* Other users and anonymous connections are not held back. */
    ps_test_peer *b1 = connect_as("bob");
    assert_true(connected(b1));
    ps_test_peer *anon[4];
    for (size_t i = 0; i < 4; i++) {
        anon[i] = connect_as(NULL);
        assert_true(connected(anon[i]));
    }
    /* One of alice's leaves: she may connect again, once. */
    ps_test_peer_drop(&t, a1);
    ps_test_peer *a4 = connect_as("alice");
    assert_true(connected(a4));
    ps_test_peer *a5 = connect_as("alice");
    assert_limited(a5);
    ps_test_peer *all[] = {a1, a2, a3, a4, a5, b1,
                           anon[0], anon[1], anon[2], anon[3]};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        ps_test_peer_free(&t, all[i]);
    }
    /* Everyone gone: no count is left behind. */
    assert_null(t.server.user_counts);
    ps_test_server_fini(&t);
}

static void test_no_user_limit_by_default(void **state)
{
    (void)state;
    start("{\"token_hmac_secret_key\":\"" SECRET "\"}");
    ps_test_peer *p[20];
    for (size_t i = 0; i < 20; i++) {
        p[i] = connect_as("carol");
        assert_true(connected(p[i]));
    }
    assert_null(t.server.user_counts); /* nothing counted without a limit */
    for (size_t i = 0; i < 20; i++) {
        ps_test_peer_free(&t, p[i]);
    }
    ps_test_server_fini(&t);
}

static void test_user_limit_allocation_failures(void **state)
{
    (void)state;
    start("{\"token_hmac_secret_key\":\"" SECRET "\","
          "\"client_user_connection_limit\":1}");
    /* Each allocation of a connect failed in turn: the connect is
     * answered or closed with 3004, and no count is left behind. */
    for (unsigned long n = 1; n < 400; n++) {
        ps_test_peer *p = ps_test_peer_open(&t);
        assert_non_null(p);
        char err[128];
        char *token = ps_token_mint(SECRET, "dave", (int64_t)time(NULL) + 600,
                                    NULL, NULL, err, sizeof err);
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "{\"connect\":{\"token\":\"%s\"},\"id\":1}",
                 token);
        ps_free(token);
        counting_arm(n);
        ps_test_peer_send(&t, p, cmd);
        unsigned long failed = counting.failed;
        counting_arm(0);
        if (!connected(p)) {
            assert_true(p->close_code == 3004 || p->close_code == 0);
        }
        ps_test_peer_free(&t, p);
        assert_null(t.server.user_counts);
        if (failed == 0) {
            break; /* every allocation has been failed once */
        }
    }
    ps_test_server_fini(&t);
}

static void test_connection_limit_zero_is_descriptors(void **state)
{
    (void)state;
    struct rlimit saved;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    struct rlimit rl = saved;
    const rlim_t tries[] = {3000, 5000, 20000};
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        if (tries[i] > saved.rlim_max) {
            continue;
        }
        rl.rlim_cur = tries[i];
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
        start("{\"token_hmac_secret_key\":\"" SECRET "\"}");
        size_t want = tries[i] - 100 < PS_MAX_CONNECTIONS
                          ? (size_t)tries[i] - 100
                          : PS_MAX_CONNECTIONS;
        assert_int_equal(t.server.max_connections, want);
        ps_test_server_fini(&t);
    }
    /* An explicit limit is the limit. */
    start("{\"token_hmac_secret_key\":\"" SECRET "\",\"client_connection_limit\":7}");
    assert_int_equal(t.server.max_connections, 7);
    ps_test_server_fini(&t);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_connection_limit),
        cmocka_unit_test(test_no_user_limit_by_default),
        cmocka_unit_test(test_user_limit_allocation_failures),
        cmocka_unit_test(test_connection_limit_zero_is_descriptors),
    };
    return cmocka_run_group_tests_name("server connection limits", tests, NULL,
                                       NULL);
}
