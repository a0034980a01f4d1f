/*
 * Shared helpers of the libpresence benchmarks: timing, peak memory,
 * argument parsing, the name tables and the workload of
 * ../shared/bench/WORKLOAD.md.
 *
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_BENCH_COMMON_H
#define PRESENCE_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <presence.h>

/* ---- failures ----------------------------------------------------------- */

/* Print what failed and exit(1). */
void bench_fail(const char *what, int rc, const char *file, int line);
/* Print a message and exit(1). */
void bench_die(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2), noreturn))
#endif
    ;

/* Call a library function; on anything but PRESENCE_OK, report and exit. */
#define BENCH_CHECK(call)                                                      \
    do {                                                                       \
        int bench_rc_ = (call);                                                \
        if (bench_rc_ != PRESENCE_OK)                                          \
            bench_fail(#call, bench_rc_, __FILE__, __LINE__);                  \
    } while (0)

/* ---- time and memory ---------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);
/* getrusage(RUSAGE_SELF).ru_maxrss: peak resident set in KiB (Linux). */
long bench_peak_rss_kb(void);
/* Current resident set in KiB (/proc/self/statm), -1 if unknown. */
long bench_current_rss_kb(void);

/* ---- arguments ---------------------------------------------------------- */

/* Parse a non-negative decimal integer; exits with status 2 on garbage. */
uint64_t bench_parse_u64(const char *s);

/* The workload's parameters (WORKLOAD.md). */
typedef struct bench_params {
    uint64_t C; /* client connections */
    uint64_t H; /* channels */
    uint64_t K; /* channels per client */
    uint64_t R; /* rounds of the stats phase */
    uint64_t I; /* bytes of conn_info */
    /* Through handles: one opened per client, one per channel (on its
     * first use), a client's K channels joined in one
     * presence_client_join_channel_many, stats by channel handle, a
     * client's channels refreshed in one touch, closed for the leave
     * (presence-bench --handles). */
    bool handles;
    /* Through handles, the leave closes this many clients a call
     * (presence_client_close_many; presence-bench --close-batch N, 1 to
     * PRESENCE_CLOSE_MANY_MAX, the default): 1 is presence_client_close. */
    uint64_t close_batch;
    /* history_size of the channels' namespace (presence-bench --history
     * N): the cost of the change log on joins and leaves. */
    uint64_t history;
    /* The registry's clock returns a time the bench reads at the start of
     * each phase, as a server on an event loop hands the library its
     * loop's cached time (libuv's uv_now()) instead of the default clock,
     * which reads CLOCK_MONOTONIC on every join and renewal
     * (presence-bench --loop-clock): what that read costs. */
    bool loop_clock;
    /* The query phase reads each channel in place with presence_visit
     * instead of copying it into a presence_query snapshot
     * (presence-bench --query-visit): the zero-copy reader. */
    bool query_visit;
    /* A thread-safe registry (locks, atomic reference counts), still
     * called from one thread (presence-bench --threaded): what being
     * ready for threads costs. The default is single-threaded. */
    bool threaded;
    /* The stats and query phases take the channels, the refresh and leave
     * phases the clients, in a shuffled order (a fixed seed) instead of
     * the order they were made in (presence-bench --shuffle). In that
     * order consecutive calls touch records far apart, as a server's
     * would: made together and taken in turn, they are a sequence a
     * hardware prefetcher may follow, or not, depending on where the
     * code lies (docs/PERFORMANCE.md). The same checksum either way. */
    bool shuffle;
    /* Megabytes of heap whose pages the kernel provides before the
     * registry is made (presence-bench --prefault MB; glibc only): the
     * registry's growth then reuses pages already there instead of
     * faulting in fresh ones, which shows what the kernel's providing
     * of memory costs the join phase. The peak RSS is then that of the
     * prefaulted heap, not the workload's. 0: none (the default). */
    uint64_t prefault_mb;
} bench_params;

/* Touch mb megabytes of heap and give them back to malloc, kept (see
 * bench_params.prefault_mb). Exits with status 2 where that is not
 * possible (not glibc). */
void bench_prefault(uint64_t mb);

/* The defaults: C=200000 H=20000 K=5 R=10 I=32. */
void bench_params_default(bench_params *p);
/* Positional C H K R I, any prefix of them; exits with status 2 when
 * invalid (needs 0 < K <= H). */
void bench_params_parse(bench_params *p, int argc, char **argv);

/* ---- names -------------------------------------------------------------- */

/* A table of count NUL-terminated names "<prefix><i / div>" stored with a
 * fixed stride in one allocation, so that the table itself costs a few
 * bytes per name. */
typedef struct bench_names {
    char *buf;
    size_t stride;
    size_t count;
} bench_names;

void bench_names_make(bench_names *t, size_t count, const char *prefix,
                      uint64_t div);
void bench_names_free(bench_names *t);
static inline const char *bench_name(const bench_names *t, size_t i) {
    return t->buf + i * t->stride;
}

/* The conn_info of client i: the decimal client id "c<i>" padded with 'x'
 * to I bytes (cut to I bytes if longer), I bytes per client. */
typedef struct bench_infos {
    char *buf;
    size_t len;
    size_t count;
} bench_infos;

void bench_infos_make(bench_infos *t, size_t count, size_t len,
                      const char *prefix);
void bench_infos_free(bench_infos *t);
static inline const void *bench_info(const bench_infos *t, size_t i) {
    return t->len ? (const void *)(t->buf + i * t->len) : NULL;
}

/* j(i, 0) = ((u * 2654435761) mod 2^32) mod H with u = i / 2, in unsigned
 * 64-bit arithmetic. j(i, k) = (j(i, 0) + k * (H / K)) mod H, and since
 * k * (H / K) < H one conditional subtraction gives it: one division per
 * client instead of one per membership. */
static inline uint64_t bench_channel0(uint64_t i, uint64_t H) {
    uint64_t u = i / 2;
    return ((u * UINT64_C(2654435761)) & UINT64_C(0xffffffff)) % H;
}
static inline uint64_t bench_channel_next(uint64_t j, uint64_t step,
                                          uint64_t H) {
    j += step;
    return j >= H ? j - H : j;
}

/* ---- the presence-mix workload ------------------------------------------ */

enum { BENCH_JOIN, BENCH_STATS, BENCH_QUERY, BENCH_REFRESH, BENCH_LEAVE,
       BENCH_PHASES };

extern const char *const bench_phase_names[BENCH_PHASES];

typedef struct bench_result {
    uint64_t ops[BENCH_PHASES];
    uint64_t ns[BENCH_PHASES];
    uint64_t clients, users, listed, bytes; /* the checksum line */
    long names_rss_kb; /* peak RSS before the registry exists */
    long peak_rss_kb;  /* peak RSS at the end */
} bench_result;

/* Optional hooks into a workload run: an allocator for the registry, and
 * a callback at the start (begin = true) and end of each timed phase,
 * called outside the timed region. */
typedef struct bench_hooks {
    const presence_allocator *allocator;
    void (*phase)(int phase, bool begin, void *ctx);
    void *ctx;
} bench_hooks;

/* Run the workload on a fresh single-threaded registry. Exits on error or
 * when the registry is not empty after the leave phase. hooks may be
 * NULL. */
void bench_workload_run(const bench_params *p, const bench_hooks *hooks,
                        bench_result *out);

/* The WORKLOAD.md output lines. */
void bench_result_print(FILE *f, const bench_result *r);

/* The seed every benchmark registry uses, for reproducible runs. */
#define BENCH_HASH_SEED UINT64_C(0x5eed0f11b9e5e7ce)

/* A configuration for the benchmarks: the defaults with limits raised so
 * that the workloads fit, hash_seed set. */
void bench_config(presence_config *cfg, bool single_threaded, size_t info_len);

/* Median of n values (sorts them). */
double bench_median(double *v, size_t n);

#endif
