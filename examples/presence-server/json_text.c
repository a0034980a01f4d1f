/*
 * JSON written straight into text, and a check that bytes are one JSON
 * value. See json_text.h.
 * SPDX-License-Identifier: MIT
 */
#include "json_text.h"

#include "mem.h"
#include "wire.h"
#include "ws_frame.h"

#include <string.h>

void ps_text_init(ps_text *t)
{
    *t = (ps_text){NULL, 0, 0, false};
}

void ps_text_free(ps_text *t)
{
    ps_free(t->data);
    ps_text_init(t);
}

char *ps_text_take(ps_text *t, size_t *len)
{
    if (t->failed || t->data == NULL) {
        ps_text_free(t);
        return NULL;
    }
    char *data = t->data;
    *len = t->len;
    ps_text_init(t);
    return data;
}

/* Room for n more bytes and the NUL. */
static bool reserve(ps_text *t, size_t n)
{
    if (t->failed) {
        return false;
    }
    if (n < t->cap - t->len) { /* cap - len > n: room for the NUL too */
        return true;
    }
    if (n > SIZE_MAX / 2 - t->len) {
        t->failed = true;
        return false;
    }
    size_t cap = t->cap > 0 ? t->cap : 256;
    while (cap - t->len <= n) {
        cap *= 2;
    }
    char *data = ps_realloc(t->data, cap);
    if (data == NULL) {
        t->failed = true;
        return false;
    }
    t->data = data;
    t->cap = cap;
    return true;
}

void ps_text_raw(ps_text *t, const char *bytes, size_t len)
{
    if (!reserve(t, len)) {
        return;
    }
    memcpy(t->data + t->len, bytes, len);
    t->len += len;
    t->data[t->len] = '\0';
}

void ps_text_u64(ps_text *t, uint64_t value)
{
    char digits[20];
    size_t n = 0;
    do {
        digits[sizeof digits - 1 - n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    ps_text_raw(t, digits + sizeof digits - n, n);
}

void ps_text_i64(ps_text *t, int64_t value)
{
    if (value < 0) {
        PS_TEXT_LITERAL(t, "-");
        ps_text_u64(t, (uint64_t)0 - (uint64_t)value);
    } else {
        ps_text_u64(t, (uint64_t)value);
    }
}

/* Whether none of the 8 bytes of w needs an escape or is outside ASCII:
 * each is at least 0x20 and below 0x80, and none is '"' or '\\'. */
static bool plain_word(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL;
    const uint64_t highs = 0x8080808080808080ULL;
    uint64_t quote = w ^ (ones * '"');
    uint64_t slash = w ^ (ones * '\\');
    uint64_t zeros = ((quote - ones) & ~quote) | ((slash - ones) & ~slash);
    uint64_t below = (w - ones * 0x20) & ~w;
    return ((zeros | below | w) & highs) == 0;
}

/* The length of the UTF-8 character at s (0 when it is not one whole,
 * valid character within the n bytes). */
static size_t utf8_char(const char *s, size_t n)
{
    unsigned char lead = (unsigned char)s[0];
    size_t len = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    uint32_t state = 0;
    if (len > n || !ps_utf8_feed(&state, (const uint8_t *)s, len) ||
        state != 0) {
        return 0;
    }
    return len;
}

void ps_text_string(ps_text *t, const char *s, size_t len)
{
    /* At most 6 bytes for one (\u00XX), and the quotes. */
    if (len > SIZE_MAX / 8 || !reserve(t, len * 6 + 2)) {
        t->failed = true;
        return;
    }
    static const char hex[] = "0123456789ABCDEF"; /* as jansson writes them */
    char *out = t->data + t->len;
    *out++ = '"';
    size_t i = 0;
    while (i < len) {
        uint64_t w;
        if (len - i >= 8 && (memcpy(&w, s + i, sizeof w), plain_word(w))) {
            memcpy(out, &w, sizeof w);
            out += 8;
            i += 8;
            continue;
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80) { /* one whole character, or not UTF-8: no text */
            size_t n = utf8_char(s + i, len - i);
            if (n == 0) {
                t->failed = true;
                return;
            }
            memcpy(out, s + i, n);
            out += n;
            i += n;
            continue;
        }
        i++;
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        default:
            memcpy(out, "u00", 3);
            out[3] = hex[c >> 4];
            out[4] = hex[c & 0xf];
            out += 5;
        }
    }
    *out++ = '"';
    t->len = (size_t)(out - t->data);
    t->data[t->len] = '\0';
}

void ps_text_info(ps_text *t, const void *bytes, size_t len)
{
    /* This server stores nothing deeper than it accepts; deeper bytes of
     * another writer become a string. */
    if (ps_json_valid(bytes, len, PS_JSON_MAX_DEPTH)) {
        ps_text_raw(t, bytes, len);
    } else {
        ps_text_string(t, bytes, len);
    }
}

/* ---- the check ----------------------------------------------------------- */

typedef struct {
    const unsigned char *p, *end;
    unsigned depth_left;
} scan;

static void skip_space(scan *s)
{
    while (s->p < s->end &&
           (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) {
        s->p++;
    }
}

static bool literal(scan *s, const char *word, size_t len)
{
    if ((size_t)(s->end - s->p) < len || memcmp(s->p, word, len) != 0) {
        return false;
    }
    s->p += len;
    return true;
}

static bool digits(scan *s)
{
    const unsigned char *start = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        s->p++;
    }
    return s->p > start;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool number(scan *s)
{
    if (s->p < s->end && *s->p == '-') {
        s->p++;
    }
    if (s->p < s->end && *s->p == '0') {
        s->p++;
    } else if (s->p >= s->end || *s->p < '1' || *s->p > '9' || !digits(s)) {
        return false;
    }
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!digits(s)) {
            return false;
        }
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) {
            s->p++;
        }
        if (!digits(s)) {
            return false;
        }
    }
    return true;
}

