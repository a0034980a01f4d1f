/*
 * Connection and subscription tokens: HS256 JWTs, as Centrifugo checks them.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_TOKEN_H
#define PS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

typedef enum ps_token_status {
    PS_TOKEN_OK = 0,
    PS_TOKEN_INVALID,  /**< bad format, signature, algorithm or claims */
    PS_TOKEN_EXPIRED,  /**< valid, but "exp" has passed */
    PS_TOKEN_NOMEM,    /**< memory ran out while checking it */
} ps_token_status;

/** The claims this server uses. Strings are malloc'd, NULL when absent. */
typedef struct ps_token_claims {
    char *sub;       /**< the user id ("" when absent) */
    char *info;      /**< the "info" claim as compact JSON, or NULL */
    char *channel;   /**< subscription tokens: the channel */
    int64_t exp;     /**< unix seconds, 0 when absent (and only then, on
                          PS_TOKEN_OK) */
} ps_token_claims;

/**
 * Verify @p token against @p secret (HS256 only: any other algorithm,
 * "none" included, is invalid) and read its claims. An empty secret makes
 * every token invalid. "exp" (if present) must be a number, and a token
 * whose exp is at or before @p now_unix is PS_TOKEN_EXPIRED, 0 and
 * negative values included (a token without "exp" never expires, as in
 * Centrifugo); "nbf" (if
 * present) must be a number, and a token not valid before a time still to
 * come is PS_TOKEN_INVALID, as Centrifugo treats it. On PS_TOKEN_OK and
 * PS_TOKEN_EXPIRED @p out is filled and must be released with
 * ps_token_claims_free().
 */
ps_token_status ps_token_verify(const char *token, const char *secret,
                                int64_t now_unix, ps_token_claims *out);

void ps_token_claims_free(ps_token_claims *claims);

/**
 * Sign a token. @p exp 0 means no expiry; @p info_json (a JSON value) and
 * @p channel (for a subscription token) may be NULL. Returns a malloc'd
 * string or NULL (a message in @p err).
 */
char *ps_token_mint(const char *secret, const char *sub, int64_t exp,
                    const char *info_json, const char *channel, char *err,
                    size_t err_len);

#endif
