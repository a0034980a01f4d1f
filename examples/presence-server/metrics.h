/*
 * Observability: counters the server keeps as it runs, and the Prometheus
 * text exposition of them with the gauges read at scrape time
 * (connections, subscriptions, memberships, queued bytes, and the
 * cluster's state when there is one). metrics_http.c serves it at
 * /metrics, with /health beside it.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_METRICS_H
#define PS_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ps_server;

/** Client protocol commands, by kind, as counted. */
typedef enum ps_metric_command {
    PS_CMD_CONNECT,
    PS_CMD_SUBSCRIBE,
    PS_CMD_UNSUBSCRIBE,
    PS_CMD_PRESENCE,
    PS_CMD_PRESENCE_STATS,
    PS_CMD_REFRESH,
    PS_CMD_PUBLISH,
    PS_CMD_HISTORY,
    PS_CMD_RPC,
    PS_CMD_SUB_REFRESH,
    PS_CMD_SEND,
    PS_CMD_PONG,
    PS_CMD_COUNT_
} ps_metric_command;

/** Error codes 100 .. 100 + PS_METRIC_ERROR_CODES - 1 have a counter each;
 *  others share one. Close codes below PS_METRIC_CLOSE_CODES likewise. */
#define PS_METRIC_ERROR_CODES 20
#define PS_METRIC_CLOSE_CODES 5000

/** Buckets of the duration histograms (upper bounds from 50 us to
 *  250 ms), then one past the last bound. */
#define PS_METRIC_BUCKETS 12

/** A duration histogram: counts per bucket (not cumulative) and the sum. */
typedef struct ps_histogram {
    atomic_uint_fast64_t counts[PS_METRIC_BUCKETS + 1];
    atomic_uint_fast64_t sum_ns;
} ps_histogram;

/** The counters: relaxed atomics, bumped from any thread, never reset. */
typedef struct ps_metrics {
    atomic_uint_fast64_t commands[PS_CMD_COUNT_];
    /* From a command's frame parsed to its reply queued, by kind. */
    ps_histogram command_time[PS_CMD_COUNT_];
    /* One turn of the event loop: its work between two waits. */
    ps_histogram loop_busy;
    atomic_uint_fast64_t errors[PS_METRIC_ERROR_CODES + 1];
    atomic_uint_fast64_t api_commands[2]; /* presence, presence_stats */
    atomic_uint_fast64_t api_errors[PS_METRIC_ERROR_CODES + 1];
    atomic_uint_fast64_t closes[PS_METRIC_CLOSE_CODES + 1];
} ps_metrics;

void ps_metrics_command(ps_metrics *m, ps_metric_command kind);

/** How long a command of @p kind took the server, in ns. */
void ps_metrics_command_time(ps_metrics *m, ps_metric_command kind,
                             uint64_t ns);

/** How long one turn of the event loop worked, in ns (its wait for
 *  events left out). */
void ps_metrics_loop_busy(ps_metrics *m, uint64_t ns);

/** An error reply of the client protocol with Centrifugo's @p code. */
void ps_metrics_error(ps_metrics *m, int code);

/** An HTTP API command (@p stats: presence_stats), and an error of one. */
void ps_metrics_api_command(ps_metrics *m, bool stats);
void ps_metrics_api_error(ps_metrics *m, int code);

/** A close frame the server wrote, with its @p code (1005 when it had
 *  none), its own closes and its echoes of the clients' alike. */
void ps_metrics_close(ps_metrics *m, int code);

/** The cluster's state for the exposition, when the server has one. */
typedef struct ps_metrics_cluster {
    bool connected, synced;
    size_t nodes, pending;
    uint64_t sent, applied, rejected, snapshots, nodes_down, connects;
} ps_metrics_cluster;

/**
 * The Prometheus text exposition (format 0.0.4) of @p server: its counters
 * and the gauges read now; @p cluster NULL leaves the cluster's metrics
 * out. Returns a ps_malloc'd, NUL-terminated text (its length in @p len),
 * or NULL when memory runs out. Any thread but a registry callback.
 */
char *ps_metrics_render(struct ps_server *server,
                        const ps_metrics_cluster *cluster, size_t *len);

#endif
