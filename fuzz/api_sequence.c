/*
 * API-sequence fuzzer: input bytes become a sequence of calls on a
 * registry and on the reference model (api_model.c). After every call the
 * return codes, the events delivered (callbacks that call back in
 * included) and the whole visible state must agree. With allocation
 * failures sprinkled in, a call that fails must leave the registry equal
 * to the model's state before the call.
 *
 * Built as a libFuzzer target (fuzz/meson.build) and as a replay program
 * that runs the seed corpus and pseudo-random inputs in the test suite.
 *
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_coalesce.h"
#include "api_model.h"
#include "api_sequence.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: mismatch: %s\n", __FILE__, __LINE__,       \
                    #cond);                                                    \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* ---- the harness's registry, allocator and clock ------------------------ */

struct harness {
    presence_registry *reg;
    model md;
    int64_t clock;
    /* allocation failure injection */
    size_t allocs;
    size_t fail_at; /* 0 = never */
    bool no_fail;   /* while checking and inside callbacks */
    size_t live_blocks;
    /* events seen by the two subscriptions */
    model_event got[MODEL_MAX_EVENTS];
    size_t ngot;
    model_event got_lobby[MODEL_MAX_EVENTS];
    size_t ngot_lobby;
    presence_subscription lobby_sub;
    model_event got_every[MODEL_MAX_EVENTS]; /* EVERY_NAMESPACE */
    size_t ngot_every;
    presence_subscription every_sub;
    int depth; /* callbacks must never nest */
    /* An expiry runs: c0's rejoin waits until it returns (on_event). */
    bool in_expire;
    bool rejoin_after;
    /* Handles of open clients, and the application pointers they carry. */
    presence_client *handles[MODEL_CLIENTS];
    int apps[MODEL_CLIENTS];
    void *app_ptrs[MODEL_CLIENTS]; /* &apps[c] */
    /* Channel handles, for the channels that have presence (NULL for the
     * others: presence_channel_open refuses them). */
    presence_channel *chans[MODEL_CHANNELS];
    /* The epoch each channel's events last carried (0: none yet). */
    uint64_t epochs[MODEL_CHANNELS];
    /* Users online as their online/offline events tell it. */
    bool online[MODEL_USERS];
    /* The coalesced subscription and its model (api_coalesce.c). */
    coalesce_check coalesce;
};

/* The application pointer the library must hand back for client c. */
static void *app_of(const struct harness *h, int c)
{
    return h->md.open[c] ? h->app_ptrs[c] : NULL;
}

static bool should_fail(struct harness *h)
{
    h->allocs++;
    return !h->no_fail && h->fail_at != 0 && h->allocs == h->fail_at;
}

static void *fz_malloc(size_t size, void *ud)
{
    struct harness *h = ud;
    if (should_fail(h)) {
        return NULL;
    }
    void *p = malloc(size);
    h->live_blocks += p != NULL;
    return p;
}

static void *fz_realloc(void *ptr, size_t old_size, size_t new_size, void *ud)
{
    (void)old_size;
    struct harness *h = ud;
    if (should_fail(h)) {
        return NULL;
    }
    return realloc(ptr, new_size);
}

static void fz_free(void *ptr, size_t size, void *ud)
{
    (void)size;
    struct harness *h = ud;
    h->live_blocks -= ptr != NULL;
    free(ptr);
}

static int64_t fz_clock(void *ud)
{
    return ((struct harness *)ud)->clock;
}

/* ---- events ------------------------------------------------------------ */

static model_event convert(const presence_event *ev)
{
    model_event e;
    memset(&e, 0, sizeof e);
    e.kind = ev->kind;
    e.reason = ev->reason;
    e.channel = model_name_index(model_channel_names, MODEL_CHANNELS, ev->channel);
    e.client = model_name_index(model_client_ids, MODEL_CLIENTS, ev->client_id);
    e.info = model_info_index(ev->chan_info, ev->chan_info_len);
    e.seq = ev->seq;
    e.time_ms = ev->time_ms;
    e.num_clients = ev->stats.num_clients;
    e.num_users = ev->stats.num_users;
    CHECK(ev->node_id != NULL);
    e.node = MODEL_LOCAL;
    if (ev->node_id[0] != '\0') {
        e.node = model_name_index(model_node_ids, MODEL_NODES, ev->node_id);
        CHECK(e.node >= 0);
    }
    return e;
}

/* Registry-wide user events: each flips its user, never twice the same
 * way, and carries no channel. */
static void on_user(presence_registry *reg, const presence_event *ev,
                    void *ud)
{
    (void)reg;
    struct harness *h = ud;
    int u = model_name_index(model_user_ids, MODEL_USERS, ev->user_id);
    CHECK(u >= 0 && ev->channel[0] == '\0' && ev->seq == 0 &&
          ev->epoch == 0);
    bool online = ev->kind == PRESENCE_EVENT_USER_ONLINE;
    CHECK(online || ev->kind == PRESENCE_EVENT_USER_OFFLINE);
    CHECK(h->online[u] != online);
    h->online[u] = online;
}

/* The first re-entry rule: c0 back into "room". */
static void rejoin_room(presence_registry *reg)
{
    (void)presence_join(reg, model_channel_names[MODEL_ROOM], "c0",
                        model_user_ids[model_user_of(0)], model_conn_info_of(0),
                        strlen(model_conn_info_of(0)), NULL, 0);
}

