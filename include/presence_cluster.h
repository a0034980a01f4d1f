/*
 * libpresence cluster: presence shared by several nodes through Redis.
 *
 * Copyright (c) 2026 the libpresence developers.
 * SPDX-License-Identifier: MIT
 */

/**
 * @file presence_cluster.h
 * @brief Attach a registry to Redis, so that every node answers for all.
 *
 * Built when hiredis is found (meson feature `cluster`), into the library
 * `libpresence-cluster`, which links libpresence and hiredis.
 *
 * A cluster handle attaches one registry to one Redis server. From then
 * on:
 * - every change of the registry's own clients (join, leave, update,
 *   expiry, disconnect) is written to Redis and announced to the other
 *   nodes, in the order the registry made it;
 * - the other nodes' changes are applied to the registry with
 *   presence_remote_join() and presence_remote_leave(), so that queries,
 *   stats and paging answer for the whole cluster from local memory, and
 *   join and leave events fire on every node, with the origin in
 *   presence_event::node_id;
 * - each node holds a lease in Redis. When a node's lease runs out (it
 *   died, or was cut off or paused for longer than the lease), every other
 *   node removes its members, with #PRESENCE_LEAVE_NODE_DOWN, within
 *   lease_ms plus a quarter of it. A node that comes back announces its
 *   members again, and the others take them back.
 * - a node that starts, reconnects, or misses part of another node's log
 *   loads that node's state from Redis (a snapshot read atomically with the
 *   log position it stands for) and then follows the log from there, so no
 *   change is lost; members that had left in the meantime leave with
 *   #PRESENCE_LEAVE_RESYNC.
 *
 * The application's calls never wait for Redis: presence_join() and the
 * rest return at once, and a callback queues the change for the next
 * presence_cluster_process(). The handle starts no thread unless asked:
 * - with a poll loop, watch presence_cluster_fd() for reading (it stays
 *   the same descriptor for the handle's life, across reconnections), wake
 *   up after presence_cluster_timeout_ms() at the latest, and call
 *   presence_cluster_process() (presence_cluster_run() is that loop's one
 *   turn, ready-made);
 * - without a loop, presence_cluster_start_thread() runs it on a thread of
 *   its own.
 *
 * Key layout (docs/CLUSTER.md has the protocol): every key of node N
 * carries the hash tag `{<prefix>:<N>}`, so that each write is one
 * transaction in one slot and a Redis Cluster spreads the nodes over its
 * shards; the node directory has the tag `{<prefix>}`.
 *
 * Time: the handle reads time only through the registry's clock
 * (presence_config::clock, CLOCK_MONOTONIC by default), in milliseconds;
 * every duration in presence_cluster_config and every deadline behind
 * presence_cluster_timeout_ms() is on that clock. Redis expires leases on
 * its own clock, so the registry's clock must advance at the pace of real
 * time for the lease to hold (a clock that stands still stops the
 * renewals). A clock that goes back makes the handle's time stand still
 * until it catches up.
 *
 * Thread safety: every function may be called from any thread, but
 * presence_cluster_process() and presence_cluster_run() by one thread at
 * a time (another gets #PRESENCE_ERR_BUSY), and not from a registry event
 * callback (#PRESENCE_ERR_BUSY too).
 */
#ifndef PRESENCE_CLUSTER_H
#define PRESENCE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presence.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct presence_cluster presence_cluster;

/** @name Limits that presence_cluster_new() enforces
 * (an application that takes these values from its own configuration can
 * check them with the same constants). */
/**@{*/
/** Longest key prefix (presence_cluster_config::prefix), in bytes. */
#define PRESENCE_CLUSTER_PREFIX_MAX 128
/** Longest node id (presence_cluster_config::node_id), in bytes. */
#define PRESENCE_CLUSTER_NODE_ID_MAX 64
/** Shortest lease (presence_cluster_config::lease_ms), in milliseconds. */
#define PRESENCE_CLUSTER_LEASE_MIN_MS 100
/**@}*/

/** Severity of a diagnostic message. */
typedef enum presence_cluster_log_level {
    PRESENCE_CLUSTER_LOG_DEBUG = 0,
    PRESENCE_CLUSTER_LOG_INFO = 1,
    PRESENCE_CLUSTER_LOG_WARNING = 2,
    PRESENCE_CLUSTER_LOG_ERROR = 3,
} presence_cluster_log_level;

