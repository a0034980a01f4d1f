/*
 * Channels' change logs and presence_changes_since().
 *
 * A channel whose namespace has a history_size gets its log (a ring,
 * containers/changelog.c) when it is made, and the log grows in the part
 * of each join or update that may fail, so that logging a change needs no
 * allocation and cannot fail: every path that changes a membership logs
 * where it advances the channel's seq. Entries hold references on the
 * client record and the chan_info blob, as queued events do, so a change
 * is told with the client's names and infos after the client left.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdalign.h>
#include <string.h>

#include "domain/domain.h"

struct history_block {
    presence_allocator alloc;
    size_t size;
    presence_history history;
};

/* Release what an entry that left a log holds. */
static void change_release(presence_registry *reg, struct presence__change *c)
{
    presence__chan_info_unref(reg, c->chan_info);
    presence__client_unref(reg, c->client);
}

/* The room a log starts with: its first join and leave. */
#define FIRST_ROOM 2u

PRESENCE__NOINLINE
int presence__history_attach(presence_registry *reg,
                             struct presence__channel *ch)
{
    size_t size = ch->ns->options.history_size;
    ch->history = NULL;
    if (size == 0) {
        return PRESENCE_OK;
    }
    return presence__changelog_new(&reg->alloc,
                                   size < FIRST_ROOM ? size : FIRST_ROOM,
                                   ch->seq, &ch->history);
}

/*
 * Logs grow with their channels. The rule: a log holds at least
 * min(history_size, its entries + the channel's members) entries, so the
 * leaves to come, one per member at most before the next join or update
 * grows it again, always fit without dropping a change that history_size
 * promises to keep. A join needs room for 2 more (its entry and its
 * member), an update for 1.
 */
PRESENCE__NOINLINE
int presence__history_grow(presence_registry *reg,
                           struct presence__channel *ch, size_t more)
{
    struct presence__changelog *log = ch->history;
    size_t need = presence__add_size(
        presence__add_size(log->len, ch->members.count), more);
    return presence__changelog_grow(&reg->alloc, &ch->history, need,
                                    ch->ns->options.history_size);
}

PRESENCE__NOINLINE
void presence__history_append(presence_registry *reg,
                              struct presence__shard *hs,
                              struct presence__channel *ch,
                              const struct presence__membership *m,
                              presence_event_kind kind,
                              presence_leave_reason reason, int64_t at_ms)
{
    struct presence__changelog *log = ch->history;
    struct presence__change c = {
        .client = m->client,
        .chan_info = presence__membership_chan_info(hs, m),
        .seq = ch->seq,
        /* A join's time is its member's joined_at, so that a copy built
         * from the log matches a snapshot. */
        .time_ms = kind == PRESENCE_EVENT_JOIN ? presence__membership_joined(m)
                   : at_ms != PRESENCE__EVENT_NOW ? at_ms
                                                  : presence__now(reg),
        .kind = (uint8_t)kind,
        .reason = (uint8_t)reason,
    };
    presence__client_ref(reg, c.client);
    presence__chan_info_ref(reg, c.chan_info);
    struct presence__change dropped;
    if (presence__changelog_push(log, &c, &dropped)) {
        change_release(reg, &dropped);
    }
}

void presence__history_restart(presence_registry *reg,
                               struct presence__channel *ch)
{
    struct presence__changelog *log = ch->history;
    if (log == NULL) {
        return;
    }
    struct presence__change c;
    while (presence__changelog_pop(log, &c)) {
        change_release(reg, &c);
    }
    log->since = ch->seq;
}

/* Release a log's entries and free it. */
static void log_free(presence_registry *reg, struct presence__changelog *log)
{
    struct presence__change c;
    while (log != NULL && presence__changelog_pop(log, &c)) {
        change_release(reg, &c);
    }
    presence__changelog_free(&reg->alloc, log);
}

void presence__history_free(presence_registry *reg,
                            struct presence__channel *ch)
{
    log_free(reg, ch->history);
    ch->history = NULL;
}

/* ---- a namespace's history_size changes ------------------------------- */

/* Call fn for every channel of ns (every channel shard held), in the same
 * order each time while nothing changes. */
