/*
 * Node ids of remote clients (presence_remote_join()), interned: a node's
 * id is stored once however many clients it has, and a client records its
 * node as a pointer, so that telling a local client from a remote one is
 * a pointer test and telling two nodes apart a pointer compare.
 *
 * The table has a lock of its own, a leaf (see domain.h): it is taken
 * when a remote client is created or freed and by the node-wide calls,
 * never on a local client's path.
 *
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"

static size_t node_size(size_t id_len)
{
    return sizeof(struct presence__node) + id_len + 1;
}

void presence__nodes_init(presence_registry *reg)
{
    presence__index_init(&reg->nodes, offsetof(struct presence__node, id),
                         offsetof(struct presence__node, id_len));
}

void presence__nodes_free(presence_registry *reg)
{
    /* The clients went without their references: free what is left. */
    struct presence__index *idx = &reg->nodes;
    for (size_t i = 0; i < presence__index_slots(idx); i++) {
        struct presence__node *node = presence__index_at(idx, i);
        if (node != NULL) {
            presence__free(&reg->alloc, node, node_size(node->id_len));
        }
    }
    presence__index_free(&reg->alloc, idx);
}

int presence__node_check(presence_registry *reg, const char *id,
                         struct presence__nodename *out)
{
    int rc = presence__check_hash_name(reg, id, reg->limits.client_id_max,
                                       false, &out->len, &out->hash);
    out->id = id;
    return rc;
}

struct presence__node *
presence__node_find(presence_registry *reg,
                    const struct presence__nodename *name)
{
    presence__mutex_lock(reg, &reg->node_lock);
    struct presence__node *node =
        presence__index_find(&reg->nodes, name->hash, name->id, name->len);
    if (node != NULL) {
        node->refs++;
    }
    presence__mutex_unlock(reg, &reg->node_lock);
    return node;
}

PRESENCE__NOINLINE
int presence__node_intern(presence_registry *reg,
                          const struct presence__nodename *name,
                          struct presence__node **out)
{
    int rc = PRESENCE_OK;
    presence__mutex_lock(reg, &reg->node_lock);
    struct presence__node *node =
        presence__index_find(&reg->nodes, name->hash, name->id, name->len);
    if (node == NULL) {
        rc = presence__index_prepare(&reg->alloc, &reg->nodes);
        if (rc == PRESENCE_OK) {
            node = presence__malloc(&reg->alloc, node_size(name->len));
            rc = node != NULL ? PRESENCE_OK : PRESENCE_ERR_NOMEM;
        }
        if (rc == PRESENCE_OK) {
            node->hash = name->hash;
            node->refs = 0;
            node->id_len = (uint32_t)name->len;
            memcpy(node->id, name->id, name->len);
            node->id[name->len] = '\0';
            presence__index_insert(&reg->nodes, node->hash, node);
        }
    }
    if (rc == PRESENCE_OK) {
        node->refs++;
        *out = node;
    }
    presence__mutex_unlock(reg, &reg->node_lock);
    return rc;
}

void presence__node_ref(presence_registry *reg, struct presence__node *node)
{
    presence__mutex_lock(reg, &reg->node_lock);
    node->refs++;
    presence__mutex_unlock(reg, &reg->node_lock);
}

PRESENCE__NOINLINE
void presence__node_unref(presence_registry *reg, struct presence__node *node)
{
    presence__mutex_lock(reg, &reg->node_lock);
    bool gone = --node->refs == 0;
    if (gone) {
        presence__index_remove(&reg->alloc, &reg->nodes, node->hash, node);
    }
    presence__mutex_unlock(reg, &reg->node_lock);
    if (gone) {
        presence__free(&reg->alloc, node, node_size(node->id_len));
    }
}
