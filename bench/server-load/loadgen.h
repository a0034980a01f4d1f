/*
 * The server workload's generator (SERVER-WORKLOAD.md): its connections,
 * what it believes each group's members heard, and its figures. Shared by
 * the files that drive it (conn.c: sockets and frames, model.c: the
 * join/leave bookkeeping, driver.c: the phases, report.c: the figures).
 * SPDX-License-Identifier: MIT
 */
#ifndef LG_LOADGEN_H
#define LG_LOADGEN_H

#include "buf.h"
#include "hist.h"
#include "proto.h"

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define LG_MAX_IN_FLIGHT_DEFAULT 2000
#define LG_REQ_MAX 6          /* outstanding requests per connection */
#define LG_MAX_SERVER_PIDS 16
#define LG_RETRIES 5          /* openings of one slot that may fail in a row */

typedef enum lg_state {
    LG_IDLE,          /* no socket */
    LG_CONNECTING,    /* TCP connect in progress */
    LG_UPGRADING,     /* HTTP upgrade sent */
    LG_OPENING,       /* Socket.IO: waiting for the Engine.IO open packet */
    LG_HELLO,         /* waiting for the connect reply */
    LG_SUBSCRIBING,   /* waiting for the two subscribe replies */
    LG_READY,
    LG_CLOSING,       /* close frame sent, waiting for the server's */
} lg_state;

typedef enum lg_sub {
    LG_SUB_NONE,
    LG_SUB_PENDING,   /* subscribe sent, no reply yet */
    LG_SUB_ACTIVE,    /* subscribe answered */
} lg_sub;

typedef enum lg_req_kind {
    LG_REQ_SUB_GROUP,
    LG_REQ_SUB_LOBBY,
    LG_REQ_PRESENCE,
    LG_REQ_STATS,
    LG_REQ_CHECK_GROUP,
    LG_REQ_CHECK_LOBBY,
    LG_REQ_PROBE,     /* the final presence_stats of a channel (arg: which) */
} lg_req_kind;

typedef struct lg_request {
    uint32_t id;
    uint8_t kind;     /* lg_req_kind */
    uint32_t arg;     /* LG_REQ_PROBE: the channel, groups first */
    int64_t sent_us;
} lg_request;

/* A join or leave push one member must (required) or may hear about
 * another member of its group. */
typedef struct lg_expect {
    char client[LG_CLIENT_MAX];
    int64_t created_us;
    int64_t reply_us;     /* join: the subject's subscribe reply, 0 before */
    int64_t push_us;      /* the push's arrival, 0 before */
    /* The same two as the kernel received them (lg_conn::arrived_us). */
    int64_t reply_arrived_us;
    int64_t push_arrived_us;
    uint8_t join;
    uint8_t required;
    uint8_t count;
} lg_expect;

typedef struct lg_conn {
    int fd;
    uint32_t index;       /* i of the workload (global) */
    uint8_t state;        /* lg_state */
    uint8_t group;        /* lg_sub */
    uint8_t lobby;        /* lg_sub */
    uint8_t retries;
    uint8_t nreqs;
    bool probe;           /* the last check's connection: in no group */
    bool reopen;          /* open again once closed (churn) */
    bool counted;         /* counted in the in-flight openings */
    bool read_more;       /* stopped reading at the bound, not at EAGAIN */
    char client[LG_CLIENT_MAX];
    char prev_client[LG_CLIENT_MAX]; /* the last session's id */
    int64_t subscribe_sent_us; /* this session's subscribes left */
    int64_t group_active_us;   /* the group subscribe's answer was read */
    int64_t prev_closed_us;
    int64_t started_us;   /* this opening began */
    int64_t deadline_us;  /* of the current wait; when idle: no retry before */
    /* When the kernel received the last bytes read (SO_TIMESTAMPNS, on
     * lg_now_us()'s clock; 0 when it gave none): replies are timed to it
     * too, without the generator's own wait to read them. */
    int64_t arrived_us;
    uint32_t next_id;
    lg_request reqs[LG_REQ_MAX];
    lg_buf in;
    lg_buf out;
    lg_buf msg;           /* a fragmented message being put together */
    lg_expect *expects;
    uint32_t nexpects;
    uint32_t capexpects;
    /* Pushes about a client whose own hello answer was not read yet (its
     * subscribes shared the hello's frame): claimed when it is read. */
    lg_expect *early;
    uint32_t nearly;
    uint32_t capearly;
} lg_conn;

