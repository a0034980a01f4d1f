/*
 * The WebSocket frame parser (ws_frame.c): whole messages out of client
 * frames split anywhere, every framing error with its close code, UTF-8
 * across fragments, the message limit, out of memory, and nothing kept
 * between messages.
 * SPDX-License-Identifier: MIT
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common.h"

#include "../ws_frame.h"

#define LIMIT 1000

/* What the handler was given, in order. */
typedef struct seen {
    int opcode[16];
    int code[16];
    char data[16][LIMIT + 1];
    size_t len[16];
    size_t count;
    size_t stop_after; /* 0 = never stop */
} seen;

static bool record(void *user, int opcode, const char *data, size_t len,
                   int code)
{
    seen *s = user;
    assert_true(s->count < 16);
    s->opcode[s->count] = opcode;
    s->code[s->count] = code;
    memcpy(s->data[s->count], data, len);
    s->data[s->count][len] = '\0';
    s->len[s->count] = len;
    s->count++;
    return s->stop_after == 0 || s->count < s->stop_after;
}

/* A client frame (masked with a fixed key unless mask is false). */
static size_t client_frame(uint8_t *out, int b0, const void *payload,
                           size_t len, bool mask)
{
    static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
    size_t h = 0;
    out[h++] = (uint8_t)b0;
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        out[h++] = (uint8_t)(m | len);
    } else if (len <= 0xffff) {
        out[h++] = m | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = m | 127;
        for (int i = 7; i >= 0; i--) {
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
        }
    }
    if (mask) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++) {
        out[h + i] = mask ? p[i] ^ key[i & 3] : p[i];
    }
    return h + len;
}

