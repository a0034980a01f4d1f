/*
 * The metrics exposition without sockets: every line a HELP, a TYPE or a
 * sample; the gauges and counters follow what the clients do; the
 * cluster's block appears only when given; a failed allocation gives
 * NULL and leaks nothing.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../metrics.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static ps_test_server t;

#define CONFIG                                                                 \
    "{\"allow_anonymous_connect_without_token\":true,\"namespaces\":[{"       \
    "\"name\":\"room\",\"presence\":true,\"allow_subscribe_for_anonymous\":" \
    "true,\"allow_subscribe_for_client\":true}]}"

/* The value of the sample named @p name (with its labels) in @p text;
 * fails the test when it is missing. */
static unsigned long long sample(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = text; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        assert_non_null(nl);
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            return strtoull(line + n + 1, NULL, 10);
        }
        line = nl + 1;
    }
    fail_msg("no sample %s in:\n%s", name, text);
    return 0;
}

/* Every line: "# HELP name ...", "# TYPE name gauge|counter|histogram"
 * or "name[{label="value",...}] digits[.digits]". */
static void check_format(const char *text)
{
    for (const char *line = text; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        assert_non_null(nl);
        size_t len = (size_t)(nl - line);
        if (strncmp(line, "# HELP presence_server_", 23) == 0) {
            /* any text */
        } else if (strncmp(line, "# TYPE presence_server_", 23) == 0) {
            const char *sp = memchr(line + 7, ' ', len - 7);
            assert_non_null(sp);
            size_t rest = len - (size_t)(sp + 1 - line);
            if (!((rest == 5 && strncmp(sp + 1, "gauge", 5) == 0) ||
                  (rest == 7 && strncmp(sp + 1, "counter", 7) == 0) ||
                  (rest == 9 && strncmp(sp + 1, "histogram", 9) == 0))) {
                fail_msg("bad TYPE line: %.*s", (int)len, line);
            }
        } else {
            size_t i = 0;
            while (i < len && (line[i] == '_' || (line[i] >= 'a' && line[i] <= 'z'))) {
                i++;
            }
            if (i < len && line[i] == '{') {
                const char *close = memchr(line + i, '}', len - i);
                assert_non_null(close);
                i = (size_t)(close - line) + 1;
            }
            if (i == 0 || i >= len || line[i] != ' ' || i + 1 == len) {
                fail_msg("bad sample line: %.*s", (int)len, line);
            }
            bool point = false;
            for (i++; i < len; i++) {
                if (line[i] == '.' && !point && line[i - 1] != ' ' &&
                    i + 1 < len) {
                    point = true;
                } else if (line[i] < '0' || line[i] > '9') {
                    fail_msg("bad value: %.*s", (int)len, line);
                }
            }
        }
        line = nl + 1;
    }
}

