/*
 * presence-cluster-bench: replication figures of libpresence-cluster, two
 * nodes in two processes on one machine, through one Redis server.
 *
 *   presence-cluster-bench --port PORT [--host HOST] [--memberships N]
 *       [--channels C] [--lag-joins M] [--lag-rate PER_S] [--lease-ms MS]
 *       [--prefix PREFIX]
 *
 * The process forks: the parent is node A, the child node B; each runs its
 * cluster handle on its own thread (presence_cluster_start_thread()), and
 * they talk over two pipes.
 *
 * - warm-up: one join that B must see before anything is measured.
 * - throughput: A joins N memberships (N clients spread over C channels)
 *   as fast as it can; the figure is N divided by the time from A's first
 *   join call to the event that makes B hold all N. Then A disconnects
 *   them all, measured the same way until B holds none. Should a lease run
 *   out meanwhile (B then drops A's members as node_down and loads them
 *   again), the figure is flagged as not clean.
 * - lag: A joins M clients, one every 1/PER_S s; for each, the time from
 *   just before A's presence_join() call to B's join event callback. Both
 *   read CLOCK_MONOTONIC, which the processes of one machine share.
 *
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <presence.h>
#include <presence_cluster.h>

static char NODE_A[] = "bench-a";
static char NODE_B[] = "bench-b";
#define WAIT_SYNC_MS 15000
#define WAIT_PHASE_MS 180000

typedef struct bench_options {
    const char *host;
    int port;
    const char *prefix;
    int64_t lease_ms;
    size_t memberships;
    size_t channels;
    size_t lag_joins;
    double lag_rate;
} bench_options;

/* What node B counts, filled by its event callback (on the handle's
 * thread) and read by its main thread. */
typedef struct receiver {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t held;        /* memberships of "t-" clients of A held by B */
    size_t lost;        /* of them removed by node_down or resync */
    int64_t last_ns;    /* when held last changed */
    size_t warm;        /* joins of "w-" clients from A */
    int64_t *lag_ns;    /* event time of "l-<i>" joins, 0 = not seen */
    size_t lag_max;
    size_t lag_seen;
} receiver;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void sleep_until_ns(int64_t t)
{
    struct timespec ts = {.tv_sec = t / 1000000000,
                          .tv_nsec = t % 1000000000};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR) {
    }
}

static int check(int rc, const char *what)
{
    if (rc != PRESENCE_OK) {
        fprintf(stderr, "bench: %s: %s\n", what, presence_strerror(rc));
    }
    return rc;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            perror("bench: write");
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            fprintf(stderr, "bench: read from the other node: %s\n",
                    n == 0 ? "end of file" : strerror(errno));
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void on_log(presence_cluster_log_level level, const char *message,
                   void *user_data)
{
    if (level >= PRESENCE_CLUSTER_LOG_WARNING) {
        fprintf(stderr, "[%s] %s\n", (const char *)user_data, message);
    }
}

/* A registry attached to Redis, its handle on its own thread. */
static int node_start(const bench_options *o, char *id,
                      presence_registry **reg, presence_cluster **cl)
{
    presence_cluster_config cc;
    presence_cluster_config_init(&cc);
    cc.redis_host = o->host;
    cc.redis_port = o->port;
    cc.prefix = o->prefix;
    cc.node_id = id;
    cc.lease_ms = o->lease_ms;
    cc.log = on_log;
    cc.log_user_data = id;
    if (check(presence_registry_new(NULL, reg), "presence_registry_new")) {
        return -1;
    }
    if (check(presence_cluster_new(*reg, &cc, cl), "presence_cluster_new")) {
        return -1;
    }
    return 0;
}

static int start_thread(presence_cluster *cl)
{
    return check(presence_cluster_start_thread(cl),
                 "presence_cluster_start_thread");
}

/* Wait until the handle is synced and sees the other node. */
static int wait_synced(presence_cluster *cl, const char *id)
{
    int64_t deadline = mono_ns() + (int64_t)WAIT_SYNC_MS * 1000000;
    presence_cluster_status st;
    while (mono_ns() < deadline) {
        if (check(presence_cluster_status_get(cl, &st), "status")) {
            return -1;
        }
        if (st.synced && st.nodes >= 1) {
            return 0;
        }
        sleep_ms(2);
    }
    fprintf(stderr,
            "bench: %s not synced with the other node after %d ms "
            "(connected=%d synced=%d nodes=%zu)\n",
            id, WAIT_SYNC_MS, st.connected, st.synced, st.nodes);
    return -1;
}

/* ---- node B ------------------------------------------------------------ */

static void on_event_b(presence_registry *reg, const presence_event *ev,
                       void *user_data)
{
    (void)reg;
    receiver *r = user_data;
    int64_t now = mono_ns();
    if (strcmp(ev->node_id, NODE_A) != 0) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    if (strncmp(ev->client_id, "t-", 2) == 0) {
        if (ev->kind == PRESENCE_EVENT_JOIN) {
            r->held++;
        } else {
            r->held--;
            if (ev->reason == PRESENCE_LEAVE_NODE_DOWN ||
                ev->reason == PRESENCE_LEAVE_RESYNC) {
                r->lost++;
            }
        }
        r->last_ns = now;
    } else if (strncmp(ev->client_id, "w-", 2) == 0 &&
               ev->kind == PRESENCE_EVENT_JOIN) {
        r->warm++;
    } else if (strncmp(ev->client_id, "l-", 2) == 0 &&
               ev->kind == PRESENCE_EVENT_JOIN) {
        size_t i = strtoul(ev->client_id + 2, NULL, 10);
        if (i < r->lag_max && r->lag_ns[i] == 0) {
            r->lag_ns[i] = now;
            r->lag_seen++;
        }
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* Wait until *count reaches target (or, with exact, equals it) or the
 * phase times out. Lock held. */
static void wait_count(receiver *r, const size_t *count, size_t target,
                       bool exact)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_PHASE_MS / 1000;
    while (exact ? *count != target : *count < target) {
        if (pthread_cond_timedwait(&r->cond, &r->lock, &until) == ETIMEDOUT) {
            return;
        }
    }
}

/* Node B: answers the parent's phase requests over the pipes. */
static int run_b(const bench_options *o, int in, int out)
{
    static receiver r = {.lock = PTHREAD_MUTEX_INITIALIZER,
                         .cond = PTHREAD_COND_INITIALIZER};
    presence_registry *reg = NULL;
    presence_cluster *cl = NULL;
    presence_subscription sub;
    int status = 1;
    r.lag_max = o->lag_joins;
    r.lag_ns = calloc(o->lag_joins ? o->lag_joins : 1, sizeof *r.lag_ns);
    if (r.lag_ns == NULL || node_start(o, NODE_B, &reg, &cl) != 0 ||
        check(presence_subscribe(reg, PRESENCE_SCOPE_ALL, NULL,
                                 PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE,
                                 on_event_b, &r, &sub),
              "presence_subscribe") != PRESENCE_OK ||
        start_thread(cl) != 0 || wait_synced(cl, NODE_B) != 0) {
        goto done;
    }
    char cmd = 'R';
    if (write_all(out, &cmd, 1) != 0) {
        goto done;
    }
    while (read_all(in, &cmd, 1) == 0 && cmd != 'Q') {
        uint64_t target;
        if (read_all(in, &target, sizeof target) != 0) {
            goto done;
        }
        pthread_mutex_lock(&r.lock);
        int64_t reply[3] = {0, 0, 0};
        if (cmd == 'J' || cmd == 'D') {
            /* 'J': until B holds the target; 'D': until it holds none. */
            wait_count(&r, &r.held, target, true);
            reply[0] = r.last_ns;
            reply[1] = (int64_t)r.held;
            reply[2] = (int64_t)r.lost;
        } else if (cmd == 'W') {
            wait_count(&r, &r.warm, target, false);
            reply[0] = mono_ns();
            reply[1] = (int64_t)r.warm;
        } else {
            wait_count(&r, &r.lag_seen, target, false);
        }
        pthread_mutex_unlock(&r.lock);
        int wrc = cmd == 'L'
                      ? write_all(out, r.lag_ns, o->lag_joins * sizeof(int64_t))
                      : write_all(out, reply, sizeof reply);
        r.lost = 0;
        if (wrc != 0) {
            goto done;
        }
    }
    status = 0;
done:
    if (check(presence_cluster_free(cl), "presence_cluster_free") ||
        check(presence_registry_free(reg), "presence_registry_free")) {
        status = 1;
    }
    free(r.lag_ns);
    return status;
}

/* ---- node A ------------------------------------------------------------ */

static double ms_between(int64_t a, int64_t b)
{
    return (double)(b - a) / 1e6;
}

/* Wait until no local change is pending; returns when, or -1. *sent_all
 * tells whether they were all confirmed one by one (a re-announce after a
 * lost lease carries them in the snapshot instead). */
static int64_t wait_flushed(presence_cluster *cl, uint64_t sent_target,
                            bool *sent_all)
{
    int64_t deadline = mono_ns() + (int64_t)WAIT_PHASE_MS * 1000000;
    presence_cluster_status st;
    while (mono_ns() < deadline) {
        if (check(presence_cluster_status_get(cl, &st), "status")) {
            return -1;
        }
        if (st.pending == 0) {
            *sent_all = st.sent >= sent_target;
            return mono_ns();
        }
        sleep_ms(1);
    }
    return -1;
}

/* Ask B to wait for a target: reply {when, count, memberships lost}. */
static int ask_b(int to_b, int from_b, char cmd, uint64_t target,
                 int64_t reply[3])
{
    if (write_all(to_b, &cmd, 1) || write_all(to_b, &target, sizeof target)) {
        return -1;
    }
    return read_all(from_b, reply, 3 * sizeof(int64_t));
}

/* A figure is clean only if no lease ran out meanwhile. */
static void warn_lost(int64_t lost)
{
    if (lost > 0) {
        printf("  WARNING: B dropped %" PRId64 " of A's memberships as "
               "node_down/resync meanwhile (a lease ran out under load): "
               "not a clean replication figure\n", lost);
    }
}

static int phase_throughput(presence_registry *reg, presence_cluster *cl,
                            const bench_options *o, int to_b, int from_b)
{
    char ch[64];
    char client[64];
    char user[64];
    presence_cluster_status st0;
    if (check(presence_cluster_status_get(cl, &st0), "status")) {
        return -1;
    }
    size_t n = o->memberships;
    int64_t t0 = mono_ns();
    for (size_t i = 0; i < n; i++) {
        snprintf(ch, sizeof ch, "room-%zu", i % o->channels);
        snprintf(client, sizeof client, "t-%zu", i);
        snprintf(user, sizeof user, "user-%zu", i % 1000);
        if (check(presence_join(reg, ch, client, user, NULL, 0, NULL, 0),
                  "presence_join")) {
            return -1;
        }
    }
    int64_t t_issued = mono_ns();
    bool sent_all = false;
    int64_t t_flushed = wait_flushed(cl, st0.sent + n, &sent_all);
    int64_t reply[3];
    if (ask_b(to_b, from_b, 'J', n, reply) != 0) {
        return -1;
    }
    if ((uint64_t)reply[1] != n) {
        fprintf(stderr, "bench: B holds %" PRId64 " of %zu memberships\n",
                reply[1], n);
        return -1;
    }
    double total = ms_between(t0, reply[0]);
    printf("throughput, joins: %zu memberships (%zu clients over %zu "
           "channels)\n", n, n, o->channels);
    printf("  A's join calls returned after   %9.1f ms\n",
           ms_between(t0, t_issued));
    printf("  Redis confirmed them all after  %9.1f ms%s\n",
           t_flushed < 0 ? -1.0 : ms_between(t0, t_flushed),
           sent_all ? "" : " (some by a re-announce: a lease ran out)");
    printf("  B had them all after            %9.1f ms\n", total);
    printf("  => %.0f memberships/s from A to B\n", (double)n / total * 1e3);
    warn_lost(reply[2]);

    t0 = mono_ns();
    for (size_t i = 0; i < n; i++) {
        snprintf(client, sizeof client, "t-%zu", i);
        if (check(presence_disconnect(reg, client, NULL),
                  "presence_disconnect")) {
            return -1;
        }
    }
    t_issued = mono_ns();
    if (ask_b(to_b, from_b, 'D', 0, reply) != 0) {
        return -1;
    }
    if (reply[1] != 0) {
        fprintf(stderr, "bench: B still holds %" PRId64 " of A's %zu\n",
                reply[1], n);
        return -1;
    }
    total = ms_between(t0, reply[0]);
    printf("throughput, leaves: %zu disconnects\n", n);
    printf("  A's disconnect calls returned after %9.1f ms\n",
           ms_between(t0, t_issued));
    printf("  B had them all after                %9.1f ms\n", total);
    printf("  => %.0f memberships/s from A to B\n", (double)n / total * 1e3);
    warn_lost(reply[2]);
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *sorted, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1e6;
}

static int phase_lag(presence_registry *reg, const bench_options *o,
                     int to_b, int from_b)
{
    size_t m = o->lag_joins;
    int64_t *t_call = calloc(m, sizeof *t_call);
    int64_t *t_event = calloc(m, sizeof *t_event);
    int status = -1;
    char ch[64];
    char client[64];
    if (t_call == NULL || t_event == NULL) {
        goto done;
    }
    int64_t interval = (int64_t)(1e9 / o->lag_rate);
    int64_t start = mono_ns();
    for (size_t i = 0; i < m; i++) {
        sleep_until_ns(start + (int64_t)i * interval);
        snprintf(ch, sizeof ch, "lag-%zu", i % 100);
        snprintf(client, sizeof client, "l-%zu", i);
        t_call[i] = mono_ns();
        if (check(presence_join(reg, ch, client, "lag-user", NULL, 0, NULL, 0),
                  "presence_join")) {
            goto done;
        }
    }
    char cmd = 'L';
    uint64_t target = m;
    if (write_all(to_b, &cmd, 1) || write_all(to_b, &target, sizeof target) ||
        read_all(from_b, t_event, m * sizeof *t_event)) {
        goto done;
    }
    size_t seen = 0;
    for (size_t i = 0; i < m; i++) {
        if (t_event[i] != 0) {
            t_call[seen++] = t_event[i] - t_call[i];
        }
    }
    if (seen < m) {
        fprintf(stderr, "bench: B saw %zu of %zu lag joins\n", seen, m);
        goto done;
    }
    qsort(t_call, seen, sizeof *t_call, cmp_i64);
    printf("lag, join on A -> join event on B: %zu joins at %.0f/s\n", m,
           o->lag_rate);
    printf("  p50 %.3f ms   p90 %.3f ms   p99 %.3f ms   max %.3f ms   "
           "min %.3f ms\n",
           pct_ms(t_call, seen, 0.50), pct_ms(t_call, seen, 0.90),
           pct_ms(t_call, seen, 0.99), (double)t_call[seen - 1] / 1e6,
           (double)t_call[0] / 1e6);
    status = 0;
done:
    free(t_call);
    free(t_event);
    return status;
}

/* One join that B must see before anything is measured: right after both
 * report synced, the first changes can take up to the reader's XREAD
 * BLOCK timeout (see the report); the figures are for a running cluster. */
static int warm_up(presence_registry *reg, int to_b, int from_b)
{
    int64_t t0 = mono_ns();
    if (check(presence_join(reg, "warm", "w-1", "warm", NULL, 0, NULL, 0),
              "presence_join")) {
        return -1;
    }
    int64_t reply[3];
    if (ask_b(to_b, from_b, 'W', 1, reply) != 0 || reply[1] < 1) {
        fprintf(stderr, "bench: B never saw the warm-up join\n");
        return -1;
    }
    printf("warm-up: the first join after both nodes were synced reached B "
           "after %.1f ms\n", ms_between(t0, reply[0]));
    return 0;
}

static int run_a(const bench_options *o, int to_b, int from_b)
{
    presence_registry *reg = NULL;
    presence_cluster *cl = NULL;
    int status = 1;
    char ready = 0;
    if (node_start(o, NODE_A, &reg, &cl) != 0 || start_thread(cl) != 0 ||
        wait_synced(cl, NODE_A) != 0 || read_all(from_b, &ready, 1) != 0 ||
        ready != 'R') {
        goto done;
    }
    if (warm_up(reg, to_b, from_b) != 0) {
        goto done;
    }
    if (o->memberships > 0 &&
        phase_throughput(reg, cl, o, to_b, from_b) != 0) {
        goto done;
    }
    if (o->lag_joins > 0 && phase_lag(reg, o, to_b, from_b) != 0) {
        goto done;
    }
    status = 0;
done:
    if (check(presence_cluster_free(cl), "presence_cluster_free") ||
        check(presence_registry_free(reg), "presence_registry_free")) {
        status = 1;
    }
    char quit = 'Q';
    (void)write_all(to_b, &quit, 1);
    return status;
}

static int parse_args(int argc, char **argv, bench_options *o)
{
    *o = (bench_options){.host = "127.0.0.1", .port = 0, .prefix = "bench",
                         .lease_ms = 3000, .memberships = 100000,
                         .channels = 1000, .lag_joins = 2000,
                         .lag_rate = 1000.0};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i];
        const char *v = argv[i + 1];
        if (strcmp(a, "--host") == 0) {
            o->host = v;
        } else if (strcmp(a, "--port") == 0) {
            o->port = atoi(v);
        } else if (strcmp(a, "--prefix") == 0) {
            o->prefix = v;
        } else if (strcmp(a, "--lease-ms") == 0) {
            o->lease_ms = strtoll(v, NULL, 10);
        } else if (strcmp(a, "--memberships") == 0) {
            o->memberships = strtoul(v, NULL, 10);
        } else if (strcmp(a, "--channels") == 0) {
            o->channels = strtoul(v, NULL, 10);
        } else if (strcmp(a, "--lag-joins") == 0) {
            o->lag_joins = strtoul(v, NULL, 10);
        } else if (strcmp(a, "--lag-rate") == 0) {
            o->lag_rate = strtod(v, NULL);
        } else {
            return -1;
        }
    }
    if (argc % 2 != 1 || o->port <= 0 || o->channels == 0 ||
        o->lag_rate <= 0) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    bench_options o;
    if (parse_args(argc, argv, &o) != 0) {
        fprintf(stderr,
                "usage: presence-cluster-bench --port PORT [--host HOST] "
                "[--memberships N] [--channels C] [--lag-joins M] "
                "[--lag-rate PER_S] [--lease-ms MS] [--prefix PREFIX]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int a_to_b[2];
    int b_to_a[2];
    if (pipe(a_to_b) != 0 || pipe(b_to_a) != 0) {
        perror("bench: pipe");
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench: fork");
        return 1;
    }
    if (pid == 0) {
        close(a_to_b[1]);
        close(b_to_a[0]);
        _exit(run_b(&o, a_to_b[0], b_to_a[1]));
    }
    close(a_to_b[0]);
    close(b_to_a[1]);
    int status = run_a(&o, a_to_b[1], b_to_a[0]);
    close(a_to_b[1]);
    int child = 0;
    if (waitpid(pid, &child, 0) < 0 || !WIFEXITED(child) ||
        WEXITSTATUS(child) != 0) {
        fprintf(stderr, "bench: node B failed\n");
        status = 1;
    }
    return status;
}
