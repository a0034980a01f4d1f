/*
 * Queries: snapshot content and ownership, paged walks (also over a
 * changing channel), and the access check.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const presence_member *find_member(const presence_snapshot *snap,
                                          const char *client_id)
{
    const presence_member *found = NULL;
    for (size_t i = 0; i < snap->count; i++) {
        if (strcmp(snap->members[i].client_id, client_id) == 0) {
            assert_null(found);
            found = &snap->members[i];
        }
    }
    assert_non_null(found);
    return found;
}

static void test_snapshot_content(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    fake_clock_set(&f.clock, 2000);
    assert_ok(join_info(f.reg, "room", "c1", "u1", "k1", "x1"));
    fake_clock_set(&f.clock, 3000);
    assert_ok(presence_join(f.reg, "room", "c2", NULL, "a\0b", 3, NULL, 0));
    fake_clock_set(&f.clock, 4000);
    assert_ok(presence_touch(f.reg, "room", "c1"));
    assert_ok(join_simple(f.reg, "elsewhere", "c3", "u3"));

    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "room", presence_trusted(), &snap));
    assert_non_null(snap);
    assert_int_equal(snap->count, 2);
    assert_non_null(snap->members);
    assert_int_equal(snap->seq, 2);
    assert_int_equal(snap->stats.num_clients, 2);
    assert_int_equal(snap->stats.num_users, 2);
    assert_int_equal(snap->next_cursor, 0);

    const presence_member *m = find_member(snap, "c1");
    assert_string_equal(m->channel, "room");
    assert_string_equal(m->user_id, "u1");
    assert_int_equal(m->conn_info_len, 2);
    assert_memory_equal(m->conn_info, "k1", 2);
    assert_int_equal(m->chan_info_len, 2);
    assert_memory_equal(m->chan_info, "x1", 2);
    assert_int_equal(m->joined_at_ms, 2000);
    assert_int_equal(m->touched_at_ms, 4000);

    m = find_member(snap, "c2");
    assert_string_equal(m->channel, "room");
    assert_string_equal(m->user_id, "");
    assert_int_equal(m->conn_info_len, 3);
    assert_memory_equal(m->conn_info, "a\0b", 3);
    assert_int_equal(m->chan_info_len, 0);
    assert_null(m->chan_info);
    assert_int_equal(m->joined_at_ms, 3000);
    assert_int_equal(m->touched_at_ms, 3000);

    /* A snapshot does not change with the registry. */
    assert_ok(presence_leave(f.reg, "room", "c1"));
    assert_ok(presence_update(f.reg, "room", "c2", "new", 3));
    assert_int_equal(snap->count, 2);
    m = find_member(snap, "c1");
    assert_memory_equal(m->chan_info, "x1", 2);
    m = find_member(snap, "c2");
    assert_int_equal(m->chan_info_len, 0);
    presence_snapshot_free(snap);
    fixture_close(&f);
}

/* A member's id, user id and conn_info, of every length the snapshot
 * copies in a different way (to past 64 bytes together), come out whole,
 * a conn_info of none as NULL. */
static void test_member_strings_of_every_length(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    enum { N = 90 };
    char ids[N][32], users[N][32], infos[N][80];
    size_t info_lens[N];
    for (int i = 0; i < N; i++) {
        /* Ids of 3 to 26 bytes, user ids of 0 to 28, padded with letters
         * that vary with the position, so that a shifted copy shows. */
        int n = snprintf(ids[i], sizeof ids[i], "c%d-", i);
        for (int k = 0; k < i % 23; k++) {
            ids[i][n++] = (char)('a' + (i + k) % 26);
        }
        ids[i][n] = '\0';
        int user_len = (i * 5) % 29;
        for (int k = 0; k < user_len; k++) {
            users[i][k] = (char)('A' + (i * 3 + k) % 26);
        }
        users[i][user_len] = '\0';
        info_lens[i] = (size_t)(i * 7) % 71;
        for (size_t k = 0; k < info_lens[i]; k++) {
            infos[i][k] = (char)(k % 5 == 0 ? 0 : 'a' + (i + (int)k) % 26);
        }
        assert_ok(presence_join(f.reg, "room", ids[i], users[i], infos[i],
                                info_lens[i], NULL, 0));
    }
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "room", presence_trusted(), &snap));
    assert_int_equal(snap->count, N);
    for (int i = 0; i < N; i++) {
        const presence_member *m = find_member(snap, ids[i]);
        assert_string_equal(m->user_id, users[i]);
        assert_string_equal(m->node_id, "");
        assert_int_equal(m->conn_info_len, info_lens[i]);
        if (info_lens[i] == 0) {
            assert_null(m->conn_info);
        } else {
            assert_memory_equal(m->conn_info, infos[i], info_lens[i]);
        }
    }
    presence_snapshot_free(snap);
    fixture_close(&f);
}

