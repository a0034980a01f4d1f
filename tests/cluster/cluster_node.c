/*
 * presence-cluster-node: one cluster node driven by a line protocol, for the
 * cluster tests (the .test.js files beside it).
 *
 * A registry attached to Redis with presence_cluster_new(), and one poll
 * loop over stdin and presence_cluster_fd(). Commands arrive on stdin, one
 * per line, words separated by spaces ("-" stands for an anonymous user);
 * each gets exactly one reply line, in order, on stdout ("dump": a list
 * closed by its "end" line). INFO words are bytes with %XX escapes, "-"
 * for none.
 *
 *   join CH CLIENT USER [CHANINFO [CONNINFO]] -> ok | err NAME message
 *   leave CH CLIENT                 -> ok | err ...
 *   update CH CLIENT CHANINFO       -> ok | err ...
 *   disconnect CLIENT               -> ok LEFT | err ...
 *   touch CLIENT                    -> ok | err ...
 *   close CH                        -> ok REMOVED | err ...
 *   burst PREFIX N CHANNELS         -> ok N | err ...: clients PREFIX-<i>
 *                                      (user u<i % 100>) join channel
 *                                      PREFIX-ch<i % CHANNELS>, i < N, in
 *                                      one go (a burst of changes; the
 *                                      handle runs every 1000 joins)
 *   dump                            -> member CH CLIENT USER NODE CHANINFO
 *                                      CONNINFO (sorted; the local node's
 *                                      id for its own clients; infos
 *                                      escaped canonically: %XX for bytes
 *                                      outside '!'..'~', for '%' and for
 *                                      a lone '-') ... then: end COUNT
 *   count                           -> ok MEMBERSHIPS CLIENTS CHANNELS
 *                                      (cheap, unlike dump)
 *   status                          -> status connected=0|1 synced=0|1
 *                                      nodes=N pending=N sent=N applied=N
 *                                      rejected=N snapshots=N nodes_down=N
 *                                      connects=N
 *   ping [TOKEN]                    -> pong [TOKEN]
 *   quit                            -> (leaves the cluster) bye, then exit 0
 *
 * Every registry event is one more line, interleaved with the replies:
 *
 *   event KIND REASON CH CLIENT USER NODE SEQ T_NS
 *
 * KIND is join, leave, update, user_join or user_leave; REASON is "-" for
 * joins and updates, else explicit, disconnect, expired, closed, node_down
 * or resync; NODE is the origin ("-" for this node's own clients); T_NS is
 * CLOCK_MONOTONIC in nanoseconds when the callback ran (the clock is shared
 * by the processes of one machine, which is what the lag figures use).
 * The first line is "ready NODE_ID"; cluster diagnostics go to stderr.
 *
 * Usage: presence-cluster-node --port PORT --node ID [--host HOST]
 *            [--lease-ms MS] [--prefix PREFIX] [--log-max-len N] [--ttl-ms MS]
 *            [--batch-delay-ms MS]
 *            [--namespace NAME[:quiet]]... [--no-events]
 *
 * End of input is "quit". SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <presence.h>
#include <presence_cluster.h>

#define INPUT_MAX 16384 /* bytes of one command line, at most */
#define WORDS_MAX 8

typedef struct node {
    presence_registry *reg;
    presence_cluster *cluster;
    const char *node_id;
    bool ttl;
    char buf[INPUT_MAX];
    size_t len;
    bool quit;
} node;

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The library's name of a leave reason; "-" for none (not a leave). */
static const char *reason_name(presence_leave_reason reason)
{
    return reason == PRESENCE_LEAVE_NONE ? "-"
                                         : presence_leave_reason_name(reason);
}

static const char *or_dash(const char *s)
{
    return (s == NULL || s[0] == '\0') ? "-" : s;
}

/* The origin of a member or event: "" (this node's own) becomes @p self. A
 * NULL node id breaks the header's promise: shown, not hidden. */
