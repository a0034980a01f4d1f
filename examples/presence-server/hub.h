/*
 * The hub: which connection is subscribed to which channel, and whether it
 * receives join/leave pushes. This is transport bookkeeping only; who is
 * present, and the counts, live in libpresence. The hub turns libpresence's
 * join and leave events into pushes.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_HUB_H
#define PS_HUB_H

#include "hash.h"

#include <presence.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

struct ps_conn;
struct ps_msg;

/* A push that came before its subscriber started, kept (while the
 * subscription is pending) with its version, in case the join turns out
 * to have resumed a member in leave grace: no own join event then, and
 * the pushes after the join's version are due. msg NULL: it could not be
 * built. */
typedef struct ps_early_push {
    struct ps_msg *msg;
    uint64_t epoch, seq;
} ps_early_push;

typedef struct ps_sub {
    char *channel;
    struct ps_conn *conn;      /* referenced */
    bool push_join_leave;      /* the client receives join/leave pushes */
    /* The subscribe reply is not queued yet: pushes wait in deferred, so
     * that the reply comes first on the wire (centrifuge-js needs it). */
    bool pending;
    /* The subscriber's own join event has been seen. Events of a channel
     * arrive in order, so earlier ones predate the subscription and are not
     * pushed to it. */
    bool started;
    struct ps_msg **deferred;
    size_t deferred_count, deferred_cap;
    ps_early_push *early;
    size_t early_count, early_cap;
    struct ps_sub *chan_prev, *chan_next; /* the channel's subscribers */
    struct ps_hub_channel *hub_channel;
    UT_hash_handle hh;         /* conn->subs, by channel */
} ps_sub;

typedef struct ps_hub_channel {
    char *name;
    ps_sub *subs;
    UT_hash_handle hh;
} ps_hub_channel;

typedef struct ps_hub {
    pthread_mutex_t lock;
    ps_hub_channel *channels;
    size_t subscriptions; /* in all, for the metrics */
} ps_hub;

typedef enum ps_hub_result {
    PS_HUB_OK = 0,
    PS_HUB_ALREADY,  /* 105 already subscribed */
    PS_HUB_LIMIT,    /* 106 limit exceeded */
    PS_HUB_NOMEM,    /* 100 internal */
} ps_hub_result;

void ps_hub_init(ps_hub *hub);
void ps_hub_destroy(ps_hub *hub);

/** Record a pending subscription of @p conn to @p channel. */
ps_hub_result ps_hub_add(ps_hub *hub, struct ps_conn *conn,
                         const char *channel, bool push_join_leave,
                         size_t limit);

/** Queue @p reply on the connection, then the pushes that waited for it,
 *  and let later pushes flow directly. @p resumed is the join's result
 *  when it was #PRESENCE_CHANGE_RESUMED (the client came back within its
 *  leave grace: no own join event will start the pushes, which start
 *  after the join's version instead), else NULL. */
void ps_hub_activate(ps_hub *hub, struct ps_conn *conn, const char *channel,
                     struct ps_msg *reply, const presence_change *resumed);

/** Forget a subscription; false if there was none. */
bool ps_hub_remove(ps_hub *hub, struct ps_conn *conn, const char *channel);

/** Forget every subscription of a connection. */
void ps_hub_remove_all(ps_hub *hub, struct ps_conn *conn);

/** The subscriptions and the channels with a subscriber, now. */
void ps_hub_counts(ps_hub *hub, size_t *subscriptions, size_t *channels);

/** Whether @p conn is subscribed to @p channel. */
bool ps_hub_is_subscribed(ps_hub *hub, struct ps_conn *conn,
                          const char *channel);

/** The libpresence event callback (user_data: the ps_server). It may run
 *  on any thread; it only queues messages. In a namespace with
 *  presence_coalesce it pushes nothing (ps_hub_on_diff does). */
void ps_hub_on_event(presence_registry *registry, const presence_event *event,
                     void *user_data);

/** The coalesced-diff callback of the namespaces with presence_coalesce
 *  (user_data: the ps_server): one "presence_diff" push to every started
 *  join/leave subscriber of the channel, or, for a scope-wide resync, a
 *  resync push to those of every channel of the namespace. */
void ps_hub_on_diff(presence_registry *registry, const presence_diff *diff,
                    void *user_data);

#endif