static void test_empty_channel(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "other", "c1", "u1"));
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "nobody-here", presence_trusted(), &snap));
    assert_non_null(snap);
    assert_int_equal(snap->count, 0);
    assert_int_equal(snap->seq, 0);
    assert_int_equal(snap->stats.num_clients, 0);
    assert_int_equal(snap->stats.num_users, 0);
    assert_int_equal(snap->next_cursor, 0);
    presence_snapshot_free(snap);

    assert_ok(presence_query_page(f.reg, "nobody-here", presence_trusted(), 0, 10, &snap));
    assert_int_equal(snap->count, 0);
    assert_int_equal(snap->next_cursor, 0);
    presence_snapshot_free(snap);
    assert_stats(f.reg, "nobody-here", 0, 0);
    fixture_close(&f);
}

static void test_snapshot_outlives_registry(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_info(f.reg, "room", "c1", "u1", "conn", "chan"));
    assert_ok(join_info(f.reg, "room", "c2", "u2", NULL, NULL));
    presence_snapshot *snap = NULL, *chans = NULL;
    presence_channel_list *list = NULL;
    assert_ok(presence_query(f.reg, "room", presence_trusted(), &snap));
    assert_ok(presence_client_channels(f.reg, "c1", &chans));
    assert_ok(presence_channels(f.reg, NULL, &list));
    assert_ok(presence_registry_free(f.reg));
    f.reg = NULL;

    assert_int_equal(snap->count, 2);
    const presence_member *m = find_member(snap, "c1");
    assert_string_equal(m->user_id, "u1");
    assert_memory_equal(m->conn_info, "conn", 4);
    assert_memory_equal(m->chan_info, "chan", 4);
    assert_int_equal(chans->count, 1);
    assert_string_equal(chans->members[0].channel, "room");
    assert_int_equal(list->count, 1);
    assert_string_equal(list->channels[0].channel, "room");
    assert_int_equal(list->channels[0].stats.num_clients, 2);
    presence_snapshot_free(snap);
    presence_snapshot_free(chans);
    presence_channel_list_free(list);
    recorder_free(&f.rec);
    test_alloc_assert_clean(&f.alloc);
}

/* Walks: every member exactly once, cursor ends at 0. */
#define BIG 10000

static int index_of(const char *client_id, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(client_id, prefix, n) != 0) {
        return -1;
    }
    return atoi(client_id + n);
}

static void walk(presence_registry *r, const char *channel, size_t limit,
                 size_t expect_members)
{
    unsigned char *seen = calloc(BIG, 1);
    assert_non_null(seen);
    uint64_t cursor = 0;
    size_t total = 0, pages = 0, oversize = 0;
    do {
        presence_snapshot *page = NULL;
        assert_ok(presence_query_page(r, channel, presence_trusted(), cursor, limit, &page));
        assert_non_null(page);
        if (page->count > limit) {
            oversize++; /* only on hash collisions */
        }
        assert_int_equal(page->stats.num_clients, expect_members);
        for (size_t i = 0; i < page->count; i++) {
            const presence_member *m = &page->members[i];
            assert_string_equal(m->channel, channel);
            int k = index_of(m->client_id, "client");
            if (k < 0 || k >= BIG) {
                /* fail_msg() does not return; the break tells gcc, which
                 * otherwise sees seen[-1] written (-O3, stringop-overflow). */
                fail_msg("member %s is none of the channel's", m->client_id);
                break;
            }
            assert_int_equal(seen[k], 0);
            seen[k] = 1;
            char u[16];
            snprintf(u, sizeof(u), "u%d", k % 100);
            assert_string_equal(m->user_id, u);
        }
        total += page->count;
        cursor = page->next_cursor;
        presence_snapshot_free(page);
        pages++;
        assert_true(pages <= 2 * BIG + 2);
    } while (cursor != 0);
    assert_int_equal(total, expect_members);
    for (size_t k = 0; k < expect_members; k++) {
        assert_int_equal(seen[k], 1);
    }
    assert_true(oversize <= 3);
    assert_true(pages >= (expect_members + limit - 1) / limit);
    free(seen);
}

