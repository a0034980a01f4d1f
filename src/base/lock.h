/*
 * The library's mutexes: real ones in a thread-safe registry, none at all
 * in a single-threaded one (every call is then a test of a flag).
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_BASE_LOCK_H
#define PRESENCE_BASE_LOCK_H

#include <pthread.h>
#include <stdbool.h>

static inline void presence__lock_init(bool threaded, pthread_mutex_t *m)
{
    if (threaded) {
        pthread_mutex_init(m, NULL);
    }
}

static inline void presence__lock_destroy(bool threaded, pthread_mutex_t *m)
{
    if (threaded) {
        pthread_mutex_destroy(m);
    }
}

static inline void presence__lock(bool threaded, pthread_mutex_t *m)
{
    if (threaded) {
        pthread_mutex_lock(m);
    }
}

static inline bool presence__trylock(bool threaded, pthread_mutex_t *m)
{
    return !threaded || pthread_mutex_trylock(m) == 0;
}

static inline void presence__unlock(bool threaded, pthread_mutex_t *m)
{
    if (threaded) {
        pthread_mutex_unlock(m);
    }
}

#endif
