/*
 * Small helpers shared by the presence server: clocks and random ids.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_UTIL_H
#define PS_UTIL_H

#include <stddef.h>
#include <stdint.h>

/** Length of a textual UUID plus its NUL. */
#define PS_UUID_SIZE 37

/** Monotonic milliseconds, for timers (pings, pong deadlines). */
int64_t ps_now_ms(void);

/** Wall-clock seconds since the epoch, for token "exp" claims. */
int64_t ps_unix_time(void);

/** Fill @p buf with @p len bytes from the kernel's CSPRNG. 0 or -1. */
int ps_random_bytes(void *buf, size_t len);

/** A random (version 4) UUID, as Centrifugo uses for client ids and keys. */
int ps_uuid4(char out[PS_UUID_SIZE]);

/** Log a line to stderr with the program's prefix. */
void ps_log(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif
