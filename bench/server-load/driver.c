/*
 * The workload's phases (SERVER-WORKLOAD.md): ramp, plateau, churn, check,
 * close and the last probe, each a bounded number of turns of one epoll
 * loop, with barriers between them when several processes share the work.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include "driver.h"
#include "sysinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#define SECOND_US 1000000LL
#define SETTLE_US (2 * SECOND_US)
#define BARRIER_TIMEOUT_US (900 * SECOND_US)

__attribute__((format(printf, 2, 3)))
static void log_line(const lg_run *run, const char *fmt, ...)
{
    static int64_t start;
    if (start == 0) {
        start = lg_now_us();
    }
    fprintf(stderr, "[server-load %s %u/%u %7.2f s] ", run->opt.proto->name, run->opt.shard,
            run->opt.shards, (double)(lg_now_us() - start) / SECOND_US);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Start what waits in the queue, as far as the in-flight bound allows. */
static void open_queued(lg_run *run, int64_t now)
{
    uint32_t budget = run->qlen;
    while (run->qlen > 0 && budget-- > 0 && run->in_flight < run->opt.max_in_flight) {
        uint32_t slot = run->queue[run->qhead];
        run->qhead = (run->qhead + 1) % run->count;
        run->qlen--;
        lg_conn *c = &run->conns[slot];
        if (c->deadline_us > now) { /* a retry not due yet: to the back */
            run->queue[(run->qhead + run->qlen) % run->count] = slot;
            run->qlen++;
            continue;
        }
        if (!lg_conn_start(run, c)) {
            (run->phase == LG_PHASE_RAMP ? run->st.ramp_fail
                                         : run->st.churn_fail)[LG_FAIL_CONNECT]++;
            run->queue[(run->qhead + run->qlen) % run->count] = slot;
            run->qlen++;
            break; /* out of descriptors: wait for some to close */
        }
    }
}

/* One turn of the loop: start openings, wait at most @p timeout_ms for
 * events, handle them, and every 100 ms look at the deadlines. */
static void pump(lg_run *run, int timeout_ms)
{
    static int64_t last_scan;
    enum { MAX_EVENTS = 512 };
    struct epoll_event events[MAX_EVENTS];
    int64_t now = lg_now_us();
    open_queued(run, now);
    if (run->read_more > 0) {
        lg_conn_read_more(run);
        timeout_ms = 0; /* more may still be waiting */
    }
    int n = epoll_wait(run->epfd, events, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        lg_conn_events(run, events[i].data.ptr, events[i].events);
    }
    now = lg_now_us();
    if (now - last_scan > 100000) {
        last_scan = now;
        lg_conn_timeouts(run, now);
    }
}

/* Turn the loop until @p done says so or @p limit_us passes. */
static bool pump_until(lg_run *run, int64_t limit_us, bool (*done)(const lg_run *))
{
    int64_t end = lg_now_us() + limit_us;
    while (lg_now_us() < end) {
        if (done != NULL && done(run)) {
            return true;
        }
        pump(run, 5);
    }
    return done != NULL && done(run);
}

static bool never(const lg_run *run)
{
    (void)run;
    return false;
}

static bool ramp_done(const lg_run *run)
{
    return run->qlen == 0 && run->in_flight == 0;
}

static bool all_idle(const lg_run *run)
{
    for (uint32_t i = 0; i < run->count; i++) {
        if (run->conns[i].fd >= 0) {
            return false;
        }
    }
    return run->probe.fd < 0;
}

static bool requests_done(const lg_run *run)
{
    for (uint32_t i = 0; i < run->count; i++) {
        if (run->conns[i].nreqs != 0) {
            return false;
        }
    }
    return run->probe.nreqs == 0;
}

/* Every shard reaches @p name before any goes on (a file per shard in
 * --sync DIR); the loop keeps turning meanwhile, pings are answered. */
