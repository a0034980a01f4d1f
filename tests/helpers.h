/*
 * Shared helpers of the libpresence test suites: a fake clock, an
 * allocator that counts, checks and fails on demand, an event recorder and
 * a textual dump of a registry.
 *
 * SPDX-License-Identifier: MIT
 */

#ifndef PRESENCE_TEST_HELPERS_H
#define PRESENCE_TEST_HELPERS_H

/* cmocka.h needs these before it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <stdbool.h>

#include "presence.h"

#if defined(__GNUC__)
#  define TEST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define TEST_PRINTF(f, a)
#endif

/* ------------------------------------------------------------------------ */
/* Fake clock: the registry reads time only through it. */

typedef struct fake_clock {
    _Atomic int64_t now_ms;
} fake_clock;

void fake_clock_init(fake_clock *clock, int64_t start_ms);
void fake_clock_set(fake_clock *clock, int64_t now_ms);
void fake_clock_advance(fake_clock *clock, int64_t delta_ms);
int64_t fake_clock_get(fake_clock *clock);
/** A presence_clock_fn; user_data is a fake_clock. */
int64_t fake_clock_read(void *user_data);

/* ------------------------------------------------------------------------ */
/* Test allocator.
 *
 * Every block carries a header with the requested size, so that the sizes
 * the library reports to free_fn/realloc_fn can be checked. With
 * use_cmocka the blocks come from cmocka's test_malloc/test_free, which
 * reports leaks per test; otherwise from malloc (thread-safe counters).
 *
 * Failure injection (single-threaded use only): when fail_at >= 0, the
 * allocation request with index fail_at (counted from the last
 * test_alloc_arm()) and every later one fail, until test_alloc_disarm(). */

typedef struct test_alloc {
    bool use_cmocka;
    bool paused;          /* neither count nor fail (dumps) */
    long fail_at;         /* -1: never fail */
    _Atomic long live_blocks;
    _Atomic long long live_bytes;
    _Atomic unsigned long requests;   /* counted while armed/not paused */
    _Atomic unsigned long total_allocs;
    _Atomic unsigned long injected;   /* failures injected */
    _Atomic unsigned long bad_sizes;  /* free/realloc told a wrong size */
    _Atomic unsigned long bad_pointers; /* unknown or freed block */
    _Atomic unsigned long zero_requests;
    _Atomic unsigned long realloc_calls;
    /* Live blocks of exactly watch_size bytes (0: watch nothing), to
     * follow one kind of record whose size is known. Set it while no
     * block of that size is live. */
    _Atomic size_t watch_size;
    _Atomic long watch_live;
} test_alloc;

void test_alloc_init(test_alloc *alloc, bool use_cmocka);
/** Install the hooks (with realloc unless without_realloc). */
void test_alloc_install(test_alloc *alloc, presence_config *config,
                        bool without_realloc);
/** Fail request n (0-based from now) and every later one. */
void test_alloc_arm(test_alloc *alloc, long n);
void test_alloc_disarm(test_alloc *alloc);
/** Assert no live block and no misuse. */
void test_alloc_assert_clean(test_alloc *alloc);

void *test_alloc_malloc(size_t size, void *user_data);
void *test_alloc_realloc(void *ptr, size_t old_size, size_t new_size,
                         void *user_data);
void test_alloc_free(void *ptr, size_t size, void *user_data);

/* ------------------------------------------------------------------------ */
/* Event recorder (single-threaded). */

typedef struct rec_event {
    unsigned kind;
    int reason;
    uint64_t seq;
    int64_t time_ms;
    char *channel;
    char *namespace_name;
    char *client_id;
    char *user_id;
    char *node_id; /* "" for local clients */
    unsigned char *conn_info;
    size_t conn_info_len;
    unsigned char *chan_info;
    size_t chan_info_len;
    presence_channel_stats stats;
    uint64_t epoch;
    bool conn_info_null; /* the event's pointer was NULL */
    bool chan_info_null;
} rec_event;

typedef struct recorder {
    rec_event *events;
    size_t count;
    size_t cap;
    presence_registry *registry; /* expected registry; NULL: any */
    unsigned long wrong_registry;
    unsigned long malformed;      /* events breaking the header's rules */
    int depth;                    /* callbacks currently running */
    int max_depth;
} recorder;

void recorder_init(recorder *rec);
void recorder_clear(recorder *rec);
void recorder_free(recorder *rec);
/** A presence_event_fn; user_data is a recorder. */
void recorder_cb(presence_registry *registry, const presence_event *event,
                 void *user_data);
/** Record an event (what recorder_cb does, minus the depth bookkeeping). */
void recorder_add(recorder *rec, presence_registry *registry,
                  const presence_event *event);
/** Callback depth bookkeeping for callbacks that wrap recorder_add(). */
void recorder_enter(recorder *rec);
void recorder_leave(recorder *rec);
/** Number of events whose kind is in mask. */
size_t recorder_count(const recorder *rec, unsigned kind_mask);
size_t recorder_count_reason(const recorder *rec, unsigned kind_mask,
                             int reason);
