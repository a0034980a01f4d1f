/*
 * The heartbeat on a timing wheel (heartbeat.h, timers.h), driven by the
 * tests' clock: a transport that never connects is closed with 3502 at
 * 10 s and not before; pings come at ping_interval, one per interval; a
 * pong keeps the connection, no pong closes it with 3012; an expired
 * token closes with 3005 and a refresh moves the timer; a connection has
 * one timer, disarmed once it closes or its transport goes; idle
 * connections cost a run nothing until their pings are due.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../heartbeat.h"
#include "../timers.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static const char config_json[] =
    "{\"token_hmac_secret_key\":\"s\",\"allow_anonymous_connect_without_token\":true,"
    "\"ping_interval\":\"25s\",\"pong_timeout\":\"8s\"}";

static ps_test_server t;
static ps_timers wheel;

static int setup(void **state)
{
    (void)state;
    char err[256];
    if (ps_test_server_init(&t, config_json, err, sizeof err) != 0) {
        return -1;
    }
    ps_timers_init(&wheel, ps_now_ms());
    t.server.timers = &wheel;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(wheel.armed, 0); /* every transport disarmed its timer */
    t.server.timers = NULL;
    ps_test_server_fini(&t);
    return 0;
}

/* Run the wheel at @p now_ms and write what it queued, as the loop does. */
static size_t run_at(int64_t now_ms)
{
    size_t fired = ps_timers_run(&wheel, now_ms);
    ps_writer_drain(&t.server.writer);
    return fired;
}

/* The server's pings ({}) among what @p peer got. */
static size_t pings(const ps_test_peer *peer)
{
    json_t *all = peer_messages(peer);
    size_t n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m) {
        n += json_object_size(m) == 0;
    }
    json_decref(all);
    return n;
}

static void test_stale_transport_closed_at_10s(void **state)
{
    (void)state;
    int64_t before = ps_now_ms();
    ps_test_peer *p = ps_test_peer_open(&t);
    int64_t after = ps_now_ms();
    assert_true(ps_timer_armed(&p->conn->heartbeat));
    assert_int_equal(wheel.armed, 1);
    assert_int_equal(run_at(before + 9999), 0);
    assert_int_equal(p->close_code, 0);
    assert_int_equal(run_at(after + 10000), 1);
    assert_int_equal(p->close_code, 3502);
    assert_string_equal(p->close_reason, "stale");
    /* Closing: no heartbeat any more, and nothing left armed. */
    assert_false(ps_timer_armed(&p->conn->heartbeat));
    ps_test_peer_answer_close(&t, p);
    assert_true(p->closed);
    ps_test_peer_free(&t, p);
}

static void test_pings_pongs_and_no_pong(void **state)
{
    (void)state;
    ps_test_peer *p = ps_test_peer_open(&t);
    assert_true(ps_test_peer_send(&t, p, "{\"connect\":{},\"id\":1}"));
    int64_t connected = ps_now_ms();
    ps_test_peer_clear(p);
    /* The stale timer is gone: nothing at 10 s. */
    assert_int_equal(run_at(connected + 10500), 0);
    assert_int_equal(run_at(connected + 24000), 0);
    assert_int_equal(pings(p), 0);
    /* The first ping at the interval, and one only. */
    int64_t first = connected + 25000 + 50;
    assert_int_equal(run_at(first), 1);
    assert_int_equal(pings(p), 1);
    /* The pong (at once: the pong deadline runs on the real clock, which
     * the tests' clock is far ahead of). The connection stays, and the
     * next ping comes an interval after the first. */
    assert_true(ps_test_peer_send(&t, p, "{}"));
    assert_int_equal(run_at(first + 100), 0);
    assert_int_equal(run_at(first + 24900), 0);
    assert_int_equal(pings(p), 1);
    assert_int_equal(run_at(first + 25000), 1);
    assert_int_equal(pings(p), 2);
    assert_int_equal(p->close_code, 0);
    /* No pong to the second: its deadline (8 s from the write, on the real
     * clock, so long past at the tests' clock) closes with 3012. */
    assert_int_equal(run_at(first + 25100), 1);
    assert_int_equal(p->close_code, 3012);
    assert_string_equal(p->close_reason, "no pong");
    assert_false(ps_timer_armed(&p->conn->heartbeat));
    ps_test_peer_answer_close(&t, p);
    ps_test_peer_free(&t, p);
}

static void test_pong_deadline_from_the_write(void **state)
{
    (void)state;
    ps_test_peer *p = ps_test_peer_open(&t);
    assert_true(ps_test_peer_send(&t, p, "{\"connect\":{},\"id\":1}"));
    int64_t connected = ps_now_ms();
    assert_int_equal(run_at(connected + 25100), 1);
    int64_t written = ps_now_ms(); /* the tests' writes are at once */
    /* The pong deadline is 8 s after the write, before the next ping. */
    assert_true(ps_timer_armed(&p->conn->heartbeat));
    assert_true(p->conn->heartbeat.due_ms >= written + 8000 - 1000);
    assert_true(p->conn->heartbeat.due_ms <= ps_now_ms() + 8000);
    ps_test_peer_drop(&t, p);
    ps_test_peer_free(&t, p);
}