static void barrier(lg_run *run, const char *name)
{
    if (run->opt.sync_dir[0] == '\0' || run->opt.shards <= 1) {
        return;
    }
    char path[700];
    snprintf(path, sizeof path, "%s/%s.%u", run->opt.sync_dir, name, run->opt.shard);
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
    }
    int64_t end = lg_now_us() + BARRIER_TIMEOUT_US;
    while (lg_now_us() < end) {
        unsigned present = 0;
        for (unsigned i = 0; i < run->opt.shards; i++) {
            snprintf(path, sizeof path, "%s/%s.%u", run->opt.sync_dir, name, i);
            present += access(path, F_OK) == 0;
        }
        if (present == run->opt.shards) {
            return;
        }
        pump(run, 50);
    }
    log_line(run, "barrier %s: %lld s without the other shards", name,
             (long long)(BARRIER_TIMEOUT_US / SECOND_US));
}

static void cpu_start(const lg_run *run, lg_phase_cpu *p)
{
    p->server_s = -lg_sys_cpu_s(run->opt.server_pids, run->opt.nserver_pids);
    p->gen_s = -lg_sys_self_cpu_s();
    p->wall_s = -(double)lg_now_us() / SECOND_US;
}

static void cpu_stop(const lg_run *run, lg_phase_cpu *p)
{
    p->server_s += lg_sys_cpu_s(run->opt.server_pids, run->opt.nserver_pids);
    p->gen_s += lg_sys_self_cpu_s();
    p->wall_s += (double)lg_now_us() / SECOND_US;
}

static lg_conn *random_ready(lg_run *run)
{
    for (int tries = 0; tries < 32; tries++) {
        lg_conn *c = &run->conns[lg_random(run) % run->count];
        if (c->state == LG_READY && c->nreqs < LG_REQ_MAX) {
            return c;
        }
    }
    return NULL;
}

static void ramp(lg_run *run)
{
    run->phase = LG_PHASE_RAMP;
    for (uint32_t i = 0; i < run->count; i++) {
        run->queue[i] = i;
    }
    run->qhead = 0;
    run->qlen = run->count;
    cpu_start(run, &run->st.ramp_cpu);
    int64_t start = lg_now_us();
    /* Bounded: 60 s plus 50 ms a connection (a slow peer's ramp is a
     * figure too, not a reason to stop early). */
    pump_until(run, 60 * SECOND_US + (int64_t)run->count * 50000, ramp_done);
    run->st.ramp_s = (double)(lg_now_us() - start) / SECOND_US;
    cpu_stop(run, &run->st.ramp_cpu);
    log_line(run, "ramp: %llu ready in %.2f s (%.0f/s), %u in flight left",
             (unsigned long long)run->st.ramp_ready, run->st.ramp_s,
             run->st.ramp_s > 0 ? (double)run->st.ramp_ready / run->st.ramp_s : 0.0,
             run->in_flight);
}

static void plateau(lg_run *run)
{
    run->phase = LG_PHASE_PLATEAU;
    pump_until(run, (int64_t)(run->opt.plateau_seconds * SECOND_US), never);
    run->st.rss_plateau_kb = lg_sys_rss_kb(run->opt.server_pids, run->opt.nserver_pids);
    run->st.threads_plateau = lg_sys_threads(run->opt.server_pids, run->opt.nserver_pids);
    log_line(run, "plateau: server RSS %lld KiB (before %lld), %lld threads",
             run->st.rss_plateau_kb, run->st.rss_before_kb, run->st.threads_plateau);
}

static void churn_close_one(lg_run *run, uint64_t nth)
{
    lg_conn *c = random_ready(run);
    if (c == NULL) {
        return;
    }
    int64_t now = lg_now_us();
    c->reopen = true;
    lg_model_leaving(run, c, now);
    if (nth % 2 == 0) {
        run->st.churn_clean++;
        lg_conn_close_clean(run, c);
    } else {
        run->st.churn_drop++;
        lg_conn_drop(run, c, nth % 4 == 3); /* half of the drops with RST */
    }
}

static void call_one(lg_run *run, lg_req_kind kind)
{
    lg_conn *c = random_ready(run);
    if (c == NULL) {
        return;
    }
    if (lg_conn_request(run, c, kind, (uint32_t)(lg_random(run) % 2))) {
        run->st.calls_sent++;
    }
}

