/*
 * Small helpers shared by the presence server: clocks and random ids.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_UTIL_H
#define PS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** Length of a textual UUID plus its NUL. */
#define PS_UUID_SIZE 37

/** Monotonic milliseconds, for timers (pings, pong deadlines). */
int64_t ps_now_ms(void);

/** Monotonic nanoseconds, for the metrics' durations. */
uint64_t ps_now_ns(void);

/** Wall-clock seconds since the epoch, for token "exp" claims. */
int64_t ps_unix_time(void);

/** Fill @p buf with @p len bytes from the kernel's CSPRNG. 0 or -1. */
int ps_random_bytes(void *buf, size_t len);

/** A random (version 4) UUID, as Centrifugo uses for client ids and keys. */
int ps_uuid4(char out[PS_UUID_SIZE]);

/** Whether @p given equals the secret @p secret, in a time that depends
 *  on the two lengths only, never on the bytes (where the first difference
 *  is). An empty secret equals nothing. */
bool ps_secret_equal(const char *given, const char *secret);

/** Write a formatted reason into err (err_len bytes) and return -1: the
 *  shape of every "failed, here is why" path. */
int ps_fail(char *err, size_t err_len, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/** Silence ps_log() (fuzzers feed it countless bad configs). */
void ps_log_set_quiet(bool quiet);

/** Log a line to stderr with the program's prefix. */
void ps_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif
