/*
 * Connection tokens for the presence server: HS256 JWTs whose "sub" is
 * the user, without "exp" (they never expire, as the load test wants).
 * SPDX-License-Identifier: MIT
 */
#ifndef LG_TOKEN_H
#define LG_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

/** Write the token for @p user signed with @p secret into @p out
 *  (NUL-terminated). False when it does not fit in @p cap bytes. */
bool lg_token_mint(const char *secret, const char *user, char *out, size_t cap);

#endif