/* The main subscription: records, checks the event's own fields, and
 * applies the re-entry rules (mirrored by model_settle). */
static void on_event(presence_registry *reg, const presence_event *ev,
                     void *ud)
{
    struct harness *h = ud;
    CHECK(h->depth == 0);
    h->depth++;
    bool saved = h->no_fail;
    h->no_fail = true;
    model_event e = convert(ev);
    CHECK(e.channel >= 0 && e.client >= 0 && e.info >= 0);
    CHECK(strcmp(ev->user_id, model_user_ids[model_user_of(e.client)]) == 0);
    const char *conn = model_conn_info_of(e.client);
    CHECK(ev->conn_info_len == strlen(conn));
    CHECK(ev->conn_info_len == 0 ||
          memcmp(ev->conn_info, conn, ev->conn_info_len) == 0);
    CHECK(ev->client_app == NULL || ev->client_app == h->app_ptrs[e.client]);
    /* Versions: a life begins with its first join, seq 1, in a new epoch. */
    CHECK(ev->epoch != 0 && ev->stats.epoch == ev->epoch &&
          ev->stats.seq == ev->seq);
    if (ev->seq == 1 && ev->kind == PRESENCE_EVENT_JOIN) {
        CHECK(ev->epoch != h->epochs[e.channel]);
        h->epochs[e.channel] = ev->epoch;
    } else {
        CHECK(ev->epoch == h->epochs[e.channel]);
    }
    CHECK(h->ngot < MODEL_MAX_EVENTS);
    h->got[h->ngot++] = e;
    if (e.kind == PRESENCE_EVENT_USER_LEAVE && e.client == 0 &&
        e.reason == PRESENCE_LEAVE_EXPLICIT && h->in_expire) {
        /* A grace end inside an expiry: the model rejoins after every
         * removal, but an expiry delivers between batches, in its shards'
         * order, so a channel it has not reached yet may still count
         * against channels_max here. Rejoin once it returns. */
        h->rejoin_after = true;
    } else if (e.kind == PRESENCE_EVENT_USER_LEAVE && e.client == 0 &&
               e.reason == PRESENCE_LEAVE_EXPLICIT) {
        rejoin_room(reg);
    } else if (e.kind == PRESENCE_EVENT_JOIN && e.client == 5 &&
               e.channel == MODEL_LOBBY) {
        (void)presence_leave(reg, model_channel_names[MODEL_LOBBY], "c5");
    }
    h->no_fail = saved;
    h->depth--;
}

static void on_lobby(presence_registry *reg, const presence_event *ev,
                     void *ud)
{
    (void)reg;
    struct harness *h = ud;
    CHECK(h->ngot_lobby < MODEL_MAX_EVENTS);
    h->got_lobby[h->ngot_lobby++] = convert(ev);
}

static void on_every(presence_registry *reg, const presence_event *ev,
                     void *ud)
{
    (void)reg;
    struct harness *h = ud;
    CHECK(h->ngot_every < MODEL_MAX_EVENTS);
    h->got_every[h->ngot_every++] = convert(ev);
}

static bool event_equal(const model_event *a, const model_event *b)
{
    return a->kind == b->kind && a->reason == b->reason &&
           a->node == b->node &&
           a->channel == b->channel && a->client == b->client &&
           a->info == b->info && a->seq == b->seq &&
           a->time_ms == b->time_ms && a->num_clients == b->num_clients &&
           a->num_users == b->num_users;
}

/* Events of one channel must come exactly as the model says, in order;
 * events of different channels may interleave differently (an expiry
 * walks the registry's shards, not the model's global touch order). */
static void check_channel_events(const model_event *got, size_t ngot,
                                 const model_event *want, size_t nwant,
                                 int channel)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < ngot && got[i].channel != channel) {
            i++;
        }
        while (j < nwant && want[j].channel != channel) {
            j++;
        }
        if (i == ngot || j == nwant) {
            break;
        }
        CHECK(event_equal(&got[i], &want[j]));
        i++;
        j++;
    }
    CHECK(i == ngot && j == nwant);
}

static void check_events(struct harness *h)
{
    /* The model also holds the muted events (namespace without
     * join_leave) while the EVERY_NAMESPACE subscription is on: only that
     * one receives them. */
    static model_event plain[MODEL_MAX_EVENTS], lobby[MODEL_MAX_EVENTS];
    size_t nplain = 0, nlobby = 0;
    for (size_t i = 0; i < h->md.nevents; i++) {
        const model_event *e = &h->md.events[i];
        if (e->muted) {
            continue;
        }
        plain[nplain++] = *e;
        if (h->md.lobby_sub && e->channel == MODEL_LOBBY &&
            (e->kind == PRESENCE_EVENT_JOIN || e->kind == PRESENCE_EVENT_LEAVE)) {
            lobby[nlobby++] = *e;
        }
    }
    CHECK(h->ngot == nplain);
    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        check_channel_events(h->got, h->ngot, plain, nplain, ch);
        check_channel_events(h->got_every, h->ngot_every, h->md.events,
                             h->md.every_sub ? h->md.nevents : 0, ch);
    }
    check_channel_events(h->got_lobby, h->ngot_lobby, lobby, nlobby,
                         MODEL_LOBBY);
    h->ngot = h->ngot_lobby = h->ngot_every = 0;
    h->md.nevents = 0;
}

