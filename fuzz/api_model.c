/*
 * The reference model (see api_model.h).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "api_model.h"

/* lobby, room: default namespace; t: TTL; q: no events; off: presence
 * off; nope: unknown namespace. */
const char *const model_channel_names[MODEL_CHANNELS] = {
    "lobby", "room", "tt:a", "tt:b", "qq:a", "off:a", "nope:a",
};
const char *const model_client_ids[MODEL_CLIENTS] = {
    "c0", "c1", "c2", "c3", "c4", "c5",
};
const char *const model_user_ids[MODEL_USERS] = {"u0", "u1", ""};
const char *const model_infos[MODEL_INFOS] = {"", "x", "yy"};
const char *const model_node_ids[MODEL_NODES] = {
    "n0", "n1", "n2", "n3", "n4", "n5",
};

const char *model_node_name(int node)
{
    return node == MODEL_LOCAL ? "" : model_node_ids[node];
}

static const char *const conn_infos[MODEL_CLIENTS] = {
    "ci0", "ci1", "", "ci3", "ci4", "",
};

int model_user_of(int client)
{
    return client % MODEL_USERS;
}

const char *model_conn_info_of(int client)
{
    return conn_infos[client];
}

void model_init(model *md)
{
    memset(md, 0, sizeof *md);
    md->now = 1000;
    md->ttl_t = 50;
    for (int c = 0; c < MODEL_CLIENTS; c++) {
        md->node[c] = MODEL_LOCAL;
    }
}

/* Whether a client (in some channel) is the registry's own: only those
 * have a TTL here, and only those the local calls accept. */
static bool is_local(const model *md, int client)
{
    return md->node[client] == MODEL_LOCAL;
}

static bool in_ns_t(int channel)
{
    return channel == 2 || channel == 3;
}

static bool events_on(int channel)
{
    return channel != 4;
}

bool model_channel_known(int channel)
{
    return channel != 6;
}

bool model_channel_has_presence(int channel)
{
    return channel != 5;
}

size_t model_channel_count(const model *md, int channel)
{
    size_t n = 0;
    for (int c = 0; c < MODEL_CLIENTS; c++) {
        n += md->m[c][channel].in;
    }
    return n;
}

size_t model_user_count(const model *md, int channel, int user)
{
    size_t n = 0;
    for (int c = 0; c < MODEL_CLIENTS; c++) {
        n += md->m[c][channel].in && model_user_of(c) == user;
    }
    return n;
}

size_t model_users_in(const model *md, int channel)
{
    size_t n = 0;
    for (int u = 0; u < MODEL_USERS; u++) {
        n += model_user_count(md, channel, u) > 0;
    }
    return n;
}

size_t model_client_channels(const model *md, int client)
{
    size_t n = 0;
    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        n += md->m[client][ch].in;
    }
    return n;
}

static size_t live_channels(const model *md)
{
    size_t n = 0;
    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        n += model_channel_count(md, ch) > 0;
    }
    return n;
}

size_t model_history_size(const model *md, int channel)
{
    return in_ns_t(channel) ? md->hist_t
           : channel == 4   ? md->hist_q
                            : md->hist_default;
}

/* A change that just made md->seq[channel] goes into its log. */
static void log_change_at(model *md, presence_event_kind kind,
                          presence_leave_reason reason, int channel,
                          int client, int info, int64_t time_ms)
{
    model_log *lg = &md->logs[channel];
    if (!lg->on) {
        return;
    }
    if (lg->len == model_history_size(md, channel)) {
        lg->since = lg->changes[0].seq;
        memmove(&lg->changes[0], &lg->changes[1],
                (lg->len - 1) * sizeof lg->changes[0]);
        lg->len--;
    }
    lg->changes[lg->len++] = (model_change){
        kind, reason, client, info, md->seq[channel], time_ms,
        md->node[client], md->open[client]};
}

static void log_change(model *md, presence_event_kind kind,
                       presence_leave_reason reason, int channel, int client,
                       int info)
{
    log_change_at(md, kind, reason, channel, client, info, md->now);
}

