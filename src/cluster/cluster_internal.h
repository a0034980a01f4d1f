/*
 * Private structures of libpresence-cluster (see docs/CLUSTER.md for the
 * protocol and the key layout).
 *
 * Threads. Everything but the outbox belongs to the thread that runs
 * presence_cluster_process() (one at a time, `process_lock`). The outbox
 * is filled by the registry's event callback, on whatever thread changed
 * the registry, under `outbox_lock`, which is never held while calling
 * into the registry or hiredis. Counters read by status_get are atomic.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_CLUSTER_INTERNAL_H
#define PRESENCE_CLUSTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "presence.h"
#include "presence_cluster.h"

/* node ids and incarnations, at most */
#define PRESENCE__CL_ID_MAX PRESENCE_CLUSTER_NODE_ID_MAX
/* A node's key, "{<prefix>:<node>}.<what>", and its NUL, at most (the
 * longest <what> that is not followed by an incarnation is "members"). */
#define PRESENCE__CL_KEY_MAX                                                  \
    (PRESENCE_CLUSTER_PREFIX_MAX + PRESENCE__CL_ID_MAX + sizeof "{:}.members")
/* "ms-seq" of a stream entry */
#define PRESENCE__CL_STREAM_ID 48
/* how long one XREAD waits for entries */
#define PRESENCE__CL_READ_BLOCK_MS 500

/* ---- alloc.c: the handle's allocator ------------------------------------ */

/* *out = the allocator given (all NULL: malloc/realloc/free); false when
 * only some of its functions are set (malloc_fn and free_fn are needed). */
bool presence__cl_alloc_init(presence_allocator *out,
                             const presence_allocator *given);
/* NULL for 0 or SIZE_MAX bytes (what an overflowed size becomes). */
void *presence__cl_malloc(const presence_allocator *a, size_t size);
/* Zeroed; n * size checked for overflow. */
void *presence__cl_calloc(const presence_allocator *a, size_t n, size_t size);
void *presence__cl_realloc(const presence_allocator *a, void *ptr,
                           size_t old_size, size_t new_size);
/* size: what was asked for. NULL is accepted. */
void presence__cl_free(const presence_allocator *a, void *ptr, size_t size);
/* Copies; a block of strlen + 1 (len + 1) bytes. */
char *presence__cl_strdup(const presence_allocator *a, const char *s);
char *presence__cl_strndup(const presence_allocator *a, const char *s,
                           size_t len);
/* Free a copy whose length is its strlen (not one of a decoded string that
 * may hold a NUL: free those with their length + 1). NULL is accepted. */
void presence__cl_free_str(const presence_allocator *a, char *s);
/* a * b, or SIZE_MAX on overflow (SIZE_MAX never fits an allocation). */
size_t presence__cl_mul_size(size_t a, size_t b);

/* ---- codec.c: growable byte buffers and the wire encoding --------------- */

/* Start one as {.alloc = allocator}; it grows through that allocator. */
struct presence__cl_buf {
    const presence_allocator *alloc;
    char *data;
    size_t len;
    size_t cap;
};

bool presence__cl_buf_put(struct presence__cl_buf *b, const void *data,
                          size_t len);
/* A netstring: "<len>:<bytes>". */
bool presence__cl_buf_put_field(struct presence__cl_buf *b, const void *data,
                                size_t len);
void presence__cl_buf_free(struct presence__cl_buf *b);

/* A membership as the wire carries it; pointers into the decoded bytes. */
struct presence__cl_member {
    const char *user;
    size_t user_len;
    const char *conn_info;
    size_t conn_info_len;
    const char *chan_info;
    size_t chan_info_len;
};

/* One change in a log entry. */
struct presence__cl_op {
    char kind;    /* 'J' (join or update: an upsert) or 'L' (leave) */
    int reason;   /* for 'L' */
    const char *channel;
    size_t channel_len;
    const char *client;
    size_t client_len;
    struct presence__cl_member member; /* for 'J' */
};

/* Members hash: field "<channel>\t<client>", value the member's fields. */
bool presence__cl_encode_field(struct presence__cl_buf *b, const char *channel,
                               const char *client);
bool presence__cl_encode_member(struct presence__cl_buf *b, const char *user,
                                const void *conn_info, size_t conn_info_len,
                                const void *chan_info, size_t chan_info_len);
bool presence__cl_decode_field(const char *field, size_t len,
                               const char **channel, size_t *channel_len,
                               const char **client, size_t *client_len);
bool presence__cl_decode_member(const char *value, size_t len,
                                struct presence__cl_member *out);
/* Log ops: 'J' field member, or 'L' reason-digit field. */
bool presence__cl_encode_join(struct presence__cl_buf *b, const char *channel,
                              const char *client, const char *user,
                              const void *conn_info, size_t conn_info_len,
                              const void *chan_info, size_t chan_info_len);
bool presence__cl_encode_leave(struct presence__cl_buf *b, const char *channel,
                               const char *client, int reason);
