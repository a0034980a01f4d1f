/*
 * Tokens and secrets: only HS256 tokens signed with the configured secret
 * are accepted ("none", HS384, HS512 and the rest are refused, also when
 * signed with the same secret), exp and nbf are honoured (exp 0 or below
 * is expired, a missing exp never expires), and the API key
 * is compared in a time that does not depend on where it differs.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../token.h"
#include "../util.h"

#include <jwt.h>
#include <nettle/hmac.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>
#include <cmocka.h>

#define SECRET "security-test-secret"

static int64_t now(void)
{
    return (int64_t)time(NULL);
}

/* A token with @p claims (JSON) signed by libjwt with @p alg. */
static char *sign(jwt_alg_t alg, const char *secret, const char *claims)
{
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, claims), 0);
    size_t len = secret ? strlen(secret) : 0;
    assert_int_equal(jwt_set_alg(jwt, alg, (const unsigned char *)secret, (int)len), 0);
    char *token = jwt_encode_str(jwt);
    assert_non_null(token);
    jwt_free(jwt);
    return token;
}

/* base64url of @p len raw bytes, no padding. */
static char *b64url_bytes(const uint8_t *s, size_t n)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(n * 4 / 3 + 4);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n) v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        out[k++] = abc[(v >> 18) & 63];
        out[k++] = abc[(v >> 12) & 63];
        if (i + 1 < n) out[k++] = abc[(v >> 6) & 63];
        if (i + 2 < n) out[k++] = abc[v & 63];
    }
    out[k] = '\0';
    return out;
}

static char *b64url(const char *text)
{
    return b64url_bytes((const uint8_t *)text, strlen(text));
}

/* @p token with its header replaced by @p header_json; payload and
 * signature kept. */
static char *with_header(const char *token, const char *header_json)
{
    const char *dot = strchr(token, '.');
    char *head = b64url(header_json);
    char *out = malloc(strlen(head) + strlen(dot) + 1);
    strcpy(out, head);
    strcat(out, dot);
    free(head);
    return out;
}

static ps_token_status verify(const char *token, ps_token_claims *claims)
{
    return ps_token_verify(token, SECRET, now(), claims);
}

static void expect(const char *token, ps_token_status want)
{
    ps_token_claims claims;
    ps_token_status got = verify(token, &claims);
    if (got != want) {
        fail_msg("token %s: status %d, expected %d", token, got, want);
    }
    if (got == PS_TOKEN_OK || got == PS_TOKEN_EXPIRED) {
        ps_token_claims_free(&claims);
    }
}

static void test_hs256_accepted(void **state)
{
    (void)state;
    char err[128];
    char *token = ps_token_mint(SECRET, "alice", now() + 60, "{\"name\":\"A\"}",
                                "room:1", err, sizeof err);
    ps_token_claims claims;
    assert_int_equal(verify(token, &claims), PS_TOKEN_OK);
    assert_string_equal(claims.sub, "alice");
    assert_string_equal(claims.info, "{\"name\":\"A\"}");
    assert_string_equal(claims.channel, "room:1");
    assert_int_equal(claims.exp, now() + 60);
    ps_token_claims_free(&claims);
    ps_free(token);
}

