/*
 * libpresence: online presence for C servers.
 *
 * Copyright (c) 2026 the libpresence developers.
 * SPDX-License-Identifier: MIT
 */

/**
 * @file presence.h
 * @brief The whole public API of libpresence.
 *
 * libpresence keeps track of who is connected to which channel, answers
 * presence queries from memory, and tells the application when someone
 * joins or leaves. It owns no sockets, threads or timers: a server calls it
 * from its own network code.
 *
 * @section words Words
 *
 * - A **client** is one connection, named by a client id that is unique in
 *   the registry. It belongs to a **user** (the user id; empty means
 *   anonymous) and carries opaque **conn_info** bytes.
 * - A **channel** is a name such as `chat:42`. The part before the first
 *   namespace separator (`:` unless configured otherwise) names the
 *   channel's **namespace**; a name without a separator, or with nothing
 *   before it, belongs to the default namespace.
 * - A **membership** is one client in one channel, with opaque
 *   **chan_info** bytes, the time it joined and the time it was last
 *   touched.
 *
 * @section names Names and bytes
 *
 * Channel names, client ids and user ids are NUL-terminated strings. They
 * must not contain control characters (bytes below 0x20, and 0x7f); any
 * other byte, UTF-8 included, is accepted. A channel name and a client id
 * must not be empty; a user id may be. conn_info and chan_info are opaque
 * bytes of any content (the presence server example stores JSON there);
 * a NULL pointer with length 0 means "none". Every length is bounded by a
 * configurable limit (::presence_limits). presence_name_check() and
 * presence_channel_split() apply these rules, and the namespace split,
 * without a registry.
 *
 * @section errors Errors
 *
 * Every function that can fail returns #PRESENCE_OK (0) or a negative
 * ::presence_error. #PRESENCE_ERR_INVALID means the caller broke the API
 * contract (a NULL handle, a NULL out-pointer, an unknown flag); every other
 * code reports a condition the program should expect at run time. A call
 * that fails changes nothing: the registry reads exactly as it did before,
 * also when memory runs out. The only exceptions are the batched
 * operations presence_expire() and presence_channel_close(), which say how
 * far they got (see there).
 *
 * Mapping to Centrifugo's error codes, for servers that speak its protocol:
 * | libpresence                          | Centrifugo                 |
 * |--------------------------------------|----------------------------|
 * | #PRESENCE_ERR_BAD_NAME, #PRESENCE_ERR_TOO_LONG | 107 bad request  |
 * | #PRESENCE_ERR_UNKNOWN_NAMESPACE      | 102 unknown channel        |
 * | #PRESENCE_ERR_NOT_AVAILABLE          | 108 not available          |
 * | #PRESENCE_ERR_DENIED                 | 103 permission denied      |
 * | #PRESENCE_ERR_CLIENT_CHANNEL_LIMIT, #PRESENCE_ERR_CHANNEL_MEMBER_LIMIT, #PRESENCE_ERR_CHANNEL_LIMIT | 106 limit exceeded |
 * | #PRESENCE_ERR_SNAPSHOT_NEEDED        | 112 unrecoverable position |
 * | #PRESENCE_ERR_NOMEM and anything else | 100 internal              |
 *
 * @section threads Threads
 *
 * A registry may be used from any number of threads at once, unless it was
 * created with presence_config::single_threaded, in which case the caller
 * must serialise every call (the registry then takes no locks). Channels,
 * clients and users are spread over independent locks (shards) by a hash
 * of their names, so threads working on different channels rarely wait
 * for each other; all changes of one channel are serialised. Snapshots
 * returned by queries belong to the caller and are independent of the
 * registry. Functions that take no registry are safe from any thread. The
 * allocator and clock hooks are called from any thread that calls the
 * library, possibly at the same time.
 *
 * @section events Events and callbacks
 *
 * Every change of a channel's membership (a join, a leave, a chan_info
 * update) increments the channel's sequence number by one and, if the
 * channel's namespace has join_leave enabled, produces its events: a
 * client event, plus a user event when the change is the user's first
 * connection in the channel or its last. All events of one change carry the
 * same sequence number, and the client event always comes first:
 * #PRESENCE_EVENT_JOIN before its #PRESENCE_EVENT_USER_JOIN,
 * #PRESENCE_EVENT_LEAVE before its #PRESENCE_EVENT_USER_LEAVE, with no
 * other event between them.
 *
 * @section versions Versions: (epoch, seq)
 *
 * Every state of a channel is named by two numbers. The epoch names one
 * life of the channel: it is drawn when the channel gets its first member
 * (from an empty channel, which does not exist) and stays until its last
 * member leaves; the next life has another. Epochs are never 0, never
 * repeat within a registry, and are 64 random-looking bits across
 * registries, nodes and restarts (a key from the kernel's random source,
 * not from presence_config::hash_seed), so two lives of a channel that a
 * client sees, wherever they come from, differ with overwhelming
 * probability. Within an epoch the sequence number starts at 1 (the first
 * join) and grows by one per change; it never goes back. An empty channel
 * reads as epoch 0, seq 0. Stats, snapshots, pages, channel lists and
 * events carry both (presence_channel_stats::epoch and ::seq), so a client
 * that remembers "seq 7" also remembers which life it was in.
 *
 * The recipe for a copy of a channel that misses nothing and counts
 * nothing twice, whole or paged, under any churn:
 *
 * 1. Subscribe to the channel's events (#PRESENCE_SCOPE_CHANNEL) and keep
 *    them in arrival order, before reading anything.
 * 2. Read the channel: presence_query(), or presence_query_page() from
 *    cursor 0 to the end. Note (epoch, seq) of the first (or only) read:
 *    (E0, S0). Put every member a page returned into the copy (a client id
 *    is a key: a later page replaces an earlier entry).
 * 3. Replay the kept events, and every later one as it comes: skip those
 *    with epoch E0 and seq at most S0; apply the rest in order, a join or
 *    an update as "put this member", a leave as "remove it if there".
 *
 * The copy then equals the channel after the last event applied. Why: the
 * events after (E0, S0) are every change since the first read, in order,
 * and each is applied last, after whatever a page saw of it; a member a
 * page missed (it joined behind the walk) comes with its join, one a page
 * returned but that left is removed by its leave. A change of epoch in the
 * events means the channel emptied (its leaves come first) and began a new
 * life. For a whole snapshot the skipped events are exactly those it
 * already reflects, so with no pages the copy is exact after every event.
 *
 * Events are collected while the library holds the channel's lock and
 * delivered after every lock is released. The events of one channel are
 * delivered in the order of its changes, also when several threads change
 * it; events of different channels keep the order in which they were
 * queued (one call that changes several channels, such as an expiry, may
 * queue them grouped by lock shard). Exactly one thread delivers at any
 * time, so two callbacks never run at once. The delivering thread is the thread whose
 * call produced the events, unless another thread is delivering already:
 * then that thread delivers them too before its own call returns, and the
 * call that made the change may return before its events are delivered.
 * With a single thread, a call's events are therefore always delivered
 * before that call returns.
 *
 * A callback may call any function of the library, except
 * presence_registry_free(), which it refuses with #PRESENCE_ERR_BUSY.
 * Events caused from inside a callback are queued and delivered after that
 * callback returns, in order, never recursively.
 *
 * @section grace Leave grace
 *
 * A connection that drops and comes back a second later should not make
 * every other member see a leave and a join. A namespace with
 * presence_namespace_options::leave_grace_ms keeps a member whose
 * connection dropped present for that long, **in grace**:
 *
 * - What drops: presence_disconnect() and presence_client_close() (reason
 *   #PRESENCE_LEAVE_DISCONNECT), a TTL run out in presence_expire()
 *   (#PRESENCE_LEAVE_EXPIRED), and, with
 *   presence_namespace_options::grace_on_leave, presence_leave() and
 *   presence_client_leave() (#PRESENCE_LEAVE_EXPLICIT). A drop announces
 *   nothing and changes nothing anyone counts: the member stays in the
 *   channel's stats, snapshots, pages, visits, presence_client_channels()
 *   and the user counts, flagged presence_member::in_grace, with
 *   touched_at_ms the time of the drop; the channel's (epoch, seq) does
 *   not move. Other nodes' members (presence_remote_join()) never grace,
 *   and presence_channel_close(), presence_node_down() and a namespace
 *   turned off remove members in grace at once, as any other.
 * - Coming back in time: a join of the same client id (presence_join()
 *   with the same user id and conn_info, presence_client_join() or
 *   presence_client_join_many() on its handle) takes the member out of
 *   grace with no event and the same (epoch, seq), its TTL renewed and
 *   its join time kept; a different chan_info is an ordinary
 *   #PRESENCE_EVENT_UPDATE (seq + 1). The join's presence_change says
 *   #PRESENCE_CHANGE_RESUMED, so a server that waits for a client's own
 *   join event before pushing it others' events knows not to wait. A touch or an update does not end a
 *   grace (only a join says the client is back).
 * - The reconnect of a server that closes the handle when the socket
 *   drops: presence_client_open() with the id of a client whose every
 *   membership is in grace and that has no open handle (the same user id;
 *   the conn_info may differ) takes that client over: the new handle owns
 *   its memberships, still in grace, and resumes each one it joins again.
 *   Those it does not join again leave when their grace ends, announced
 *   with the new handle's identity and pointer.
 * - The reconnect of a server that gives every connection a new client id
 *   (as Centrifugo does): with presence_namespace_options::grace_same_user,
 *   the join of another client of the same user into a channel where one
 *   of the user's clients is in grace takes that member's place (not for
 *   the anonymous user "", whose connections are strangers): the old
 *   membership goes and the new one comes with no join and no leave (a
 *   #PRESENCE_EVENT_UPDATE if the chan_info differs), keeping the old join
 *   time. The
 *   channel's set then holds another client id, so this one change does
 *   advance seq by one, without a client event: a copy kept from events
 *   by client id (the recipe in @ref versions) sees the gap and must read
 *   the channel again; a copy by user needs nothing. presence_client_join_many()
 *   does not take places (its items join as new members); neither does a
 *   join that finds the other client's lock shard busy at that instant
 *   (it joins as a new member, and the other member leaves when its grace
 *   ends: the events stay exact, only not quiet).
 * - Otherwise the grace ends: the member leaves in presence_expire(), with
 *   the reason of its drop and the drop's time as the events' time_ms;
 *   that leave advances seq as any leave does. Grace ends are deadlines
 *   like TTLs: presence_next_deadline_ms() and presence_expire()'s
 *   next_deadline_ms include them, so the timer that drives TTLs drives
 *   graces too. An explicit leave of a member in grace ends it at once,
 *   with #PRESENCE_LEAVE_EXPLICIT at the current time.
 * - Users: a client with memberships in grace stays known (its id is
 *   taken, presence_registry_counts() counts it, presence_user_status()
 *   counts its connection), so its user stays online until its last grace
 *   ends (#PRESENCE_EVENT_USER_OFFLINE then), or, when a new connection of
 *   the user took over, does not go offline at all.
 * - A closed handle's pointer: presence_client_close() may leave the
 *   client's memberships in grace, but the handle is gone: no event or
 *   member delivered after the close carries its
 *   presence_client_options::app (NULL instead), so the application may
 *   free its object once the close's own events are seen.
 */

#ifndef PRESENCE_H
#define PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "presence_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && !defined(PRESENCE_STATIC)
#  ifdef PRESENCE_BUILDING
#    define PRESENCE_API __declspec(dllexport)
#  else
#    define PRESENCE_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#  define PRESENCE_API __attribute__((visibility("default")))
#else
#  define PRESENCE_API
#endif

/* ------------------------------------------------------------------------ */
/** @name Version */
/**@{*/

/** The library's version as "MAJOR.MINOR.PATCH", for the linked library. */
PRESENCE_API const char *presence_version(void);

/**
 * The linked library's version as one number,
 * MAJOR * 10000 + MINOR * 100 + PATCH (compare with #PRESENCE_VERSION_NUMBER).
 */
PRESENCE_API uint32_t presence_version_number(void);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Errors */
/**@{*/

/**
 * The error list: X(NAME, value, message). Values are fixed forever and
 * never reused.
 */
#define PRESENCE_ERROR_LIST(X)                                                 \
    X(OK, 0, "success")                                                        \
    X(ERR_INVALID, -1, "invalid argument")                                     \
    X(ERR_NOMEM, -2, "out of memory")                                          \
    X(ERR_BAD_NAME, -3, "malformed name")                                      \
    X(ERR_TOO_LONG, -4, "name or info longer than its limit")                  \
    X(ERR_UNKNOWN_NAMESPACE, -5, "unknown namespace")                          \
    X(ERR_NOT_AVAILABLE, -6, "presence not available in this namespace")       \
    X(ERR_NOT_FOUND, -7, "not found")                                          \
    X(ERR_CONFLICT, -8, "client known with another user, info or node")     \
    X(ERR_CLIENT_CHANNEL_LIMIT, -9, "client is in too many channels")          \
    X(ERR_CHANNEL_MEMBER_LIMIT, -10, "channel has too many members")           \
    X(ERR_CHANNEL_LIMIT, -11, "too many channels")                             \
    X(ERR_DENIED, -12, "permission denied")                                    \
    X(ERR_BUSY, -13, "not allowed while events are being delivered")          \
    X(ERR_SNAPSHOT_NEEDED, -14,                                                \
      "changes since that version are not kept: take a snapshot")              \
    X(ERR_CORRUPT, -15, "saved state is malformed or damaged")                \
    X(ERR_UNSUPPORTED, -16, "saved state of an unknown format version")       \
    X(ERR_IO, -17, "the write callback failed")

