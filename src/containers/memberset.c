/*
 * The ordered presence set (see memberset.h for the idea).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "containers/memberset.h"
#include "base/alloc.h"
#include "base/bytes.h"
#include "base/hash.h"
#include "containers/records.h"

#define MIN_BITS 2u
/* Grow past 7/8 load, shrink below 1/8: the gap avoids resize ping-pong.
 * The set is ordered, so a lookup stops at the first larger hash and a
 * miss costs about what a hit does; 7/8 rather than 3/4 makes the table
 * 14% smaller on average (docs/PERFORMANCE-HISTORY.md) for a few more slots read
 * per probe. */
#define GROW_NUM 7u
#define GROW_DEN 8u
#define SHRINK_DEN 8u
/* Tables up to this many home slots (2 KiB) are not shrunk: a channel that
 * empties is freed soon anyway, and rebuilding small tables on every
 * leave costs more than the memory it would give back. */
#define SHRINK_MIN_BITS 8u

#define NONE PRESENCE__SLAB_NONE
#define SLOT_BYTES sizeof(struct presence__member_slot)

static struct presence__membership *
member(const struct presence__memberset *set, size_t i)
{
    return presence__slab_at(set->slab, set->slots[i].number);
}

static uint32_t top32(uint64_t hash)
{
    return (uint32_t)(hash >> 32);
}

/*
 * Where slot i's hash stands against `hash`: < 0, 0 or > 0. The tags
 * decide unless they tie, which in a set of n members happens about
 * n / 2^32 of the time; only then is a member's client read.
 */
static int hash_cmp(const struct presence__memberset *set, size_t i,
                    uint64_t hash)
{
    uint32_t hi = top32(hash);
    if (set->slots[i].tag != hi) {
        return set->slots[i].tag < hi ? -1 : 1;
    }
    uint64_t full = member(set, i)->client->hash;
    return full < hash ? -1 : full > hash ? 1 : 0;
}

static size_t home_of(unsigned bits, uint64_t hash)
{
    return bits == 0 ? 0 : (size_t)(hash >> (64u - bits));
}

/* Slot i's home in a table of `bits` (its member's hash's top bits). */
static size_t home_of_slot(const struct presence__memberset *set, size_t i,
                           unsigned bits)
{
    if (bits <= 32) {
        return bits == 0 ? 0 : (size_t)(set->slots[i].tag >> (32u - bits));
    }
    return home_of(bits, member(set, i)->client->hash);
}

/* Spare slots after the last home slot, so that most runs never reach the
 * end of the array. */
static size_t spare_for(unsigned bits)
{
    return 2u + bits / 2u;
}

void presence__memberset_init(struct presence__memberset *set,
                               const struct presence__slab *slab)
{
    memset(set, 0, sizeof *set);
    set->slab = slab;
}

void presence__memberset_free(const presence_allocator *alloc,
                              struct presence__memberset *set)
{
    presence__free(alloc, set->slots, set->nslots * SLOT_BYTES);
    presence__memberset_init(set, set->slab);
}

struct presence__membership *
presence__memberset_at(const struct presence__memberset *set, size_t i)
{
    return set->slots[i].number == NONE ? NULL : member(set, i);
}

/* Empty slots: every byte set, so the number is NONE. */
static void clear_slots(struct presence__member_slot *slots, size_t n)
{
    memset(slots, 0xff, n * sizeof *slots);
}

/* Where each member goes in a table of `bits`, placing them in order: the
 * index after the last one, i.e. the slots needed. */
static size_t placed_end(const struct presence__memberset *set,
                         unsigned bits)
{
    size_t next = 0;
    for (size_t i = 0; i < set->nslots; i++) {
        if (set->slots[i].number != NONE) {
            size_t home = home_of_slot(set, i, bits);
            next = (home > next ? home : next) + 1;
        }
    }
    return next;
}

/* Place every member, in order, into slots (n of them, cleared); false
 * if that leaves the last slot taken (see presence__memberset_prepare). */
static bool place_all(const struct presence__memberset *set, unsigned bits,
                      struct presence__member_slot *slots, size_t n)
{
    size_t next = 0;
    for (size_t i = 0; i < set->nslots; i++) {
        if (set->slots[i].number != NONE) {
            size_t home = home_of_slot(set, i, bits);
            size_t at = home > next ? home : next;
            if (at + 1 >= n) {
                return false;
            }
            slots[at] = set->slots[i];
            next = at + 1;
        }
    }
    return true;
}