static const char *origin(const char *node_id, const char *self)
{
    if (node_id == NULL) {
        return "(null)";
    }
    return node_id[0] != '\0' ? node_id : self;
}

static void on_event(presence_registry *reg, const presence_event *ev,
                     void *user_data)
{
    (void)reg;
    (void)user_data;
    printf("event %s %s %s %s %s %s %" PRIu64 " %" PRId64 "\n",
           presence_event_kind_name(ev->kind), reason_name(ev->reason), ev->channel,
           ev->client_id, or_dash(ev->user_id), origin(ev->node_id, "-"), ev->seq,
           mono_ns());
}

static void on_log(presence_cluster_log_level level, const char *message,
                   void *user_data)
{
    static const char *const names[] = {"debug", "info", "warning", "error"};
    const char *id = user_data;
    fprintf(stderr, "[%s] cluster %s: %s\n", id,
            (unsigned)level < 4 ? names[level] : "?", message);
}

static void reply_err(int rc)
{
    printf("err %s %s\n", presence_error_name(rc), presence_strerror(rc));
}

static void reply_rc(int rc)
{
    if (rc == PRESENCE_OK) {
        printf("ok\n");
    } else {
        reply_err(rc);
    }
}

/* "-" means "none": an anonymous user. */
static const char *dash_empty(const char *word)
{
    return strcmp(word, "-") == 0 ? "" : word;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* An info word: "-" is none, otherwise bytes with %XX escapes, decoded in
 * place (the result is never longer). Returns the length, or -1. */
static long decode_info(char *word)
{
    if (strcmp(word, "-") == 0) {
        return 0;
    }
    size_t out = 0;
    for (size_t i = 0; word[i] != '\0'; i++) {
        if (word[i] != '%') {
            word[out++] = word[i];
            continue;
        }
        int hi = hex_value(word[i + 1]);
        int lo = hi < 0 ? -1 : hex_value(word[i + 2]);
        if (lo < 0) {
            return -1;
        }
        word[out++] = (char)(hi * 16 + lo);
        i += 2;
    }
    return (long)out;
}

/* The inverse, canonical: "-" for none; %XX for bytes outside '!'..'~',
 * for '%', and for a lone "-". Returns a malloc'd string or NULL. */
static char *encode_info(const void *data, size_t len)
{
    const unsigned char *p = data;
    char *out = malloc(len * 3 + 2);
    if (out == NULL) {
        return NULL;
    }
    if (len == 0) {
        strcpy(out, "-");
        return out;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        bool plain = p[i] > ' ' && p[i] < 0x7f && p[i] != '%' &&
                     !(len == 1 && p[i] == '-');
        if (plain) {
            out[o++] = (char)p[i];
        } else {
            o += (size_t)sprintf(out + o, "%%%02X", p[i]);
        }
    }
    out[o] = '\0';
    return out;
}

static int cmp_lines(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "member CH CLIENT USER NODE CHANINFO CONNINFO" */
static int format_member(const presence_member *m, const char *self,
                         char **out)
{
    char *chan = encode_info(m->chan_info, m->chan_info_len);
    char *conn = encode_info(m->conn_info, m->conn_info_len);
    int rc = PRESENCE_ERR_NOMEM;
    if (chan != NULL && conn != NULL) {
#define MEMBER_FMT "member %s %s %s %s %s %s"
        const char *user = or_dash(m->user_id);
        const char *node_id = origin(m->node_id, self);
        int n = snprintf(NULL, 0, MEMBER_FMT, m->channel, m->client_id, user,
                         node_id, chan, conn);
        if (n >= 0 && (*out = malloc((size_t)n + 1)) != NULL) {
            snprintf(*out, (size_t)n + 1, MEMBER_FMT, m->channel,
                     m->client_id, user, node_id, chan, conn);
            rc = PRESENCE_OK;
        }
#undef MEMBER_FMT
    }
    free(chan);
    free(conn);
    return rc;
}

/* Collect every member of every channel as formatted lines. */
static int collect_view(node *nd, char ***out_lines, size_t *out_count)
{
    presence_channel_list *list = NULL;
    char **lines = NULL;
    size_t count = 0;
    size_t cap = 0;
    int rc = presence_channels(nd->reg, NULL, &list);
    for (size_t i = 0; rc == PRESENCE_OK && i < list->count; i++) {
        presence_snapshot *snap = NULL;
        rc = presence_query(nd->reg, list->channels[i].channel, presence_trusted(), &snap);
        for (size_t j = 0; rc == PRESENCE_OK && j < snap->count; j++) {
            if (count == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                char **grown = realloc(lines, ncap * sizeof *lines);
                if (grown == NULL) {
                    rc = PRESENCE_ERR_NOMEM;
                    break;
                }
                lines = grown;
                cap = ncap;
            }
            rc = format_member(&snap->members[j], nd->node_id, &lines[count]);
            if (rc == PRESENCE_OK) {
                count++;
            }
        }
        presence_snapshot_free(snap);
    }
    presence_channel_list_free(list);
    if (rc != PRESENCE_OK) {
        for (size_t i = 0; i < count; i++) {
            free(lines[i]);
        }
        free(lines);
        return rc;
    }
    *out_lines = lines;
    *out_count = count;
    return PRESENCE_OK;
}

static void cmd_dump(node *nd)
{
    char **lines = NULL;
    size_t count = 0;
    int rc = collect_view(nd, &lines, &count);
    if (rc != PRESENCE_OK) {
        reply_err(rc);
        return;
    }
    if (count > 0) {
        qsort(lines, count, sizeof *lines, cmp_lines);
    }
    for (size_t i = 0; i < count; i++) {
        printf("%s\n", lines[i]);
        free(lines[i]);
    }
    free(lines);
    printf("end %zu\n", count);
}

static void cmd_status(node *nd)
{
    presence_cluster_status st;
    int rc = presence_cluster_status_get(nd->cluster, &st);
    if (rc != PRESENCE_OK) {
        reply_err(rc);
        return;
    }
    printf("status connected=%d synced=%d nodes=%zu pending=%zu sent=%" PRIu64
           " applied=%" PRIu64 " rejected=%" PRIu64 " snapshots=%" PRIu64
           " nodes_down=%" PRIu64 " connects=%" PRIu64 "\n",
           st.connected, st.synced, st.nodes, st.pending, st.sent, st.applied,
           st.rejected, st.snapshots, st.nodes_down, st.connects);
}

static void cmd_join(node *nd, char **w, int n)
{
    long chan_len = n >= 5 ? decode_info(w[4]) : 0;
    long conn_len = n >= 6 ? decode_info(w[5]) : 0;
    if (chan_len < 0 || conn_len < 0) {
        printf("err ERR_INVALID bad %%XX escape\n");
        return;
    }
    reply_rc(presence_join(nd->reg, w[1], w[2], dash_empty(w[3]),
                           conn_len ? w[5] : NULL, (size_t)conn_len,
                           chan_len ? w[4] : NULL, (size_t)chan_len));
}

static void cmd_update(node *nd, char **w)
{
    long len = decode_info(w[3]);
    if (len < 0) {
        printf("err ERR_INVALID bad %%XX escape\n");
        return;
    }
    reply_rc(presence_update(nd->reg, w[1], w[2], len ? w[3] : NULL,
                             (size_t)len));
}

static void cmd_disconnect(node *nd, const char *client)
{
    size_t left = 0;
    int rc = presence_disconnect(nd->reg, client, &left);
    if (rc == PRESENCE_OK) {
        printf("ok %zu\n", left);
    } else {
        reply_err(rc);
    }
}

static void cmd_close(node *nd, const char *channel)
{
    size_t removed = 0;
    int rc = presence_channel_close(nd->reg, channel, &removed);
    if (rc == PRESENCE_OK) {
        printf("ok %zu\n", removed);
    } else {
        reply_err(rc);
    }
}

static void cmd_count(node *nd)
{
    presence_counts counts;
    int rc = presence_registry_counts(nd->reg, &counts);
    if (rc == PRESENCE_OK) {
        printf("ok %zu %zu %zu\n", counts.memberships, counts.clients,
               counts.channels);
    } else {
        reply_err(rc);
    }
}

static void cmd_burst(node *nd, char **w)
{
    unsigned long n = strtoul(w[2], NULL, 10);
    unsigned long channels = strtoul(w[3], NULL, 10);
    char ch[128];
    char client[128];
    char user[32];
    if (channels == 0 || strlen(w[1]) > 64) {
        printf("err ERR_INVALID burst PREFIX N CHANNELS\n");
        return;
    }
    for (unsigned long i = 0; i < n; i++) {
        snprintf(ch, sizeof ch, "%s-ch%lu", w[1], i % channels);
        snprintf(client, sizeof client, "%s-%lu", w[1], i);
        snprintf(user, sizeof user, "u%lu", i % 100);
        int rc = presence_join(nd->reg, ch, client, user, NULL, 0, NULL, 0);
        /* As a server would between its own work: let the handle write,
         * read and renew its lease (a loop stalled past lease_ms loses
         * it, whatever the library does). */
        if (rc == PRESENCE_OK && i % 1000 == 999) {
            rc = presence_cluster_process(nd->cluster);
        }
        if (rc != PRESENCE_OK) {
            reply_err(rc);
            return;
        }
    }
    printf("ok %lu\n", n);
}

static void run_command(node *nd, char *line)
{
    char *w[WORDS_MAX];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " ", &save); t != NULL;
         t = strtok_r(NULL, " ", &save)) {
        if (n == WORDS_MAX) {
            printf("err ERR_INVALID too many words\n");
            return;
        }
        w[n++] = t;
    }
    if (n == 0) {
        return;
    }
    if (strcmp(w[0], "join") == 0 && n >= 4 && n <= 6) {
        cmd_join(nd, w, n);
    } else if (strcmp(w[0], "leave") == 0 && n == 3) {
        reply_rc(presence_leave(nd->reg, w[1], w[2]));
    } else if (strcmp(w[0], "update") == 0 && n == 4) {
        cmd_update(nd, w);
    } else if (strcmp(w[0], "disconnect") == 0 && n == 2) {
        cmd_disconnect(nd, w[1]);
    } else if (strcmp(w[0], "count") == 0 && n == 1) {
        cmd_count(nd);
    } else if (strcmp(w[0], "burst") == 0 && n == 4) {
        cmd_burst(nd, w);
    } else if (strcmp(w[0], "close") == 0 && n == 2) {
        cmd_close(nd, w[1]);
    } else if (strcmp(w[0], "touch") == 0 && n == 2) {
        reply_rc(presence_touch_client(nd->reg, w[1]));
    } else if (strcmp(w[0], "dump") == 0 && n == 1) {
        cmd_dump(nd);
    } else if (strcmp(w[0], "status") == 0 && n == 1) {
        cmd_status(nd);
    } else if (strcmp(w[0], "ping") == 0 && n <= 2) {
        printf("pong%s%s\n", n == 2 ? " " : "", n == 2 ? w[1] : "");
    } else if (strcmp(w[0], "quit") == 0 && n == 1) {
        nd->quit = true;
    } else {
        printf("err ERR_INVALID unknown command or wrong arguments: %s\n",
               w[0]);
    }
}