/* ---- the state --------------------------------------------------------- */

static void check_snapshot_member(const struct harness *h, int ch,
                                  const presence_member *pm)
{
    int c = model_name_index(model_client_ids, MODEL_CLIENTS, pm->client_id);
    CHECK(c >= 0);
    const model_member *mm = &h->md.m[c][ch];
    CHECK(mm->in);
    CHECK(strcmp(pm->channel, model_channel_names[ch]) == 0);
    CHECK(strcmp(pm->user_id, model_user_ids[model_user_of(c)]) == 0);
    CHECK(model_info_index(pm->chan_info, pm->chan_info_len) == mm->info);
    CHECK(pm->conn_info_len == strlen(model_conn_info_of(c)));
    CHECK(pm->joined_at_ms == mm->joined_at);
    CHECK(pm->touched_at_ms == mm->touched_at);
    CHECK(pm->node_id != NULL &&
          strcmp(pm->node_id, model_node_name(h->md.node[c])) == 0);
    CHECK(pm->app == app_of(h, c));
    CHECK(pm->in_grace == mm->graced);
}

/* presence_changes_since() against the model's log, from a version:
 * epoch is the channel's, 0, or another. */
static void check_changes_from(struct harness *h, int ch, uint64_t epoch,
                               uint64_t now_epoch, uint64_t seq)
{
    presence_history *hist = NULL;
    int rc = presence_changes_since(h->reg, model_channel_names[ch],
                                    presence_trusted(), epoch, seq, &hist);
    size_t first;
    int want = model_changes_since(&h->md, ch, epoch != 0 && epoch == now_epoch,
                                   epoch == 0, seq, &first);
    if (rc != want) {
        fprintf(stderr, "changes_since %s (%s, %llu): library %s, model %s\n",
                model_channel_names[ch], epoch == now_epoch ? "now" : "other",
                (unsigned long long)seq, presence_error_name(rc),
                presence_error_name(want));
    }
    CHECK(rc == want);
    if (rc != PRESENCE_OK) {
        CHECK(hist == NULL);
        return;
    }
    const model_log *lg = &h->md.logs[ch];
    size_t n = model_channel_count(&h->md, ch) > 0 ? lg->len - first : 0;
    CHECK(hist->count == n);
    CHECK(hist->stats.seq == h->md.seq[ch] && hist->stats.epoch == now_epoch);
    for (size_t i = 0; i < n; i++) {
        const model_change *mc = &lg->changes[first + i];
        const presence_history_entry *e = &hist->entries[i];
        const presence_member *pm = &e->member;
        CHECK(e->kind == mc->kind && e->reason == mc->reason);
        CHECK(e->seq == mc->seq && e->time_ms == mc->time_ms);
        CHECK(strcmp(pm->channel, model_channel_names[ch]) == 0);
        CHECK(strcmp(pm->client_id, model_client_ids[mc->client]) == 0);
        CHECK(strcmp(pm->user_id,
                     model_user_ids[model_user_of(mc->client)]) == 0);
        CHECK(model_info_index(pm->chan_info, pm->chan_info_len) == mc->info);
        CHECK(pm->conn_info_len == strlen(model_conn_info_of(mc->client)));
        CHECK(strcmp(pm->node_id, model_node_name(mc->node)) == 0);
        /* A closed handle's pointer is never handed out (grace may have
         * closed the one the entry was made under). */
        CHECK(pm->app == NULL || (h->md.open[mc->client] &&
                                  pm->app == h->app_ptrs[mc->client]));
        CHECK(pm->joined_at_ms ==
              (mc->kind == PRESENCE_EVENT_JOIN ? mc->time_ms : 0));
    }
    presence_history_free(hist);
}

/* The log from every version near the channel's, and from the others. */
static void check_changes(struct harness *h, int ch,
                          const presence_channel_stats *st)
{
    uint64_t seq = st->seq;
    for (uint64_t back = 0; back <= MODEL_LOG_MAX + 1 && back <= seq; back++) {
        check_changes_from(h, ch, st->epoch, st->epoch, seq - back);
    }
    check_changes_from(h, ch, st->epoch, st->epoch, seq + 1);
    check_changes_from(h, ch, 0, st->epoch, 0);
    check_changes_from(h, ch, 0, st->epoch, 1);
    check_changes_from(h, ch, st->epoch ^ 0x10, st->epoch, seq);
}

struct visit_check {
    struct harness *h;
    int ch;
    size_t n;
};

static void visit_member(const presence_member *m, void *ud)
{
    struct visit_check *vc = ud;
    check_snapshot_member(vc->h, vc->ch, m);
    vc->n++;
}

