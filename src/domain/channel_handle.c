/*
 * Channel handles: a channel named once, its name checked, hashed and
 * looked up once, then joined, left and read by handle. A handle is the
 * channel record itself, pinned: a pin count (under the channel's shard
 * lock) keeps the record in its shard's index when its last member
 * leaves, idle, reading as no channel (channel.c, channel_retire), so
 * that a call by handle never looks the name up again. The calls that
 * join and leave by channel handle are with their twins in handle.c.
 *
 * SPDX-License-Identifier: MIT
 */
#include "domain/domain.h"

static struct presence__channel *record_of(presence_channel *channel)
{
    return (struct presence__channel *)(void *)channel;
}

int presence_channel_open(presence_registry *reg, const char *channel,
                          presence_channel **out)
{
    if (reg == NULL || channel == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    int rc = presence__channel_check(reg, channel, &ref);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    struct presence__channel *ch = NULL;
    presence__mutex_lock(reg, &ref.shard->lock);
    rc = presence__channel_lookup_join(reg, &ref);
    if (rc == PRESENCE_OK) {
        rc = presence__channel_pin(reg, &ref, &ch);
    }
    presence__mutex_unlock(reg, &ref.shard->lock);
    if (rc == PRESENCE_OK) {
        *out = (presence_channel *)(void *)ch;
    }
    return rc;
}

int presence_channel_release(presence_registry *reg, presence_channel *channel)
{
    if (channel == NULL) {
        return PRESENCE_OK;
    }
    if (reg == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__channel *ch = record_of(channel);
    struct presence__shard *hs = presence__shard_of(reg, ch->hash);
    presence__mutex_lock(reg, &hs->lock);
    presence__channel_unpin(reg, ch);
    presence__mutex_unlock(reg, &hs->lock);
    return PRESENCE_OK;
}

const char *presence_channel_name(const presence_channel *channel)
{
    return channel != NULL
               ? ((const struct presence__channel *)(const void *)channel)->name
               : NULL;
}

PRESENCE__FLATTEN
int presence_channel_stats_get(presence_registry *reg,
                               presence_channel *channel,
                               const presence_requester *requester,
                               presence_channel_stats *out)
{
    if (reg == NULL || channel == NULL || out == NULL ||
        presence__requester_resolve(&requester) != PRESENCE_OK) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    int rc = presence__lock_channel_read_pinned(reg, record_of(channel),
                                                requester, &ref);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    *out = presence__channel_stats(ref.ch);
    presence__mutex_unlock(reg, &ref.shard->lock);
    return PRESENCE_OK;
}