static void test_page_walk_10k(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    char cl[32], u[16];
    for (int i = 0; i < BIG; i++) {
        snprintf(cl, sizeof(cl), "client%d", i);
        snprintf(u, sizeof(u), "u%d", i % 100);
        assert_ok(join_simple(f.reg, "big", cl, u));
    }
    assert_stats(f.reg, "big", BIG, 100);
    walk(f.reg, "big", 1, BIG);
    walk(f.reg, "big", 7, BIG);
    walk(f.reg, "big", 100, BIG);
    walk(f.reg, "big", BIG * 2, BIG);

    /* A small channel in one page. */
    assert_ok(join_simple(f.reg, "small", "client1", "u1"));
    presence_snapshot *page = NULL;
    assert_ok(presence_query_page(f.reg, "small", presence_trusted(), 0, 5, &page));
    assert_int_equal(page->count, 1);
    assert_int_equal(page->next_cursor, 0);
    assert_int_equal(page->seq, 1);
    presence_snapshot_free(page);
    fixture_close(&f);
}

/*
 * Users with many connections in one channel. The presence set orders
 * members by user, keeping up to 8 of a user's members side by side and
 * the rest of a crowd apart, by client hash: all must still page
 * (exactly `limit` a page), be found by id and by client, be counted and
 * listed per user, and leave exactly, and the distinct-user count must
 * follow the first join and the last leave of each user, whichever of
 * its members goes last. (The ids once made pairs of tied client hashes;
 * now any ids would do.)
 */
static const char *const tie_ids[] = {
    "tie639397", "tie713855", "tie272560", "tie474578", "tie78966",
    "tie867784", "tie213468", "tie650220", "tie204330", "tie850081",
    "tie6881",   "tie224814", "tie537681", "tie898945", "tie829769",
    "tie844317", "tie138925", "tie625935", "tie773214", "tie888338",
    "tie403373", "tie429354", "tie55012",  "tie818177",
};
#define TIES (sizeof tie_ids / sizeof tie_ids[0])
#define TIE_FILLERS 200

/* Walk the channel by `limit`: every member once, cursors rising. */
static size_t walk_ties(presence_registry *r, size_t limit,
                        const bool *tie_in)
{
    bool seen_tie[TIES] = {false};
    size_t total = 0;
    uint64_t cursor = 0;
    do {
        presence_snapshot *page = NULL;
        assert_ok(presence_query_page(r, "ties", presence_trusted(), cursor, limit, &page));
        for (size_t i = 0; i < page->count; i++) {
            for (size_t t = 0; t < TIES; t++) {
                if (strcmp(page->members[i].client_id, tie_ids[t]) == 0) {
                    assert_false(seen_tie[t]);
                    seen_tie[t] = true;
                }
            }
        }
        total += page->count;
        assert_true(page->count <= limit);
        assert_true(page->next_cursor == 0 || page->count == limit);
        assert_true(page->next_cursor == 0 || page->next_cursor > cursor);
        cursor = page->next_cursor;
        presence_snapshot_free(page);
    } while (cursor != 0);
    for (size_t t = 0; t < TIES; t++) {
        assert_int_equal(seen_tie[t], tie_in[t]);
    }
    return total;
}

/* In a whole snapshot, the members of each user with at most 8 in the
 * channel come together. */
static void assert_users_together(presence_registry *r, const char *channel)
{
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(r, channel, presence_trusted(), &snap));
    for (size_t i = 0; i < snap->count; i++) {
        size_t n = 0;
        for (size_t j = 0; j < snap->count; j++) {
            n += strcmp(snap->members[i].user_id, snap->members[j].user_id) == 0;
        }
        if (n > 8) {
            continue; /* a crowd */
        }
        for (size_t j = i + 2; j < snap->count; j++) {
            if (strcmp(snap->members[i].user_id, snap->members[j].user_id) ==
                0) {
                /* Then so is every member between them. */
                assert_string_equal(snap->members[j - 1].user_id,
                                    snap->members[i].user_id);
            }
        }
    }
    presence_snapshot_free(snap);
}

/* A user's count and list of connections in a channel. */
static void assert_user_connections(presence_registry *r, const char *channel,
                                    const char *user, size_t want)
{
    size_t n = 0;
    assert_ok(presence_user_present(r, channel, user, &n));
    assert_int_equal(n, want);
    presence_snapshot *snap = NULL;
    assert_ok(presence_user_connections(r, channel, user, &snap));
    assert_int_equal(snap->count, want);
    for (size_t i = 0; i < snap->count; i++) {
        assert_string_equal(snap->members[i].user_id, user);
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(snap->members[i].client_id,
                                    snap->members[j].client_id);
        }
    }
    presence_snapshot_free(snap);
}

static void test_user_groups(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    bool tie_in[TIES];
    char id[32];
    for (int i = 0; i < TIE_FILLERS; i++) {
        snprintf(id, sizeof(id), "filler%d", i);
        assert_ok(join_simple(f.reg, "ties", id, "filler"));
    }
    for (size_t t = 0; t < TIES; t++) {
        assert_ok(join_simple(f.reg, "ties", tie_ids[t], "tied"));
        tie_in[t] = true;
    }
    assert_stats(f.reg, "ties", TIE_FILLERS + TIES, 2);
    assert_users_together(f.reg, "ties");
    assert_user_connections(f.reg, "ties", "filler", TIE_FILLERS);
    assert_user_connections(f.reg, "ties", "tied", TIES);
    for (size_t limit = 1; limit <= 3; limit++) {
        assert_int_equal(walk_ties(f.reg, limit, tie_in), TIE_FILLERS + TIES);
    }
    /* Found by id (touch) and by client (a repeated join). */
    for (size_t t = 0; t < TIES; t++) {
        assert_ok(presence_touch(f.reg, "ties", tie_ids[t]));
        assert_ok(join_simple(f.reg, "ties", tie_ids[t], "tied"));
    }
    assert_stats(f.reg, "ties", TIE_FILLERS + TIES, 2);
    /* One of each pair leaves: the other stays findable. */
    for (size_t t = 0; t < TIES; t += 2) {
        size_t gone = t + (t / 2) % 2; /* first or second of the pair */
        assert_ok(presence_leave(f.reg, "ties", tie_ids[gone]));
        tie_in[gone] = false;
        assert_rc(presence_touch(f.reg, "ties", tie_ids[gone]),
                  PRESENCE_ERR_NOT_FOUND);
        assert_ok(presence_touch(f.reg, "ties", tie_ids[t + t + 1 - gone]));
    }
    assert_stats(f.reg, "ties", TIE_FILLERS + TIES / 2, 2);
    assert_user_connections(f.reg, "ties", "tied", TIES / 2);
    assert_int_equal(walk_ties(f.reg, 2, tie_in), TIE_FILLERS + TIES / 2);
    /* Single-connection users between and around the groups. */
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "solo%d", i);
        assert_ok(join_simple(f.reg, "ties", id, id));
    }
    assert_stats(f.reg, "ties", TIE_FILLERS + TIES / 2 + 50, 52);
    assert_users_together(f.reg, "ties");
    for (int i = 0; i < 50; i++) {
        snprintf(id, sizeof(id), "solo%d", i);
        assert_ok(presence_leave(f.reg, "ties", id));
    }
    for (size_t t = 0; t < TIES; t++) {
        if (tie_in[t]) {
            assert_ok(presence_leave(f.reg, "ties", tie_ids[t]));
        }
    }
    assert_stats(f.reg, "ties", TIE_FILLERS, 1);

    /* A crowd whose side-by-side members go first: the user stays until
     * its last member, wherever that one is kept; joins while only its
     * members apart are left find the user already there. */
    enum { CROWD = 20 };
    for (int i = 0; i < CROWD; i++) {
        snprintf(id, sizeof(id), "crowd%d", i);
        assert_ok(join_simple(f.reg, "c2", id, "many"));
        assert_stats(f.reg, "c2", (size_t)i + 1, 1);
    }
    assert_ok(join_simple(f.reg, "c2", "other", "other"));
    assert_user_connections(f.reg, "c2", "many", CROWD);
    /* Listed by walking the channel, not the user's clients, when the
     * user has more clients elsewhere. */
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "elsewhere%d", i);
        assert_ok(join_simple(f.reg, "c3", id, "many"));
    }
    assert_user_connections(f.reg, "c2", "many", CROWD);
    assert_user_connections(f.reg, "c3", "many", 30);
    for (int i = 0; i < 30; i++) {
        snprintf(id, sizeof(id), "elsewhere%d", i);
        assert_ok(presence_leave(f.reg, "c3", id));
    }
    for (int i = 0; i < 8; i++) { /* the first 8 made the group */
        snprintf(id, sizeof(id), "crowd%d", i);
        assert_ok(presence_leave(f.reg, "c2", id));
        assert_stats(f.reg, "c2", CROWD - (size_t)i, 2);
    }
    assert_user_connections(f.reg, "c2", "many", CROWD - 8);
    assert_ok(join_simple(f.reg, "c2", "crowd0", "many"));
    assert_stats(f.reg, "c2", CROWD - 7 + 1, 2);
    assert_user_connections(f.reg, "c2", "many", CROWD - 7);
    assert_ok(presence_touch(f.reg, "c2", "crowd0"));
    assert_ok(presence_touch(f.reg, "c2", "crowd19"));
    for (int i = CROWD - 1; i >= 8; i--) {
        snprintf(id, sizeof(id), "crowd%d", i);
        assert_ok(presence_leave(f.reg, "c2", id));
        assert_stats(f.reg, "c2", (size_t)i - 8 + 1 + 1, 2);
    }
    assert_ok(presence_leave(f.reg, "c2", "crowd0"));
    assert_stats(f.reg, "c2", 1, 1);
    fixture_close(&f);
}

/* A channel that changes between pages: stayers exactly once, nobody
 * twice. */
static void test_page_walk_changing(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    enum { STAY = 1000, MOVE = 1000, NEW = 3000 };
    char cl[32];
    for (int i = 0; i < STAY; i++) {
        snprintf(cl, sizeof(cl), "s%d", i);
        assert_ok(join_simple(f.reg, "ch", cl, "u"));
        snprintf(cl, sizeof(cl), "m%d", i);
        assert_ok(join_simple(f.reg, "ch", cl, "u"));
    }
    int seen_s[STAY] = {0}, seen_m[MOVE] = {0}, seen_n[NEW] = {0};
    int next_leave = 0, next_new = 0;
    uint64_t cursor = 0;
    size_t pages = 0;
    do {
        presence_snapshot *page = NULL;
        assert_ok(presence_query_page(f.reg, "ch", presence_trusted(), cursor, 50, &page));
        for (size_t i = 0; i < page->count; i++) {
            const char *id = page->members[i].client_id;
            int k;
            if ((k = index_of(id, "s")) >= 0) {
                assert_true(k < STAY);
                seen_s[k]++;
            } else if ((k = index_of(id, "m")) >= 0) {
                assert_true(k < MOVE);
                seen_m[k]++;
            } else {
                k = index_of(id, "n");
                assert_true(k >= 0 && k < NEW);
                seen_n[k]++;
            }
        }
        cursor = page->next_cursor;
        presence_snapshot_free(page);
        /* Between pages: 25 movers leave, 40 newcomers join. */
        for (int j = 0; j < 25 && next_leave < MOVE; j++) {
            snprintf(cl, sizeof(cl), "m%d", next_leave++);
            assert_ok(presence_leave(f.reg, "ch", cl));
        }
        for (int j = 0; j < 40 && next_new < NEW; j++) {
            snprintf(cl, sizeof(cl), "n%d", next_new++);
            assert_ok(join_simple(f.reg, "ch", cl, "u"));
        }
        pages++;
        assert_true(pages < 10000);
    } while (cursor != 0);
    for (int i = 0; i < STAY; i++) {
        assert_int_equal(seen_s[i], 1);
    }
    for (int i = 0; i < MOVE; i++) {
        assert_true(seen_m[i] <= 1);
    }
    for (int i = 0; i < NEW; i++) {
        assert_true(seen_n[i] <= 1);
    }
    fixture_close(&f);
}

static void test_page_bad_arguments(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "ch", "c1", "u1"));
    presence_snapshot *page = NULL;
    assert_rc(presence_query_page(f.reg, "ch", presence_trusted(), 0, 0, &page),
              PRESENCE_ERR_INVALID);
    assert_null(page);
    assert_rc(presence_query_page(f.reg, "ch", presence_trusted(), 0, 1, NULL),
              PRESENCE_ERR_INVALID);
    fixture_close(&f);
}