static void check_channel(struct harness *h, int ch)
{
    presence_registry *reg = h->reg;
    const char *name = model_channel_names[ch];
    presence_channel_stats st;
    int rc = presence_stats(reg, name, presence_trusted(), &st);
    int want = !model_channel_known(ch)        ? PRESENCE_ERR_UNKNOWN_NAMESPACE
               : !model_channel_has_presence(ch) ? PRESENCE_ERR_NOT_AVAILABLE
                                                 : PRESENCE_OK;
    CHECK(rc == want);
    if (rc != PRESENCE_OK) {
        return;
    }
    CHECK(st.num_clients == model_channel_count(&h->md, ch));
    CHECK(st.num_users == model_users_in(&h->md, ch));
    CHECK(st.seq == h->md.seq[ch]);
    CHECK((st.epoch == 0) == (st.num_clients == 0));
    CHECK(st.epoch == 0 || h->epochs[ch] == 0 || st.epoch == h->epochs[ch]);
    if (h->chans[ch] != NULL) { /* by handle: the very same */
        presence_channel_stats hs;
        CHECK(presence_channel_stats_get(reg, h->chans[ch], presence_trusted(),
                                         &hs) == PRESENCE_OK);
        CHECK(hs.num_clients == st.num_clients &&
              hs.num_users == st.num_users && hs.epoch == st.epoch &&
              hs.seq == st.seq);
    }
    check_changes(h, ch, &st);
    for (int u = 0; u < MODEL_USERS; u++) {
        size_t n = 99;
        CHECK(presence_user_present(reg, name, model_user_ids[u], &n) ==
              PRESENCE_OK);
        CHECK(n == model_user_count(&h->md, ch, u));
    }

    presence_snapshot *snap = NULL;
    CHECK(presence_query(reg, name, presence_trusted(), &snap) == PRESENCE_OK);
    CHECK(snap->count == st.num_clients);
    CHECK(snap->seq == h->md.seq[ch]);
    CHECK(snap->epoch == st.epoch);
    for (size_t i = 0; i < snap->count; i++) {
        check_snapshot_member(h, ch, &snap->members[i]);
    }
    presence_snapshot_free(snap);

    /* The zero-copy reader sees the same members. */
    struct visit_check vc = {h, ch, 0};
    presence_visit_info info;
    CHECK(presence_visit(reg, name, presence_trusted(), 0, 0, visit_member,
                         &vc, &info) == PRESENCE_OK);
    CHECK(vc.n == st.num_clients && info.visited == vc.n);
    CHECK(info.stats.epoch == st.epoch && info.stats.seq == st.seq);

    /* Paged walks return every member exactly once. */
    for (size_t limit = 1; limit <= 3; limit++) {
        bool seen[MODEL_CLIENTS] = {false};
        uint64_t cursor = 0;
        size_t total = 0;
        do {
            CHECK(presence_query_page(reg, name, presence_trusted(), cursor, limit, &snap) ==
                  PRESENCE_OK);
            for (size_t i = 0; i < snap->count; i++) {
                int c = model_name_index(model_client_ids, MODEL_CLIENTS,
                                 snap->members[i].client_id);
                CHECK(c >= 0 && !seen[c]);
                seen[c] = true;
                total++;
            }
            cursor = snap->next_cursor;
            presence_snapshot_free(snap);
        } while (cursor != 0);
        CHECK(total == st.num_clients);
    }
}

static void check_state(struct harness *h)
{
    h->no_fail = true;
    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        check_channel(h, ch);
    }
    size_t memberships = 0, clients = 0, channels = 0;
    bool user_seen[MODEL_USERS] = {false};
    for (int c = 0; c < MODEL_CLIENTS; c++) {
        size_t n = model_client_channels(&h->md, c);
        memberships += n;
        clients += model_client_known(&h->md, c);
        if (model_client_known(&h->md, c)) {
            user_seen[model_user_of(c)] = true;
        }
        presence_snapshot *snap = NULL;
        int rc = presence_client_channels(h->reg, model_client_ids[c], &snap);
        CHECK(rc == (n > 0 ? PRESENCE_OK : PRESENCE_ERR_NOT_FOUND));
        if (rc == PRESENCE_OK) {
            CHECK(snap->count == n);
            for (size_t i = 0; i < snap->count; i++) {
                int ch = model_name_index(model_channel_names, MODEL_CHANNELS,
                                  snap->members[i].channel);
                CHECK(ch >= 0);
                check_snapshot_member(h, ch, &snap->members[i]);
            }
            presence_snapshot_free(snap);
        }
    }
    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        channels += model_channel_count(&h->md, ch) > 0;
    }
    size_t users = 0;
    for (int u = 0; u < MODEL_USERS; u++) {
        users += user_seen[u];
    }
    /* Users across channels: every known client of the user counts. */
    for (int u = 0; u < MODEL_USERS; u++) {
        size_t want = 0, n = 99;
        for (int c = 0; c < MODEL_CLIENTS; c++) {
            want += model_client_known(&h->md, c) && model_user_of(c) == u;
        }
        CHECK(h->online[u] == (want > 0));
        CHECK(presence_user_status(h->reg, model_user_ids[u], &n) ==
              PRESENCE_OK);
        CHECK(n == want);
        presence_snapshot *us = NULL;
        CHECK(presence_user_clients(h->reg, model_user_ids[u], &us) ==
              PRESENCE_OK);
        CHECK(us->count == want);
        for (size_t i = 0; i < us->count; i++) {
            int c = model_name_index(model_client_ids, MODEL_CLIENTS,
                             us->members[i].client_id);
            CHECK(c >= 0 && model_user_of(c) == u &&
                  model_client_known(&h->md, c));
            CHECK(us->members[i].app == app_of(h, c));
            CHECK(strcmp(us->members[i].node_id,
                         model_node_name(h->md.node[c])) == 0);
        }
        presence_snapshot_free(us);
    }
    presence_counts counts;
    CHECK(presence_registry_counts(h->reg, &counts) == PRESENCE_OK);
    CHECK(counts.memberships == memberships);
    CHECK(counts.clients == clients);
    CHECK(counts.channels == channels);
    CHECK(counts.users == users);
    presence_channel_list *list = NULL;
    CHECK(presence_channels(h->reg, NULL, &list) == PRESENCE_OK);
    CHECK(list->count == channels);
    presence_channel_list_free(list);
    CHECK(presence_next_deadline_ms(h->reg) == model_next_deadline(&h->md));
    for (int k = MODEL_LOCAL; k < MODEL_NODES; k++) {
        presence_snapshot *snap = NULL;
        CHECK(presence_node_memberships(h->reg, model_node_name(k), &snap) ==
              PRESENCE_OK);
        CHECK(snap->count == model_node_memberships(&h->md, k));
        CHECK(snap->seq == 0 && snap->stats.num_clients == 0 &&
              snap->stats.num_users == 0 && snap->next_cursor == 0);
        for (size_t i = 0; i < snap->count; i++) {
            const presence_member *pm = &snap->members[i];
            int c = model_name_index(model_client_ids, MODEL_CLIENTS, pm->client_id);
            int ch = model_name_index(model_channel_names, MODEL_CHANNELS, pm->channel);
            CHECK(c >= 0 && ch >= 0 && h->md.node[c] == k);
            check_snapshot_member(h, ch, pm);
        }
        presence_snapshot_free(snap);
    }
    h->no_fail = false;
}

