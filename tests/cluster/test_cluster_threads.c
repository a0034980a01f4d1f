/*
 * Two cluster handles in one process, each on its own thread
 * (presence_cluster_start_thread), on a real redis-server that this test
 * starts on a free loopback port. Other threads change registry A and
 * read both handles' status, and save and load B, while the handles run:
 * node B must converge to A's members, with A's node id on them, and
 * every save of B must load. Also built under
 * ThreadSanitizer, which is what this test is for: the outbox filled from
 * any thread, the status read from any thread, a handle freed while its
 * thread runs.
 *
 * SPDX-License-Identifier: MIT
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"

#include "presence_cluster.h"

#define CHANNELS 8
#define CLIENTS 200

static pid_t redis_pid;
static int redis_port;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static int start_redis(void **state)
{
    (void)state;
    redis_port = free_port();
    if (redis_port <= 0) {
        return -1;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    redis_pid = fork();
    if (redis_pid == 0) {
        if (freopen("/dev/null", "w", stdout) == NULL) {
            _exit(127);
        }
        execlp("redis-server", "redis-server", "--port", port, "--bind",
               "127.0.0.1", "--save", "", "--appendonly", "no",
               "--loglevel", "warning", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200 && !port_open(redis_port); i++) {
        sleep_ms(10);
    }
    if (!port_open(redis_port)) {
        fprintf(stderr, "redis-server did not start (is it installed?)\n");
        return -1;
    }
    return 0;
}

static int stop_redis(void **state)
{
    (void)state;
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM);
        waitpid(redis_pid, NULL, 0);
    }
    return 0;
}

static presence_cluster *attach(presence_registry *reg, const char *node)
{
    presence_cluster_config cfg;
    presence_cluster_config_init(&cfg);
    cfg.redis_port = redis_port;
    cfg.node_id = node;
    cfg.lease_ms = 2000;
    presence_cluster *c = NULL;
    assert_int_equal(presence_cluster_new(reg, &cfg, &c), PRESENCE_OK);
    assert_int_equal(presence_cluster_start_thread(c), PRESENCE_OK);
    return c;
}

struct churn {
    presence_registry *reg;
    presence_registry *replica; /* B's: saved and loaded while it syncs */
    presence_cluster *a, *b;
    atomic_bool stop;
    atomic_bool status_failed; /* cmocka asserts only on the main thread */
    atomic_bool save_failed;
    atomic_ulong saves;
    unsigned seed;
};

/* Joins and leaves on A from a thread that is not A's. */
static void *churn_main(void *arg)
{
    struct churn *w = arg;
    char ch[32], cl[32];
    for (int i = 0; i < 4000; i++) {
        int k = (int)(rand_r(&w->seed) % CLIENTS);
        snprintf(ch, sizeof ch, "room%d", k % CHANNELS);
        snprintf(cl, sizeof cl, "client%d", k);
        if (rand_r(&w->seed) % 3 == 0) {
            presence_leave(w->reg, ch, cl);
        } else {
            presence_join(w->reg, ch, cl, "user", "c", 1, NULL, 0);
        }
    }
    return NULL;
}

/* Reads both statuses while everything runs. */
static void *status_main(void *arg)
{
    struct churn *w = arg;
    presence_cluster_status st;
    while (!atomic_load(&w->stop)) {
        if (presence_cluster_status_get(w->a, &st) != PRESENCE_OK ||
            presence_cluster_status_get(w->b, &st) != PRESENCE_OK) {
            atomic_store(&w->status_failed, true);
        }
        (void)presence_cluster_timeout_ms(w->a);
        /* B applies A's changes and snapshots on its own thread: every
         * save of B is one instant, which its load checks. */
        if (save_and_load(w->replica) != PRESENCE_OK) {
            atomic_store(&w->save_failed, true);
        }
        atomic_fetch_add(&w->saves, 1);
        sleep_ms(1);
    }
    return NULL;
}