/** Error codes. Every failing function returns one of the negative values. */
typedef enum presence_error {
#define PRESENCE_ERROR_ENUM_(name, value, message) PRESENCE_##name = (value),
    PRESENCE_ERROR_LIST(PRESENCE_ERROR_ENUM_)
#undef PRESENCE_ERROR_ENUM_
} presence_error;

/**
 * A human-readable message for an error code. Never NULL: an unknown code
 * gives "unknown error".
 */
PRESENCE_API const char *presence_strerror(int error);

/**
 * The symbolic name of an error code without its prefix, for example
 * "ERR_NOMEM" for #PRESENCE_ERR_NOMEM. Never NULL: an unknown code gives
 * "UNKNOWN".
 */
PRESENCE_API const char *presence_error_name(int error);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Configuration */
/**@{*/

/** The registry handle. Opaque. */
typedef struct presence_registry presence_registry;

/**
 * Allocator hooks. All three functions are called with @p user_data.
 * @c free_fn receives the size that was asked for when the block was
 * allocated (or last reallocated); it may ignore it. @c realloc_fn is optional:
 * when NULL the library uses @c malloc_fn, a copy and @c free_fn.
 * The library never asks for 0 bytes.
 */
typedef struct presence_allocator {
    void *(*malloc_fn)(size_t size, void *user_data);
    void *(*realloc_fn)(void *ptr, size_t old_size, size_t new_size,
                        void *user_data);
    void (*free_fn)(void *ptr, size_t size, void *user_data);
    void *user_data;
} presence_allocator;

/**
 * The clock: returns the current time in milliseconds. It must not go
 * backwards; if it does, the library treats time as standing still until
 * the clock catches up. The default reads CLOCK_MONOTONIC, whose origin is
 * unspecified: joined_at_ms values are then only meaningful relative to
 * each other and to presence_now_ms(). Install a CLOCK_REALTIME-based
 * clock to get wall-clock join times. Times are kept in 47 bits: a value
 * beyond +-2^46 ms (about 2,200 years either side of 0, so Unix time in
 * milliseconds until the year 4200) is read as that bound.
 *
 * The clock is called once by every join and renewal (and by a leave whose
 * event is queued or logged). clock_gettime() holds the processor until the
 * call's own cache misses are served, so that the next call's cannot start
 * early: it took about a third of a renewal by name in the workload of
 * docs/PERFORMANCE.md. So the default gives CLOCK_MONOTONIC's milliseconds
 * exactly, at an instant during the call, but reads clock_gettime() only
 * about once a millisecond per thread: on x86-64 with an invariant
 * time-stamp counter, each thread keeps its last reading and how many
 * counter ticks it holds for, and reads the counter (which does not wait)
 * in between. Elsewhere, in the first 20 ms of the process (while the
 * counter's rate is measured), and for good once the counter falls behind
 * the clock, every call reads clock_gettime(). A server on an event loop
 * may still install a clock that returns its loop's cached time (libuv's
 * uv_now()), as its timers do (presence-bench --loop-clock measures it).
 */
typedef int64_t (*presence_clock_fn)(void *user_data);

/**
 * What a presence read asks for, handed to the access check.
 * All strings are borrowed for the duration of the check.
 */
typedef struct presence_access {
    const char *channel;      /**< the channel whose presence is read */
    const char *namespace_name; /**< its namespace; "" for the default */
    const char *client_id;    /**< the requesting client */
    /** The requesting client's user id: as the requester gave it, else
     *  the one the registry knows (when the client is in some channel),
     *  else NULL. "" means anonymous. */
    const char *user_id;
    /** True when the requesting client is a member of @c channel. */
    bool is_member;
} presence_access;

/**
 * Who asks for presence, for the access check: a connection and, when the
 * application knows it, its user. The library knows the user only of
 * clients that are in some channel, so a server should fill @c user_id
 * whenever it can (Centrifugo's allow_presence_for_client applies to
 * connections that are in no channel too).
 */
typedef struct presence_requester {
    const char *client_id; /**< the requesting connection; not NULL */
    const char *user_id;   /**< its user ("" = anonymous), or NULL */
} presence_requester;

/**
 * The requester of a trusted, server-side read, which skips the access
 * check. Reads take it explicitly: a NULL requester is
 * #PRESENCE_ERR_INVALID, so a forgotten argument never skips the check.
 * Always the same pointer; any thread.
 */
PRESENCE_API const presence_requester *presence_trusted(void);

/**
 * An access check: return true to let the requesting client read the
 * presence of the channel. It runs with the channel's lock held, so it
 * must not call the library; it may be called from any thread that makes a
 * query, several at a time. It is consulted only by queries that name a requesting client.
 */
typedef bool (*presence_access_fn)(const presence_access *access,
                                   void *user_data);

/**
 * Limits. A call that would exceed one fails with the error named at each
 * field and changes nothing. 0 means "no limit" for the counts marked so.
 * Whatever the limits, names of 4 GiB or more, a conn_info of 512 MiB or
 * more, and a client whose id, user id, conn_info and node id add up to
 * 4 GiB or more, are refused with #PRESENCE_ERR_TOO_LONG.
 */
typedef struct presence_limits {
    /** Channel name length in bytes (#PRESENCE_ERR_TOO_LONG); default 255,
     *  as Centrifugo's channel.max_length. */
    size_t channel_name_max;
    /** Client id length in bytes (#PRESENCE_ERR_TOO_LONG); default 255. */
    size_t client_id_max;
    /** User id length in bytes (#PRESENCE_ERR_TOO_LONG); default 255. */
    size_t user_id_max;
    /** conn_info size in bytes (#PRESENCE_ERR_TOO_LONG); default 65536. */
    size_t conn_info_max;
    /** chan_info size in bytes (#PRESENCE_ERR_TOO_LONG); default 65536. */
    size_t chan_info_max;
    /** Channels one client may be in (#PRESENCE_ERR_CLIENT_CHANNEL_LIMIT);
     *  default 128, as Centrifugo's client_channel_limit; 0 = no limit. */
    size_t channels_per_client_max;
    /** Members of one channel (#PRESENCE_ERR_CHANNEL_MEMBER_LIMIT), unless
     *  its namespace sets a lower one; default 0 = no limit. */
    size_t members_per_channel_max;
    /** Non-empty channels in the registry (#PRESENCE_ERR_CHANNEL_LIMIT);
     *  default 0 = no limit. Memory stays bounded without it, since every
     *  channel has a member and members are bounded per client. */
    size_t channels_max;
} presence_limits;

/**
 * Options of a namespace. Fill with presence_namespace_options_init()
 * before setting fields, so that fields added later get their defaults.
 */
typedef struct presence_namespace_options {
    size_t struct_size;  /**< set by presence_namespace_options_init() */
    /** Channels of this namespace keep presence (default true). When false,
     *  joins and queries fail with #PRESENCE_ERR_NOT_AVAILABLE. */
    bool presence;
    /** Membership changes produce events (default true). Sequence numbers
     *  advance either way. */
    bool join_leave;
    /** Presence TTL in milliseconds: a membership not touched (joined
     *  again or presence_touch()ed) for this long expires. 0 = never
     *  (default). A change applies at once to existing memberships: their
     *  deadline is always last touch + ttl_ms. */
    int64_t ttl_ms;
    /** Members per channel in this namespace; 0 = the registry's limit
     *  (default). */
    size_t max_members;
    /** Changes each channel keeps for presence_changes_since(): its last
     *  @c history_size joins, leaves and updates. 0 = none (default); at
     *  most #PRESENCE_HISTORY_SIZE_MAX (#PRESENCE_ERR_INVALID beyond).
     *  Memory: about 40 bytes an entry; a channel's log grows with the
     *  channel (to at most its entries plus its members, up to
     *  history_size), so small, quiet channels stay small; it keeps the
     *  client records and chan_info its entries name alive until they
     *  drop out of it. */
    size_t history_size;
    /** Leave grace in milliseconds (see @ref grace): a member whose
     *  connection drops (presence_disconnect(), presence_client_close(),
     *  presence_expire()) stays present this long, marked in grace,
     *  before it leaves. 0 = off (default): leaves happen at once. A
     *  change applies at once to members in grace: their grace ends at
     *  drop time + the new value. */
    int64_t leave_grace_ms;
    /** Explicit leaves (presence_leave(), presence_client_leave()) are
     *  graced too (default false: they leave at once). */
    bool grace_on_leave;
    /** Another connection of the same user may take the place of a
     *  member in grace (default false: only the same client id may). */
    bool grace_same_user;
} presence_namespace_options;

/** The largest presence_namespace_options::history_size. */
#define PRESENCE_HISTORY_SIZE_MAX 1048576u

/**
 * The registry's configuration. Fill with presence_config_init() before
 * setting fields.
 */
typedef struct presence_config {
    size_t struct_size;  /**< set by presence_config_init() */
    /** Allocator; all NULL (default) means malloc/realloc/free. */
    presence_allocator allocator;
    /** Clock; NULL (default) means CLOCK_MONOTONIC in milliseconds. */
    presence_clock_fn clock;
    void *clock_user_data;
    /** Access check for queries that name a requesting client. NULL
     *  (default) lets a client read only the channels it is a member of,
     *  as Centrifugo's allow_presence_for_subscriber. */
    presence_access_fn access_check;
    void *access_user_data;
    presence_limits limits;
    /** The namespace separator, a printable ASCII character other than
     *  space (default ':'); see presence_channel_split(). */
    char namespace_separator;
    /** Options of the default namespace (presence on, join_leave on). */
    presence_namespace_options default_namespace;
    /** Take no locks: the caller promises to serialise every call. Such
     *  a registry also keeps all its channels in one shard and its client
     *  and user records in one pool (a threaded one spreads them over 64,
     *  for its locks): the memberships a client makes together then lie
     *  next to each other, which makes its renewals and its leave faster
     *  (docs/PERFORMANCE.md), and it holds at most 2^26 (67,108,864)
     *  memberships and as many channels (a threaded one 64 times that);
     *  past them a join fails with PRESENCE_ERR_NOMEM. */
    bool single_threaded;
    /** Seed of the hash functions. 0 (default) picks one at random per
     *  registry, which keeps an attacker who chooses ids from degrading
     *  the tables; set it for reproducible runs. */
    uint64_t hash_seed;
} presence_config;

/** @internal Use presence_config_init(). */
PRESENCE_API void presence_config_init_sized(presence_config *config,
                                             size_t struct_size);
/** @internal Use presence_namespace_options_init(). */
PRESENCE_API void
presence_namespace_options_init_sized(presence_namespace_options *options,
                                      size_t struct_size);

/**
 * Fill @p config with the defaults. The size of the caller's struct is
 * recorded, so that a program built against an older header keeps working
 * with a newer library: fields are only ever appended.
 */
#define presence_config_init(config)                                           \
    presence_config_init_sized((config), sizeof(*(config)))

/** Fill @p options with the defaults (see presence_config_init()). */
#define presence_namespace_options_init(options)                               \
    presence_namespace_options_init_sized((options), sizeof(*(options)))

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Registry */
/**@{*/

/**
 * Create a registry.
 *
 * @param config the configuration, or NULL for the defaults. It is copied;
 *               the caller keeps ownership.
 * @param out    receives the new registry, owned by the caller, to be freed
 *               with presence_registry_free(). Untouched on failure.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID if @p out is NULL, the
 *         separator is not printable ASCII, a limit is 0 where 0 is not
 *         allowed, the default namespace's ttl_ms is negative, or only
 *         some of the allocator functions are set; #PRESENCE_ERR_NOMEM.
 */
PRESENCE_API int presence_registry_new(const presence_config *config,
                                       presence_registry **out);

/**
 * Free a registry and everything in it. No events are produced: members
 * vanish silently. Events still queued are dropped. NULL is accepted and
 * does nothing.
 *
 * No other thread may use the registry during or after this call.
 *
 * Open client handles are freed with it.
 *
 * @return #PRESENCE_OK; #PRESENCE_ERR_BUSY (and nothing is freed) when
 *         called while events are being delivered, for example from a
 *         callback, or while a presence_visit() runs, for example from its
 *         visitor.
 */
PRESENCE_API int presence_registry_free(presence_registry *registry);

/** The registry's current time (its clock hook, as is), in milliseconds. */
PRESENCE_API int64_t presence_now_ms(presence_registry *registry);

