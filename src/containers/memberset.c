/*
 * The ordered presence set (see memberset.h for the idea).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "containers/memberset.h"
#include "base/alloc.h"
#include "base/bytes.h"
#include "base/hash.h" /* PRESENCE__PREFETCH, PRESENCE__NOINLINE */
#include "containers/records.h"
#include "containers/usercount.h"

#define MIN_BITS 2u
/* Home slots are a user key's top bits: 2^31 of them at most, so that
 * the slots' count fits 32 bits. */
#define MAX_BITS 31u
/* Grow past 7/8 load, shrink below 1/8: the gap avoids resize ping-pong.
 * The set is ordered, so a lookup stops at the first larger key and a
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

/* Members a user keeps side by side; the rest of a crowd user's are
 * placed apart (memberset.h). A probe for a client reads at most this
 * many of its user's members. */
#define GROUP_MAX 8u

#define NONE PRESENCE__SLAB_NONE
/* In a slot's number: a member placed apart, by its client's hash (slab
 * numbers take 26 bits). Empty slots have it too: test taken() first. */
#define APART 0x80000000u
#define SLOT_BYTES sizeof(struct presence__member_slot)

static struct presence__membership *
member(const struct presence__memberset *set, size_t i)
{
    return presence__slab_at(set->slab, set->slots[i].number & ~APART);
}

/* The order's key: the slot's tag, then its number (flag included). */
static uint64_t key_of(uint32_t tag, uint32_t number)
{
    return (uint64_t)tag << 32 | number;
}

static uint64_t key_at(const struct presence__memberset *set, size_t i)
{
    return key_of(set->slots[i].tag, set->slots[i].number);
}

static bool taken(const struct presence__memberset *set, size_t i)
{
    return set->slots[i].number != NONE;
}

static size_t home_of(unsigned bits, uint32_t user_key)
{
    /* The key's top `bits` bits, 0 for a table of one home (bits 0). */
    return (size_t)(((uint64_t)user_key << bits) >> 32);
}

/* Slot i's home in a table of `bits`. */
static size_t home_of_slot(const struct presence__memberset *set, size_t i,
                           unsigned bits)
{
    return home_of(bits, set->slots[i].tag);
}

static bool apart(const struct presence__memberset *set, size_t i)
{
    return (set->slots[i].number & APART) != 0;
}

/* Whether slot i holds a member of this user's group. The group is side
 * by side, so looking at a member's neighbours tells whether it is the
 * group's only one. */
static bool user_at(const struct presence__memberset *set, size_t i,
                    uint32_t user_key)
{
    /* Taken and not apart: empty slots have the top bit too. */
    return i < set->nslots && set->slots[i].number < APART &&
           set->slots[i].tag == user_key;
}

/* The tag of a member placed apart: its client's hash's top bits. */
static uint32_t apart_tag(const struct presence__client *client)
{
    return (uint32_t)(client->hash >> 32);
}