static void test_default_access_policy(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "room", "member", "u1"));
    assert_ok(join_simple(f.reg, "other", "outsider", "u2"));
    presence_snapshot *snap = NULL;
    presence_channel_stats st;

    assert_ok(presence_query(f.reg, "room", REQ("member"), &snap));
    assert_int_equal(snap->count, 1);
    presence_snapshot_free(snap);
    assert_ok(presence_query_page(f.reg, "room", REQ("member"), 0, 10, &snap));
    presence_snapshot_free(snap);
    assert_ok(presence_stats(f.reg, "room", REQ("member"), &st));
    assert_int_equal(st.num_clients, 1);

    const char *denied[] = {"outsider", "stranger"};
    for (size_t i = 0; i < 2; i++) {
        snap = NULL;
        assert_rc(presence_query(f.reg, "room", REQ(denied[i]), &snap),
                  PRESENCE_ERR_DENIED);
        assert_null(snap);
        assert_rc(presence_query_page(f.reg, "room", REQ(denied[i]), 0, 10, &snap),
                  PRESENCE_ERR_DENIED);
        assert_null(snap);
        assert_rc(presence_stats(f.reg, "room", REQ(denied[i]), &st),
                  PRESENCE_ERR_DENIED);
    }
    /* A channel without members: nobody is a member. */
    assert_rc(presence_query(f.reg, "empty", REQ("member"), &snap),
              PRESENCE_ERR_DENIED);
    /* No requester: a trusted read. */
    assert_ok(presence_query(f.reg, "room", presence_trusted(), &snap));
    presence_snapshot_free(snap);
    assert_ok(presence_stats(f.reg, "room", presence_trusted(), &st));
    fixture_close(&f);
}

typedef struct access_log {
    int calls;
    bool decision;
    char channel[300];
    char namespace_name[300];
    char client_id[300];
    char user_id[300];
    bool user_null;
    bool is_member;
    bool null_field;
} access_log;

static void copy_str(char *dst, const char *src, bool *null_flag)
{
    if (src == NULL) {
        *null_flag = true;
        dst[0] = '\0';
        return;
    }
    snprintf(dst, 300, "%s", src);
}

static bool access_hook(const presence_access *a, void *ud)
{
    access_log *log = ud;
    log->calls++;
    copy_str(log->channel, a->channel, &log->null_field);
    copy_str(log->namespace_name, a->namespace_name, &log->null_field);
    copy_str(log->client_id, a->client_id, &log->null_field);
    log->user_null = false;
    copy_str(log->user_id, a->user_id, &log->user_null);
    log->is_member = a->is_member;
    return log->decision;
}

static void expect_access(const access_log *log, int calls,
                          const char *channel, const char *ns,
                          const char *client, const char *user,
                          bool is_member)
{
    assert_int_equal(log->calls, calls);
    assert_false(log->null_field);
    assert_string_equal(log->channel, channel);
    assert_string_equal(log->namespace_name, ns);
    assert_string_equal(log->client_id, client);
    if (user == NULL) {
        assert_true(log->user_null);
    } else {
        assert_false(log->user_null);
        assert_string_equal(log->user_id, user);
    }
    assert_int_equal(log->is_member, is_member);
}