/* Feed @p len bytes in pieces of @p step; the first non-zero result. */
static int feed(ps_ws_parser *p, const uint8_t *data, size_t len, size_t step,
                seen *s)
{
    for (size_t at = 0; at < len; at += step) {
        size_t n = len - at < step ? len - at : step;
        int rc = ps_ws_parse(p, (const char *)data + at, n, record, s);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* A text message in two fragments with a ping between, a binary one, a
 * pong and a close with a reason: the same events whatever the split. */
static void test_any_split_same_events(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t n = 0;
    n += client_frame(buf + n, 0x01, "{\"connect\":", 11, true);
    n += client_frame(buf + n, 0x89, "hi", 2, true);
    n += client_frame(buf + n, 0x80, "{}}", 3, true);
    uint8_t big[300];
    memset(big, 'b', sizeof big);
    n += client_frame(buf + n, 0x82, big, sizeof big, true);
    n += client_frame(buf + n, 0x8a, "", 0, true);
    n += client_frame(buf + n, 0x88, "\x03\xe8" "bye", 5, true);
    for (size_t step = 1; step <= n; step++) {
        ps_ws_parser p;
        ps_ws_parser_init(&p, LIMIT);
        seen s = {0};
        assert_int_equal(feed(&p, buf, n, step, &s), 0);
        assert_int_equal(s.count, 5);
        assert_int_equal(s.opcode[0], 0x9);
        assert_string_equal(s.data[0], "hi");
        assert_int_equal(s.opcode[1], 0x1);
        assert_string_equal(s.data[1], "{\"connect\":{}}");
        assert_int_equal(s.opcode[2], 0x2);
        assert_int_equal(s.len[2], sizeof big);
        assert_int_equal(s.opcode[3], 0xa);
        assert_int_equal(s.len[3], 0);
        assert_int_equal(s.opcode[4], 0x8);
        assert_int_equal(s.code[4], 1000);
        assert_string_equal(s.data[4], "bye");
        /* Nothing is held between messages. */
        assert_null(p.msg);
        ps_ws_parser_fini(&p);
    }
}

static int parse_one(const uint8_t *frame, size_t len, seen *s)
{
    ps_ws_parser p;
    ps_ws_parser_init(&p, LIMIT);
    int rc = feed(&p, frame, len, len, s);
    /* After a failure nothing more is taken. */
    if (rc != 0) {
        assert_int_equal(ps_ws_parse(&p, "\x81\x80", 2, record, s),
                         PS_WS_CLOSE_PROTOCOL_ERROR);
    }
    ps_ws_parser_fini(&p);
    return rc;
}

static void test_framing_errors(void **state)
{
    (void)state;
    uint8_t f[2048];
    seen s = {0};
    /* Not masked. */
    assert_int_equal(parse_one(f, client_frame(f, 0x81, "{}", 2, false), &s), 1002);
    /* RSV1, RSV2, RSV3. */
    assert_int_equal(parse_one(f, client_frame(f, 0xc1, "{}", 2, true), &s), 1002);
    assert_int_equal(parse_one(f, client_frame(f, 0xa1, "{}", 2, true), &s), 1002);
    assert_int_equal(parse_one(f, client_frame(f, 0x91, "{}", 2, true), &s), 1002);
    /* Unknown opcodes, data and control. */
    assert_int_equal(parse_one(f, client_frame(f, 0x83, "x", 1, true), &s), 1002);
    assert_int_equal(parse_one(f, client_frame(f, 0x8b, "x", 1, true), &s), 1002);
    /* Control frames: over 125 bytes, fragmented. */
    uint8_t big[126] = {0};
    assert_int_equal(parse_one(f, client_frame(f, 0x89, big, 126, true), &s), 1002);
    assert_int_equal(parse_one(f, client_frame(f, 0x09, "x", 1, true), &s), 1002);
    /* A continuation without a message; a new message inside one. */
    assert_int_equal(parse_one(f, client_frame(f, 0x80, "x", 1, true), &s), 1002);
    size_t n = client_frame(f, 0x01, "a", 1, true);
    n += client_frame(f + n, 0x81, "b", 1, true);
    assert_int_equal(parse_one(f, n, &s), 1002);
    /* Close: a one-byte body, a code that may not be sent, a bad reason. */
    assert_int_equal(parse_one(f, client_frame(f, 0x88, "\x03", 1, true), &s), 1002);
    assert_int_equal(parse_one(f, client_frame(f, 0x88, "\x03\xed", 2, true), &s), 1002); /* 1005 */
    assert_int_equal(parse_one(f, client_frame(f, 0x88, "\x13\x88", 2, true), &s), 1002); /* 5000 */
    assert_int_equal(parse_one(f, client_frame(f, 0x88, "\x03\xe8\xff", 3, true), &s), 1007);
    /* A 64-bit length with its top bit set. */
    static const uint8_t huge[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    assert_int_equal(parse_one(huge, sizeof huge, &s), 1002);
    assert_int_equal(s.count, 0); /* none of them reached the handler */
    /* A close without a code is reported as 1005. */
    assert_int_equal(parse_one(f, client_frame(f, 0x88, "", 0, true), &s), 0);
    assert_int_equal(s.code[0], PS_WS_CLOSE_NO_STATUS);
}

static void test_utf8(void **state)
{
    (void)state;
    uint8_t f[256];
    seen s = {0};
    /* Valid: 2, 3 and 4 byte characters, split across fragments. */
    const char *ok = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    size_t n = client_frame(f, 0x01, ok, 4, true);
    n += client_frame(f + n, 0x80, ok + 4, 5, true);
    assert_int_equal(parse_one(f, n, &s), 0);
    assert_string_equal(s.data[0], ok);
    /* Invalid: a stray continuation, an overlong '/', a surrogate, above
     * U+10FFFF, 0xff, and a character cut off at the end. */
    static const char *const bad[] = {"\x80", "\xc0\xaf", "\xed\xa0\x80",
                                      "\xf4\x90\x80\x80", "\xff", "\xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse_one(f, client_frame(f, 0x81, bad[i], strlen(bad[i]), true), &s),
                         1007);
    }
    /* Binary messages are not checked. */
    assert_int_equal(parse_one(f, client_frame(f, 0x82, "\xff", 1, true), &s), 0);
    /* The checker on its own: state carries across calls. */
    uint32_t st = 0;
    assert_true(ps_utf8_feed(&st, (const uint8_t *)"\xf0\x9f", 2));
    assert_int_not_equal(st, 0);
    assert_true(ps_utf8_feed(&st, (const uint8_t *)"\x98\x80", 2));
    assert_int_equal(st, 0);
    /* Long ASCII runs are skipped a word at a time: a bad byte or a
     * character is still seen at every offset, and a character split
     * by the run's end still carries over. */
    uint8_t run[40];
    for (size_t at = 0; at < sizeof run; at++) {
        memset(run, 'a', sizeof run);
        run[at] = 0xff;
        st = 0;
        assert_false(ps_utf8_feed(&st, run, sizeof run));
        if (at + 2 <= sizeof run) {
            memcpy(run + at, "\xc3\xa9", 2);
            st = 0;
            assert_true(ps_utf8_feed(&st, run, sizeof run));
            assert_int_equal(st, 0);
        }
        memset(run, 'a', sizeof run);
        run[at] = 0xe2;
        st = 0;
        assert_true(ps_utf8_feed(&st, run, at + 1));
        assert_int_not_equal(st, 0);
    }
}

static void test_message_limit(void **state)
{
    (void)state;
    static uint8_t f[3 * LIMIT];
    static uint8_t payload[LIMIT + 1];
    memset(payload, 'x', sizeof payload);
    seen s = {0};
    /* Exactly the limit passes; one byte more is 1009, also in fragments. */
    assert_int_equal(parse_one(f, client_frame(f, 0x82, payload, LIMIT, true), &s), 0);
    assert_int_equal(s.len[0], LIMIT);
    assert_int_equal(parse_one(f, client_frame(f, 0x82, payload, LIMIT + 1, true), &s), 1009);
    size_t n = client_frame(f, 0x02, payload, LIMIT / 2, true);
    n += client_frame(f + n, 0x80, payload, LIMIT / 2 + 1, true);
    assert_int_equal(parse_one(f, n, &s), 1009);
    /* The limit is checked from the header: no byte of the payload is
     * needed (nor buffered). */
    static const uint8_t head[] = {0x82, 0xfe, 0xff, 0xff, 1, 2, 3, 4};
    assert_int_equal(parse_one(head, sizeof head, &s), 1009);
}

static void test_handler_stops(void **state)
{
    (void)state;
    uint8_t f[64];
    size_t n = client_frame(f, 0x81, "a", 1, true);
    n += client_frame(f + n, 0x81, "b", 1, true);
    ps_ws_parser p;
    ps_ws_parser_init(&p, LIMIT);
    seen s = {0};
    s.stop_after = 1;
    assert_int_equal(ps_ws_parse(&p, (const char *)f, n, record, &s), 0);
    assert_int_equal(s.count, 1);
    ps_ws_parser_fini(&p);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    uint8_t f[64];
    size_t n = client_frame(f, 0x81, "{}", 2, true);
    ps_ws_parser p;
    ps_ws_parser_init(&p, LIMIT);
    seen s = {0};
    counting_arm(1);
    assert_int_equal(ps_ws_parse(&p, (const char *)f, n, record, &s), 1011);
    counting_arm(0);
    assert_int_equal(s.count, 0);
    ps_ws_parser_fini(&p);
}

static void test_server_header(void **state)
{
    (void)state;
    uint8_t h[PS_WS_HEADER_MAX];
    assert_int_equal(ps_ws_frame_header(h, 0x1, 125), 2);
    assert_int_equal(h[0], 0x81);
    assert_int_equal(h[1], 125);
    assert_int_equal(ps_ws_frame_header(h, 0x8, 126), 4);
    assert_int_equal(h[0], 0x88);
    assert_int_equal(h[1], 126);
    assert_int_equal((h[2] << 8) | h[3], 126);
    assert_int_equal(ps_ws_frame_header(h, 0x2, 70000), 10);
    assert_int_equal(h[1], 127);
    assert_int_equal((h[7] << 16) | (h[8] << 8) | h[9], 70000);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_split_same_events),
        cmocka_unit_test(test_framing_errors),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_message_limit),
        cmocka_unit_test(test_handler_stops),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_server_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