/**
 * Where presence_registry_save() writes: called with consecutive pieces
 * of the saved state, in order. Return 0 to go on, anything else to stop
 * the save (which then returns #PRESENCE_ERR_IO). It runs with no lock
 * held and may call the library.
 */
typedef int (*presence_write_fn)(const void *data, size_t len,
                                 void *user_data);

/** The version of the format presence_registry_save() writes. */
#define PRESENCE_STATE_FORMAT 1

/**
 * Save the whole registry for a warm restart: its namespaces and their
 * options, every channel with its epoch and seq, every membership with
 * its client (id, user id, conn_info, node), chan_info, join and touch
 * times (so TTL deadlines), and leave grace (the drop's time and reason).
 * Not saved: subscriptions, the configuration (allocator, clock, limits,
 * access check), handles (a client opened as a handle is saved as a
 * client known by name; one in no channel is not saved; a channel kept
 * idle by a channel handle is no channel and is not saved) and
 * application pointers.
 *
 * The format (#PRESENCE_STATE_FORMAT) is binary, versioned and
 * checksummed: an 8-byte magic, a 32-bit version, LEB128 varints and
 * length-prefixed strings, a 64-bit checksum at the end. About 12 bytes
 * per membership plus its chan_info, and each client, user and channel
 * name once (docs/PERFORMANCE-FEATURES.md, "Warm restart").
 *
 * The registry is read as one instant: every channel lock is taken (as
 * presence_namespace_set() takes them) while the state is copied into a
 * buffer, O(state), so changes wait that long; then the locks are
 * released and @p write is called with the buffer in pieces.
 *
 * @param size receives the number of bytes written (may be NULL).
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL registry or write);
 *         #PRESENCE_ERR_NOMEM (nothing was written); #PRESENCE_ERR_IO
 *         (@p write failed: what it got so far is not a whole state).
 * A callback may call it. Saving changes nothing in the registry.
 */
PRESENCE_API int presence_registry_save(presence_registry *registry,
                                        presence_write_fn write,
                                        void *user_data, size_t *size);

/**
 * Make a registry from a state saved by presence_registry_save(), for a
 * warm restart. The new registry takes @p config (allocator, clock,
 * limits, access check, seed, single_threaded) and the saved namespace
 * separator and namespaces (their options; the config's
 * default_namespace is replaced by the saved one): set options again with
 * presence_namespace_set() afterwards if the configuration is the
 * authority. Nothing is announced (a new registry has no subscription).
 *
 * Times are restored as saved, on the new registry's clock: the clock
 * must continue the saving registry's (a CLOCK_REALTIME-based hook, or
 * the default CLOCK_MONOTONIC within one boot), or deadlines move with
 * the difference. A membership whose TTL or grace ran out while the
 * process was down goes at the first presence_expire(). Members in grace
 * are restored in grace; TTL and grace lists are ordered by touch (or
 * drop) time, then client id, then channel name, as a TTL turned on later
 * orders them. After a restart no connection survives: a server that
 * wants its clients to get their places back calls presence_disconnect()
 * for each of its own clients (presence_node_memberships() with "" lists
 * them), which puts them into leave grace where namespaces have one.
 *
 * Every byte is checked before it is trusted: the magic, the version, the
 * checksum, every length and count against what is left, every index,
 * every name against the rules and this config's limits, option values,
 * times, that no client, user, node, namespace, channel or membership is
 * listed twice or unused, and the registry's limits. A state that is
 * malformed, truncated or damaged gives #PRESENCE_ERR_CORRUPT, never a
 * crash or a partly loaded registry.
 *
 * @param config the configuration, or NULL for the defaults (copied).
 * @param data   the saved bytes (only read, not kept).
 * @param out    receives the new registry; untouched on failure.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL out, NULL data with a
 *         length, a config presence_registry_new() refuses);
 *         #PRESENCE_ERR_CORRUPT; #PRESENCE_ERR_UNSUPPORTED (another format
 *         version); #PRESENCE_ERR_BAD_NAME and #PRESENCE_ERR_TOO_LONG (a
 *         name this config's limits refuse); the limit errors of
 *         presence_join() (the state does not fit this config's limits);
 *         #PRESENCE_ERR_NOMEM. On any error nothing is left allocated.
 * Any thread.
 */
PRESENCE_API int presence_registry_load(const presence_config *config,
                                        const void *data, size_t len,
                                        presence_registry **out);

/** Totals of a registry, see presence_registry_counts(). */
typedef struct presence_counts {
    size_t channels;    /**< non-empty channels */
    /** clients known: in at least one channel, or open as a handle */
    size_t clients;
    size_t users;       /**< distinct users of those clients */
    size_t memberships; /**< (client, channel) pairs */
} presence_counts;

/**
 * Registry-wide totals, in O(shards). Exact when no other thread changes
 * the registry meanwhile; otherwise each total adds up parts read at
 * slightly different instants.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID if an argument is NULL.
 */
PRESENCE_API int presence_registry_counts(presence_registry *registry,
                                          presence_counts *out);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Namespaces */
/**@{*/

/**
 * Add a namespace, or change the options of an existing one ("" names the
 * default namespace). Namespace names follow Centrifugo's rule: at least
 * two characters from `A-Z a-z 0-9 - _ .`, and at most
 * #PRESENCE_NAMESPACE_NAME_MAX (see presence_name_check()).
 *
 * Changes apply at once to existing channels: a new ttl_ms moves every
 * deadline (presence_next_deadline_ms() tells the new one); a TTL turned
 * on where there was none applies to every member from its last touch (a
 * namespace without TTL keeps no touch order, so members touched in the
 * same millisecond before then expire in the order of their client ids,
 * then channel names, byte by byte; after it, in the order they were
 * touched); a lower max_members stops new joins but removes no one;
 * turning presence off closes every channel of the namespace, each member
 * leaving with #PRESENCE_LEAVE_CLOSED (events delivered if join_leave was
 * on), in batches as presence_channel_close() does; a new history_size
 * gives every channel of the namespace a log of that size at once, which
 * keeps the newest changes of the old one that fit (a channel that had
 * none starts one that reaches back to its current version), or takes
 * the logs away (0).
 *
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID for a NULL argument, an
 *         options struct not filled by presence_namespace_options_init(),
 *         a negative ttl_ms, or a history_size over
 *         #PRESENCE_HISTORY_SIZE_MAX; #PRESENCE_ERR_BAD_NAME for a name that
 *         breaks the rule; #PRESENCE_ERR_TOO_LONG for a name over
 *         #PRESENCE_NAMESPACE_NAME_MAX bytes; #PRESENCE_ERR_NOMEM (for a new namespace, or when
 *         turning a TTL on or changing history_size, nothing changed;
 *         when turning presence off,
 *         the new options apply but memory ran out while closing
 *         channels: each member left completely or not at all, and
 *         calling again with the same options closes the rest).
 * A callback may call it.
 */
PRESENCE_API int
presence_namespace_set(presence_registry *registry, const char *name,
                       const presence_namespace_options *options);

/**
 * Read the options of a namespace ("" for the default). @p out must have
 * been filled by presence_namespace_options_init() first: its struct_size
 * says how many bytes the caller's struct holds.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID for a NULL argument;
 *         #PRESENCE_ERR_BAD_NAME, #PRESENCE_ERR_TOO_LONG as for
 *         presence_namespace_set(); #PRESENCE_ERR_UNKNOWN_NAMESPACE.
 */
PRESENCE_API int presence_namespace_get(presence_registry *registry,
                                        const char *name,
                                        presence_namespace_options *out);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Name rules
 *
 * The rules a registry applies to names, for a server that checks a name
 * before (or instead of) handing it to a registry: a channel of a
 * namespace without presence never reaches one, yet should be refused as
 * the registry would refuse it. These functions take no registry: pass
 * them the registry's limits and separator.
 */
/**@{*/

/** The longest namespace name, in bytes, whatever the limits. */
#define PRESENCE_NAMESPACE_NAME_MAX 255

/** What a name names, for presence_name_check(). */
typedef enum presence_name_kind {
    PRESENCE_NAME_CHANNEL = 0,   /**< a channel name: not empty */
    PRESENCE_NAME_CLIENT = 1,    /**< a client id or node id: not empty */
    PRESENCE_NAME_USER = 2,      /**< a user id: "" is the anonymous user */
    PRESENCE_NAME_NAMESPACE = 3, /**< a namespace name: "" is the default */
} presence_name_kind;

/**
 * Check a name against the rule the registry applies to its kind (see
 * @ref names): a channel name, client id or user id has no control
 * character (a byte below 0x20, or 0x7f) and at most @p max_len bytes, and
 * only a user id may be empty; a namespace name is "" or two to
 * #PRESENCE_NAMESPACE_NAME_MAX characters from `A-Z a-z 0-9 - _ .`, and
 * at most @p max_len bytes. Given the registry's limit, a name the
 * registry would refuse is refused here with the same code, and one it
 * would accept is accepted.
 *
 * At most @p max_len + 1 bytes of @p name are read, as the registry does,
 * so a long name costs its limit, not its length; a name longer than the
 * limit is #PRESENCE_ERR_TOO_LONG whatever bytes follow the limit.
 *
 * @param kind    what @p name names.
 * @param name    a NUL-terminated string.
 * @param max_len the limit in bytes: the registry's for the kind
 *                (presence_limits::channel_name_max,
 *                presence_limits::client_id_max or
 *                presence_limits::user_id_max), or SIZE_MAX for none but
 *                the library's own (names of 4 GiB or more, and namespace
 *                names over #PRESENCE_NAMESPACE_NAME_MAX, are always too
 *                long).
 * @param len     receives the name's length in bytes on success; may be
 *                NULL. Untouched on failure.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID for a NULL @p name or an
 *         unknown @p kind; #PRESENCE_ERR_BAD_NAME for a byte the rule
 *         forbids, an empty name of a kind that must not be empty, or a
 *         namespace name of one character; #PRESENCE_ERR_TOO_LONG.
 * Any thread; a callback may call it.
 */
PRESENCE_API int presence_name_check(presence_name_kind kind,
                                     const char *name, size_t max_len,
                                     size_t *len);

/**
 * Split a channel name into its namespace and the rest, as a registry
 * does to find the channel's namespace: the namespace is what precedes
 * the first @p separator. A name without one, or with nothing before it,
 * belongs to the default namespace, and @p namespace_len is 0. The name
 * itself is not checked (see presence_name_check()); the namespace part
 * need not be a valid namespace name, in which case no registry knows it
 * (#PRESENCE_ERR_UNKNOWN_NAMESPACE).
 *
 * For example, with ':' "chat:room:1" gives the namespace "chat" (length 4)
 * and the rest "room:1"; "lobby" gives "" and "lobby"; ":x" gives "" and
 * "x".
 *
 * @param channel       a NUL-terminated channel name.
 * @param separator     the registry's presence_config::namespace_separator
 *                      (':' unless configured otherwise).
 * @param namespace_len receives the length of the namespace part, which
 *                      starts at @p channel.
 * @param rest          receives what follows the first separator, or
 *                      @p channel itself when it has none; a pointer into
 *                      @p channel. May be NULL.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID for a NULL @p channel or
 *         @p namespace_len, or a separator a registry refuses (one that
 *         is not printable ASCII, or a space); nothing is written then.
 * Any thread; a callback may call it.
 */
PRESENCE_API int presence_channel_split(const char *channel, char separator,
                                        size_t *namespace_len,
                                        const char **rest);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Membership changes */
/**@{*/

/**
 * Put a client into a channel (an upsert).
 *
 * If the client is not yet in the channel it joins: the channel's clients
 * count (and users count, on the user's first connection) goes up and the
 * events #PRESENCE_EVENT_JOIN (and #PRESENCE_EVENT_USER_JOIN) follow. If it
 * is already in, the join refreshes its TTL and, when @p chan_info differs,
 * replaces it with a #PRESENCE_EVENT_UPDATE; it never produces a second
 * join event.
 *
 * A client's user id and conn_info are fixed by its first join and kept
 * while it is in any channel: a later join must give the same ones.
 *
 * @param channel   channel name.
 * @param client_id client id.
 * @param user_id   user id; "" (or NULL) for an anonymous user.
 * @param conn_info connection info bytes, copied; NULL if @p conn_info_len
 *                  is 0.
 * @param chan_info channel info bytes, copied; NULL if @p chan_info_len
 *                  is 0.
 * @return #PRESENCE_OK;
 *   #PRESENCE_ERR_INVALID (NULL registry, channel or client id, or NULL
 *   info with a non-zero length);
 *   #PRESENCE_ERR_BAD_NAME (empty channel or client id, control
 *   characters);
 *   #PRESENCE_ERR_TOO_LONG;
 *   #PRESENCE_ERR_UNKNOWN_NAMESPACE; #PRESENCE_ERR_NOT_AVAILABLE;
 *   #PRESENCE_ERR_CONFLICT (the client id is known with another user id or
 *   conn_info, or as another node's: see presence_remote_join());
 *   #PRESENCE_ERR_CLIENT_CHANNEL_LIMIT; #PRESENCE_ERR_CHANNEL_MEMBER_LIMIT;
 *   #PRESENCE_ERR_CHANNEL_LIMIT; #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_join(presence_registry *registry,
                               const char *channel, const char *client_id,
                               const char *user_id, const void *conn_info,
                               size_t conn_info_len, const void *chan_info,
                               size_t chan_info_len);

/**
 * Take a client out of a channel: #PRESENCE_EVENT_LEAVE with
 * #PRESENCE_LEAVE_EXPLICIT (and #PRESENCE_EVENT_USER_LEAVE on the user's
 * last connection). An empty channel is freed. With
 * presence_namespace_options::grace_on_leave the member goes into grace
 * instead (see @ref grace); a member in grace leaves at once.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BAD_NAME;
 *         #PRESENCE_ERR_TOO_LONG; #PRESENCE_ERR_UNKNOWN_NAMESPACE;
 *         #PRESENCE_ERR_NOT_FOUND (the client is not in the channel);
 *         #PRESENCE_ERR_CONFLICT (another node's client);
 *         #PRESENCE_ERR_NOMEM (the event could not be queued).
 * A callback may call it.
 */