static void test_custom_access_check(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    access_log log;
    memset(&log, 0, sizeof(log));
    f.config.access_check = access_hook;
    f.config.access_user_data = &log;
    fixture_open(&f);
    ns_set(f.reg, "chat", true, true, 0, 0);
    assert_ok(join_simple(f.reg, "chat:1", "c1", "u1"));
    assert_ok(join_simple(f.reg, "chat:2", "c2", "u2"));
    assert_ok(join_simple(f.reg, "chat:2", "c3", NULL));
    assert_ok(join_simple(f.reg, "lobby", "c2", "u2"));
    presence_snapshot *snap = NULL;
    presence_channel_stats st;
    int calls = 0;

    /* The hook's "no" wins, even for a member. */
    log.decision = false;
    assert_rc(presence_query(f.reg, "chat:1", REQ("c1"), &snap),
              PRESENCE_ERR_DENIED);
    expect_access(&log, ++calls, "chat:1", "chat", "c1", "u1", true);
    assert_rc(presence_query_page(f.reg, "chat:1", REQ("c1"), 0, 5, &snap),
              PRESENCE_ERR_DENIED);
    expect_access(&log, ++calls, "chat:1", "chat", "c1", "u1", true);
    assert_rc(presence_stats(f.reg, "chat:1", REQ("c1"), &st), PRESENCE_ERR_DENIED);
    expect_access(&log, ++calls, "chat:1", "chat", "c1", "u1", true);

    /* Its "yes" wins, even for a non-member. */
    log.decision = true;
    assert_ok(presence_query(f.reg, "chat:1", REQ("c2"), &snap));
    assert_int_equal(snap->count, 1);
    presence_snapshot_free(snap);
    expect_access(&log, ++calls, "chat:1", "chat", "c2", "u2", false);
    assert_ok(presence_query_page(f.reg, "chat:1", REQ("c2"), 0, 5, &snap));
    assert_int_equal(snap->count, 1);
    presence_snapshot_free(snap);
    expect_access(&log, ++calls, "chat:1", "chat", "c2", "u2", false);
    assert_ok(presence_stats(f.reg, "chat:1", REQ("c2"), &st));
    assert_int_equal(st.num_clients, 1);
    expect_access(&log, ++calls, "chat:1", "chat", "c2", "u2", false);

    /* An unknown client: user NULL; an anonymous one: "". */
    assert_ok(presence_stats(f.reg, "chat:2", REQ("ghost"), &st));
    expect_access(&log, ++calls, "chat:2", "chat", "ghost", NULL, false);
    assert_ok(presence_stats(f.reg, "chat:2", REQ("c3"), &st));
    expect_access(&log, ++calls, "chat:2", "chat", "c3", "", true);
    assert_ok(presence_stats(f.reg, "lobby", REQ("c2"), &st));
    expect_access(&log, ++calls, "lobby", "", "c2", "u2", true);
    assert_ok(presence_stats(f.reg, "chat:9", REQ("c1"), &st));
    expect_access(&log, ++calls, "chat:9", "chat", "c1", "u1", false);

    /* A user id the requester gives reaches the hook as given, also for a
     * connection the registry does not know. */
    presence_requester who = {"ghost", "u7"};
    assert_ok(presence_stats(f.reg, "chat:2", &who, &st));
    expect_access(&log, ++calls, "chat:2", "chat", "ghost", "u7", false);
    presence_requester anon = {"c1", ""};
    assert_ok(presence_stats(f.reg, "chat:1", &anon, &st));
    expect_access(&log, ++calls, "chat:1", "chat", "c1", "", true);

    /* A requester must name its connection, by the id rules. */
    presence_requester nobody = {NULL, "u1"};
    assert_rc(presence_stats(f.reg, "chat:1", &nobody, &st),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_query(f.reg, "chat:1", &nobody, &snap),
              PRESENCE_ERR_INVALID);
    presence_requester empty = {"", NULL};
    assert_rc(presence_stats(f.reg, "chat:1", &empty, &st),
              PRESENCE_ERR_BAD_NAME);
    presence_requester bad_user = {"c1", "u\n"};
    assert_rc(presence_query_page(f.reg, "chat:1", &bad_user, 0, 5, &snap),
              PRESENCE_ERR_BAD_NAME);
    assert_int_equal(log.calls, calls); /* refused before the hook */

    /* Not consulted without a requester, nor by the other reads. */
    assert_ok(presence_query(f.reg, "chat:1", presence_trusted(), &snap));
    presence_snapshot_free(snap);
    assert_ok(presence_stats(f.reg, "chat:1", presence_trusted(), &st));
    assert_ok(presence_query_page(f.reg, "chat:1", presence_trusted(), 0, 5, &snap));
    presence_snapshot_free(snap);
    size_t n;
    assert_ok(presence_user_present(f.reg, "chat:1", "u1", &n));
    assert_ok(presence_user_connections(f.reg, "chat:1", "u1", &snap));
    presence_snapshot_free(snap);
    assert_ok(presence_client_channels(f.reg, "c1", &snap));
    presence_snapshot_free(snap);
    presence_channel_list *list = NULL;
    assert_ok(presence_channels(f.reg, NULL, &list));
    presence_channel_list_free(list);
    assert_int_equal(log.calls, calls);
    fixture_close(&f);
}

/* Snapshots and lists are one allocation each, freed by one call; stats
 * and user_present allocate nothing. */
