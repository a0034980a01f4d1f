/*
 * Users across channels: presence_user_status() and
 * presence_user_clients() count and list a user's connections
 * registry-wide, whatever channels they are in (or none, for an open
 * handle), this node's and other nodes'.
 *
 * SPDX-License-Identifier: MIT
 */
#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t status_of(presence_registry *reg, const char *user)
{
    size_t n = 99;
    assert_ok(presence_user_status(reg, user, &n));
    return n;
}

static void test_user_status_and_clients(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_int_equal(status_of(f.reg, "alice"), 0);

    /* A handle in no channel is a connection. */
    int laptop = 0;
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = "h1";
    o.user_id = "alice";
    o.conn_info = "ci";
    o.conn_info_len = 2;
    o.app = &laptop;
    presence_client *h = NULL;
    assert_ok(presence_client_open(f.reg, &o, &h));
    assert_int_equal(status_of(f.reg, "alice"), 1);

    /* Name-based clients in channels, and another node's. */
    assert_ok(join_simple(f.reg, "a", "c1", "alice"));
    assert_ok(join_simple(f.reg, "b", "c1", "alice"));
    assert_ok(join_simple(f.reg, "a", "c2", "bob"));
    assert_ok(presence_remote_join(f.reg, "n1", "a", "r1", "alice", NULL, 0,
                                   NULL, 0));
    assert_int_equal(status_of(f.reg, "alice"), 3);
    assert_int_equal(status_of(f.reg, "bob"), 1);
    assert_int_equal(status_of(f.reg, ""), 0);

    presence_snapshot *snap;
    assert_ok(presence_user_clients(f.reg, "alice", &snap));
    assert_int_equal(snap->count, 3);
    int seen = 0;
    for (size_t i = 0; i < snap->count; i++) {
        const presence_member *m = &snap->members[i];
        assert_string_equal(m->channel, "");
        assert_string_equal(m->user_id, "alice");
        assert_int_equal(m->chan_info_len, 0);
        assert_int_equal(m->joined_at_ms, 0);
        if (strcmp(m->client_id, "h1") == 0) {
            assert_ptr_equal(m->app, &laptop);
            assert_int_equal(m->conn_info_len, 2);
            assert_memory_equal(m->conn_info, "ci", 2);
            assert_string_equal(m->node_id, "");
            seen |= 1;
        } else if (strcmp(m->client_id, "c1") == 0) {
            assert_null(m->app);
            assert_string_equal(m->node_id, "");
            seen |= 2;
        } else {
            assert_string_equal(m->client_id, "r1");
            assert_string_equal(m->node_id, "n1");
            seen |= 4;
        }
    }
    assert_int_equal(seen, 7);
    presence_snapshot_free(snap);

    /* Going away, one by one. */
    assert_ok(presence_leave(f.reg, "a", "c1"));
    assert_int_equal(status_of(f.reg, "alice"), 3); /* still in b */
    assert_ok(presence_disconnect(f.reg, "c1", NULL));
    assert_int_equal(status_of(f.reg, "alice"), 2);
    assert_ok(presence_node_down(f.reg, "n1", PRESENCE_LEAVE_NODE_DOWN, NULL));
    assert_int_equal(status_of(f.reg, "alice"), 1);
    assert_ok(presence_client_close(f.reg, h, NULL));
    assert_int_equal(status_of(f.reg, "alice"), 0);
    assert_ok(presence_user_clients(f.reg, "alice", &snap));
    assert_int_equal(snap->count, 0);
    assert_null(snap->members);
    presence_snapshot_free(snap);
    fixture_close(&f);
}

static void test_user_queries_errors(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    size_t n;
    presence_snapshot *snap = NULL;
    assert_rc(presence_user_status(NULL, "u", &n), PRESENCE_ERR_INVALID);
    assert_rc(presence_user_status(f.reg, NULL, &n), PRESENCE_ERR_INVALID);
    assert_rc(presence_user_status(f.reg, "u", NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_user_status(f.reg, "bad\n", &n),
              PRESENCE_ERR_BAD_NAME);
    char *longid = repeat_char('u', 100000);
    assert_rc(presence_user_status(f.reg, longid, &n), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_user_clients(f.reg, longid, &snap),
              PRESENCE_ERR_TOO_LONG);
    free(longid);
    assert_rc(presence_user_clients(NULL, "u", &snap), PRESENCE_ERR_INVALID);
    assert_rc(presence_user_clients(f.reg, "u", NULL), PRESENCE_ERR_INVALID);
    assert_null(snap);

    /* Out of memory: NOMEM, nothing returned, nothing changed. */
    assert_ok(join_simple(f.reg, "a", "c1", "u"));
    test_alloc_arm(&f.alloc, 0);
    assert_rc(presence_user_clients(f.reg, "u", &snap), PRESENCE_ERR_NOMEM);
    test_alloc_disarm(&f.alloc);
    assert_null(snap);
    assert_ok(presence_user_clients(f.reg, "u", &snap));
    assert_int_equal(snap->count, 1);
    presence_snapshot_free(snap);
    fixture_close(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_status_and_clients),
        cmocka_unit_test(test_user_queries_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
