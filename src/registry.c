/*
 * The registry handle: configuration, lifecycle, locking and time.
 * SPDX-License-Identifier: MIT
 */
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "base/clock.h"
#include "domain/domain.h"

static void config_defaults(presence_config *c)
{
    memset(c, 0, sizeof *c);
    c->struct_size = sizeof *c;
    c->limits.channel_name_max = 255;
    c->limits.client_id_max = 255;
    c->limits.user_id_max = 255;
    c->limits.conn_info_max = 65536;
    c->limits.chan_info_max = 65536;
    c->limits.channels_per_client_max = 128;
    c->limits.members_per_channel_max = 0;
    c->limits.channels_max = 0;
    c->namespace_separator = ':';
    presence_namespace_options_init(&c->default_namespace);
}

void presence_config_init_sized(presence_config *config, size_t struct_size)
{
    if (config == NULL || struct_size < sizeof(size_t)) {
        return;
    }
    presence_config defaults;
    config_defaults(&defaults);
    defaults.struct_size = struct_size;
    memcpy(config, &defaults,
           struct_size < sizeof defaults ? struct_size : sizeof defaults);
}

static int64_t monotonic_ms(void *user_data)
{
    (void)user_data;
    return presence__monotonic_ms();
}

static int config_check(const presence_config *c)
{
    const presence_allocator *a = &c->allocator;
    bool any = a->malloc_fn != NULL || a->free_fn != NULL ||
               a->realloc_fn != NULL;
    if (any && (a->malloc_fn == NULL || a->free_fn == NULL)) {
        return PRESENCE_ERR_INVALID;
    }
    if (!presence__separator_ok(c->namespace_separator)) {
        return PRESENCE_ERR_INVALID;
    }
    const presence_limits *l = &c->limits;
    if (l->channel_name_max == 0 || l->client_id_max == 0 ||
        l->user_id_max == 0) {
        return PRESENCE_ERR_INVALID;
    }
    return presence__namespace_options_check(&c->default_namespace);
}

/* The registry is aligned for its shards (alignof), which an allocator
 * need not give: ask for enough to align it within the block. */
static size_t registry_block_size(void)
{
    return sizeof(presence_registry) + alignof(presence_registry) - 1;
}

static void registry_release(presence_registry *reg)
{
    /* Queued events first: they hold references on the rest. */
    presence__events_free(reg);
    presence__channels_free(reg);
    presence__clients_free(reg);
    presence__nodes_free(reg);
    presence__namespaces_free(reg);
    for (size_t i = 0; i < PRESENCE__SHARDS; i++) {
        presence__slab_destroy(&reg->alloc, &reg->shards[i].membership_slab);
        presence__pool_destroy(&reg->alloc, &reg->channel_pools[i]);
        presence__pool_destroy(&reg->alloc, &reg->client_pools[i]);
        presence__pool_destroy(&reg->alloc, &reg->user_pools[i]);
        presence__mutex_destroy(reg, &reg->shards[i].lock);
        presence__mutex_destroy(reg, &reg->cshards[i].lock);
        presence__mutex_destroy(reg, &reg->ushards[i].lock);
    }
    presence__mutex_destroy(reg, &reg->queue_lock);
    presence__mutex_destroy(reg, &reg->node_lock);
    presence_allocator alloc = reg->alloc;
    alloc.free_fn(reg->block, registry_block_size(), alloc.user_data);
}

_Static_assert(sizeof(struct presence__shard) == 2 * PRESENCE__SHARD_BYTES &&
                   sizeof(struct presence__cshard) == PRESENCE__SHARD_BYTES &&
                   sizeof(struct presence__ushard) == PRESENCE__SHARD_BYTES,
               "a shard outgrew its cache-line padding");