static void test_allocation_counts(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    char cl[32];
    for (int i = 0; i < 300; i++) {
        snprintf(cl, sizeof(cl), "c%d", i);
        assert_ok(join_info(f.reg, i % 2 ? "a" : "b", cl, "u", "conn",
                            "chan"));
        assert_ok(join_info(f.reg, "c", cl, "u", "conn", "x"));
    }
    presence_snapshot *snap = NULL;
    presence_channel_list *list = NULL;
    presence_channel_stats st;
    size_t n;
    unsigned long before;

#define ALLOCS_SINCE(b) (atomic_load(&f.alloc.total_allocs) - (b))
    before = atomic_load(&f.alloc.total_allocs);
    assert_ok(presence_query(f.reg, "c", presence_trusted(), &snap));
    assert_int_equal(ALLOCS_SINCE(before), 1);
    presence_snapshot_free(snap);

    before = atomic_load(&f.alloc.total_allocs);
    assert_ok(presence_query_page(f.reg, "c", presence_trusted(), 0, 50, &snap));
    assert_int_equal(ALLOCS_SINCE(before), 1);
    presence_snapshot_free(snap);

    before = atomic_load(&f.alloc.total_allocs);
    assert_ok(presence_query(f.reg, "empty", presence_trusted(), &snap));
    assert_int_equal(ALLOCS_SINCE(before), 1);
    presence_snapshot_free(snap);

    before = atomic_load(&f.alloc.total_allocs);
    assert_ok(presence_client_channels(f.reg, "c7", &snap));
    assert_int_equal(snap->count, 2);
    assert_int_equal(ALLOCS_SINCE(before), 1);
    presence_snapshot_free(snap);

    before = atomic_load(&f.alloc.total_allocs);
    assert_ok(presence_user_connections(f.reg, "a", "u", &snap));
    assert_int_equal(snap->count, 150);
    assert_int_equal(ALLOCS_SINCE(before), 1);
    presence_snapshot_free(snap);

    before = atomic_load(&f.alloc.total_allocs);
    assert_ok(presence_channels(f.reg, NULL, &list));
    assert_int_equal(list->count, 3);
    assert_int_equal(ALLOCS_SINCE(before), 1);
    presence_channel_list_free(list);

    before = atomic_load(&f.alloc.total_allocs);
    assert_ok(presence_stats(f.reg, "a", presence_trusted(), &st));
    assert_ok(presence_stats(f.reg, "a", REQ("c1"), &st));
    assert_ok(presence_user_present(f.reg, "a", "u", &n));
    assert_ok(presence_touch(f.reg, "a", "c1"));
    assert_ok(presence_touch_client(f.reg, "c1"));
    (void)presence_next_deadline_ms(f.reg);
    assert_int_equal(ALLOCS_SINCE(before), 0);
#undef ALLOCS_SINCE
    /* Every snapshot block went back. */
    fixture_close(&f);
}

/* Trust is asked for: a NULL requester is an error, never a skipped
 * access check. */
static void test_null_requester_is_invalid(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c1", "u1"));
    presence_channel_stats st;
    presence_snapshot *snap = NULL;
    assert_rc(presence_stats(f.reg, "a", NULL, &st), PRESENCE_ERR_INVALID);
    assert_rc(presence_query(f.reg, "a", NULL, &snap), PRESENCE_ERR_INVALID);
    assert_rc(presence_query_page(f.reg, "a", NULL, 0, 10, &snap),
              PRESENCE_ERR_INVALID);
    assert_null(snap);
    assert_true(presence_trusted() == presence_trusted());
    assert_ok(presence_stats(f.reg, "a", presence_trusted(), &st));
    assert_int_equal(st.num_clients, 1);
    /* The trusted requester is not a client: a stranger is still denied. */
    presence_requester stranger = {"c9", NULL};
    assert_rc(presence_stats(f.reg, "a", &stranger, &st),
              PRESENCE_ERR_DENIED);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_requester_is_invalid),
        cmocka_unit_test(test_snapshot_content),
        cmocka_unit_test(test_member_strings_of_every_length),
        cmocka_unit_test(test_empty_channel),
        cmocka_unit_test(test_snapshot_outlives_registry),
        cmocka_unit_test(test_page_walk_10k),
        cmocka_unit_test(test_page_walk_changing),
        cmocka_unit_test(test_user_groups),
        cmocka_unit_test(test_page_bad_arguments),
        cmocka_unit_test(test_default_access_policy),
        cmocka_unit_test(test_custom_access_check),
        cmocka_unit_test(test_allocation_counts),
    };
    return cmocka_run_group_tests_name("query", tests, NULL, NULL);
}
