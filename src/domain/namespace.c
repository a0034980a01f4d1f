/*
 * Namespaces: the options their channels share. Created at run time,
 * never removed (a channel keeps a pointer to its namespace).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"

static void options_defaults(presence_namespace_options *o)
{
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->presence = true;
    o->join_leave = true;
    o->ttl_ms = 0;
    o->max_members = 0;
}

void presence_namespace_options_init_sized(presence_namespace_options *options,
                                           size_t struct_size)
{
    if (options == NULL || struct_size < sizeof(size_t)) {
        return;
    }
    presence_namespace_options defaults;
    options_defaults(&defaults);
    defaults.struct_size = struct_size;
    memcpy(options, &defaults,
           struct_size < sizeof defaults ? struct_size : sizeof defaults);
}

void presence__namespace_options_copy(presence_namespace_options *dst,
                                      const presence_namespace_options *src)
{
    options_defaults(dst);
    size_t n = src->struct_size < sizeof *dst ? src->struct_size : sizeof *dst;
    memcpy(dst, src, n);
    dst->struct_size = sizeof *dst;
}

int presence__namespace_options_check(const presence_namespace_options *o)
{
    if (o->struct_size < sizeof(size_t) + sizeof(bool)) {
        return PRESENCE_ERR_INVALID; /* not filled by the init macro */
    }
    presence_namespace_options copy;
    presence__namespace_options_copy(&copy, o);
    return copy.ttl_ms < 0 || copy.leave_grace_ms < 0 ||
                   copy.history_size > PRESENCE_HISTORY_SIZE_MAX
               ? PRESENCE_ERR_INVALID
               : PRESENCE_OK;
}

struct presence__namespace *
presence__namespace_find(presence_registry *reg, const char *name, size_t len)
{
    struct presence__namespace *ns = NULL;
    HASH_FIND(hh, reg->namespaces, name, len, ns);
    return ns;
}

int presence__namespace_add(presence_registry *reg, const char *name,
                            size_t len, const presence_namespace_options *o)
{
    size_t size = presence__add_size(sizeof(struct presence__namespace),
                                     presence__add_size(len, 1));
    struct presence__namespace *ns = presence__malloc(&reg->alloc, size);
    if (ns == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(ns, 0, sizeof *ns);
    for (size_t i = 0; i < PRESENCE__SHARDS; i++) {
        ns->touch[i].head = ns->touch[i].tail = PRESENCE__SLAB_NONE;
    }
    presence__grace_lists_init(ns);
    presence__namespace_options_copy(&ns->options, o);
    memcpy(ns->name, name, len);
    ns->name[len] = '\0';
    ns->name_len = len;
    HASH_ADD(hh, reg->namespaces, name, len, ns);
    if (!PRESENCE_HASH_ADDED(ns)) {
        presence__free(&reg->alloc, ns, size);
        return PRESENCE_ERR_NOMEM;
    }
    if (ns->options.ttl_ms > 0) {
        atomic_fetch_add(&reg->ttl_namespaces, 1);
    }
    if (ns->options.leave_grace_ms > 0) {
        atomic_fetch_add(&reg->grace_namespaces, 1);
    }
    return PRESENCE_OK;
}

void presence__namespaces_free(presence_registry *reg)
{
    struct presence__namespace *ns, *tmp;
    HASH_ITER(hh, reg->namespaces, ns, tmp)
    {
        HASH_DEL(reg->namespaces, ns);
        presence__free(&reg->alloc, ns, sizeof *ns + ns->name_len + 1);
    }
}

int presence_namespace_set(presence_registry *reg, const char *name,
                           const presence_namespace_options *options)
{
    if (reg == NULL || options == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t len;
    int rc = presence__check_namespace_name(name, &len);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    rc = presence__namespace_options_check(options);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    presence_namespace_options next;
    presence__namespace_options_copy(&next, options);
    struct presence__history_plan logs = {0};
    /* Readers hold one channel shard; a change holds them all. */
    presence__lock_all_shards(reg);
    struct presence__namespace *ns = presence__namespace_find(reg, name, len);
    bool closing = false;
    if (ns == NULL) {
        rc = presence__namespace_add(reg, name, len, &next);
    } else {
        /* Presence off: close what its channels still hold (also after an
         * earlier attempt that ran out of memory). */
        closing = !next.presence;
        /* Keep events on while its channels close, so they announce it. */
        bool join_leave = next.join_leave;
        if (closing) {
            next.join_leave = ns->options.join_leave;
        }
        /* A new history_size makes its logs, and a TTL turned on orders
         * the memberships by their touch times; either can run out of
         * memory: then nothing changes. */
        rc = presence__history_prepare(reg, ns, next.history_size, &logs);
        if (rc == PRESENCE_OK && ns->options.ttl_ms <= 0 && next.ttl_ms > 0) {
            rc = presence__touch_order_build(reg, ns);
            if (rc != PRESENCE_OK) {
                presence__history_abort(&logs);
            }
        }
        if (rc == PRESENCE_OK) {
            presence__history_commit(ns, &logs);
            if ((ns->options.ttl_ms > 0) != (next.ttl_ms > 0)) {
                if (next.ttl_ms > 0) {
                    atomic_fetch_add(&reg->ttl_namespaces, 1);
                } else {
                    atomic_fetch_sub(&reg->ttl_namespaces, 1);
                    presence__touch_order_drop(ns);
                }
            }
            if ((ns->options.leave_grace_ms > 0) != (next.leave_grace_ms > 0)) {
                if (next.leave_grace_ms > 0) {
                    atomic_fetch_add(&reg->grace_namespaces, 1);
                } else {
                    atomic_fetch_sub(&reg->grace_namespaces, 1);
                }
            }
            ns->options = next;
        } else {
            closing = false;
        }
        next.join_leave = join_leave;
    }
    presence__unlock_all_shards(reg);
    presence__history_finish(&logs);
    if (closing) {
        /* No join gets in any more; empty what is there. */
        rc = presence__namespace_drain(reg, ns);
        presence__lock_all_shards(reg);
        ns->options.join_leave = next.join_leave;
        presence__unlock_all_shards(reg);
    }
    presence__events_dispatch(reg);
    return rc;
}

int presence_namespace_get(presence_registry *reg, const char *name,
                           presence_namespace_options *out)
{
    if (reg == NULL || out == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t len;
    int rc = presence__check_namespace_name(name, &len);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    size_t out_size = out->struct_size;
    /* Any one channel shard keeps namespaces from changing. */
    presence__mutex_lock(reg, &reg->shards[0].lock);
    struct presence__namespace *ns = presence__namespace_find(reg, name, len);
    if (ns == NULL) {
        rc = PRESENCE_ERR_UNKNOWN_NAMESPACE;
    } else {
        /* Write no more than the caller's struct holds. */
        size_t n = out_size >= sizeof(size_t) && out_size < sizeof ns->options
                       ? out_size
                       : sizeof ns->options;
        memcpy(out, &ns->options, n);
        out->struct_size = n;
    }
    presence__mutex_unlock(reg, &reg->shards[0].lock);
    return rc;
}
