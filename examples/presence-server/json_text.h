/*
 * JSON written straight into text, for the replies that list many members
 * (presence): no tree of values, no allocation per member, and stored
 * infos (JSON already) copied as they are once checked, rather than
 * parsed into values and printed again.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_JSON_TEXT_H
#define PS_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** A growing text. Once an append fails (no memory, or a string that is
 *  not UTF-8), @c failed stays set and later appends do nothing. */
typedef struct ps_text {
    char *data; /* ps_malloc'd, NUL-terminated while not failed */
    size_t len;
    size_t cap;
    bool failed;
} ps_text;

void ps_text_init(ps_text *t);
/** Give the text away (ps_free() it); NULL when it failed. */
char *ps_text_take(ps_text *t, size_t *len);
void ps_text_free(ps_text *t);

void ps_text_raw(ps_text *t, const char *bytes, size_t len);
#define PS_TEXT_LITERAL(t, s) ps_text_raw((t), (s), sizeof(s) - 1)
/** A JSON string: quoted and escaped as jansson's compact output does
 *  ("\"", "\\", control bytes); fails on bytes that are not UTF-8. */
void ps_text_string(ps_text *t, const char *s, size_t len);
void ps_text_u64(ps_text *t, uint64_t value);
void ps_text_i64(ps_text *t, int64_t value);
/** Stored info bytes as a JSON value: as they are when they are one JSON
 *  value, else as a JSON string of them (what ps_wire's raw_json gives). */
void ps_text_info(ps_text *t, const void *bytes, size_t len);

/** Whether @p len bytes are exactly one JSON value (RFC 8259, whitespace
 *  around it allowed, strings UTF-8), nested at most @p max_depth deep. */
bool ps_json_valid(const char *text, size_t len, unsigned max_depth);

#endif
