/*
 * Helpers shared by the server's unit tests: reading what a fake peer was
 * sent, and counting (and failing) the server's allocations.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_TEST_COMMON_H
#define PS_TEST_COMMON_H

#include "../conn.h"
#include "../mem.h"
#include "../testing.h"
#include "../token.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- allocation hooks: count allocations, fail the Nth ---------------- */

static struct {
    long live;            /* blocks handed out and not freed (approximate:
                             libjwt frees some jansson blocks with free()) */
    unsigned long count;  /* allocations since counting_arm() */
    unsigned long fail_at; /* 0 = never; else the allocation that fails */
    unsigned long failed; /* how many were failed */
    unsigned long fail_at_last; /* the last fail_at armed, for messages */
} counting;

/* A fresh directory named <TMPDIR or /tmp>/<name>-XXXXXX in dir (size
 * at least 64), for tests that need files; mkdtemp makes it 0700. */
static inline char *make_temp_dir(char *dir, size_t size, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/%s-XXXXXX",
             tmp != NULL && *tmp != '\0' && strlen(tmp) < 40 ? tmp : "/tmp",
             name);
    return mkdtemp(dir);
}

static inline void *counting_malloc(size_t size, void *ud)
{
    (void)ud;
    if (counting.fail_at != 0 && ++counting.count == counting.fail_at) {
        counting.failed++;
        return NULL;
    }
    void *p = malloc(size);
    counting.live += p != NULL;
    return p;
}

static inline void *counting_realloc(void *ptr, size_t size, void *ud)
{
    (void)ud;
    if (counting.fail_at != 0 && ++counting.count == counting.fail_at) {
        counting.failed++;
        return NULL;
    }
    void *p = realloc(ptr, size);
    counting.live += ptr == NULL && p != NULL;
    return p;
}

static inline void counting_free(void *ptr, void *ud)
{
    (void)ud;
    counting.live--;
    free(ptr);
}

/* Route the server, jansson and libpresence through the counting hooks.
 * Call first thing in main(). */
static inline void counting_install(void)
{
    static const ps_mem_hooks hooks = {counting_malloc, counting_realloc,
                                       counting_free, NULL};
    ps_mem_set_hooks(&hooks);
    ps_mem_install_jansson();
    ps_log_set_quiet(true);
}

/* From now on, allocation number n fails (n = 0: none does). */
static inline void counting_arm(unsigned long n)
{
    counting.count = 0;
    counting.failed = 0;
    counting.fail_at = n;
    if (n != 0) {
        counting.fail_at_last = n;
    }
}

/* ---- what a peer was sent --------------------------------------------- */

/* Every JSON message in the text frames a peer got, in order (a new
 * array). Aborts on a line that is not a JSON object: the server never
 * sends one. */
static inline json_t *peer_messages(const ps_test_peer *peer)
{
    unsigned long saved = counting.fail_at;
    counting.fail_at = 0; /* the test's own parsing never fails */
    json_t *all = json_array();
    for (size_t i = 0; i < peer->count; i++) {
        const ps_test_frame *f = &peer->frames[i];
        if (f->opcode != PS_WS_TEXT) {
            continue;
        }
        const char *line = f->data;
        const char *end = f->data + f->len;
        while (line < end) {
            const char *nl = memchr(line, '\n', (size_t)(end - line));
            size_t n = (size_t)((nl ? nl : end) - line);
            json_t *msg = json_loadb(line, n, 0, NULL);
            if (!json_is_object(msg)) {
                fprintf(stderr, "not a JSON object: %.*s\n", (int)n, line);
                abort();
            }
            json_array_append_new(all, msg);
            line = nl ? nl + 1 : end;
        }
    }
    counting.fail_at = saved;
    return all;
}

/* The reply with this id among a peer's messages (borrowed from @p all),
 * or NULL. */
static inline json_t *find_reply(json_t *all, json_int_t id)
{
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m) {
        json_t *mid = json_object_get(m, "id");
        if (json_is_integer(mid) && json_integer_value(mid) == id) {
            return m;
        }
    }
    return NULL;
}

/* ---- driving a peer ----------------------------------------------------- */

/* A peer that sends connect with a token for @p user signed with @p secret
 * (user NULL: anonymous); whether it is connected is up to the server.
 * NULL if the peer or its token could not be made. */
static inline ps_test_peer *peer_connect_as(ps_test_server *t,
                                            const char *secret,
                                            const char *user)
{
    ps_test_peer *p = ps_test_peer_open(t);
    if (p == NULL) {
        return NULL;
    }
    char cmd[1024];
    if (user != NULL) {
        char err[128];
        char *token = ps_token_mint(secret, user, (int64_t)time(NULL) + 600,
                                    NULL, NULL, err, sizeof err);
        if (token == NULL) {
            return NULL;
        }
        snprintf(cmd, sizeof cmd, "{\"connect\":{\"token\":\"%s\"},\"id\":1}",
                 token);
        ps_free(token);
    } else {
        snprintf(cmd, sizeof cmd, "{\"connect\":{},\"id\":1}");
    }
    ps_test_peer_send(t, p, cmd);
    return p;
}

/* Subscribe @p p to @p channel with join/leave (command id 2): whether the
 * reply was a subscribe result. */
static inline bool peer_subscribe(ps_test_server *t, ps_test_peer *p,
                                  const char *channel)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "{\"subscribe\":{\"channel\":\"%s\",\"join_leave\":true},\"id\":2}",
             channel);
    if (!ps_test_peer_send(t, p, cmd)) {
        return false;
    }
    json_t *all = peer_messages(p);
    bool ok = json_object_get(find_reply(all, 2), "subscribe") != NULL;
    json_decref(all);
    return ok;
}

/* The number of join or leave pushes about @p client in @p all. */
static inline size_t count_pushes(json_t *all, const char *kind,
                                  const char *client)
{
    size_t n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(all, i, m) {
        json_t *info = json_object_get(
            json_object_get(json_object_get(m, "push"), kind), "info");
        const char *c = json_string_value(json_object_get(info, "client"));
        n += c != NULL && strcmp(c, client) == 0;
    }
    return n;
}

#endif