/* Read what stdin has, run every complete line. End of input quits. */
static void read_stdin(node *nd)
{
    for (;;) {
        if (nd->len == sizeof nd->buf) {
            printf("err ERR_TOO_LONG line too long, dropped\n");
            nd->len = 0;
        }
        ssize_t got = read(STDIN_FILENO, nd->buf + nd->len,
                           sizeof nd->buf - nd->len);
        if (got == 0) {
            nd->quit = true;
            return;
        }
        if (got < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                perror("read stdin");
                nd->quit = true;
            }
            return;
        }
        nd->len += (size_t)got;
        char *start = nd->buf;
        char *nl;
        while (!nd->quit &&
               (nl = memchr(start, '\n', nd->len - (size_t)(start - nd->buf)))
                   != NULL) {
            *nl = '\0';
            run_command(nd, start);
            start = nl + 1;
        }
        nd->len -= (size_t)(start - nd->buf);
        memmove(nd->buf, start, nd->len);
        if (nd->quit) {
            return;
        }
    }
}

/* How long poll() may sleep: the cluster's timeout, and the next TTL. */
static int poll_timeout(node *nd)
{
    int64_t ms = presence_cluster_timeout_ms(nd->cluster);
    if (nd->ttl) {
        int64_t deadline = presence_next_deadline_ms(nd->reg);
        if (deadline != PRESENCE_NO_DEADLINE) {
            int64_t until = deadline - presence_now_ms(nd->reg);
            ms = until < ms ? until : ms;
        }
    }
    if (ms < 0) {
        return 0;
    }
    return ms > 1000 ? 1000 : (int)ms;
}

