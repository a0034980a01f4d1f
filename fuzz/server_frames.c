/*
 * Fuzz target: the presence server's frame and command handling, without
 * sockets. Input bytes become WebSocket frames from up to three clients at
 * a time (text, binary, fragments, control frames, abrupt ends), and
 * allocation failures at chosen points; the frames run through the session
 * layer (examples/presence-server/session.c) of a server built on the
 * socket-free harness (testing.c). After every step:
 *   - hub and registry agree: every subscriber of a presence namespace is
 *     in its presence, nobody else is (no ghost, no loss), a closed
 *     connection is in no channel (ps_test_check);
 *   - what the server wrote parses: every text frame is newline-separated
 *     JSON objects, a close frame has a known code and nothing follows it.
 * At the end every connection goes and the registry must be empty.
 *
 * Input format: records of
 *   op:u8 len:u16le payload[len]      (len clamped to what is left)
 * op % 4 picks the client slot (3 means slot 0), op / 4 % 16 the action:
 *   0-5 text frame, 6 text without FIN, 7 continuation without FIN,
 *   8 continuation with FIN, 9 binary frame, 10 ping, 11 pong, 12 close
 *   (payload = close body), 13 the socket dies (no close frame),
 *   14 fail the Nth allocation from now on (N = payload[0] + 1),
 *   15 the client answers the server's close, or a closed slot reconnects.
 * In a payload, byte 0x01 followed by a byte i stands for the i-th of the
 * prepared tokens (valid, expired, "none", HS512, subscription tokens...),
 * so that the fuzzer gets past authentication.
 *
 * SPDX-License-Identifier: MIT
 */
#include "server_fuzz.h"

#include "conn.h"
#include "mem.h"
#include "testing.h"
#include "token.h"

#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 3
#define MAX_PEERS 48
#define MAX_TOKENS 10

static const char config_json[] =
    "{\"token_hmac_secret_key\":\"fuzz-secret\",\"api_key\":\"k\","
    "\"allow_anonymous_connect_without_token\":true,"
    "\"presence\":true,\"join_leave\":true,\"allow_subscribe_for_client\":true,"
    "\"allow_presence_for_subscriber\":true,"
    "\"client_channel_limit\":4,\"client_connection_limit\":3,"
    "\"websocket_message_size_limit\":2048,\"client_queue_max_size\":4096,"
    "\"channel_max_length\":32,"
    "\"namespaces\":["
    "{\"name\":\"pub\",\"presence\":true,\"join_leave\":true,"
    "\"allow_subscribe_for_client\":true,\"allow_subscribe_for_anonymous\":true,"
    "\"allow_presence_for_subscriber\":true,\"allow_presence_for_anonymous\":true},"
    "{\"name\":\"open\",\"presence\":true,\"join_leave\":true,"
    "\"force_push_join_leave\":true,\"allow_subscribe_for_client\":true,"
    "\"allow_presence_for_client\":true},"
    "{\"name\":\"priv\",\"presence\":true,\"join_leave\":true,"
    "\"allow_presence_for_subscriber\":true},"
    "{\"name\":\"nop\",\"presence\":false,\"allow_subscribe_for_client\":true}]}";

/* ---- allocation failure ------------------------------------------------ */

static unsigned long fail_countdown; /* 0: no failure armed */
static bool fail_off;                /* during the harness's own checks */

static void *fz_malloc(size_t size, void *ud)
{
    (void)ud;
    if (!fail_off && fail_countdown != 0 && --fail_countdown == 0) {
        return NULL;
    }
    return malloc(size);
}

static void *fz_realloc(void *ptr, size_t size, void *ud)
{
    (void)ud;
    if (!fail_off && fail_countdown != 0 && --fail_countdown == 0) {
        return NULL;
    }
    return realloc(ptr, size);
}

static void fz_free(void *ptr, void *ud)
{
    (void)ud;
    free(ptr);
}

/* ---- tokens ------------------------------------------------------------ */

static char *tokens[MAX_TOKENS];
static size_t token_count;

static char *sign_with(jwt_alg_t alg, const char *secret, const char *claims)
{
    jwt_t *jwt = NULL;
    char *out = NULL;
    if (jwt_new(&jwt) == 0 && jwt_add_grants_json(jwt, claims) == 0 &&
        jwt_set_alg(jwt, alg, (const unsigned char *)secret,
                    secret ? (int)strlen(secret) : 0) == 0) {
        char *s = jwt_encode_str(jwt);
        out = s ? strdup(s) : NULL;
        free(s);
    }
    jwt_free(jwt);
    return out;
}

