/*
 * The saved-state format (presence_registry_save / presence_registry_load),
 * version 1. Everything after the header is LEB128 varints (signed
 * values zigzagged), strings as a varint length, the bytes and a NUL (so
 * a loader checks names in place), and blobs as a varint length and the
 * bytes:
 *
 *   magic "PRSTATE\0", version u32 LE
 *   saved_at (the saving registry's clock; times below are relative to it)
 *   separator (one byte)
 *   namespaces: count, then name, flags byte (presence 1, join_leave 2,
 *               grace_on_leave 4, grace_same_user 8), ttl_ms, max_members,
 *               leave_grace_ms, history_size (the change logs themselves
 *               are not saved: a loaded channel's log starts at its seq)
 *   nodes:      count, then id
 *   users:      count, then id
 *   clients:    count, then id, user index, conn_info blob, node (0: this
 *               registry's, k: node k - 1)
 *   channels:   count, then name, epoch, seq, member count, then for each
 *               member: client index, joined - saved_at, touched -
 *               saved_at, grace (0, or the leave reason 1..3 it dropped
 *               for: then touched is the drop), chan_info blob
 *   checksum    u64 LE: presence__state_checksum() of all that precedes
 *               it (self-contained here, so that tools and the fuzzer
 *               can seal a state they made)
 *
 * Every client, user and node is used by some membership, and listed once.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_STATE_FORMAT_H
#define PRESENCE_STATE_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PRESENCE__STATE_MAGIC "PRSTATE"
#define PRESENCE__STATE_MAGIC_LEN 8u /* with its NUL */
#define PRESENCE__STATE_HEADER (PRESENCE__STATE_MAGIC_LEN + 4u)
#define PRESENCE__STATE_CHECKSUM 8u

#define PRESENCE__NS_PRESENCE 1u
#define PRESENCE__NS_JOIN_LEAVE 2u
#define PRESENCE__NS_GRACE_ON_LEAVE 4u
#define PRESENCE__NS_GRACE_SAME_USER 8u
#define PRESENCE__NS_FLAGS 15u

static inline uint64_t presence__zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t presence__unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static inline void presence__put_u32le(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static inline uint32_t presence__get_u32le(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        v |= (uint32_t)p[i] << (8 * i);
    }
    return v;
}

static inline void presence__put_u64le(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static inline uint64_t presence__get_u64le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

/* A 64-bit checksum: 8 bytes a step, multiplied and rotated, then
 * mixed. It finds damage, not attackers (nothing here is secret). */
static inline uint64_t presence__state_checksum(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0x70726573656e6365ULL ^ (uint64_t)len; /* "presence" */
    for (; len >= 8; p += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h = (h << 31) | (h >> 33);
    }
    for (; len > 0; p++, len--) {
        h = (h ^ *p) * 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

#endif