typedef struct lg_options {
    const lg_proto *proto;
    char host[64];
    int ports[LG_MAX_SERVER_PIDS]; /* connection i goes to ports[i % nports] */
    unsigned nports;
    uint32_t n;             /* N of the whole workload */
    uint32_t group_size;    /* G */
    uint32_t lobby_size;    /* L */
    double churn_percent;   /* X, of this process's connections per second */
    double churn_seconds;   /* D */
    double plateau_seconds;
    double presence_rate;   /* presence calls a second, over all shards */
    double stats_rate;
    uint32_t check_groups;
    uint32_t check_lobbies;
    uint32_t max_in_flight;
    uint32_t sources;       /* 127.0.0.1 .. 127.0.0.<sources> */
    uint32_t shard;
    uint32_t shards;
    char sync_dir[512];     /* barriers between shards, empty: none */
    char secret[128];
    /* The subscribes only once the hello is answered, even where the
     * protocol lets them share its frame (--subscribe-after-connect). */
    bool subscribe_after_connect;
    int server_pids[LG_MAX_SERVER_PIDS];
    unsigned nserver_pids;
    uint64_t seed;
} lg_options;

enum {
    LG_FAIL_CONNECT,      /* TCP connect refused or failed */
    LG_FAIL_HANDSHAKE,    /* not 101, or closed during it */
    LG_FAIL_REFUSED,      /* the server refused the hello or a subscribe */
    LG_FAIL_CLOSED,       /* closed by the server while opening */
    LG_FAIL_TIMEOUT,      /* no answer in 30 s */
    LG_FAIL_KINDS
};

typedef struct lg_phase_cpu {
    double server_s;
    double gen_s;
    double wall_s;
} lg_phase_cpu;

typedef struct lg_stats {
    uint64_t ramp_ready;
    double ramp_s;
    uint64_t ramp_fail[LG_FAIL_KINDS];
    uint64_t churn_fail[LG_FAIL_KINDS];
    uint64_t abandoned;           /* slots given up after LG_RETRIES */
    uint64_t churn_clean;
    uint64_t churn_drop;
    uint64_t churn_reopened;
    uint64_t server_closes;       /* ready connections the server closed */
    uint64_t calls_sent;
    uint64_t calls_answered;
    uint64_t call_errors;
    uint64_t pushes;
    uint64_t pushes_ignored;      /* Socket.IO's lobby joins and leaves */
    uint64_t lost;
    uint64_t dup;
    uint64_t unexpected;          /* pushes no model entry allowed for */
    uint64_t bad_messages;        /* not understood, or answers to nothing */
    uint64_t expected;            /* required pushes */
    uint64_t groups_checked;
    uint64_t lobbies_checked;
    uint64_t ghosts;
    uint64_t missing;
    uint64_t probe_channels;
    uint64_t probe_nonzero;       /* channels not empty after everyone left */
    uint64_t probe_failed;        /* probe requests unanswered or refused */
    long long rss_before_kb;
    long long rss_plateau_kb;
    long long rss_after_kb;
    long long threads_plateau;
    lg_phase_cpu ramp_cpu;
    lg_phase_cpu churn_cpu;
    lg_phase_cpu total_cpu;
    lg_hist presence;
    lg_hist presence_stats;
    lg_hist presence_arrival;       /* the same, to the kernel's receipt */
    lg_hist presence_stats_arrival;
    lg_hist join_delay;
    lg_hist join_delay_arrival;     /* between the kernel's receipts */
    lg_hist connect;              /* opening to ready, in the ramp */
} lg_stats;

