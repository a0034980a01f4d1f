/*
 * The hub: channel -> subscribers, and the fan-out of libpresence events.
 *
 * The event callback runs on whichever thread delivers libpresence events
 * (the event loop, or with Redis the cluster's thread, which applies the
 * other nodes' joins and leaves), possibly while the loop holds a
 * connection's write lock or waits in a library call. It therefore takes only the hub lock and then queue
 * locks, which nobody holds while calling the library or writing to a
 * socket, so it cannot deadlock and never waits for the network.
 * SPDX-License-Identifier: MIT
 */
#include "hub.h"

#include "conn.h"
#include "mem.h"
#include "server.h"
#include "wire.h"

#include <stdlib.h>
#include <string.h>

void ps_hub_init(ps_hub *hub)
{
    pthread_mutex_init(&hub->lock, NULL);
    hub->channels = NULL;
}

void ps_hub_destroy(ps_hub *hub)
{
    /* Every connection has removed its subscriptions by now. */
    pthread_mutex_destroy(&hub->lock);
}

/* Forget the pushes kept from before the subscriber started. */
static void early_drop(ps_sub *sub)
{
    for (size_t i = 0; i < sub->early_count; i++) {
        ps_msg_unref(sub->early[i].msg);
    }
    ps_free(sub->early);
    sub->early = NULL;
    sub->early_count = sub->early_cap = 0;
}

static void sub_free(ps_sub *sub)
{
    for (size_t i = 0; i < sub->deferred_count; i++) {
        ps_msg_unref(sub->deferred[i]);
    }
    ps_free(sub->deferred);
    early_drop(sub);
    ps_conn_unref(sub->conn);
    ps_free(sub->channel);
    ps_free(sub);
}

/* Under the hub lock. */
static ps_hub_channel *channel_get(ps_hub *hub, const char *name, bool create)
{
    ps_hub_channel *ch = NULL;
    HASH_FIND_STR(hub->channels, name, ch);
    if (ch != NULL || !create) {
        return ch;
    }
    ch = ps_calloc(1, sizeof *ch);
    if (ch == NULL || (ch->name = ps_strdup(name)) == NULL) {
        ps_free(ch);
        return NULL;
    }
    HASH_ADD_KEYPTR(hh, hub->channels, ch->name, strlen(ch->name), ch);
    if (!ps_hash_added(ch, hh)) {
        ps_free(ch->name);
        ps_free(ch);
        return NULL;
    }
    return ch;
}

/* Under the hub lock: unlink a subscription everywhere and free it. */
static void sub_unlink(ps_hub *hub, ps_sub *sub)
{
    ps_conn *conn = sub->conn;
    ps_hub_channel *ch = sub->hub_channel;
    HASH_DEL(conn->subs, sub);
    conn->sub_count--;
    hub->subscriptions--;
    if (sub->chan_prev != NULL) {
        sub->chan_prev->chan_next = sub->chan_next;
    } else {
        ch->subs = sub->chan_next;
    }
    if (sub->chan_next != NULL) {
        sub->chan_next->chan_prev = sub->chan_prev;
    }
    if (ch->subs == NULL) {
        HASH_DEL(hub->channels, ch);
        ps_free(ch->name);
        ps_free(ch);
    }
    sub_free(sub);
}

ps_hub_result ps_hub_add(ps_hub *hub, ps_conn *conn, const char *channel,
                         bool push_join_leave, size_t limit)
{
    ps_sub *sub = ps_calloc(1, sizeof *sub);
    if (sub == NULL || (sub->channel = ps_strdup(channel)) == NULL) {
        ps_free(sub);
        return PS_HUB_NOMEM;
    }
    sub->push_join_leave = push_join_leave;
    sub->pending = true;

    ps_hub_result result = PS_HUB_OK;
    pthread_mutex_lock(&hub->lock);
    ps_sub *existing = NULL;
    HASH_FIND_STR(conn->subs, channel, existing);
    ps_hub_channel *ch = NULL;
    if (existing != NULL) {
        result = PS_HUB_ALREADY;
    } else if (limit > 0 && conn->sub_count >= limit) {
        result = PS_HUB_LIMIT;
    } else if ((ch = channel_get(hub, channel, true)) == NULL) {
        result = PS_HUB_NOMEM;
    } else {
        HASH_ADD_KEYPTR(hh, conn->subs, sub->channel, strlen(sub->channel), sub);
        if (!ps_hash_added(sub, hh)) {
            result = PS_HUB_NOMEM;
            if (ch->subs == NULL) { /* created for this subscription */
                HASH_DEL(hub->channels, ch);
                ps_free(ch->name);
                ps_free(ch);
            }
        } else {
            sub->conn = ps_conn_ref(conn);
            sub->hub_channel = ch;
            sub->chan_next = ch->subs;
            if (ch->subs != NULL) {
                ch->subs->chan_prev = sub;
            }
            ch->subs = sub;
            conn->sub_count++;
            hub->subscriptions++;
            sub = NULL;
        }
    }
    pthread_mutex_unlock(&hub->lock);
    if (sub != NULL) {
        ps_free(sub->channel);
        ps_free(sub);
    }
    return result;
}