/* ---- operations -------------------------------------------------------- */

struct input {
    const uint8_t *data;
    size_t size;
    size_t at;
};

static uint8_t next_byte(struct input *in)
{
    return in->at < in->size ? in->data[in->at++] : 0;
}

/* A channel's handle is released and opened again (the record of an
 * empty channel goes, and comes back), with no allocation failing. */
static void channel_reopen(struct harness *h, int ch)
{
    h->no_fail = true;
    CHECK(presence_channel_release(h->reg, h->chans[ch]) == PRESENCE_OK);
    CHECK(presence_channel_open(h->reg, model_channel_names[ch],
                                &h->chans[ch]) == PRESENCE_OK);
    h->no_fail = false;
}

/* Apply one call to the library and to the model. A call that failed for
 * lack of memory must change nothing: the model is then left as it was. */
static void step(struct harness *h, struct input *in)
{
    uint8_t op = next_byte(in);
    uint8_t a = next_byte(in);
    uint8_t b = next_byte(in);
    int ch = a % MODEL_CHANNELS;
    int c = b % MODEL_CLIENTS;
    int info = (a / MODEL_CHANNELS) % MODEL_INFOS;
    presence_registry *reg = h->reg;
    const char *chn = model_channel_names[ch];
    const char *cid = model_client_ids[c];
    model before = h->md;
    int rc, want;

    /* Every few calls, fail one of the allocations of this call. */
    h->allocs = 0;
    h->fail_at = (op & 0x80) != 0 ? (size_t)(b >> 4) + 1 : 0;

    switch (op % 24) {
    case 0:
    case 1:
    case 12:
    case 13: { /* join, with a conflicting user now and then */
        int user = model_user_of(c);
        if ((a & 0xc0) == 0xc0 && model_client_channels(&h->md, c) > 0) {
            user = (user + 1) % MODEL_USERS;
        }
        const char *conn = model_conn_info_of(c);
        rc = presence_join(reg, chn, cid, model_user_ids[user], conn,
                           strlen(conn), model_infos[info],
                           strlen(model_infos[info]));
        want = model_join(&h->md, ch, c, user, info);
        break;
    }
    case 2:
        rc = presence_leave(reg, chn, cid);
        want = model_leave(&h->md, ch, c);
        break;
    case 3:
        rc = presence_disconnect(reg, cid, NULL);
        want = model_disconnect(&h->md, c);
        break;
    case 4:
        rc = presence_update(reg, chn, cid, model_infos[info],
                             strlen(model_infos[info]));
        want = model_update(&h->md, ch, c, info);
        break;
    case 5:
        rc = presence_touch(reg, chn, cid);
        want = model_touch(&h->md, ch, c);
        break;
    case 6:
        rc = presence_touch_client(reg, cid);
        want = model_touch_client(&h->md, c);
        break;
    case 7: { /* close: members leave in snapshot order */
        int order[MODEL_CLIENTS];
        size_t n = 0;
        presence_snapshot *snap = NULL;
        h->no_fail = true;
        if (presence_query(reg, chn, presence_trusted(), &snap) == PRESENCE_OK) {
            for (size_t i = 0; i < snap->count; i++) {
                order[n++] = model_name_index(model_client_ids, MODEL_CLIENTS,
                                      snap->members[i].client_id);
            }
            presence_snapshot_free(snap);
        }
        h->no_fail = false;
        size_t removed = 99;
        rc = presence_channel_close(reg, chn, &removed);
        want = model_close(&h->md, ch, order, n);
        CHECK(rc != PRESENCE_OK || removed == n);
        break;
    }
    case 8: { /* time passes, then expiry */
        h->clock += a % 40;
        h->md.now = h->clock;
        size_t expired = 99;
        int64_t next = 0;
        h->in_expire = true;
        rc = presence_expire(reg, h->clock, &expired, &next);
        h->in_expire = false;
        if (h->rejoin_after) {
            h->rejoin_after = false;
            h->no_fail = true;
            rejoin_room(reg);
            h->no_fail = false;
        }
        size_t n = model_expire(&h->md);
        want = PRESENCE_OK;
        CHECK(rc != PRESENCE_OK || expired == n);
        CHECK(rc != PRESENCE_OK || next > h->clock); /* nothing left due */
        break;
    }
    case 9: { /* change the TTL, leave grace and history_size of tt */
        static const int64_t ttls[] = {0, 30, 50, 100};
        static const int64_t graces[] = {0, 20, 60, 0};
        static const size_t sizes[] = {2, 0, 3, MODEL_LOG_MAX};
        presence_namespace_options o;
        presence_namespace_options_init(&o);
        o.ttl_ms = ttls[a % 4];
        o.leave_grace_ms = graces[(a / 4) % 4];
        o.grace_on_leave = (a & 0x10) != 0;
        o.grace_same_user = (a & 0x20) != 0;
        o.history_size = sizes[(a >> 6) & 3];
        rc = presence_namespace_set(reg, "tt", &o);
        want = PRESENCE_OK;
        if (rc == PRESENCE_OK) {
            model_set_ttl_t(&h->md, o.ttl_ms);
            model_set_grace_t(&h->md, o.leave_grace_ms, o.grace_on_leave,
                              o.grace_same_user);
            model_set_history_t(&h->md, o.history_size);
        }
        break;
    }
    case 10: /* the lobby subscription comes and goes */
        if (h->md.lobby_sub) {
            rc = presence_unsubscribe(reg, h->lobby_sub);
            want = PRESENCE_OK;
            h->md.lobby_sub = false;
        } else {
            rc = presence_subscribe(reg, PRESENCE_SCOPE_CHANNEL, "lobby",
                                    PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE,
                                    on_lobby, h, &h->lobby_sub);
            want = PRESENCE_OK;
            h->md.lobby_sub = true;
        }
        break;
    case 14: { /* a remote join, through the wrong node now and then */
        int node = c;
        if ((a & 0xc0) == 0xc0 && model_client_channels(&h->md, c) > 0) {
            node = (c + 1) % MODEL_NODES;
        }
        const char *conn = model_conn_info_of(c);
        rc = presence_remote_join(reg, model_node_ids[node], chn, cid,
                                  model_user_ids[model_user_of(c)], conn,
                                  strlen(conn), model_infos[info],
                                  strlen(model_infos[info]));
        want = model_join_node(&h->md, node, ch, c, model_user_of(c), info);
        break;
    }
    case 15: { /* a remote leave, any reason, the wrong node now and then */
        int node = (a & 0xc0) == 0xc0 ? (c + 1) % MODEL_NODES : c;
        presence_leave_reason reason =
            (presence_leave_reason)(1 + (b / MODEL_CLIENTS) % 6);
        rc = presence_remote_leave(reg, model_node_ids[node], chn, cid,
                                   reason);
        want = model_leave_node(&h->md, node, ch, c, reason);
        break;
    }
    case 16: { /* a node goes down */
        presence_leave_reason reason = (presence_leave_reason)(1 + a % 6);
        size_t left = 99;
        rc = presence_node_down(reg, model_node_ids[c], reason, &left);
        size_t n = model_node_down(&h->md, c, reason);
        want = PRESENCE_OK;
        /* One client per node: it leaves completely or not at all. */
        CHECK(rc == PRESENCE_OK ? left == n : left == 0);
        break;
    }
    case 17: /* the EVERY_NAMESPACE subscription comes and goes */
        if (h->md.every_sub) {
            rc = presence_unsubscribe(reg, h->every_sub);
            want = PRESENCE_OK;
            h->md.every_sub = false;
        } else {
            rc = presence_subscribe(reg, PRESENCE_SCOPE_ALL, NULL,
                                    PRESENCE_EVENTS_ALL |
                                        PRESENCE_EVENTS_EVERY_NAMESPACE,
                                    on_every, h, &h->every_sub);
            want = PRESENCE_OK;
            h->md.every_sub = true;
        }
        break;
    case 18: /* open a handle, or close it */
    case 19:
        if (h->handles[c] == NULL) {
            presence_client_options o;
            presence_client_options_init(&o);
            o.client_id = cid;
            o.user_id = model_user_ids[model_user_of(c)];
            o.conn_info = model_conn_info_of(c);
            o.conn_info_len = strlen(o.conn_info);
            o.app = h->app_ptrs[c];
            presence_client *handle = NULL;
            rc = presence_client_open(reg, &o, &handle);
            want = model_client_open(&h->md, c);
            if (rc == PRESENCE_OK) {
                h->handles[c] = handle;
            }
        } else if ((b & 0x40) == 0) {
            size_t left = 99;
            size_t n = model_client_active_channels(&h->md, c);
            rc = presence_client_close(reg, h->handles[c], &left);
            want = model_client_close(&h->md, c);
            if (rc == PRESENCE_OK) {
                CHECK(left == n);
                h->handles[c] = NULL;
            }
        } else {
            /* This handle and every open one after it in one call: as
             * closes one by one in that order, or (out of memory) none. */
            presence_client *batch[MODEL_CLIENTS];
            int which[MODEL_CLIENTS];
            size_t k = 0, n = 0, left = 99;
            for (int j = c; j < MODEL_CLIENTS; j++) {
                if (h->handles[j] != NULL) {
                    batch[k] = h->handles[j];
                    which[k++] = j;
                    n += model_client_active_channels(&h->md, j);
                }
            }
            rc = presence_client_close_many(reg, batch, k, &left);
            want = PRESENCE_OK;
            for (size_t i = 0; i < k; i++) {
                CHECK(model_client_close(&h->md, which[i]) == PRESENCE_OK);
            }
            if (rc == PRESENCE_OK) {
                CHECK(left == n);
                for (size_t i = 0; i < k; i++) {
                    h->handles[which[i]] = NULL;
                }
            }
        }
        break;
    case 20: /* join by handle */
    case 21: { /* leave, update or touch by handle */
        if (h->handles[c] == NULL) {
            rc = want = PRESENCE_OK; /* not open: nothing to call */
            break;
        }
        presence_change change;
        int which = op % 24 == 20 ? 0 : 1 + a / (MODEL_CHANNELS * MODEL_INFOS) % 3;
        const char *inf = model_infos[info];
        /* Join, leave, update and touch by channel handle now and then. */
        presence_channel *by = (b & 0x08) != 0 ? h->chans[ch] : NULL;
        if (by != NULL && (b & 0x80) != 0) {
            channel_reopen(h, ch);
            by = h->chans[ch];
        }
        switch (which) {
        case 0:
            rc = by != NULL
                     ? presence_client_join_channel(reg, h->handles[c], by,
                                                    inf, strlen(inf), &change)
                     : presence_client_join(reg, h->handles[c], chn, inf,
                                            strlen(inf), &change);
            want = model_join(&h->md, ch, c, model_user_of(c), info);
            break;
        case 1:
            rc = by != NULL ? presence_client_leave_channel(
                                  reg, h->handles[c], by, &change)
                            : presence_client_leave(reg, h->handles[c], chn,
                                                    &change);
            want = model_leave(&h->md, ch, c);
            break;
        case 2:
            rc = by != NULL ? presence_client_update_channel(
                                  reg, h->handles[c], by, inf, strlen(inf),
                                  &change)
                            : presence_client_update(reg, h->handles[c], chn,
                                                     inf, strlen(inf),
                                                     &change);
            want = model_update(&h->md, ch, c, info);
            break;
        default:
            rc = by != NULL
                     ? presence_client_touch_channel(reg, h->handles[c], by)
                     : presence_client_touch(reg, h->handles[c], chn);
            want = model_touch(&h->md, ch, c);
            break;
        }
        if (rc == PRESENCE_OK && which < 3) {
            CHECK(change.stats.num_clients == model_channel_count(&h->md, ch));
            CHECK(change.stats.seq == h->md.seq[ch] ||
                  (change.kind == PRESENCE_CHANGE_LEFT &&
                   change.stats.num_clients == 0));
        }
        break;
    }
    case 22: { /* many channels by handle, all or nothing */
        if (h->handles[c] == NULL) {
            rc = want = PRESENCE_OK;
            break;
        }
        presence_join_item items[3];
        presence_channel_join_item by_items[3];
        bool by = (b & 0x08) != 0; /* by channel handles, if all have one */
        int n = 1 + a % 3;
        model trial = h->md;
        trial.no_take_place = true; /* join_many takes no place */
        want = PRESENCE_OK;
        size_t want_failed = (size_t)n;
        for (int i = 0; i < n; i++) {
            int chi = (ch + i) % MODEL_CHANNELS;
            int infi = (info + i) % MODEL_INFOS;
            items[i].channel = model_channel_names[chi];
            items[i].chan_info = model_infos[infi];
            items[i].chan_info_len = strlen(model_infos[infi]);
            by_items[i].channel = h->chans[chi];
            by_items[i].chan_info = items[i].chan_info;
            by_items[i].chan_info_len = items[i].chan_info_len;
            by = by && h->chans[chi] != NULL;
            if (want == PRESENCE_OK) {
                want = model_join(&trial, chi, c, model_user_of(c), infi);
                if (want != PRESENCE_OK) {
                    want_failed = (size_t)i;
                }
            }
        }
        presence_change results[3];
        size_t failed = 99;
        rc = by ? presence_client_join_channel_many(reg, h->handles[c],
                                                    by_items, (size_t)n,
                                                    results, &failed)
                : presence_client_join_many(reg, h->handles[c], items,
                                            (size_t)n, results, &failed);
        if (want == PRESENCE_OK) {
            h->md = trial;
            h->md.no_take_place = false;
        }
        if (rc != PRESENCE_OK && rc != PRESENCE_ERR_NOMEM) {
            CHECK(failed == want_failed);
        }
        break;
    }
    case 23: /* a visit by a requester: the access check applies */
    {
        presence_requester req = {cid, NULL};
        struct visit_check vc = {h, ch, 0};
        presence_visit_info vi;
        rc = presence_visit(reg, chn, &req, 0, 1 + b % 4, visit_member, &vc,
                            &vi);
        want = !model_channel_known(ch) ? PRESENCE_ERR_UNKNOWN_NAMESPACE
               : !model_channel_has_presence(ch) ? PRESENCE_ERR_NOT_AVAILABLE
               : h->md.m[c][ch].in               ? PRESENCE_OK
                                                 : PRESENCE_ERR_DENIED;
        CHECK(rc != PRESENCE_OK || vc.n == vi.visited);
        break;
    }
    default: /* reads under allocation failure change nothing */
        {
            presence_snapshot *snap = NULL;
            rc = presence_query_page(reg, chn, presence_trusted(), 0, 1 + a % 3, &snap);
            want = !model_channel_known(ch) ? PRESENCE_ERR_UNKNOWN_NAMESPACE
                   : !model_channel_has_presence(ch)
                       ? PRESENCE_ERR_NOT_AVAILABLE
                       : PRESENCE_OK;
            presence_snapshot_free(snap);
        }
        break;
    }
    h->fail_at = 0;
    if (rc == PRESENCE_ERR_NOMEM) {
        /* Out of memory: nothing happened, nothing was announced; but
         * time went on (an expiry moves the clock before it fails). */
        h->md = before;
        h->md.now = h->clock;
    } else {
        if (rc != want) {
            fprintf(stderr, "op %d (a %d b %d): library %s, model %s\n",
                    op % 24, a, b, presence_error_name(rc),
                    presence_error_name(want));
        }
        CHECK(rc == want);
        model_settle(&h->md);
    }
    coalesce_check_feed(&h->coalesce, h->md.events, h->md.nevents);
    check_events(h);
    check_state(h);
    coalesce_check_step(&h->coalesce, reg, op, h->clock, h->epochs);
}