PRESENCE_API int presence_leave(presence_registry *registry,
                                const char *channel, const char *client_id);

/**
 * A client disconnected: it leaves every channel it is in, with
 * #PRESENCE_LEAVE_DISCONNECT, newest membership first, in O(its
 * channels). A client in no channel is not an error: a server calls this
 * for every connection that closes. In namespaces with a leave grace the
 * memberships go into grace instead (see @ref grace); memberships already
 * in grace keep their drop.
 * @param left receives how many channels it left or dropped into grace
 *             now, 0 for a client in no channel (may be NULL).
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BAD_NAME;
 *         #PRESENCE_ERR_TOO_LONG; #PRESENCE_ERR_CONFLICT (another node's
 *         client); #PRESENCE_ERR_NOMEM (the events could not be queued).
 * A callback may call it.
 */
PRESENCE_API int presence_disconnect(presence_registry *registry,
                                     const char *client_id, size_t *left);

/**
 * Replace a membership's chan_info. Produces #PRESENCE_EVENT_UPDATE when
 * the bytes differ; equal bytes change nothing and produce no event. Does
 * not renew the TTL.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BAD_NAME;
 *         #PRESENCE_ERR_TOO_LONG; #PRESENCE_ERR_UNKNOWN_NAMESPACE;
 *         #PRESENCE_ERR_NOT_FOUND; #PRESENCE_ERR_CONFLICT (another node's
 *         client); #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_update(presence_registry *registry,
                                 const char *channel, const char *client_id,
                                 const void *chan_info, size_t chan_info_len);

/**
 * Renew the TTL of a membership (its deadline becomes now + ttl_ms). No
 * event, no allocation.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BAD_NAME;
 *         #PRESENCE_ERR_TOO_LONG; #PRESENCE_ERR_UNKNOWN_NAMESPACE;
 *         #PRESENCE_ERR_NOT_FOUND; #PRESENCE_ERR_CONFLICT (another node's
 *         client).
 * A callback may call it.
 */
PRESENCE_API int presence_touch(presence_registry *registry,
                                const char *channel, const char *client_id);

/**
 * Renew the TTL of every membership of a client in one call, as a
 * connection's periodic presence refresh does. No event, no allocation.
 * @return #PRESENCE_OK (also for a client opened as a handle that is in no
 *         channel); #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BAD_NAME;
 *         #PRESENCE_ERR_TOO_LONG; #PRESENCE_ERR_NOT_FOUND (no such client);
 *         #PRESENCE_ERR_CONFLICT (another node's client).
 * A callback may call it.
 */
PRESENCE_API int presence_touch_client(presence_registry *registry,
                                       const char *client_id);

/**
 * Every member of a channel leaves, with #PRESENCE_LEAVE_CLOSED, in the
 * order a presence_query() snapshot lists them.
 *
 * A huge channel is emptied in batches, with events delivered between
 * batches, so that memory for queued events stays bounded. Every member
 * present when the call begins leaves; a client that joins while the close
 * runs (from a callback, or another thread) may leave with the others or
 * stay, depending on where it lands in that order. If memory runs
 * out between batches the call returns #PRESENCE_ERR_NOMEM with
 * @p removed telling how many members have left; each of them left
 * completely, with its events.
 *
 * @param removed receives the number of members removed (may be NULL).
 * @return #PRESENCE_OK (also for an empty channel); #PRESENCE_ERR_INVALID;
 *         #PRESENCE_ERR_BAD_NAME; #PRESENCE_ERR_TOO_LONG;
 *         #PRESENCE_ERR_UNKNOWN_NAMESPACE; #PRESENCE_ERR_NOMEM.
 * A callback may call it (its events are then delivered after the
 * callback returns).
 */
PRESENCE_API int presence_channel_close(presence_registry *registry,
                                        const char *channel, size_t *removed);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Connections: client handles
 *
 * A server opens one handle per connection, with the client's identity
 * and an application pointer (its connection object), and then joins,
 * leaves, updates and touches by handle: nothing is restated, nothing is
 * looked up by name but the channel, and every event about the client and
 * every member a reader sees carries the pointer back
 * (presence_event::client_app, presence_member::app). Closing the handle
 * is the disconnect.
 *
 * A handle stays valid until presence_client_close() (or
 * presence_registry_free()), whatever happens to its memberships: when
 * they all expire, or presence_disconnect() or a channel close removes
 * them, the client stays known with no channel, under the same identity.
 * The name-based calls see an open client like any other: presence_join()
 * with its id joins it (the user id and conn_info must match, as ever),
 * presence_disconnect() takes it out of every channel and leaves the
 * handle open. Handles are for this registry's own clients: the cluster's
 * remote clients come and go by name (presence_remote_join()).
 *
 * Threads: a handle may be used from any thread, several at once, as the
 * name-based calls may; closing it while another thread uses it is a use
 * after free, as with any handle.
 *
 * The application object's lifetime: the events of a close (and of any
 * change) are delivered before the call returns unless another thread is
 * delivering at that moment (see @ref events); then that thread delivers
 * them, with the pointer, a little later. With one thread, or events
 * handled without dereferencing the pointer, free the object after the
 * close returns; otherwise keep it alive (a reference count, say) until
 * its last event has been seen, the leave of its last channel.
 */
/**@{*/

/** A client of this registry, opened once per connection. */
typedef struct presence_client presence_client;

/** What presence_client_open() needs. */
typedef struct presence_client_options {
    size_t struct_size;    /**< set by presence_client_options_init() */
    const char *client_id; /**< the client id (the name rules) */
    const char *user_id;   /**< "" (or NULL) for an anonymous user */
    const void *conn_info; /**< copied; NULL if conn_info_len is 0 */
    size_t conn_info_len;
    /** The application's pointer for this client, handed back in events
     *  and members; the library never dereferences it. */
    void *app;
} presence_client_options;

/** @internal Use presence_client_options_init(). */
PRESENCE_API void
presence_client_options_init_sized(presence_client_options *options,
                                   size_t struct_size);

/** Zero @p options and set its struct_size. */
#define presence_client_options_init(options)                                 \
    presence_client_options_init_sized((options), sizeof(*(options)))

/** Number of clients and distinct users in a channel, and its version. */
typedef struct presence_channel_stats {
    size_t num_clients;
    size_t num_users;
    uint64_t epoch; /**< the channel's life (see @ref versions); 0: empty */
    uint64_t seq;   /**< its sequence number in that life; 0: empty */
} presence_channel_stats;

/** What a change by handle did. */
typedef enum presence_change_kind {
    PRESENCE_CHANGE_NONE = 0,    /**< nothing (a join with the same chan_info:
                                      only its TTL was renewed) */
    PRESENCE_CHANGE_JOINED = 1,  /**< a new member */
    PRESENCE_CHANGE_UPDATED = 2, /**< its chan_info was replaced */
    PRESENCE_CHANGE_LEFT = 3,    /**< it left */
    /** It came back within its leave grace (see @ref grace): its member
     *  in grace resumed, or it took the place of its user's member in
     *  grace. No join was announced (an update was, if the chan_info
     *  differs); stats give the version after it. */
    PRESENCE_CHANGE_RESUMED = 4,
} presence_change_kind;

/** The result of a change by handle. */
typedef struct presence_change {
    presence_change_kind kind;
    /** The channel right after the call: its counts, epoch and seq. For a
     *  leave that emptied it, the epoch and seq of that leave, counts 0;
     *  for #PRESENCE_CHANGE_NONE, the channel as it is. */
    presence_channel_stats stats;
} presence_change;

/**
 * Open a handle: the client is known from now on, in no channel yet.
 * @param out receives the handle.
 * A client with this id whose connection dropped into leave grace (no
 * handle open, every membership in grace, the same user id) is taken
 * over: the new handle owns its memberships, still in grace, and its joins
 * resume them (see @ref grace).
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL registry, options,
 *   client id or out, NULL conn_info with a length, a struct_size too
 *   small); #PRESENCE_ERR_BAD_NAME; #PRESENCE_ERR_TOO_LONG;
 *   #PRESENCE_ERR_CONFLICT (a client with this id is known: in a channel,
 *   or open, and not one in grace of the same user); #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_client_open(presence_registry *registry,
                                      const presence_client_options *options,
                                      presence_client **out);

/**
 * Close a handle: the client leaves every channel with
 * #PRESENCE_LEAVE_DISCONNECT, as presence_disconnect(), and is forgotten;
 * the handle is invalid once this returns #PRESENCE_OK. On an error
 * nothing changed and the handle stays open. Memberships in namespaces
 * with a leave grace go into grace instead: the client stays known by its
 * id, without the handle's pointer, until they end or a new handle with
 * its id takes them over (see @ref grace).
 * @param left receives how many channels it left (may be NULL).
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_NOMEM (the
 *         events could not be queued).
 * A callback may call it.
 */
PRESENCE_API int presence_client_close(presence_registry *registry,
                                       presence_client *client, size_t *left);

/** The most handles one presence_client_close_many() call takes. */
#define PRESENCE_CLOSE_MANY_MAX 64u

/**
 * Close many handles, as presence_client_close() on each in order, all or
 * nothing: every handle is closed, or on an error nothing changed and
 * every handle stays open. Where closes one by one wait for each client's
 * memory in turn (its record, its memberships, their channels, their
 * sets), this starts loading the next clients' while one leaves: for the
 * connections a loop found closed in one turn, a node's shutdown, a
 * storm. The events of all of them are queued in handle order and
 * delivered after the last close, so no callback runs between two of
 * them. While it runs the clients' lock shards are held together (up to
 * 64 of them, and a channel shard at a time with them): a join by name of
 * one of the clients waits for it, and a tool that tracks held locks
 * (ThreadSanitizer's deadlock detector keeps 64) should be given batches
 * that fall in fewer shards.
 * @param clients the handles: open, none twice.
 * @param count   how many, at most #PRESENCE_CLOSE_MANY_MAX (0 does
 *                nothing).
 * @param left    receives how many channels they left in all (may be
 *                NULL).
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL registry, NULL clients
 *         with a count, a NULL handle, a handle twice, a count over
 *         #PRESENCE_CLOSE_MANY_MAX); #PRESENCE_ERR_NOMEM (the events, or
 *         room for memberships going into grace, could not be had).
 * A callback may call it.
 */
PRESENCE_API int presence_client_close_many(presence_registry *registry,
                                            presence_client *const *clients,
                                            size_t count, size_t *left);

/**
 * Join a channel by handle, as presence_join() with the handle's identity:
 * a new membership, or, when the client is in already, its chan_info
 * replaced (if it differs) and its TTL renewed.
 * @param result what happened (may be NULL).
 * @return as presence_join(), but for #PRESENCE_ERR_CONFLICT, which a
 *         handle cannot meet.
 * A callback may call it.
 */
PRESENCE_API int presence_client_join(presence_registry *registry,
                                      presence_client *client,
                                      const char *channel,
                                      const void *chan_info,
                                      size_t chan_info_len,
                                      presence_change *result);

/** One channel of presence_client_join_many(). */
typedef struct presence_join_item {
    const char *channel;
    const void *chan_info; /**< copied; NULL if chan_info_len is 0 */
    size_t chan_info_len;
} presence_join_item;

/**
 * Join many channels at once, all or nothing: either every item is done,
 * each as presence_client_join() would, or nothing changes (no event, no
 * membership, no new channel). While it runs the channels' lock shards are
 * held together, so nobody sees a part of it; the events of the items
 * follow in item order. That is up to every channel shard and the
 * client's (65 locks), as presence_namespace_set() takes them all: a tool
 * that tracks held locks (ThreadSanitizer's deadlock detector keeps 64)
 * should be given fewer items than that.
 * @param items   the channels; no channel twice.
 * @param count   how many (0 does nothing).
 * @param results one per item (may be NULL).
 * @param failed  on an error, the index of the item that caused it, or
 *                @p count when none did (memory for events); may be NULL.
 * @return as presence_client_join(), plus #PRESENCE_ERR_INVALID for a NULL
 *         items with a count, or a channel named twice.
 * A callback may call it.
 */
