/*
 * The registry handle: configuration, lifecycle, locking and time.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>
#include <time.h>

#include "internal.h"

/* Room for this many events is allocated up front, so that ordinary
 * operations queue their events without allocating. */
#define INITIAL_EVENT_ROOM 256u

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
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int config_check(const presence_config *c)
{
    const presence_allocator *a = &c->allocator;
    bool any = a->malloc_fn != NULL || a->free_fn != NULL ||
               a->realloc_fn != NULL;
    if (any && (a->malloc_fn == NULL || a->free_fn == NULL)) {
        return PRESENCE_ERR_INVALID;
    }
    if (c->namespace_separator <= 0x20 || c->namespace_separator >= 0x7f) {
        return PRESENCE_ERR_INVALID;
    }
    const presence_limits *l = &c->limits;
    if (l->channel_name_max == 0 || l->client_id_max == 0 ||
        l->user_id_max == 0) {
        return PRESENCE_ERR_INVALID;
    }
    return presence__namespace_options_check(&c->default_namespace);
}

static void registry_release(presence_registry *reg)
{
    /* Queued events first: they hold references on the rest. */
    presence__events_free(reg);
    presence__channels_free(reg);
    presence__clients_free(reg);
    presence__namespaces_free(reg);
    if (!reg->single_threaded) {
        pthread_mutex_destroy(&reg->lock);
    }
    presence_allocator alloc = reg->alloc;
    alloc.free_fn(reg, sizeof *reg, alloc.user_data);
}

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
    presence_registry *reg = alloc.malloc_fn(sizeof *reg, alloc.user_data);
    if (reg == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(reg, 0, sizeof *reg);
    reg->alloc = alloc;
    reg->clock = c.clock != NULL ? c.clock : monotonic_ms;
    reg->clock_user_data = c.clock_user_data;
    reg->access_check = c.access_check;
    reg->access_user_data = c.access_user_data;
    reg->limits = c.limits;
    reg->separator = c.namespace_separator;
    reg->single_threaded = c.single_threaded;
    reg->seed = c.hash_seed != 0 ? c.hash_seed : presence__random_seed(reg);
    presence__channels_init(reg);
    presence__clients_init(reg);
    reg->subs_tail = &reg->subs;
    reg->next_sub_id = 1;
    reg->last_now_ms = INT64_MIN;
    if (!reg->single_threaded && pthread_mutex_init(&reg->lock, NULL) != 0) {
        alloc.free_fn(reg, sizeof *reg, alloc.user_data);
        return PRESENCE_ERR_NOMEM;
    }
    rc = presence__events_reserve(reg, INITIAL_EVENT_ROOM);
    if (rc == PRESENCE_OK) {
        rc = presence__namespace_add(reg, "", 0, &c.default_namespace);
    }
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
    presence__lock(reg);
    bool busy = reg->dispatching;
    presence__unlock(reg);
    if (busy) {
        return PRESENCE_ERR_BUSY;
    }
    registry_release(reg);
    return PRESENCE_OK;
}

void presence__lock(presence_registry *reg)
{
    if (!reg->single_threaded) {
        pthread_mutex_lock(&reg->lock);
    }
}

void presence__unlock(presence_registry *reg)
{
    if (!reg->single_threaded) {
        pthread_mutex_unlock(&reg->lock);
    }
}

int64_t presence__now(presence_registry *reg)
{
    int64_t now = reg->clock(reg->clock_user_data);
    if (now < reg->last_now_ms) {
        now = reg->last_now_ms;
    }
    reg->last_now_ms = now;
    return now;
}

int64_t presence_now_ms(presence_registry *reg)
{
    if (reg == NULL) {
        return 0;
    }
    presence__lock(reg);
    int64_t now = presence__now(reg);
    presence__unlock(reg);
    return now;
}

int presence_registry_counts(presence_registry *reg, presence_counts *out)
{
    if (reg == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    presence__lock(reg);
    out->channels = reg->channels.count;
    out->clients = reg->clients.count;
    out->users = reg->users.count;
    out->memberships = reg->membership_count;
    presence__unlock(reg);
    return PRESENCE_OK;
}