static void each_channel(presence_registry *reg,
                         const struct presence__namespace *ns,
                         void (*fn)(struct presence__channel *ch, void *ctx),
                         void *ctx)
{
    for (size_t s = 0; s < PRESENCE__SHARDS; s++) {
        struct presence__index *idx = &reg->shards[s].channels;
        for (size_t i = 0; i < presence__index_slots(idx); i++) {
            struct presence__channel *ch = presence__index_at(idx, i);
            /* An idle one (pinned, no member) has no life to log: its
             * next join attaches a log as the namespace then says. */
            if (ch != NULL && ch->ns == ns && ch->members.count > 0) {
                fn(ch, ctx);
            }
        }
    }
}

static void count_channel(struct presence__channel *ch, void *ctx)
{
    (void)ch;
    ((struct presence__history_plan *)ctx)->count++;
}

/* A log of the new size for ch, with room for the entries it keeps of
 * its old one and its members (the rule of presence__history_room). */
static void make_log(struct presence__channel *ch, void *ctx)
{
    struct presence__history_plan *p = ctx;
    if (p->rc == PRESENCE_OK) {
        size_t kept = ch->history != NULL ? ch->history->len : 0;
        size_t need = presence__add_size(kept, ch->members.count);
        need = need < FIRST_ROOM ? FIRST_ROOM : need;
        p->rc = presence__changelog_new(&p->reg->alloc,
                                        need < p->size ? need : p->size,
                                        ch->seq, &p->logs[p->made]);
        p->made += p->rc == PRESENCE_OK;
    }
}

