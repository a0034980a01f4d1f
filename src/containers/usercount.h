/*
 * Counts per user: user -> a number of connections. A channel's member set
 * keeps one for its crowd users, those with more members in the channel
 * than fit side by side (memberset.h): how many of their members it holds
 * apart from the others.
 *
 * Open addressing, linear probing, backward-shift deletion; 12 bytes a
 * slot: the user pointers and the 32-bit counts are two arrays in one
 * allocation, so no padding is paid per slot.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_USERCOUNT_H
#define PRESENCE_USERCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "presence.h"

struct presence__user;

struct presence__usercount {
    struct presence__user **users_at; /* NULL: empty slot */
    uint32_t *counts; /* after users_at, same allocation; 32 bits: a user
                       * would need 4G connections in one channel */
    size_t mask; /* slots - 1, or 0 when there are none */
    size_t users;
};

void presence__usercount_init(struct presence__usercount *uc);
void presence__usercount_free(const presence_allocator *alloc,
                              struct presence__usercount *uc);
/* Make sure one more user fits without allocating. */
int presence__usercount_prepare(const presence_allocator *alloc,
                                struct presence__usercount *uc);
/* Add a connection of the user; returns its new count (1 = first). */
size_t presence__usercount_inc(struct presence__usercount *uc,
                               struct presence__user *user);
/* Remove a connection; returns the count left (0 = it was the last). */
size_t presence__usercount_dec(const presence_allocator *alloc,
                               struct presence__usercount *uc,
                               struct presence__user *user);
size_t presence__usercount_get(const struct presence__usercount *uc,
                               const struct presence__user *user);

#endif