/* Decode the op at *pos of ops, advancing *pos; false when malformed. */
bool presence__cl_decode_op(const char *ops, size_t len, size_t *pos,
                            struct presence__cl_op *op);
/* The same op as the members hash sees it: its field, and its value (NULL
 * for a leave, which deletes the field). */
bool presence__cl_split_op(const char *ops, size_t len, size_t *pos,
                           const char **field, size_t *field_len,
                           const char **value, size_t *value_len);

/* ---- redis_conn.c: one hiredis async connection inside our epoll -------- */

struct presence_cluster;

enum presence__cl_conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };

struct presence__cl_conn {
    struct presence_cluster *cluster;
    const char *name; /* "command" or "reader", for diagnostics */
    redisAsyncContext *ac;
    enum presence__cl_conn_state state;
    uint32_t watching;       /* EPOLLIN / EPOLLOUT now registered */
    int fd;
    int64_t connect_deadline; /* while CONNECTING */
    int setup_pending;        /* AUTH / SELECT replies still awaited */
    int64_t busy_since;       /* replies awaited since (0: none) */
    int64_t last_read_at;     /* the socket last gave us bytes */
    bool ready;               /* up, and set up */
    bool drop;                /* to be closed at the end of the turn */
    void (*on_up)(struct presence__cl_conn *conn);
    void (*on_down)(struct presence__cl_conn *conn);
};

void presence__cl_conn_init(struct presence__cl_conn *conn,
                            struct presence_cluster *c, const char *name,
                            void (*on_up)(struct presence__cl_conn *),
                            void (*on_down)(struct presence__cl_conn *));
/* Start connecting; false when that failed at once (try again later). */
bool presence__cl_conn_start(struct presence__cl_conn *conn);
/* epoll reported `events` for this connection. */
void presence__cl_conn_handle(struct presence__cl_conn *conn, uint32_t events);
/* Timers: a connection attempt that takes too long is dropped. */
void presence__cl_conn_check_timeout(struct presence__cl_conn *conn,
                                     int64_t now);
/* Send a command of NUL-terminated words (at most PRESENCE__CL_WORDS_MAX). */
#define PRESENCE__CL_WORDS_MAX 16
bool presence__cl_conn_send(struct presence__cl_conn *conn,
                            redisCallbackFn *fn, void *privdata, size_t argc,
                            const char *const *argv);
/* The same for an array of words. */
#define PRESENCE__CL_SEND(conn, fn, privdata, words)                          \
    presence__cl_conn_send((conn), (fn), (privdata),                          \
                           sizeof(words) / sizeof(words)[0], (words))
/* Whether replies have been awaited for more than limit_ms without a
 * byte arriving (a silent network cut). *deadline gets when that would
 * be, or 0 when nothing is awaited. */
bool presence__cl_conn_stalled(struct presence__cl_conn *conn, int64_t now,
                               int64_t limit_ms, int64_t *deadline);
/* Drop the connection (on_down runs). Not from code that may run inside
 * hiredis's connect callback: hiredis 0.14 goes on using a context freed
 * there. Use presence__cl_conn_drop() instead. */
void presence__cl_conn_close(struct presence__cl_conn *conn);
/* Close it at the end of the current presence_cluster_process() turn,
 * outside every hiredis callback. */
void presence__cl_conn_drop(struct presence__cl_conn *conn);
/* Send a command; false when the connection is not up. */
bool presence__cl_conn_command(struct presence__cl_conn *conn,
                               redisCallbackFn *fn, void *privdata, int argc,
                               const char **argv, const size_t *argvlen);

/* ---- the handle ---------------------------------------------------------- */

/* What this node knows of another node. */
struct presence__cl_node { /* few: a list */
    struct presence__cl_node *next;
    char id[PRESENCE__CL_ID_MAX + 1];
    /* its incarnation, "" before loading */
    char inc[PRESENCE__CL_ID_MAX + 1];
    /* the one the directory listed */
    char dir_inc[PRESENCE__CL_ID_MAX + 1];
    uint64_t seq; /* the last log entry applied */
    /* the log position that seq stands for */
    char last_id[PRESENCE__CL_STREAM_ID];
    bool loading; /* a snapshot read is under way */
    bool reload;  /* load again when the current one ends */
    bool live;    /* its state is loaded and followed */
};

enum presence__cl_self_state {
    SELF_OFFLINE,    /* not connected: changes are not kept */
    SELF_ANNOUNCING, /* the announce is being written */
    SELF_ONLINE,     /* announced: changes are written as they come */
};

struct presence_cluster {
    presence_registry *registry;
    presence_subscription subscription;
    presence_allocator alloc; /* every allocation of ours (alloc.c) */
    int64_t clock_origin;     /* the registry's time at 0, minus 1 */
    _Atomic int64_t clock_last; /* presence__cl_now_ms() never goes back */

    /* configuration (owned copies) */
    char *host;
    int port;
    char *password;
    int db;
    char *prefix;
    char node_id[PRESENCE__CL_ID_MAX + 1];
    int64_t lease_ms;
    int64_t connect_timeout_ms;
    int64_t reconnect_max_ms;
    size_t log_max_len;
    size_t batch_max;
    presence_cluster_log_fn log;
    void *log_user_data;