static void lost_push(ps_sub *sub);

void ps_hub_activate(ps_hub *hub, ps_conn *conn, const char *channel,
                     ps_msg *reply, const presence_change *resumed)
{
    pthread_mutex_lock(&hub->lock);
    ps_sub *sub = NULL;
    HASH_FIND_STR(conn->subs, channel, sub);
    ps_conn_send(conn, reply);
    if (sub != NULL && resumed != NULL && !sub->started) {
        /* Back within its grace: what came after the join is due. */
        sub->started = true;
        for (size_t i = 0; i < sub->early_count; i++) {
            const ps_early_push *e = &sub->early[i];
            if (e->epoch == resumed->stats.epoch &&
                e->seq <= resumed->stats.seq) {
                continue;
            }
            if (e->msg == NULL) {
                lost_push(sub);
            } else {
                ps_conn_send(conn, e->msg);
            }
        }
    }
    if (sub != NULL) {
        early_drop(sub);
        for (size_t i = 0; i < sub->deferred_count; i++) {
            ps_conn_send(conn, sub->deferred[i]);
            ps_msg_unref(sub->deferred[i]);
        }
        ps_free(sub->deferred);
        sub->deferred = NULL;
        sub->deferred_count = sub->deferred_cap = 0;
        sub->pending = false;
    }
    pthread_mutex_unlock(&hub->lock);
}

bool ps_hub_remove(ps_hub *hub, ps_conn *conn, const char *channel)
{
    pthread_mutex_lock(&hub->lock);
    ps_sub *sub = NULL;
    HASH_FIND_STR(conn->subs, channel, sub);
    if (sub != NULL) {
        sub_unlink(hub, sub);
    }
    pthread_mutex_unlock(&hub->lock);
    return sub != NULL;
}

void ps_hub_remove_all(ps_hub *hub, ps_conn *conn)
{
    pthread_mutex_lock(&hub->lock);
    ps_sub *sub;
    ps_sub *tmp;
    HASH_ITER(hh, conn->subs, sub, tmp) {
        sub_unlink(hub, sub);
    }
    pthread_mutex_unlock(&hub->lock);
}

void ps_hub_counts(ps_hub *hub, size_t *subscriptions, size_t *channels)
{
    pthread_mutex_lock(&hub->lock);
    *subscriptions = hub->subscriptions;
    *channels = HASH_COUNT(hub->channels);
    pthread_mutex_unlock(&hub->lock);
}

bool ps_hub_is_subscribed(ps_hub *hub, ps_conn *conn, const char *channel)
{
    pthread_mutex_lock(&hub->lock);
    ps_sub *sub = NULL;
    HASH_FIND_STR(conn->subs, channel, sub);
    pthread_mutex_unlock(&hub->lock);
    return sub != NULL;
}

/* {"push":{"channel":C,"join"|"leave":{"info":ClientInfo}}} */
static ps_msg *build_push(const presence_event *event)
{
    /* Written as text: one a change, sent to every subscriber. */
    ps_text t;
    ps_text_init(&t);
    PS_TEXT_LITERAL(&t, "{\"push\":{\"channel\":");
    ps_text_string(&t, event->channel, strlen(event->channel));
    if (event->kind == PRESENCE_EVENT_JOIN) {
        PS_TEXT_LITERAL(&t, ",\"join\":{\"info\":");
    } else {
        PS_TEXT_LITERAL(&t, ",\"leave\":{\"info\":");
    }
    ps_wire_client_info_text(&t, event->user_id, event->client_id,
                             event->conn_info, event->conn_info_len,
                             event->chan_info, event->chan_info_len);
    PS_TEXT_LITERAL(&t, "}}}");
    size_t len = 0;
    char *text = ps_text_take(&t, &len);
    ps_msg *msg = text ? ps_msg_new(text, len) : NULL;
    ps_free(text);
    return msg;
}

/* A subscriber that misses a push has a wrong picture of the channel: it
 * is closed with 3004, reconnects and reads presence afresh. Centrifugo
 * promises join/leave at most once; this server never lets one go missing
 * silently. */
static void lost_push(ps_sub *sub)
{
    ps_conn_request_close(sub->conn, PS_CLOSE_INTERNAL, "internal server error");
}

/* Under the hub lock: keep a push from before the subscriber started,
 * while its subscribe is pending (see ps_early_push). */
static void keep_early(ps_sub *sub, ps_msg *msg, const presence_event *event)
{
    if (sub->early_count == sub->early_cap) {
        size_t cap = sub->early_cap ? sub->early_cap * 2 : 4;
        ps_early_push *grown = ps_realloc(sub->early, cap * sizeof *grown);
        if (grown == NULL) {
            lost_push(sub);
            return;
        }
        sub->early = grown;
        sub->early_cap = cap;
    }
    sub->early[sub->early_count++] = (ps_early_push){
        msg != NULL ? ps_msg_ref(msg) : NULL, event->epoch, event->seq};
}