static int loop(node *nd)
{
    while (!nd->quit) {
        struct pollfd fds[2] = {
            {.fd = STDIN_FILENO, .events = POLLIN},
            {.fd = presence_cluster_fd(nd->cluster), .events = POLLIN},
        };
        fflush(stdout);
        if (poll(fds, 2, poll_timeout(nd)) < 0 && errno != EINTR) {
            perror("poll");
            return 1;
        }
        if (fds[0].revents != 0) {
            read_stdin(nd);
        }
        int rc = presence_cluster_process(nd->cluster);
        if (rc != PRESENCE_OK) {
            fprintf(stderr, "presence_cluster_process: %s\n",
                    presence_strerror(rc));
            return 1;
        }
        if (nd->ttl) {
            rc = presence_expire(nd->reg, presence_now_ms(nd->reg), NULL, NULL);
            if (rc != PRESENCE_OK) {
                fprintf(stderr, "presence_expire: %s\n",
                        presence_strerror(rc));
                return 1;
            }
        }
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: presence-cluster-node --port PORT --node ID [--host HOST]"
            " [--lease-ms MS] [--prefix PREFIX] [--log-max-len N]"
            " [--ttl-ms MS] [--batch-delay-ms MS] [--namespace NAME[:quiet]]..."
            " [--no-events]\n");
}

