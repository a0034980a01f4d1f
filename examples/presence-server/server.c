/*
 * The server without its network: a libpresence registry configured from
 * the Centrifugo-style config, the hub, and the connection tables.
 * SPDX-License-Identifier: MIT
 */
#include "server.h"

#include "conn.h"
#include "heartbeat.h"
#include "mem.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* A user's connected clients, while client_user_connection_limit is set. */
typedef struct ps_user_count {
    char *user;
    size_t count;
    UT_hash_handle hh;
} ps_user_count;

/* Descriptors kept for what is not a WebSocket: the standard streams, the
 * listener, HTTP API calls, Redis, logs. */
#define RESERVED_FDS 100

size_t ps_server_connection_capacity(void)
{
    struct rlimit rl;
    size_t fds = 1024; /* the usual soft limit, should getrlimit() fail */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        fds = rl.rlim_cur == RLIM_INFINITY ||
                      rl.rlim_cur > PS_MAX_CONNECTIONS + RESERVED_FDS
                  ? PS_MAX_CONNECTIONS + RESERVED_FDS
                  : (size_t)rl.rlim_cur;
    }
    size_t n = fds > 2 * RESERVED_FDS ? fds - RESERVED_FDS : fds / 2;
    if (n == 0) {
        n = 1;
    }
    return n < PS_MAX_CONNECTIONS ? n : PS_MAX_CONNECTIONS;
}

/*
 * libpresence's access check: Centrifugo's presence permission. It runs
 * with the registry's lock held, so it reads only the config, which is
 * immutable. Every query the server makes names its connection and user.
 */
static bool access_check(const presence_access *access, void *user_data)
{
    ps_server *server = user_data;
    const ps_channel_options *opts =
        ps_config_namespace(server->cfg, access->namespace_name);
    if (opts == NULL || access->user_id == NULL) {
        return false;
    }
    return ps_presence_allowed(opts, access->user_id, access->is_member);
}

static void to_library_options(const ps_config *cfg,
                               const ps_channel_options *in,
                               presence_namespace_options *out)
{
    presence_namespace_options_init(out);
    out->presence = in->presence;
    out->join_leave = in->join_leave;
    out->history_size = in->presence_history_size;
    out->leave_grace_ms = in->presence_leave_grace_ms;
    /* Every connection gets a new client id, so a reconnect is another
     * client of the same user. A place taken announces nothing, so the
     * other nodes (which learn from events) would not see it: with Redis
     * the grace only delays leaves. */
    out->grace_same_user = cfg->engine == PS_ENGINE_MEMORY;
}

void ps_server_expire_due(ps_server *server)
{
    presence_registry *reg = server->registry;
    int64_t now = presence_now_ms(reg);
    if (presence_next_deadline_ms(reg) <= now) {
        /* Out of memory stops it half-way; the next tick goes on. */
        (void)presence_expire(reg, now, NULL, NULL);
    }
    if (server->coalescing) {
        /* The library keeps its own due times: a flush with nothing due
         * delivers nothing. */
        (void)presence_flush(reg, now, NULL);
    }
}

/* The coalesced subscription of one namespace ("" for the top level)
 * whose options ask for one. */
static int subscribe_coalesced(ps_server *server, const char *name,
                               const ps_channel_options *o)
{
    if (o->presence_coalesce_ms <= 0 || !o->presence || !o->join_leave) {
        return PRESENCE_OK;
    }
    presence_coalesce_options co;
    presence_coalesce_options_init(&co);
    co.window_ms = o->presence_coalesce_ms;
    co.count_only_above = o->presence_count_only_above;
    co.count_only_below = o->presence_count_only_below;
    presence_subscription sub = 0;
    server->coalescing = true;
    return presence_subscribe_coalesced(server->registry,
                                        PRESENCE_SCOPE_NAMESPACE, name, &co,
                                        ps_hub_on_diff, server, &sub);
}

/* The whole of a file, malloc'd; NULL when it cannot be read. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    char *data = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (cap - *len < 65536) {
            cap = cap * 2 + 65536;
            char *grown = ps_realloc(data, cap);
            if (grown == NULL) {
                break;
            }
            data = grown;
        }
        size_t n = fread(data + *len, 1, cap - *len, f);
        *len += n;
        if (n == 0) {
            break;
        }
    }
    bool ok = !ferror(f) && feof(f);
    fclose(f);
    if (!ok) {
        ps_free(data);
        return NULL;
    }
    return data;
}

/* Warm restart: the registry saved by the last shutdown (state_file),
 * if there is one it can load (0); else 1 (start empty). */
static int load_registry(ps_server *server, const presence_config *pc)
{
    const char *path = server->cfg->state_file;
    size_t len = 0;
    char *data = path != NULL ? read_file(path, &len) : NULL;
    if (data == NULL) {
        return 1;
    }
    int rc = presence_registry_load(pc, data, len, &server->registry);
    ps_free(data);
    if (rc != PRESENCE_OK) {
        ps_log("warning: state_file %s: %s; starting empty", path,
               presence_strerror(rc));
        return 1;
    }
    ps_log("state_file %s: loaded", path);
    return 0;
}

