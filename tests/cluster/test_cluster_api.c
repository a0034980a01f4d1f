/*
 * The cluster handle's contract without a Redis server: configuration
 * checks, NULL handling, and a handle whose Redis is unreachable, which
 * must keep trying without blocking and without touching the registry.
 * (The behaviour with Redis is tested by the *.test.js files beside this.)
 *
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "presence_cluster.h"

/* A TCP port nothing listens on: connections are refused at once. */
#define DEAD_PORT 1

static presence_registry *registry_new(void)
{
    presence_config config;
    presence_config_init(&config);
    presence_registry *reg = NULL;
    assert_int_equal(presence_registry_new(&config, &reg), PRESENCE_OK);
    return reg;
}

static int new_with(presence_registry *reg,
                    void (*edit)(presence_cluster_config *),
                    presence_cluster **out)
{
    presence_cluster_config cfg;
    presence_cluster_config_init(&cfg);
    cfg.redis_port = DEAD_PORT;
    edit(&cfg);
    return presence_cluster_new(reg, &cfg, out);
}

static void no_edit(presence_cluster_config *c) { (void)c; }
static void bad_port(presence_cluster_config *c) { c->redis_port = 70000; }
static void no_host(presence_cluster_config *c) { c->redis_host = ""; }
static void short_lease(presence_cluster_config *c)
{
    c->lease_ms = PRESENCE_CLUSTER_LEASE_MIN_MS - 1;
}
static void brace_prefix(presence_cluster_config *c) { c->prefix = "a{b"; }
static void space_node(presence_cluster_config *c) { c->node_id = "a b"; }
static void zero_batch(presence_cluster_config *c) { c->batch_max = 0; }
static void zero_log(presence_cluster_config *c) { c->log_max_len = 0; }
static void negative_delay(presence_cluster_config *c) { c->batch_delay_ms = -1; }
static void long_delay(presence_cluster_config *c) { c->batch_delay_ms = 1001; }
static void longest_delay(presence_cluster_config *c) { c->batch_delay_ms = 1000; }
static void long_node(presence_cluster_config *c)
{
    static char id[PRESENCE_CLUSTER_NODE_ID_MAX + 2];
    memset(id, 'n', PRESENCE_CLUSTER_NODE_ID_MAX + 1);
    id[PRESENCE_CLUSTER_NODE_ID_MAX + 1] = '\0';
    c->node_id = id;
}
static void long_prefix(presence_cluster_config *c)
{
    static char prefix[PRESENCE_CLUSTER_PREFIX_MAX + 2];
    memset(prefix, 'p', PRESENCE_CLUSTER_PREFIX_MAX + 1);
    prefix[PRESENCE_CLUSTER_PREFIX_MAX + 1] = '\0';
    c->prefix = prefix;
}
/* The longest of each. */
static void longest_names(presence_cluster_config *c)
{
    static char id[PRESENCE_CLUSTER_NODE_ID_MAX + 1];
    static char prefix[PRESENCE_CLUSTER_PREFIX_MAX + 1];
    memset(id, 'n', PRESENCE_CLUSTER_NODE_ID_MAX);
    memset(prefix, 'p', PRESENCE_CLUSTER_PREFIX_MAX);
    c->node_id = id;
    c->prefix = prefix;
    c->lease_ms = PRESENCE_CLUSTER_LEASE_MIN_MS;
}
static void named_node(presence_cluster_config *c) { c->node_id = "node-1"; }

static void test_config_defaults(void **state)
{
    (void)state;
    presence_cluster_config cfg;
    presence_cluster_config_init(&cfg);
    assert_string_equal(cfg.redis_host, "127.0.0.1");
    assert_int_equal(cfg.redis_port, 6379);
    assert_string_equal(cfg.prefix, "presence");
    assert_null(cfg.node_id);
    assert_int_equal(cfg.lease_ms, 3000);
    assert_int_equal(cfg.batch_delay_ms, 0);
    assert_int_equal(cfg.struct_size, sizeof cfg);
}

