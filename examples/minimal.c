/*
 * The shortest useful libpresence program: two users join a channel, the
 * program prints the join and leave events, the channel's presence and its
 * stats.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

#include <presence.h>

static void on_event(presence_registry *reg, const presence_event *ev,
                     void *user_data)
{
    (void)reg;
    (void)user_data;
    printf("event #%llu %-10s channel=%s client=%s user=%s "
           "(now %zu clients, %zu users)\n",
           (unsigned long long)ev->seq, presence_event_kind_name(ev->kind), ev->channel,
           ev->client_id, ev->user_id, ev->stats.num_clients,
           ev->stats.num_users);
}

static int check(int rc, const char *what)
{
    if (rc != PRESENCE_OK) {
        fprintf(stderr, "%s: %s\n", what, presence_strerror(rc));
    }
    return rc;
}

int main(void)
{
    presence_registry *reg;
    if (check(presence_registry_new(NULL, &reg), "registry") != PRESENCE_OK) {
        return 1;
    }
    presence_namespace_options chat;
    presence_namespace_options_init(&chat);
    presence_subscription sub;
    int rc = presence_namespace_set(reg, "chat", &chat);
    if (rc == PRESENCE_OK) {
        rc = presence_subscribe(reg, PRESENCE_SCOPE_ALL, NULL,
                                PRESENCE_EVENTS_ALL, on_event, NULL, &sub);
    }
    static const char alice_info[] = "{\"name\":\"Alice\"}";
    if (rc == PRESENCE_OK) {
        rc = presence_join(reg, "chat:lobby", "c1", "alice", alice_info,
                           sizeof alice_info - 1, NULL, 0);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_join(reg, "chat:lobby", "c2", "bob", NULL, 0, NULL, 0);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_join(reg, "chat:lobby", "c3", "bob", NULL, 0, NULL, 0);
    }
    presence_snapshot *snap = NULL;
    if (rc == PRESENCE_OK) {
        rc = presence_query(reg, "chat:lobby", presence_trusted(), &snap);
    }
    if (rc == PRESENCE_OK) {
        printf("presence of chat:lobby (seq %llu):\n",
               (unsigned long long)snap->seq);
        for (size_t i = 0; i < snap->count; i++) {
            const presence_member *m = &snap->members[i];
            printf("  client=%s user=%s conn_info=%.*s\n", m->client_id,
                   m->user_id, (int)m->conn_info_len,
                   m->conn_info != NULL ? (const char *)m->conn_info : "");
        }
        presence_snapshot_free(snap);
        presence_channel_stats stats;
        rc = presence_stats(reg, "chat:lobby", presence_trusted(), &stats);
        if (rc == PRESENCE_OK) {
            printf("stats: %zu clients, %zu users\n", stats.num_clients,
                   stats.num_users);
        }
    }
    if (rc == PRESENCE_OK) {
        rc = presence_disconnect(reg, "c2", NULL);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_leave(reg, "chat:lobby", "c3");
    }
    check(rc, "presence");
    presence_registry_free(reg);
    return rc == PRESENCE_OK ? 0 : 1;
}