void model_set_history_t(model *md, size_t size)
{
    if (size == md->hist_t) {
        return;
    }
    md->hist_t = size;
    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        model_log *lg = &md->logs[ch];
        if (!in_ns_t(ch) || model_channel_count(md, ch) == 0) {
            continue;
        }
        if (size == 0) {
            lg->on = false;
        } else if (!lg->on) {
            *lg = (model_log){.on = true, .since = md->seq[ch]};
        } else if (lg->len > size) {
            size_t drop = lg->len - size;
            lg->since = lg->changes[drop - 1].seq;
            memmove(&lg->changes[0], &lg->changes[drop],
                    size * sizeof lg->changes[0]);
            lg->len = size;
        }
    }
}

int model_changes_since(const model *md, int channel, bool epoch_now,
                        bool epoch_zero, uint64_t seq, size_t *first)
{
    const model_log *lg = &md->logs[channel];
    *first = 0;
    if (model_channel_count(md, channel) == 0) {
        return epoch_zero && seq == 0 ? PRESENCE_OK
                                      : PRESENCE_ERR_SNAPSHOT_NEEDED;
    }
    if (!lg->on || !(epoch_now || (epoch_zero && seq == 0)) ||
        seq < lg->since || seq > md->seq[channel]) {
        return PRESENCE_ERR_SNAPSHOT_NEEDED;
    }
    *first = (size_t)(seq - lg->since);
    return PRESENCE_OK;
}

static void emit_at(model *md, presence_event_kind kind,
                    presence_leave_reason reason, int channel, int client,
                    int info, int64_t time_ms)
{
    bool muted = !events_on(channel);
    if ((muted && !md->every_sub) || md->nevents >= MODEL_MAX_EVENTS) {
        return;
    }
    model_event *e = &md->events[md->nevents++];
    e->muted = muted;
    e->node = md->node[client];
    e->kind = kind;
    e->reason = reason;
    e->channel = channel;
    e->client = client;
    e->info = info;
    e->seq = md->seq[channel];
    e->time_ms = time_ms;
    e->num_clients = model_channel_count(md, channel);
    e->num_users = model_users_in(md, channel);
}

static void emit(model *md, presence_event_kind kind,
                 presence_leave_reason reason, int channel, int client,
                 int info)
{
    emit_at(md, kind, reason, channel, client, info, md->now);
}

/* A member leaves; its events are dated time_ms. */
static void remove_member_at(model *md, int channel, int client,
                             presence_leave_reason reason, int64_t time_ms)
{
    model_member *mm = &md->m[client][channel];
    int info = mm->info;
    mm->in = false;
    mm->graced = false;
    md->seq[channel]++;
    log_change_at(md, PRESENCE_EVENT_LEAVE, reason, channel, client, info,
                  time_ms);
    bool last = model_user_count(md, channel, model_user_of(client)) == 0;
    emit_at(md, PRESENCE_EVENT_LEAVE, reason, channel, client, info, time_ms);
    if (last) {
        emit_at(md, PRESENCE_EVENT_USER_LEAVE, reason, channel, client, info,
                time_ms);
    }
    if (model_channel_count(md, channel) == 0) {
        md->seq[channel] = 0;
        md->logs[channel].on = false; /* the log goes with the life */
    }
}

static void remove_member(model *md, int channel, int client,
                          presence_leave_reason reason)
{
    remove_member_at(md, channel, client, reason, md->now);
}

/* Whether a member of client in channel that leaves for reason goes into
 * grace instead (only namespace tt has a grace). */
static bool grace_applies(const model *md, int channel, int client,
                          presence_leave_reason reason)
{
    return in_ns_t(channel) && md->grace_t > 0 && is_local(md, client) &&
           (reason == PRESENCE_LEAVE_DISCONNECT ||
            reason == PRESENCE_LEAVE_EXPIRED ||
            (reason == PRESENCE_LEAVE_EXPLICIT && md->grace_on_leave_t));
}

/* The member's connection dropped: it stays, in grace. */
static void drop(model *md, model_member *mm, presence_leave_reason reason)
{
    mm->graced = true;
    mm->grace_reason = reason;
    mm->touched_at = md->now;
    mm->drop_order = ++md->orders;
}

static void touch(model *md, model_member *mm)
{
    mm->touched_at = md->now;
    mm->touch_order = ++md->orders;
}