int presence_fuzz_api_sequence(const uint8_t *data, size_t size)
{
    struct harness *h = calloc(1, sizeof *h);
    if (h == NULL) {
        return 0;
    }
    model_init(&h->md);
    h->clock = h->md.now;
    for (int c = 0; c < MODEL_CLIENTS; c++) {
        h->app_ptrs[c] = &h->apps[c];
    }

    presence_config cfg;
    presence_config_init(&cfg);
    cfg.allocator.malloc_fn = fz_malloc;
    cfg.allocator.realloc_fn = fz_realloc;
    cfg.allocator.free_fn = fz_free;
    cfg.allocator.user_data = h;
    cfg.clock = fz_clock;
    cfg.clock_user_data = h;
    cfg.hash_seed = 0x5eed;
    cfg.single_threaded = size > 0 && (data[0] & 1) != 0;
    cfg.limits.channels_per_client_max = MODEL_CHANNELS_PER_CLIENT;
    cfg.limits.members_per_channel_max = MODEL_MEMBERS_PER_CHANNEL;
    cfg.limits.channels_max = MODEL_CHANNELS_MAX;
    CHECK(presence_registry_new(&cfg, &h->reg) == PRESENCE_OK);

    /* Logs: small enough that they wrap. */
    h->md.hist_default = 4;

    h->md.hist_t = 2;
    h->md.hist_q = 3;
    presence_namespace_options o;
    presence_namespace_options_init(&o);
    o.history_size = h->md.hist_default;
    CHECK(presence_namespace_set(h->reg, "", &o) == PRESENCE_OK);
    presence_namespace_options_init(&o);
    o.ttl_ms = h->md.ttl_t;
    o.history_size = h->md.hist_t;
    CHECK(presence_namespace_set(h->reg, "tt", &o) == PRESENCE_OK);
    presence_namespace_options_init(&o);
    o.join_leave = false;
    o.history_size = h->md.hist_q;
    CHECK(presence_namespace_set(h->reg, "qq", &o) == PRESENCE_OK);
    presence_namespace_options_init(&o);
    o.presence = false;
    CHECK(presence_namespace_set(h->reg, "off", &o) == PRESENCE_OK);
    presence_subscription sub;
    CHECK(presence_subscribe(h->reg, PRESENCE_SCOPE_ALL, NULL,
                             PRESENCE_EVENTS_ALL, on_event, h,
                             &sub) == PRESENCE_OK);
    presence_subscription users_sub;
    CHECK(presence_subscribe(h->reg, PRESENCE_SCOPE_ALL, NULL,
                             PRESENCE_EVENTS_USERS, on_user, h,
                             &users_sub) == PRESENCE_OK);

    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        int rc = presence_channel_open(h->reg, model_channel_names[ch],
                                       &h->chans[ch]);
        CHECK(rc == (!model_channel_known(ch) ? PRESENCE_ERR_UNKNOWN_NAMESPACE
                     : !model_channel_has_presence(ch)
                         ? PRESENCE_ERR_NOT_AVAILABLE
                         : PRESENCE_OK));
    }

    coalesce_check_start(&h->coalesce, h->reg);

    struct input in = {data, size, 1};
    for (int steps = 0; in.at < in.size && steps < 2000; steps++) {
        step(h, &in);
    }
    /* Half the channel handles are released, the rest go with the
     * registry. */
    for (int ch = 0; ch < MODEL_CHANNELS; ch += 2) {
        CHECK(presence_channel_release(h->reg, h->chans[ch]) == PRESENCE_OK);
    }
    CHECK(presence_registry_free(h->reg) == PRESENCE_OK);
    CHECK(h->live_blocks == 0);
    free(h);
    return 0;
}
