/*
 * The server without sockets: see testing.h.
 * SPDX-License-Identifier: MIT
 */
#include "testing.h"

#include "conn.h"
#include "hub.h"
#include "session.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The frame writer: a peer collects what it is sent. */
static int fake_write(void *transport, int opcode, const char *data, size_t len)
{
    ps_test_peer *peer = transport;
    if (peer->count == peer->cap) {
        size_t cap = peer->cap ? peer->cap * 2 : 16;
        ps_test_frame *grown = realloc(peer->frames, cap * sizeof *grown);
        if (grown == NULL) {
            abort(); /* the harness's own memory: nothing to test here */
        }
        peer->frames = grown;
        peer->cap = cap;
    }
    ps_test_frame *f = &peer->frames[peer->count++];
    f->opcode = opcode;
    f->len = len;
    f->data = malloc(len + 1);
    if (f->data == NULL) {
        abort();
    }
    if (len > 0) {
        memcpy(f->data, data, len);
    }
    f->data[len] = '\0';
    if (opcode == PS_WS_CLOSE && peer->close_code == 0) {
        const unsigned char *p = (const unsigned char *)data;
        peer->close_code = len >= 2 ? (p[0] << 8) | p[1] : 1005;
        size_t rlen = len > 2 ? len - 2 : 0;
        if (rlen >= sizeof peer->close_reason) {
            rlen = sizeof peer->close_reason - 1;
        }
        if (rlen > 0) {
            memcpy(peer->close_reason, data + 2, rlen);
        }
        peer->close_reason[rlen] = '\0';
    }
    return (int)(len < 1000000 ? len : 1000000) + 1;
}

int ps_test_server_init(ps_test_server *t, const char *config_json, char *err,
                        size_t err_len)
{
    memset(t, 0, sizeof *t);
    if (ps_config_load_buffer(&t->cfg, config_json, strlen(config_json), err,
                              err_len) != 0) {
        return -1;
    }
    if (ps_server_init(&t->server, &t->cfg, fake_write, err, err_len) != 0) {
        ps_config_free(&t->cfg);
        return -1;
    }
    return 0;
}

void ps_test_server_fini(ps_test_server *t)
{
    ps_server_fini(&t->server);
    ps_config_free(&t->cfg);
}

ps_test_peer *ps_test_peer_open(ps_test_server *t)
{
    ps_test_peer *peer = calloc(1, sizeof *peer);
    if (peer == NULL) {
        abort();
    }
    peer->conn = ps_conn_new(&t->server, peer);
    if (peer->conn == NULL) {
        peer->closed = true;
        return peer;
    }
    ps_session_open(peer->conn);
    ps_writer_drain(&t->server.writer);
    return peer;
}

void ps_test_peer_drop(ps_test_server *t, ps_test_peer *peer)
{
    if (peer->conn == NULL) {
        return;
    }
    ps_conn *conn = peer->conn;
    peer->was_connected = conn->connected;
    memcpy(peer->client_id, conn->client_id, sizeof peer->client_id);
    peer->conn = NULL;
    peer->closed = true;
    ps_session_closed(conn);
    ps_writer_drain(&t->server.writer);
}

bool ps_test_peer_frame(ps_test_server *t, ps_test_peer *peer, int opcode,
                        bool fin, const void *data, size_t len)
{
    if (peer->conn == NULL) {
        return false;
    }
    bool keep = ps_session_frame(peer->conn, opcode, fin, data, len);
    ps_writer_drain(&t->server.writer);
    if (!keep) {
        ps_test_peer_drop(t, peer);
    }
    return keep;
}

bool ps_test_peer_send(ps_test_server *t, ps_test_peer *peer, const char *text)
{
    return ps_test_peer_frame(t, peer, PS_WS_TEXT, true, text, strlen(text));
}

void ps_test_peer_answer_close(ps_test_server *t, ps_test_peer *peer)
{
    if (peer->conn != NULL && peer->close_code != 0) {
        unsigned char echo[2] = {(unsigned char)(peer->close_code >> 8),
                                 (unsigned char)(peer->close_code & 0xff)};
        ps_test_peer_frame(t, peer, PS_WS_CLOSE, true, echo, sizeof echo);
    }
}

void ps_test_peer_clear(ps_test_peer *peer)
{
    for (size_t i = 0; i < peer->count; i++) {
        free(peer->frames[i].data);
    }
    peer->count = 0;
}

void ps_test_peer_free(ps_test_server *t, ps_test_peer *peer)
{
    if (peer == NULL) {
        return;
    }
    ps_test_peer_drop(t, peer);
    ps_test_peer_clear(peer);
    free(peer->frames);
    free(peer);
}

