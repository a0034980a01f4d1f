/*
 * JWT handling on libjwt. libjwt verifies the signature; the claims are read
 * with jansson, because libjwt 1.10's typed getters cannot tell a missing
 * claim from a claim of the wrong type, and "info" may be any JSON value.
 * SPDX-License-Identifier: MIT
 */
#include "token.h"

#include "mem.h"

#include <jansson.h>
#include <errno.h>
#include <jwt.h>
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

/* The header's "alg" must be "HS256" exactly: RFC 7515 names are case
 * sensitive, and libjwt 1.10 would take "hs256" (or "Hs256") too. Checked
 * on the raw header before libjwt sees the token. */
static ps_token_status check_header(const char *token)
{
    const char *dot = strchr(token, '.');
    size_t n = dot ? (size_t)(dot - token) : 0;
    if (n == 0 || n > 1024) {
        return PS_TOKEN_INVALID;
    }
    char header[800];
    size_t len = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value(token[i]);
        if (v < 0) {
            return PS_TOKEN_INVALID;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            header[len++] = (char)((acc >> bits) & 0xff);
        }
    }
    bool nomem = false;
    json_t *head = ps_json_loadb(header, len, 0, NULL, &nomem);
    const char *alg = json_string_value(json_object_get(head, "alg"));
    ps_token_status status = nomem ? PS_TOKEN_NOMEM
                             : alg != NULL && strcmp(alg, "HS256") == 0
                                 ? PS_TOKEN_OK
                                 : PS_TOKEN_INVALID;
    json_decref(head);
    return status;
}

ps_token_status ps_token_verify(const char *token, const char *secret,
                                int64_t now_unix, ps_token_claims *out)
{
    memset(out, 0, sizeof *out);
    if (token == NULL || secret == NULL || *secret == '\0') {
        return PS_TOKEN_INVALID;
    }
    ps_token_status head = check_header(token);
    if (head != PS_TOKEN_OK) {
        return head;
    }
    /* libjwt reports a failed allocation of its own as ENOMEM, but one
     * inside jansson as a bad token: ps_mem_failures() tells them apart. */
    unsigned long failures = ps_mem_failures();
    jwt_t *jwt = NULL;
    int rc = jwt_decode(&jwt, token, (const unsigned char *)secret,
                        (int)strlen(secret));
    if (rc != 0 || ps_mem_failures() != failures) {
        jwt_free(jwt);
        return rc == ENOMEM || ps_mem_failures() != failures ? PS_TOKEN_NOMEM
                                                             : PS_TOKEN_INVALID;
    }
    /* Refuse algorithm substitution: only the HMAC we share is trusted.
     * libjwt has checked the signature with the algorithm the header names,
     * so a token signed with HS384 or HS512 under our secret, or "none",
     * is refused here. */
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        jwt_free(jwt);
        return PS_TOKEN_INVALID;
    }
    char *grants = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    if (grants == NULL) {
        return PS_TOKEN_NOMEM; /* the claims parsed once already */
    }
    json_t *claims = json_loads(grants, 0, NULL);
    ps_free(grants); /* json_dumps() inside libjwt: jansson, so our hooks */
    ps_token_status status = PS_TOKEN_INVALID;
    if (ps_mem_failures() != failures) {
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