typedef enum lg_phase {
    LG_PHASE_RAMP,
    LG_PHASE_PLATEAU,
    LG_PHASE_CHURN,
    LG_PHASE_CHECK,
    LG_PHASE_CLOSE,       /* from here on nothing opens again */
} lg_phase;

typedef struct lg_run {
    lg_options opt;
    uint32_t first;         /* global index of conns[0] */
    uint32_t count;         /* connections of this process */
    lg_conn *conns;
    lg_conn probe;
    int epfd;
    uint32_t in_flight;     /* openings not yet ready */
    uint32_t *queue;        /* slots waiting to be opened, a ring */
    uint32_t qhead;
    uint32_t qlen;
    int phase;              /* lg_phase */
    uint32_t read_more;     /* connections with read_more set */
    /* The read buffer a quiet connection gives back, lent to the next one
     * read: a 16 KiB malloc and free per read made glibc give the heap's
     * top back and fault it in again (a quarter of the ramp's CPU). */
    lg_buf spare_in;
    uint64_t rng;
    lg_stats st;
} lg_run;

/* time.c */
int64_t lg_now_us(void);
/** A CLOCK_REALTIME time on lg_now_us()'s clock (as of now). */
int64_t lg_realtime_to_us(const struct timespec *ts);
uint64_t lg_random(lg_run *run);

/* conn.c: sockets, the handshake and frames */
bool lg_conn_start(lg_run *run, lg_conn *c);
void lg_conn_events(lg_run *run, lg_conn *c, uint32_t events);
bool lg_conn_flush(lg_run *run, lg_conn *c);
bool lg_conn_send_text(lg_run *run, lg_conn *c, const lg_buf *text);
void lg_conn_close_clean(lg_run *run, lg_conn *c);
void lg_conn_drop(lg_run *run, lg_conn *c, bool reset);
void lg_conn_timeouts(lg_run *run, int64_t now);
void lg_conn_finish(lg_run *run, lg_conn *c);
void lg_conn_read_more(lg_run *run);
bool lg_conn_request(lg_run *run, lg_conn *c, lg_req_kind kind, uint32_t arg);
/* Appends a request to @p text (newline-separated) and records it. */
bool lg_conn_append_request(lg_run *run, lg_conn *c, lg_req_kind kind, uint32_t arg,
                            lg_buf *text);
/* Requests @p kinds (arg 0) at once: one frame when the protocol batches. */
bool lg_conn_request_all(lg_run *run, lg_conn *c, const lg_req_kind *kinds, size_t count);
void lg_group_name(const lg_run *run, uint32_t group, char *out, size_t cap);
void lg_lobby_name(const lg_run *run, uint32_t lobby, char *out, size_t cap);

/* session.c: what a connection does with each message */
void lg_session_message(lg_run *run, lg_conn *c, const lg_msg *msg);
void lg_session_ended(lg_run *run, lg_conn *c, int fail_kind);
bool lg_session_wants_body(const lg_conn *c, uint32_t id);

/* model.c: join/leave expectations within a group */
void lg_model_subscribing(lg_run *run, lg_conn *c, int64_t now);
void lg_model_subscribed(lg_run *run, lg_conn *c, int64_t now, int64_t arrived);
void lg_model_leaving(lg_run *run, lg_conn *c, int64_t now);
void lg_model_push(lg_run *run, lg_conn *c, const lg_msg *msg, int64_t now,
                   int64_t arrived);
void lg_model_forget(lg_run *run, lg_conn *c, int64_t now);
void lg_model_finish(lg_run *run);
void lg_model_check_reply(lg_run *run, lg_conn *c, bool lobby, json_t *presence);

#endif
