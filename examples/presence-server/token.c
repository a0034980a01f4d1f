/*
 * JWT handling. Verification is HS256 only, on nettle's HMAC-SHA256 and
 * jansson, each segment decoded and parsed once (the command path checks a
 * token per connect); minting, for the command line and the tests, is
 * libjwt's. The claims are read with jansson, because "info" may be any
 * JSON value and a missing claim differs from one of the wrong type.
 * SPDX-License-Identifier: MIT
 */
#include "token.h"

#include "mem.h"

#include <jansson.h>
#include <jwt.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ps_token_claims_free(ps_token_claims *claims)
{
    if (claims == NULL) {
        return;
    }
    ps_free(claims->sub);
    ps_free(claims->info);
    ps_free(claims->channel);
    memset(claims, 0, sizeof *claims);
}

/* exp and nbf may be written as integers or, by some JWT libraries, as
 * reals. */
static int read_time(json_t *value, int64_t *out)
{
    if (value == NULL) {
        *out = 0;
        return 0;
    }
    if (json_is_integer(value)) {
        *out = (int64_t)json_integer_value(value);
        return 0;
    }
    if (json_is_real(value)) {
        double v = json_real_value(value);
        if (!(v > -9.2e18 && v < 9.2e18)) { /* NaN and what int64 cannot hold */
            return -1;
        }
        *out = (int64_t)v;
        return 0;
    }
    return -1;
}

/* A copy of an optional string claim: NULL when absent; *bad when it is
 * not a string, *nomem when the copy fails. */
static char *dup_optional_string(json_t *value, int *bad, int *nomem)
{
    if (value == NULL) {
        return NULL;
    }
    if (!json_is_string(value)) {
        *bad = 1;
        return NULL;
    }
    char *copy = ps_strdup(json_string_value(value));
    *nomem |= copy == NULL;
    return copy;
}

static ps_token_status read_claims(json_t *claims, int64_t now_unix,
                                   ps_token_claims *out)
{
    int bad = 0;
    int nomem = 0;
    int64_t nbf = 0;
    memset(out, 0, sizeof *out);
    out->sub = dup_optional_string(json_object_get(claims, "sub"), &bad, &nomem);
    out->channel = dup_optional_string(json_object_get(claims, "channel"), &bad,
                                       &nomem);
    if (out->sub == NULL && !bad && !nomem) {
        out->sub = ps_strdup("");
        nomem |= out->sub == NULL;
    }
    json_t *info = json_object_get(claims, "info");
    if (info != NULL && !json_is_null(info)) {
        out->info = ps_json_dumps(info, JSON_COMPACT | JSON_ENCODE_ANY);
        nomem |= out->info == NULL;
    }
    json_t *exp = json_object_get(claims, "exp");
    bad |= read_time(exp, &out->exp) != 0;
    bad |= read_time(json_object_get(claims, "nbf"), &nbf) != 0;
    if (bad || nomem) {
        ps_token_claims_free(out);
        return bad ? PS_TOKEN_INVALID : PS_TOKEN_NOMEM;
    }
    if (nbf > now_unix) {
        ps_token_claims_free(out);
        return PS_TOKEN_INVALID;
    }
    /* Centrifugo: a token without "exp" never expires; one with it is
     * valid only while exp is after now, so 0 and negative values are
     * expired, not "no expiry". */
    if (exp != NULL && out->exp <= now_unix) {
        return PS_TOKEN_EXPIRED;
    }
    return PS_TOKEN_OK;
}

/* base64url (no padding) to bytes; -1 on a character outside it. */
static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Decode @p n characters of base64url without padding (RFC 7515, 2) into
 * @p out, which holds n * 3 / 4 bytes. false on a character outside the
 * alphabet, a length no encoding has (n % 4 == 1), or leftover bits that
 * are not zero (a second spelling of the same bytes). */
static bool b64url_decode(const char *in, size_t n, uint8_t *out, size_t *len)
{
    size_t k = 0;
    unsigned acc = 0;
    int bits = 0;
    if (n % 4 == 1) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value(in[i]);
        if (v < 0) {
            return false;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (uint8_t)((acc >> bits) & 0xff);
        }
    }
    if ((acc & ((1u << bits) - 1)) != 0) {
        return false;
    }
    *len = k;
    return true;
}

/* A base64url segment parsed as JSON; NULL when it is not JSON (or
 * memory ran out: *nomem). */
static json_t *load_segment(const char *in, size_t n, bool *nomem)
{
    uint8_t stack[512];
    uint8_t *buf = n / 4 * 3 + 3 <= sizeof stack ? stack : ps_malloc(n / 4 * 3 + 3);
    if (buf == NULL) {
        *nomem = true;
        return NULL;
    }
    size_t len = 0;
    json_t *value = b64url_decode(in, n, buf, &len)
                        ? ps_json_loadb((const char *)buf, len, 0, NULL, nomem)
                        : NULL;
    if (buf != stack) {
        ps_free(buf);
    }
    return value;
}

/* The header must name "HS256" exactly (RFC 7515 names are case
 * sensitive): only the HMAC we share is trusted, so "none", another
 * algorithm under our secret, or a "crit" extension we cannot honour
 * (RFC 7515, 4.1.11) is refused. */