static bool reopened(const lg_run *run)
{
    return run->qlen == 0 && run->in_flight == 0;
}

static void churn(lg_run *run)
{
    run->phase = LG_PHASE_CHURN;
    double close_rate = run->count * run->opt.churn_percent / 100.0;
    double shards = run->opt.shards ? run->opt.shards : 1;
    double presence_rate = run->opt.presence_rate / shards;
    double stats_rate = run->opt.stats_rate / shards;
    uint64_t closes = 0;
    uint64_t presences = 0;
    uint64_t stats = 0;
    cpu_start(run, &run->st.churn_cpu);
    int64_t start = lg_now_us();
    int64_t end = start + (int64_t)(run->opt.churn_seconds * SECOND_US);
    for (int64_t now = start; now < end; now = lg_now_us()) {
        double t = (double)(now - start) / SECOND_US;
        /* Bounded per turn, so that a slow turn does not become a burst. */
        for (int k = 0; k < 64 && (double)closes < close_rate * t; k++) {
            churn_close_one(run, closes++);
        }
        for (int k = 0; k < 64 && (double)presences < presence_rate * t; k++) {
            call_one(run, LG_REQ_PRESENCE);
            presences++;
        }
        for (int k = 0; k < 64 && (double)stats < stats_rate * t; k++) {
            call_one(run, LG_REQ_STATS);
            stats++;
        }
        pump(run, 2);
    }
    cpu_stop(run, &run->st.churn_cpu);
    /* Stop: let the reopenings and answers finish, then wait 2 s. */
    run->phase = LG_PHASE_CHECK;
    if (getenv("LG_DEBUG") != NULL) {
        unsigned states[8] = {0};
        for (uint32_t i = 0; i < run->count; i++) {
            states[run->conns[i].state]++;
        }
        log_line(run, "debug: %u in flight, %u queued; "
                 "idle %u connecting %u upgrading %u opening %u hello %u subscribing %u "
                 "ready %u closing %u", run->in_flight, run->qlen, states[0], states[1],
                 states[2], states[3], states[4], states[5], states[6], states[7]);
    }
    if (!pump_until(run, 30 * SECOND_US, reopened)) {
        unsigned states[8] = {0};
        for (uint32_t i = 0; i < run->count; i++) {
            states[run->conns[i].state]++;
        }
        log_line(run, "churn: reopenings not done in 30 s: %u in flight, %u queued; "
                 "idle %u connecting %u upgrading %u opening %u hello %u subscribing %u "
                 "ready %u closing %u", run->in_flight, run->qlen, states[0], states[1],
                 states[2], states[3], states[4], states[5], states[6], states[7]);
    }
    pump_until(run, SETTLE_US, never);
    lg_model_finish(run);
    log_line(run, "churn: %llu closes, %llu reopened, %llu calls answered, "
             "%llu pushes, %llu lost, %llu dup, %llu unexpected",
             (unsigned long long)(run->st.churn_clean + run->st.churn_drop),
             (unsigned long long)run->st.churn_reopened,
             (unsigned long long)run->st.calls_answered,
             (unsigned long long)run->st.pushes, (unsigned long long)run->st.lost,
             (unsigned long long)run->st.dup, (unsigned long long)run->st.unexpected);
}

/* A ready member of [start, start + size), or NULL. */
static lg_conn *ready_in(lg_run *run, uint64_t start, uint32_t size)
{
    for (uint64_t i = start; i < start + size; i++) {
        if (i >= run->first && i < (uint64_t)run->first + run->count) {
            lg_conn *c = &run->conns[i - run->first];
            if (c->state == LG_READY && c->nreqs < LG_REQ_MAX) {
                return c;
            }
        }
    }
    return NULL;
}