/** Receives diagnostics (connection lost, node down, resync...). */
typedef void (*presence_cluster_log_fn)(presence_cluster_log_level level,
                                        const char *message,
                                        void *user_data);

/**
 * Configuration. Fill with presence_cluster_config_init() before setting
 * fields. Strings are copied by presence_cluster_new().
 */
typedef struct presence_cluster_config {
    size_t struct_size; /**< set by presence_cluster_config_init() */
    /** Redis host name or address (default "127.0.0.1"). */
    const char *redis_host;
    /** Redis TCP port, 1 to 65535 (default 6379). */
    int redis_port;
    /** Password for AUTH, or NULL (default) for none. */
    const char *redis_password;
    /** Database number for SELECT, 0 or more (default 0). */
    int redis_db;
    /** Prefix of every key (default "presence"); nodes that share presence
     *  use the same prefix. 1 to #PRESENCE_CLUSTER_PREFIX_MAX bytes of
     *  printable ASCII without spaces or braces. */
    const char *prefix;
    /** This node's id, unique in the cluster; NULL (default) picks a
     *  random one. 1 to #PRESENCE_CLUSTER_NODE_ID_MAX bytes of printable
     *  ASCII without spaces or braces. */
    const char *node_id;
    /** How long a node stays alive in Redis without renewing its lease:
     *  the bound on noticing a dead node (default 3000 ms, at least
     *  #PRESENCE_CLUSTER_LEASE_MIN_MS). The lease is renewed every third
     *  of it. */
    int64_t lease_ms;
    /** How long to wait for Redis to accept a connection, more than 0
     *  (default 1000 ms). */
    int64_t connect_timeout_ms;
    /** Longest wait between reconnection attempts, more than 0; they
     *  start at 50 ms and double (default 1000 ms). */
    int64_t reconnect_max_ms;
    /** Entries kept in each node's change log (approximately, more than
     *  0, default 100000). A node that falls further behind loads a
     *  snapshot. */
    size_t log_max_len;
    /** Local changes written per round trip at most, more than 0 (default
     *  4096). */
    size_t batch_max;
    /** Diagnostics; NULL (default) for none. Called from the thread that
     *  runs presence_cluster_process(). */
    presence_cluster_log_fn log;
    void *log_user_data;
    /** The handle's allocator, with the same shape and rules as the
     *  registry's (presence_config::allocator): all NULL (default) means
     *  malloc/realloc/free; otherwise malloc_fn and free_fn are needed.
     *  Everything the handle allocates goes through it, and a failed
     *  allocation is handled (the change it was for is written again, or
     *  the state it was for loaded again, later), never fatal. Pass the
     *  registry's allocator to account for both in one place. Called from
     *  the thread that runs presence_cluster_process(), from
     *  presence_cluster_new() and presence_cluster_free(), and (for the
     *  queue of local changes) from any thread that changes the registry.
     *  hiredis, which the handle uses for its Redis connections, allocates
     *  its contexts and replies through its own process-wide allocator
     *  (hiredisSetAllocators()), not through this one. */
    presence_allocator allocator;
    /** How long a local change may wait to be written with the changes
     *  that follow it: 0 (default) writes each as soon as it is made; up
     *  to 1000 ms. The other nodes see a change that much later at most,
     *  and the cluster's work goes down with the number of writes, since
     *  each write wakes every node that reads it. Measured with three
     *  presence servers and 300 reconnections a second (docs/CLUSTER.md):
     *  2 ms cut their CPU by a third and the Redis threads' wake-ups from
     *  about 900 to 340 a second, with no change in the join pushes'
     *  delay. presence_cluster_free() writes what waits at once. */
    int64_t batch_delay_ms;
} presence_cluster_config;

/** @internal Use presence_cluster_config_init(). */
PRESENCE_API void presence_cluster_config_init_sized(
    presence_cluster_config *config, size_t size);

/** Fill a configuration with defaults. */
#define presence_cluster_config_init(config)                                   \
    presence_cluster_config_init_sized((config), sizeof *(config))

/**
 * Attach @p registry to Redis. Subscribes to the registry's changes and
 * starts connecting; it does not wait for Redis, which may be down (the
 * handle keeps trying). The registry must outlive the handle, and must not
 * be attached twice.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL argument, a config
 *         value out of the range its field states, an empty prefix or
 *         node id, one with a space, a brace or a byte outside printable
 *         ASCII, a prefix longer than #PRESENCE_CLUSTER_PREFIX_MAX, an
 *         allocator with only some of its functions set);
 *         #PRESENCE_ERR_TOO_LONG (a node id longer than
 *         #PRESENCE_CLUSTER_NODE_ID_MAX); #PRESENCE_ERR_NOMEM (nothing is
 *         left allocated, and the registry can be attached again).
 */