typedef struct options {
    presence_cluster_config cfg;
    char *node_arg; /* the node id as given, for the log callback */
    int64_t ttl_ms;
    bool events;
    char *namespaces[8]; /* --namespace NAME or NAME:quiet, at most 8 */
    int namespace_count;
} options;

static int parse_args(int argc, char **argv, options *o)
{
    presence_cluster_config_init(&o->cfg);
    o->ttl_ms = 0;
    o->node_arg = NULL;
    o->namespace_count = 0;
    o->events = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-events") == 0) {
            o->events = false;
            continue;
        }
        if (v == NULL) {
            usage();
            return -1;
        }
        i++;
        if (strcmp(a, "--host") == 0) {
            o->cfg.redis_host = v;
        } else if (strcmp(a, "--port") == 0) {
            o->cfg.redis_port = atoi(v);
        } else if (strcmp(a, "--node") == 0) {
            o->cfg.node_id = v;
            o->node_arg = argv[i];
        } else if (strcmp(a, "--lease-ms") == 0) {
            o->cfg.lease_ms = strtoll(v, NULL, 10);
        } else if (strcmp(a, "--batch-delay-ms") == 0) {
            o->cfg.batch_delay_ms = strtoll(v, NULL, 10);
        } else if (strcmp(a, "--prefix") == 0) {
            o->cfg.prefix = v;
        } else if (strcmp(a, "--log-max-len") == 0) {
            o->cfg.log_max_len = strtoul(v, NULL, 10);
        } else if (strcmp(a, "--namespace") == 0 && o->namespace_count < 8) {
            o->namespaces[o->namespace_count++] = argv[i];
        } else if (strcmp(a, "--ttl-ms") == 0) {
            o->ttl_ms = strtoll(v, NULL, 10);
        } else {
            usage();
            return -1;
        }
    }
    if (o->cfg.node_id == NULL) {
        usage();
        return -1;
    }
    return 0;
}