/* Whether B's view of A's members equals A's own. */
static bool views_equal(presence_registry *a, presence_registry *b)
{
    presence_snapshot *mine = NULL, *theirs = NULL;
    assert_int_equal(presence_node_memberships(a, "", &mine), PRESENCE_OK);
    assert_int_equal(presence_node_memberships(b, "node-a", &theirs),
                     PRESENCE_OK);
    bool equal = mine->count == theirs->count;
    for (size_t i = 0; equal && i < mine->count; i++) {
        bool found = false;
        for (size_t j = 0; !found && j < theirs->count; j++) {
            found = strcmp(mine->members[i].channel,
                           theirs->members[j].channel) == 0 &&
                    strcmp(mine->members[i].client_id,
                           theirs->members[j].client_id) == 0 &&
                    strcmp(theirs->members[j].node_id, "node-a") == 0;
        }
        equal = found;
    }
    presence_snapshot_free(mine);
    presence_snapshot_free(theirs);
    return equal;
}

static void test_threads_converge(void **state)
{
    (void)state;
    presence_config config;
    presence_config_init(&config);
    presence_registry *ra = NULL, *rb = NULL;
    assert_int_equal(presence_registry_new(&config, &ra), PRESENCE_OK);
    assert_int_equal(presence_registry_new(&config, &rb), PRESENCE_OK);
    struct churn w = {.reg = ra, .replica = rb, .seed = 7};
    w.a = attach(ra, "node-a");
    w.b = attach(rb, "node-b");
    pthread_t churners[2], watcher;
    assert_int_equal(pthread_create(&watcher, NULL, status_main, &w), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&churners[i], NULL, churn_main, &w),
                         0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(churners[i], NULL);
    }
    bool equal = false;
    for (int i = 0; i < 1000 && !equal; i++) {
        presence_cluster_status sa, sb;
        presence_cluster_status_get(w.a, &sa);
        presence_cluster_status_get(w.b, &sb);
        equal = sa.synced && sb.synced && sa.pending == 0 &&
                views_equal(ra, rb);
        if (!equal) {
            sleep_ms(10);
        }
    }
    atomic_store(&w.stop, true);
    pthread_join(watcher, NULL);
    assert_false(atomic_load(&w.status_failed));
    assert_false(atomic_load(&w.save_failed));
    assert_true(atomic_load(&w.saves) > 0);
    assert_true(equal);
    /* A leaves while B's thread runs: B drops A's members at once. */
    assert_int_equal(presence_cluster_free(w.a), PRESENCE_OK);
    size_t left = 1;
    for (int i = 0; i < 500 && left > 0; i++) {
        presence_snapshot *theirs = NULL;
        assert_int_equal(presence_node_memberships(rb, "node-a", &theirs),
                         PRESENCE_OK);
        left = theirs->count;
        presence_snapshot_free(theirs);
        if (left > 0) {
            sleep_ms(10);
        }
    }
    assert_int_equal(left, 0);
    assert_int_equal(presence_cluster_free(w.b), PRESENCE_OK);
    assert_int_equal(presence_registry_free(ra), PRESENCE_OK);
    assert_int_equal(presence_registry_free(rb), PRESENCE_OK);
}

/* ---- allocation failures ------------------------------------------------ */

/* A handle's allocator that fails one allocation in `one_in` while
 * `failing`, and checks what is freed: every block comes back, with the
 * size it was asked for. Called from several threads. */
struct checked_alloc {
    pthread_mutex_t lock;
    bool failing;
    unsigned one_in;
    unsigned seed;
    size_t live;        /* blocks not freed */
    size_t failed;      /* allocations refused */
    size_t wrong_sizes; /* frees told another size than the block's */
};

#define HEADER 16 /* keeps the blocks aligned for any type */

static void *checked_malloc(size_t size, void *ud)
{
    struct checked_alloc *a = ud;
    pthread_mutex_lock(&a->lock);
    bool fail = a->failing && rand_r(&a->seed) % a->one_in == 0;
    a->failed += fail;
    a->live += !fail;
    pthread_mutex_unlock(&a->lock);
    unsigned char *p = fail ? NULL : malloc(HEADER + size);
    if (p == NULL) {
        return NULL;
    }
    memcpy(p, &size, sizeof size);
    return p + HEADER;
}

static void checked_free(void *ptr, size_t size, void *ud)
{
    struct checked_alloc *a = ud;
    unsigned char *p = (unsigned char *)ptr - HEADER;
    size_t was;
    memcpy(&was, p, sizeof was);
    pthread_mutex_lock(&a->lock);
    a->live--;
    a->wrong_sizes += was != size;
    pthread_mutex_unlock(&a->lock);
    free(p);
}