/* Every connection of the old process is gone: each of its own clients
 * disconnects, and where a namespace has presence_leave_grace it waits
 * in grace for its user to come back. */
static int disconnect_loaded(presence_registry *reg)
{
    presence_snapshot *mine = NULL;
    int rc = presence_node_memberships(reg, "", &mine);
    for (size_t i = 0; rc == PRESENCE_OK && i < mine->count; i++) {
        rc = presence_disconnect(reg, mine->members[i].client_id, NULL);
    }
    presence_snapshot_free(mine);
    return rc;
}

static int save_piece(const void *data, size_t len, void *user_data)
{
    return fwrite(data, 1, len, user_data) == len ? 0 : -1;
}

int ps_server_save_state(ps_server *server)
{
    const char *path = server->cfg->state_file;
    if (path == NULL) {
        return 0;
    }
    /* A whole state or none: written aside, then renamed over the old. */
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
        return -1;
    }
    FILE *f = fopen(tmp, "wb");
    size_t size = 0;
    int rc = f != NULL ? presence_registry_save(server->registry, save_piece, f,
                                                &size)
                       : PRESENCE_ERR_IO;
    if (f != NULL && fclose(f) != 0 && rc == PRESENCE_OK) {
        rc = PRESENCE_ERR_IO;
    }
    if (rc == PRESENCE_OK && rename(tmp, path) != 0) {
        rc = PRESENCE_ERR_IO;
    }
    if (rc != PRESENCE_OK) {
        ps_log("state_file %s: not saved: %s", path, presence_strerror(rc));
        remove(tmp);
        return -1;
    }
    ps_log("state_file %s: saved, %zu bytes", path, size);
    return 0;
}

static int create_registry(ps_server *server, char *err, size_t err_len)
{
    const ps_config *cfg = server->cfg;
    presence_config pc;
    presence_config_init(&pc);
    ps_mem_presence_allocator(&pc.allocator);
    pc.access_check = access_check;
    pc.access_user_data = server;
    pc.limits.channel_name_max = cfg->channel_max_length;
    pc.namespace_separator = PS_NAMESPACE_SEPARATOR;
    pc.limits.channels_per_client_max = cfg->client_channel_limit;
    to_library_options(cfg, &cfg->root, &pc.default_namespace);
    int loaded = load_registry(server, &pc);
    int rc = loaded == 0 ? PRESENCE_OK
                         : presence_registry_new(&pc, &server->registry);
    if (rc == PRESENCE_OK && loaded == 0) {
        /* The config, not the saved state, says what the options are. */
        rc = presence_namespace_set(server->registry, "", &pc.default_namespace);
    }
    for (size_t i = 0; rc == PRESENCE_OK && i < cfg->namespace_count; i++) {
        presence_namespace_options no;
        to_library_options(cfg, &cfg->namespaces[i].options, &no);
        rc = presence_namespace_set(server->registry, cfg->namespaces[i].name, &no);
    }
    if (rc == PRESENCE_OK && loaded == 0) {
        rc = disconnect_loaded(server->registry);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_subscribe(server->registry, PRESENCE_SCOPE_ALL, NULL,
                                PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE,
                                ps_hub_on_event, server, &server->events);
    }
    if (rc == PRESENCE_OK) {
        rc = subscribe_coalesced(server, "", &cfg->root);
    }
    for (size_t i = 0; rc == PRESENCE_OK && i < cfg->namespace_count; i++) {
        rc = subscribe_coalesced(server, cfg->namespaces[i].name,
                                 &cfg->namespaces[i].options);
    }
    if (rc != PRESENCE_OK) {
        snprintf(err, err_len, "libpresence: %s", presence_strerror(rc));
        presence_registry_free(server->registry);
        server->registry = NULL;
        return -1;
    }
    return 0;
}

int ps_server_init(ps_server *server, const ps_config *cfg,
                   ps_frame_writer write_frame, char *err, size_t err_len)
{
    memset(server, 0, sizeof *server);
    server->cfg = cfg;
    server->write_frame = write_frame;
    server->max_connections = cfg->client_connection_limit
                                  ? cfg->client_connection_limit
                                  : ps_server_connection_capacity();
    if (create_registry(server, err, err_len) != 0) {
        return -1;
    }
    pthread_mutex_init(&server->conns_lock, NULL);
    ps_hub_init(&server->hub);
    ps_writer_init(&server->writer);
    return 0;
}

void ps_server_fini(ps_server *server)
{
    ps_writer_stop(&server->writer);
    presence_unsubscribe(server->registry, server->events);
    presence_registry_free(server->registry);
    server->registry = NULL;
    ps_hub_destroy(&server->hub);
    ps_user_count *uc = NULL;
    ps_user_count *tmp = NULL;
    HASH_ITER(hh, server->user_counts, uc, tmp) {
        HASH_DEL(server->user_counts, uc);
        ps_free(uc->user);
        ps_free(uc);
    }
    pthread_mutex_destroy(&server->conns_lock);
}