/* With grace_same_user: the newest client of the user (other than
 * client, local) whose member in channel is in grace, or -1. */
static int place_to_take(const model *md, int channel, int client, int user)
{
    if (!in_ns_t(channel) || md->grace_t <= 0 || !md->grace_same_user_t ||
        md->no_take_place || model_user_ids[user][0] == '\0') {
        return -1;
    }
    int best = -1;
    for (int c = 0; c < MODEL_CLIENTS; c++) {
        const model_member *mm = &md->m[c][channel];
        if (c != client && model_user_of(c) == user && is_local(md, c) &&
            mm->in && mm->graced &&
            (best < 0 || md->created[c] > md->created[best])) {
            best = c;
        }
    }
    return best;
}

/* client takes the place of other's member in grace: one change, no join
 * or leave, an update if the info differs; the old join time stays. */
static void take_place(model *md, int channel, int client, int other,
                       int info)
{
    model_member *old = &md->m[other][channel];
    model_member *mm = &md->m[client][channel];
    if (!model_client_known(md, client)) {
        md->created[client] = ++md->orders;
    }
    md->node[client] = MODEL_LOCAL;
    int old_info = old->info;
    mm->in = true;
    mm->graced = false;
    mm->info = info;
    mm->joined_at = old->joined_at;
    mm->join_order = ++md->orders;
    touch(md, mm);
    old->in = false;
    old->graced = false;
    md->seq[channel]++;
    /* Not a join or a leave: the log restarts at this version. */
    md->logs[channel].len = 0;
    md->logs[channel].since = md->seq[channel];
    if (old_info != info) {
        emit(md, PRESENCE_EVENT_UPDATE, PRESENCE_LEAVE_NONE, channel, client,
             info);
    }
}

int model_join(model *md, int channel, int client, int user, int info)
{
    return model_join_node(md, MODEL_LOCAL, channel, client, user, info);
}

int model_join_node(model *md, int node, int channel, int client, int user,
                    int info)
{
    if (!model_channel_known(channel)) {
        return PRESENCE_ERR_UNKNOWN_NAMESPACE;
    }
    if (!model_channel_has_presence(channel)) {
        return PRESENCE_ERR_NOT_AVAILABLE;
    }
    if (model_client_known(md, client) &&
        (user != model_user_of(client) || md->node[client] != node)) {
        return PRESENCE_ERR_CONFLICT;
    }
    model_member *mm = &md->m[client][channel];
    if (mm->in) {
        if (mm->info != info) {
            mm->info = info;
            md->seq[channel]++;
            log_change(md, PRESENCE_EVENT_UPDATE, PRESENCE_LEAVE_NONE,
                       channel, client, info);
            emit(md, PRESENCE_EVENT_UPDATE, PRESENCE_LEAVE_NONE, channel,
                 client, info);
        }
        mm->graced = false; /* back in time: it resumes */
        touch(md, mm);
        return PRESENCE_OK;
    }
    int other = node == MODEL_LOCAL ? place_to_take(md, channel, client, user)
                                    : -1;
    if (other >= 0) {
        if (model_client_channels(md, client) >= MODEL_CHANNELS_PER_CLIENT) {
            return PRESENCE_ERR_CLIENT_CHANNEL_LIMIT;
        }
        take_place(md, channel, client, other, info);
        return PRESENCE_OK;
    }
    if (model_client_channels(md, client) >= MODEL_CHANNELS_PER_CLIENT) {
        return PRESENCE_ERR_CLIENT_CHANNEL_LIMIT;
    }
    size_t count = model_channel_count(md, channel);
    if (count >= MODEL_MEMBERS_PER_CHANNEL) {
        return PRESENCE_ERR_CHANNEL_MEMBER_LIMIT;
    }
    if (count == 0 && live_channels(md) >= MODEL_CHANNELS_MAX) {
        return PRESENCE_ERR_CHANNEL_LIMIT;
    }
    bool first = model_user_count(md, channel, user) == 0;
    if (!model_client_known(md, client)) {
        md->created[client] = ++md->orders;
    }
    md->node[client] = node; /* the same, or the first channel's */
    if (count == 0) { /* a new life, with a log from its start */
        md->logs[channel] =
            (model_log){.on = model_history_size(md, channel) > 0};
    }
    mm->in = true;
    mm->info = info;
    mm->joined_at = md->now;
    mm->join_order = ++md->orders;
    touch(md, mm);
    md->seq[channel]++;
    log_change(md, PRESENCE_EVENT_JOIN, PRESENCE_LEAVE_NONE, channel, client,
               info);
    emit(md, PRESENCE_EVENT_JOIN, PRESENCE_LEAVE_NONE, channel, client, info);
    if (first) {
        emit(md, PRESENCE_EVENT_USER_JOIN, PRESENCE_LEAVE_NONE, channel,
             client, info);
    }
    return PRESENCE_OK;
}

