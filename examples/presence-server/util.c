/*
 * Clocks, random ids and logging for the presence server.
 * SPDX-License-Identifier: MIT
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int64_t ps_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t ps_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t ps_unix_time(void)
{
    return (int64_t)time(NULL);
}

int ps_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int ps_uuid4(char out[PS_UUID_SIZE])
{
    unsigned char b[16];
    if (ps_random_bytes(b, sizeof b) != 0) {
        return -1;
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, PS_UUID_SIZE,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

bool ps_secret_equal(const char *given, const char *secret)
{
    /* Every byte of given is compared, against the secret repeated, so the
     * work is the same wherever the first difference is; volatile keeps
     * the compiler from ending the loop once diff is set. */
    size_t n = strlen(given);
    size_t m = strlen(secret);
    volatile unsigned char diff = (unsigned char)(n != m);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        diff |= (unsigned char)(given[i] ^ secret[j]);
        j = j + 1 < m ? j + 1 : 0;
    }
    return diff == 0 && m > 0;
}

static bool log_quiet;

void ps_log_set_quiet(bool quiet)
{
    log_quiet = quiet;
}

int ps_fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
    return -1;
}

void ps_log(const char *fmt, ...)
{
    if (log_quiet) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    /* One fprintf per line, so that lines from several threads do not mix. */
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "presence-server: %s\n", line);
}
