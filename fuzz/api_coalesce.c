/*
 * The coalesced-diff check of the API-sequence fuzzer (api_coalesce.h).
 * The model keeps, per channel, each member's state before its first
 * change in the window and after its last, plain arrays; the library's
 * diffs must equal the net rule applied to them (presence.h, "Coalesced
 * diffs"), come exactly when due, and carry the versions and counts of
 * the model's events. What memory failures make the library give up
 * (resync diffs) is checked for what it still promises: counts and
 * versions for a channel, and a scope-wide resync that comes alone and
 * restarts the subscription.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_coalesce.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: mismatch: %s\n", __FILE__, __LINE__,       \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Small enough that the expiry op's clock steps (up to 39 ms) close
 * windows often, and counts-only mode within the member limit (5). */
#define WINDOW_MS 25
#define COUNT_ONLY_ABOVE 3
#define COUNT_ONLY_BELOW 2

static void on_diff(presence_registry *reg, const presence_diff *d, void *ud)
{
    (void)reg;
    coalesce_check *cc = ud;
    CHECK(cc->ngot < MODEL_CHANNELS + 1);
    coalesce_got *g = &cc->got[cc->ngot++];
    memset(g, 0, sizeof *g);
    g->channel = d->channel[0] == '\0'
                     ? -1
                     : model_name_index(model_channel_names, MODEL_CHANNELS,
                                  d->channel);
    CHECK(d->channel[0] == '\0' || g->channel >= 0);
    g->flags = d->flags;
    g->from_epoch = d->from_epoch;
    g->from_seq = d->from_seq;
    g->epoch = d->epoch;
    g->seq = d->seq;
    g->num_clients = d->stats.num_clients;
    g->num_users = d->stats.num_users;
    g->joined = d->joined;
    g->left = d->left;
    g->updated = d->updated;
    g->first_ms = d->first_time_ms;
    g->last_ms = d->last_time_ms;
    g->count = d->member_count;
    if (d->stats.epoch != d->epoch || d->stats.seq != d->seq ||
        d->member_count > MODEL_CLIENTS ||
        (d->member_count > 0) != (d->members != NULL)) {
        cc->bad++;
        return;
    }
    for (size_t i = 0; i < d->member_count; i++) {
        const presence_diff_member *m = &d->members[i];
        coalesce_got_member *o = &g->members[i];
        o->kind = m->kind;
        o->reason = m->reason;
        o->client =
            model_name_index(model_client_ids, MODEL_CLIENTS, m->member.client_id);
        o->info = model_info_index(m->member.chan_info, m->member.chan_info_len);
        o->node = m->member.node_id[0] == '\0'
                      ? MODEL_LOCAL
                      : model_name_index(model_node_ids, MODEL_NODES,
                                   m->member.node_id);
        if (o->client < 0 || o->info < 0 ||
            strcmp(m->member.channel, d->channel) != 0) {
            cc->bad++;
        }
    }
}

void coalesce_check_start(coalesce_check *cc, presence_registry *reg)
{
    memset(cc, 0, sizeof *cc);
    cc->window_ms = WINDOW_MS;
    cc->above = COUNT_ONLY_ABOVE;
    cc->below = COUNT_ONLY_BELOW;
    presence_coalesce_options o;
    presence_coalesce_options_init(&o);
    o.window_ms = cc->window_ms;
    o.count_only_above = cc->above;
    o.count_only_below = cc->below;
    CHECK(presence_subscribe_coalesced(reg, PRESENCE_SCOPE_ALL, NULL, &o,
                                       on_diff, cc, &cc->sub) == PRESENCE_OK);
}

/* ---- the model ---------------------------------------------------------- */

static void window_open(const coalesce_check *cc, coalesce_model_channel *c,
                        const model_event *e)
{
    bool mode = c->count_only_mode;
    memset(c, 0, sizeof *c);
    c->count_only_mode = mode;
    c->pending = true;
    c->window_count_only = mode;
    c->from_empty = e->kind == PRESENCE_EVENT_JOIN && e->seq == 1;
    c->from_seq = c->from_empty ? 0 : e->seq - 1;
    c->first_ms = e->time_ms;
    c->due_ms = e->time_ms + cc->window_ms;
}

static void feed_one(coalesce_check *cc, const model_event *e)
{
    coalesce_model_channel *c = &cc->ch[e->channel];
    if (!c->pending) {
        window_open(cc, c, e);
    } else if (e->seq != c->seq + 1 &&
               !(e->kind == PRESENCE_EVENT_JOIN && e->seq == 1)) {
        c->gap = true;
    }
    c->seq = e->seq;
    c->num_clients = e->num_clients;
    c->num_users = e->num_users;
    c->last_ms = e->time_ms;
    c->joins += e->kind == PRESENCE_EVENT_JOIN;
    c->leaves += e->kind == PRESENCE_EVENT_LEAVE;
    c->updates += e->kind == PRESENCE_EVENT_UPDATE;
    if (!c->count_only_mode && e->num_clients > cc->above) {
        c->count_only_mode = true;
    } else if (c->count_only_mode && e->num_clients < cc->below) {
        c->count_only_mode = false;
    }
    if (c->count_only_mode) {
        c->window_count_only = true;
    }
    coalesce_model_member *m = &c->m[e->client];
    if (!m->touched) {
        m->touched = true;
        c->order[c->norder++] = e->client;
        m->was_present = e->kind != PRESENCE_EVENT_JOIN;
        m->before_info = e->info;
        m->before_node = e->node;
        if (e->kind != PRESENCE_EVENT_LEAVE) {
            m->before_info = -1; /* unknown: not a leave */
        }
    }
    m->present = e->kind != PRESENCE_EVENT_LEAVE;
    m->info = e->info;
    m->node = e->node;
    m->reason = e->kind == PRESENCE_EVENT_LEAVE ? e->reason
                                                : PRESENCE_LEAVE_NONE;
    m->time_ms = e->time_ms;
    m->updated |= e->kind == PRESENCE_EVENT_UPDATE;
}