static int find_member(const model *md, int channel, int client)
{
    if (!model_channel_known(channel)) {
        return PRESENCE_ERR_UNKNOWN_NAMESPACE;
    }
    return md->m[client][channel].in ? PRESENCE_OK : PRESENCE_ERR_NOT_FOUND;
}

int model_leave(model *md, int channel, int client)
{
    return model_leave_node(md, MODEL_LOCAL, channel, client,
                            PRESENCE_LEAVE_EXPLICIT);
}

int model_leave_node(model *md, int node, int channel, int client,
                     presence_leave_reason reason)
{
    int rc = find_member(md, channel, client);
    if (rc == PRESENCE_OK && md->node[client] != node) {
        rc = PRESENCE_ERR_CONFLICT;
    }
    model_member *mm = &md->m[client][channel];
    if (rc == PRESENCE_OK && !mm->graced &&
        grace_applies(md, channel, client, reason)) {
        drop(md, mm, reason);
    } else if (rc == PRESENCE_OK) {
        remove_member(md, channel, client, reason); /* graced: at once */
    }
    return rc;
}

/* Every membership of a client leaves or drops into grace, newest first
 * (its list's order); those in grace already keep their drop. */
static size_t leave_all(model *md, int client, presence_leave_reason reason)
{
    size_t n = 0;
    uint64_t below = UINT64_MAX;
    for (;;) {
        int newest = -1;
        for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
            const model_member *mm = &md->m[client][ch];
            if (mm->in && mm->join_order < below &&
                (newest < 0 ||
                 mm->join_order > md->m[client][newest].join_order)) {
                newest = ch;
            }
        }
        if (newest < 0) {
            return n;
        }
        model_member *mm = &md->m[client][newest];
        below = mm->join_order;
        if (mm->graced) {
            continue;
        }
        if (grace_applies(md, newest, client, reason)) {
            drop(md, mm, reason);
        } else {
            remove_member(md, newest, client, reason);
        }
        n++;
    }
}

size_t model_client_active_channels(const model *md, int client)
{
    size_t n = 0;
    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        n += md->m[client][ch].in && !md->m[client][ch].graced;
    }
    return n;
}

bool model_client_known(const model *md, int client)
{
    return md->open[client] || model_client_channels(md, client) > 0;
}

int model_client_open(model *md, int client)
{
    if (model_client_known(md, client) &&
        (md->open[client] || !is_local(md, client) ||
         model_client_active_channels(md, client) > 0)) {
        return PRESENCE_ERR_CONFLICT;
    }
    /* Unknown, or every membership in grace: a new record takes them. */
    md->created[client] = ++md->orders;
    md->open[client] = true;
    md->node[client] = MODEL_LOCAL;
    return PRESENCE_OK;
}

int model_client_close(model *md, int client)
{
    (void)leave_all(md, client, PRESENCE_LEAVE_DISCONNECT);
    md->open[client] = false;
    return PRESENCE_OK;
}

int model_disconnect(model *md, int client)
{
    if (model_client_channels(md, client) > 0 && !is_local(md, client)) {
        return PRESENCE_ERR_CONFLICT;
    }
    (void)leave_all(md, client, PRESENCE_LEAVE_DISCONNECT);
    return PRESENCE_OK;
}

size_t model_node_down(model *md, int node, presence_leave_reason reason)
{
    size_t n = 0;
    for (int c = 0; c < MODEL_CLIENTS; c++) {
        if (model_client_channels(md, c) > 0 && md->node[c] == node) {
            n += leave_all(md, c, reason);
        }
    }
    return n;
}