PRESENCE_API int presence_client_join_many(presence_registry *registry,
                                           presence_client *client,
                                           const presence_join_item *items,
                                           size_t count,
                                           presence_change *results,
                                           size_t *failed);

/**
 * Leave a channel by handle, as presence_leave().
 * @param result what happened (may be NULL). A leave into grace (see
 *               presence_namespace_options::grace_on_leave) reports
 *               #PRESENCE_CHANGE_LEFT with the channel as it still reads
 *               (the member counted, seq unchanged).
 * @return as presence_leave(); #PRESENCE_ERR_NOT_FOUND when the client is
 *         not in the channel.
 * A callback may call it.
 */
PRESENCE_API int presence_client_leave(presence_registry *registry,
                                       presence_client *client,
                                       const char *channel,
                                       presence_change *result);

/**
 * Replace the chan_info of a membership by handle, as presence_update().
 * @param result #PRESENCE_CHANGE_UPDATED, or #PRESENCE_CHANGE_NONE for the
 *               same bytes (may be NULL).
 * @return as presence_update().
 * A callback may call it.
 */
PRESENCE_API int presence_client_update(presence_registry *registry,
                                        presence_client *client,
                                        const char *channel,
                                        const void *chan_info,
                                        size_t chan_info_len,
                                        presence_change *result);

/**
 * Renew the TTL of a membership by handle (presence_touch()), or of every
 * membership of the client when @p channel is NULL (presence_touch_client(),
 * which is not an error for a client in no channel).
 * @return as presence_touch().
 * A callback may call it.
 */
PRESENCE_API int presence_client_touch(presence_registry *registry,
                                       presence_client *client,
                                       const char *channel);

/** The handle's client id. NULL for a NULL handle. Any thread. */
PRESENCE_API const char *presence_client_id(const presence_client *client);

/** The handle's application pointer. NULL for a NULL handle. Any thread. */
PRESENCE_API void *presence_client_app(const presence_client *client);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Connections: channel handles
 *
 * A server that joins, leaves and reads the same channels over and over
 * opens a handle per channel once (when a channel gets its first
 * subscriber, say): the name is checked, hashed and looked up then, and
 * never again; a join, leave or stats by handle goes straight to the
 * channel (about a third of a join by name is spent on its name). Each
 * call by channel handle is its by-name twin, with the same events, leave
 * grace, change log, coalesced diffs, TTL, limits and user counts; only
 * the name's errors (#PRESENCE_ERR_BAD_NAME, #PRESENCE_ERR_TOO_LONG,
 * #PRESENCE_ERR_UNKNOWN_NAMESPACE) are met at presence_channel_open()
 * instead.
 *
 * An open handle pins its channel: when the last member leaves, the
 * channel's record is kept for the handle, **idle**. An idle channel reads
 * exactly as a channel without members does, by handle and by name: stats
 * {0, 0} with epoch 0 and seq 0 (see @ref versions), an empty snapshot, no
 * entry in presence_channels(), no change log; it does not count in
 * presence_registry_counts() nor against presence_limits::channels_max,
 * and presence_registry_save() does not save it. Its next join, by
 * handle, by name or presence_remote_join(), begins a new life exactly as
 * for a fresh channel: a new epoch, seq 1, a log of its namespace's
 * history_size, counted against channels_max. An idle channel costs its
 * record (its name and about 100 bytes) until its last handle is
 * released.
 *
 * One channel may have many handles (each presence_channel_open() pins it
 * once more, and each wants its presence_channel_release()): they name
 * the same channel. Releasing a handle never changes the channel's
 * members: a channel with members lives on by name, as any other.
 *
 * Namespaces: a handle belongs to its channel's namespace, whose options
 * apply as they are at each call. Turning presence off
 * (presence_namespace_set()) closes the channels of the namespace, pinned
 * ones too, which stay open and idle: a join or stats by handle then
 * fails with #PRESENCE_ERR_NOT_AVAILABLE, as by name, until presence is
 * on again; a new ttl_ms or history_size applies to a pinned channel's
 * members as to any (an idle one has no log: its next life gets one).
 *
 * Handles are pointers into this registry: valid until their
 * presence_channel_release() or presence_registry_free(), not saved, not
 * carried over by presence_registry_load() (open them again on the new
 * registry). Threads: as client handles, any thread, several at once;
 * releasing a handle while another thread uses it is a use after free.
 * Every function below may be called from a callback.
 */
/**@{*/

/** A channel of this registry, opened once by name. */
typedef struct presence_channel presence_channel;

/**
 * Open a handle on a channel: its name checked and looked up, the channel
 * pinned (made idle if it has no member yet).
 * @param channel channel name.
 * @param out     receives the handle.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL registry, channel or
 *   out); #PRESENCE_ERR_BAD_NAME; #PRESENCE_ERR_TOO_LONG;
 *   #PRESENCE_ERR_UNKNOWN_NAMESPACE; #PRESENCE_ERR_NOT_AVAILABLE (its
 *   namespace keeps no presence), as presence_join() would for the name;
 *   #PRESENCE_ERR_NOMEM (also when 2^32 - 1 handles pin the channel).
 *   On an error nothing changed.
 */
PRESENCE_API int presence_channel_open(presence_registry *registry,
                                       const char *channel,
                                       presence_channel **out);

/**
 * Release a handle: an idle channel pinned by no other handle is
 * forgotten; one with members is left as it is. The handle is invalid
 * afterwards. (Not "close": presence_channel_close() empties a channel.)
 * @return #PRESENCE_OK (also for a NULL handle, which does nothing);
 *         #PRESENCE_ERR_INVALID for a NULL registry with a handle.
 */
PRESENCE_API int presence_channel_release(presence_registry *registry,
                                          presence_channel *channel);

/** The handle's channel name. NULL for a NULL handle. Any thread. */
PRESENCE_API const char *presence_channel_name(const presence_channel *channel);

/**
 * presence_client_join() by channel handle.
 * @param result what happened (may be NULL).
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (a NULL registry, client or
 *   channel, NULL info with a length); #PRESENCE_ERR_TOO_LONG (chan_info);
 *   #PRESENCE_ERR_NOT_AVAILABLE; #PRESENCE_ERR_CLIENT_CHANNEL_LIMIT;
 *   #PRESENCE_ERR_CHANNEL_MEMBER_LIMIT; #PRESENCE_ERR_CHANNEL_LIMIT (the
 *   join of an idle channel begins a channel); #PRESENCE_ERR_NOMEM.
 */
PRESENCE_API int presence_client_join_channel(presence_registry *registry,
                                              presence_client *client,
                                              presence_channel *channel,
                                              const void *chan_info,
                                              size_t chan_info_len,
                                              presence_change *result);

/** One channel of presence_client_join_channel_many(). */
typedef struct presence_channel_join_item {
    presence_channel *channel;
    const void *chan_info; /**< copied; NULL if chan_info_len is 0 */
    size_t chan_info_len;
} presence_channel_join_item;

/**
 * presence_client_join_many() by channel handles: all or nothing, the
 * same locks, the same order of events.
 * @param items the channels; no channel twice (two handles on one
 *              channel are the same channel).
 * @return as presence_client_join_channel(), plus #PRESENCE_ERR_INVALID
 *         for a NULL items with a count, a NULL handle in an item or a
 *         channel named twice; @p failed as for presence_client_join_many().
 */
PRESENCE_API int presence_client_join_channel_many(
    presence_registry *registry, presence_client *client,
    const presence_channel_join_item *items, size_t count,
    presence_change *results, size_t *failed);

/**
 * presence_client_leave() by channel handle (a leave into grace reported
 * the same way).
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_NOT_FOUND
 *         (the client is not in the channel); #PRESENCE_ERR_NOMEM (the
 *         event could not be queued).
 */
PRESENCE_API int presence_client_leave_channel(presence_registry *registry,
                                               presence_client *client,
                                               presence_channel *channel,
                                               presence_change *result);

/**
 * Replace the chan_info of the client's membership of a channel by
 * handle, as presence_client_update().
 * @return as presence_client_update(), and #PRESENCE_ERR_INVALID for a
 *         NULL channel handle; an idle channel has no member:
 *         #PRESENCE_ERR_NOT_FOUND.
 * A callback may call it.
 */
PRESENCE_API int presence_client_update_channel(presence_registry *registry,
                                                presence_client *client,
                                                presence_channel *channel,
                                                const void *chan_info,
                                                size_t chan_info_len,
                                                presence_change *result);

/**
 * Renew the TTL of the client's membership of a channel by handle, as
 * presence_client_touch() with that channel's name.
 * @return as presence_client_touch(), and #PRESENCE_ERR_INVALID for a
 *         NULL channel handle; #PRESENCE_ERR_NOT_FOUND when the client is
 *         not a member (an idle channel has none).
 * A callback may call it.
 */
PRESENCE_API int presence_client_touch_channel(presence_registry *registry,
                                               presence_client *client,
                                               presence_channel *channel);

/**
 * presence_stats() by channel handle: O(1), no allocation, the same
 * access check for @p requester.
 * @return #PRESENCE_OK ({0, 0}, epoch 0, seq 0 for an idle channel);
 *         #PRESENCE_ERR_INVALID (NULL registry, channel, requester or
 *         out, or a requester as presence_query() refuses it);
 *         #PRESENCE_ERR_BAD_NAME, #PRESENCE_ERR_TOO_LONG (the
 *         requester's ids); #PRESENCE_ERR_NOT_AVAILABLE;
 *         #PRESENCE_ERR_DENIED.
 */
PRESENCE_API int presence_channel_stats_get(presence_registry *registry,
                                            presence_channel *channel,
                                            const presence_requester *requester,
                                            presence_channel_stats *out);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Presence TTL */
/**@{*/

/** presence_next_deadline_ms() when no membership has a TTL. */
#define PRESENCE_NO_DEADLINE INT64_MAX

/**
 * The earliest time (on the registry's clock) at which some membership
 * expires or some leave grace ends (see @ref grace), or
 * #PRESENCE_NO_DEADLINE. The library runs no timer: arm one in
 * the application's loop for this time and call presence_expire() when it
 * fires. The loop needs no more than this: presence_expire() returns the
 * next deadline itself, and a join or touch in a namespace with TTL T
 * makes a deadline of now + T, never earlier (so after one, the timer need
 * only be brought forward to now + T if it is later); namespace changes
 * are the one other thing that moves it. One atomic load when no namespace has a
 * TTL; otherwise O(lock shards x namespaces), taking each shard's lock in
 * turn, so it is the earliest deadline as of the moment each shard was
 * read.
 * @return the deadline; #PRESENCE_NO_DEADLINE for a NULL registry.
 * A callback may call it.
 */
PRESENCE_API int64_t presence_next_deadline_ms(presence_registry *registry);

/**
 * Remove every membership whose deadline is at or before @p now_ms, each
 * leaving with #PRESENCE_LEAVE_EXPIRED (or, in a namespace with a leave
 * grace, going into grace: see @ref grace), and end every grace due by
 * @p now_ms (each member leaving with its drop's reason and time). One call removes at most as many
 * memberships as the registry held when it began, so a callback that
 * rejoins expired clients cannot keep it running (with @p now_ms ahead of
 * the clock, such rejoined memberships are due at once). Work is done in
 * batches, events
 * delivered between them (see presence_channel_close() for what that
 * means under memory pressure: each membership expires completely or not
 * at all).
 * @param now_ms  the current time, normally presence_now_ms().
 * @param expired receives how many memberships left (expired, or their
 *                grace ended); those that went into grace are not counted
 *                (may be NULL).
 * @param next_deadline_ms receives the next deadline after this call, as
 *                presence_next_deadline_ms() would return it (may be
 *                NULL): re-arm the timer with it, no second call needed.
 *                Read shard by shard as the call goes (a membership
 *                another thread or a callback adds meanwhile may be due
 *                earlier: joins and touches that can do that are the
 *                caller's own, so it knows). Set on errors too.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_expire(presence_registry *registry, int64_t now_ms,
                                 size_t *expired, int64_t *next_deadline_ms);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Queries */
/**@{*/

/** One membership in a snapshot. Every pointer points into the snapshot. */
typedef struct presence_member {
    const char *channel;
    const char *client_id;
    const char *user_id; /**< "" for an anonymous user */
    const void *conn_info; /**< NULL when conn_info_len is 0 */
    size_t conn_info_len;
    const void *chan_info; /**< NULL when chan_info_len is 0 */
    size_t chan_info_len;
    int64_t joined_at_ms;  /**< when it joined, on the registry's clock */
    int64_t touched_at_ms; /**< when it joined or was last touched */
    /** The client's node: "" for this registry's own clients (see
     *  presence_remote_join()). */
    const char *node_id;
    /** The application pointer of a client opened as a handle
     *  (presence_client_options::app), else NULL. The library never
     *  touches what it points to: in a snapshot it is a copy of the
     *  pointer, valid as long as the application keeps it so. NULL once
     *  the handle is closed (a member in grace outlives its handle). */
    void *app;
    /** The member is in leave grace (see @ref grace): its connection
     *  dropped at touched_at_ms and it leaves at the grace's end unless
     *  it comes back. Members in grace count in stats and queries. */
    bool in_grace;
} presence_member;

