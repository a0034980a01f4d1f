/*
 * JSON written as text (json_text.c): the check of stored infos agrees
 * with jansson on what is one JSON value, strings are escaped as jansson
 * escapes them (also strings mixing long plain runs, which are copied a
 * word at a time, with escapes, characters of 2 to 4 bytes and bytes
 * that are not UTF-8, at every offset), and a presence map written as text reads back equal to
 * the one built as values (ps_wire_presence), infos that are not JSON
 * included; an allocation that fails leaves no text and no leak.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../json_text.h"
#include "../wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static bool jansson_valid(const char *text, size_t len)
{
    json_error_t err;
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, &err);
    json_decref(v);
    return v != NULL;
}

static void test_valid_agrees_with_jansson(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "{}", "[]", " 1 ", "0", "-0", "-12.5e+3", "1E9", "true", "false",
        "null", "\"\"", "\"a\\u00e9\\n\\\"\\\\\\/\"", "\"\xc3\xa9\"",
        "{\"a\":[1,2.5e-3,true,null,\"x\"],\"b\":{}}", "[[[]]]",
        "{ \"k\" : \"v\" , \"l\" : [ 1 , 2 ] }",
        /* refused */
        "", " ", "{", "}", "[1,]", "{\"a\"}", "{\"a\":}", "{,}", "01", "1.",
        ".5", "-", "1e", "+1", "tru", "nul", "\"abc", "\"\\q\"",
        "\"\\u12\"", "\"\x01\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "{} {}",
        "[1 2]", "{\"a\":1,}", "{1:2}", "'a'", "NaN",
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t len = strlen(cases[i]);
        if (ps_json_valid(cases[i], len, 64) != jansson_valid(cases[i], len)) {
            fail_msg("case %zu (%s): ours %d, jansson's %d", i, cases[i],
                     ps_json_valid(cases[i], len, 64),
                     jansson_valid(cases[i], len));
        }
    }
    /* A NUL inside is not JSON (jansson stops reading at it). */
    assert_false(ps_json_valid("\"a\0b\"", 5, 64));
    /* Depth: 3 levels pass a limit of 3, not of 2. */
    assert_true(ps_json_valid("[[[1]]]", 7, 3));
    assert_false(ps_json_valid("[[[1]]]", 7, 2));
    assert_false(ps_json_valid(NULL, 0, 64));
}

static char *jansson_string(const char *s, size_t len)
{
    json_t *v = json_stringn(s, len);
    char *text = v != NULL ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    json_decref(v);
    return text;
}

static void test_strings_escape_as_jansson(void **state)
{
    (void)state;
    char s[200];
    size_t n = 0;
    for (int c = 1; c < 0x80; c++) {
        s[n++] = (char)c;
    }
    memcpy(s + n, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9); /* é € 😀 */
    n += 9;
    ps_text t;
    ps_text_init(&t);
    ps_text_string(&t, s, n);
    size_t len = 0;
    char *ours = ps_text_take(&t, &len);
    char *theirs = jansson_string(s, n);
    assert_non_null(ours);
    assert_non_null(theirs);
    assert_string_equal(ours, theirs);
    assert_int_equal(len, strlen(theirs));
    ps_free(ours);
    free(theirs);
    /* Not UTF-8: no text, as jansson makes no string. */
    ps_text_init(&t);
    ps_text_string(&t, "a\xff", 2);
    assert_true(t.failed);
    assert_null(ps_text_take(&t, &len));
    /* Numbers. */
    ps_text_init(&t);
    ps_text_i64(&t, -9223372036854775807 - 1);
    PS_TEXT_LITERAL(&t, " ");
    ps_text_u64(&t, 18446744073709551615u);
    PS_TEXT_LITERAL(&t, " ");
    ps_text_i64(&t, 0);
    ours = ps_text_take(&t, &len);
    assert_string_equal(ours, "-9223372036854775808 18446744073709551615 0");
    ps_free(ours);
}

/* A registry with members whose infos are JSON, not JSON, or absent. */
static presence_snapshot *sample(presence_registry **reg)
{
    assert_int_equal(presence_registry_new(NULL, reg), PRESENCE_OK);
    static const struct {
        const char *client, *user, *conn, *chan;
    } m[] = {
        {"c1", "alice", "{\"device\":\"phone\",\"n\":[1,2]}", NULL},
        {"c2", "bob \"the\" \\ builder", NULL, "\"status\""},
        {"c3", "", "not json {", "{\"deep\":{\"er\":true}}"},
        {"c\xc3\xa9", "\xe2\x82\xac", "42", "[1,"},
    };
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        assert_int_equal(presence_join(*reg, "room", m[i].client, m[i].user,
                                       m[i].conn, m[i].conn ? strlen(m[i].conn) : 0,
                                       m[i].chan, m[i].chan ? strlen(m[i].chan) : 0),
                         PRESENCE_OK);
    }
    presence_snapshot *snap = NULL;
    assert_int_equal(presence_query(*reg, "room", presence_trusted(), &snap),
                     PRESENCE_OK);
    return snap;
}

static void test_presence_text_equals_values(void **state)
{
    (void)state;
    presence_registry *reg;
    presence_snapshot *snap = sample(&reg);
    ps_text t;
    ps_text_init(&t);
    ps_wire_presence_text(&t, snap);
    size_t len = 0;
    char *text = ps_text_take(&t, &len);
    assert_non_null(text);
    json_error_t err;
    json_t *read = json_loadb(text, len, 0, &err);
    if (read == NULL) {
        fail_msg("not JSON (%s): %s", err.text, text);
    }
    json_t *built = ps_wire_presence(snap);
    assert_non_null(built);
    if (!json_equal(read, built)) {
        char *b = json_dumps(built, JSON_COMPACT);
        fail_msg("text %s\nvalues %s", text, b);
    }
    /* The infos that are JSON went in as they were. */
    assert_non_null(strstr(text, "\"conn_info\":{\"device\":\"phone\",\"n\":[1,2]}"));
    assert_non_null(strstr(text, "\"conn_info\":\"not json {\""));
    json_decref(read);
    json_decref(built);
    ps_free(text);
    presence_snapshot_free(snap);
    presence_registry_free(reg);
}

/* Every allocation of the text failed in turn: never a text, never a
 * leak, and a run with room enough gives the whole map. */
static void test_out_of_memory(void **state)
{
    (void)state;
    presence_registry *reg;
    presence_snapshot *snap = sample(&reg);
    /* Members enough for the text to grow several times. */
    bool done = false;
    for (unsigned long n = 1; !done; n++) {
        long live = counting.live;
        counting_arm(n);
        ps_text t;
        ps_text_init(&t);
        for (int k = 0; k < 50; k++) {
            ps_wire_presence_text(&t, snap);
        }
        size_t len = 0;
        char *text = ps_text_take(&t, &len);
        unsigned long failed = counting.failed;
        counting_arm(0);
        if (text == NULL) {
            assert_true(failed > 0);
        } else {
            done = failed == 0;
            ps_free(text);
        }
        assert_int_equal(counting.live, live);
        assert_true(n < 100);
    }
    presence_snapshot_free(snap);
    presence_registry_free(reg);
}

/* Pieces of strings: plain runs, bytes to escape, whole characters, and
 * bytes that make a string not UTF-8. */
static const char *const pieces[] = {
    "a", "0123456789abcdefghij", "\"", "\\", "\n", "\x01", "\x1f", " ",
    "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
    "\xff", "\x80", "\xc3", "\xed\xa0\x80",
};

static void test_mixed_strings_escape_as_jansson(void **state)
{
    (void)state;
    uint32_t seed = 12345;
    size_t failed = 0;
    for (int round = 0; round < 4000; round++) {
        char s[400];
        size_t n = 0;
        int count = 1 + round % 9;
        for (int k = 0; k < count; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *piece = pieces[(seed >> 16) % (sizeof pieces / sizeof pieces[0])];
            /* Plain runs at every length, so that escapes fall at every
             * offset of a word. */
            size_t take = (seed >> 8) % 2 == 0 ? strlen(piece)
                                                : 1 + (seed >> 4) % strlen(piece);
            if (piece[0] != '0') {
                take = strlen(piece);
            }
            memcpy(s + n, piece, take);
            n += take;
        }
        ps_text t;
        ps_text_init(&t);
        PS_TEXT_LITERAL(&t, "x"); /* a string after other text */
        ps_text_string(&t, s, n);
        size_t len = 0;
        char *ours = ps_text_take(&t, &len);
        char *theirs = jansson_string(s, n);
        if (theirs == NULL) {
            assert_null(ours); /* not UTF-8: no text */
            failed++;
        } else {
            assert_non_null(ours);
            assert_string_equal(ours + 1, theirs);
            assert_int_equal(len, 1 + strlen(theirs));
        }
        ps_free(ours);
        free(theirs);
    }
    assert_true(failed > 100 && failed < 3900); /* both kinds were met */
}


int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_agrees_with_jansson),
        cmocka_unit_test(test_strings_escape_as_jansson),
        cmocka_unit_test(test_mixed_strings_escape_as_jansson),
        cmocka_unit_test(test_presence_text_equals_values),
        cmocka_unit_test(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