size_t model_node_memberships(const model *md, int node)
{
    size_t n = 0;
    for (int c = 0; c < MODEL_CLIENTS; c++) {
        if (md->node[c] == node) {
            n += model_client_channels(md, c);
        }
    }
    return n;
}

int model_update(model *md, int channel, int client, int info)
{
    int rc = find_member(md, channel, client);
    if (rc == PRESENCE_OK && !is_local(md, client)) {
        rc = PRESENCE_ERR_CONFLICT;
    }
    model_member *mm = &md->m[client][channel];
    if (rc == PRESENCE_OK && mm->info != info) {
        mm->info = info;
        md->seq[channel]++;
        log_change(md, PRESENCE_EVENT_UPDATE, PRESENCE_LEAVE_NONE, channel,
                   client, info);
        emit(md, PRESENCE_EVENT_UPDATE, PRESENCE_LEAVE_NONE, channel, client,
             info);
    }
    return rc;
}

int model_touch(model *md, int channel, int client)
{
    int rc = find_member(md, channel, client);
    if (rc == PRESENCE_OK && !is_local(md, client)) {
        rc = PRESENCE_ERR_CONFLICT;
    }
    if (rc == PRESENCE_OK && !md->m[client][channel].graced) {
        touch(md, &md->m[client][channel]);
    }
    return rc;
}

int model_touch_client(model *md, int client)
{
    if (!model_client_known(md, client)) {
        return PRESENCE_ERR_NOT_FOUND; /* an open one in no channel is known */
    }
    if (!is_local(md, client)) {
        return PRESENCE_ERR_CONFLICT;
    }
    /* Renewed newest first, as the client's list runs. */
    int order[MODEL_CHANNELS];
    int n = 0;
    for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
        if (md->m[client][ch].in && !md->m[client][ch].graced) {
            order[n++] = ch;
        }
    }
    for (int i = 1; i < n; i++) {
        for (int j = i; j > 0 && md->m[client][order[j]].join_order >
                                     md->m[client][order[j - 1]].join_order;
             j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    }
    for (int i = 0; i < n; i++) {
        touch(md, &md->m[client][order[i]]);
    }
    return PRESENCE_OK;
}

int model_close(model *md, int channel, const int *order, size_t n)
{
    if (!model_channel_known(channel)) {
        return PRESENCE_ERR_UNKNOWN_NAMESPACE;
    }
    for (size_t i = 0; i < n; i++) {
        remove_member(md, channel, order[i], PRESENCE_LEAVE_CLOSED);
    }
    return PRESENCE_OK;
}

/* The TTL of namespace "t" changes. Turned on, the library orders the
 * namespace's local memberships by touch time, those touched in the same
 * millisecond by client id, then channel name (byte order): it keeps no
 * touch order while there is no TTL. */
void model_set_ttl_t(model *md, int64_t ttl)
{
    if (md->ttl_t <= 0 && ttl > 0) {
        /* Renumber in turn the least member not renumbered yet (orders
         * up to `start`). */
        const uint64_t start = md->orders;
        for (;;) {
            int bc = -1, bch = -1;
            for (int c = 0; c < MODEL_CLIENTS; c++) {
                for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
                    const model_member *mm = &md->m[c][ch];
                    if (!mm->in || mm->graced || !in_ns_t(ch) ||
                        !is_local(md, c) || mm->touch_order > start) {
                        continue;
                    }
                    const model_member *b =
                        bc < 0 ? NULL : &md->m[bc][bch];
                    int cmp = b == NULL ? -1
                              : mm->touched_at != b->touched_at
                                  ? (mm->touched_at < b->touched_at ? -1 : 1)
                                  : strcmp(model_client_ids[c],
                                           model_client_ids[bc]);
                    if (cmp == 0) {
                        cmp = strcmp(model_channel_names[ch],
                                     model_channel_names[bch]);
                    }
                    if (cmp < 0) {
                        bc = c;
                        bch = ch;
                    }
                }
            }
            if (bc < 0) {
                break;
            }
            md->m[bc][bch].touch_order = ++md->orders;
        }
    }
    md->ttl_t = ttl;
}

