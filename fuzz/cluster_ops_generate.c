/*
 * Inputs for the cluster wire-decoder fuzz target in the replay builds
 * (replay.c with -DREPLAY_GENERATE): made the way a node writes them (a
 * few joins and leaves with random names and infos), then damaged (bytes
 * changed, cut short), so that most get past the first byte.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "cluster_internal.h"
#include "cluster_ops.h"

static uint32_t next(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (uint32_t)(*state >> 16);
}

static void random_name(uint64_t *state, char *out, size_t max)
{
    size_t len = 1 + next(state) % (max - 1);
    for (size_t i = 0; i < len; i++) {
        out[i] = (char)(' ' + next(state) % 95);
    }
    out[len] = '\0';
}

size_t presence_fuzz_cluster_ops_generate(uint8_t *buf, size_t cap,
                                          uint64_t *state)
{
    char ch[16], cl[16], user[16];
    unsigned char info[24];
    presence_allocator a;
    presence__cl_alloc_init(&a, NULL);
    struct presence__cl_buf b = {.alloc = &a};
    for (unsigned n = next(state) % 5; n > 0; n--) {
        random_name(state, ch, sizeof ch);
        random_name(state, cl, sizeof cl);
        random_name(state, user, sizeof user);
        size_t il = next(state) % sizeof info;
        for (size_t i = 0; i < il; i++) {
            info[i] = (unsigned char)next(state);
        }
        if (next(state) % 3 == 0) {
            presence__cl_encode_leave(&b, ch, cl, (int)(next(state) % 10));
        } else {
            presence__cl_encode_join(&b, ch, cl, user, info, il, info, il / 2);
        }
    }
    for (unsigned d = next(state) % 4; d > 0 && b.len > 0; d--) {
        b.data[next(state) % b.len] = (char)next(state);
    }
    if (b.len > 0 && next(state) % 2 == 0) {
        b.len = next(state) % b.len;
    }
    size_t len = b.len < cap ? b.len : cap;
    if (len > 0) {
        memcpy(buf, b.data, len);
    }
    presence__cl_buf_free(&b);
    return len;
}