/**
 * An owned, immutable copy of memberships, made in one allocation and freed
 * with one call to presence_snapshot_free(). Independent of the registry:
 * it may outlive it and be read from any thread.
 */
typedef struct presence_snapshot {
    size_t count;              /**< entries in @c members */
    presence_member *members;  /**< the entries */
    /** The channel's sequence number when the snapshot was taken (0 for an
     *  empty channel, and for lists that span channels). */
    uint64_t seq;
    /** The channel's stats when the snapshot was taken. */
    presence_channel_stats stats;
    /** For paged queries: the cursor of the next page, 0 when the walk is
     *  complete. 0 for queries that are not paged. */
    uint64_t next_cursor;
    /** The channel's epoch when the snapshot was taken (see @ref
     *  versions; 0 for an empty channel, and for lists that span
     *  channels). */
    uint64_t epoch;
} presence_snapshot;

/** Free a snapshot. NULL is accepted. Any thread. */
PRESENCE_API void presence_snapshot_free(presence_snapshot *snapshot);

/**
 * The presence of a channel: every member, in one snapshot.
 *
 * @param requester the connection that asks, checked by the access check
 *                  (presence_config::access_check); presence_trusted() for
 *                  a server-side read (NULL is #PRESENCE_ERR_INVALID). Its
 *                  strings follow the name rules:
 *                  #PRESENCE_ERR_INVALID for a NULL client_id,
 *                  #PRESENCE_ERR_BAD_NAME / #PRESENCE_ERR_TOO_LONG as for
 *                  ids.
 * @param out       receives the snapshot, owned by the caller.
 * @return #PRESENCE_OK (an empty snapshot for a channel without members);
 *         #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BAD_NAME;
 *         #PRESENCE_ERR_TOO_LONG; #PRESENCE_ERR_UNKNOWN_NAMESPACE;
 *         #PRESENCE_ERR_NOT_AVAILABLE; #PRESENCE_ERR_DENIED;
 *         #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_query(presence_registry *registry,
                                const char *channel,
                                const presence_requester *requester,
                                presence_snapshot **out);

/**
 * One page of the presence of a channel, for channels too large to copy at
 * once. Start with @p cursor 0 and pass each page's
 * presence_snapshot::next_cursor to get the next one, until it is 0.
 *
 * What a cursor guarantees: the cursor is a position in the channel's
 * order, not a handle, so it costs the registry nothing and never
 * expires (within this registry: a registry loaded from a saved state
 * orders its members afresh). A member that is in the channel for the
 * whole walk is returned exactly once. A member that joins or leaves
 * during the walk is returned at most once. A page holds at most
 * @p limit entries. Each page costs O(limit), wherever it is in the walk.
 *
 * The order: by user, in an order of users that looks random and differs
 * between registries, so the connections of a user with up to 8 in the
 * channel come together (a crowd's further ones, such as many anonymous
 * viewers under one user id, are spread by their client id's hash); the
 * same in presence_query() and presence_visit(). A new connection of a
 * user whose connections the walk is passing may land just ahead of it.
 *
 * @param limit the number of members per page, at least 1.
 * @return as presence_query(), plus #PRESENCE_ERR_INVALID for a limit of 0.
 * A callback may call it.
 */
PRESENCE_API int presence_query_page(presence_registry *registry,
                                     const char *channel,
                                     const presence_requester *requester,
                                     uint64_t cursor, size_t limit,
                                     presence_snapshot **out);

/**
 * Number of clients and distinct users of a channel, in O(1), without
 * allocating.
 * @param requester as for presence_query().
 * @return #PRESENCE_OK ({0, 0} for a channel without members);
 *         #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BAD_NAME;
 *         #PRESENCE_ERR_TOO_LONG; #PRESENCE_ERR_UNKNOWN_NAMESPACE;
 *         #PRESENCE_ERR_NOT_AVAILABLE; #PRESENCE_ERR_DENIED.
 * A callback may call it.
 */
PRESENCE_API int presence_stats(presence_registry *registry,
                                const char *channel,
                                const presence_requester *requester,
                                presence_channel_stats *out);

/** What presence_visit() saw. */
typedef struct presence_visit_info {
    /** The channel when the visit began: counts, epoch and seq (the (E0,
     *  S0) of the recipe in @ref versions). */
    presence_channel_stats stats;
    /** The cursor after the last member visited, for the next call; 0
     *  when the walk reached the end (always, with a limit of 0). */
    uint64_t next_cursor;
    size_t visited; /**< how many members the visitor was called for */
} presence_visit_info;

/**
 * A visitor of presence_visit(). @p member and everything it points to are
 * the registry's own bytes, valid until the visitor returns: copy what
 * must outlive the call.
 */
typedef void (*presence_visit_fn)(const presence_member *member,
                                  void *user_data);

/**
 * The zero-copy reader: call @p fn for the members of a channel in place,
 * all of them (@p limit 0) or a page of @p limit from @p cursor, in the
 * order and with the guarantees of presence_query_page() (a member present
 * for the whole walk is visited exactly once; one that joins or leaves
 * meanwhile at most once). Nothing is copied: the visitor reads the
 * registry's records, which are held by reference, not by a lock, while
 * it runs.
 *
 * What a visitor may call: anything, on this registry or another, the
 * channel it visits included (a join or leave it makes shows in later
 * reads, not in the member it is looking at), from this thread or
 * another; no call can deadlock on it or see a half-made record. The one
 * exception is presence_registry_free() on this registry, which returns
 * #PRESENCE_ERR_BUSY while any visit runs.
 *
 * Members are taken in chunks (64), each under the channel's lock for the
 * time of a few reference counts; a long walk lets writers in between.
 *
 * @param requester as for presence_query().
 * @param limit     members at most; 0 for all.
 * @param info      what was seen (may be NULL); also filled on an error
 *                  after some members were visited.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL registry, channel or
 *         fn); the errors of presence_query(), also when met at a later
 *         chunk (a namespace turned off meanwhile).
 * A callback may call it.
 */
PRESENCE_API int presence_visit(presence_registry *registry,
                                const char *channel,
                                const presence_requester *requester,
                                uint64_t cursor, size_t limit,
                                presence_visit_fn fn, void *user_data,
                                presence_visit_info *info);

/**
 * The memberships of one client, one entry per channel, as a snapshot.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BAD_NAME;
 *         #PRESENCE_ERR_TOO_LONG; #PRESENCE_ERR_NOT_FOUND (the client is in
 *         no channel); #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_client_channels(presence_registry *registry,
                                          const char *client_id,
                                          presence_snapshot **out);

/**
 * The connections of a user in a channel, as a snapshot (empty when the
 * user is not there). In O(the user's connections in all channels).
 * @param user_id "" for anonymous connections.
 * @return as presence_query() without the access check.
 * A callback may call it.
 */
PRESENCE_API int presence_user_connections(presence_registry *registry,
                                           const char *channel,
                                           const char *user_id,
                                           presence_snapshot **out);

/**
 * Whether a user is present in a channel: @p connections receives its
 * number of connections there, 0 when absent. O(1), no allocation.
 * @return as presence_stats() without the access check.
 * A callback may call it.
 */
PRESENCE_API int presence_user_present(presence_registry *registry,
                                       const char *channel,
                                       const char *user_id,
                                       size_t *connections);

/**
 * Whether a user is connected anywhere in the registry: how many of its
 * clients are known (in some channel, or open as a handle; this node's and
 * other nodes'), 0 when none. In O(1), without allocating.
 * @param user_id "" for anonymous connections.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL registry, user_id or
 *         connections); #PRESENCE_ERR_BAD_NAME; #PRESENCE_ERR_TOO_LONG.
 * A callback may call it.
 */
PRESENCE_API int presence_user_status(presence_registry *registry,
                                      const char *user_id,
                                      size_t *connections);

/**
 * A user's connections registry-wide, one entry per client, as a
 * snapshot: client id, user id, conn_info, node id and application
 * pointer; channel is "", chan_info empty and times 0 (they belong to
 * memberships: presence_client_channels() has them). Empty for a user
 * with no connection. In O(the user's connections).
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BAD_NAME;
 *         #PRESENCE_ERR_TOO_LONG; #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_user_clients(presence_registry *registry,
                                       const char *user_id,
                                       presence_snapshot **out);

/** One channel in a presence_channel_list. Pointers into the list. */
typedef struct presence_channel_entry {
    const char *channel;
    presence_channel_stats stats;
    uint64_t seq; /**< the channel's sequence number */
} presence_channel_entry;

/** An owned list of channels, one allocation, see presence_channels(). */
typedef struct presence_channel_list {
    size_t count;
    presence_channel_entry *channels;
} presence_channel_list;

/** Free a channel list. NULL is accepted. Any thread. */
PRESENCE_API void presence_channel_list_free(presence_channel_list *list);

/**
 * The non-empty channels, with their stats, in no particular order (as
 * Centrifugo's `channels` API). One instant's view: it holds every
 * channel lock while it copies, so keep it for admin use, not hot paths.
 * @param namespace_name only the channels of this namespace ("" for the
 *        default one); NULL for all.
 * @param out receives the list, owned by the caller.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_channels(presence_registry *registry,
                                   const char *namespace_name,
                                   presence_channel_list **out);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Events */
/**@{*/

/**
 * The event kinds: X(NAME, value, name). Each value is one bit, so that
 * kinds make a mask; values are fixed forever and never reused, and name
 * is what presence_event_kind_name() returns.
 *
 * - JOIN: a client joined a channel.
 * - LEAVE: a client left a channel.
 * - UPDATE: a membership's chan_info changed.
 * - USER_JOIN: a user's first connection in the channel joined.
 * - USER_LEAVE: a user's last connection in the channel left.
 * - USER_ONLINE: a user's first connection anywhere in the registry
 *   appeared (see #PRESENCE_EVENTS_USERS).
 * - USER_OFFLINE: a user's last connection anywhere went.
 */
#define PRESENCE_EVENT_KIND_LIST(X)                                            \
    X(JOIN, 1 << 0, "join")                                                    \
    X(LEAVE, 1 << 1, "leave")                                                  \
    X(UPDATE, 1 << 2, "update")                                                \
    X(USER_JOIN, 1 << 3, "user_join")                                          \
    X(USER_LEAVE, 1 << 4, "user_leave")                                        \
    X(USER_ONLINE, 1 << 5, "user_online")                                      \
    X(USER_OFFLINE, 1 << 6, "user_offline")

/** Event kinds (PRESENCE_EVENT_JOIN and so on), usable as a mask. */
typedef enum presence_event_kind {
#define PRESENCE_EVENT_KIND_ENUM_(name, value, text)                           \
    PRESENCE_EVENT_##name = (value),
    PRESENCE_EVENT_KIND_LIST(PRESENCE_EVENT_KIND_ENUM_)
#undef PRESENCE_EVENT_KIND_ENUM_
} presence_event_kind;

/**
 * The name of an event kind: "join", "leave", "update", "user_join",
 * "user_leave", "user_online" or "user_offline", as listed in
 * #PRESENCE_EVENT_KIND_LIST; for logs and wire
 * formats, and stable across versions. Never NULL: anything but a single
 * kind (0, a mask of several, an unknown bit) gives "unknown".
 * Any thread; a callback may call it.
 */
PRESENCE_API const char *presence_event_kind_name(presence_event_kind kind);

/** Every channel event kind (the registry-wide user kinds are asked for
 *  with #PRESENCE_EVENTS_USERS). */
#define PRESENCE_EVENTS_ALL 0x1fu

/**
 * The registry-wide user kinds: #PRESENCE_EVENT_USER_ONLINE when a user's
 * first connection anywhere appears (a client of the user becomes known:
 * its first join, or a handle opened; this node's or another node's), and
 * #PRESENCE_EVENT_USER_OFFLINE when its last one goes. They belong to no
 * channel: channel and namespace_name are "", seq, epoch and stats 0,
 * chan_info empty, and the client fields are the client that came or
 * went. Only #PRESENCE_SCOPE_ALL subscriptions may ask for them. A user's
 * online event comes before the first join it causes, its offline event
 * after the last leave, and the two alternate even when several threads
 * connect and disconnect the user's clients at once.
 */
#define PRESENCE_EVENTS_USERS 0x60u

/**
 * A flag for presence_subscribe()'s kinds: also receive the changes of
 * namespaces whose join_leave option is off (those events are otherwise
 * never produced). For replication and auditing, which must see every
 * change; other subscriptions still receive nothing from such namespaces.
 */
