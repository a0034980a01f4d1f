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

#define CL_ID_MAX 64     /* node ids and incarnations */
#define CL_STREAM_ID 48  /* "ms-seq" of a stream entry */
#define CL_READ_BLOCK_MS 500 /* how long one XREAD waits for entries */

/* ---- codec.c: growable byte buffers and the wire encoding --------------- */

struct cl_buf {
    char *data;
    size_t len;
    size_t cap;
};

bool cl_buf_put(struct cl_buf *b, const void *data, size_t len);
/* A netstring: "<len>:<bytes>". */
bool cl_buf_put_field(struct cl_buf *b, const void *data, size_t len);
void cl_buf_free(struct cl_buf *b);

/* A membership as the wire carries it; pointers into the decoded bytes. */
struct cl_member {
    const char *user;
    size_t user_len;
    const char *conn_info;
    size_t conn_info_len;
    const char *chan_info;
    size_t chan_info_len;
};

/* One change in a log entry. */
struct cl_op {
    char kind;    /* 'J' (join or update: an upsert) or 'L' (leave) */
    int reason;   /* for 'L' */
    const char *channel;
    size_t channel_len;
    const char *client;
    size_t client_len;
    struct cl_member member; /* for 'J' */
};

/* Members hash: field "<channel>\t<client>", value the member's fields. */
bool cl_encode_field(struct cl_buf *b, const char *channel,
                     const char *client);
bool cl_encode_member(struct cl_buf *b, const char *user,
                      const void *conn_info, size_t conn_info_len,
                      const void *chan_info, size_t chan_info_len);
bool cl_decode_field(const char *field, size_t len, const char **channel,
                     size_t *channel_len, const char **client,
                     size_t *client_len);
bool cl_decode_member(const char *value, size_t len, struct cl_member *out);
/* Log ops: 'J' field member, or 'L' reason-digit field. */
bool cl_encode_join(struct cl_buf *b, const char *channel, const char *client,
                    const char *user, const void *conn_info,
                    size_t conn_info_len, const void *chan_info,
                    size_t chan_info_len);
bool cl_encode_leave(struct cl_buf *b, const char *channel,
                     const char *client, int reason);
/* Decode the op at *pos of ops, advancing *pos; false when malformed. */
bool cl_decode_op(const char *ops, size_t len, size_t *pos, struct cl_op *op);
/* The same op as the members hash sees it: its field, and its value (NULL
 * for a leave, which deletes the field). */
bool cl_split_op(const char *ops, size_t len, size_t *pos, const char **field,
                 size_t *field_len, const char **value, size_t *value_len);
/* Copy a bounded string into a NUL-terminated scratch buffer. */
char *cl_strndup(const char *s, size_t len);

/* ---- redis_conn.c: one hiredis async connection inside our epoll -------- */

struct presence_cluster;

enum cl_conn_state { CONN_DOWN, CONN_CONNECTING, CONN_UP };

struct cl_conn {
    struct presence_cluster *cluster;
    const char *name; /* "command" or "reader", for diagnostics */
    redisAsyncContext *ac;
    enum cl_conn_state state;
    uint32_t watching;       /* EPOLLIN / EPOLLOUT now registered */
    int fd;
    int64_t connect_deadline; /* while CONNECTING */
    int setup_pending;        /* AUTH / SELECT replies still awaited */
    int64_t busy_since;       /* replies awaited since (0: none) */
    int64_t last_read_at;     /* the socket last gave us bytes */
    bool ready;               /* up, and set up */
    void (*on_up)(struct cl_conn *conn);
    void (*on_down)(struct cl_conn *conn);
};

void cl_conn_init(struct cl_conn *conn, struct presence_cluster *c,
                  const char *name, void (*on_up)(struct cl_conn *),
                  void (*on_down)(struct cl_conn *));
/* Start connecting; false when that failed at once (try again later). */
bool cl_conn_start(struct cl_conn *conn);
/* epoll reported `events` for this connection. */
void cl_conn_handle(struct cl_conn *conn, uint32_t events);
/* Timers: a connection attempt that takes too long is dropped. */
void cl_conn_check_timeout(struct cl_conn *conn, int64_t now);
/* Send a command of NUL-terminated words (at most CL_WORDS_MAX). */
#define CL_WORDS_MAX 16
bool cl_conn_send(struct cl_conn *conn, redisCallbackFn *fn, void *privdata,
                  size_t argc, const char *const *argv);
/* The same for an array of words. */
#define CL_SEND(conn, fn, privdata, words)                                     \
    cl_conn_send((conn), (fn), (privdata), sizeof(words) / sizeof(words)[0],   \
                 (words))
/* Whether replies have been awaited for more than limit_ms without a
 * byte arriving (a silent network cut). *deadline gets when that would
 * be, or 0 when nothing is awaited. */
bool cl_conn_stalled(struct cl_conn *conn, int64_t now, int64_t limit_ms,
                     int64_t *deadline);