/* Under the hub lock: hold a push until the subscribe reply is queued. */
static void defer(ps_sub *sub, ps_msg *msg)
{
    if (sub->deferred_count == sub->deferred_cap) {
        size_t cap = sub->deferred_cap ? sub->deferred_cap * 2 : 4;
        ps_msg **grown = ps_realloc(sub->deferred, cap * sizeof *grown);
        if (grown == NULL) {
            lost_push(sub);
            return;
        }
        sub->deferred = grown;
        sub->deferred_cap = cap;
    }
    sub->deferred[sub->deferred_count++] = ps_msg_ref(msg);
}

/* Under the hub lock: a push to a started subscriber, sent now, or kept
 * while its subscribe's reply is pending; NULL (it could not be built) is
 * a lost push. */
static void deliver(ps_sub *sub, ps_msg *msg)
{
    if (msg == NULL) {
        lost_push(sub);
    } else if (sub->pending) {
        defer(sub, msg);
    } else {
        ps_conn_send(sub->conn, msg);
    }
}

void ps_hub_on_event(presence_registry *registry, const presence_event *event,
                     void *user_data)
{
    (void)registry;
    ps_server *server = user_data;
    if (event->kind != PRESENCE_EVENT_JOIN &&
        event->kind != PRESENCE_EVENT_LEAVE) {
        return;
    }
    const ps_channel_options *o =
        ps_config_namespace(server->cfg, event->namespace_name);
    /* Coalesced: this event only starts subscribers; diffs push. */
    bool coalesced = o != NULL && o->presence_coalesce_ms > 0;
    /* Built for the first subscriber that takes it: many events need
     * none (a channel whose subscribers here did not ask for joins and
     * leaves, or that has none here, as most of what other nodes
     * replicate). */
    ps_msg *msg = NULL; /* NULL once built: out of memory */
    bool built = false;
    ps_hub *hub = &server->hub;
    pthread_mutex_lock(&hub->lock);
    ps_hub_channel *ch = channel_get(hub, event->channel, false);
    for (ps_sub *sub = ch ? ch->subs : NULL; sub != NULL; sub = sub->chan_next) {
        if (!sub->started && event->kind == PRESENCE_EVENT_JOIN &&
            event->client_app == sub->conn) { /* its own join: no lookup */
            sub->started = true;
            early_drop(sub); /* all before it */
        }
        if (!sub->push_join_leave || coalesced ||
            (!sub->started && !sub->pending)) {
            continue;
        }
        if (!built) {
            msg = build_push(event);
            built = true;
        }
        if (!sub->started) {
            keep_early(sub, msg, event);
            continue;
        }
        deliver(sub, msg);
    }
    pthread_mutex_unlock(&hub->lock);
    ps_msg_unref(msg);
}

/* {"push":{"channel":C,"presence_diff":{...}}} */
static ps_msg *build_diff_push(const char *channel, const presence_diff *diff)
{
    json_t *body = ps_wire_presence_diff(diff);
    if (body == NULL) {
        return NULL;
    }
    json_t *push = json_pack("{s:{s:s,s:o}}", "push", "channel", channel,
                             "presence_diff", body);
    size_t len = 0;
    char *text = ps_wire_dump(push, &len);
    ps_msg *msg = text ? ps_msg_new(text, len) : NULL;
    ps_free(text);
    return msg;
}

/* Under the hub lock: the diff to a channel's started join/leave
 * subscribers. A diff that could not be built is a lost push. */
static void push_diff(ps_hub_channel *ch, const presence_diff *diff)
{
    ps_msg *msg = build_diff_push(ch->name, diff);
    for (ps_sub *sub = ch->subs; sub != NULL; sub = sub->chan_next) {
        if (!sub->push_join_leave || !sub->started) {
            continue; /* pushes start with the subscriber's own join */
        }
        deliver(sub, msg);
    }
    ps_msg_unref(msg);
}

/* Whether channel is in the namespace ns ("" the top level). */
static bool in_namespace(const char *channel, const char *ns)
{
    size_t len = 0;
    return presence_channel_split(channel, PS_NAMESPACE_SEPARATOR, &len,
                                  NULL) == PRESENCE_OK &&
           strlen(ns) == len && memcmp(channel, ns, len) == 0;
}

void ps_hub_on_diff(presence_registry *registry, const presence_diff *diff,
                    void *user_data)
{
    (void)registry;
    ps_server *server = user_data;
    ps_hub *hub = &server->hub;
    pthread_mutex_lock(&hub->lock);
    if (diff->channel[0] != '\0') {
        ps_hub_channel *ch = channel_get(hub, diff->channel, false);
        if (ch != NULL) {
            push_diff(ch, diff);
        }
    } else { /* changes were lost: every channel of the namespace resyncs */
        ps_hub_channel *ch, *tmp;
        HASH_ITER(hh, hub->channels, ch, tmp) {
            if (in_namespace(ch->name, diff->namespace_name)) {
                push_diff(ch, diff);
            }
        }
    }
    pthread_mutex_unlock(&hub->lock);
}
