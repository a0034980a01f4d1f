/*
 * A naive reference model of a presence registry, for the API-sequence
 * fuzzer: plain arrays over a small, fixed universe of channels and
 * clients, written for clarity rather than speed. It predicts every return
 * code, every event (with its sequence number and stats) and the state
 * after each call.
 *
 * Nodes: each client may instead be held for another node, always its
 * "home" node (client k's is "nk"), so that a node has at most one client
 * and presence_node_down()'s order is that client's, newest first.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_FUZZ_API_MODEL_H
#define PRESENCE_FUZZ_API_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <presence.h>

enum {
    MODEL_CHANNELS = 7,
    MODEL_CLIENTS = 6,
    MODEL_USERS = 3,
    MODEL_INFOS = 3,    /* chan_info variants: none, "x", "yy" */
    MODEL_MAX_EVENTS = 512,
    MODEL_CHANNELS_PER_CLIENT = 3,
    MODEL_MEMBERS_PER_CHANNEL = 5,
    MODEL_CHANNELS_MAX = 4,
    MODEL_NODES = MODEL_CLIENTS, /* client k's home node is "nk" */
    MODEL_LOCAL = -1,            /* a client's node when it is local */
    MODEL_LOG_MAX = 8,           /* the largest history_size used */
};

/* The universe. */
extern const char *const model_channel_names[MODEL_CHANNELS];
extern const char *const model_client_ids[MODEL_CLIENTS];
extern const char *const model_user_ids[MODEL_USERS];
extern const char *const model_infos[MODEL_INFOS];
extern const char *const model_node_ids[MODEL_NODES];
/* "" for MODEL_LOCAL. */
const char *model_node_name(int node);
/* Index of the channel "room", where the re-entry rule joins c0. */
#define MODEL_ROOM 1
/* Index of the channel "lobby", watched by the channel subscription. */
#define MODEL_LOBBY 0

typedef struct model_event {
    presence_event_kind kind;
    presence_leave_reason reason;
    int channel;
    int client;
    int info;
    uint64_t seq;
    int64_t time_ms;
    size_t num_clients;
    size_t num_users;
    int node;   /* the client's node, MODEL_LOCAL for local clients */
    bool muted; /* in a namespace without join_leave: EVERY_NAMESPACE only */
} model_event;

typedef struct model_member {
    bool in;
    int info;
    int64_t joined_at;
    int64_t touched_at;
    uint64_t join_order;  /* the client's list is newest first */
    uint64_t touch_order; /* the namespace's touch list order */
    /* In leave grace: dropped at touched_at, for grace_reason; graces end
     * in (reason, drop_order) order within a channel. */
    bool graced;
    presence_leave_reason grace_reason;
    uint64_t drop_order;
} model_member;

/* One change in a channel's log (presence_changes_since()). */
typedef struct model_change {
    presence_event_kind kind;
    presence_leave_reason reason;
    int client;
    int info;
    uint64_t seq;
    int64_t time_ms;
    int node;
    bool open; /* the client was a handle's: its app pointer shows */
} model_change;

/* A channel's log: its last changes, while the channel lives and its
 * namespace has a history_size. */
typedef struct model_log {
    bool on;
    uint64_t since; /* it holds every change after this seq */
    size_t len;
    model_change changes[MODEL_LOG_MAX]; /* oldest first */
} model_log;

typedef struct model {
    model_member m[MODEL_CLIENTS][MODEL_CHANNELS];
    uint64_t seq[MODEL_CHANNELS];
    int64_t now;
    int64_t ttl_t; /* the TTL of namespace "t" */
    /* Its leave grace and the grace options. */
    int64_t grace_t;
    bool grace_on_leave_t;
    bool grace_same_user_t;
    /* When each client's record was made (its user's list of clients is
     * newest first: the order a place is taken in). */
    uint64_t created[MODEL_CLIENTS];
    /* While set, joins take no place (presence_client_join_many()). */
    bool no_take_place;
    uint64_t orders;
    /* The client's node (MODEL_LOCAL: local), while it is in a channel. */
    int node[MODEL_CLIENTS];
    /* A handle is open on the client (presence_client_open): it is known,
     * local, with its one user, in a channel or not. */
    bool open[MODEL_CLIENTS];
    bool lobby_sub; /* the channel subscription is on */
    bool every_sub; /* the PRESENCE_EVENTS_EVERY_NAMESPACE one is on */
    model_event events[MODEL_MAX_EVENTS];
    size_t nevents;
    /* history_size of the default namespace, of "tt" and of "qq". */
    size_t hist_default, hist_t, hist_q;
    model_log logs[MODEL_CHANNELS];
} model;

/* The user and conn_info each client always joins with. */
int model_user_of(int client);
/* The index of s among the n names, or -1. */
int model_name_index(const char *const *names, int n, const char *s);
/* The index of len bytes among model_infos, or -1. */
int model_info_index(const void *data, size_t len);
const char *model_conn_info_of(int client);

void model_init(model *md);
size_t model_channel_count(const model *md, int channel);
size_t model_user_count(const model *md, int channel, int user);
size_t model_users_in(const model *md, int channel);
size_t model_client_channels(const model *md, int client);
bool model_channel_has_presence(int channel);
bool model_channel_known(int channel);

/* Each returns the expected return code and applies the change; events go
 * to md->events, followed by those the re-entry rules cause. `order` is the
 * members of the channel in the library's snapshot order (for close). */
int model_join(model *md, int channel, int client, int user, int info);
int model_leave(model *md, int channel, int client);
/* The remote calls, and the local ones above, with node MODEL_LOCAL. */
int model_join_node(model *md, int node, int channel, int client, int user,
                    int info);
int model_leave_node(model *md, int node, int channel, int client,
                     presence_leave_reason reason);
/* How many memberships left. */
size_t model_node_down(model *md, int node, presence_leave_reason reason);
/* The memberships of the node's clients. */
size_t model_node_memberships(const model *md, int node);
int model_disconnect(model *md, int client);
/* Whether the registry knows the client: in a channel, or open. */
bool model_client_known(const model *md, int client);
/* presence_client_open() and presence_client_close(). */
int model_client_open(model *md, int client);
int model_client_close(model *md, int client);
int model_update(model *md, int channel, int client, int info);
int model_touch(model *md, int channel, int client);
int model_touch_client(model *md, int client);
int model_close(model *md, int channel, const int *order, size_t n);
/* The TTL of namespace "t" becomes ttl (0: none). */
void model_set_ttl_t(model *md, int64_t ttl);
/* Its leave grace options change. */
void model_set_grace_t(model *md, int64_t grace, bool on_leave,
                       bool same_user);
/* The client's memberships not in grace (what a disconnect changes). */
size_t model_client_active_channels(const model *md, int client);
size_t model_expire(model *md);
int64_t model_next_deadline(const model *md);

/* The history_size of a channel's namespace. */
size_t model_history_size(const model *md, int channel);
/* The history_size of "tt" becomes size: its live channels' logs keep
 * their newest changes that fit, or start at their current seq. */
void model_set_history_t(model *md, size_t size);
/* What presence_changes_since(channel, epoch, seq) answers, given whether
 * epoch is the channel's current one (epoch 0 is passed as such): OK with
 * *first the index of the first change to tell in md->logs[channel], or
 * PRESENCE_ERR_SNAPSHOT_NEEDED. */
int model_changes_since(const model *md, int channel, bool epoch_now,
                        bool epoch_zero, uint64_t seq, size_t *first);

/* Runs the re-entry rules over the queued events (what the fuzzer's
 * callback does in the library). */
void model_settle(model *md);

#endif