static void test_other_algorithms_refused(void **state)
{
    (void)state;
    const char *claims = "{\"sub\":\"mallory\"}";
    char *hs256 = sign(JWT_ALG_HS256, SECRET, claims);
    expect(hs256, PS_TOKEN_OK); /* the control */

    /* Signed with our very secret, but not with HS256. */
    char *hs384 = sign(JWT_ALG_HS384, SECRET, claims);
    char *hs512 = sign(JWT_ALG_HS512, SECRET, claims);
    expect(hs384, PS_TOKEN_INVALID);
    expect(hs512, PS_TOKEN_INVALID);

    /* alg "none": no signature, or the HS256 one kept. */
    char *none = sign(JWT_ALG_NONE, NULL, claims);
    expect(none, PS_TOKEN_INVALID);
    char *none_hdr = with_header(hs256, "{\"alg\":\"none\",\"typ\":\"JWT\"}");
    expect(none_hdr, PS_TOKEN_INVALID);
    char *none_caps = with_header(hs256, "{\"alg\":\"NONE\",\"typ\":\"JWT\"}");
    expect(none_caps, PS_TOKEN_INVALID);

    /* Other names for the algorithm, or none at all. */
    const char *headers[] = {
        "{\"alg\":\"hs256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"Hs256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256 \",\"typ\":\"JWT\"}",
        "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"ES256\",\"typ\":\"JWT\"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":256}",
        "[]",
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        char *t = with_header(hs256, headers[i]);
        expect(t, PS_TOKEN_INVALID);
        free(t);
    }
    free(hs256);
    free(hs384);
    free(hs512);
    free(none);
    free(none_hdr);
    free(none_caps);
}

static void test_signature_checked(void **state)
{
    (void)state;
    char *other = sign(JWT_ALG_HS256, "another-secret", "{\"sub\":\"alice\"}");
    expect(other, PS_TOKEN_INVALID);
    /* The payload swapped for another user's, the signature kept. */
    char *good = sign(JWT_ALG_HS256, SECRET, "{\"sub\":\"alice\"}");
    char *forged_payload = b64url("{\"sub\":\"admin\"}");
    const char *dot1 = strchr(good, '.');
    const char *dot2 = strchr(dot1 + 1, '.');
    char forged[1024];
    snprintf(forged, sizeof forged, "%.*s.%s%s", (int)(dot1 - good), good,
             forged_payload, dot2);
    expect(forged, PS_TOKEN_INVALID);
    /* Truncated, empty, garbage. */
    char truncated[1024];
    snprintf(truncated, sizeof truncated, "%.*s", (int)(dot2 - good), good);
    expect(truncated, PS_TOKEN_INVALID);
    expect("", PS_TOKEN_INVALID);
    expect("x.y.z", PS_TOKEN_INVALID);
    /* An empty configured secret accepts nothing. */
    ps_token_claims claims;
    assert_int_equal(ps_token_verify(good, "", now(), &claims), PS_TOKEN_INVALID);
    free(other);
    free(good);
    free(forged_payload);
}

/* "header.payload" as given (already base64url), signed here with
 * HMAC-SHA256 under SECRET: tokens no JWT library would write. */
static char *sign_segments(const char *header, const char *payload)
{
    char *signed_part = malloc(strlen(header) + strlen(payload) + 2);
    sprintf(signed_part, "%s.%s", header, payload);
    struct hmac_sha256_ctx ctx;
    uint8_t mac[SHA256_DIGEST_SIZE];
    hmac_sha256_set_key(&ctx, strlen(SECRET), (const uint8_t *)SECRET);
    hmac_sha256_update(&ctx, strlen(signed_part), (const uint8_t *)signed_part);
    hmac_sha256_digest(&ctx, sizeof mac, mac);
    char *sig = b64url_bytes(mac, sizeof mac);
    char *token = malloc(strlen(signed_part) + strlen(sig) + 2);
    sprintf(token, "%s.%s", signed_part, sig);
    free(signed_part);
    free(sig);
    return token;
}

/* The same, from the header's and the claims' JSON. */
static char *sign_json(const char *header_json, const char *claims_json)
{
    char *h = b64url(header_json);
    char *p = b64url(claims_json);
    char *token = sign_segments(h, p);
    free(h);
    free(p);
    return token;
}

/* The compact serialization is read strictly: three segments, base64url
 * without padding and in its one spelling, a JSON object in each of the
 * first two, no "crit" extension; and a token signed by hand verifies as
 * one from libjwt does. */