static void test_bad_config_refused(void **state)
{
    (void)state;
    presence_registry *reg = registry_new();
    presence_cluster *c = NULL;
    void (*invalid[])(presence_cluster_config *) = {
        bad_port, no_host, short_lease, brace_prefix, space_node,
        zero_batch, zero_log, long_prefix, negative_delay, long_delay,
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        assert_int_equal(new_with(reg, invalid[i], &c), PRESENCE_ERR_INVALID);
        assert_null(c);
    }
    assert_int_equal(new_with(reg, long_node, &c), PRESENCE_ERR_TOO_LONG);
    assert_null(c);
    presence_cluster_config cfg;
    presence_cluster_config_init(&cfg);
    assert_int_equal(presence_cluster_new(NULL, &cfg, &c),
                     PRESENCE_ERR_INVALID);
    assert_int_equal(presence_cluster_new(reg, NULL, &c),
                     PRESENCE_ERR_INVALID);
    assert_int_equal(presence_cluster_new(reg, &cfg, NULL),
                     PRESENCE_ERR_INVALID);
    assert_int_equal(new_with(reg, longest_names, &c), PRESENCE_OK);
    assert_int_equal(strlen(presence_cluster_node_id(c)),
                     PRESENCE_CLUSTER_NODE_ID_MAX);
    assert_int_equal(presence_cluster_free(c), PRESENCE_OK);
    c = NULL;
    assert_int_equal(new_with(reg, longest_delay, &c), PRESENCE_OK);
    assert_int_equal(presence_cluster_free(c), PRESENCE_OK);
    c = NULL;
    /* A caller built before batch_delay_ms: its struct ends before the
     * field, so whatever lies there is not read (the default holds). */
    presence_cluster_config old;
    presence_cluster_config_init(&old);
    old.struct_size = offsetof(presence_cluster_config, batch_delay_ms);
    old.redis_port = DEAD_PORT;
    old.batch_delay_ms = -5;
    assert_int_equal(presence_cluster_new(reg, &old, &c), PRESENCE_OK);
    assert_int_equal(presence_cluster_free(c), PRESENCE_OK);
    c = NULL;
    /* The registry can still be attached: nothing was left subscribed. */
    assert_int_equal(new_with(reg, no_edit, &c), PRESENCE_OK);
    assert_int_equal(presence_cluster_free(c), PRESENCE_OK);
    assert_int_equal(presence_registry_free(reg), PRESENCE_OK);
}

static void test_null_handle(void **state)
{
    (void)state;
    presence_cluster_status st;
    assert_int_equal(presence_cluster_free(NULL), PRESENCE_OK);
    assert_int_equal(presence_cluster_fd(NULL), -1);
    assert_int_equal(presence_cluster_timeout_ms(NULL), -1);
    assert_null(presence_cluster_node_id(NULL));
    assert_int_equal(presence_cluster_process(NULL), PRESENCE_ERR_INVALID);
    assert_int_equal(presence_cluster_run(NULL, 0), PRESENCE_ERR_INVALID);
    assert_int_equal(presence_cluster_start_thread(NULL),
                     PRESENCE_ERR_INVALID);
    assert_int_equal(presence_cluster_status_get(NULL, &st),
                     PRESENCE_ERR_INVALID);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How many threads of this process have this name (Linux: /proc). */
static int threads_named(const char *name)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char path[300], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f != NULL && fgets(comm, sizeof comm, f) != NULL) {
            comm[strcspn(comm, "\n")] = '\0';
            n += strcmp(comm, name) == 0;
        }
        if (f != NULL) {
            fclose(f);
        }
    }
    closedir(d);
    return n;
}

/* Redis refuses: the handle retries on its deadline, never blocks, and the
 * registry keeps working for its own clients. */