PRESENCE_API int presence_cluster_new(presence_registry *registry,
                                      const presence_cluster_config *config,
                                      presence_cluster **out);

/**
 * Leave the cluster and free the handle: stops its thread if it has one,
 * writes what is pending and removes this node from Redis (waiting at most
 * connect_timeout_ms), so that the other nodes drop its members at once
 * with #PRESENCE_LEAVE_NODE_DOWN. The registry keeps its last view of the
 * other nodes' members. NULL is accepted.
 *
 * Call it once no other thread changes the registry any more (at
 * shutdown, after stopping the threads that serve connections): the
 * handle's event callback may otherwise still be running on such a thread
 * (see presence_unsubscribe()) when the handle is freed.
 * @return #PRESENCE_OK; #PRESENCE_ERR_BUSY when called from a registry
 *         event callback or from the handle's own thread (nothing freed).
 */
PRESENCE_API int presence_cluster_free(presence_cluster *cluster);

/** This node's id (owned by the handle). */
PRESENCE_API const char *presence_cluster_node_id(
    const presence_cluster *cluster);

/**
 * The descriptor to watch for reading: it becomes readable when Redis
 * answered or a local change waits to be written. The same for the
 * handle's whole life; the handle owns it. -1 for a NULL handle.
 */
PRESENCE_API int presence_cluster_fd(const presence_cluster *cluster);

/**
 * Milliseconds until presence_cluster_process() must run even if the
 * descriptor stays quiet (lease renewal, lease checks, reconnection,
 * timeouts): 0 when it is due now. Ask again after each call.
 */
PRESENCE_API int64_t presence_cluster_timeout_ms(presence_cluster *cluster);

/**
 * Do whatever is ready, without blocking: write pending changes, apply
 * the other nodes' changes, renew the lease, look for dead nodes,
 * reconnect. Applying changes fires the registry's event callbacks on
 * this thread.
 * @return #PRESENCE_OK (also while Redis is unreachable: the handle keeps
 *         trying, see presence_cluster_status()); #PRESENCE_ERR_INVALID;
 *         #PRESENCE_ERR_BUSY (another thread is in it, it runs its own
 *         thread, or called from an event callback).
 */
PRESENCE_API int presence_cluster_process(presence_cluster *cluster);

/**
 * One turn of a poll loop: wait until the descriptor is readable, the
 * timeout is due, or @p max_wait_ms passed (-1: no limit), then
 * presence_cluster_process().
 * @return as presence_cluster_process().
 */
PRESENCE_API int presence_cluster_run(presence_cluster *cluster,
                                      int max_wait_ms);

/**
 * Run the handle on a thread of its own until presence_cluster_free().
 * Then presence_cluster_process() and presence_cluster_run() return
 * #PRESENCE_ERR_BUSY, and registry callbacks for remote changes run on
 * that thread. The thread is named "presence-redis" (what top -H, perf
 * and /proc/PID/task/TID/comm show).
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BUSY (already
 *         started); #PRESENCE_ERR_NOMEM (no thread could be created).
 */
PRESENCE_API int presence_cluster_start_thread(presence_cluster *cluster);

/** What the handle is doing; counters only grow. */
typedef struct presence_cluster_status {
    bool connected;       /**< both Redis connections are up */
    bool synced;          /**< connected, own members announced, and every
                               live node's state loaded */
    size_t nodes;         /**< other live nodes */
    size_t pending;       /**< local changes not yet confirmed by Redis */
    uint64_t sent;        /**< local changes confirmed by Redis */
    uint64_t applied;     /**< remote changes applied to the registry */
    uint64_t rejected;    /**< remote changes the registry refused (a
                               conflict, a limit, an unknown namespace) */
    uint64_t snapshots;   /**< node snapshots loaded */
    uint64_t nodes_down;  /**< nodes declared down */
    uint64_t connects;    /**< successful connections to Redis */
} presence_cluster_status;

/** Read the status. Any thread. */
PRESENCE_API int presence_cluster_status_get(presence_cluster *cluster,
                                             presence_cluster_status *out);

#ifdef __cplusplus
}
#endif

#endif /* PRESENCE_CLUSTER_H */