/* Move every member into a fresh array of `bits`. Fails without change. */
PRESENCE__NOINLINE
static int rehash(const presence_allocator *alloc, struct presence__memberset *set,
                  unsigned bits)
{
    /* One pass in the common case: the runs end within the spare tail. */
    size_t homes = (size_t)1 << bits;
    size_t nslots = homes + spare_for(bits);
    struct presence__member_slot *slots = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt == 1) { /* a run went past the tail: measure it */
            presence__free(alloc, slots, nslots * SLOT_BYTES);
            size_t end = placed_end(set, bits);
            nslots = (end > homes ? end : homes) + spare_for(bits);
        }
        slots = presence__malloc(alloc, presence__mul_size(nslots, SLOT_BYTES));
        if (slots == NULL) {
            return PRESENCE_ERR_NOMEM;
        }
        clear_slots(slots, nslots);
        if (place_all(set, bits, slots, nslots)) {
            break;
        }
    }
    presence__free(alloc, set->slots, set->nslots * SLOT_BYTES);
    set->slots = slots;
    set->nslots = nslots;
    set->bits = bits;
    return PRESENCE_OK;
}

/* Lengthen the spare tail to nslots. Fails without change. */
PRESENCE__NOINLINE
static int lengthen(const presence_allocator *alloc, struct presence__memberset *set,
                    size_t nslots)
{
    size_t old = set->nslots;
    struct presence__member_slot *slots = presence__realloc(
        alloc, set->slots, old * SLOT_BYTES,
        presence__mul_size(nslots, SLOT_BYTES));
    if (slots == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    clear_slots(slots + old, nslots - old);
    set->slots = slots;
    set->nslots = nslots;
    return PRESENCE_OK;
}

/*
 * The table's last slot is kept empty before every insert: then every
 * run, which starts at a home slot before it, ends at an empty slot
 * within the array, and an insert (which fills one slot, at the end of
 * its run) never needs room it has not got. So making room is one look at
 * the last slot, not a walk along the new member's run. A rehash leaves
 * the last slot empty; an insert that fills it is followed by a longer
 * tail at the next prepare; a removal never fills a slot.
 */
int presence__memberset_prepare(const presence_allocator *alloc,
                                struct presence__memberset *set,
                                uint64_t hash)
{
    (void)hash;
    if (set->slots == NULL) {
        int rc = rehash(alloc, set, MIN_BITS);
        if (rc != PRESENCE_OK) {
            return rc;
        }
    }
    size_t homes = (size_t)1 << set->bits;
    if ((set->count + 1) * GROW_DEN > homes * GROW_NUM) {
        int rc = rehash(alloc, set, set->bits + 1);
        if (rc != PRESENCE_OK) {
            return rc;
        }
    }
    if (set->slots[set->nslots - 1].number == NONE) {
        return PRESENCE_OK;
    }
    /* A run reaches the end of the array: lengthen the tail. */
    return lengthen(alloc, set,
                    presence__add_size(set->nslots, 1 + spare_for(set->bits)));
}

void presence__memberset_prefetch(const struct presence__memberset *set,
                                  uint64_t hash)
{
    if (set->slots != NULL) {
        const char *home = (const char *)&set->slots[home_of(set->bits, hash)];
        PRESENCE__PREFETCH(home);
        PRESENCE__PREFETCH(home + 64);
    }
}

void presence__memberset_insert(struct presence__memberset *set,
                                struct presence__membership *m)
{
    /* One walk: to its place in the run, then on to the run's end,
     * each slot moving one step along (the last slot was empty: see
     * presence__memberset_prepare). */
    uint64_t hash = m->client->hash;
    size_t i = home_of(set->bits, hash);
    while (set->slots[i].number != NONE && hash_cmp(set, i, hash) <= 0) {
        i++;
    }
    struct presence__member_slot carry = {m->slab.slab_index, top32(hash)};
    while (set->slots[i].number != NONE) {
        struct presence__member_slot next = set->slots[i];
        set->slots[i] = carry;
        carry = next;
        i++;
    }
    set->slots[i] = carry;
    set->count++;
}

/* The slot of the client's membership, or SIZE_MAX; a member is read only
 * when its tag matches. */
static size_t find_index(const struct presence__memberset *set,
                         const struct presence__client *client)
{
    uint64_t hash = client->hash;
    uint32_t hi = top32(hash);
    for (size_t i = home_of(set->bits, hash); i < set->nslots; i++) {
        const struct presence__member_slot *slot = &set->slots[i];
        if (slot->number == NONE || slot->tag > hi) {
            break;
        }
        if (slot->tag == hi && member(set, i)->client == client) {
            return i;
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
    uint32_t hi = top32(hash);
    for (size_t i = home_of(set->bits, hash); i < set->nslots; i++) {
        const struct presence__member_slot *slot = &set->slots[i];
        if (slot->number == NONE || slot->tag > hi) {
            break;
        }
        if (slot->tag != hi) {
            continue;
        }
        struct presence__membership *m = member(set, i);
        const struct presence__client *c = m->client;
        if (c->hash == hash && c->id_len == len &&
            presence__bytes_equal(c->id, id, len)) {
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
    return i == SIZE_MAX ? NULL : member(set, i);
}

void presence__memberset_remove(const presence_allocator *alloc,
                                struct presence__memberset *set,
                                struct presence__membership *m)
{
    /* Its slot holds its number: no member is read to find it. */
    uint64_t hash = m->client->hash;
    uint32_t hi = top32(hash);
    uint32_t number = m->slab.slab_index;
    size_t i = home_of(set->bits, hash);
    while (i < set->nslots && set->slots[i].number != number) {
        if (set->slots[i].number == NONE || set->slots[i].tag > hi) {
            return;
        }
        i++;
    }
    if (i == set->nslots) {
        return;
    }
    /* Backward shift: pull the rest of the run back while its members are
     * away from their home slot; order is kept. */
    size_t j = i;
    while (j + 1 < set->nslots && set->slots[j + 1].number != NONE &&
           home_of_slot(set, j + 1, set->bits) <= j) {
        set->slots[j] = set->slots[j + 1];
        j++;
    }
    clear_slots(&set->slots[j], 1);
    set->count--;
    if (set->count == 0) {
        presence__memberset_free(alloc, set);
        return;
    }
    size_t homes = (size_t)1 << set->bits;
    if (set->bits > SHRINK_MIN_BITS && set->count * SHRINK_DEN < homes) {
        /* Giving memory back is optional: on failure keep the big table. */
        (void)rehash(alloc, set, set->bits - 1);
    }
}

/* Members, their clients and their users are scattered over memory, each
 * found from the one before. A scan takes the members in blocks: one pass
 * over the slots notes each member's address and starts loading it; then
 * a second pass visits them, loading each one's client CLIENT_AHEAD
 * members ahead (its member has arrived by then) and its user USER_AHEAD
 * ahead. Before the first visit of a block its first clients and users
 * are loaded the same way, each step's loads overlapping: without that
 * they came one by one. Two plain passes cost fewer instructions a member
 * than one pass juggling all three steps. */
#define SCAN_BLOCK 256u
#define CLIENT_AHEAD 16u
#define USER_AHEAD 8u

/* Members from slot *at on, at most `want`, into block; *at moves past
 * the last slot read. */
static size_t scan_gather(const struct presence__memberset *set, size_t *at,
                          size_t want, struct presence__membership **block)
{
    size_t n = 0;
    size_t i = *at;
    for (; i < set->nslots && n < want; i++) {
        uint32_t number = set->slots[i].number;
        if (number != NONE) {
            struct presence__membership *m =
                presence__slab_at(set->slab, number);
            PRESENCE__PREFETCH(m);
            block[n++] = m;
        }
    }
    *at = i;
    return n;
}

uint64_t presence__memberset_scan(const struct presence__memberset *set,
                                  uint64_t cursor, size_t limit,
                                  presence__member_visit_fn visit, void *ctx)
{
    if (set->count == 0) {
        return 0;
    }
    size_t at = home_of(set->bits, cursor);
    /* Slots are in hash order: past the first at or above the cursor,
     * every one is. */
    while (cursor != 0 && at < set->nslots &&
           (set->slots[at].number == NONE || hash_cmp(set, at, cursor) < 0)) {
        at++;
    }
    struct presence__membership *block[SCAN_BLOCK];
    size_t taken = 0;
    const struct presence__membership *last = NULL;
    while (at < set->nslots) {
        /* One past the limit: a page ends only where the hash changes. */
        size_t want = limit - taken < SCAN_BLOCK ? limit - taken + 1
                                                 : SCAN_BLOCK;
        size_t n = scan_gather(set, &at, want, block);
        for (size_t k = 0; k < n && k < CLIENT_AHEAD; k++) {
            PRESENCE__PREFETCH(block[k]->client);
        }
        for (size_t k = 0; k < n && k < USER_AHEAD; k++) {
            PRESENCE__PREFETCH(block[k]->client->user);
        }
        for (size_t k = 0; k < n; k++) {
            if (k + CLIENT_AHEAD < n) {
                PRESENCE__PREFETCH(block[k + CLIENT_AHEAD]->client);
            }
            if (k + USER_AHEAD < n) {
                PRESENCE__PREFETCH(block[k + USER_AHEAD]->client->user);
            }
            struct presence__membership *m = block[k];
            if (taken >= limit) {
                /* Full hashes only at the page's end: a page never ends
                 * between two members of equal hash. */
                uint64_t hash = m->client->hash;
                if (last == NULL || hash != last->client->hash) {
                    return hash; /* m is the first member of the next page */
                }
            }
            visit(m, ctx);
            taken++;
            last = m;
        }
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
        if (set->slots[i].number != NONE && hash_cmp(set, i, cursor) >= 0) {
            return member(set, i);
        }
    }
    return NULL;
}