static void test_token_shape(void **state)
{
    (void)state;
    const char *hs256 = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char *good = sign_json(hs256, "{\"sub\":\"alice\"}");
    ps_token_claims claims;
    assert_int_equal(verify(good, &claims), PS_TOKEN_OK);
    assert_string_equal(claims.sub, "alice");
    ps_token_claims_free(&claims);
    char *bare = sign_json("{\"alg\":\"HS256\"}", "{\"sub\":\"bob\"}");
    expect(bare, PS_TOKEN_OK); /* typ is optional */

    char buf[1024];
    snprintf(buf, sizeof buf, "%s.x", good); /* a fourth segment */
    expect(buf, PS_TOKEN_INVALID);
    snprintf(buf, sizeof buf, "%s=", good); /* padding */
    expect(buf, PS_TOKEN_INVALID);
    snprintf(buf, sizeof buf, ".%s", good); /* an empty header */
    expect(buf, PS_TOKEN_INVALID);
    /* The signature's last character with its two unused bits set: the
     * same bytes spelled another way. */
    snprintf(buf, sizeof buf, "%s", good);
    char *last = buf + strlen(buf) - 1;
    const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    *last = abc[(strchr(abc, *last) - abc) | 1];
    expect(buf, PS_TOKEN_INVALID);
    /* A signature one byte short. */
    snprintf(buf, sizeof buf, "%.*s", (int)strlen(good) - 2, good);
    expect(buf, PS_TOKEN_INVALID);

    /* Signed right, but not what a token may hold. */
    char *crit = sign_json("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}",
                           "{\"sub\":\"alice\"}");
    expect(crit, PS_TOKEN_INVALID);
    char *array = sign_json(hs256, "[\"alice\"]");
    expect(array, PS_TOKEN_INVALID);
    char *not_json = sign_json(hs256, "{\"sub\":");
    expect(not_json, PS_TOKEN_INVALID);
    char *head_array = sign_json("[\"HS256\"]", "{\"sub\":\"alice\"}");
    expect(head_array, PS_TOKEN_INVALID);
    char *bad_char = sign_segments("eyJhbGciOiJIUzI1NiJ9", "e30*");
    expect(bad_char, PS_TOKEN_INVALID);
    free(good);
    free(bare);
    free(crit);
    free(array);
    free(not_json);
    free(head_array);
    free(bad_char);
}

