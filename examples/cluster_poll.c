/*
 * libpresence-cluster in a plain poll loop: this process is one node. It
 * puts one client of its own into a channel, then prints every join and
 * leave of that channel, from whichever node, until interrupted (Ctrl-C
 * leaves the cluster cleanly, so the other nodes drop its client at once).
 *
 *   cluster_poll [REDIS_HOST [REDIS_PORT [CHANNEL [CLIENT [USER]]]]]
 *
 * Run it twice with different CLIENT names against one redis-server: each
 * prints the other's join, and its leave when it stops (or "node down"
 * within the lease when it is killed).
 * SPDX-License-Identifier: MIT
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <presence.h>
#include <presence_cluster.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void on_event(presence_registry *reg, const presence_event *ev,
                     void *user_data)
{
    (void)reg;
    (void)user_data;
    printf("%s %s %s", ev->client_id, presence_event_kind_name(ev->kind),
           ev->channel);
    if (ev->reason != PRESENCE_LEAVE_NONE) {
        printf(" (%s)", presence_leave_reason_name(ev->reason));
    }
    printf(", on node %s: %zu clients, %zu users\n",
           ev->node_id[0] ? ev->node_id : "this one", ev->stats.num_clients,
           ev->stats.num_users);
    fflush(stdout);
}

static void on_log(presence_cluster_log_level level, const char *message,
                   void *user_data)
{
    (void)user_data;
    if (level >= PRESENCE_CLUSTER_LOG_INFO) {
        fprintf(stderr, "cluster: %s\n", message);
    }
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, presence_strerror(rc));
    return 1;
}

int main(int argc, char **argv)
{
    const char *host = argc > 1 ? argv[1] : "127.0.0.1";
    int port = argc > 2 ? atoi(argv[2]) : 6379;
    const char *channel = argc > 3 ? argv[3] : "lobby";
    const char *client = argc > 4 ? argv[4] : "client-1";
    const char *user = argc > 5 ? argv[5] : "";

    presence_config config;
    presence_config_init(&config);
    presence_registry *reg;
    int rc = presence_registry_new(&config, &reg);
    if (rc != PRESENCE_OK) {
        return fail("registry", rc);
    }
    presence_subscription sub;
    rc = presence_subscribe(reg, PRESENCE_SCOPE_CHANNEL, channel,
                            PRESENCE_EVENT_JOIN | PRESENCE_EVENT_LEAVE,
                            on_event, NULL, &sub);
    if (rc != PRESENCE_OK) {
        return fail("subscribe", rc);
    }

    presence_cluster_config cc;
    presence_cluster_config_init(&cc);
    cc.redis_host = host;
    cc.redis_port = port;
    cc.log = on_log;
    presence_cluster *cluster;
    rc = presence_cluster_new(reg, &cc, &cluster);
    if (rc != PRESENCE_OK) {
        return fail("cluster", rc);
    }
    fprintf(stderr, "node %s, Redis %s:%d; Ctrl-C to leave\n",
            presence_cluster_node_id(cluster), host, port);

    /* A join returns at once; the cluster writes it when it can. */
    rc = presence_join(reg, channel, client, user, NULL, 0, NULL, 0);
    if (rc != PRESENCE_OK) {
        return fail("join", rc);
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    while (!stop) {
        /* The loop an application already has: one more descriptor, one
         * more deadline. */
        struct pollfd p = {presence_cluster_fd(cluster), POLLIN, 0};
        int64_t timeout = presence_cluster_timeout_ms(cluster);
        poll(&p, 1, timeout < 0 || timeout > 1000 ? 1000 : (int)timeout);
        presence_cluster_process(cluster);
    }

    presence_disconnect(reg, client, NULL);
    presence_cluster_free(cluster); /* writes the leave, leaves the cluster */
    presence_registry_free(reg);
    return 0;
}