/* How many of the user's members the set holds apart. */
static size_t apart_count(const struct presence__memberset *set,
                          const struct presence__user *user)
{
    return set->crowd != NULL ? presence__usercount_get(set->crowd, user) : 0;
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
    if (set->crowd != NULL) {
        presence__usercount_free(alloc, set->crowd);
        presence__free(alloc, set->crowd, sizeof *set->crowd);
    }
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
        if (taken(set, i)) {
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
        if (taken(set, i)) {
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
    set->nslots = (uint32_t)nslots; /* homes <= 2^31, runs end before 2^32 */
    set->bits = bits;
    return PRESENCE_OK;
}

/* Lengthen the spare tail to nslots. Fails without change. */
PRESENCE__NOINLINE
static int lengthen(const presence_allocator *alloc, struct presence__memberset *set,
                    size_t nslots)
{
    size_t old = set->nslots;
    if (nslots > UINT32_MAX) {
        return PRESENCE_ERR_NOMEM;
    }
    struct presence__member_slot *slots = presence__realloc(
        alloc, set->slots, old * SLOT_BYTES,
        presence__mul_size(nslots, SLOT_BYTES));
    if (slots == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    clear_slots(slots + old, nslots - old);
    set->slots = slots;
    set->nslots = (uint32_t)nslots;
    return PRESENCE_OK;
}

/* Where the user's group starts, or would: the first slot from the
 * user's home that is empty or has a tag not below the user's key. Keys
 * are (tag, number), so a group comes before any slot placed apart under
 * the same tag, whose number has the top bit. */
static size_t group_place(const struct presence__memberset *set,
                          uint32_t user_key)
{
    size_t i = home_of(set->bits, user_key);
    while (i < set->nslots && taken(set, i) && set->slots[i].tag < user_key) {
        i++;
    }
    return i;
}

/* The first slot of the user's group, or SIZE_MAX. */
static size_t user_start(const struct presence__memberset *set,
                         uint32_t user_key)
{
    size_t i = group_place(set, user_key);
    return user_at(set, i, user_key) ? i : SIZE_MAX;
}

/* Whether the user's group is full: its members are side by side, so its
 * GROUP_MAX-th slot tells. */
static bool group_full(const struct presence__memberset *set, size_t start,
                       uint32_t user_key)
{
    return start != SIZE_MAX && user_at(set, start + GROUP_MAX - 1, user_key);
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
                                struct presence__memberset *set)
{
    if (set->slots == NULL) {
        int rc = rehash(alloc, set, MIN_BITS);
        if (rc != PRESENCE_OK) {
            return rc;
        }
    }
    size_t homes = (size_t)1 << set->bits;
    if ((set->count + 1) * GROW_DEN > homes * GROW_NUM) {
        if (set->bits == MAX_BITS) {
            return PRESENCE_ERR_NOMEM; /* past 1.8G members */
        }
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

/* Room in the crowd table for one more user (a member about to go
 * apart); fails without change. */
static int crowd_room(const presence_allocator *alloc,
                      struct presence__memberset *set)
{
    if (set->crowd == NULL) {
        set->crowd = presence__malloc(alloc, sizeof *set->crowd);
        if (set->crowd == NULL) {
            return PRESENCE_ERR_NOMEM;
        }
        presence__usercount_init(set->crowd);
    }
    return presence__usercount_prepare(alloc, set->crowd);
}

void presence__memberset_prefetch(const struct presence__memberset *set,
                                  uint32_t user_key)
{
    if (set->slots != NULL) {
        const struct presence__member_slot *home =
            &set->slots[home_of(set->bits, user_key)];
        PRESENCE__PREFETCH(home);
        PRESENCE__PREFETCH_PAST(home, PRESENCE__LINE_BYTES);
    }
}

/* Put a slot in its place, found by walking from slot i: one walk to its
 * place in the run, then on to the run's end, each slot moving one step
 * along (the last slot was empty: see presence__memberset_prepare). */
static void place_from(struct presence__memberset *set, size_t i,
                       struct presence__member_slot carry)
{
    uint64_t key = key_of(carry.tag, carry.number);
    while (taken(set, i) && key_at(set, i) < key) {
        i++;
    }
    while (taken(set, i)) {
        struct presence__member_slot next = set->slots[i];
        set->slots[i] = carry;
        carry = next;
        i++;
    }
    set->slots[i] = carry;
    set->count++;
}

int presence__memberset_insert(const presence_allocator *alloc,
                               struct presence__memberset *set,
                               struct presence__membership *m,
                               const struct presence__client *client,
                               bool *first)
{
    uint32_t user_key = client->user_key;
    uint32_t number = m->slab.slab_index;
    size_t at = group_place(set, user_key);
    size_t start = user_at(set, at, user_key) ? at : SIZE_MAX;
    if (group_full(set, start, user_key)) {
        /* A crowd: this one goes apart, by its client's hash. */
        int rc = crowd_room(alloc, set);
        if (rc != PRESENCE_OK) {
            return rc;
        }
        presence__usercount_inc(set->crowd, client->user);
        struct presence__member_slot slot = {number | APART, apart_tag(client)};
        place_from(set, home_of(set->bits, slot.tag), slot);
        *first = false;
        return PRESENCE_OK;
    }
    *first = start == SIZE_MAX && apart_count(set, client->user) == 0;
    place_from(set, at, (struct presence__member_slot){number, user_key});
    return PRESENCE_OK;
}

/* The slot holding this key, or SIZE_MAX (keys are unique and sorted:
 * the walk stops at the first one not below it). */
static size_t slot_at_key(const struct presence__memberset *set, uint32_t tag,
                          uint32_t number)
{
    uint64_t key = key_of(tag, number);
    for (size_t i = home_of(set->bits, tag); i < set->nslots && taken(set, i);
         i++) {
        uint64_t here = key_at(set, i);
        if (here >= key) {
            return here == key ? i : SIZE_MAX;
        }
    }
    return SIZE_MAX;
}

/* Where a member's slot is, or SIZE_MAX: in its user's group, else apart
 * (its number is in the slot: no member is read). */
static size_t slot_of_member(const struct presence__memberset *set,
                             const struct presence__membership *m)
{
    const struct presence__client *client = m->client;
    uint32_t number = m->slab.slab_index;
    size_t i = slot_at_key(set, client->user_key, number);
    if (i == SIZE_MAX && set->crowd != NULL) {
        i = slot_at_key(set, apart_tag(client), number | APART);
    }
    return i;
}

/* The membership among the members placed apart under the client hash's
 * tag for which match() holds, or NULL. */
static struct presence__membership *
find_apart(const struct presence__memberset *set, uint64_t hash,
           bool (*match)(const struct presence__membership *m,
                          const void *what),
           const void *what)
{
    uint32_t tag = (uint32_t)(hash >> 32);
    for (size_t i = home_of(set->bits, tag);
         i < set->nslots && taken(set, i) && set->slots[i].tag <= tag; i++) {
        if (set->slots[i].tag == tag && apart(set, i) &&
            match(member(set, i), what)) {
            return member(set, i);
        }
    }
    return NULL;
}

static bool is_client(const struct presence__membership *m, const void *what)
{
    return m->client == what;
}

struct id_wanted {
    uint64_t hash;
    const char *id;
    size_t len;
};

static bool has_id(const struct presence__membership *m, const void *what)
{
    const struct id_wanted *w = what;
    const struct presence__client *c = m->client;
    return c->hash == w->hash && c->id_len == w->len &&
           presence__bytes_equal(c->id, w->id, w->len);
}

/* The member of the user's group for which match() holds, else the one
 * apart under the client hash's tag when `apart_too` (only the user's
 * members are read). */
static struct presence__membership *
find_member(const struct presence__memberset *set, uint32_t user_key,
            uint64_t hash, bool apart_too,
            bool (*match)(const struct presence__membership *m,
                          const void *what),
            const void *what)
{
    if (set->count == 0) {
        return NULL;
    }
    size_t i = user_start(set, user_key);
    for (; i != SIZE_MAX && user_at(set, i, user_key); i++) {
        if (match(member(set, i), what)) {
            return member(set, i);
        }
    }
    return apart_too ? find_apart(set, hash, match, what) : NULL;
}

struct presence__membership *
presence__memberset_find(const struct presence__memberset *set,
                         const struct presence__client *client)
{
    return find_member(set, client->user_key, client->hash,
                       apart_count(set, client->user) > 0, is_client, client);
}

struct presence__membership *
presence__memberset_find_id(const struct presence__memberset *set,
                            uint32_t user_key, uint64_t hash, const char *id,
                            size_t len)
{
    struct id_wanted w = {hash, id, len};
    return find_member(set, user_key, hash, set->crowd != NULL, has_id, &w);
}

size_t presence__memberset_user_visit(const struct presence__memberset *set,
                                      const struct presence__user *user,
                                      uint32_t user_key,
                                      presence__member_visit_fn visit,
                                      void *ctx)
{
    if (set->count == 0) {
        return 0;
    }
    size_t n = 0;
    size_t i = user_start(set, user_key);
    for (; i != SIZE_MAX && user_at(set, i, user_key); i++, n++) {
        if (visit != NULL) {
            visit(member(set, i), ctx);
        }
    }
    size_t away = apart_count(set, user);
    if (visit == NULL || away == 0) { /* counting, or no crowd */
        return n + away;
    }
    /* A crowd user: its other members are spread over the set. Walk
     * whichever is shorter, the user's clients or the whole set. */
    if (user->clients <= set->count) {
        for (const struct presence__client *c = user->first_client; c != NULL;
             c = c->unext) {
            struct presence__membership *m =
                find_apart(set, c->hash, is_client, c);
            if (m != NULL) {
                visit(m, ctx);
                n++;
            }
        }
        return n;
    }
    for (i = 0; i < set->nslots; i++) {
        if (taken(set, i) && apart(set, i) &&
            member(set, i)->client->user == user) {
            visit(member(set, i), ctx);
            n++;
        }
    }
    return n;
}

size_t presence__memberset_user_count(const struct presence__memberset *set,
                                      const struct presence__user *user,
                                      uint32_t user_key)
{
    return presence__memberset_user_visit(set, user, user_key, NULL, NULL);
}

bool presence__memberset_remove(const presence_allocator *alloc,
                                struct presence__memberset *set,
                                struct presence__membership *m)
{
    size_t i = slot_of_member(set, m);
    if (i == SIZE_MAX) {
        return false;
    }
    const struct presence__client *client = m->client;
    uint32_t user_key = client->user_key;
    bool last;
    if (apart(set, i)) {
        last = presence__usercount_dec(alloc, set->crowd, client->user) == 0 &&
               user_start(set, user_key) == SIZE_MAX;
    } else {
        last = !(i > 0 && user_at(set, i - 1, user_key)) &&
               !user_at(set, i + 1, user_key) &&
               apart_count(set, client->user) == 0;
    }
    /* Backward shift: pull the rest of the run back while its members are
     * away from their home slot; order is kept. */
    size_t j = i;
    while (j + 1 < set->nslots && taken(set, j + 1) &&
           home_of_slot(set, j + 1, set->bits) <= j) {
        set->slots[j] = set->slots[j + 1];
        j++;
    }
    clear_slots(&set->slots[j], 1);
    set->count--;
    if (set->count == 0) {
        presence__memberset_free(alloc, set);
        return last;
    }
    size_t homes = (size_t)1 << set->bits;
    if (set->bits > SHRINK_MIN_BITS && set->count * SHRINK_DEN < homes) {
        /* Giving memory back is optional: on failure keep the big table. */
        (void)rehash(alloc, set, set->bits - 1);
    }
    return last;
}

/* Members and their clients are scattered over memory, each found from
 * the one before (a client holds a copy of its user's id, so a visit needs
 * no user record). A scan takes the members in blocks: one pass over the
 * slots notes each member's address and starts loading it; then a second
 * pass visits them, loading each one's client CLIENT_AHEAD members ahead
 * (its member has arrived by then). Before the first visit of a block its
 * first clients are loaded the same way, their loads overlapping: without
 * that they came one by one. Two plain passes cost fewer instructions a
 * member than one pass juggling both steps. A client is one line or
 * more (see prefetch_client): 48 ahead, not 16, keeps enough in flight
 * (query 1.13x at 10^6 memberships against 16; 32 gave 1.07x, 64 the
 * same as 48). */
#define SCAN_BLOCK 256u
#define CLIENT_AHEAD 48u

/* What a visit reads of a client is its last few header fields and its
 * strings (from PRESENCE__CLIENT_HOT on), which its pool starts on a
 * line: one line for most, more for a long conn_info or a handle's
 * pointer. A line loaded for nothing cost the query 13%, and one missing
 * a wait, so a scan loads as many as the most any client it looked at
 * took (a channel's clients are alike), starting at one: the first line
 * is known from the address, the rest only from the record. It looks at
 * every LOOK_EVERY-th client it visits (measuring each cost the query a
 * sixth more instructions); when one takes more, the clients already
 * loading get the rest of theirs. */
#define LINE PRESENCE__LINE_BYTES
#define CLIENT_LINES_MAX 4u
#define LOOK_EVERY 8u

/* Lines `from` to `to` (from < to) of what a visit reads of c. */
static void prefetch_client(const struct presence__client *c, size_t from,
                            size_t to)
{
    uintptr_t line = (uintptr_t)&c->id_len / LINE * LINE;
    size_t i = from;
    do {
        PRESENCE__PREFETCH((const void *)(line + i * LINE));
    } while (++i < to);
}

/* The lines a visit of c read, at most CLIENT_LINES_MAX. */
static size_t client_lines(const struct presence__client *c)
{
    uintptr_t from = (uintptr_t)&c->id_len;
    bool tail = (presence__client_word(c) & PRESENCE__CLIENT_FLAGS) != 0;
    uintptr_t to = (uintptr_t)c->id + c->snapshot_bytes +
                   (tail ? sizeof(void *) : 0);
    size_t lines = (to - 1) / LINE - from / LINE + 1;
    return lines < CLIENT_LINES_MAX ? lines : CLIENT_LINES_MAX;
}

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
                presence__slab_at(set->slab, number & ~APART);
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
    size_t at = home_of(set->bits, (uint32_t)(cursor >> 32));
    /* Slots are in key order: past the first at or above the cursor,
     * every one is. */
    while (cursor != 0 && at < set->nslots &&
           (!taken(set, at) || key_at(set, at) < cursor)) {
        at++;
    }
    struct presence__membership *block[SCAN_BLOCK];
    size_t visited = 0;
    size_t lines = 1; /* a client's: the most one looked at took */
    while (at < set->nslots && visited < limit) {
        size_t want = limit - visited < SCAN_BLOCK ? limit - visited
                                                   : SCAN_BLOCK;
        size_t n = scan_gather(set, &at, want, block);
        for (size_t k = 0; k < n && k < CLIENT_AHEAD; k++) {
            prefetch_client(block[k]->client, 0, lines);
        }
        for (size_t k = 0; k < n; k++) {
            if (k + CLIENT_AHEAD < n) {
                prefetch_client(block[k + CLIENT_AHEAD]->client, 0, lines);
            }
            visit(block[k], ctx);
            if (k % LOOK_EVERY == 0) {
                size_t took = client_lines(block[k]->client);
                for (size_t j = k + 1;
                     took > lines && j < n && j <= k + CLIENT_AHEAD; j++) {
                    prefetch_client(block[j]->client, lines, took);
                }
                lines = took > lines ? took : lines;
            }
        }
        visited += n;
    }
    /* The next page starts at the next member's key. */
    while (at < set->nslots && !taken(set, at)) {
        at++;
    }
    return at < set->nslots ? key_at(set, at) : 0;
}

struct presence__membership *
presence__memberset_lower_bound(const struct presence__memberset *set,
                                uint64_t cursor, uint64_t *key)
{
    if (set->count == 0) {
        return NULL;
    }
    for (size_t i = home_of(set->bits, (uint32_t)(cursor >> 32));
         i < set->nslots; i++) {
        if (taken(set, i) && key_at(set, i) >= cursor) {
            *key = key_at(set, i);
            return member(set, i);
        }
    }
    return NULL;
}
