/*
 * Channel names, client ids, user ids and namespaces, through the public
 * API: validation, limits, namespace resolution, namespace rules, and the
 * rules as functions of their own (presence_name_check,
 * presence_channel_split), which must agree with the registry.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Names no call may accept: control characters anywhere. */
static const char *const control_names[] = {
    "a\x01", ("\x1f" "abc"), "ab\tcd", "ab\ncd", "ab\rcd", "a\x7f", "\x7f",
    "x\x1b[0m",
};
#define N_CONTROL (sizeof(control_names) / sizeof(control_names[0]))

static void test_join_null_arguments(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_rc(join_simple(NULL, "a", "c", "u"), PRESENCE_ERR_INVALID);
    assert_rc(join_simple(f.reg, NULL, "c", "u"), PRESENCE_ERR_INVALID);
    assert_rc(join_simple(f.reg, "a", NULL, "u"), PRESENCE_ERR_INVALID);
    assert_rc(presence_join(f.reg, "a", "c", "u", NULL, 3, NULL, 0),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_join(f.reg, "a", "c", "u", NULL, 0, NULL, 3),
              PRESENCE_ERR_INVALID);
    assert_counts(f.reg, 0, 0, 0, 0);
    assert_int_equal(f.rec.count, 0);

    /* A NULL user id is the anonymous user. */
    assert_ok(join_simple(f.reg, "a", "c", NULL));
    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, "a", presence_trusted(), &snap));
    assert_int_equal(snap->count, 1);
    assert_string_equal(snap->members[0].user_id, "");
    presence_snapshot_free(snap);
    const rec_event *e = recorder_find(&f.rec, 0, PRESENCE_EVENT_JOIN, "a",
                                       "c");
    assert_non_null(e);
    assert_string_equal(e->user_id, "");
    fixture_close(&f);
}

