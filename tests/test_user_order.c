/*
 * A channel's members are kept ordered by user: up to 8 of a user's
 * members side by side, a crowd's others apart (src/containers/
 * memberset.h). Random joins, leaves, renewals and disconnects of clients
 * whose users range from one crowd ("" for half of them) to users of
 * their own, checked against a plain model after every call: clients and
 * distinct users per channel, user join and leave events, each user's
 * connections, and paged walks that must return every member once in
 * pages of exactly their limit. The calls come in phases that fill the
 * channels and drain them.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANNELS 3
#define CLIENTS 120
#define OPS 6000

/* Clients 0-59 are user "" (a crowd), 60-89 three each of a0-a9, 90-119
 * their own users. */
static void user_of(int c, char *buf, size_t size)
{
    if (c < 60) {
        snprintf(buf, size, "%s", "");
    } else if (c < 90) {
        snprintf(buf, size, "a%d", (c - 60) / 3);
    } else {
        snprintf(buf, size, "s%d", c);
    }
}

static bool in[CLIENTS][CHANNELS];

static int model_clients(int ch)
{
    int n = 0;
    for (int c = 0; c < CLIENTS; c++) {
        n += in[c][ch];
    }
    return n;
}

/* Members of the channel with client c's user. */
static int model_user_members(int ch, int c)
{
    char u[16], v[16];
    user_of(c, u, sizeof u);
    int n = 0;
    for (int d = 0; d < CLIENTS; d++) {
        user_of(d, v, sizeof v);
        n += in[d][ch] && strcmp(u, v) == 0;
    }
    return n;
}

static int model_users(int ch)
{
    int n = 0;
    for (int c = 0; c < CLIENTS; c++) {
        bool first = in[c][ch];
        char u[16], v[16];
        user_of(c, u, sizeof u);
        for (int d = 0; d < c && first; d++) {
            user_of(d, v, sizeof v);
            first = !(in[d][ch] && strcmp(u, v) == 0);
        }
        n += first;
    }
    return n;
}

static uint64_t rng = 0x2545f4914f6cdd1dULL;

static unsigned next(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 33) % n;
}

static void channel_name(int ch, char *buf, size_t size)
{
    snprintf(buf, size, "r%d", ch);
}

static void client_name(int c, char *buf, size_t size)
{
    snprintf(buf, size, "k%d", c);
}

/* Every member once, in pages of exactly `limit` (the last may be short),
 * cursors rising. */
static void check_walk(presence_registry *reg, int ch, size_t limit)
{
    char chn[8], id[16];
    channel_name(ch, chn, sizeof chn);
    int seen[CLIENTS] = {0};
    uint64_t cursor = 0;
    size_t total = 0;
    do {
        presence_snapshot *page = NULL;
        assert_ok(presence_query_page(reg, chn, presence_trusted(), cursor,
                                      limit, &page));
        assert_true(page->count <= limit);
        assert_true(page->next_cursor == 0 || page->count == limit);
        assert_true(page->next_cursor == 0 || page->next_cursor > cursor);
        for (size_t i = 0; i < page->count; i++) {
            int c = atoi(page->members[i].client_id + 1);
            assert_true(c >= 0 && c < CLIENTS);
            seen[c]++;
        }
        total += page->count;
        cursor = page->next_cursor;
        presence_snapshot_free(page);
    } while (cursor != 0);
    assert_int_equal(total, (size_t)model_clients(ch));
    for (int c = 0; c < CLIENTS; c++) {
        client_name(c, id, sizeof id);
        assert_int_equal(seen[c], in[c][ch] ? 1 : 0);
    }
}

static void check_users(presence_registry *reg, int ch)
{
    char chn[8], u[16];
    channel_name(ch, chn, sizeof chn);
    for (int c = 0; c < CLIENTS; c++) {
        user_of(c, u, sizeof u);
        size_t n = 99;
        assert_ok(presence_user_present(reg, chn, u, &n));
        assert_int_equal(n, (size_t)model_user_members(ch, c));
        if (c % 7 == 0) {
            presence_snapshot *snap = NULL;
            assert_ok(presence_user_connections(reg, chn, u, &snap));
            assert_int_equal(snap->count, n);
            presence_snapshot_free(snap);
        }
    }
}

static void test_random_users_against_model(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    memset(in, 0, sizeof in);
    size_t user_joins = 0, user_leaves = 0;
    char chn[8], id[16], u[16];
    for (int op = 0; op < OPS; op++) {
        int c = (int)next(CLIENTS);
        int ch = (int)next(CHANNELS);
        client_name(c, id, sizeof id);
        channel_name(ch, chn, sizeof chn);
        user_of(c, u, sizeof u);
        /* Phases of 300 calls fill the channels, then drain them, so that
         * crowds form and a group empties while members apart stay. */
        unsigned what = next(10);
        bool filling = op / 300 % 2 == 0;
        what = filling ? (what < 7 ? 0 : what) : (what < 7 ? 5 : what);
        if (what < 5) { /* join (a renewal when already in) */
            if (!in[c][ch] && model_user_members(ch, c) == 0) {
                user_joins++;
            }
            assert_ok(join_simple(f.reg, chn, id, u));
            in[c][ch] = true;
        } else if (what < 8) {
            if (in[c][ch]) {
                if (model_user_members(ch, c) == 1) {
                    user_leaves++;
                }
                assert_ok(presence_leave(f.reg, chn, id));
                in[c][ch] = false;
            } else {
                assert_rc(presence_leave(f.reg, chn, id),
                          PRESENCE_ERR_NOT_FOUND);
            }
        } else if (what < 9) {
            assert_rc(presence_touch(f.reg, chn, id),
                      in[c][ch] ? PRESENCE_OK : PRESENCE_ERR_NOT_FOUND);
        } else {
            size_t had = 0;
            for (int k = 0; k < CHANNELS; k++) {
                if (in[c][k]) {
                    user_leaves += model_user_members(k, c) == 1;
                    in[c][k] = false;
                    had++;
                }
            }
            size_t left = 99;
            assert_ok(presence_disconnect(f.reg, id, &left));
            assert_int_equal(left, had);
        }
        for (int k = 0; k < CHANNELS; k++) {
            channel_name(k, chn, sizeof chn);
            assert_stats(f.reg, chn, (size_t)model_clients(k),
                         (size_t)model_users(k));
        }
        assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_JOIN),
                         user_joins);
        assert_int_equal(recorder_count(&f.rec, PRESENCE_EVENT_USER_LEAVE),
                         user_leaves);
        if (op % 500 == 499) {
            for (int k = 0; k < CHANNELS; k++) {
                check_walk(f.reg, k, 1 + next(5));
                check_users(f.reg, k);
            }
            assert_ok(save_and_load(f.reg));
        }
    }
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_users_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