static void add_token(char *token)
{
    if (token == NULL) {
        fprintf(stderr, "server_frames: cannot make the tokens\n");
        abort();
    }
    tokens[token_count++] = token;
}

static char *mint(const char *sub, long long exp, const char *info,
                  const char *channel)
{
    char err[128];
    char *t = ps_token_mint("fuzz-secret", sub, exp, info, channel, err,
                            sizeof err);
    char *copy = t ? strdup(t) : NULL;
    ps_free(t);
    return copy;
}

static void setup_once(void)
{
    static bool done;
    if (done) {
        return;
    }
    done = true;
    static const ps_mem_hooks hooks = {fz_malloc, fz_realloc, fz_free, NULL};
    ps_mem_set_hooks(&hooks);
    ps_mem_install_jansson();
    ps_log_set_quiet(true);
    long long now = (long long)time(NULL);
    char claims[128];
    add_token(mint("alice", now + 36000, "{\"name\":\"Alice\"}", NULL));
    add_token(mint("bob", 0, NULL, NULL));
    add_token(mint("alice", now - 10, NULL, NULL));
    add_token(sign_with(JWT_ALG_NONE, NULL, "{\"sub\":\"alice\"}"));
    add_token(sign_with(JWT_ALG_HS512, "fuzz-secret", "{\"sub\":\"alice\"}"));
    add_token(mint("alice", 0, "{\"role\":\"mod\"}", "priv:a"));
    add_token(mint("", 0, NULL, "priv:a"));
    snprintf(claims, sizeof claims, "{\"sub\":\"carol\",\"nbf\":%lld}", now + 36000);
    add_token(sign_with(JWT_ALG_HS256, "fuzz-secret", claims));
    add_token(mint("", now + 36000, NULL, NULL));
    add_token(mint("alice", now - 10, NULL, "priv:b"));
}

/* The payload with token references expanded; malloc'd, length in *out. */
static char *expand(const uint8_t *p, size_t n, size_t *out)
{
    size_t cap = n + 1;
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == 0x01) {
            cap += strlen(tokens[p[i + 1] % token_count]);
        }
    }
    char *buf = malloc(cap);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == 0x01 && i + 1 < n) {
            const char *t = tokens[p[++i] % token_count];
            memcpy(buf + k, t, strlen(t));
            k += strlen(t);
        } else {
            buf[k++] = (char)p[i];
        }
    }
    buf[k] = '\0';
    *out = k;
    return buf;
}

/* ---- checks ------------------------------------------------------------ */

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "server_frames: ");                                \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* The codes this server closes with, and those it may echo back. */
static bool known_close(int code, bool client_closed)
{
    switch (code) {
    case 1002:
    case 1009:
    case 3001:
    case 3004:
    case 3008:
    case 3500:
    case 3501:
    case 3504:
        return true;
    default:
        /* An echo: RFC 6455's codes that may be sent, or none (1005). */
        return client_closed &&
               ((code >= 1000 && code <= 1003) || code == 1005 ||
                (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999));
    }
}
typedef struct run {
    ps_test_server t;
    ps_test_peer *peers[MAX_PEERS];
    size_t npeers;
    ps_test_peer *slot[SLOTS];
    size_t seen[MAX_PEERS]; /* frames already checked, per peer */
    bool client_closed[MAX_PEERS]; /* the client sent a close frame */
} run;

static void check_output(run *r, size_t index)
{
    ps_test_peer *p = r->peers[index];
    for (size_t i = r->seen[index]; i < p->count; i++) {
        const ps_test_frame *f = &p->frames[i];
        if (f->opcode == PS_WS_CLOSE) {
            CHECK(known_close(p->close_code, r->client_closed[index]),
                  "close code %d", p->close_code);
            CHECK(i + 1 == p->count, "a frame after the close frame");
            continue;
        }
        if (f->opcode != PS_WS_TEXT) {
            CHECK(f->opcode == PS_WS_PONG, "opcode %d written", f->opcode);
            continue;
        }
        CHECK(f->len > 0, "an empty text frame");
        const char *line = f->data;
        const char *end = f->data + f->len;
        while (line < end) {
            const char *nl = memchr(line, '\n', (size_t)(end - line));
            size_t n = (size_t)((nl ? nl : end) - line);
            json_t *msg = json_loadb(line, n, 0, NULL);
            CHECK(json_is_object(msg), "not a JSON object: %.*s", (int)n, line);
            json_t *err = json_object_get(msg, "error");
            if (err != NULL) {
                CHECK(json_integer_value(json_object_get(err, "code")) >= 100 &&
                          json_is_string(json_object_get(err, "message")),
                      "bad error: %.*s", (int)n, line);
                CHECK(json_integer_value(json_object_get(msg, "id")) > 0,
                      "an error without id: %.*s", (int)n, line);
            }
            json_decref(msg);
            line = nl ? nl + 1 : end;
        }
    }
    r->seen[index] = p->count;
}