/* The registry's channels of a client: a snapshot, or NULL if none. */
static presence_snapshot *registry_channels(ps_test_server *t,
                                            const char *client_id, int *rc)
{
    presence_snapshot *snap = NULL;
    *rc = presence_client_channels(t->server.registry, client_id, &snap);
    if (*rc == PRESENCE_ERR_NOT_FOUND) {
        *rc = PRESENCE_OK;
        return NULL;
    }
    return snap;
}

static bool snapshot_has(const presence_snapshot *snap, const char *channel)
{
    for (size_t i = 0; snap != NULL && i < snap->count; i++) {
        if (strcmp(snap->members[i].channel, channel) == 0) {
            return true;
        }
    }
    return false;
}

/* One open, connected peer: hub (presence namespaces) == registry. */
static int check_open(ps_test_server *t, ps_conn *conn, size_t *memberships,
                      size_t *subs, char *why, size_t why_len)
{
    int rc = PRESENCE_OK;
    presence_snapshot *snap = registry_channels(t, conn->client_id, &rc);
    if (rc != PRESENCE_OK) {
        return ps_fail(why, why_len, "client_channels(%s): %s", conn->client_id,
                      presence_strerror(rc));
    }
    size_t in_presence = 0;
    int result = 0;
    ps_hub *hub = &t->server.hub;
    pthread_mutex_lock(&hub->lock);
    ps_sub *sub;
    ps_sub *tmp;
    HASH_ITER(hh, conn->subs, sub, tmp) {
        (*subs)++;
        const ps_channel_options *o = ps_config_channel(&t->cfg, sub->channel);
        if (sub->pending && result == 0) {
            result = ps_fail(why, why_len, "%s: subscription to %s still pending",
                            conn->client_id, sub->channel);
        }
        if (o == NULL || !o->presence) {
            continue;
        }
        in_presence++;
        if (!snapshot_has(snap, sub->channel) && result == 0) {
            result = ps_fail(why, why_len,
                            "%s: subscribed to %s but not in its presence "
                            "(lost membership)",
                            conn->client_id, sub->channel);
        }
    }
    pthread_mutex_unlock(&hub->lock);
    size_t in_registry = snap ? snap->count : 0;
    if (result == 0 && in_registry != in_presence) {
        result = ps_fail(why, why_len,
                        "%s: in %zu channels of the registry but subscribed to "
                        "%zu with presence (ghost membership)",
                        conn->client_id, in_registry, in_presence);
    }
    *memberships += in_registry;
    presence_snapshot_free(snap);
    return result;
}

int ps_test_check(ps_test_server *t, ps_test_peer *const *peers, size_t count,
                  char *why, size_t why_len)
{
    size_t memberships = 0;
    size_t subs = 0;
    for (size_t i = 0; i < count; i++) {
        const ps_test_peer *p = peers[i];
        if (p == NULL) {
            continue;
        }
        if (p->conn != NULL && p->conn->connected) {
            if (check_open(t, p->conn, &memberships, &subs, why, why_len) != 0) {
                return -1;
            }
        } else if (p->conn != NULL) {
            if (p->conn->sub_count != 0) {
                return ps_fail(why, why_len, "a peer that never connected has "
                                            "subscriptions");
            }
        } else if (p->was_connected) {
            int rc = PRESENCE_OK;
            presence_snapshot *snap = registry_channels(t, p->client_id, &rc);
            /* Members in leave grace stay on purpose, until the grace ends
             * or the user comes back. */
            size_t n = 0;
            for (size_t j = 0; snap != NULL && j < snap->count; j++) {
                if (snap->members[j].in_grace) {
                    memberships++;
                } else {
                    n++;
                }
            }
            presence_snapshot_free(snap);
            if (rc != PRESENCE_OK || n != 0) {
                return ps_fail(why, why_len,
                              "%s: closed but still in %zu channels (ghost)",
                              p->client_id, n);
            }
        }
    }
    presence_counts counts;
    int rc = presence_registry_counts(t->server.registry, &counts);
    if (rc != PRESENCE_OK || counts.memberships != memberships) {
        return ps_fail(why, why_len,
                      "the registry holds %zu memberships, the peers %zu",
                      counts.memberships, memberships);
    }
    size_t hub_subs = 0;
    ps_hub *hub = &t->server.hub;
    pthread_mutex_lock(&hub->lock);
    for (ps_hub_channel *ch = hub->channels; ch != NULL; ch = ch->hh.next) {
        if (ch->subs == NULL) {
            pthread_mutex_unlock(&hub->lock);
            return ps_fail(why, why_len, "hub channel %s without subscribers",
                          ch->name);
        }
        for (ps_sub *s = ch->subs; s != NULL; s = s->chan_next) {
            hub_subs++;
        }
    }
    pthread_mutex_unlock(&hub->lock);
    if (hub_subs != subs) {
        return ps_fail(why, why_len,
                      "the hub holds %zu subscriptions, the open peers %zu",
                      hub_subs, subs);
    }
    return 0;
}