/* "NAME" adds a namespace as the defaults have it; "NAME:quiet" one whose
 * join_leave is off (changes, but no events). */
static int add_namespace(presence_registry *reg, char *spec)
{
    presence_namespace_options ns;
    presence_namespace_options_init(&ns);
    char *colon = strchr(spec, ':');
    if (colon != NULL) {
        if (strcmp(colon, ":quiet") != 0) {
            fprintf(stderr, "--namespace %s: expected NAME or NAME:quiet\n",
                    spec);
            return -1;
        }
        *colon = '\0';
        ns.join_leave = false;
    }
    int rc = presence_namespace_set(reg, spec, &ns);
    if (rc != PRESENCE_OK) {
        fprintf(stderr, "presence_namespace_set %s: %s\n", spec,
                presence_strerror(rc));
        return -1;
    }
    return 0;
}

static int setup(node *nd, const options *o)
{
    presence_config cfg;
    presence_config_init(&cfg);
    cfg.default_namespace.ttl_ms = o->ttl_ms;
    int rc = presence_registry_new(&cfg, &nd->reg);
    if (rc != PRESENCE_OK) {
        fprintf(stderr, "presence_registry_new: %s\n", presence_strerror(rc));
        return -1;
    }
    for (int i = 0; i < o->namespace_count; i++) {
        if (add_namespace(nd->reg, o->namespaces[i]) != 0) {
            return -1;
        }
    }
    if (o->events) {
        presence_subscription sub;
        rc = presence_subscribe(nd->reg, PRESENCE_SCOPE_ALL, NULL,
                                PRESENCE_EVENTS_ALL, on_event, nd, &sub);
        if (rc != PRESENCE_OK) {
            fprintf(stderr, "presence_subscribe: %s\n", presence_strerror(rc));
            return -1;
        }
    }
    presence_cluster_config cc = o->cfg;
    cc.log = on_log;
    cc.log_user_data = o->node_arg;
    rc = presence_cluster_new(nd->reg, &cc, &nd->cluster);
    if (rc != PRESENCE_OK) {
        fprintf(stderr, "presence_cluster_new: %s\n", presence_strerror(rc));
        return -1;
    }
    nd->node_id = presence_cluster_node_id(nd->cluster);
    nd->ttl = o->ttl_ms > 0;
    return 0;
}

int main(int argc, char **argv)
{
    static node nd;
    options o;
    if (parse_args(argc, argv, &o) != 0) {
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int flags = fcntl(STDIN_FILENO, F_GETFL);
    if (flags < 0 || fcntl(STDIN_FILENO, F_SETFL, flags | O_NONBLOCK) < 0) {
        perror("fcntl stdin");
        return 1;
    }
    int status = 1;
    if (setup(&nd, &o) == 0) {
        printf("ready %s\n", nd.node_id);
        status = loop(&nd);
    }
    int rc = presence_cluster_free(nd.cluster);
    if (rc != PRESENCE_OK) {
        fprintf(stderr, "presence_cluster_free: %s\n", presence_strerror(rc));
        status = 1;
    }
    rc = presence_registry_free(nd.reg);
    if (rc != PRESENCE_OK) {
        fprintf(stderr, "presence_registry_free: %s\n", presence_strerror(rc));
        status = 1;
    }
    if (status == 0) {
        printf("bye\n");
    }
    fflush(stdout);
    return status;
}
