/*
 * JWT handling on libjwt. libjwt verifies the signature; the claims are read
 * with jansson, because libjwt 1.10's typed getters cannot tell a missing
 * claim from a claim of the wrong type, and "info" may be any JSON value.
 * SPDX-License-Identifier: MIT
 */
#include "token.h"

#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ps_token_claims_free(ps_token_claims *claims)
{
    if (claims == NULL) {
        return;
    }
    free(claims->sub);
    free(claims->info);
    free(claims->channel);
    memset(claims, 0, sizeof *claims);
}

/* exp may be written as an integer or, by some JWT libraries, a real. */
static int read_exp(json_t *value, int64_t *out)
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
        *out = (int64_t)json_real_value(value);
        return 0;
    }
    return -1;
}

static char *dup_optional_string(json_t *value, int *bad)
{
    if (value == NULL) {
        return NULL;
    }
    if (!json_is_string(value)) {
        *bad = 1;
        return NULL;
    }
    return strdup(json_string_value(value));
}

static ps_token_status read_claims(json_t *claims, int64_t now_unix,
                                   ps_token_claims *out)
{
    int bad = 0;
    memset(out, 0, sizeof *out);
    out->sub = dup_optional_string(json_object_get(claims, "sub"), &bad);
    out->channel = dup_optional_string(json_object_get(claims, "channel"), &bad);
    if (out->sub == NULL && !bad) {
        out->sub = strdup("");
    }
    json_t *info = json_object_get(claims, "info");
    if (info != NULL && !json_is_null(info)) {
        out->info = json_dumps(info, JSON_COMPACT | JSON_ENCODE_ANY);
        bad |= out->info == NULL;
    }
    bad |= read_exp(json_object_get(claims, "exp"), &out->exp) != 0;
    if (bad || out->sub == NULL) {
        ps_token_claims_free(out);
        return PS_TOKEN_INVALID;
    }
    if (out->exp > 0 && out->exp <= now_unix) {
        return PS_TOKEN_EXPIRED;
    }
    return PS_TOKEN_OK;
}

ps_token_status ps_token_verify(const char *token, const char *secret,
                                int64_t now_unix, ps_token_claims *out)
{
    memset(out, 0, sizeof *out);
    if (token == NULL || secret == NULL || *secret == '\0') {
        return PS_TOKEN_INVALID;
    }
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, (const unsigned char *)secret,
                   (int)strlen(secret)) != 0) {
        return PS_TOKEN_INVALID;
    }
    /* Refuse algorithm substitution: only the HMAC we share is trusted. */
    if (jwt_get_alg(jwt) != JWT_ALG_HS256) {
        jwt_free(jwt);
        return PS_TOKEN_INVALID;
    }
    char *grants = jwt_get_grants_json(jwt, NULL);
    jwt_free(jwt);
    if (grants == NULL) {
        return PS_TOKEN_INVALID;
    }
    json_t *claims = json_loads(grants, 0, NULL);
    free(grants);
    if (!json_is_object(claims)) {
        json_decref(claims);
        return PS_TOKEN_INVALID;
    }
    ps_token_status status = read_claims(claims, now_unix, out);
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
    char *text = wrap ? json_dumps(wrap, JSON_COMPACT) : NULL;
    json_decref(wrap);
    int rc = text ? jwt_add_grants_json(jwt, text) : -1;
    free(text);
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
    token = jwt_encode_str(jwt);
    if (token == NULL) {
        snprintf(err, err_len, "cannot encode the token");
    }
out:
    jwt_free(jwt);
    return token;
}