#define PRESENCE_EVENTS_EVERY_NAMESPACE 0x100u

/**
 * The leave reasons: X(NAME, value, name). Values are fixed forever and
 * never reused; name is what presence_leave_reason_name() returns.
 *
 * - NONE: not a leave event.
 * - EXPLICIT: presence_leave().
 * - DISCONNECT: presence_disconnect().
 * - EXPIRED: presence_expire(): the TTL ran out.
 * - CLOSED: presence_channel_close(), or the namespace's presence turned
 *   off.
 * - NODE_DOWN: presence_node_down(): the node the client was connected
 *   to is gone.
 * - RESYNC: the client's node no longer listed it when this node
 *   resynchronised (its own leave was not seen here).
 */
#define PRESENCE_LEAVE_REASON_LIST(X)                                          \
    X(NONE, 0, "none")                                                         \
    X(EXPLICIT, 1, "explicit")                                                 \
    X(DISCONNECT, 2, "disconnect")                                             \
    X(EXPIRED, 3, "expired")                                                   \
    X(CLOSED, 4, "closed")                                                     \
    X(NODE_DOWN, 5, "node_down")                                               \
    X(RESYNC, 6, "resync")

/** Why a client left (PRESENCE_LEAVE_EXPLICIT and so on). */
typedef enum presence_leave_reason {
#define PRESENCE_LEAVE_REASON_ENUM_(name, value, text)                         \
    PRESENCE_LEAVE_##name = (value),
    PRESENCE_LEAVE_REASON_LIST(PRESENCE_LEAVE_REASON_ENUM_)
#undef PRESENCE_LEAVE_REASON_ENUM_
} presence_leave_reason;

/**
 * The name of a leave reason: "none", "explicit", "disconnect",
 * "expired", "closed", "node_down" or "resync", as listed in
 * #PRESENCE_LEAVE_REASON_LIST; for logs and wire formats, and stable
 * across versions. Never NULL: an unknown value gives "unknown".
 * Any thread; a callback may call it.
 */
PRESENCE_API const char *
presence_leave_reason_name(presence_leave_reason reason);

/**
 * An event. It and everything it points to are borrowed: valid only until
 * the callback returns. Copy what you keep.
 *
 * For user events the client fields name the connection whose join or
 * leave made the user's first join or last leave. For #PRESENCE_EVENT_LEAVE
 * and #PRESENCE_EVENT_USER_LEAVE chan_info is the membership's last one;
 * for #PRESENCE_EVENT_UPDATE it is the new one.
 */
typedef struct presence_event {
    presence_event_kind kind;
    presence_leave_reason reason; /**< for leave kinds, else NONE */
    uint64_t seq;                 /**< the channel's sequence number */
    int64_t time_ms;              /**< when the change happened */
    const char *channel;
    const char *namespace_name;   /**< "" for the default namespace */
    const char *client_id;
    const char *user_id;          /**< "" for an anonymous user */
    const void *conn_info;
    size_t conn_info_len;
    const void *chan_info;
    size_t chan_info_len;
    /** The channel's stats right after this change; their epoch and seq
     *  are the change's, also for the leave that empties the channel. */
    presence_channel_stats stats;
    /** The node the client is connected to: "" for this registry's own
     *  clients, otherwise the node_id given to presence_remote_join(). */
    const char *node_id;
    /** The channel's epoch: with @c seq, the version this change made (see
     *  @ref versions). */
    uint64_t epoch;
    /** The application pointer of the client if it was opened as a handle
     *  (presence_client_options::app), else NULL: a server finds its
     *  connection object here without a lookup. */
    void *client_app;
} presence_event;

/**
 * An event callback. @p registry is the registry that produced the event.
 */
typedef void (*presence_event_fn)(presence_registry *registry,
                                  const presence_event *event,
                                  void *user_data);

/** Which events a subscription receives. */
typedef enum presence_scope {
    PRESENCE_SCOPE_ALL = 0,       /**< every channel */
    PRESENCE_SCOPE_NAMESPACE = 1, /**< the channels of one namespace */
    PRESENCE_SCOPE_CHANNEL = 2,   /**< one channel (it need not exist yet) */
} presence_scope;

/** A subscription's handle. Never 0, never reused within a registry. */
typedef uint64_t presence_subscription;

/**
 * Subscribe a callback to events.
 *
 * For one event, callbacks run in the order they were subscribed. A new
 * subscription receives the events of changes made after it returns.
 *
 * @param scope  what to watch.
 * @param name   the namespace ("" for the default) or channel name; NULL
 *               for #PRESENCE_SCOPE_ALL.
 * @param fn     the callback.
 * @param user_data handed to @p fn; the library never touches it.
 * @param out    receives the handle for presence_unsubscribe().
 * @param kinds  a mask of ::presence_event_kind values, optionally with
 *               #PRESENCE_EVENTS_EVERY_NAMESPACE.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL fn or out, unknown
 *         scope, no kind or unknown bits, a name with
 *         #PRESENCE_SCOPE_ALL or none with the others, user kinds
 *         (#PRESENCE_EVENTS_USERS) with a scope other than
 *         #PRESENCE_SCOPE_ALL);
 *         #PRESENCE_ERR_BAD_NAME; #PRESENCE_ERR_TOO_LONG;
 *         #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_subscribe(presence_registry *registry,
                                    presence_scope scope, const char *name,
                                    unsigned kinds, presence_event_fn fn,
                                    void *user_data,
                                    presence_subscription *out);

/**
 * Remove a subscription. Called on the thread that delivers events (from
 * a callback, or with a single thread), the callback is never called
 * again once this returns, also for events already queued; a callback may
 * remove itself or any other subscription. Called from another thread
 * while events are being delivered, a call of the callback that had
 * already begun (or was about to begin) completes; to free user_data
 * safely in that case, do it from a callback or once that thread's call
 * into the library has returned. The subscription's memory is released
 * at once, or, when its callback is running on another thread, as soon
 * as that call returns: removed subscriptions never pile up, and cost the
 * events that follow nothing, however busy delivery stays.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID; #PRESENCE_ERR_NOT_FOUND.
 */
PRESENCE_API int presence_unsubscribe(presence_registry *registry,
                                      presence_subscription subscription);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Change history */
/**@{*/

/**
 * One change of a channel, from its log (see presence_changes_since()).
 * Every pointer points into the presence_history that holds it.
 */
typedef struct presence_history_entry {
    /** #PRESENCE_EVENT_JOIN, #PRESENCE_EVENT_LEAVE or
     *  #PRESENCE_EVENT_UPDATE (user kinds are not logged: a user's first
     *  join and last leave follow from the client changes). */
    presence_event_kind kind;
    presence_leave_reason reason; /**< for a leave, else NONE */
    uint64_t seq;                 /**< the version this change made */
    int64_t time_ms;              /**< when it happened */
    /** The member as the change left it: for a join or an update its new
     *  chan_info, for a leave its last one. joined_at_ms and
     *  touched_at_ms are the change's time for a join, 0 otherwise (a
     *  log keeps no touch times: touches are not changes). */
    presence_member member;
} presence_history_entry;

/**
 * An owned list of changes, one allocation, freed with
 * presence_history_free(); independent of the registry, like a snapshot.
 */
typedef struct presence_history {
    size_t count;                    /**< entries in @c entries */
    presence_history_entry *entries; /**< oldest first; NULL when empty */
    /** The channel when the list was read: its epoch and seq are the
     *  version the list brings a copy to (the last entry's, or the one
     *  asked for when nothing changed since). */
    presence_channel_stats stats;
} presence_history;

/** Free a presence_history. NULL is accepted. Any thread. */
PRESENCE_API void presence_history_free(presence_history *history);

/**
 * The changes of a channel after version (@p epoch, @p seq), in order:
 * Centrifugo's recovery by offset and epoch, Phoenix's presence_diff, for
 * presence. A client that holds a copy of the channel at that version
 * (a snapshot's presence_snapshot::epoch and ::seq, or an event's) brings
 * it up to date by applying the entries in order, a join or an update as
 * "put this member", a leave as "remove it", and its copy then equals a
 * snapshot taken at presence_history::stats (touch times aside).
 *
 * Only channels whose namespace has a history_size keep a log, of that
 * many changes; every change is logged, whatever made it (a join or leave
 * by name or by handle, presence_client_join_many(), an update, a
 * disconnect, a close, an expiry, a node's loss, a namespace closed). When
 * the changes cannot all be told the answer is #PRESENCE_ERR_SNAPSHOT_NEEDED,
 * never a list with a hole: the channel's life is another (@p epoch is not
 * its epoch: it emptied since, or the version is from elsewhere), the log
 * no longer reaches back to @p seq (more than history_size changes since,
 * or history_size was 0 or set later than @p seq), @p seq is beyond the
 * channel's, or the namespace keeps no log. Epoch 0, seq 0 (an empty
 * channel's version) is answered for any life that the log holds from its
 * start: every change of the channel's life, since it began empty.
 *
 * A log belongs to one life of a channel: it begins when the channel gets
 * its first member (or when history_size is set) and goes with its last.
 * Logging needs no allocation, so it cannot fail: a channel's log is made
 * with the channel and grown by the joins and updates that need it (which
 * then fail with #PRESENCE_ERR_NOMEM and change nothing when it cannot
 * be), or made by presence_namespace_set(); a leave always fits.
 *
 * @param requester as for presence_query(): the same access check.
 * @param out       receives the list, owned by the caller; untouched on
 *                  failure.
 * @return #PRESENCE_OK (an empty list when nothing changed since);
 *         #PRESENCE_ERR_SNAPSHOT_NEEDED as above; #PRESENCE_ERR_INVALID
 *         (NULL registry, channel, requester or @p out);
 *         #PRESENCE_ERR_BAD_NAME; #PRESENCE_ERR_TOO_LONG;
 *         #PRESENCE_ERR_UNKNOWN_NAMESPACE; #PRESENCE_ERR_NOT_AVAILABLE;
 *         #PRESENCE_ERR_DENIED; #PRESENCE_ERR_NOMEM.
 * Any thread; the list is copied under the channel's lock, so it is one
 * instant's view. A callback may call it.
 */
