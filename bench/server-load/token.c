/*
 * SPDX-License-Identifier: MIT
 */
#include "token.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Unpadded base64url of @p len bytes; false when it does not fit. */
static bool b64url_append(char *out, size_t cap, size_t *used,
                          const unsigned char *in, size_t len)
{
    size_t need = (len * 4 + 2) / 3;
    if (*used + need + 1 > cap) {
        return false;
    }
    char *o = out + *used;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        *o++ = b64url[(v >> 18) & 63];
        *o++ = b64url[(v >> 12) & 63];
        *o++ = b64url[(v >> 6) & 63];
        *o++ = b64url[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = b64url[(v >> 18) & 63];
        *o++ = b64url[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        *o++ = b64url[(v >> 18) & 63];
        *o++ = b64url[(v >> 12) & 63];
        *o++ = b64url[(v >> 6) & 63];
    }
    *o = '\0';
    *used = (size_t)(o - out);
    return true;
}

bool lg_token_mint(const char *secret, const char *user, char *out, size_t cap)
{
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char claims[256];
    int n = snprintf(claims, sizeof claims, "{\"sub\":\"%s\"}", user);
    if (n < 0 || (size_t)n >= sizeof claims) {
        return false;
    }
    size_t used = 0;
    if (!b64url_append(out, cap, &used, (const unsigned char *)header,
                       sizeof header - 1) ||
        used + 2 > cap) {
        return false;
    }
    out[used++] = '.';
    if (!b64url_append(out, cap, &used, (const unsigned char *)claims, (size_t)n)) {
        return false;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)out,
             used, mac, &mac_len) == NULL ||
        used + 2 > cap) {
        return false;
    }
    out[used++] = '.';
    return b64url_append(out, cap, &used, mac, mac_len);
}