static void check(lg_run *run)
{
    uint32_t g = run->opt.group_size;
    uint32_t l = run->opt.lobby_size;
    uint32_t first_group = run->first / g;
    uint32_t ngroups = (run->count + g - 1) / g;
    uint32_t first_lobby = run->first / l;
    uint32_t nlobbies = (run->count + l - 1) / l;
    /* The workload's counts are for the whole run: a shard takes its part.
     * Distinct groups: a random start, stepping by one around the ring. */
    uint32_t shards = run->opt.shards ? run->opt.shards : 1;
    uint32_t want_groups = (run->opt.check_groups + shards - 1) / shards;
    uint32_t want_lobbies = (run->opt.check_lobbies + shards - 1) / shards;
    uint32_t want = want_groups < ngroups ? want_groups : ngroups;
    uint32_t at = (uint32_t)(lg_random(run) % ngroups);
    for (uint32_t k = 0; k < want; k++) {
        uint32_t group = first_group + (at + k) % ngroups;
        lg_conn *c = ready_in(run, (uint64_t)group * g, g);
        if (c != NULL) {
            lg_conn_request(run, c, LG_REQ_CHECK_GROUP, 0);
        }
        if (k % 64 == 63) {
            pump(run, 0);
        }
    }
    want = want_lobbies < nlobbies ? want_lobbies : nlobbies;
    at = (uint32_t)(lg_random(run) % nlobbies);
    for (uint32_t k = 0; k < want; k++) {
        uint32_t lobby = first_lobby + (at + k) % nlobbies;
        lg_conn *c = ready_in(run, (uint64_t)lobby * l, l);
        if (c != NULL) {
            lg_conn_request(run, c, LG_REQ_CHECK_LOBBY, 0);
        }
    }
    pump_until(run, 30 * SECOND_US, requests_done);
    log_line(run, "check: %llu groups and %llu lobbies compared: %llu ghosts, %llu missing",
             (unsigned long long)run->st.groups_checked,
             (unsigned long long)run->st.lobbies_checked,
             (unsigned long long)run->st.ghosts, (unsigned long long)run->st.missing);
}

static void close_all(lg_run *run)
{
    run->phase = LG_PHASE_CLOSE;
    run->qlen = 0;
    int64_t now = lg_now_us();
    for (uint32_t i = 0; i < run->count; i++) {
        lg_conn *c = &run->conns[i];
        c->reopen = false;
        if (c->fd < 0) {
            continue;
        }
        lg_model_leaving(run, c, now);
        if (i % 2 == 0 && c->state == LG_READY) {
            lg_conn_close_clean(run, c);
        } else {
            lg_conn_drop(run, c, i % 4 == 3);
        }
        if (i % 256 == 255) {
            pump(run, 0);
        }
    }
    pump_until(run, 10 * SECOND_US, all_idle);
    log_line(run, "closed all");
}

static bool probe_ready(const lg_run *run)
{
    return run->probe.fd < 0 || run->probe.state == LG_READY;
}

/* After everyone left: one fresh connection asks presence_stats of every
 * channel of this shard; each must say 0 clients. */
