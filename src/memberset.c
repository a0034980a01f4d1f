/*
 * The ordered presence set (see memberset.h for the idea).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "internal.h"

#define MIN_BITS 2u
/* Grow past 3/4 load, shrink below 1/8: the gap avoids resize ping-pong. */
#define GROW_NUM 3u
#define GROW_DEN 4u
#define SHRINK_DEN 8u
/* Tables up to this many home slots (2 KiB) are not shrunk: a channel that
 * empties is freed soon anyway, and rebuilding small tables on every
 * leave costs more than the memory it would give back. */
#define SHRINK_MIN_BITS 8u

static uint64_t slot_hash(const struct presence__membership *m)
{
    return m->hash;
}

static size_t home_of(unsigned bits, uint64_t hash)
{
    return bits == 0 ? 0 : (size_t)(hash >> (64u - bits));
}

/* Spare slots after the last home slot, so that most runs never reach the
 * end of the array. */
static size_t spare_for(unsigned bits)
{
    return 4u + bits;
}

void presence__memberset_init(struct presence__memberset *set)
{
    memset(set, 0, sizeof *set);
}

void presence__memberset_free(presence_registry *reg,
                              struct presence__memberset *set)
{
    presence__free(reg, set->slots, set->nslots * sizeof *set->slots);
    presence__memberset_init(set);
}

/* Where each member goes in a table of `bits`, placing them in order: the
 * index after the last one, i.e. the slots needed. */
static size_t placed_end(const struct presence__memberset *set,
                         unsigned bits)
{
    size_t next = 0;
    for (size_t i = 0; i < set->nslots; i++) {
        if (set->slots[i] != NULL) {
            size_t home = home_of(bits, slot_hash(set->slots[i]));
            next = (home > next ? home : next) + 1;
        }
    }
    return next;
}

