/*
 * Fuzz target: the WebSocket frame parser (ws_frame.c) fed arbitrary
 * bytes. The first byte picks a split (the stream goes in pieces of that
 * many bytes), the next two the message limit; the rest is the stream.
 * Whatever the split, the parser must hand out the same events and end
 * with the same result as when fed the stream whole; every text message
 * and close reason it hands out is valid UTF-8, no message is over the
 * limit, no control payload over 125 bytes. No crash, no leak.
 * SPDX-License-Identifier: MIT
 */
#include "server_fuzz.h"

#include "ws_frame.h"

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "server_ws_frames: ");                             \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
            abort();                                                           \
        }                                                                      \
    } while (0)

typedef struct trace {
    uint64_t hash; /* FNV-1a over every event */
    size_t events;
    size_t limit;
} trace;

static void mix(trace *t, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        t->hash = (t->hash ^ p[i]) * 0x100000001b3ULL;
    }
}

static bool on_event(void *user, int opcode, const char *data, size_t len,
                     int code)
{
    trace *t = user;
    uint32_t u = 0;
    if (opcode == 0x1 || opcode == 0x8) {
        CHECK(ps_utf8_feed(&u, (const uint8_t *)data, len) && u == 0,
              "invalid UTF-8 handed out (opcode %d)", opcode);
    }
    if (opcode & 0x8) {
        CHECK(len <= 125, "a control payload of %zu bytes", len);
    } else {
        CHECK(len <= t->limit, "a message of %zu bytes over %zu", len, t->limit);
    }
    if (opcode == 0x8) {
        CHECK(code == PS_WS_CLOSE_NO_STATUS || ps_ws_close_code_valid(code),
              "close code %d", code);
    }
    mix(t, &opcode, sizeof opcode);
    mix(t, &code, sizeof code);
    mix(t, &len, sizeof len);
    mix(t, data, len);
    t->events++;
    return true;
}

static int run(const uint8_t *data, size_t size, size_t step, size_t limit,
               trace *t)
{
    ps_ws_parser p;
    ps_ws_parser_init(&p, limit);
    t->hash = 0xcbf29ce484222325ULL;
    t->events = 0;
    t->limit = limit;
    int rc = 0;
    for (size_t at = 0; at < size && rc == 0; at += step) {
        size_t n = size - at < step ? size - at : step;
        rc = ps_ws_parse(&p, (const char *)data + at, n, on_event, t);
    }
    ps_ws_parser_fini(&p);
    return rc;
}

int ps_fuzz_server_ws_frames(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    size_t step = data[0] ? data[0] : 1;
    size_t limit = ((size_t)data[1] << 8) | data[2];
    data += 3;
    size -= 3;
    trace whole;
    trace split;
    int rc_whole = run(data, size, size ? size : 1, limit, &whole);
    int rc_split = run(data, size, step, limit, &split);
    CHECK(rc_whole == rc_split, "result %d whole, %d in pieces of %zu",
          rc_whole, rc_split, step);
    CHECK(whole.events == split.events && whole.hash == split.hash,
          "%zu events whole, %zu in pieces of %zu", whole.events,
          split.events, step);
    CHECK(rc_whole == 0 || rc_whole == PS_WS_CLOSE_PROTOCOL_ERROR ||
              rc_whole == PS_WS_CLOSE_INVALID_DATA ||
              rc_whole == PS_WS_CLOSE_TOO_BIG ||
              rc_whole == PS_WS_CLOSE_INTERNAL,
          "result %d", rc_whole);
    return 0;
}