static void probe(lg_run *run)
{
    pump_until(run, SETTLE_US, never);
    lg_conn *p = &run->probe;
    p->index = run->first;
    lg_conn_start(run, p);
    pump_until(run, 10 * SECOND_US, probe_ready);
    if (p->state != LG_READY) {
        run->st.probe_failed++;
        lg_conn_drop(run, p, false);
        return;
    }
    uint32_t g = run->opt.group_size;
    uint32_t l = run->opt.lobby_size;
    uint32_t ngroups_all = (run->opt.n + g - 1) / g;
    uint32_t first_group = run->first / g;
    uint32_t last_group = (run->first + run->count - 1) / g;
    uint32_t first_lobby = run->first / l;
    uint32_t last_lobby = (run->first + run->count - 1) / l;
    uint64_t total = (uint64_t)(last_group - first_group + 1) + (last_lobby - first_lobby + 1);
    uint64_t sent = 0;
    int64_t end = lg_now_us() + 60 * SECOND_US;
    while ((sent < total || p->nreqs > 0) && p->fd >= 0 && lg_now_us() < end) {
        while (sent < total && p->nreqs < LG_REQ_MAX) {
            uint32_t channel = sent <= last_group - first_group
                                   ? first_group + (uint32_t)sent
                                   : ngroups_all + first_lobby +
                                         (uint32_t)(sent - (last_group - first_group + 1));
            if (!lg_conn_request(run, p, LG_REQ_PROBE, channel)) {
                break;
            }
            sent++;
            run->st.probe_channels++;
        }
        pump(run, 5);
    }
    run->st.probe_failed += (total - sent) + p->nreqs;
    lg_conn_close_clean(run, p);
    pump_until(run, 3 * SECOND_US, all_idle);
    if (p->fd >= 0) {
        lg_conn_drop(run, p, false);
    }
    log_line(run, "probe: %llu channels asked, %llu not empty, %llu unanswered",
             (unsigned long long)run->st.probe_channels,
             (unsigned long long)run->st.probe_nonzero,
             (unsigned long long)run->st.probe_failed);
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* This shard's part: whole lobbies, so that every group and lobby has all
 * its members in one process. */
static void shard_range(const lg_options *o, uint32_t *first, uint32_t *count)
{
    uint64_t lobbies = (o->n + o->lobby_size - 1) / o->lobby_size;
    uint64_t a = lobbies * o->shard / o->shards;
    uint64_t b = lobbies * (o->shard + 1) / o->shards;
    uint64_t lo = a * o->lobby_size;
    uint64_t hi = b * o->lobby_size;
    if (hi > o->n) {
        hi = o->n;
    }
    if (lo > hi) {
        lo = hi;
    }
    *first = (uint32_t)lo;
    *count = (uint32_t)(hi - lo);
}

int lg_driver_run(const lg_options *opt, lg_stats *out, uint32_t *count_out)
{
    lg_run *run = calloc(1, sizeof *run);
    if (run == NULL) {
        return -1;
    }
    run->opt = *opt;
    run->rng = opt->seed ? opt->seed * 2654435761u + opt->shard + 1 : 88172645463325252ull;
    shard_range(opt, &run->first, &run->count);
    *count_out = run->count;
    if (run->count == 0) {
        *out = run->st;
        free(run);
        return 0;
    }
    raise_fd_limit();
    run->conns = calloc(run->count, sizeof *run->conns);
    run->queue = calloc(run->count, sizeof *run->queue);
    run->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (run->conns == NULL || run->queue == NULL || run->epfd < 0) {
        free(run->conns);
        free(run->queue);
        free(run);
        return -1;
    }
    for (uint32_t i = 0; i < run->count; i++) {
        run->conns[i].fd = -1;
        run->conns[i].index = run->first + i;
    }
    run->probe.fd = -1;
    run->probe.probe = true;

    log_line(run, "%u connections (%u..%u)", run->count, run->first,
             run->first + run->count - 1);
    barrier(run, "start");
    run->st.rss_before_kb = lg_sys_rss_kb(opt->server_pids, opt->nserver_pids);
    cpu_start(run, &run->st.total_cpu);
    ramp(run);
    barrier(run, "ramped");
    plateau(run);
    barrier(run, "plateau");
    churn(run);
    barrier(run, "churned");
    check(run);
    barrier(run, "checked");
    close_all(run);
    barrier(run, "closed");
    probe(run);
    barrier(run, "probed");
    pump_until(run, SECOND_US, never);
    run->st.rss_after_kb = lg_sys_rss_kb(opt->server_pids, opt->nserver_pids);
    cpu_stop(run, &run->st.total_cpu);

    *out = run->st;
    for (uint32_t i = 0; i < run->count; i++) {
        lg_buf_free(&run->conns[i].in);
        lg_buf_free(&run->conns[i].out);
        lg_buf_free(&run->conns[i].msg);
        free(run->conns[i].expects);
        free(run->conns[i].early);
    }
    lg_buf_free(&run->spare_in);
    lg_buf_free(&run->probe.in);
    lg_buf_free(&run->probe.out);
    lg_buf_free(&run->probe.msg);
    free(run->probe.expects);
    free(run->probe.early);
    close(run->epfd);
    free(run->conns);
    free(run->queue);
    free(run);
    return 0;
}