void model_set_grace_t(model *md, int64_t grace, bool on_leave,
                       bool same_user)
{
    md->grace_t = grace;
    md->grace_on_leave_t = on_leave;
    md->grace_same_user_t = same_user;
}

static int64_t grace_end(const model *md, const model_member *mm)
{
    return mm->touched_at + (md->grace_t > 0 ? md->grace_t : 0);
}

/* TTLs run out (into grace where tt has one), then graces end, each
 * channel's in (reason, drop) order, dated at the drop. */
size_t model_expire(model *md)
{
    size_t n = 0;
    while (md->ttl_t > 0) {
        int oc = -1, och = -1;
        for (int c = 0; c < MODEL_CLIENTS; c++) {
            for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
                const model_member *mm = &md->m[c][ch];
                if (mm->in && !mm->graced && in_ns_t(ch) && is_local(md, c) &&
                    (oc < 0 || mm->touch_order < md->m[oc][och].touch_order)) {
                    oc = c;
                    och = ch;
                }
            }
        }
        if (oc < 0 || md->m[oc][och].touched_at + md->ttl_t > md->now) {
            break;
        }
        if (grace_applies(md, och, oc, PRESENCE_LEAVE_EXPIRED)) {
            drop(md, &md->m[oc][och], PRESENCE_LEAVE_EXPIRED);
        } else {
            remove_member(md, och, oc, PRESENCE_LEAVE_EXPIRED);
            n++;
        }
    }
    for (;;) {
        int oc = -1, och = -1;
        for (int c = 0; c < MODEL_CLIENTS; c++) {
            for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
                const model_member *mm = &md->m[c][ch];
                if (!mm->in || !mm->graced || grace_end(md, mm) > md->now) {
                    continue;
                }
                const model_member *b = oc < 0 ? NULL : &md->m[oc][och];
                if (b == NULL || mm->grace_reason < b->grace_reason ||
                    (mm->grace_reason == b->grace_reason &&
                     mm->drop_order < b->drop_order)) {
                    oc = c;
                    och = ch;
                }
            }
        }
        if (oc < 0) {
            return n;
        }
        model_member *mm = &md->m[oc][och];
        remove_member_at(md, och, oc, mm->grace_reason, mm->touched_at);
        n++;
    }
}

int64_t model_next_deadline(const model *md)
{
    int64_t next = PRESENCE_NO_DEADLINE;
    for (int c = 0; c < MODEL_CLIENTS; c++) {
        for (int ch = 0; ch < MODEL_CHANNELS; ch++) {
            const model_member *mm = &md->m[c][ch];
            int64_t d = !mm->in ? PRESENCE_NO_DEADLINE
                        : mm->graced ? grace_end(md, mm)
                        : md->ttl_t > 0 && in_ns_t(ch) && is_local(md, c)
                            ? mm->touched_at + md->ttl_t
                            : PRESENCE_NO_DEADLINE;
            next = d < next ? d : next;
        }
    }
    return next;
}

/*
 * The re-entry rules, mirrored by the fuzzer's callback:
 * - c0's last connection leaving explicitly rejoins it to "room";
 * - c5 joining "lobby" leaves it again at once.
 */
void model_settle(model *md)
{
    for (size_t i = 0; i < md->nevents; i++) {
        model_event e = md->events[i];
        if (e.muted) {
            continue; /* the rules' callback does not see these */
        }
        if (e.kind == PRESENCE_EVENT_USER_LEAVE && e.client == 0 &&
            e.reason == PRESENCE_LEAVE_EXPLICIT) {
            (void)model_join(md, MODEL_ROOM, 0, model_user_of(0), 0);
        } else if (e.kind == PRESENCE_EVENT_JOIN && e.client == 5 &&
                   e.channel == MODEL_LOBBY) {
            (void)model_leave(md, MODEL_LOBBY, 5);
        }
    }
}

int model_name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

int model_info_index(const void *data, size_t len)
{
    for (int i = 0; i < MODEL_INFOS; i++) {
        if (strlen(model_infos[i]) == len &&
            (len == 0 || memcmp(model_infos[i], data, len) == 0)) {
            return i;
        }
    }
    return -1;
}