/* Drop the connection (on_down runs). */
void cl_conn_close(struct cl_conn *conn);
/* Send a command; false when the connection is not up. */
bool cl_conn_command(struct cl_conn *conn, redisCallbackFn *fn,
                     void *privdata, int argc, const char **argv,
                     const size_t *argvlen);

/* ---- the handle ---------------------------------------------------------- */

/* What this node knows of another node. */
struct cl_node { /* few: a list */
    struct cl_node *next;
    char id[CL_ID_MAX + 1];
    char inc[CL_ID_MAX + 1];   /* its incarnation, "" before loading */
    char dir_inc[CL_ID_MAX + 1]; /* the one the directory listed */
    uint64_t seq;              /* the last log entry applied */
    char last_id[CL_STREAM_ID]; /* the log position that seq stands for */
    bool loading;              /* a snapshot read is under way */
    bool reload;               /* load again when the current one ends */
    bool live;                 /* its state is loaded and followed */
};

enum cl_self_state {
    SELF_OFFLINE,    /* not connected: changes are not kept */
    SELF_ANNOUNCING, /* the announce is being written */
    SELF_ONLINE,     /* announced: changes are written as they come */
};

struct presence_cluster {
    presence_registry *registry;
    presence_subscription subscription;

    /* configuration (owned copies) */
    char *host;
    int port;
    char *password;
    int db;
    char *prefix;
    char node_id[CL_ID_MAX + 1];
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
     * announce (room for CL_ID_MAX bytes); this is where it starts */
    size_t key_staging_base;

    int epoll_fd;
    int wake_fd; /* an eventfd: local changes wait */

    pthread_mutex_t process_lock;
    atomic_bool processing;
    pthread_t processing_thread;

    struct cl_conn cmd;    /* commands and writes */
    struct cl_conn reader; /* blocking reads of the logs */
    int64_t reconnect_at;
    int64_t reconnect_delay;
    uint64_t generation; /* grows at each (re)connection of `cmd` */

    /* this node */
    enum cl_self_state self;
    char inc[CL_ID_MAX + 1];
    uint64_t seq;          /* of the last log entry written */
    int64_t renew_at;
    int64_t check_at;
    int64_t grace_until;   /* no node is declared down before this */
    int64_t announce_at;   /* retry of an announce that could not start */
    bool lease_renewing;
    bool check_running;

    /* the other nodes */
    struct cl_node *nodes;
    char events_id[CL_STREAM_ID]; /* position in the node events stream */
    bool events_id_known;
    bool reading;        /* an XREAD is under way on `reader` */
    bool read_stale;     /* ...for streams or positions that changed */
    bool unblock_sent;   /* CLIENT UNBLOCK asked for it to end early */
    long long reader_id; /* CLIENT ID of `reader`, 0 before it is known */

    /* local changes waiting to be written (outbox_lock) */
    pthread_mutex_t outbox_lock;
    struct cl_buf outbox_ops;    /* encoded log ops */
    size_t outbox_count;
    bool outbox_keep;            /* SELF_ANNOUNCING or SELF_ONLINE */
    bool outbox_lost;            /* a change could not be kept: announce */
    bool wake_pending;
    atomic_size_t inflight;      /* changes sent, not yet confirmed */

    /* changes taken from the outbox, being sent (processing thread): at
     * most SEND_WINDOW batches are in flight, so that the lease renewal
     * and the reads never queue behind a long backlog */
    struct cl_buf sending;
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

int64_t cl_now_ms(void);
void cl_log(struct presence_cluster *c, presence_cluster_log_level level,
            const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void cl_wake(struct presence_cluster *c);

/* ---- outbox.c: local changes -------------------------------------------- */

void cl_outbox_event(presence_registry *registry, const presence_event *event,
                     void *user_data);
/* Start keeping changes (announce under way) or drop them (offline). */
void cl_outbox_keep(struct presence_cluster *c, bool keep);
/* Write what waits, in batches. */
void cl_outbox_flush(struct presence_cluster *c);
/* Announce this node's members under a new incarnation. */
void cl_announce(struct presence_cluster *c);

/* ---- sync.c: the other nodes -------------------------------------------- */

/* After `cmd` connected and this node announced: load the directory. */
void cl_sync_start(struct presence_cluster *c);
/* Periodic: leases of the other nodes, new nodes, dead nodes. */
void cl_sync_check(struct presence_cluster *c);
/* Issue the next XREAD if none is under way. */
void cl_sync_read(struct presence_cluster *c);
/* Load one node's snapshot (a new node, a gap, a new incarnation). */
void cl_sync_load(struct presence_cluster *c, const char *node_id);
void cl_sync_node_down(struct presence_cluster *c, struct cl_node *n,
                       presence_leave_reason reason);
void cl_sync_free(struct presence_cluster *c);
void cl_update_synced(struct presence_cluster *c);

#endif