/* Count a client of @p user against client_user_connection_limit. Under
 * conns_lock. Anonymous clients are not counted, as in Centrifugo. */
static ps_add_result user_count_add(ps_server *server, const char *user)
{
    size_t limit = server->cfg->client_user_connection_limit;
    if (limit == 0 || *user == '\0') {
        return PS_ADD_OK;
    }
    ps_user_count *uc = NULL;
    HASH_FIND_STR(server->user_counts, user, uc);
    if (uc != NULL) {
        if (uc->count >= limit) {
            return PS_ADD_USER_FULL;
        }
        uc->count++;
        return PS_ADD_OK;
    }
    uc = ps_calloc(1, sizeof *uc);
    if (uc == NULL || (uc->user = ps_strdup(user)) == NULL) {
        ps_free(uc);
        return PS_ADD_NOMEM;
    }
    uc->count = 1;
    HASH_ADD_KEYPTR(hh, server->user_counts, uc->user, strlen(uc->user), uc);
    if (!ps_hash_added(uc, hh)) {
        ps_free(uc->user);
        ps_free(uc);
        return PS_ADD_NOMEM;
    }
    return PS_ADD_OK;
}

static void user_count_remove(ps_server *server, const char *user)
{
    ps_user_count *uc = NULL;
    if (server->cfg->client_user_connection_limit == 0 || *user == '\0') {
        return;
    }
    HASH_FIND_STR(server->user_counts, user, uc);
    if (uc != NULL && --uc->count == 0) {
        HASH_DEL(server->user_counts, uc);
        ps_free(uc->user);
        ps_free(uc);
    }
}

void ps_server_close_all(ps_server *server, int code, const char *reason)
{
    pthread_mutex_lock(&server->conns_lock);
    server->stopping = true;
    size_t n = server->transport_count;
    ps_conn **all = ps_calloc(n ? n : 1, sizeof *all);
    size_t k = 0;
    for (ps_conn *c = server->transports; all != NULL && c != NULL; c = c->next) {
        all[k++] = ps_conn_ref(c);
    }
    pthread_mutex_unlock(&server->conns_lock);
    for (size_t i = 0; i < k; i++) {
        ps_conn_close_now(all[i], code, reason);
        ps_conn_unref(all[i]);
    }
    ps_free(all);
}

bool ps_server_add_transport(ps_server *server, ps_conn *conn)
{
    bool ok;
    pthread_mutex_lock(&server->conns_lock);
    ok = !server->stopping;
    if (ok) {
        ps_conn_ref(conn);
        conn->prev = NULL;
        conn->next = server->transports;
        if (server->transports != NULL) {
            server->transports->prev = conn;
        }
        server->transports = conn;
        server->transport_count++;
        conn->listed = true;
    }
    pthread_mutex_unlock(&server->conns_lock);
    return ok;
}

ps_add_result ps_server_add_client(ps_server *server, ps_conn *conn)
{
    ps_add_result result = PS_ADD_OK;
    pthread_mutex_lock(&server->conns_lock);
    if (server->stopping || server->client_count >= server->max_connections) {
        result = PS_ADD_FULL;
    } else if ((result = user_count_add(server, conn->user)) == PS_ADD_OK) {
        HASH_ADD_STR(server->clients, client_id, conn);
        if (ps_hash_added(conn, hh)) {
            server->client_count++;
        } else {
            user_count_remove(server, conn->user);
            result = PS_ADD_NOMEM;
        }
    }
    pthread_mutex_unlock(&server->conns_lock);
    return result;
}

void ps_server_remove(ps_server *server, ps_conn *conn)
{
    bool listed = false;
    pthread_mutex_lock(&server->conns_lock);
    if (conn->connected) {
        ps_conn *found = NULL;
        HASH_FIND_STR(server->clients, conn->client_id, found);
        if (found == conn) {
            HASH_DEL(server->clients, conn);
            server->client_count--;
            user_count_remove(server, conn->user);
        }
    }
    listed = conn->listed;
    conn->listed = false;
    if (listed) {
        if (conn->prev != NULL) {
            conn->prev->next = conn->next;
        } else {
            server->transports = conn->next;
        }
        if (conn->next != NULL) {
            conn->next->prev = conn->prev;
        }
        conn->prev = conn->next = NULL;
        server->transport_count--;
    }
    pthread_mutex_unlock(&server->conns_lock);
    /* Armed from the open (the stale timer) whether or not it was listed. */
    ps_heartbeat_stop(conn);
    if (listed) {
        ps_conn_unref(conn);
    }
}

ps_conn **ps_server_transports(ps_server *server, size_t *count)
{
    pthread_mutex_lock(&server->conns_lock);
    size_t n = server->transport_count;
    ps_conn **all = ps_malloc((n ? n : 1) * sizeof *all);
    size_t k = 0;
    for (ps_conn *c = server->transports; all != NULL && c != NULL; c = c->next) {
        all[k++] = ps_conn_ref(c);
    }
    pthread_mutex_unlock(&server->conns_lock);
    *count = k;
    return all;
}