static void test_other_calls_null_arguments(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "a", "c", "u"));
    presence_snapshot *snap = NULL;
    presence_channel_stats st;
    size_t n;

    assert_rc(presence_leave(NULL, "a", "c"), PRESENCE_ERR_INVALID);
    assert_rc(presence_leave(f.reg, NULL, "c"), PRESENCE_ERR_INVALID);
    assert_rc(presence_leave(f.reg, "a", NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_disconnect(NULL, "c", &n), PRESENCE_ERR_INVALID);
    assert_rc(presence_disconnect(f.reg, NULL, &n), PRESENCE_ERR_INVALID);
    assert_rc(presence_update(NULL, "a", "c", "x", 1), PRESENCE_ERR_INVALID);
    assert_rc(presence_update(f.reg, NULL, "c", "x", 1),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_update(f.reg, "a", NULL, "x", 1),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_update(f.reg, "a", "c", NULL, 1),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_touch(NULL, "a", "c"), PRESENCE_ERR_INVALID);
    assert_rc(presence_touch(f.reg, NULL, "c"), PRESENCE_ERR_INVALID);
    assert_rc(presence_touch(f.reg, "a", NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_touch_client(NULL, "c"), PRESENCE_ERR_INVALID);
    assert_rc(presence_touch_client(f.reg, NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_channel_close(NULL, "a", &n), PRESENCE_ERR_INVALID);
    assert_rc(presence_channel_close(f.reg, NULL, &n), PRESENCE_ERR_INVALID);
    assert_rc(presence_expire(NULL, 0, &n, NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_query(NULL, "a", presence_trusted(), &snap), PRESENCE_ERR_INVALID);
    assert_rc(presence_query(f.reg, NULL, presence_trusted(), &snap), PRESENCE_ERR_INVALID);
    assert_rc(presence_query(f.reg, "a", presence_trusted(), NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_query_page(NULL, "a", presence_trusted(), 0, 1, &snap),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_query_page(f.reg, NULL, presence_trusted(), 0, 1, &snap),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_query_page(f.reg, "a", presence_trusted(), 0, 1, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_stats(NULL, "a", presence_trusted(), &st), PRESENCE_ERR_INVALID);
    assert_rc(presence_stats(f.reg, NULL, presence_trusted(), &st), PRESENCE_ERR_INVALID);
    assert_rc(presence_stats(f.reg, "a", presence_trusted(), NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_client_channels(NULL, "c", &snap),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_channels(f.reg, NULL, &snap),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_client_channels(f.reg, "c", NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_user_connections(NULL, "a", "u", &snap),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_user_connections(f.reg, NULL, "u", &snap),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_user_connections(f.reg, "a", "u", NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_user_present(NULL, "a", "u", &n),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_user_present(f.reg, NULL, "u", &n),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_user_present(f.reg, "a", "u", NULL),
              PRESENCE_ERR_INVALID);
    presence_channel_list *list = NULL;
    assert_rc(presence_channels(NULL, NULL, &list), PRESENCE_ERR_INVALID);
    assert_rc(presence_channels(f.reg, NULL, NULL), PRESENCE_ERR_INVALID);
    assert_int_equal(presence_next_deadline_ms(NULL), PRESENCE_NO_DEADLINE);

    /* Nothing changed. */
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_int_equal(f.rec.count, 2);
    fixture_close(&f);
}

static void test_empty_names(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_snapshot *snap = NULL;
    presence_channel_stats st;
    size_t n;
    assert_ok(join_simple(f.reg, "a", "c", "u"));

    assert_rc(join_simple(f.reg, "", "c", "u"), PRESENCE_ERR_BAD_NAME);
    assert_rc(join_simple(f.reg, "a", "", "u"), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_leave(f.reg, "", "c"), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_leave(f.reg, "a", ""), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_disconnect(f.reg, "", &n), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_touch(f.reg, "", "c"), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_touch_client(f.reg, ""), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_update(f.reg, "", "c", "x", 1), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_query(f.reg, "", presence_trusted(), &snap), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_stats(f.reg, "", presence_trusted(), &st), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_channel_close(f.reg, "", &n), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_client_channels(f.reg, "", &snap),
              PRESENCE_ERR_BAD_NAME);

    /* An empty user id is the anonymous user, accepted. */
    assert_ok(join_simple(f.reg, "a", "c2", ""));
    assert_counts(f.reg, 1, 2, 2, 2);
    fixture_close(&f);
}

static void test_control_characters(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_snapshot *snap = NULL;
    presence_channel_stats st;
    size_t n;
    assert_ok(join_simple(f.reg, "a", "c", "u"));
    for (size_t i = 0; i < N_CONTROL; i++) {
        const char *bad = control_names[i];
        assert_rc(join_simple(f.reg, bad, "c", "u"), PRESENCE_ERR_BAD_NAME);
        assert_rc(join_simple(f.reg, "a", bad, "u"), PRESENCE_ERR_BAD_NAME);
        assert_rc(join_simple(f.reg, "a", "c3", bad), PRESENCE_ERR_BAD_NAME);
        assert_rc(presence_leave(f.reg, bad, "c"), PRESENCE_ERR_BAD_NAME);
        assert_rc(presence_leave(f.reg, "a", bad), PRESENCE_ERR_BAD_NAME);
        assert_rc(presence_disconnect(f.reg, bad, &n), PRESENCE_ERR_BAD_NAME);
        assert_rc(presence_touch(f.reg, "a", bad), PRESENCE_ERR_BAD_NAME);
        assert_rc(presence_touch_client(f.reg, bad), PRESENCE_ERR_BAD_NAME);
        assert_rc(presence_query(f.reg, bad, presence_trusted(), &snap),
                  PRESENCE_ERR_BAD_NAME);
        assert_rc(presence_stats(f.reg, bad, presence_trusted(), &st),
                  PRESENCE_ERR_BAD_NAME);
        assert_rc(presence_user_present(f.reg, bad, "u", &n),
                  PRESENCE_ERR_BAD_NAME);
        assert_rc(presence_client_channels(f.reg, bad, &snap),
                  PRESENCE_ERR_BAD_NAME);
    }
    assert_counts(f.reg, 1, 1, 1, 1);
    assert_int_equal(f.rec.count, 2);
    fixture_close(&f);
}

static void test_default_limits(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    char *s255 = repeat_char('x', 255);
    char *s256 = repeat_char('x', 256);
    char *big = malloc(65537);
    assert_non_null(big);
    memset(big, 'i', 65537);

    assert_ok(join_simple(f.reg, s255, "c1", "u"));
    assert_rc(join_simple(f.reg, s256, "c1", "u"), PRESENCE_ERR_TOO_LONG);
    assert_ok(join_simple(f.reg, "a", s255, "u"));
    assert_rc(join_simple(f.reg, "a", s256, "u"), PRESENCE_ERR_TOO_LONG);
    assert_ok(join_simple(f.reg, "a", "c2", s255));
    assert_rc(join_simple(f.reg, "a", "c3", s256), PRESENCE_ERR_TOO_LONG);
    assert_ok(presence_join(f.reg, "a", "c4", "u", big, 65536, big, 65536));
    assert_rc(presence_join(f.reg, "a", "c5", "u", big, 65537, NULL, 0),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_join(f.reg, "a", "c5", "u", NULL, 0, big, 65537),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_update(f.reg, "a", "c4", big, 65537),
              PRESENCE_ERR_TOO_LONG);

    presence_snapshot *snap = NULL;
    presence_channel_stats st;
    size_t n;
    assert_rc(presence_query(f.reg, s256, presence_trusted(), &snap), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_stats(f.reg, s256, presence_trusted(), &st), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_leave(f.reg, s256, "c1"), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_leave(f.reg, "a", s256), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_disconnect(f.reg, s256, &n), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_touch_client(f.reg, s256), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_client_channels(f.reg, s256, &snap),
              PRESENCE_ERR_TOO_LONG);

    /* The 255-byte names are stored whole. */
    assert_ok(presence_query(f.reg, s255, presence_trusted(), &snap));
    assert_int_equal(snap->count, 1);
    assert_string_equal(snap->members[0].channel, s255);
    presence_snapshot_free(snap);
    assert_ok(presence_client_channels(f.reg, s255, &snap));
    assert_int_equal(snap->count, 1);
    assert_string_equal(snap->members[0].client_id, s255);
    presence_snapshot_free(snap);
    assert_ok(presence_user_present(f.reg, "a", s255, &n));
    assert_int_equal(n, 1);
    assert_counts(f.reg, 2, 4, 2, 4);

    free(s255);
    free(s256);
    free(big);
    fixture_close(&f);
}

static void test_configured_limits(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.channel_name_max = 8;
    f.config.limits.client_id_max = 4;
    f.config.limits.user_id_max = 3;
    f.config.limits.conn_info_max = 5;
    f.config.limits.chan_info_max = 2;
    fixture_open(&f);

    assert_ok(join_simple(f.reg, "12345678", "c", "u"));
    assert_rc(join_simple(f.reg, "123456789", "c", "u"),
              PRESENCE_ERR_TOO_LONG);
    assert_ok(join_simple(f.reg, "a", "abcd", "u"));
    assert_rc(join_simple(f.reg, "a", "abcde", "u"), PRESENCE_ERR_TOO_LONG);
    assert_ok(join_simple(f.reg, "a", "c2", "uuu"));
    assert_rc(join_simple(f.reg, "a", "c3", "uuuu"), PRESENCE_ERR_TOO_LONG);
    assert_ok(join_info(f.reg, "a", "c4", "u", "12345", "12"));
    assert_rc(join_info(f.reg, "a", "c5", "u", "123456", NULL),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(join_info(f.reg, "a", "c5", "u", NULL, "123"),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_update(f.reg, "a", "c4", "123", 3),
              PRESENCE_ERR_TOO_LONG);
    assert_ok(presence_update(f.reg, "a", "c4", "xy", 2));

    presence_subscription sub;
    assert_rc(presence_subscribe(f.reg, PRESENCE_SCOPE_CHANNEL, "123456789",
                                 PRESENCE_EVENTS_ALL, recorder_cb, &f.rec,
                                 &sub),
              PRESENCE_ERR_TOO_LONG);
    assert_counts(f.reg, 2, 4, 2, 4);
    fixture_close(&f);
}

/* Whatever the limit, a conn_info of 512 MiB or more is refused before a
 * byte of it is read (here only 8 bytes exist: a copy would crash), by
 * name and by handle, and nothing changes. */
static void test_conn_info_cap(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.conn_info_max = SIZE_MAX;
    fixture_open(&f);
    const char info[8] = "12345678";
    const size_t cap = (size_t)1 << 29;
    assert_rc(presence_join(f.reg, "a", "c1", "u", info, cap, NULL, 0),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_join(f.reg, "a", "c1", "u", info, SIZE_MAX / 2, NULL,
                            0),
              PRESENCE_ERR_TOO_LONG);
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = "c2";
    o.conn_info = info;
    o.conn_info_len = cap;
    presence_client *c = NULL;
    assert_rc(presence_client_open(f.reg, &o, &c), PRESENCE_ERR_TOO_LONG);
    assert_null(c);
    assert_counts(f.reg, 0, 0, 0, 0);
    /* Under the cap all is as usual. */
    assert_ok(presence_join(f.reg, "a", "c1", "u", info, sizeof info, NULL, 0));
    assert_counts(f.reg, 1, 1, 1, 1);
    fixture_close(&f);
}

/* Huge names are refused without trouble. */
static void test_huge_names(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    char *huge = repeat_char('h', 1 << 20);
    presence_snapshot *snap = NULL;
    presence_channel_stats st;
    size_t n;
    assert_rc(join_simple(f.reg, huge, "c", "u"), PRESENCE_ERR_TOO_LONG);
    assert_rc(join_simple(f.reg, "a", huge, "u"), PRESENCE_ERR_TOO_LONG);
    assert_rc(join_simple(f.reg, "a", "c", huge), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_query(f.reg, huge, REQ(huge), &snap), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_stats(f.reg, "a", REQ(huge), &st), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_user_present(f.reg, "a", huge, &n),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_disconnect(f.reg, huge, &n), PRESENCE_ERR_TOO_LONG);
    huge[1000] = '\x01';
    assert_int_not_equal(join_simple(f.reg, huge, "c", "u"), PRESENCE_OK);
    assert_counts(f.reg, 0, 0, 0, 0);
    free(huge);
    fixture_close(&f);
}

/* Any byte but control characters is accepted, valid UTF-8 or not. */
static void test_utf8_and_high_bytes(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    const char *ch = "комната-\xf0\x9f\x98\x80";
    const char *cl = "клиент-1";
    const char *us = "用户";
    const char *raw = "\xff\xfe\x80 raw";
    assert_ok(join_info(f.reg, ch, cl, us, "{\"n\":\"é\"}", "ü"));
    assert_ok(join_simple(f.reg, raw, raw, raw));
    assert_ok(join_simple(f.reg, "sp ace", "id with spaces", "u ser"));

    presence_snapshot *snap = NULL;
    assert_ok(presence_query(f.reg, ch, presence_trusted(), &snap));
    assert_int_equal(snap->count, 1);
    assert_string_equal(snap->members[0].channel, ch);
    assert_string_equal(snap->members[0].client_id, cl);
    assert_string_equal(snap->members[0].user_id, us);
    presence_snapshot_free(snap);
    assert_ok(presence_query(f.reg, raw, presence_trusted(), &snap));
    assert_int_equal(snap->count, 1);
    assert_string_equal(snap->members[0].user_id, raw);
    presence_snapshot_free(snap);

    const rec_event *e = recorder_find(&f.rec, 0, PRESENCE_EVENT_JOIN, ch, cl);
    assert_non_null(e);
    assert_string_equal(e->namespace_name, "");
    assert_ok(presence_leave(f.reg, ch, cl));
    assert_ok(presence_disconnect(f.reg, raw, NULL));
    assert_counts(f.reg, 1, 1, 1, 1);
    fixture_close(&f);
}

/* Every byte value at every place of names of every length up to 20,
 * against the rule: a control character (below 0x20, or 0x7f) anywhere
 * makes the name bad, any other byte is fine (so that a faster check, a
 * word at a time, could not slip at a word's edge or in a partial last
 * word). presence_stats checks the name, then its namespace. */
static void test_every_byte_at_every_place(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    char name[24];
    presence_channel_stats st;
    for (size_t len = 1; len <= 20; len++) {
        for (size_t at = 0; at < len; at++) {
            for (int b = 1; b < 256; b++) {
                memset(name, 'a', len);
                name[len] = '\0';
                name[at] = (char)b;
                bool bad = b < 0x20 || b == 0x7f;
                /* "a...:..." names the unknown namespace "a...". */
                bool unknown_ns = b == ':' && at > 0;
                assert_rc(presence_stats(f.reg, name, presence_trusted(), &st),
                          bad          ? PRESENCE_ERR_BAD_NAME
                          : unknown_ns ? PRESENCE_ERR_UNKNOWN_NAMESPACE
                                       : PRESENCE_OK);
            }
        }
    }
    fixture_close(&f);
}

/* A control character within the first max + 1 bytes is reported before
 * the length; past them, the length is (the name is never read further). */
static void test_bad_byte_against_limit(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.channel_name_max = 10;
    fixture_open(&f);
    presence_channel_stats st;
    assert_ok(presence_stats(f.reg, "aaaaaaaaaa", presence_trusted(), &st));
    assert_rc(presence_stats(f.reg, "aaaaaaaaaaa", presence_trusted(), &st),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_stats(f.reg, "aaaaaaaaa\x01" "a", presence_trusted(), &st),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_stats(f.reg, "aaaaaaaaaa\x01", presence_trusted(), &st),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_stats(f.reg, "aaaaaaaaaaa\x01", presence_trusted(), &st),
              PRESENCE_ERR_TOO_LONG);
    fixture_close(&f);
}

static const char *event_namespace(fixture *f, const char *channel,
                                   const char *client)
{
    const rec_event *e =
        recorder_find(&f->rec, 0, PRESENCE_EVENT_JOIN, channel, client);
    assert_non_null(e);
    return e->namespace_name;
}

static size_t channels_in(presence_registry *r, const char *ns)
{
    presence_channel_list *list = NULL;
    assert_ok(presence_channels(r, ns, &list));
    assert_non_null(list);
    size_t n = list->count;
    presence_channel_list_free(list);
    return n;
}

static void test_namespace_resolution(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "chat", true, true, 0, 0);
    ns_set(f.reg, "a.b-c_D9", true, true, 0, 0);

    assert_ok(join_simple(f.reg, "chat:1", "c1", "u"));
    assert_ok(join_simple(f.reg, "chat:a:b", "c1", "u"));
    assert_ok(join_simple(f.reg, "chat:", "c1", "u"));
    assert_ok(join_simple(f.reg, ":foo", "c1", "u"));
    assert_ok(join_simple(f.reg, "plain", "c1", "u"));
    assert_ok(join_simple(f.reg, "a.b-c_D9:x", "c1", "u"));

    assert_string_equal(event_namespace(&f, "chat:1", "c1"), "chat");
    assert_string_equal(event_namespace(&f, "chat:a:b", "c1"), "chat");
    assert_string_equal(event_namespace(&f, "chat:", "c1"), "chat");
    assert_string_equal(event_namespace(&f, ":foo", "c1"), "");
    assert_string_equal(event_namespace(&f, "plain", "c1"), "");
    assert_string_equal(event_namespace(&f, "a.b-c_D9:x", "c1"), "a.b-c_D9");

    assert_int_equal(channels_in(f.reg, "chat"), 3);
    assert_int_equal(channels_in(f.reg, ""), 2);
    assert_int_equal(channels_in(f.reg, "a.b-c_D9"), 1);
    assert_int_equal(channels_in(f.reg, NULL), 6);
    fixture_close(&f);
}

static void test_unknown_namespace(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    assert_ok(join_simple(f.reg, "x", "c1", "u"));
    presence_snapshot *snap = NULL;
    presence_channel_stats st;
    size_t n;
    const char *ch = "nope:1";
    assert_rc(join_simple(f.reg, ch, "c1", "u"),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_leave(f.reg, ch, "c1"), PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_update(f.reg, ch, "c1", "x", 1),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_touch(f.reg, ch, "c1"), PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_channel_close(f.reg, ch, &n),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_query(f.reg, ch, presence_trusted(), &snap),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_query_page(f.reg, ch, presence_trusted(), 0, 10, &snap),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_stats(f.reg, ch, presence_trusted(), &st),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_user_present(f.reg, ch, "u", &n),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_user_connections(f.reg, ch, "u", &snap),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    assert_rc(presence_namespace_get(f.reg, "nope", &o),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    /* A namespace filter that names no namespace lists nothing. */
    assert_int_equal(channels_in(f.reg, "nope"), 0);

    /* Once the namespace exists, the same name works. */
    ns_set(f.reg, "nope", true, true, 0, 0);
    assert_ok(join_simple(f.reg, ch, "c1", "u"));
    assert_counts(f.reg, 2, 1, 1, 2);
    fixture_close(&f);
}

static void test_custom_separator(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.namespace_separator = '/';
    fixture_open(&f);
    ns_set(f.reg, "chat", true, true, 0, 0);
    assert_ok(join_simple(f.reg, "chat/1", "c1", "u"));
    /* ':' is an ordinary character now: default namespace. */
    assert_ok(join_simple(f.reg, "chat:1", "c1", "u"));
    assert_ok(join_simple(f.reg, "nope:1", "c1", "u"));
    assert_ok(join_simple(f.reg, "/x", "c1", "u"));
    assert_rc(join_simple(f.reg, "nope/1", "c1", "u"),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_string_equal(event_namespace(&f, "chat/1", "c1"), "chat");
    assert_string_equal(event_namespace(&f, "chat:1", "c1"), "");
    assert_string_equal(event_namespace(&f, "/x", "c1"), "");
    assert_int_equal(channels_in(f.reg, "chat"), 1);
    assert_int_equal(channels_in(f.reg, ""), 3);
    fixture_close(&f);
}

static void test_presence_off(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    ns_set(f.reg, "off", false, true, 0, 0);
    presence_snapshot *snap = NULL;
    presence_channel_stats st;
    size_t n;
    assert_rc(join_simple(f.reg, "off:1", "c1", "u"),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(presence_query(f.reg, "off:1", presence_trusted(), &snap),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(presence_query_page(f.reg, "off:1", presence_trusted(), 0, 5, &snap),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(presence_stats(f.reg, "off:1", presence_trusted(), &st),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(presence_user_present(f.reg, "off:1", "u", &n),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(presence_user_connections(f.reg, "off:1", "u", &snap),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_counts(f.reg, 0, 0, 0, 0);
    assert_int_equal(f.rec.count, 0);
    fixture_close(&f);

    /* The default namespace off, through the config. */
    fixture_config(&f);
    f.config.default_namespace.presence = false;
    fixture_open(&f);
    assert_rc(join_simple(f.reg, "x", "c1", "u"), PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(join_simple(f.reg, ":x", "c1", "u"),
              PRESENCE_ERR_NOT_AVAILABLE);
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    assert_ok(presence_namespace_get(f.reg, "", &o));
    assert_false(o.presence);
    ns_set(f.reg, "on", true, true, 0, 0);
    assert_ok(join_simple(f.reg, "on:x", "c1", "u"));
    fixture_close(&f);
}

static void test_namespace_set_rules(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    presence_namespace_options o;
    presence_namespace_options_init(&o);

    const char *good[] = {"ab", "AB", "a-", "__", "..", "a.b-c_D9",
                          "0123456789"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_ok(presence_namespace_set(f.reg, good[i], &o));
    }
    const char *bad[] = {"a",     "a b",   "a:b", "ü1",  "ab/",
                         "a\x01", "a\tb", "x*y", "ab\n", "-\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_rc(presence_namespace_set(f.reg, bad[i], &o),
                  PRESENCE_ERR_BAD_NAME);
        assert_int_not_equal(presence_namespace_get(f.reg, bad[i], &o),
                             PRESENCE_OK);
    }
    /* "" is the default namespace. */
    o.ttl_ms = 5;
    assert_ok(presence_namespace_set(f.reg, "", &o));

    assert_rc(presence_namespace_set(NULL, "ab", &o), PRESENCE_ERR_INVALID);
    assert_rc(presence_namespace_set(f.reg, NULL, &o), PRESENCE_ERR_INVALID);
    assert_rc(presence_namespace_set(f.reg, "ab", NULL), PRESENCE_ERR_INVALID);
    presence_namespace_options neg;
    presence_namespace_options_init(&neg);
    neg.ttl_ms = -1;
    assert_rc(presence_namespace_set(f.reg, "neg", &neg),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_namespace_get(f.reg, "neg", &neg),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    presence_namespace_options raw;
    memset(&raw, 0, sizeof(raw));
    raw.presence = true;
    assert_rc(presence_namespace_set(f.reg, "raw", &raw),
              PRESENCE_ERR_INVALID);
    fixture_close(&f);
}

static void test_namespace_get(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.default_namespace.ttl_ms = 777;
    f.config.default_namespace.join_leave = false;
    f.config.default_namespace.max_members = 9;
    fixture_open(&f);
    presence_namespace_options o;

    presence_namespace_options_init(&o);
    assert_ok(presence_namespace_get(f.reg, "", &o));
    assert_int_equal(o.struct_size, sizeof(o));
    assert_true(o.presence);
    assert_false(o.join_leave);
    assert_int_equal(o.ttl_ms, 777);
    assert_int_equal(o.max_members, 9);

    presence_namespace_options in;
    presence_namespace_options_init(&in);
    in.presence = true;
    in.join_leave = false;
    in.ttl_ms = 1234;
    in.max_members = 42;
    assert_ok(presence_namespace_set(f.reg, "chat", &in));
    presence_namespace_options_init(&o);
    assert_ok(presence_namespace_get(f.reg, "chat", &o));
    assert_true(o.presence);
    assert_false(o.join_leave);
    assert_int_equal(o.ttl_ms, 1234);
    assert_int_equal(o.max_members, 42);

    /* Setting again changes it. */
    in.join_leave = true;
    in.ttl_ms = 0;
    in.max_members = 0;
    assert_ok(presence_namespace_set(f.reg, "chat", &in));
    assert_ok(presence_namespace_get(f.reg, "chat", &o));
    assert_true(o.join_leave);
    assert_int_equal(o.ttl_ms, 0);
    assert_int_equal(o.max_members, 0);

    assert_rc(presence_namespace_get(NULL, "chat", &o), PRESENCE_ERR_INVALID);
    assert_rc(presence_namespace_get(f.reg, NULL, &o), PRESENCE_ERR_INVALID);
    assert_rc(presence_namespace_get(f.reg, "chat", NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_namespace_get(f.reg, "other", &o),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    fixture_close(&f);
}

/* ---- the public rules: presence_name_check, presence_channel_split ---- */

/* What the registry says of a name of this kind: a call whose only
 * failure for a good name is a condition (unknown namespace, not found),
 * mapped to OK. */
static int registry_verdict(presence_registry *r, presence_name_kind kind,
                            const char *name)
{
    presence_channel_stats st;
    presence_namespace_options o;
    size_t n;
    int rc = PRESENCE_ERR_INVALID;
    switch (kind) {
    case PRESENCE_NAME_CHANNEL:
        rc = presence_stats(r, name, presence_trusted(), &st);
        return rc == PRESENCE_ERR_UNKNOWN_NAMESPACE ? PRESENCE_OK : rc;
    case PRESENCE_NAME_CLIENT:
        rc = presence_disconnect(r, name, &n);
        return rc == PRESENCE_ERR_NOT_FOUND ? PRESENCE_OK : rc;
    case PRESENCE_NAME_USER:
        return presence_user_present(r, "x", name, &n);
    case PRESENCE_NAME_NAMESPACE:
        presence_namespace_options_init(&o);
        rc = presence_namespace_get(r, name, &o);
        return rc == PRESENCE_ERR_UNKNOWN_NAMESPACE ? PRESENCE_OK : rc;
    }
    return rc;
}

#define CHANNEL_MAX 10
#define CLIENT_MAX 8
#define USER_MAX 6

static size_t limit_of(presence_name_kind kind)
{
    switch (kind) {
    case PRESENCE_NAME_CHANNEL:
        return CHANNEL_MAX;
    case PRESENCE_NAME_CLIENT:
        return CLIENT_MAX;
    case PRESENCE_NAME_USER:
        return USER_MAX;
    case PRESENCE_NAME_NAMESPACE:
        break;
    }
    return SIZE_MAX;
}

static void assert_check_agrees(presence_registry *r, presence_name_kind kind,
                                const char *name)
{
    size_t len = 12345;
    int want = registry_verdict(r, kind, name);
    int got = presence_name_check(kind, name, limit_of(kind), &len);
    if (got != want) {
        fail_msg("kind %d, name of %zu bytes: check says %s, registry %s",
                 (int)kind, strlen(name), presence_error_name(got),
                 presence_error_name(want));
    }
    assert_int_equal(len, got == PRESENCE_OK ? strlen(name) : 12345);
}

/* presence_name_check accepts exactly what the registry accepts, with the
 * same code, for every kind at its limit. */
static void test_name_check_agrees_with_registry(void **state)
{
    (void)state;
    fixture f;
    fixture_config(&f);
    f.config.limits.channel_name_max = CHANNEL_MAX;
    f.config.limits.client_id_max = CLIENT_MAX;
    f.config.limits.user_id_max = USER_MAX;
    fixture_open(&f);
    const presence_name_kind kinds[] = {
        PRESENCE_NAME_CHANNEL, PRESENCE_NAME_CLIENT, PRESENCE_NAME_USER,
        PRESENCE_NAME_NAMESPACE};
    const char *const names[] = {
        "", "a", "ab", "aaaaaa", "aaaaaaa", "aaaaaaaa", "aaaaaaaaa",
        "aaaaaaaaaa", "aaaaaaaaaaa", ("aaaaaaaaa\x01" "a"), "aaaaaaaaaa\x01",
        "aaaaaaaaaaa\x01", "ab:cd", ":x", "sp ace", "a.b-c_D9", "ü1",
        "\xff\xfe", "x*y"};
    char *ns255 = repeat_char('n', 255);
    char *ns256 = repeat_char('n', 256);
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            assert_check_agrees(f.reg, kinds[k], names[i]);
        }
        for (size_t i = 0; i < N_CONTROL; i++) {
            assert_check_agrees(f.reg, kinds[k], control_names[i]);
        }
        assert_check_agrees(f.reg, kinds[k], ns255);
        assert_check_agrees(f.reg, kinds[k], ns256);
        /* Every byte at every place of short names. */
        char name[4];
        for (size_t len = 1; len <= 3; len++) {
            for (size_t at = 0; at < len; at++) {
                for (int b = 1; b < 256; b++) {
                    memset(name, 'a', len);
                    name[len] = '\0';
                    name[at] = (char)b;
                    assert_check_agrees(f.reg, kinds[k], name);
                }
            }
        }
    }
    free(ns255);
    free(ns256);
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
}

static void test_name_check_rules(void **state)
{
    (void)state;
    size_t len = 0;
    /* Control characters are bad in every kind; anything else is fine
     * but in namespace names. */
    assert_ok(presence_name_check(PRESENCE_NAME_CHANNEL, "chat:1", 255, &len));
    assert_int_equal(len, 6);
    assert_ok(presence_name_check(PRESENCE_NAME_CLIENT, "клиент", 255, &len));
    assert_int_equal(len, strlen("клиент"));
    assert_rc(presence_name_check(PRESENCE_NAME_NAMESPACE, "клиент", 255,
                                  &len),
              PRESENCE_ERR_BAD_NAME);
    for (size_t i = 0; i < N_CONTROL; i++) {
        for (int k = PRESENCE_NAME_CHANNEL; k <= PRESENCE_NAME_NAMESPACE;
             k++) {
            assert_rc(presence_name_check((presence_name_kind)k,
                                          control_names[i], SIZE_MAX, &len),
                      PRESENCE_ERR_BAD_NAME);
        }
    }
    /* Empty: only user ids and namespace names (the default). */
    assert_rc(presence_name_check(PRESENCE_NAME_CHANNEL, "", 255, &len),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_name_check(PRESENCE_NAME_CLIENT, "", 255, &len),
              PRESENCE_ERR_BAD_NAME);
    len = 9;
    assert_ok(presence_name_check(PRESENCE_NAME_USER, "", 255, &len));
    assert_int_equal(len, 0);
    len = 9;
    assert_ok(presence_name_check(PRESENCE_NAME_NAMESPACE, "", 255, &len));
    assert_int_equal(len, 0);
    assert_rc(presence_name_check(PRESENCE_NAME_NAMESPACE, "a", 255, &len),
              PRESENCE_ERR_BAD_NAME);
    /* A limit of 0 leaves only the empty user id. */
    assert_ok(presence_name_check(PRESENCE_NAME_USER, "", 0, NULL));
    assert_rc(presence_name_check(PRESENCE_NAME_USER, "u", 0, NULL),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_name_check(PRESENCE_NAME_CHANNEL, "c", 0, NULL),
              PRESENCE_ERR_TOO_LONG);
}

static void test_name_check_lengths(void **state)
{
    (void)state;
    size_t len = 0;
    /* At the limit, and one past it. */
    assert_ok(presence_name_check(PRESENCE_NAME_CHANNEL, "abc", 3, &len));
    assert_int_equal(len, 3);
    assert_rc(presence_name_check(PRESENCE_NAME_CHANNEL, "abcd", 3, &len),
              PRESENCE_ERR_TOO_LONG);
    /* Past the limit nothing is read: a bad byte there is not seen. */
    assert_rc(presence_name_check(PRESENCE_NAME_USER, "abcd\x01", 3, &len),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_name_check(PRESENCE_NAME_USER, "abc\x01", 3, &len),
              PRESENCE_ERR_BAD_NAME);
    /* SIZE_MAX: only the library's own bounds. */
    char *huge = repeat_char('h', 1 << 20);
    assert_ok(presence_name_check(PRESENCE_NAME_CLIENT, huge, SIZE_MAX, &len));
    assert_int_equal(len, 1 << 20);
    assert_rc(presence_name_check(PRESENCE_NAME_CLIENT, huge, 255, &len),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_name_check(PRESENCE_NAME_NAMESPACE, huge, SIZE_MAX,
                                  &len),
              PRESENCE_ERR_TOO_LONG);
    huge[PRESENCE_NAMESPACE_NAME_MAX] = '\0';
    assert_ok(presence_name_check(PRESENCE_NAME_NAMESPACE, huge, SIZE_MAX,
                                  &len));
    assert_int_equal(len, PRESENCE_NAMESPACE_NAME_MAX);
    /* A namespace limit below the library's applies too. */
    assert_rc(presence_name_check(PRESENCE_NAME_NAMESPACE, "abc", 2, &len),
              PRESENCE_ERR_TOO_LONG);
    assert_ok(presence_name_check(PRESENCE_NAME_NAMESPACE, "ab", 2, &len));
    free(huge);
}

static void test_name_check_errors(void **state)
{
    (void)state;
    size_t len = 77;
    for (int k = PRESENCE_NAME_CHANNEL; k <= PRESENCE_NAME_NAMESPACE; k++) {
        assert_rc(presence_name_check((presence_name_kind)k, NULL, 255, &len),
                  PRESENCE_ERR_INVALID);
    }
    const int unknown[] = {-1, 4, 100};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_rc(presence_name_check((presence_name_kind)unknown[i], "ab",
                                      255, &len),
                  PRESENCE_ERR_INVALID);
    }
    /* A failed check leaves *len alone. */
    assert_rc(presence_name_check(PRESENCE_NAME_CHANNEL, "a\x01", 255, &len),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_name_check(PRESENCE_NAME_CHANNEL, "abcd", 2, &len),
              PRESENCE_ERR_TOO_LONG);
    assert_int_equal(len, 77);
    assert_ok(presence_name_check(PRESENCE_NAME_CHANNEL, "ab", 255, NULL));
}

static void assert_split(const char *channel, char separator,
                         size_t want_len, const char *want_rest)
{
    size_t len = 999;
    const char *rest = NULL;
    assert_ok(presence_channel_split(channel, separator, &len, &rest));
    assert_int_equal(len, want_len);
    assert_non_null(rest);
    assert_string_equal(rest, want_rest);
    assert_true(rest >= channel && rest <= channel + strlen(channel));
    len = 999;
    assert_ok(presence_channel_split(channel, separator, &len, NULL));
    assert_int_equal(len, want_len);
}

static void test_channel_split(void **state)
{
    (void)state;
    assert_split("chat:room:1", ':', 4, "room:1");
    assert_split("chat:", ':', 4, "");
    assert_split(":x", ':', 0, "x");
    assert_split("lobby", ':', 0, "lobby");
    assert_split("", ':', 0, "");
    assert_split("chat/1", '/', 4, "1");
    assert_split("chat:1", '/', 0, "chat:1");
    /* The namespace part need not be a namespace name. */
    assert_split("a b\x01:c", ':', 4, "c");
    const char *plain = "plain";
    const char *rest = NULL;
    size_t len;
    assert_ok(presence_channel_split(plain, ':', &len, &rest));
    assert_ptr_equal(rest, plain);
}

/* The split agrees with the registry: the namespace of an event is the
 * part presence_channel_split gives, with the same separator, and a part
 * that names no namespace is the registry's unknown namespace. */
static void test_channel_split_agrees_with_registry(void **state)
{
    (void)state;
    const char seps[] = {':', '/'};
    for (size_t s = 0; s < sizeof(seps); s++) {
        fixture f;
        fixture_config(&f);
        f.config.namespace_separator = seps[s];
        fixture_open(&f);
        ns_set(f.reg, "chat", true, true, 0, 0);
        const char *const channels[] = {"chat:1", "chat/1", "chat:a/b",
                                        "chat/a:b", ":x", "/x", "plain",
                                        "chat:", "chat/"};
        for (size_t i = 0; i < sizeof(channels) / sizeof(channels[0]); i++) {
            size_t len;
            assert_ok(presence_channel_split(channels[i], seps[s], &len,
                                             NULL));
            char ns[16] = "";
            assert_true(len < sizeof(ns));
            memcpy(ns, channels[i], len);
            if (len == 0 || strcmp(ns, "chat") == 0) {
                assert_ok(join_simple(f.reg, channels[i], "c1", "u"));
                assert_string_equal(event_namespace(&f, channels[i], "c1"),
                                    ns);
            } else {
                assert_rc(join_simple(f.reg, channels[i], "c1", "u"),
                          PRESENCE_ERR_UNKNOWN_NAMESPACE);
            }
        }
        fixture_close(&f);
    }
}

static void test_channel_split_errors(void **state)
{
    (void)state;
    size_t len = 5;
    const char *rest = "untouched";
    assert_rc(presence_channel_split(NULL, ':', &len, &rest),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_channel_split("a:b", ':', NULL, &rest),
              PRESENCE_ERR_INVALID);
    /* The separators a registry refuses are refused here, and only they. */
    for (int c = -128; c < 128; c++) {
        presence_config config;
        presence_config_init(&config);
        config.namespace_separator = (char)c;
        presence_registry *r = NULL;
        int want = presence_registry_new(&config, &r);
        presence_registry_free(r);
        assert_rc(presence_channel_split("a:b", (char)c, &len, &rest), want);
        if (want != PRESENCE_OK) {
            assert_int_equal(len, 5);
            assert_string_equal(rest, "untouched");
        }
        len = 5;
        rest = "untouched";
    }
    assert_rc(presence_channel_split("a b", ' ', &len, &rest),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_channel_split("a", '\0', &len, &rest),
              PRESENCE_ERR_INVALID);
}

/* Names read a word at a time must not read into the next page: a name
 * that ends at the very end of a page, with an unreadable page after it,
 * is found, hashed and checked like any other, at every length and with
 * a bad byte at every place. */
static void test_names_at_page_end(void **state)
{
    (void)state;
    long page = sysconf(_SC_PAGESIZE);
    assert_true(page >= 4096);
    void *block = NULL;
    assert_int_equal(posix_memalign(&block, (size_t)page, (size_t)page * 2),
                     0);
    unsigned char *mem = block;
    assert_int_equal(mprotect(mem + page, (size_t)page, PROT_NONE), 0);
    fixture f;
    fixture_config(&f);
    fixture_open(&f);
    for (size_t len = 0; len <= 24; len++) {
        char *id = (char *)mem + page - len - 1;
        for (size_t i = 0; i < len; i++) {
            id[i] = (char)('a' + i);
        }
        id[len] = '\0';
        int rc = join_simple(f.reg, "edge", id, "u");
        assert_rc(rc, len == 0 ? PRESENCE_ERR_BAD_NAME : PRESENCE_OK);
        if (len > 0) {
            /* The same name from an ordinary string finds the member. */
            char copy[32];
            memcpy(copy, id, len + 1);
            assert_ok(presence_leave(f.reg, "edge", copy));
        }
        for (size_t bad = 0; bad < len; bad++) {
            id[bad] = 0x7f;
            assert_rc(join_simple(f.reg, "edge", id, "u"),
                      PRESENCE_ERR_BAD_NAME);
            id[bad] = 0x1f;
            assert_rc(join_simple(f.reg, "edge", id, "u"),
                      PRESENCE_ERR_BAD_NAME);
            id[bad] = (char)('a' + bad);
        }
    }
    assert_counts(f.reg, 0, 0, 0, 0);
    fixture_close(&f);
    assert_int_equal(
        mprotect(mem + page, (size_t)page, PROT_READ | PROT_WRITE), 0);
    free(block);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_null_arguments),
        cmocka_unit_test(test_other_calls_null_arguments),
        cmocka_unit_test(test_empty_names),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_default_limits),
        cmocka_unit_test(test_configured_limits),
        cmocka_unit_test(test_conn_info_cap),
        cmocka_unit_test(test_huge_names),
        cmocka_unit_test(test_utf8_and_high_bytes),
        cmocka_unit_test(test_every_byte_at_every_place),
        cmocka_unit_test(test_bad_byte_against_limit),
        cmocka_unit_test(test_namespace_resolution),
        cmocka_unit_test(test_unknown_namespace),
        cmocka_unit_test(test_custom_separator),
        cmocka_unit_test(test_presence_off),
        cmocka_unit_test(test_namespace_set_rules),
        cmocka_unit_test(test_namespace_get),
        cmocka_unit_test(test_name_check_agrees_with_registry),
        cmocka_unit_test(test_name_check_rules),
        cmocka_unit_test(test_name_check_lengths),
        cmocka_unit_test(test_name_check_errors),
        cmocka_unit_test(test_channel_split),
        cmocka_unit_test(test_channel_split_agrees_with_registry),
        cmocka_unit_test(test_channel_split_errors),
        cmocka_unit_test(test_names_at_page_end),
    };
    return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