static void set_failing(struct checked_alloc *a, bool failing)
{
    pthread_mutex_lock(&a->lock);
    a->failing = failing;
    pthread_mutex_unlock(&a->lock);
}

/* Attach with a failing allocator: presence_cluster_new itself may be
 * refused (and then leaves nothing allocated). */
static presence_cluster *attach_checked(presence_registry *reg,
                                        const char *node,
                                        struct checked_alloc *a)
{
    presence_cluster_config cfg;
    presence_cluster_config_init(&cfg);
    cfg.redis_port = redis_port;
    cfg.node_id = node;
    cfg.lease_ms = 2000;
    cfg.allocator = (presence_allocator){checked_malloc, NULL, checked_free,
                                         a};
    presence_cluster *c = NULL;
    int rc;
    while ((rc = presence_cluster_new(reg, &cfg, &c)) == PRESENCE_ERR_NOMEM) {
        pthread_mutex_lock(&a->lock);
        assert_int_equal(a->live, 0);
        pthread_mutex_unlock(&a->lock);
    }
    assert_int_equal(rc, PRESENCE_OK);
    assert_int_equal(presence_cluster_start_thread(c), PRESENCE_OK);
    return c;
}

/* Both handles' allocations fail now and then while node A's members
 * change: nothing crashes, and once the allocators work again B holds
 * exactly A's members; every block comes back, with its size. */
static void test_alloc_failures_recover(void **state)
{
    (void)state;
    presence_registry *ra = NULL, *rb = NULL;
    assert_int_equal(presence_registry_new(NULL, &ra), PRESENCE_OK);
    assert_int_equal(presence_registry_new(NULL, &rb), PRESENCE_OK);
    struct checked_alloc aa = {.failing = true, .one_in = 8, .seed = 11};
    struct checked_alloc ab = {.failing = true, .one_in = 8, .seed = 12};
    pthread_mutex_init(&aa.lock, NULL);
    pthread_mutex_init(&ab.lock, NULL);
    presence_cluster *a = attach_checked(ra, "node-a", &aa);
    presence_cluster *b = attach_checked(rb, "node-b", &ab);
    unsigned seed = 5;
    char ch[32], cl[32];
    for (int i = 0; i < 3000; i++) {
        int k = (int)(rand_r(&seed) % CLIENTS);
        snprintf(ch, sizeof ch, "room%d", k % CHANNELS);
        snprintf(cl, sizeof cl, "client%d", k);
        if (rand_r(&seed) % 3 == 0) {
            presence_leave(ra, ch, cl);
        } else {
            presence_join(ra, ch, cl, "user", "c", 1, NULL, 0);
        }
        if (i % 100 == 99) {
            sleep_ms(20);
        }
    }
    sleep_ms(500);
    set_failing(&aa, false);
    set_failing(&ab, false);
    bool equal = false;
    for (int i = 0; i < 1500 && !equal; i++) {
        presence_cluster_status sa, sb;
        presence_cluster_status_get(a, &sa);
        presence_cluster_status_get(b, &sb);
        equal = sa.synced && sb.synced && sa.pending == 0 &&
                views_equal(ra, rb);
        if (!equal) {
            sleep_ms(10);
        }
    }
    assert_true(equal);
    assert_int_equal(presence_cluster_free(a), PRESENCE_OK);
    assert_int_equal(presence_cluster_free(b), PRESENCE_OK);
    print_message("allocations refused: node-a %zu, node-b %zu\n", aa.failed,
                  ab.failed);
    assert_true(aa.failed > 0 && ab.failed > 0);
    assert_int_equal(aa.live, 0);
    assert_int_equal(ab.live, 0);
    assert_int_equal(aa.wrong_sizes, 0);
    assert_int_equal(ab.wrong_sizes, 0);
    pthread_mutex_destroy(&aa.lock);
    pthread_mutex_destroy(&ab.lock);
    assert_int_equal(presence_registry_free(ra), PRESENCE_OK);
    assert_int_equal(presence_registry_free(rb), PRESENCE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_converge),
        cmocka_unit_test(test_alloc_failures_recover),
    };
    return cmocka_run_group_tests_name("cluster_threads", tests, start_redis,
                                       stop_redis);
}