static void test_unreachable_redis(void **state)
{
    (void)state;
    presence_registry *reg = registry_new();
    presence_cluster *c = NULL;
    assert_int_equal(new_with(reg, named_node, &c), PRESENCE_OK);
    assert_string_equal(presence_cluster_node_id(c), "node-1");
    int fd = presence_cluster_fd(c);
    assert_true(fd >= 0);
    assert_int_equal(presence_cluster_timeout_ms(c), 0); /* connect now */
    int64_t start = now_ms();
    for (int i = 0; i < 20; i++) {
        assert_int_equal(presence_cluster_run(c, 20), PRESENCE_OK);
        assert_int_equal(presence_cluster_fd(c), fd);
    }
    assert_true(now_ms() - start < 2000);
    presence_cluster_status st;
    assert_int_equal(presence_cluster_status_get(c, &st), PRESENCE_OK);
    assert_false(st.connected);
    assert_false(st.synced);
    assert_int_equal(st.connects, 0);
    int64_t t = presence_cluster_timeout_ms(c);
    assert_true(t >= 0 && t <= 1000); /* the next attempt is due */
    assert_int_equal(presence_join(reg, "room", "c1", "u1", NULL, 0, NULL, 0),
                     PRESENCE_OK);
    assert_int_equal(presence_cluster_status_get(c, &st), PRESENCE_OK);
    assert_int_equal(st.pending, 0); /* offline: the announce will carry it */
    assert_int_equal(threads_named("presence-redis"), 0);
    assert_int_equal(presence_cluster_start_thread(c), PRESENCE_OK);
    assert_int_equal(presence_cluster_start_thread(c), PRESENCE_ERR_BUSY);
    assert_int_equal(presence_cluster_process(c), PRESENCE_ERR_BUSY);
    /* Named for operators; it names itself as it starts. */
    int64_t named_by = now_ms() + 2000;
    while (threads_named("presence-redis") != 1 && now_ms() < named_by) {
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    assert_int_equal(threads_named("presence-redis"), 1);
    assert_int_equal(presence_cluster_free(c), PRESENCE_OK);
    assert_int_equal(threads_named("presence-redis"), 0);
    presence_channel_stats stats;
    assert_int_equal(presence_stats(reg, "room", presence_trusted(), &stats), PRESENCE_OK);
    assert_int_equal(stats.num_clients, 1);
    assert_int_equal(presence_registry_free(reg), PRESENCE_OK);
}

/* A callback that frees the handle it is called from is refused (BUSY),
 * on the caller's thread and on the handle's own thread alike; after the
 * processing, the free goes through. */
static presence_cluster *freed_from_log;
/* Written on the handle's thread, read on the test's: atomic. */
static atomic_int free_from_log_rc = 1;
static atomic_int free_from_log_calls;

static void log_and_free(presence_cluster_log_level level, const char *message,
                         void *user_data)
{
    (void)level;
    (void)message;
    (void)user_data;
    free_from_log_calls++;
    free_from_log_rc = presence_cluster_free(freed_from_log);
}

static void freeing_log(presence_cluster_config *c) { c->log = log_and_free; }

static void test_free_from_a_callback(void **state)
{
    (void)state;
    presence_registry *reg = registry_new();
    assert_int_equal(new_with(reg, freeing_log, &freed_from_log), PRESENCE_OK);
    for (int i = 0; i < 50 && free_from_log_calls == 0; i++) {
        assert_int_equal(presence_cluster_run(freed_from_log, 20), PRESENCE_OK);
    }
    assert_true(free_from_log_calls > 0); /* the failed connect was logged */
    assert_int_equal(free_from_log_rc, PRESENCE_ERR_BUSY);
    free_from_log_calls = 0;
    assert_int_equal(presence_cluster_start_thread(freed_from_log), PRESENCE_OK);
    for (int i = 0; i < 300 && free_from_log_calls == 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    /* The thread's own callback could not free it; the owner can. */
    assert_true(free_from_log_calls > 0);
    assert_int_equal(presence_cluster_free(freed_from_log), PRESENCE_OK);
    assert_int_equal(free_from_log_rc, PRESENCE_ERR_BUSY);
    assert_int_equal(presence_registry_free(reg), PRESENCE_OK);
}

/* ---- the clock ---------------------------------------------------------- */

static int64_t fake_now;

static int64_t fake_clock(void *user_data)
{
    (void)user_data;
    return fake_now;
}

/* The handle's deadlines are on the registry's clock (here one that
 * starts at 0 and moves only when told), not on a clock of its own. */
static void test_registry_clock(void **state)
{
    (void)state;
    fake_now = 0;
    presence_config config;
    presence_config_init(&config);
    config.clock = fake_clock;
    presence_registry *reg = NULL;
    assert_int_equal(presence_registry_new(&config, &reg), PRESENCE_OK);
    presence_cluster *c = NULL;
    assert_int_equal(new_with(reg, named_node, &c), PRESENCE_OK);
    assert_int_equal(presence_cluster_timeout_ms(c), 0); /* connect now */
    /* The attempts are refused; the next one is some way off on that
     * clock, and stays as far however long the wall clock runs. */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(presence_cluster_run(c, 10), PRESENCE_OK);
    }
    int64_t t = presence_cluster_timeout_ms(c);
    assert_true(t > 20 && t <= 1000);
    struct timespec pause = {0, 100 * 1000000L};
    nanosleep(&pause, NULL);
    assert_int_equal(presence_cluster_timeout_ms(c), t);
    fake_now += 7;
    assert_int_equal(presence_cluster_timeout_ms(c), t - 7);
    /* A clock that goes back: time stands still until it catches up. */
    fake_now -= 5000;
    assert_int_equal(presence_cluster_timeout_ms(c), t - 7);
    fake_now += 5000 + 3;
    assert_int_equal(presence_cluster_timeout_ms(c), t - 10);
    fake_now += t;
    assert_int_equal(presence_cluster_timeout_ms(c), 0);
    assert_int_equal(presence_cluster_free(c), PRESENCE_OK);
    assert_int_equal(presence_registry_free(reg), PRESENCE_OK);
}

/* ---- the allocator ------------------------------------------------------ */

/* The handle's allocator: cmocka's (a block not freed fails the test),
 * each free checked against the size asked for, and a budget: the
 * allocations past it fail (-1: none does). */
struct budget {
    long left;
    size_t live;
    size_t wrong_sizes;
};

#define HEADER 16

static void *budget_malloc(size_t size, void *ud)
{
    struct budget *b = ud;
    if (b->left == 0) {
        return NULL;
    }
    if (b->left > 0) {
        b->left--;
    }
    unsigned char *p = test_malloc(HEADER + size);
    memcpy(p, &size, sizeof size);
    b->live++;
    return p + HEADER;
}

static void budget_free(void *ptr, size_t size, void *ud)
{
    struct budget *b = ud;
    unsigned char *p = (unsigned char *)ptr - HEADER;
    size_t was;
    memcpy(&was, p, sizeof was);
    b->wrong_sizes += was != size;
    b->live--;
    test_free(p);
}

static struct budget *the_budget;

static void budget_allocator(presence_cluster_config *c)
{
    c->allocator = (presence_allocator){budget_malloc, NULL, budget_free,
                                        the_budget};
    c->node_id = "node-1";
    c->redis_password = "secret";
}

static void half_allocator(presence_cluster_config *c)
{
    c->allocator.malloc_fn = budget_malloc;
}

/* Fail the first allocation of presence_cluster_new, then the second...
 * until it succeeds: each failure is PRESENCE_ERR_NOMEM and leaves
 * nothing behind; then a handle whose allocations all fail keeps running
 * (Redis unreachable) and frees everything it had. */
static void test_alloc_failure_new(void **state)
{
    (void)state;
    presence_registry *reg = registry_new();
    struct budget b = {.left = 0};
    the_budget = &b;
    presence_cluster *c = NULL;
    long n = 0;
    int rc;
    for (;; n++) {
        b.left = n;
        rc = new_with(reg, budget_allocator, &c);
        if (rc == PRESENCE_OK) {
            break;
        }
        assert_int_equal(rc, PRESENCE_ERR_NOMEM);
        assert_null(c);
        assert_int_equal(b.live, 0);
    }
    assert_true(n >= 10); /* the handle, its strings and its keys */
    b.left = 0;
    assert_int_equal(presence_join(reg, "room", "c1", "u1", NULL, 0, NULL, 0),
                     PRESENCE_OK);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(presence_cluster_run(c, 5), PRESENCE_OK);
    }
    b.left = -1;
    assert_int_equal(presence_cluster_free(c), PRESENCE_OK);
    assert_int_equal(b.live, 0);
    assert_int_equal(b.wrong_sizes, 0);
    c = NULL;
    assert_int_equal(new_with(reg, half_allocator, &c), PRESENCE_ERR_INVALID);
    assert_null(c);
    assert_int_equal(presence_registry_free(reg), PRESENCE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_bad_config_refused),
        cmocka_unit_test(test_null_handle),
        cmocka_unit_test(test_unreachable_redis),
        cmocka_unit_test(test_free_from_a_callback),
        cmocka_unit_test(test_registry_clock),
        cmocka_unit_test(test_alloc_failure_new),
    };
    return cmocka_run_group_tests_name("cluster_api", tests, NULL, NULL);
}