/** First event at index >= from matching kind (mask) and, when not NULL,
 *  channel and client; NULL if none. */
const rec_event *recorder_find(const recorder *rec, size_t from,
                               unsigned kind_mask, const char *channel,
                               const char *client_id);
/** Assert that no event broke the static rules and depth never exceeded
 *  one. */
void recorder_assert_sane(const recorder *rec);
/** One line describing an event. Owned by the caller (free()). */
char *event_line(const rec_event *event, bool with_time);
/** All events, one per line; canonical sorts them by (channel, seq, kind).
 *  Owned by the caller (free()). */
char *recorder_text(const recorder *rec, bool canonical, bool with_time);

/* ------------------------------------------------------------------------ */
/* Registry dump: counts, deadline, namespaces, channels, every member
 * (sorted), and every client's channels. Owned by the caller (free()). On
 * a library error the text says so (and then differs from any good dump).
 * namespaces: NULL-terminated list of namespace names to include. */
char *dump_registry(presence_registry *registry,
                    const char *const *namespaces);

/* ------------------------------------------------------------------------ */
/* Fixture: a registry with the test allocator (cmocka), the fake clock
 * (starting at 1000) and a fixed hash seed, and a recorder subscribed to
 * every event. */

typedef struct fixture {
    test_alloc alloc;
    fake_clock clock;
    presence_config config;
    presence_registry *reg;
    recorder rec;
    presence_subscription sub;
} fixture;

/** Fill f->config; change it before fixture_open(). */
void fixture_config(fixture *f);
/** Create the registry (asserting OK) and subscribe the recorder. */
void fixture_open(fixture *f);
/** Free the registry and assert: no leak, no allocator misuse, sane
 *  events. */
void fixture_close(fixture *f);

/* ------------------------------------------------------------------------ */
/* Small wrappers. */

/** Join without infos. */
int join_simple(presence_registry *registry, const char *channel,
                const char *client_id, const char *user_id);
/** Join with string infos (NULL: none). */
int join_info(presence_registry *registry, const char *channel,
              const char *client_id, const char *user_id,
              const char *conn_info, const char *chan_info);
/** Stats of a channel, asserting OK (no requester). */
presence_channel_stats stats_of(presence_registry *registry,
                                const char *channel);
presence_counts counts_of(presence_registry *registry);
/** The channel's seq through a snapshot (asserting OK). */
uint64_t seq_of(presence_registry *registry, const char *channel);
/** Set a namespace with the given fields (asserting OK). */
void ns_set(presence_registry *registry, const char *name, bool presence,
            bool join_leave, int64_t ttl_ms, size_t max_members);
/** Save the registry and load the bytes into a new one (freed at once):
 *  the save's result if it failed, else the load's. Calls no cmocka, so
 *  that a thread other than the test's may call it. */
int save_and_load(presence_registry *registry);
/** Open a client handle with this id, user and application pointer (no
 *  conn_info), asserting that it opened. */
presence_client *open_handle(presence_registry *registry,
                             const char *client_id, const char *user_id,
                             void *app);
/** Read the registry's clock for run_ms, each time between two readings of
 *  CLOCK_MONOTONIC in ms: how many readings fell outside them (0 for a
 *  clock that is CLOCK_MONOTONIC); *distinct counts the values seen.
 *  Calls no cmocka, so that any thread may call it. */
size_t clock_disagreements(presence_registry *registry, int64_t run_ms,
                           size_t *distinct);
/** A malloc'd string of n copies of c. */
char *repeat_char(char c, size_t n);
/** printf into a malloc'd string. */
char *str_printf(const char *fmt, ...) TEST_PRINTF(1, 2);

#define assert_counts(reg, ch, cl, us, mem)                                    \
    do {                                                                       \
        presence_counts c_ = counts_of(reg);                                   \
        assert_int_equal(c_.channels, (ch));                                   \
        assert_int_equal(c_.clients, (cl));                                    \
        assert_int_equal(c_.users, (us));                                      \
        assert_int_equal(c_.memberships, (mem));                               \
    } while (0)

#define assert_stats(reg, channel, nc, nu)                                     \
    do {                                                                       \
        presence_channel_stats s_ = stats_of((reg), (channel));               \
        assert_int_equal(s_.num_clients, (nc));                                \
        assert_int_equal(s_.num_users, (nu));                                  \
    } while (0)

/** Fail the test with both codes' names when got != want. */
void assert_rc_at(int got, int want, const char *expr, const char *file,
                  int line);
#define assert_rc(expr, code)                                                  \
    assert_rc_at((int)(expr), (int)(code), #expr, __FILE__, __LINE__)
#define assert_ok(expr) assert_rc((expr), PRESENCE_OK)
/* A requester naming only its connection (the library fills the user). */
#define REQ(id) (&(presence_requester){(id), NULL})

#endif