    /* keys */
    char *key_lease, *key_members, *key_staging, *key_log;
    char *key_nodes, *key_events;
    /* key_staging is "{P:N}.staging." then the incarnation of the last
     * announce (room for PRESENCE__CL_ID_MAX bytes), which starts here */
    size_t key_staging_base;

    int epoll_fd;
    int wake_fd; /* an eventfd: local changes wait */

    pthread_mutex_t process_lock;

    struct presence__cl_conn cmd;    /* commands and writes */
    struct presence__cl_conn reader; /* blocking reads of the logs */
    int64_t reconnect_at;
    int64_t reconnect_delay;
    uint64_t generation; /* grows at each (re)connection of `cmd` */

    /* this node */
    enum presence__cl_self_state self;
    char inc[PRESENCE__CL_ID_MAX + 1];
    uint64_t seq;          /* of the last log entry written */
    int64_t renew_at;
    int64_t check_at;
    int64_t grace_until;   /* no node is declared down before this */
    int64_t announce_at;   /* retry of an announce that could not start */
    bool lease_renewing;
    bool check_running;

    /* the other nodes */
    struct presence__cl_node *nodes;
    /* position in the node events stream */
    char events_id[PRESENCE__CL_STREAM_ID];
    bool events_id_known;
    bool reading;        /* an XREAD is under way on `reader` */
    bool read_stale;     /* ...for streams or positions that changed */
    bool unblock_sent;   /* CLIENT UNBLOCK asked for it to end early */
    long long reader_id; /* CLIENT ID of `reader`, 0 before it is known */

    /* local changes waiting to be written (outbox_lock) */
    pthread_mutex_t outbox_lock;
    struct presence__cl_buf outbox_ops; /* encoded log ops */
    size_t outbox_count;
    bool outbox_keep;            /* SELF_ANNOUNCING or SELF_ONLINE */
    bool outbox_lost;            /* a change could not be kept: announce */
    bool wake_pending;
    int64_t outbox_since;        /* when its oldest change was queued */
    atomic_size_t inflight;      /* changes sent, not yet confirmed */
    /* the outbox is written once its oldest change is this old (0: at
     * once), so that changes close in time share a batch (fixed, read by
     * any thread); when that is, 0 when nothing waits, and whether the
     * node is leaving, when nothing waits any more (processing thread) */
    int64_t batch_delay_ms;
    int64_t flush_at;
    bool leaving;

    /* changes taken from the outbox, being sent (processing thread): at
     * most SEND_WINDOW batches are in flight, so that the lease renewal
     * and the reads never queue behind a long backlog */
    struct presence__cl_buf sending;
    size_t sending_pos;
    size_t sending_count;        /* ops in sending from sending_pos on */
    atomic_size_t sending_left;  /* the same, readable by status_get */
    size_t batches_inflight;

    /* thread */
    pthread_t thread;
    atomic_bool thread_started;
    atomic_bool stopping;

    /* status */
    atomic_bool connected;
    atomic_bool synced;
    atomic_size_t live_nodes;
    atomic_uint_fast64_t sent, applied, rejected, snapshots, nodes_down,
        connects;
};

/* The registry's clock (presence_config::clock) in milliseconds, counted
 * from 1 at presence_cluster_new() (0 stands for "not set" in the
 * handle's deadlines), never going back. */
int64_t presence__cl_now_ms(struct presence_cluster *c);
void presence__cl_log(struct presence_cluster *c,
                      presence_cluster_log_level level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void presence__cl_wake(struct presence_cluster *c);

/* ---- outbox.c: local changes -------------------------------------------- */

void presence__cl_outbox_event(presence_registry *registry,
                               const presence_event *event, void *user_data);
/* Start keeping changes (announce under way) or drop them (offline). */
void presence__cl_outbox_keep(struct presence_cluster *c, bool keep);
/* Write what waits, in batches. */
void presence__cl_outbox_flush(struct presence_cluster *c);
/* Announce this node's members under a new incarnation. */
void presence__cl_announce(struct presence_cluster *c);

/* ---- sync.c: the other nodes -------------------------------------------- */

/* After `cmd` connected and this node announced: load the directory. */
void presence__cl_sync_start(struct presence_cluster *c);
/* Periodic: leases of the other nodes, new nodes, dead nodes. */
void presence__cl_sync_check(struct presence_cluster *c);
/* Issue the next XREAD if none is under way. */
void presence__cl_sync_read(struct presence_cluster *c);
/* Load one node's snapshot (a new node, a gap, a new incarnation). */
void presence__cl_sync_load(struct presence_cluster *c, const char *node_id);
void presence__cl_sync_node_down(struct presence_cluster *c,
                                 struct presence__cl_node *n,
                                 presence_leave_reason reason);
void presence__cl_sync_free(struct presence_cluster *c);
void presence__cl_update_synced(struct presence_cluster *c);

#endif