static void check_all(run *r)
{
    fail_off = true;
    for (size_t i = 0; i < r->npeers; i++) {
        check_output(r, i);
    }
    char why[256];
    CHECK(ps_test_check(&r->t, r->peers, r->npeers, why, sizeof why) == 0, "%s",
          why);
    fail_off = false;
}

/* The peer of a slot, opening one if the slot is empty or closed. NULL
 * once MAX_PEERS have been used. */
static ps_test_peer *slot_peer(run *r, size_t s)
{
    if (r->slot[s] != NULL && !r->slot[s]->closed) {
        return r->slot[s];
    }
    if (r->npeers == MAX_PEERS) {
        return NULL;
    }
    ps_test_peer *p = ps_test_peer_open(&r->t);
    r->peers[r->npeers++] = p;
    r->slot[s] = p;
    return p;
}

static void step(run *r, uint8_t op, const uint8_t *payload, size_t len)
{
    size_t s = (size_t)(op & 3) % SLOTS;
    unsigned action = (unsigned)(op >> 2) % 16;
    if (action == 14) {
        fail_countdown = len > 0 ? (unsigned long)payload[0] + 1 : 1;
        return;
    }
    if (action == 15) {
        if (r->slot[s] != NULL && !r->slot[s]->closed && r->slot[s]->close_code) {
            ps_test_peer_answer_close(&r->t, r->slot[s]);
        } else {
            slot_peer(r, s);
        }
        return;
    }
    ps_test_peer *p = slot_peer(r, s);
    if (p == NULL) {
        return;
    }
    if (action == 13) {
        ps_test_peer_drop(&r->t, p);
        return;
    }
    static const struct { int opcode; bool fin; } frames[] = {
        [6] = {PS_WS_TEXT, false},
        [7] = {PS_WS_CONTINUATION, false},
        [8] = {PS_WS_CONTINUATION, true},
        [9] = {PS_WS_BINARY, true},
        [10] = {PS_WS_PING, true},
        [11] = {PS_WS_PONG, true},
        [12] = {PS_WS_CLOSE, true},
    };
    int opcode = action < 6 ? PS_WS_TEXT : frames[action].opcode;
    bool fin = action < 6 ? true : frames[action].fin;
    if (opcode == PS_WS_CLOSE) {
        for (size_t k = 0; k < r->npeers; k++) {
            r->client_closed[k] |= r->peers[k] == p;
        }
    }
    size_t n = 0;
    char *data = expand(payload, len, &n);
    ps_test_peer_frame(&r->t, p, opcode, fin, data, n);
    free(data);
}

int ps_fuzz_server_frames(const uint8_t *data, size_t size)
{
    setup_once();
    run r;
    memset(&r, 0, sizeof r);
    char err[256];
    fail_countdown = 0;
    fail_off = true;
    CHECK(ps_test_server_init(&r.t, config_json, err, sizeof err) == 0, "%s", err);
    fail_off = false;
    size_t i = 0;
    while (i < size) {
        uint8_t op = data[i++];
        size_t len = 0;
        if (i + 2 <= size) {
            len = (size_t)data[i] | (size_t)data[i + 1] << 8;
            i += 2;
        } else {
            i = size;
        }
        if (len > size - i) {
            len = size - i;
        }
        step(&r, op, data + i, len);
        i += len;
        fail_countdown = 0; /* a failure applies to one step */
        check_all(&r);
    }
    fail_off = true;
    for (size_t k = 0; k < r.npeers; k++) {
        ps_test_peer_drop(&r.t, r.peers[k]);
    }
    check_all(&r);
    fail_off = true;
    presence_counts counts;
    presence_registry_counts(r.t.server.registry, &counts);
    CHECK(counts.memberships == 0 && counts.clients == 0,
          "%zu memberships left after everyone left", counts.memberships);
    CHECK(r.t.server.hub.channels == NULL, "hub channels left");
    CHECK(r.t.server.client_count == 0 && r.t.server.transport_count == 0,
          "connections left in the tables");
    for (size_t k = 0; k < r.npeers; k++) {
        ps_test_peer_free(&r.t, r.peers[k]);
    }
    ps_test_server_fini(&r.t);
    fail_off = false;
    return 0;
}