static char *render(const ps_metrics_cluster *cluster)
{
    size_t len = 0;
    char *text = ps_metrics_render(&t.server, cluster, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    check_format(text);
    return text;
}

static void test_exposition(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(ps_test_server_init(&t, CONFIG, err, sizeof err), 0);
    char *text = render(NULL);
    assert_int_equal(sample(text, "presence_server_connections"), 0);
    assert_int_equal(sample(text, "presence_server_commands_total{method=\"connect\"}"), 0);
    assert_null(strstr(text, "cluster"));
    ps_free(text);

    ps_test_peer *a = ps_test_peer_open(&t);
    ps_test_peer *b = ps_test_peer_open(&t);
    assert_true(ps_test_peer_send(&t, a,
        "{\"connect\":{},\"id\":1}\n"
        "{\"subscribe\":{\"channel\":\"room:1\"},\"id\":2}\n"
        "{\"subscribe\":{\"channel\":\"other:1\"},\"id\":3}\n"
        "{}"));
    assert_true(ps_test_peer_send(&t, b,
        "{\"connect\":{},\"id\":1}\n"
        "{\"subscribe\":{\"channel\":\"room:1\"},\"id\":2}\n"
        "{\"subscribe\":{\"channel\":\"room:1\"},\"id\":3}"));
    text = render(NULL);
    assert_int_equal(sample(text, "presence_server_connections"), 2);
    assert_int_equal(sample(text, "presence_server_transports"), 2);
    assert_int_equal(sample(text, "presence_server_subscriptions"), 2);
    assert_int_equal(sample(text, "presence_server_subscribed_channels"), 1);
    assert_int_equal(sample(text, "presence_server_presence_memberships"), 2);
    assert_int_equal(sample(text, "presence_server_commands_total{method=\"connect\"}"), 2);
    assert_int_equal(sample(text, "presence_server_commands_total{method=\"subscribe\"}"), 4);
    assert_int_equal(sample(text, "presence_server_commands_total{method=\"pong\"}"), 1);
    assert_int_equal(sample(text, "presence_server_command_errors_total{code=\"102\"}"), 1);
    assert_int_equal(sample(text, "presence_server_command_errors_total{code=\"105\"}"), 1);
    /* Each command run is timed: the buckets count up to the total. */
    assert_int_equal(sample(text, "presence_server_command_duration_seconds_count{method=\"connect\"}"), 2);
    assert_int_equal(sample(text, "presence_server_command_duration_seconds_bucket{method=\"subscribe\",le=\"+Inf\"}"), 4);
    assert_int_equal(sample(text, "presence_server_command_duration_seconds_count{method=\"subscribe\"}"), 4);
    assert_true(sample(text, "presence_server_command_duration_seconds_bucket{method=\"subscribe\",le=\"0.00005\"}") <=
                sample(text, "presence_server_command_duration_seconds_bucket{method=\"subscribe\",le=\"0.25\"}"));
    assert_null(strstr(text, "command_duration_seconds_count{method=\"presence\"}"));
    /* No event loop in these tests: no turn timed. */
    assert_int_equal(sample(text, "presence_server_loop_busy_seconds_count"), 0);
    assert_int_equal(sample(text, "presence_server_loop_busy_seconds_bucket{le=\"+Inf\"}"), 0);
    ps_free(text);

    /* A bad request closes a with 3501; b closes by itself with 4000. */
    assert_false(ps_test_peer_send(&t, a, "{\"what\":{},\"id\":9}"));
    unsigned char close_frame[] = {0x0f, 0xa0, 'b', 'y', 'e'};
    ps_test_peer_frame(&t, b, PS_WS_CLOSE, true, close_frame, sizeof close_frame);
    ps_test_peer_drop(&t, b);
    text = render(NULL);
    assert_int_equal(sample(text, "presence_server_connections"), 0);
    assert_int_equal(sample(text, "presence_server_subscriptions"), 0);
    assert_int_equal(sample(text, "presence_server_presence_memberships"), 0);
    assert_int_equal(sample(text, "presence_server_closes_total{code=\"3501\"}"), 1);
    assert_int_equal(sample(text, "presence_server_closes_total{code=\"4000\"}"), 1);
    ps_free(text);

    ps_metrics_cluster cluster = {
        .connected = true, .synced = true, .nodes = 2, .pending = 3,
        .sent = 4, .applied = 5, .rejected = 6, .snapshots = 7,
        .nodes_down = 8, .connects = 9,
    };
    text = render(&cluster);
    assert_int_equal(sample(text, "presence_server_cluster_connected"), 1);
    assert_int_equal(sample(text, "presence_server_cluster_nodes"), 2);
    assert_int_equal(sample(text, "presence_server_cluster_pending"), 3);
    assert_int_equal(sample(text, "presence_server_cluster_applied_total"), 5);
    assert_int_equal(sample(text, "presence_server_cluster_connects_total"), 9);
    ps_free(text);

    ps_test_peer_free(&t, a);
    ps_test_peer_free(&t, b);
    ps_test_server_fini(&t);
}

/* A duration falls in the first bucket whose bound it does not pass; the
 * buckets are cumulative and the sum is in seconds. */
static void test_duration_buckets(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(ps_test_server_init(&t, CONFIG, err, sizeof err), 0);
    ps_metrics *m = &t.server.metrics;
    ps_metrics_loop_busy(m, 50000);        /* 50 us: le 0.00005 */
    ps_metrics_loop_busy(m, 50001);        /* le 0.0001 */
    ps_metrics_loop_busy(m, 10000000);     /* 10 ms: le 0.01 */
    ps_metrics_loop_busy(m, 300000000);    /* 300 ms: +Inf only */
    char *text = render(NULL);
    assert_int_equal(sample(text, "presence_server_loop_busy_seconds_bucket{le=\"0.00005\"}"), 1);
    assert_int_equal(sample(text, "presence_server_loop_busy_seconds_bucket{le=\"0.0001\"}"), 2);
    assert_int_equal(sample(text, "presence_server_loop_busy_seconds_bucket{le=\"0.005\"}"), 2);
    assert_int_equal(sample(text, "presence_server_loop_busy_seconds_bucket{le=\"0.01\"}"), 3);
    assert_int_equal(sample(text, "presence_server_loop_busy_seconds_bucket{le=\"0.25\"}"), 3);
    assert_int_equal(sample(text, "presence_server_loop_busy_seconds_bucket{le=\"+Inf\"}"), 4);
    assert_int_equal(sample(text, "presence_server_loop_busy_seconds_count"), 4);
    assert_non_null(strstr(text, "presence_server_loop_busy_seconds_sum 0.310100001\n"));
    ps_free(text);
    ps_test_server_fini(&t);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    char err[256];
    assert_int_equal(ps_test_server_init(&t, CONFIG, err, sizeof err), 0);
    for (unsigned long n = 1;; n++) {
        long live = counting.live;
        counting_arm(n);
        size_t len = 0;
        char *text = ps_metrics_render(&t.server, NULL, &len);
        unsigned long failed = counting.failed;
        counting_arm(0);
        if (failed == 0) {
            assert_non_null(text);
            ps_free(text);
            break;
        }
        assert_null(text);
        assert_int_equal(counting.live, live);
    }
    ps_test_server_fini(&t);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exposition),
        cmocka_unit_test(test_duration_buckets),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests_name("server metrics", tests, NULL, NULL);
}