static void test_expiry_and_refresh(void **state)
{
    (void)state;
    ps_test_peer *p = ps_test_peer_open(&t);
    char err[128];
    int64_t exp = (int64_t)time(NULL) + 2;
    char *token = ps_token_mint("s", "u1", exp, NULL, NULL, err, sizeof err);
    assert_non_null(token);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "{\"connect\":{\"token\":\"%s\"},\"id\":1}", token);
    ps_free(token);
    assert_true(ps_test_peer_send(&t, p, cmd));
    assert_true(p->conn->connected);
    /* Armed for the expiry (within 2 s), not the ping (25 s). */
    int64_t now = ps_now_ms();
    assert_true(p->conn->heartbeat.due_ms <= now + 2000);
    /* A refresh with a later token moves it on; one with an earlier one
     * back: the refresh command moves the timer itself. */
    token = ps_token_mint("s", "u1", exp + 600, NULL, NULL, err, sizeof err);
    snprintf(cmd, sizeof cmd, "{\"refresh\":{\"token\":\"%s\"},\"id\":2}", token);
    ps_free(token);
    assert_true(ps_test_peer_send(&t, p, cmd));
    assert_true(p->conn->heartbeat.due_ms > now + 20000); /* the ping's */
    token = ps_token_mint("s", "u1", exp, NULL, NULL, err, sizeof err);
    snprintf(cmd, sizeof cmd, "{\"refresh\":{\"token\":\"%s\"},\"id\":3}", token);
    ps_free(token);
    assert_true(ps_test_peer_send(&t, p, cmd));
    assert_true(p->conn->heartbeat.due_ms <= ps_now_ms() + 2000);
    /* Before the token's second: nothing, even if the timer fires. */
    run_at(ps_now_ms());
    assert_int_equal(p->close_code, 0);
    while ((int64_t)time(NULL) < exp) {
        nanosleep(&(struct timespec){.tv_nsec = 20000000}, NULL);
    }
    assert_int_equal(run_at(ps_now_ms() + PS_TIMER_SLOT_MS), 1);
    assert_int_equal(p->close_code, 3005);
    assert_string_equal(p->close_reason, "expired");
    ps_test_peer_answer_close(&t, p);
    ps_test_peer_free(&t, p);
}

/* A transport that goes while its timer is armed disarms it: the wheel
 * never touches the freed connection (ASan would say so). */
static void test_dropped_transport_disarms(void **state)
{
    (void)state;
    ps_test_peer *a = ps_test_peer_open(&t);
    ps_test_peer *b = ps_test_peer_open(&t);
    assert_true(ps_test_peer_send(&t, b, "{\"connect\":{},\"id\":1}"));
    assert_int_equal(wheel.armed, 2);
    ps_test_peer_drop(&t, a);
    ps_test_peer_drop(&t, b);
    assert_int_equal(wheel.armed, 0);
    ps_test_peer_free(&t, a);
    ps_test_peer_free(&t, b);
    assert_int_equal(run_at(ps_now_ms() + 60000), 0);
}

/* 2,000 idle connections: the runs before their pings fire nothing, then
 * each gets its ping once. */
static void test_idle_connections_cost_nothing_until_due(void **state)
{
    (void)state;
    enum { N = 2000 };
    t.cfg.pong_timeout_ms = 0; /* pings only (see above on the clocks) */
    ps_test_peer **peers = calloc(N, sizeof *peers);
    assert_non_null(peers);
    int64_t start = ps_now_ms();
    for (size_t i = 0; i < N; i++) {
        peers[i] = ps_test_peer_open(&t);
        assert_true(ps_test_peer_send(&t, peers[i], "{\"connect\":{},\"id\":1}"));
        ps_test_peer_clear(peers[i]);
    }
    int64_t end = ps_now_ms();
    assert_int_equal(wheel.armed, N);
    size_t fired = 0;
    for (int64_t now = end; now < start + 25000; now += PS_TIMER_SLOT_MS) {
        fired += run_at(now);
    }
    assert_int_equal(fired, 0);
    for (int64_t now = start + 25000; now <= end + 25000 + PS_TIMER_SLOT_MS;
         now += PS_TIMER_SLOT_MS) {
        fired += run_at(now);
    }
    assert_int_equal(fired, N);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(pings(peers[i]), 1);
        ps_test_peer_free(&t, peers[i]);
    }
    free(peers);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stale_transport_closed_at_10s, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pings_pongs_and_no_pong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pong_deadline_from_the_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_and_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_transport_disarms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_connections_cost_nothing_until_due, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
