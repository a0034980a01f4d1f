/*
 * The shortest useful libpresence program, with every return code
 * checked: two connections open a handle each, with the server's own
 * connection object as the application pointer, and join a channel; the
 * program prints the join and leave events (finding the connection object
 * in the event, with no lookup), the members in place, and the change
 * results.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>

#include <presence.h>

/* What a server keeps per connection. */
struct conn {
    const char *name;
    presence_client *handle;
};

static void on_event(presence_registry *reg, const presence_event *ev,
                     void *user_data)
{
    (void)reg;
    (void)user_data;
    const struct conn *who = ev->client_app;
    printf("event %-10s channel=%s conn=%s user=%s seq=%llu "
           "(now %zu clients, %zu users)\n",
           presence_event_kind_name(ev->kind), ev->channel,
           who != NULL ? who->name : ev->client_id, ev->user_id,
           (unsigned long long)ev->seq, ev->stats.num_clients,
           ev->stats.num_users);
}

static void print_member(const presence_member *m, void *user_data)
{
    (void)user_data;
    const struct conn *who = m->app;
    printf("  %s: client=%s user=%s conn_info=%.*s\n", who->name,
           m->client_id, m->user_id, (int)m->conn_info_len,
           m->conn_info != NULL ? (const char *)m->conn_info : "");
}

static int check(int rc, const char *what)
{
    if (rc != PRESENCE_OK) {
        fprintf(stderr, "%s: %s\n", what, presence_strerror(rc));
    }
    return rc;
}

static int open_conn(presence_registry *reg, struct conn *c,
                     const char *client_id, const char *user_id,
                     const char *conn_info, size_t conn_info_len)
{
    presence_client_options o;
    presence_client_options_init(&o);
    o.client_id = client_id;
    o.user_id = user_id;
    o.conn_info = conn_info;
    o.conn_info_len = conn_info_len;
    o.app = c;
    return presence_client_open(reg, &o, &c->handle);
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
    struct conn alice = {"alice's laptop", NULL}, bob = {"bob's phone", NULL};
    if (rc == PRESENCE_OK) {
        rc = open_conn(reg, &alice, "c1", "alice", alice_info,
                       sizeof alice_info - 1);
    }
    if (rc == PRESENCE_OK) {
        rc = open_conn(reg, &bob, "c2", "bob", NULL, 0);
    }
    presence_change change;
    if (rc == PRESENCE_OK) {
        rc = presence_client_join(reg, alice.handle, "chat:lobby", NULL, 0,
                                  &change);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_client_join(reg, bob.handle, "chat:lobby", NULL, 0,
                                  &change);
    }
    if (rc == PRESENCE_OK) {
        printf("bob's join: %s, %zu clients, %zu users, epoch %016llx "
               "seq %llu\n",
               change.kind == PRESENCE_CHANGE_JOINED ? "joined" : "other",
               change.stats.num_clients, change.stats.num_users,
               (unsigned long long)change.stats.epoch,
               (unsigned long long)change.stats.seq);
        printf("presence of chat:lobby:\n");
        rc = presence_visit(reg, "chat:lobby", presence_trusted(), 0, 0,
                            print_member, NULL, NULL);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_client_close(reg, bob.handle, NULL);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_client_leave(reg, alice.handle, "chat:lobby", &change);
    }
    if (rc == PRESENCE_OK) {
        rc = presence_client_close(reg, alice.handle, NULL);
    }
    check(rc, "presence");
    presence_registry_free(reg);
    return rc == PRESENCE_OK ? 0 : 1;
}
