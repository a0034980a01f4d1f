/*
 * User keys (see userkey.h).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "containers/userkey.h"
#include "base/alloc.h"

void presence__userkeys_init(struct presence__userkeys *keys, uint32_t seed,
                             uint32_t offset, uint32_t stride)
{
    memset(keys, 0, sizeof *keys);
    keys->seed = seed;
    keys->offset = offset;
    keys->stride = stride;
}

void presence__userkeys_free(const presence_allocator *alloc,
                             struct presence__userkeys *keys)
{
    presence__free(alloc, keys->spare, (size_t)keys->spare_cap * sizeof *keys->spare);
    presence__userkeys_init(keys, keys->seed, keys->offset, keys->stride);
}

/* A bijection of the 32-bit values: every step (adding a constant,
 * xor with a right shift of itself, multiplying by an odd number) can be
 * undone, so distinct numbers give distinct keys; the multiplications
 * spread neighbouring numbers over the whole range. */
static uint32_t mix(uint32_t x, uint32_t seed)
{
    x += seed;
    x ^= x >> 16;
    x *= 0x21f0aaadu;
    x ^= x >> 15;
    x *= 0xd35a2d97u;
    x ^= x >> 15;
    return x;
}

int presence__userkeys_take(const presence_allocator *alloc,
                            struct presence__userkeys *keys, uint32_t *key)
{
    if (keys->spare_count > 0) {
        *key = keys->spare[--keys->spare_count];
        return PRESENCE_OK;
    }
    uint64_t number = (uint64_t)keys->minted * keys->stride + keys->offset;
    if (number > UINT32_MAX || keys->minted == UINT32_MAX) {
        return PRESENCE_ERR_NOMEM;
    }
    if (keys->minted == keys->spare_cap) {
        uint32_t cap = keys->spare_cap < 16 ? 16
                       : keys->spare_cap > UINT32_MAX / 2 ? UINT32_MAX
                                                         : keys->spare_cap * 2;
        uint32_t *spare = presence__realloc(
            alloc, keys->spare, (size_t)keys->spare_cap * sizeof *spare,
            presence__mul_size(cap, sizeof *spare));
        if (spare == NULL) {
            return PRESENCE_ERR_NOMEM;
        }
        keys->spare = spare;
        keys->spare_cap = cap;
    }
    keys->minted++;
    *key = mix((uint32_t)number, keys->seed);
    return PRESENCE_OK;
}

void presence__userkeys_give(const presence_allocator *alloc,
                             struct presence__userkeys *keys, uint32_t key)
{
    keys->spare[keys->spare_count++] = key;
    if (keys->spare_count == keys->minted) {
        /* Every key is back: start again, and give the memory back. */
        presence__userkeys_free(alloc, keys);
    }
}