/* Move every member into a fresh array of `bits`. Fails without change. */
static int rehash(presence_registry *reg, struct presence__memberset *set,
                  unsigned bits)
{
    size_t homes = (size_t)1 << bits;
    size_t end = placed_end(set, bits);
    size_t nslots = (end > homes ? end : homes) + spare_for(bits);
    size_t bytes = presence__mul_size(nslots, sizeof *set->slots);
    struct presence__membership **slots = presence__malloc(reg, bytes);
    if (slots == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(slots, 0, bytes);
    size_t next = 0;
    for (size_t i = 0; i < set->nslots; i++) {
        struct presence__membership *m = set->slots[i];
        if (m != NULL) {
            size_t home = home_of(bits, slot_hash(m));
            size_t at = home > next ? home : next;
            slots[at] = m;
            next = at + 1;
        }
    }
    presence__free(reg, set->slots, set->nslots * sizeof *set->slots);
    set->slots = slots;
    set->nslots = nslots;
    set->bits = bits;
    return PRESENCE_OK;
}

/* The first empty slot at or after the insertion point of `hash`, or
 * nslots if the run reaches the end. */
static size_t run_end(const struct presence__memberset *set, uint64_t hash)
{
    size_t i = home_of(set->bits, hash);
    while (i < set->nslots && set->slots[i] != NULL) {
        i++;
    }
    return i;
}

int presence__memberset_prepare(presence_registry *reg,
                                struct presence__memberset *set,
                                uint64_t hash)
{
    if (set->slots == NULL) {
        int rc = rehash(reg, set, MIN_BITS);
        if (rc != PRESENCE_OK) {
            return rc;
        }
    }
    size_t homes = (size_t)1 << set->bits;
    if ((set->count + 1) * GROW_DEN > homes * GROW_NUM) {
        int rc = rehash(reg, set, set->bits + 1);
        if (rc != PRESENCE_OK) {
            return rc;
        }
    }
    size_t end = run_end(set, hash);
    if (end < set->nslots) {
        return PRESENCE_OK;
    }
    /* The run reaches the end of the array: lengthen the tail. */
    size_t nslots = presence__add_size(end, 1 + spare_for(set->bits));
    struct presence__membership **slots = presence__realloc(
        reg, set->slots, set->nslots * sizeof *slots,
        presence__mul_size(nslots, sizeof *slots));
    if (slots == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(slots + set->nslots, 0, (nslots - set->nslots) * sizeof *slots);
    set->slots = slots;
    set->nslots = nslots;
    return PRESENCE_OK;
}

void presence__memberset_insert(struct presence__memberset *set,
                                struct presence__membership *m)
{
    uint64_t hash = slot_hash(m);
    size_t i = home_of(set->bits, hash);
    while (set->slots[i] != NULL && slot_hash(set->slots[i]) <= hash) {
        i++;
    }
    size_t end = i;
    while (set->slots[end] != NULL) {
        end++;
    }
    memmove(&set->slots[i + 1], &set->slots[i], (end - i) * sizeof *set->slots);
    set->slots[i] = m;
    set->count++;
}

static size_t find_index(const struct presence__memberset *set,
                         const struct presence__client *client)
{
    uint64_t hash = client->hash;
    for (size_t i = home_of(set->bits, hash); i < set->nslots; i++) {
        const struct presence__membership *m = set->slots[i];
        if (m == NULL) {
            break;
        }
        if (m->client == client) {
            return i;
        }
        if (slot_hash(m) > hash) {
            break;
        }
    }
    return SIZE_MAX;
}

struct presence__membership *
presence__memberset_find_id(const struct presence__memberset *set,
                            uint64_t hash, const char *id, size_t len)
{
    if (set->count == 0) {
        return NULL;
    }
    for (size_t i = home_of(set->bits, hash); i < set->nslots; i++) {
        struct presence__membership *m = set->slots[i];
        if (m == NULL || slot_hash(m) > hash) {
            break;
        }
        if (m->hash != hash) {
            continue;
        }
        const struct presence__client *c = m->client;
        if (c->id_len == len && memcmp(c->id, id, len) == 0) {
            return m;
        }
    }
    return NULL;
}

struct presence__membership *
presence__memberset_find(const struct presence__memberset *set,
                         const struct presence__client *client)
{
    if (set->count == 0) {
        return NULL;
    }
    size_t i = find_index(set, client);
    return i == SIZE_MAX ? NULL : set->slots[i];
}

void presence__memberset_remove(presence_registry *reg,
                                struct presence__memberset *set,
                                struct presence__membership *m)
{
    size_t i = find_index(set, m->client);
    if (i == SIZE_MAX) {
        return;
    }
    /* Backward shift: pull the rest of the run back while its members are
     * away from their home slot; order is kept. */
    size_t j = i;
    while (j + 1 < set->nslots && set->slots[j + 1] != NULL &&
           home_of(set->bits, slot_hash(set->slots[j + 1])) <= j) {
        set->slots[j] = set->slots[j + 1];
        j++;
    }
    set->slots[j] = NULL;
    set->count--;
    if (set->count == 0) {
        presence__memberset_free(reg, set);
        return;
    }
    size_t homes = (size_t)1 << set->bits;
    if (set->bits > SHRINK_MIN_BITS && set->count * SHRINK_DEN < homes) {
        /* Giving memory back is optional: on failure keep the big table. */
        (void)rehash(reg, set, set->bits - 1);
    }
}

uint64_t presence__memberset_scan(const struct presence__memberset *set,
                                  uint64_t cursor, size_t limit,
                                  presence__member_visit_fn visit, void *ctx)
{
    if (set->count == 0) {
        return 0;
    }
    size_t taken = 0;
    uint64_t last = 0;
    for (size_t i = home_of(set->bits, cursor); i < set->nslots; i++) {
        struct presence__membership *m = set->slots[i];
        if (m == NULL) {
            continue;
        }
        uint64_t hash = slot_hash(m);
        if (hash < cursor) {
            continue;
        }
        if (taken >= limit && hash != last) {
            /* m is the first member of the next page. */
            return hash;
        }
        visit(m, ctx);
        taken++;
        last = hash;
    }
    return 0;
}

struct presence__membership *
presence__memberset_lower_bound(const struct presence__memberset *set,
                                uint64_t cursor)
{
    if (set->count == 0) {
        return NULL;
    }
    for (size_t i = home_of(set->bits, cursor); i < set->nslots; i++) {
        struct presence__membership *m = set->slots[i];
        if (m != NULL && slot_hash(m) >= cursor) {
            return m;
        }
    }
    return NULL;
}
