/*
 * A seeded hash for ids and names. Short keys dominate (ids of a few dozen
 * bytes), so it reads 8 bytes at a time and finishes with a strong mix;
 * the seed keeps an attacker who picks ids from aiming at one bucket.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/hash.h"

#define MUL1 0x9e3779b97f4a7c15ULL
#define MUL2 0xbf58476d1ce4e5b9ULL
#define MUL3 0x94d049bb133111ebULL

static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= MUL2;
    x ^= x >> 27;
    x *= MUL3;
    x ^= x >> 31;
    return x;
}

static uint64_t read64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

uint64_t presence__hash64(uint64_t seed, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (len * MUL1);
    while (len >= 8) {
        h = (h ^ mix(read64(p) + MUL1)) * MUL2;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    for (size_t i = 0; i < len; i++) {
        tail |= (uint64_t)p[i] << (8 * i);
    }
    h = (h ^ mix(tail + len)) * MUL3;
    return mix(h);
}

unsigned presence__hash32(uint64_t seed, const void *data, size_t len)
{
    return (unsigned)(presence__hash64(seed, data, len) >> 32);
}

uint64_t presence__random_seed(const void *salt)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
    x ^= (uint64_t)(uintptr_t)salt;
    x ^= (uint64_t)(uintptr_t)&ts;
    uint64_t seed = mix(x + MUL1);
    return seed != 0 ? seed : MUL1;
}

uint64_t presence__random64(void)
{
    uint64_t x;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) == (ssize_t)sizeof x) {
        return x;
    }
    return presence__random_seed(&x);
}

uint64_t presence__mix64(uint64_t x)
{
    return mix(x);
}