static bool hex4(scan *s)
{
    if (s->end - s->p < 4) {
        return false;
    }
    for (int i = 0; i < 4; i++) {
        unsigned char c = s->p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
              (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    s->p += 4;
    return true;
}

/* A string, from its opening quote: escapes as RFC 8259 lists them, no
 * control byte, UTF-8. */
static bool string(scan *s)
{
    s->p++;
    const unsigned char *run = s->p;
    uint32_t utf8 = 0;
    while (s->p < s->end) {
        unsigned char c = *s->p;
        if (c == '"' || c == '\\') {
            if (!ps_utf8_feed(&utf8, run, (size_t)(s->p - run)) || utf8 != 0) {
                return false;
            }
            s->p++;
            if (c == '"') {
                return true;
            }
            if (s->p >= s->end) {
                return false;
            }
            c = *s->p++;
            if (c == 'u') {
                if (!hex4(s)) {
                    return false;
                }
            } else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
                return false;
            }
            run = s->p;
        } else if (c < 0x20) {
            return false;
        } else {
            s->p++;
        }
    }
    return false;
}

static bool value(scan *s);

/* An object or an array, from its opening bracket. */
static bool container(scan *s, bool object)
{
    if (s->depth_left == 0) {
        return false;
    }
    s->depth_left--;
    s->p++;
    skip_space(s);
    unsigned char close = object ? '}' : ']';
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth_left++;
        return true;
    }
    for (;;) {
        if (object) {
            skip_space(s);
            if (s->p >= s->end || *s->p != '"' || !string(s)) {
                return false;
            }
            skip_space(s);
            if (s->p >= s->end || *s->p != ':') {
                return false;
            }
            s->p++;
        }
        if (!value(s)) {
            return false;
        }
        skip_space(s);
        if (s->p >= s->end) {
            return false;
        }
        if (*s->p == close) {
            s->p++;
            s->depth_left++;
            return true;
        }
        if (*s->p != ',') {
            return false;
        }
        s->p++;
    }
}

static bool value(scan *s)
{
    skip_space(s);
    if (s->p >= s->end) {
        return false;
    }
    switch (*s->p) {
    case '{': return container(s, true);
    case '[': return container(s, false);
    case '"': return string(s);
    case 't': return literal(s, "true", 4);
    case 'f': return literal(s, "false", 5);
    case 'n': return literal(s, "null", 4);
    default: return number(s);
    }
}

bool ps_json_valid(const char *text, size_t len, unsigned max_depth)
{
    if (text == NULL) {
        return false;
    }
    scan s = {(const unsigned char *)text, (const unsigned char *)text + len,
              max_depth};
    if (!value(&s)) {
        return false;
    }
    skip_space(&s);
    return s.p == s.end;
}
