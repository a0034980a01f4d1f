/*
 * What the domain does with its shards beyond one lookup: taking every
 * channel shard, stepping back to the lock order for a client's shard,
 * the clock as the shards see it, and totals over the shards.
 * SPDX-License-Identifier: MIT
 */
#include "domain/domain.h"

void presence__lock_all_shards(presence_registry *reg)
{
    for (size_t i = 0; i < PRESENCE__SHARDS; i++) {
        presence__mutex_lock(reg, &reg->shards[i].lock);
    }
}

void presence__unlock_all_shards(presence_registry *reg)
{
    for (size_t i = PRESENCE__SHARDS; i-- > 0;) {
        presence__mutex_unlock(reg, &reg->shards[i].lock);
    }
}

static pthread_mutex_t *channel_shard_lock(presence_registry *reg, unsigned i)
{
    return &reg->shards[i].lock;
}

static pthread_mutex_t *client_shard_lock(presence_registry *reg, unsigned i)
{
    return &reg->cshards[i].lock;
}

/* Shards of one kind, one bit each: taken in index order, given back in
 * reverse. */
static void lock_set(presence_registry *reg, uint64_t set,
                     pthread_mutex_t *(*lock_of)(presence_registry *, unsigned))
{
    for (uint64_t s = set; s != 0; s &= s - 1) {
        presence__mutex_lock(reg, lock_of(reg, (unsigned)__builtin_ctzll(s)));
    }
}

static void unlock_set(presence_registry *reg, uint64_t set,
                       pthread_mutex_t *(*lock_of)(presence_registry *,
                                                   unsigned))
{
    for (uint64_t s = set; s != 0;) {
        unsigned top = 63u - (unsigned)__builtin_clzll(s);
        presence__mutex_unlock(reg, lock_of(reg, top));
        s &= ~(1ULL << top);
    }
}

void presence__lock_shard_set(presence_registry *reg, uint64_t set)
{
    lock_set(reg, set, channel_shard_lock);
}

void presence__unlock_shard_set(presence_registry *reg, uint64_t set)
{
    unlock_set(reg, set, channel_shard_lock);
}

void presence__lock_client_shard_set(presence_registry *reg, uint64_t set)
{
    lock_set(reg, set, client_shard_lock);
}

void presence__unlock_client_shard_set(presence_registry *reg, uint64_t set)
{
    unlock_set(reg, set, client_shard_lock);
}

bool presence__lock_client_of(presence_registry *reg,
                              struct presence__shard *hs,
                              struct presence__client *client)
{
    struct presence__cshard *cs = presence__cshard_of(reg, client->hash);
    if (presence__mutex_trylock(reg, &cs->lock)) {
        return false;
    }
    /* Step back to the lock order. The caller's reference keeps the
     * client's memory (and so its address) while no lock is held. */
    presence__mutex_unlock(reg, &hs->lock);
    presence__mutex_lock(reg, &cs->lock);
    presence__mutex_lock(reg, &hs->lock);
    return true;
}

int64_t presence__now(presence_registry *reg)
{
    int64_t now = reg->clock(reg->clock_user_data);
    /* Memberships keep times in 47 bits: +-2,200 years of milliseconds. */
    if ((uint64_t)now - (uint64_t)PRESENCE__TIME_MIN >
        (uint64_t)PRESENCE__TIME_MAX - (uint64_t)PRESENCE__TIME_MIN) {
        now = now < 0 ? PRESENCE__TIME_MIN : PRESENCE__TIME_MAX;
    }
    /* A fetch-max: the one write a millisecond is the thread that sees it
     * first. Relaxed is enough: what orders two calls on one shard is the
     * shard's lock, and the value only ever grows. */
    int64_t seen = atomic_load_explicit(&reg->last_now_ms,
                                        memory_order_relaxed);
    while (now > seen) {
        if (atomic_compare_exchange_weak_explicit(&reg->last_now_ms, &seen,
                                                  now, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            return now;
        }
    }
    return seen;
}

size_t presence__count_memberships(presence_registry *reg)
{
    size_t n = 0;
    for (size_t i = 0; i < PRESENCE__SHARDS; i++) {
        n += atomic_load_explicit(&reg->shards[i].memberships,
                                  memory_order_relaxed);
    }
    return n;
}

uint64_t presence__epoch(presence_registry *reg, struct presence__shard *hs)
{
    uint64_t shard = (uint64_t)(hs - reg->shards);
    for (;;) {
        /* The shard in the top bits, its count below: distinct inputs, and
         * a bijective scramble keeps them distinct. 2^58 channels a shard
         * before a count could wrap. */
        uint64_t n = shard << (64 - PRESENCE__SHARD_BITS) | hs->epochs++;
        uint64_t epoch = presence__mix64(reg->epoch_key ^ n);
        if (epoch != 0) {
            return epoch;
        }
    }
}