PRESENCE_API int presence_changes_since(presence_registry *registry,
                                        const char *channel,
                                        const presence_requester *requester,
                                        uint64_t epoch, uint64_t seq,
                                        presence_history **out);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Coalesced diffs
 *
 * An answer to join and leave storms in big channels. A coalesced
 * subscription takes a scope's changes not one event at a time but as
 * one net diff per channel per window: everything that changed in the
 * channel since its previous diff, with the changes that cancel out
 * removed. Ten thousand clients that drop and reconnect inside one window
 * cost a subscriber of their channel one call with nothing (or only the
 * members whose info changed) in it, instead of twenty thousand events;
 * above a member threshold a channel's diff carries counts only.
 *
 * **The net rule**, per member (a client id in a channel), from its state
 * before the window's first change of it to its state after the last:
 * - absent, then present: #PRESENCE_EVENT_JOIN, with its last infos;
 * - present, then absent: #PRESENCE_EVENT_LEAVE, with the last leave's
 *   reason and the infos it left with;
 * - absent, then absent (a join then a leave): nothing;
 * - present, then present: #PRESENCE_EVENT_UPDATE when an update was among
 *   its changes or when it left and came back with another user id,
 *   conn_info or chan_info than it had; nothing when it left and came
 *   back as it was (a reconnect). An UPDATE means "put this member": its
 *   infos may equal the old ones.
 * Applied to a copy of the channel at (presence_diff::from_epoch,
 * ::from_seq) a join or an update as "put", a leave as "remove", a diff
 * gives the channel at (presence_diff::epoch, ::seq), as
 * presence_changes_since() would: the version pair is how a client tells
 * that its copy and the diff meet (see @ref versions). A diff may span
 * lives of a channel (it emptied and filled again): from_epoch then
 * differs from epoch, and the diff is still the net change. A change that
 * comes with no client event (a place in leave grace taken by another
 * client of the user, see @ref grace) cannot be told as a member's
 * change: its window's diff says #PRESENCE_DIFF_RESYNC. Members in leave
 * grace are present: a drop into grace and a resume are no change, and
 * the leave at a grace's end is recorded when it happens (with the drop's
 * time as its time_ms).
 *
 * **Windows.** A channel's window opens with the first change the
 * subscription records for it and its diff is due window_ms later; then
 * the next change opens the next window. So one channel's diffs are at
 * least window_ms apart (unless flushed explicitly), and a channel that
 * does not change costs nothing. The library runs no timer: the
 * application calls presence_flush() when the time it last returned has
 * come (one timer in its loop, as for presence_expire()), or with
 * #PRESENCE_FLUSH_ALL to deliver everything at once.
 *
 * **Counts only.** With count_only_above set, a channel whose member
 * count goes above it enters counts-only mode and stays in it until the
 * count goes below count_only_below (hysteresis: a channel hovering at
 * the threshold does not flip every window). A window in which the
 * channel was in that mode at any change gives a diff with
 * #PRESENCE_DIFF_COUNT_ONLY and no members: the stats, and joined, left
 * and updated count the window's join, leave and update events (not
 * netted: joined - left is the change in num_clients). Such a diff holds
 * no per-member state, whatever the storm.
 *
 * **Delivery and threads.** Changes are recorded by the thread that
 * delivers ordinary events, at the point in the event order where an
 * ordinary subscription would have been called; diffs are delivered by
 * presence_flush(), on the thread that calls it, or, if another thread is
 * delivering events at that moment, by that thread before it stops (as
 * for events, exactly one thread delivers at a time, so a diff callback
 * never runs beside an event callback). A flush first delivers the events
 * already queued, so a diff is delivered after the ordinary events of all
 * the changes it holds. Diffs of one channel come in order; a flush
 * delivers the due diffs subscription by subscription, each in the order
 * its channels' windows opened. A diff callback may call any function of
 * the library (changes it makes are recorded for the next window;
 * presence_flush() from a callback asks for another pass after this one,
 * never recursively), except presence_registry_free().
 *
 * **Unsubscribing** (presence_unsubscribe(), which takes coalesced
 * subscriptions too) drops the diffs still pending, undelivered; a
 * callback may remove its own subscription, and no further diff of it is
 * delivered, not even the rest of the same flush.
 *
 * **Memory.** Per subscription, one record per channel with a pending
 * window (plus one per channel in counts-only mode, kept for its
 * hysteresis) and one per member that changed in an open window outside
 * counts-only mode, holding references on the client and chan_info as a
 * queued event does. So memory is bounded by the distinct members that
 * change within one window, and count_only_above caps it per channel.
 *
 * **Out of memory.** Recording never fails a change. A member that
 * cannot be recorded marks its channel's diff #PRESENCE_DIFF_RESYNC: the
 * diff comes at its time with counts and versions but no members, and
 * the subscriber re-reads the channel (presence_query() or
 * presence_changes_since() from the version it has). A channel that
 * cannot be recorded at all gives the subscription a scope-wide resync
 * at the next flush: a diff with #PRESENCE_DIFF_RESYNC whose channel is
 * "" (the channel's name for a #PRESENCE_SCOPE_CHANNEL subscription) and
 * whose namespace_name is the scope's namespace ("" for
 * #PRESENCE_SCOPE_ALL),
 * whatever its time, and nothing else in that flush: every pending window
 * of the subscription is dropped then (its memory given back) and nothing
 * is recorded until that diff is delivered; re-read every channel of the
 * scope. The subscription then starts afresh (no channel in counts-only
 * mode). Nothing is lost silently.
 */
/**@{*/

/** presence_flush()'s now_ms that delivers every pending diff at once. */
#define PRESENCE_FLUSH_ALL INT64_MAX

/** The options of a coalesced subscription. */
typedef struct presence_coalesce_options {
    size_t struct_size; /**< set by presence_coalesce_options_init() */
    /** A diff is due this long after the first change of its window;
     *  default 1000, at least 0 (0: due at the next presence_flush()). */
    int64_t window_ms;
    /** Counts only when a channel has more members than this; 0 (the
     *  default) never. */
    size_t count_only_above;
    /** Back to member lists when it has fewer than this; at most
     *  count_only_above (equal: no hysteresis); 0 (the default) means
     *  equal to count_only_above. */
    size_t count_only_below;
} presence_coalesce_options;

/** @internal Use presence_coalesce_options_init(). */
PRESENCE_API void
presence_coalesce_options_init_sized(presence_coalesce_options *options,
                                     size_t struct_size);

/** Fill @p options with the defaults and set its struct_size. */
#define presence_coalesce_options_init(options)                               \
    presence_coalesce_options_init_sized((options), sizeof(*(options)))

/** presence_diff::flags: the channel was in counts-only mode in this
 *  window; no members. */
#define PRESENCE_DIFF_COUNT_ONLY 0x1u
/** presence_diff::flags: changes could not be recorded (out of memory,
 *  or a change without a client event); no members: re-read the channel,
 *  or every channel of the scope when presence_diff::channel is "". */
#define PRESENCE_DIFF_RESYNC 0x2u

/** One member's net change in a diff. */
typedef struct presence_diff_member {
    /** #PRESENCE_EVENT_JOIN, #PRESENCE_EVENT_LEAVE or
     *  #PRESENCE_EVENT_UPDATE, by the net rule above. */
    presence_event_kind kind;
    presence_leave_reason reason; /**< for a leave, else NONE */
    int64_t time_ms;              /**< its last change in the window */
    /** The member as its last change left it (for a leave, the infos it
     *  left with). channel is the diff's; joined_at_ms and touched_at_ms
     *  are its last change's time for a join, else 0; in_grace is false;
     *  app is read at delivery: NULL once the handle is closed, as for
     *  any member delivered after the close. */
    presence_member member;
} presence_diff_member;

/**
 * A channel's net diff. It and everything it points to are borrowed:
 * valid only until the callback returns.
 */
typedef struct presence_diff {
    /** "" for a scope-wide resync (then its namespace_name is a
     *  namespace scope's name, else ""). */
    const char *channel;
    const char *namespace_name; /**< "" for the default namespace */
    unsigned flags;             /**< #PRESENCE_DIFF_COUNT_ONLY, ..._RESYNC */
    /** The version before the window's first change: the version a copy
     *  must be at for the diff to apply (0, 0 for an empty channel). */
    uint64_t from_epoch;
    uint64_t from_seq;
    /** The version after its last change, as in @c stats. */
    uint64_t epoch;
    uint64_t seq;
    /** The channel's stats right after the window's last change. */
    presence_channel_stats stats;
    /** Net joins, leaves and updates in @c members; with
     *  #PRESENCE_DIFF_COUNT_ONLY or #PRESENCE_DIFF_RESYNC the window's
     *  join, leave and update events. */
    size_t joined;
    size_t left;
    size_t updated;
    int64_t first_time_ms; /**< the window's first change */
    int64_t last_time_ms;  /**< and its last */
    size_t member_count;   /**< entries in @c members (may be 0) */
    /** In the order of each member's first change in the window. */
    const presence_diff_member *members;
} presence_diff;

/** A diff callback. @p registry is the registry that produced it. */
typedef void (*presence_diff_fn)(presence_registry *registry,
                                 const presence_diff *diff, void *user_data);

/**
 * Subscribe a callback to coalesced diffs of the join, leave and update
 * changes in a scope (see above). The subscription is one like those of
 * presence_subscribe(): the same handles, removed with
 * presence_unsubscribe(), and it receives the changes made after it
 * returns. User kinds are not coalesced, and namespaces with join_leave
 * off give nothing (as without #PRESENCE_EVENTS_EVERY_NAMESPACE).
 *
 * @param scope, name as for presence_subscribe().
 * @param options NULL for the defaults; else filled by
 *        presence_coalesce_options_init() first (an older, smaller struct
 *        is read as far as it goes, the rest taken as the defaults).
 * @param out receives the handle.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL registry, fn or out,
 *         a name with #PRESENCE_SCOPE_ALL or none with the others, an
 *         unknown scope, a struct_size smaller than a size_t, window_ms
 *         below 0, count_only_below above count_only_above);
 *         #PRESENCE_ERR_BAD_NAME; #PRESENCE_ERR_TOO_LONG;
 *         #PRESENCE_ERR_NOMEM. Any thread; a callback may call it.
 */
PRESENCE_API int
presence_subscribe_coalesced(presence_registry *registry, presence_scope scope,
                             const char *name,
                             const presence_coalesce_options *options,
                             presence_diff_fn fn, void *user_data,
                             presence_subscription *out);

/**
 * Deliver the events queued, then every diff due at @p now_ms (its
 * window's first change + window_ms at or before it), and say when the
 * next one is due. The library's timer hook for coalescing, like
 * presence_expire() for TTL: call it when the time it returned comes, and
 * after changes (a change opens a window, and only a call into the
 * library tells its deadline; presence_flush() with a @p now_ms at which
 * nothing is due only reads it).
 *
 * @param now_ms the current time on the registry's clock (normally
 *        presence_now_ms()), or #PRESENCE_FLUSH_ALL for every pending diff.
 * @param next_deadline_ms receives the earliest time a pending diff is
 *        due, #PRESENCE_NO_DEADLINE when none is (may be NULL). Never
 *        later than that, but it may be earlier: when another thread was
 *        delivering and does this flush for the caller it is read before
 *        that thread is done, and a subscription removed with diffs
 *        pending leaves its time until the next flush; a call at such a
 *        time delivers nothing and gives the next one.
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (NULL registry).
 * Any thread (see "Delivery and threads" above); a callback may call it:
 * the flush then runs after the callback returns.
 */
PRESENCE_API int presence_flush(presence_registry *registry, int64_t now_ms,
                                int64_t *next_deadline_ms);

/**@}*/

/* ------------------------------------------------------------------------ */
/** @name Nodes: memberships held for other processes
 *
 * When several processes share presence (see presence_cluster.h), each
 * registry holds, beside its own clients, the clients of the other nodes,
 * applied with the calls below by whatever carries the changes between
 * nodes. Such a remote client belongs to its node: queries, stats, paging
 * and events treat it as any other member (its events and snapshot
 * entries carry the node's id), but it never expires here (its own node
 * runs its TTL and sends the leave), and the calls for local clients
 * (presence_join(), presence_leave(), presence_update(), presence_touch(),
 * presence_touch_client(), presence_disconnect()) refuse it with
 * #PRESENCE_ERR_CONFLICT, as the remote calls refuse a local client or
 * one of another node. presence_channel_close() and a namespace whose
 * presence is turned off remove remote members too, here only.
 *
 * Node ids follow the rules of client ids (non-empty, no control
 * characters, at most presence_limits::client_id_max bytes).
 */
/**@{*/

/**
 * Apply a join (an upsert) of a client of node @p node_id: as
 * presence_join(), except that the membership has no TTL here (an upsert
 * still sets its touched_at_ms) and the client is recorded as the node's.
 * The namespace's limits apply.
 * @return as presence_join(); #PRESENCE_ERR_CONFLICT also when the client
 *         is local or belongs to another node.
 * A callback may call it.
 */
PRESENCE_API int presence_remote_join(presence_registry *registry,
                                      const char *node_id,
                                      const char *channel,
                                      const char *client_id,
                                      const char *user_id,
                                      const void *conn_info,
                                      size_t conn_info_len,
                                      const void *chan_info,
                                      size_t chan_info_len);

/**
 * Apply a leave of a client of node @p node_id, with the reason its node
 * gave (any leave reason but #PRESENCE_LEAVE_NONE).
 * @return #PRESENCE_OK; #PRESENCE_ERR_INVALID (also for a bad reason);
 *         #PRESENCE_ERR_BAD_NAME; #PRESENCE_ERR_TOO_LONG;
 *         #PRESENCE_ERR_UNKNOWN_NAMESPACE; #PRESENCE_ERR_NOT_FOUND (not in
 *         the channel); #PRESENCE_ERR_CONFLICT (the client is local or
 *         another node's); #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_remote_leave(presence_registry *registry,
                                       const char *node_id,
                                       const char *channel,
                                       const char *client_id,
                                       presence_leave_reason reason);

/**
 * Every client of node @p node_id leaves every channel, with @p reason
 * (normally #PRESENCE_LEAVE_NODE_DOWN), as presence_disconnect() would for
 * each. O(clients in the registry) to find them, then O(their
 * memberships). Clients that a callback adds to the node meanwhile may
 * stay.
 * @param left receives how many memberships were removed (may be NULL).
 * @return #PRESENCE_OK (also for a node with no client here);
 *         #PRESENCE_ERR_INVALID (also for #PRESENCE_LEAVE_NONE or an
 *         unknown reason); #PRESENCE_ERR_BAD_NAME; #PRESENCE_ERR_TOO_LONG;
 *         #PRESENCE_ERR_NOMEM (some may have left: @p left says how many;
 *         each left completely).
 * A callback may call it.
 */
PRESENCE_API int presence_node_down(presence_registry *registry,
                                    const char *node_id,
                                    presence_leave_reason reason,
                                    size_t *left);

/**
 * Every membership of the clients of one node, as a snapshot (seq 0, stats
 * {0, 0}): @p node_id "" names this registry's own clients. This is what a
 * node announces of itself, and what a replicator compares with another
 * node's state when it resynchronises. O(clients in the registry + the
 * node's memberships); consistent per client, not across clients.
 * @return #PRESENCE_OK (an empty snapshot for an unknown node);
 *         #PRESENCE_ERR_INVALID; #PRESENCE_ERR_BAD_NAME;
 *         #PRESENCE_ERR_TOO_LONG; #PRESENCE_ERR_NOMEM.
 * A callback may call it.
 */
PRESENCE_API int presence_node_memberships(presence_registry *registry,
                                           const char *node_id,
                                           presence_snapshot **out);

/**@}*/

#ifdef __cplusplus
}
#endif

#endif /* PRESENCE_H */
