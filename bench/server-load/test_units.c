/*
 * The generator's own parts that a wrong figure could hide in: WebSocket
 * framing, the two protocols' parsers, tokens, histograms, the merge of
 * reports and the join/leave model. (The whole generator runs against the server in
 * server-load-smoke.)
 * SPDX-License-Identifier: MIT
 */
#include "hist.h"
#include "loadgen.h"
#include "proto.h"
#include "report.h"
#include "token.h"
#include "ws.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_ws_response(void **state)
{
    (void)state;
    const char ok[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nXY";
    assert_int_equal(lg_ws_response(ok, sizeof ok - 1), (long)(sizeof ok - 3));
    assert_int_equal(lg_ws_response(ok, 20), 0); /* not complete yet */
    const char refused[] = "HTTP/1.1 503 Service Unavailable\r\n\r\n";
    assert_int_equal(lg_ws_response(refused, sizeof refused - 1), -1);
}

static void test_ws_frames(void **state)
{
    (void)state;
    lg_ws_frame f;
    const char text[] = {(char)0x81, 0x02, 'h', 'i'};
    assert_int_equal(lg_ws_parse(text, 4, 100, &f), 4);
    assert_int_equal(f.opcode, LG_WS_TEXT);
    assert_true(f.fin);
    assert_int_equal(f.len, 2);
    assert_memory_equal(f.payload, "hi", 2);
    assert_int_equal(lg_ws_parse(text, 3, 100, &f), 0);

    char big[4 + 300];
    big[0] = (char)0x81;
    big[1] = 126;
    big[2] = 0x01;
    big[3] = 0x2C; /* 300 */
    memset(big + 4, 'a', 300);
    assert_int_equal(lg_ws_parse(big, sizeof big, 1000, &f), (long)sizeof big);
    assert_int_equal(f.len, 300);
    assert_int_equal(lg_ws_parse(big, sizeof big, 299, &f), -1); /* too large */

    const char masked[] = {(char)0x81, (char)0x82, 1, 2, 3, 4, 'h', 'i'};
    assert_int_equal(lg_ws_parse(masked, sizeof masked, 100, &f), -1);
    const char rsv[] = {(char)0xC1, 0x00};
    assert_int_equal(lg_ws_parse(rsv, sizeof rsv, 100, &f), -1);

    /* What we send is masked, and unmasks to the payload. */
    lg_buf out = {0};
    assert_true(lg_ws_frame_append(&out, LG_WS_TEXT, "hello", 5, 0x01020304u));
    assert_int_equal(out.len, 2 + 4 + 5);
    assert_int_equal((uint8_t)out.data[0], 0x81);
    assert_int_equal((uint8_t)out.data[1], 0x80 | 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(out.data[6 + i] ^ out.data[2 + (i & 3)], "hello"[i]);
    }
    lg_buf_free(&out);

    assert_true(lg_ws_request(&out, "127.0.0.1:1", "/x", 42));
    assert_non_null(strstr(out.data, "GET /x HTTP/1.1\r\n"));
    const char *key = strstr(out.data, "Sec-WebSocket-Key: ");
    assert_non_null(key);
    assert_int_equal(strcspn(key + 19, "\r"), 24);
    lg_buf_free(&out);
}

static void test_token(void **state)
{
    (void)state;
    char token[512];
    assert_true(lg_token_mint("bench-secret", "u1", token, sizeof token));
    assert_string_equal(token, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1MSJ9."
                               "oOAHlmHlRH7p-swzdjkPqHqsTfsAD_8RBuuICi2mMYc");
    assert_false(lg_token_mint("bench-secret", "u1", token, 40));
}

typedef struct collected {
    int count;
    lg_msg last;
    char client[64];
    char channel[64];
    size_t presence_size;
    bool want;
} collected;

static void collect(void *ctx, const lg_msg *msg)
{
    collected *c = ctx;
    c->count++;
    c->last = *msg;
    snprintf(c->client, sizeof c->client, "%s", msg->client ? msg->client : "");
    snprintf(c->channel, sizeof c->channel, "%s", msg->channel ? msg->channel : "");
    c->presence_size = msg->presence ? json_object_size(msg->presence) : 0;
    c->last.client = NULL;
    c->last.channel = NULL;
    c->last.presence = NULL;
}

static bool want(void *ctx, uint32_t id)
{
    (void)id;
    return ((collected *)ctx)->want;
}

static void parse(const lg_proto *p, const char *text, collected *c, bool want_body)
{
    memset(c, 0, sizeof *c);
    c->want = want_body;
    p->parse(text, strlen(text), collect, want, c);
}

static void test_centrifugo(void **state)
{
    (void)state;
    const lg_proto *p = &lg_proto_centrifugo;
    collected c;
    parse(p, "{\"id\":1,\"connect\":{\"client\":\"abc\",\"version\":\"1\"}}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_CONNECTED);
    assert_string_equal(c.client, "abc");
    parse(p, "{}\n{\"id\":7,\"subscribe\":{}}", &c, true); /* two in a frame */
    assert_int_equal(c.count, 2);
    assert_int_equal(c.last.kind, LG_MSG_REPLY);
    assert_int_equal(c.last.id, 7);
    assert_true(c.last.ok);
    parse(p, "{}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_PING);
    parse(p, "{\"id\":8,\"error\":{\"code\":102,\"message\":\"unknown channel\"}}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_REPLY);
    assert_false(c.last.ok);
    parse(p, "{\"id\":9,\"presence\":{\"presence\":{\"a\":{\"user\":\"u\",\"client\":\"a\"}}}}",
          &c, true);
    assert_true(c.last.ok);
    assert_int_equal(c.presence_size, 1);
    parse(p, "{\"id\":9,\"presence\":{\"presence\":{\"a\":{}}}}", &c, false);
    assert_true(c.last.body_skipped);
    assert_int_equal(c.last.id, 9);
    parse(p, "{\"id\":10,\"presence_stats\":{\"num_clients\":3,\"num_users\":2}}", &c, false);
    assert_int_equal(c.last.num_clients, 3);
    assert_int_equal(c.last.num_users, 2);
    parse(p, "{\"id\":11,\"presence_stats\":{}}", &c, true);
    assert_int_equal(c.last.num_clients, 0); /* zero counts are left out */
    parse(p, "{\"push\":{\"channel\":\"group:1\",\"join\":{\"info\":{\"user\":\"u\",\"client\":\"b\"}}}}",
          &c, true);
    assert_int_equal(c.last.kind, LG_MSG_PUSH);
    assert_true(c.last.join);
    assert_string_equal(c.client, "b");
    assert_string_equal(c.channel, "group:1");
    parse(p, "{\"push\":{\"channel\":\"group:1\",\"leave\":{\"info\":{\"user\":\"u\"}}}}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_BAD); /* no client */
    parse(p, "not json", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_BAD);
    /* The shapes read without jansson and their neighbours read with it
     * come out the same. */
    parse(p, "{\"push\":{\"channel\":\"group:\\u0031\",\"leave\":{\"info\":"
             "{\"user\":\"u\",\"client\":\"b\"}}}}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_PUSH);
    assert_false(c.last.join);
    assert_string_equal(c.channel, "group:1");
    parse(p, "{\"push\":{\"channel\":\"g\",\"leave\":{\"info\":{\"user\":\"u\\\"x\","
             "\"client\":\"c\",\"conn_info\":{\"client\":\"no\"}}}}}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_PUSH);
    assert_string_equal(c.client, "c");
    parse(p, "{\"push\":{\"channel\":\"g\",\"join\":{\"info\":{\"user\":\"u\","
             "\"client\":\"c\"}}", &c, true); /* cut short */
    assert_int_equal(c.last.kind, LG_MSG_BAD);
    parse(p, "{\"id\":1,\"error\":{\"code\":3500,\"message\":\"invalid token\"}}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_REPLY);
    assert_false(c.last.ok);
    parse(p, "{\"id\":1,\"connect\":{\"client\":\"a\\u0062\"}}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_CONNECTED);
    assert_string_equal(c.client, "ab");
    parse(p, "{\"id\":12,\"subscribe\":{\"recoverable\":false}}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_REPLY);
    assert_int_equal(c.last.id, 12);
    assert_true(c.last.ok);
}

static void test_socketio(void **state)
{
    (void)state;
    const lg_proto *p = &lg_proto_socketio;
    collected c;
    parse(p, "0{\"sid\":\"x\",\"pingInterval\":25000}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_OPEN);
    parse(p, "40{\"sid\":\"s1\"}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_CONNECTED);
    assert_string_equal(c.client, "s1");
    parse(p, "2", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_PING);
    parse(p, "44{\"message\":\"no\"}", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_DISCONNECT);
    parse(p, "4312[{\"ok\":true,\"num_clients\":1}]", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_REPLY);
    assert_int_equal(c.last.id, 12);
    assert_true(c.last.ok);
    parse(p, "4313[{\"ok\":false,\"error\":\"already subscribed\"}]", &c, true);
    assert_false(c.last.ok);
    parse(p, "4314[{\"num_clients\":2,\"num_users\":1}]", &c, true);
    assert_int_equal(c.last.num_clients, 2);
    parse(p, "4315[{\"clients\":{\"a\":{\"client\":\"a\",\"user\":\"u\"}}}]", &c, true);
    assert_int_equal(c.presence_size, 1);
    parse(p, "4315[{\"clients\":{}}]", &c, false);
    assert_true(c.last.body_skipped);
    parse(p, "42[\"leave\",{\"channel\":\"group:3\",\"client\":\"q\",\"user\":\"u\"}]", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_PUSH);
    assert_false(c.last.join);
    assert_string_equal(c.client, "q");
    parse(p, "42[\"join\",{\"channel\":\"lobby:0\",\"client\":\"q\",\"user\":\"u\"}]", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_PUSH);
    assert_string_equal(c.channel, "lobby:");
    parse(p, "42[\"other\",{}]", &c, true);
    assert_int_equal(c.last.kind, LG_MSG_BAD);
}

static void test_hist(void **state)
{
    (void)state;
    lg_hist h;
    memset(&h, 0, sizeof h);
    assert_int_equal(lg_hist_quantile(&h, 0.5), 0);
    for (int i = 1; i <= 1000; i++) {
        lg_hist_add(&h, i * 100);
    }
    uint64_t p50 = lg_hist_quantile(&h, 0.5);
    uint64_t p99 = lg_hist_quantile(&h, 0.99);
    assert_true(p50 >= 50000 && p50 <= 50000 * 1.04);
    assert_true(p99 >= 99000 && p99 <= 100000);
    assert_int_equal(lg_hist_quantile(&h, 1.0), 100000);

    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    lg_hist_print(f, "x", &h);
    fclose(f);
    lg_hist back;
    memset(&back, 0, sizeof back);
    assert_true(lg_hist_parse(&back, text + strlen("hist x ")));
    assert_memory_equal(&back, &h, sizeof h);
    assert_false(lg_hist_parse(&back, "3 4 9999:1"));
    free(text);
}

static void test_report_merge(void **state)
{
    (void)state;
    lg_stats *a = calloc(1, sizeof *a);
    a->ramp_ready = 10;
    a->lost = 1;
    a->ramp_s = 2.0;
    a->rss_plateau_kb = 500;
    lg_hist_add(&a->presence, 1000);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    lg_report_print(f, "p", 100, 10, a);
    fclose(f);

    lg_stats *sum = calloc(1, sizeof *sum);
    uint64_t count = 0;
    char proto[16];
    uint32_t n = 0;
    for (int i = 0; i < 2; i++) {
        FILE *in = fmemopen(text, len, "r");
        assert_true(lg_report_merge(in, sum, &count, i == 0, proto, sizeof proto, &n));
        fclose(in);
    }
    assert_int_equal(count, 20);
    assert_int_equal(n, 100);
    assert_string_equal(proto, "p");
    assert_int_equal(sum->ramp_ready, 20);       /* summed */
    assert_int_equal(sum->lost, 2);
    assert_true(sum->ramp_s == 2.0);             /* the longest */
    assert_int_equal(sum->rss_plateau_kb, 500);  /* the server's, once */
    assert_int_equal(sum->presence.count, 2);

    char nothing[] = "nothing here\n";
    FILE *junk = fmemopen(nothing, strlen(nothing), "r");
    uint64_t c2 = 0;
    assert_false(lg_report_merge(junk, sum, &c2, true, proto, sizeof proto, &n));
    fclose(junk);
    free(text);
    free(a);
    free(sum);
}

/* One group of 10 on one server: the model's run, all members idle. */
static lg_run *model_run(void)
{
    lg_run *run = calloc(1, sizeof *run);
    run->opt.group_size = 10;
    run->opt.lobby_size = 10;
    run->opt.n = 10;
    run->opt.nports = 1;
    run->count = 10;
    run->conns = calloc(10, sizeof *run->conns);
    for (uint32_t i = 0; i < 10; i++) {
        run->conns[i].index = i;
    }
    run->phase = LG_PHASE_RAMP;
    return run;
}

static void model_run_free(lg_run *run)
{
    for (uint32_t i = 0; i < run->count; i++) {
        free(run->conns[i].expects);
        free(run->conns[i].early);
    }
    free(run->conns);
    free(run);
}

static void push(lg_run *run, lg_conn *to, const char *about, bool join, int64_t at)
{
    lg_msg msg = {.kind = LG_MSG_PUSH, .join = join, .channel = "group:0", .client = about};
    lg_model_push(run, to, &msg, at, at);
}

/* Subscribes sent with the hello: a join read before its subject's hello
 * answer is claimed once that answer names the subject; one about no one
 * is unexpected at the end; who must hear whom follows the send time. */
static void test_model_early_pushes(void **state)
{
    (void)state;
    lg_run *run = model_run();
    lg_conn *m = &run->conns[0];     /* answered before c sent */
    lg_conn *late = &run->conns[2];  /* answered after c sent */
    lg_conn *c = &run->conns[1];
    strcpy(m->client, "m0");
    m->group = LG_SUB_ACTIVE;
    m->group_active_us = 100;
    strcpy(late->client, "l2");
    late->group = LG_SUB_ACTIVE;
    late->group_active_us = 250;
    c->group = LG_SUB_PENDING;       /* hello and subscribes sent */
    c->subscribe_sent_us = 200;

    push(run, m, "c1", true, 260);   /* before c's hello answer */
    assert_int_equal(run->st.unexpected, 0);
    assert_int_equal(m->nearly, 1);

    strcpy(c->client, "c1");         /* the hello answer */
    lg_model_subscribing(run, c, 300);
    assert_int_equal(m->nearly, 0);
    assert_int_equal(run->st.expected, 1); /* m had to hear it: it did */
    push(run, m, "c1", true, 310);
    assert_int_equal(run->st.dup, 1);

    push(run, m, "nobody", true, 320);
    lg_model_finish(run);
    assert_int_equal(run->st.unexpected, 1);
    /* late may or may not hear c: not lost without it */
    assert_int_equal(run->st.lost, 0);
    model_run_free(run);
}

/* Member "m0" (conns[0]) answered at 100; newcomer "c1" (conns[1])
 * sent its subscribes at 200, its hello answered at 300. */
static void member_and_newcomer(lg_run *run)
{
    lg_conn *m = &run->conns[0];
    lg_conn *c = &run->conns[1];
    strcpy(m->client, "m0");
    m->group = LG_SUB_ACTIVE;
    m->group_active_us = 100;
    c->group = LG_SUB_PENDING;
    c->subscribe_sent_us = 200;
    strcpy(c->client, "c1");
    lg_model_subscribing(run, c, 300);
}

/* An answered member that never hears a newcomer it had to: lost. */
static void test_model_required_join_lost(void **state)
{
    (void)state;
    lg_run *run = model_run();
    member_and_newcomer(run);
    lg_model_finish(run);
    assert_int_equal(run->st.lost, 1);
    assert_int_equal(run->st.unexpected, 0);
    model_run_free(run);
}

/* Join push delay in the churn: from the subscriber reading its reply to
 * a member reading the push, and between the kernel's receipts of the
 * two; a push read first counts 0, and so does one that arrived first. */
static void test_model_join_delay(void **state)
{
    (void)state;
    lg_run *run = model_run();
    run->phase = LG_PHASE_CHURN;
    lg_conn *m = &run->conns[0];
    lg_conn *c = &run->conns[1];
    lg_conn *d = &run->conns[2];
    member_and_newcomer(run);
    lg_model_subscribed(run, c, 1000, 900);  /* read 1000, arrived 900 */
    lg_msg msg = {.kind = LG_MSG_PUSH, .join = true, .channel = "group:0", .client = "c1"};
    lg_model_push(run, m, &msg, 1500, 1200);
    assert_int_equal(run->st.join_delay.count, 1);
    assert_int_equal(run->st.join_delay.max_us, 500);
    assert_int_equal(run->st.join_delay_arrival.count, 1);
    assert_int_equal(run->st.join_delay_arrival.max_us, 300);

    d->group = LG_SUB_PENDING;
    d->subscribe_sent_us = 2000;
    strcpy(d->client, "d2");
    lg_model_subscribing(run, d, 2000);
    msg.client = "d2";
    lg_model_push(run, m, &msg, 2100, 2050);  /* read before d's reply */
    lg_model_subscribed(run, d, 2200, 2060);
    assert_int_equal(run->st.join_delay.count, 2);
    assert_int_equal(run->st.join_delay_arrival.count, 2);
    assert_int_equal(run->st.join_delay.max_us, 500);
    assert_int_equal(run->st.join_delay_arrival.max_us, 300);
    assert_int_equal(run->st.dup, 0);
    model_run_free(run);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_response),
        cmocka_unit_test(test_ws_frames),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_centrifugo),
        cmocka_unit_test(test_socketio),
        cmocka_unit_test(test_hist),
        cmocka_unit_test(test_report_merge),
        cmocka_unit_test(test_model_early_pushes),
        cmocka_unit_test(test_model_required_join_lost),
        cmocka_unit_test(test_model_join_delay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
