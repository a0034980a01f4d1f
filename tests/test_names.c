/*
 * Channel names, client ids, user ids and namespaces, through the public
 * API: validation, limits, namespace resolution, namespace rules.
 *
 * SPDX-License-Identifier: MIT
 */

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    assert_ok(presence_query(f.reg, "a", NULL, &snap));
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
    assert_rc(presence_expire(NULL, 0, &n), PRESENCE_ERR_INVALID);
    assert_rc(presence_query(NULL, "a", NULL, &snap), PRESENCE_ERR_INVALID);
    assert_rc(presence_query(f.reg, NULL, NULL, &snap), PRESENCE_ERR_INVALID);
    assert_rc(presence_query(f.reg, "a", NULL, NULL), PRESENCE_ERR_INVALID);
    assert_rc(presence_query_page(NULL, "a", NULL, 0, 1, &snap),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_query_page(f.reg, NULL, NULL, 0, 1, &snap),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_query_page(f.reg, "a", NULL, 0, 1, NULL),
              PRESENCE_ERR_INVALID);
    assert_rc(presence_stats(NULL, "a", NULL, &st), PRESENCE_ERR_INVALID);
    assert_rc(presence_stats(f.reg, NULL, NULL, &st), PRESENCE_ERR_INVALID);
    assert_rc(presence_stats(f.reg, "a", NULL, NULL), PRESENCE_ERR_INVALID);
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
    assert_rc(presence_query(f.reg, "", NULL, &snap), PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_stats(f.reg, "", NULL, &st), PRESENCE_ERR_BAD_NAME);
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
        assert_rc(presence_query(f.reg, bad, NULL, &snap),
                  PRESENCE_ERR_BAD_NAME);
        assert_rc(presence_stats(f.reg, bad, NULL, &st),
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
    assert_rc(presence_query(f.reg, s256, NULL, &snap), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_stats(f.reg, s256, NULL, &st), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_leave(f.reg, s256, "c1"), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_leave(f.reg, "a", s256), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_disconnect(f.reg, s256, &n), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_touch_client(f.reg, s256), PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_client_channels(f.reg, s256, &snap),
              PRESENCE_ERR_TOO_LONG);

    /* The 255-byte names are stored whole. */
    assert_ok(presence_query(f.reg, s255, NULL, &snap));
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
    assert_ok(presence_query(f.reg, ch, NULL, &snap));
    assert_int_equal(snap->count, 1);
    assert_string_equal(snap->members[0].channel, ch);
    assert_string_equal(snap->members[0].client_id, cl);
    assert_string_equal(snap->members[0].user_id, us);
    presence_snapshot_free(snap);
    assert_ok(presence_query(f.reg, raw, NULL, &snap));
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
                assert_rc(presence_stats(f.reg, name, NULL, &st),
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
    assert_ok(presence_stats(f.reg, "aaaaaaaaaa", NULL, &st));
    assert_rc(presence_stats(f.reg, "aaaaaaaaaaa", NULL, &st),
              PRESENCE_ERR_TOO_LONG);
    assert_rc(presence_stats(f.reg, "aaaaaaaaa\x01" "a", NULL, &st),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_stats(f.reg, "aaaaaaaaaa\x01", NULL, &st),
              PRESENCE_ERR_BAD_NAME);
    assert_rc(presence_stats(f.reg, "aaaaaaaaaaa\x01", NULL, &st),
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
    assert_rc(presence_query(f.reg, ch, NULL, &snap),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_query_page(f.reg, ch, NULL, 0, 10, &snap),
              PRESENCE_ERR_UNKNOWN_NAMESPACE);
    assert_rc(presence_stats(f.reg, ch, NULL, &st),
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
    assert_rc(presence_query(f.reg, "off:1", NULL, &snap),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(presence_query_page(f.reg, "off:1", NULL, 0, 5, &snap),
              PRESENCE_ERR_NOT_AVAILABLE);
    assert_rc(presence_stats(f.reg, "off:1", NULL, &st),
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_null_arguments),
        cmocka_unit_test(test_other_calls_null_arguments),
        cmocka_unit_test(test_empty_names),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_default_limits),
        cmocka_unit_test(test_configured_limits),
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
    };
    return cmocka_run_group_tests_name("names", tests, NULL, NULL);
}