static void test_exp_and_nbf(void **state)
{
    (void)state;
    char claims[256];
    /* Each case: the claims before the time, the time (now + delta), the
     * claims after it. */
    struct {
        const char *before, *after;
        long long delta;
        ps_token_status want;
    } cases[] = {
        {"{\"sub\":\"a\",\"exp\":", "}", 60, PS_TOKEN_OK},
        {"{\"sub\":\"a\",\"exp\":", "}", -1, PS_TOKEN_EXPIRED},
        {"{\"sub\":\"a\",\"exp\":", "}", 0, PS_TOKEN_EXPIRED},
        {"{\"sub\":\"a\",\"exp\":", ".5}", 60, PS_TOKEN_OK},
        {"{\"sub\":\"a\",\"exp\":\"", "\"}", 60, PS_TOKEN_INVALID},
        {"{\"sub\":\"a\",\"nbf\":", "}", -60, PS_TOKEN_OK},
        {"{\"sub\":\"a\",\"nbf\":", "}", 0, PS_TOKEN_OK},
        {"{\"sub\":\"a\",\"nbf\":", "}", 60, PS_TOKEN_INVALID},
        {"{\"sub\":\"a\",\"nbf\":\"", "\"}", -60, PS_TOKEN_INVALID},
        {"{\"sub\":\"a\",\"exp\":1,\"nbf\":", "}", 60, PS_TOKEN_INVALID},
        {"{\"sub\":", "}", 0, PS_TOKEN_INVALID},
        {"{\"sub\":\"a\",\"channel\":[", "]}", 0, PS_TOKEN_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(claims, sizeof claims, "%s%lld%s", cases[i].before,
                 (long long)now() + cases[i].delta, cases[i].after);
        char *token = sign(JWT_ALG_HS256, SECRET, claims);
        ps_token_claims out;
        ps_token_status got = verify(token, &out);
        if (got != cases[i].want) {
            fail_msg("claims %s: status %d, expected %d", claims, got,
                     cases[i].want);
        }
        if (got == PS_TOKEN_OK || got == PS_TOKEN_EXPIRED) {
            ps_token_claims_free(&out);
        }
        free(token);
    }
    /* Absolute times: an exp of 0 or below is expired, not "never"
     * (Centrifugo's rule); only a missing exp never expires. */
    const char *absolute[] = {
        "{\"sub\":\"a\",\"exp\":0}",
        "{\"sub\":\"a\",\"exp\":-1}",
        "{\"sub\":\"a\",\"exp\":-9000000000}",
        "{\"sub\":\"a\",\"exp\":0.5}",
    };
    for (size_t i = 0; i < sizeof absolute / sizeof absolute[0]; i++) {
        char *token = sign(JWT_ALG_HS256, SECRET, absolute[i]);
        expect(token, PS_TOKEN_EXPIRED);
        free(token);
    }
    char *forever = sign(JWT_ALG_HS256, SECRET, "{\"sub\":\"a\"}");
    ps_token_claims out;
    assert_int_equal(verify(forever, &out), PS_TOKEN_OK);
    assert_int_equal(out.exp, 0);
    ps_token_claims_free(&out);
    free(forever);
}

static void test_secret_equal(void **state)
{
    (void)state;
    assert_true(ps_secret_equal("key", "key"));
    assert_false(ps_secret_equal("kex", "key"));
    assert_false(ps_secret_equal("xey", "key"));
    assert_false(ps_secret_equal("ke", "key"));
    assert_false(ps_secret_equal("keyk", "key"));
    assert_false(ps_secret_equal("keykey", "key")); /* the repetition */
    assert_false(ps_secret_equal("", "key"));
    assert_false(ps_secret_equal("", ""));
    assert_false(ps_secret_equal("anything", ""));
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The fastest of several runs of many comparisons. */
static double time_compare(const char *given, const char *secret)
{
    double best = 1e9;
    for (int run = 0; run < 15; run++) {
        double t0 = seconds();
        for (int i = 0; i < 200; i++) {
            if (ps_secret_equal(given, secret)) {
                fail_msg("unequal keys compared equal");
            }
        }
        double t = seconds() - t0;
        best = t < best ? t : best;
    }
    return best;
}

/* A comparison that stops at the first difference (memcmp, strcmp) is
 * tens of times faster when the first byte differs than when the last
 * does, with a key this long; ps_secret_equal takes the same time. */
static void test_secret_equal_timing(void **state)
{
    (void)state;
    enum { N = 16384 };
    char *secret = malloc(N + 1);
    char *early = malloc(N + 1);
    char *late = malloc(N + 1);
    for (size_t i = 0; i < N; i++) {
        secret[i] = (char)('a' + i % 26);
    }
    secret[N] = '\0';
    memcpy(early, secret, N + 1);
    memcpy(late, secret, N + 1);
    early[0] = '#';
    late[N - 1] = '#';
    double t_early = time_compare(early, secret);
    double t_late = time_compare(late, secret);
    double ratio = t_late / t_early;
    printf("# secret compare: first byte differs %.3f ms, last byte %.3f ms "
           "(ratio %.2f)\n", t_early * 1e3, t_late * 1e3, ratio);
    assert_true(ratio > 0.5 && ratio < 2.0);
    free(secret);
    free(early);
    free(late);
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256_accepted),
        cmocka_unit_test(test_other_algorithms_refused),
        cmocka_unit_test(test_signature_checked),
        cmocka_unit_test(test_token_shape),
        cmocka_unit_test(test_exp_and_nbf),
        cmocka_unit_test(test_secret_equal),
        cmocka_unit_test(test_secret_equal_timing),
    };
    return cmocka_run_group_tests_name("server tokens and secrets", tests, NULL,
                                       NULL);
}