static ps_token_status check_header(const char *in, size_t n)
{
    bool nomem = false;
    json_t *head = load_segment(in, n, &nomem);
    const char *alg = json_string_value(json_object_get(head, "alg"));
    ps_token_status status = nomem ? PS_TOKEN_NOMEM
                             : json_is_object(head) && alg != NULL &&
                                       strcmp(alg, "HS256") == 0 &&
                                       json_object_get(head, "crit") == NULL
                                 ? PS_TOKEN_OK
                                 : PS_TOKEN_INVALID;
    json_decref(head);
    return status;
}

/* The signature: HMAC-SHA256 of "header.payload" under the secret, in
 * base64url, compared in constant time. */
static bool signature_ok(const char *token, size_t signed_len, const char *sig,
                         size_t sig_len, const char *secret)
{
    uint8_t given[SHA256_DIGEST_SIZE + 3];
    size_t given_len = 0;
    if (sig_len != 43 || !b64url_decode(sig, sig_len, given, &given_len) ||
        given_len != SHA256_DIGEST_SIZE) {
        return false;
    }
    struct hmac_sha256_ctx ctx;
    uint8_t want[SHA256_DIGEST_SIZE];
    hmac_sha256_set_key(&ctx, strlen(secret), (const uint8_t *)secret);
    hmac_sha256_update(&ctx, signed_len, (const uint8_t *)token);
    hmac_sha256_digest(&ctx, sizeof want, want);
    return memeql_sec(want, given, sizeof want) != 0;
}

/* JWS compact serialization (RFC 7515, 7.1): three base64url segments;
 * the signature is checked before the claims are read, and each segment
 * is decoded and parsed once (libjwt parsed the claims three times and
 * fetched OpenSSL's HMAC by name for every token: 5.8 us a token against
 * 1.x here). */
ps_token_status ps_token_verify(const char *token, const char *secret,
                                int64_t now_unix, ps_token_claims *out)
{
    memset(out, 0, sizeof *out);
    if (token == NULL || secret == NULL || *secret == '\0') {
        return PS_TOKEN_INVALID;
    }
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot1 == NULL || dot2 == NULL || dot1 == token || dot2 == dot1 + 1 ||
        strchr(dot2 + 1, '.') != NULL) {
        return PS_TOKEN_INVALID;
    }
    ps_token_status status = check_header(token, (size_t)(dot1 - token));
    if (status != PS_TOKEN_OK) {
        return status;
    }
    if (!signature_ok(token, (size_t)(dot2 - token), dot2 + 1, strlen(dot2 + 1),
                      secret)) {
        return PS_TOKEN_INVALID;
    }
    unsigned long failures = ps_mem_failures();
    bool nomem = false;
    json_t *claims = load_segment(dot1 + 1, (size_t)(dot2 - dot1 - 1), &nomem);
    status = PS_TOKEN_INVALID;
    if (nomem || ps_mem_failures() != failures) {
        /* jansson may have truncated a claim rather than fail (see
         * ps_json_loadb()): a token read under memory pressure is not
         * trusted, whatever came out. */
        status = PS_TOKEN_NOMEM;
    } else if (json_is_object(claims)) {
        status = read_claims(claims, now_unix, out);
        if (ps_mem_failures() != failures && status != PS_TOKEN_NOMEM) {
            if (status != PS_TOKEN_INVALID) {
                ps_token_claims_free(out);
            }
            status = PS_TOKEN_NOMEM;
        }
    }
    json_decref(claims);
    return status;
}

static int add_info(jwt_t *jwt, const char *info_json, char *err,
                    size_t err_len)
{
    json_t *info = json_loads(info_json, JSON_DECODE_ANY, NULL);
    if (info == NULL) {
        snprintf(err, err_len, "--info is not valid JSON");
        return -1;
    }
    json_t *wrap = json_pack("{s:o}", "info", info);
    char *text = wrap ? ps_json_dumps(wrap, JSON_COMPACT) : NULL;
    json_decref(wrap);
    int rc = text ? jwt_add_grants_json(jwt, text) : -1;
    ps_free(text);
    if (rc != 0) {
        snprintf(err, err_len, "cannot add the info claim");
        return -1;
    }
    return 0;
}

char *ps_token_mint(const char *secret, const char *sub, int64_t exp,
                    const char *info_json, const char *channel, char *err,
                    size_t err_len)
{
    jwt_t *jwt = NULL;
    char *token = NULL;
    if (secret == NULL || *secret == '\0') {
        snprintf(err, err_len, "no token_hmac_secret_key in the config");
        return NULL;
    }
    if (jwt_new(&jwt) != 0) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    int rc = jwt_add_grant(jwt, "sub", sub);
    if (rc == 0 && exp > 0) {
        rc = jwt_add_grant_int(jwt, "exp", (long)exp);
    }
    if (rc == 0 && channel != NULL) {
        rc = jwt_add_grant(jwt, "channel", channel);
    }
    if (rc != 0) {
        snprintf(err, err_len, "cannot build the claims");
        goto out;
    }
    if (info_json != NULL && add_info(jwt, info_json, err, err_len) != 0) {
        goto out;
    }
    if (jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret,
                    (int)strlen(secret)) != 0) {
        snprintf(err, err_len, "cannot set HS256");
        goto out;
    }
    char *encoded = jwt_encode_str(jwt); /* libc memory: free() */
    token = encoded ? ps_strdup(encoded) : NULL;
    free(encoded);
    if (token == NULL) {
        snprintf(err, err_len, "cannot encode the token");
    }
out:
    jwt_free(jwt);
    return token;
}