int presence_registry_new(const presence_config *config,
                          presence_registry **out)
{
    if (out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    presence_config c;
    config_defaults(&c);
    if (config != NULL) {
        if (config->struct_size < sizeof(size_t)) {
            return PRESENCE_ERR_INVALID;
        }
        size_t n = config->struct_size < sizeof c ? config->struct_size
                                                  : sizeof c;
        memcpy(&c, config, n);
    }
    int rc = config_check(&c);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence_allocator alloc = c.allocator;
    if (alloc.malloc_fn == NULL) {
        presence__default_allocator(&alloc);
    }
    void *block = alloc.malloc_fn(registry_block_size(), alloc.user_data);
    if (block == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    uintptr_t align = alignof(presence_registry);
    presence_registry *reg =
        (presence_registry *)(((uintptr_t)block + align - 1) & ~(align - 1));
    memset(reg, 0, sizeof *reg);
    reg->alloc = alloc;
    reg->block = block;
    reg->clock = c.clock != NULL ? c.clock : monotonic_ms;
    reg->clock_user_data = c.clock_user_data;
    reg->access_check = c.access_check;
    reg->access_user_data = c.access_user_data;
    reg->limits = c.limits;
    reg->separator = c.namespace_separator;
    reg->single_threaded = c.single_threaded;
    reg->shard_mask = c.single_threaded ? 0 : PRESENCE__SHARDS - 1;
    reg->seed = c.hash_seed != 0 ? c.hash_seed : presence__random_seed(reg);
    /* Not from hash_seed: a fixed seed must not repeat epochs. */
    reg->epoch_key = presence__random64();
    atomic_init(&reg->last_now_ms, INT64_MIN);
    for (size_t i = 0; i < PRESENCE__SHARDS; i++) {
        presence__mutex_init(reg, &reg->shards[i].lock);
        presence__mutex_init(reg, &reg->cshards[i].lock);
        presence__mutex_init(reg, &reg->ushards[i].lock);
        presence__index_init(&reg->shards[i].channels,
                             offsetof(struct presence__channel, name),
                             offsetof(struct presence__channel, name_len));
        reg->shards[i].chans_free = PRESENCE__SLAB_NONE;
        presence__chaninfo_init(&reg->shards[i].chan_infos);
        presence__slab_init(&reg->shards[i].membership_slab,
                            sizeof(struct presence__membership));
        presence__pool_init(&reg->channel_pools[i], !reg->single_threaded,
                            PRESENCE__POOL_PACKED);
        presence__pool_init(&reg->client_pools[i], !reg->single_threaded,
                            PRESENCE__CLIENT_HOT);
        presence__pool_init(&reg->user_pools[i], !reg->single_threaded,
                            PRESENCE__POOL_PACKED);
    }
    presence__mutex_init(reg, &reg->queue_lock);
    presence__mutex_init(reg, &reg->node_lock);
    presence__clients_init(reg);
    presence__nodes_init(reg);
    presence__events_init(reg);
    rc = presence__namespace_add(reg, "", 0, &c.default_namespace);
    if (rc != PRESENCE_OK) {
        registry_release(reg);
        return rc;
    }
    *out = reg;
    return PRESENCE_OK;
}

int presence_registry_free(presence_registry *reg)
{
    if (reg == NULL) {
        return PRESENCE_OK;
    }
    if (presence__events_dispatching(reg) || atomic_load(&reg->visits) > 0) {
        return PRESENCE_ERR_BUSY;
    }
    registry_release(reg);
    return PRESENCE_OK;
}

int64_t presence_now_ms(presence_registry *reg)
{
    if (reg == NULL) {
        return 0;
    }
    return reg->clock(reg->clock_user_data);
}

int presence_registry_counts(presence_registry *reg, presence_counts *out)
{
    if (reg == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    /* Shard by shard: exact when no other thread changes the registry,
     * else each shard's part is from a slightly different instant. */
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < PRESENCE__SHARDS; i++) {
        presence__mutex_lock(reg, &reg->shards[i].lock);
        /* Idle ones (pinned by handles, no member) are no channels. */
        out->channels +=
            reg->shards[i].channels.count - reg->shards[i].idle;
        out->memberships += atomic_load(&reg->shards[i].memberships);
        presence__mutex_unlock(reg, &reg->shards[i].lock);
        presence__mutex_lock(reg, &reg->cshards[i].lock);
        out->clients += reg->cshards[i].clients.count;
        presence__mutex_unlock(reg, &reg->cshards[i].lock);
        presence__mutex_lock(reg, &reg->ushards[i].lock);
        out->users += reg->ushards[i].users.count;
        presence__mutex_unlock(reg, &reg->ushards[i].lock);
    }
    return PRESENCE_OK;
}