void coalesce_check_feed(coalesce_check *cc, const model_event *events,
                         size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const model_event *e = &events[i];
        if (!e->muted && (e->kind == PRESENCE_EVENT_JOIN ||
                          e->kind == PRESENCE_EVENT_LEAVE ||
                          e->kind == PRESENCE_EVENT_UPDATE)) {
            feed_one(cc, e);
        }
    }
}

/* The net rule, naively. 0: nothing. */
static presence_event_kind net_kind(const coalesce_model_member *m)
{
    if (!m->was_present) {
        return m->present ? PRESENCE_EVENT_JOIN : 0;
    }
    if (!m->present) {
        return PRESENCE_EVENT_LEAVE;
    }
    bool same = m->before_info == m->info && m->before_node == m->node;
    return m->updated || !same ? PRESENCE_EVENT_UPDATE : 0;
}

/* ---- the comparison ----------------------------------------------------- */

static void compare(const coalesce_check *cc, int ch, const coalesce_got *g,
                    uint64_t epoch)
{
    const coalesce_model_channel *c = &cc->ch[ch];
    CHECK(g->from_seq == c->from_seq && g->seq == c->seq);
    CHECK((g->from_epoch == 0) == c->from_empty);
    CHECK(g->epoch == epoch);
    CHECK(g->num_clients == c->num_clients && g->num_users == c->num_users);
    CHECK(g->first_ms == c->first_ms && g->last_ms == c->last_ms);
    CHECK(((g->flags & PRESENCE_DIFF_COUNT_ONLY) != 0) ==
          c->window_count_only);
    CHECK(!c->gap || (g->flags & PRESENCE_DIFF_RESYNC) != 0);
    if (g->flags != 0) {
        CHECK(g->count == 0);
        CHECK(g->joined == c->joins && g->left == c->leaves &&
              g->updated == c->updates);
        return;
    }
    size_t n = 0, joined = 0, left = 0, updated = 0;
    for (int i = 0; i < c->norder; i++) {
        int client = c->order[i];
        const coalesce_model_member *m = &c->m[client];
        presence_event_kind kind = net_kind(m);
        if (kind == 0) {
            continue;
        }
        CHECK(n < g->count);
        const coalesce_got_member *o = &g->members[n++];
        CHECK(o->kind == kind && o->client == client);
        CHECK(o->info == m->info && o->node == m->node);
        CHECK(o->reason == m->reason);
        joined += kind == PRESENCE_EVENT_JOIN;
        left += kind == PRESENCE_EVENT_LEAVE;
        updated += kind == PRESENCE_EVENT_UPDATE;
    }
    CHECK(n == g->count);
    CHECK(g->joined == joined && g->left == left && g->updated == updated);
}

static int64_t next_due(const coalesce_check *cc)
{
    int64_t next = PRESENCE_NO_DEADLINE;
    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        if (cc->ch[ch].pending && cc->ch[ch].due_ms < next) {
            next = cc->ch[ch].due_ms;
        }
    }
    return next;
}

void coalesce_check_step(coalesce_check *cc, presence_registry *reg,
                         uint8_t op, int64_t now_ms, const uint64_t *epochs)
{
    if ((op & 0x40) == 0) {
        return;
    }
    int64_t at = (op & 0x20) != 0 ? PRESENCE_FLUSH_ALL : now_ms;
    int64_t next = 0;
    cc->ngot = 0;
    CHECK(presence_flush(reg, at, &next) == PRESENCE_OK);
    CHECK(cc->bad == 0);
    if (cc->ngot > 0 && cc->got[0].channel < 0) {
        /* Memory ran out for a channel's record: one resync, alone, and
         * the subscription starts afresh. */
        CHECK(cc->ngot == 1 && cc->got[0].flags == PRESENCE_DIFF_RESYNC);
        for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
            memset(&cc->ch[ch], 0, sizeof cc->ch[ch]);
        }
        CHECK(next == PRESENCE_NO_DEADLINE);
        return;
    }
    size_t want = 0;
    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        coalesce_model_channel *c = &cc->ch[ch];
        if (!c->pending || c->due_ms > at) {
            continue;
        }
        want++;
        const coalesce_got *g = NULL;
        for (size_t i = 0; i < cc->ngot; i++) {
            if (cc->got[i].channel == ch) {
                CHECK(g == NULL);
                g = &cc->got[i];
            }
        }
        CHECK(g != NULL);
        compare(cc, ch, g, epochs[ch]);
        c->pending = false;
    }
    CHECK(cc->ngot == want);
    CHECK(next == next_due(cc));
}