int presence__history_prepare(presence_registry *reg,
                              const struct presence__namespace *ns,
                              size_t size, struct presence__history_plan *p)
{
    *p = (struct presence__history_plan){.reg = reg, .size = size};
    p->change = ns->options.history_size != size;
    if (!p->change) {
        return PRESENCE_OK;
    }
    each_channel(reg, ns, count_channel, p);
    if (p->count == 0) {
        return PRESENCE_OK;
    }
    p->logs = presence__malloc(&reg->alloc,
                               presence__mul_size(p->count, sizeof *p->logs));
    if (p->logs == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    if (size > 0) {
        each_channel(reg, ns, make_log, p);
    }
    if (p->rc != PRESENCE_OK) {
        int rc = p->rc;
        presence__history_abort(p);
        return rc;
    }
    return PRESENCE_OK;
}

static void free_array(struct presence__history_plan *p)
{
    if (p->logs != NULL) {
        presence__free(&p->reg->alloc, p->logs, p->count * sizeof *p->logs);
    }
    p->logs = NULL;
}

void presence__history_abort(struct presence__history_plan *p)
{
    for (size_t i = 0; i < p->made; i++) {
        presence__changelog_free(&p->reg->alloc, p->logs[i]);
    }
    p->made = 0;
    free_array(p);
}

/* The channel takes its new log, with the newest changes of the old one
 * that fit (new references: the old log is released later, with no lock
 * held, since releasing takes the record pools' locks); the old log takes
 * the new one's place in the plan. */
static void swap_log(struct presence__channel *ch, void *ctx)
{
    struct presence__history_plan *p = ctx;
    struct presence__changelog *old = ch->history;
    struct presence__changelog **slot = &p->logs[p->made++];
    struct presence__changelog *next = p->size > 0 ? *slot : NULL;
    if (old != NULL && next != NULL) {
        size_t keep = old->len < next->cap ? old->len : next->cap;
        size_t from = old->len - keep;
        next->since = from > 0 ? presence__changelog_at(old, from - 1)->seq
                               : old->since;
        for (size_t i = from; i < old->len; i++) {
            struct presence__change c = *presence__changelog_at(old, i);
            struct presence__change unused;
            presence__client_ref(p->reg, c.client);
            presence__chan_info_ref(p->reg, c.chan_info);
            (void)presence__changelog_push(next, &c, &unused);
        }
    }
    ch->history = next;
    *slot = old;
}

void presence__history_commit(const struct presence__namespace *ns,
                              struct presence__history_plan *p)
{
    if (p->logs != NULL) {
        p->made = 0;
        each_channel(p->reg, ns, swap_log, p);
    }
}

void presence__history_finish(struct presence__history_plan *p)
{
    if (p->logs == NULL) {
        return;
    }
    for (size_t i = 0; i < p->count; i++) {
        log_free(p->reg, p->logs[i]);
    }
    free_array(p);
}

/* ---- presence_changes_since ------------------------------------------- */

/* The bytes an entry's strings and infos take in a list. */
static size_t change_bytes(const struct presence__change *c)
{
    return presence__client_snapshot_bytes(c->client) +
           (c->chan_info != NULL ? c->chan_info->len : 0);
}

static char *put_bytes(char **next, const void *data, size_t len)
{
    char *at = *next;
    if (len > 0) {
        memcpy(at, data, len);
    }
    *next += len;
    return at;
}

static void fill_entry(presence_history_entry *e,
                       const struct presence__change *c, const char *channel,
                       char **next)
{
    presence_member *m = &e->member;
    e->kind = (presence_event_kind)c->kind;
    e->reason = (presence_leave_reason)c->reason;
    e->seq = c->seq;
    e->time_ms = c->time_ms;
    m->channel = channel;
    presence__member_put_client(m, c->client, next);
    m->chan_info = c->chan_info != NULL
                       ? put_bytes(next, c->chan_info->data, c->chan_info->len)
                       : NULL;
    m->chan_info_len = c->chan_info != NULL ? c->chan_info->len : 0;
    m->joined_at_ms = c->kind == PRESENCE_EVENT_JOIN ? c->time_ms : 0;
    m->touched_at_ms = m->joined_at_ms;
    m->in_grace = false; /* a change, not a member's state now */
}

/* Copy the changes [first, len) of ch's log (ch NULL: none) into one
 * allocation (the channel's shard held). */
static int history_copy(presence_registry *reg,
                        const struct presence__chref *ref,
                        const struct presence__changelog *log, size_t first,
                        presence_history **out)
{
    size_t count = log != NULL ? log->len - first : 0;
    size_t bytes = ref->len + 1;
    for (size_t i = 0; i < count; i++) {
        bytes = presence__add_size(
            bytes, change_bytes(presence__changelog_at(log, first + i)));
    }
    size_t align = alignof(presence_history_entry);
    size_t head = (sizeof(struct history_block) + align - 1) / align * align;
    size_t array = presence__mul_size(count, sizeof(presence_history_entry));
    size_t size =
        presence__add_size(presence__add_size(head, array), bytes);
    struct history_block *block = presence__malloc(&reg->alloc, size);
    if (block == NULL) {
        return PRESENCE_ERR_NOMEM;
    }
    memset(block, 0, sizeof *block);
    block->alloc = reg->alloc;
    block->size = size;
    presence_history *h = &block->history;
    presence_history_entry *entries =
        (presence_history_entry *)((char *)block + head);
    char *next = (char *)entries + array;
    const char *channel = put_bytes(&next, ref->name, ref->len);
    *next++ = '\0';
    for (size_t i = 0; i < count; i++) {
        fill_entry(&entries[i], presence__changelog_at(log, first + i),
                   channel, &next);
    }
    h->count = count;
    h->entries = count > 0 ? entries : NULL;
    h->stats = presence__channel_stats(ref->ch);
    *out = h;
    return PRESENCE_OK;
}

/* Where the changes after (epoch, seq) begin in ch's log, or false. */
static bool history_find(const struct presence__channel *ch, uint64_t epoch,
                         uint64_t seq, size_t *first)
{
    if (ch == NULL) {
        *first = 0;
        return epoch == 0 && seq == 0; /* empty then, empty now */
    }
    if (ch->history == NULL) {
        return false;
    }
    if (epoch == 0 && seq == 0) {
        epoch = ch->epoch; /* every life begins empty, at seq 0 */
    }
    return epoch == ch->epoch &&
           presence__changelog_after(ch->history, seq, first);
}

int presence_changes_since(presence_registry *reg, const char *channel,
                           const presence_requester *requester,
                           uint64_t epoch, uint64_t seq,
                           presence_history **out)
{
    if (out == NULL || presence__requester_resolve(&requester) != PRESENCE_OK) {
        return PRESENCE_ERR_INVALID;
    }
    struct presence__chref ref;
    int rc = presence__lock_channel_read(reg, channel, requester, &ref);
    if (rc != PRESENCE_OK) {
        return rc;
    }
    size_t first;
    if (!history_find(ref.ch, epoch, seq, &first)) {
        rc = PRESENCE_ERR_SNAPSHOT_NEEDED;
    } else {
        rc = history_copy(reg, &ref, ref.ch != NULL ? ref.ch->history : NULL,
                          first, out);
    }
    presence__mutex_unlock(reg, &ref.shard->lock);
    return rc;
}

void presence_history_free(presence_history *history)
{
    if (history == NULL) {
        return;
    }
    struct history_block *block =
        (struct history_block *)((char *)history -
                                 offsetof(struct history_block, history));
    block->alloc.free_fn(block, block->size, block->alloc.user_data);
}
