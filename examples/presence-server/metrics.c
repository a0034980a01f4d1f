/*
 * Counters and the Prometheus text exposition. Counters are relaxed
 * atomics: a scrape may see one a moment before another, never a torn
 * value. Gauges are read at scrape time, each under the lock that guards
 * it, never two locks at once.
 * SPDX-License-Identifier: MIT
 */
#include "metrics.h"

#include "conn.h"
#include "mem.h"
#include "server.h"

#include <presence.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void bump(atomic_uint_fast64_t *counter)
{
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

static uint64_t read_counter(atomic_uint_fast64_t *counter)
{
    return (uint64_t)atomic_load_explicit(counter, memory_order_relaxed);
}

void ps_metrics_command(ps_metrics *m, ps_metric_command kind)
{
    if (kind >= 0 && kind < PS_CMD_COUNT_) {
        bump(&m->commands[kind]);
    }
}

/* The buckets' upper bounds, in us and as the exposition writes them. */
static const uint64_t bucket_us[PS_METRIC_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000,
};
static const char *const bucket_le[PS_METRIC_BUCKETS] = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
    "0.005",   "0.01",   "0.025",   "0.05",   "0.1",   "0.25",
};

static void observe(ps_histogram *h, uint64_t ns)
{
    size_t b = 0;
    while (b < PS_METRIC_BUCKETS && ns > bucket_us[b] * 1000) {
        b++;
    }
    bump(&h->counts[b]);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void ps_metrics_command_time(ps_metrics *m, ps_metric_command kind,
                             uint64_t ns)
{
    if (kind >= 0 && kind < PS_CMD_COUNT_) {
        observe(&m->command_time[kind], ns);
    }
}

void ps_metrics_loop_busy(ps_metrics *m, uint64_t ns)
{
    observe(&m->loop_busy, ns);
}

static size_t error_slot(int code)
{
    return code >= 100 && code < 100 + PS_METRIC_ERROR_CODES
               ? (size_t)(code - 100)
               : PS_METRIC_ERROR_CODES;
}

void ps_metrics_error(ps_metrics *m, int code)
{
    bump(&m->errors[error_slot(code)]);
}

void ps_metrics_api_command(ps_metrics *m, bool stats)
{
    bump(&m->api_commands[stats ? 1 : 0]);
}

void ps_metrics_api_error(ps_metrics *m, int code)
{
    bump(&m->api_errors[error_slot(code)]);
}

void ps_metrics_close(ps_metrics *m, int code)
{
    size_t slot = code > 0 && code < PS_METRIC_CLOSE_CODES
                      ? (size_t)code
                      : PS_METRIC_CLOSE_CODES;
    bump(&m->closes[slot]);
}

/* ---- the exposition ---------------------------------------------------- */

typedef struct text {
    char *buf;
    size_t len, cap;
    bool failed;
} text;

static void add(text *t, const char *fmt, ...)
{
    if (t->failed) {
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 > t->len + (size_t)n + 1
                         ? t->cap * 2
                         : t->len + (size_t)n + 1;
        char *grown = ps_realloc(t->buf, cap);
        if (grown == NULL) {
            t->failed = true;
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
}

static void header(text *t, const char *name, const char *type,
                   const char *help)
{
    add(t, "# HELP presence_server_%s %s\n# TYPE presence_server_%s %s\n",
        name, help, name, type);
}

static void gauge(text *t, const char *name, const char *help, uint64_t value)
{
    header(t, name, "gauge", help);
    add(t, "presence_server_%s %llu\n", name, (unsigned long long)value);
}

static void counter(text *t, const char *name, const char *help,
                    uint64_t value)
{
    header(t, name, "counter", help);
    add(t, "presence_server_%s %llu\n", name, (unsigned long long)value);
}

static const char *const command_names[PS_CMD_COUNT_] = {
    "connect", "subscribe", "unsubscribe", "presence", "presence_stats",
    "refresh", "publish", "history", "rpc", "sub_refresh", "send", "pong",
};

/* One histogram's samples (Prometheus: cumulative buckets, the sum in
 * seconds, the count); labels is "" or `name="value",`. */
static void histogram(text *t, const char *name, const char *labels,
                      ps_histogram *h)
{
    uint64_t total = 0;
    for (size_t b = 0; b <= PS_METRIC_BUCKETS; b++) {
        total += read_counter(&h->counts[b]);
        add(t, "presence_server_%s_bucket{%sle=\"%s\"} %llu\n", name, labels,
            b < PS_METRIC_BUCKETS ? bucket_le[b] : "+Inf",
            (unsigned long long)total);
    }
    uint64_t sum_ns = read_counter(&h->sum_ns);
    /* Without the trailing comma, or no braces at all. */
    size_t n = strlen(labels);
    const char *open = n > 0 ? "{" : "";
    const char *close = n > 0 ? "}" : "";
    add(t, "presence_server_%s_sum%s%.*s%s %llu.%09llu\n", name, open,
        (int)(n > 0 ? n - 1 : 0), labels, close,
        (unsigned long long)(sum_ns / 1000000000u),
        (unsigned long long)(sum_ns % 1000000000u));
    add(t, "presence_server_%s_count%s%.*s%s %llu\n", name, open,
        (int)(n > 0 ? n - 1 : 0), labels, close, (unsigned long long)total);
}

static void render_durations(text *t, ps_metrics *m)
{
    header(t, "command_duration_seconds", "histogram",
           "Time the server took for a client protocol command, from its "
           "frame parsed to its reply queued, by method (methods not yet "
           "seen are left out).");
    for (size_t i = 0; i < PS_CMD_COUNT_; i++) {
        if (read_counter(&m->commands[i]) == 0) {
            continue;
        }
        char labels[48];
        snprintf(labels, sizeof labels, "method=\"%s\",", command_names[i]);
        histogram(t, "command_duration_seconds", labels, &m->command_time[i]);
    }
    header(t, "loop_busy_seconds", "histogram",
           "Work of one turn of the event loop, its wait for events left "
           "out: how long a client whose bytes arrived meanwhile may wait "
           "for the loop.");
    histogram(t, "loop_busy_seconds", "", &m->loop_busy);
}

/* One counter family over error codes; codes never seen are left out. */
static void error_family(text *t, const char *name, const char *help,
                         atomic_uint_fast64_t *slots)
{
    header(t, name, "counter", help);
    for (size_t i = 0; i <= PS_METRIC_ERROR_CODES; i++) {
        uint64_t v = read_counter(&slots[i]);
        if (v == 0) {
            continue;
        }
        if (i < PS_METRIC_ERROR_CODES) {
            add(t, "presence_server_%s{code=\"%zu\"} %llu\n", name, 100 + i,
                (unsigned long long)v);
        } else {
            add(t, "presence_server_%s{code=\"other\"} %llu\n", name,
                (unsigned long long)v);
        }
    }
}

static void render_counters(text *t, ps_metrics *m)
{
    header(t, "commands_total", "counter",
           "Client protocol commands received, by method (pong: the "
           "client's answer to a ping).");
    for (size_t i = 0; i < PS_CMD_COUNT_; i++) {
        add(t, "presence_server_commands_total{method=\"%s\"} %llu\n",
            command_names[i], (unsigned long long)read_counter(&m->commands[i]));
    }
    error_family(t, "command_errors_total",
                 "Client protocol error replies, by Centrifugo error code.",
                 m->errors);
    header(t, "api_commands_total", "counter",
           "HTTP API commands, by method.");
    add(t, "presence_server_api_commands_total{method=\"presence\"} %llu\n",
        (unsigned long long)read_counter(&m->api_commands[0]));
    add(t, "presence_server_api_commands_total{method=\"presence_stats\"} %llu\n",
        (unsigned long long)read_counter(&m->api_commands[1]));
    error_family(t, "api_errors_total",
                 "HTTP API error replies, by Centrifugo error code.",
                 m->api_errors);
    header(t, "closes_total", "counter",
           "WebSocket close frames sent, by close code (the server's own "
           "and its echoes of the clients').");
    for (size_t i = 0; i <= PS_METRIC_CLOSE_CODES; i++) {
        uint64_t v = read_counter(&m->closes[i]);
        if (v == 0) {
            continue;
        }
        if (i < PS_METRIC_CLOSE_CODES) {
            add(t, "presence_server_closes_total{code=\"%zu\"} %llu\n", i,
                (unsigned long long)v);
        } else {
            add(t, "presence_server_closes_total{code=\"other\"} %llu\n",
                (unsigned long long)v);
        }
    }
}

/* Bytes waiting for clients: in the connections' outgoing queues (each
 * read under its own queue lock) and taken by their sockets but not yet
 * by the peers' kernels. */
static uint64_t queued_bytes(ps_server *server, bool *ok)
{
    size_t n = 0;
    ps_conn **all = ps_server_transports(server, &n);
    if (all == NULL) {
        *ok = false;
        return 0;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&all[i]->qlock);
        total += all[i]->queued_bytes + atomic_load(&all[i]->transport_pending);
        pthread_mutex_unlock(&all[i]->qlock);
        ps_conn_unref(all[i]);
    }
    ps_free(all);
    return total;
}

static void render_gauges(text *t, ps_server *server)
{
    pthread_mutex_lock(&server->conns_lock);
    size_t clients = server->client_count;
    size_t transports = server->transport_count;
    pthread_mutex_unlock(&server->conns_lock);
    gauge(t, "connections", "Connected clients (connect done).", clients);
    gauge(t, "transports",
          "Open WebSocket transports, connected or not yet.", transports);
    gauge(t, "connection_limit",
          "The most clients this server accepts (client_connection_limit, "
          "or what the open files allow).",
          server->max_connections);
    size_t subs = 0;
    size_t channels = 0;
    ps_hub_counts(&server->hub, &subs, &channels);
    gauge(t, "subscriptions", "Subscriptions of this server's clients.", subs);
    gauge(t, "subscribed_channels",
          "Channels with a subscriber on this server.", channels);
    presence_counts counts;
    if (presence_registry_counts(server->registry, &counts) == PRESENCE_OK) {
        gauge(t, "presence_memberships",
              "(client, channel) pairs in presence, every server's with "
              "Redis.", counts.memberships);
        gauge(t, "presence_channels", "Channels with someone present.",
              counts.channels);
        gauge(t, "presence_clients",
              "Clients known to presence: this server's connections (a "
              "handle each), and other servers' clients in some channel.",
              counts.clients);
        gauge(t, "presence_users", "Distinct users of those clients.",
              counts.users);
    }
    bool ok = true;
    uint64_t queued = queued_bytes(server, &ok);
    if (!ok) {
        t->failed = true;
        return;
    }
    gauge(t, "queued_bytes",
          "Bytes waiting to be written to clients, in all.", queued);
}

static void render_cluster(text *t, const ps_metrics_cluster *c)
{
    gauge(t, "cluster_connected", "1 when both Redis connections are up.",
          c->connected);
    gauge(t, "cluster_synced",
          "1 when connected, announced and every live node's state loaded.",
          c->synced);
    gauge(t, "cluster_nodes", "Other live nodes.", c->nodes);
    gauge(t, "cluster_pending",
          "Local changes not yet confirmed by Redis.", c->pending);
    counter(t, "cluster_sent_total", "Local changes confirmed by Redis.",
            c->sent);
    counter(t, "cluster_applied_total",
            "Other nodes' changes applied here.", c->applied);
    counter(t, "cluster_rejected_total",
            "Other nodes' changes the registry refused.", c->rejected);
    counter(t, "cluster_snapshots_total", "Node snapshots loaded.",
            c->snapshots);
    counter(t, "cluster_nodes_down_total", "Nodes declared down.",
            c->nodes_down);
    counter(t, "cluster_connects_total", "Successful connections to Redis.",
            c->connects);
}

char *ps_metrics_render(ps_server *server, const ps_metrics_cluster *cluster,
                        size_t *len)
{
    text t = {ps_malloc(8192), 0, 8192, false};
    if (t.buf == NULL) {
        return NULL;
    }
    t.buf[0] = '\0';
    render_gauges(&t, server);
    render_counters(&t, &server->metrics);
    render_durations(&t, &server->metrics);
    if (cluster != NULL) {
        render_cluster(&t, cluster);
    }
    if (t.failed) {
        ps_free(t.buf);
        return NULL;
    }
    *len = t.len;
    return t.buf;
}
