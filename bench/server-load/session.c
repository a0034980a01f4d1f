/*
 * A connection's session: the hello once the transport is open, the two
 * subscribes once connected, then replies, pushes and pings; and what a
 * session's end means for the figures and for the slot (open it again, or
 * give it up after LG_RETRIES failures in a row).
 * SPDX-License-Identifier: MIT
 */
#include "loadgen.h"
#include "token.h"

#include <stdio.h>
#include <string.h>

#define RETRY_DELAY_US 200000

/* Whether c's subscribes share its hello's frame. */
static bool pipelined(const lg_run *run, const lg_conn *c)
{
    return run->opt.proto->subscribe_with_hello && !run->opt.subscribe_after_connect &&
           !c->probe;
}

static bool send_hello(lg_run *run, lg_conn *c)
{
    char user[32];
    char token[512];
    if (c->probe) {
        snprintf(user, sizeof user, "probe%u", run->opt.shard);
    } else {
        snprintf(user, sizeof user, "u%u", c->index / 2);
    }
    token[0] = '\0';
    if (run->opt.secret[0] != '\0' &&
        !lg_token_mint(run->opt.secret, user, token, sizeof token)) {
        return false;
    }
    lg_buf text = {0};
    bool ok = run->opt.proto->hello(&text, user, token);
    if (ok && pipelined(run, c)) {
        c->group = LG_SUB_PENDING;
        c->lobby = LG_SUB_PENDING;
        c->subscribe_sent_us = lg_now_us();
        ok = lg_conn_append_request(run, c, LG_REQ_SUB_GROUP, 0, &text) &&
             lg_conn_append_request(run, c, LG_REQ_SUB_LOBBY, 0, &text);
    }
    ok = ok && lg_conn_send_text(run, c, &text);
    lg_buf_free(&text);
    return ok;
}

void lg_session_ended(lg_run *run, lg_conn *c, int fail_kind)
{
    int64_t now = lg_now_us();
    if (c->probe) {
        run->st.probe_failed += c->nreqs;
        lg_conn_finish(run, c);
        return;
    }
    bool may_reopen = run->phase < LG_PHASE_CLOSE;
    if (c->state == LG_READY) {
        run->st.server_closes++;
        c->reopen = may_reopen;
    } else if (c->state != LG_CLOSING) {
        uint64_t *fails = run->phase == LG_PHASE_RAMP ? run->st.ramp_fail : run->st.churn_fail;
        fails[fail_kind]++;
        c->retries++;
        c->reopen = may_reopen && c->retries <= LG_RETRIES;
        if (!c->reopen && may_reopen) {
            run->st.abandoned++;
        }
    }
    lg_model_leaving(run, c, now);
    lg_conn_finish(run, c);
    c->deadline_us = now + RETRY_DELAY_US;
}

static lg_request *take_request(lg_conn *c, uint32_t id, lg_request *out)
{
    for (uint8_t i = 0; i < c->nreqs; i++) {
        if (c->reqs[i].id == id) {
            *out = c->reqs[i];
            c->reqs[i] = c->reqs[--c->nreqs];
            return out;
        }
    }
    return NULL;
}

bool lg_session_wants_body(const lg_conn *c, uint32_t id)
{
    for (uint8_t i = 0; i < c->nreqs; i++) {
        if (c->reqs[i].id == id) {
            return c->reqs[i].kind != LG_REQ_PRESENCE; /* latency only */
        }
    }
    return true;
}

static void became_ready(lg_run *run, lg_conn *c, int64_t now)
{
    c->state = LG_READY;
    c->retries = 0;
    if (c->counted) {
        c->counted = false;
        run->in_flight--;
    }
    if (run->phase == LG_PHASE_RAMP) {
        run->st.ramp_ready++;
        lg_hist_add(&run->st.connect, now - c->started_us);
    } else {
        run->st.churn_reopened++;
    }
}

/* When the kernel received what c's last read returned (no later than
 * now: the generator read it by then). */
static int64_t arrived_at(const lg_conn *c, int64_t now)
{
    return c->arrived_us != 0 && c->arrived_us < now ? c->arrived_us : now;
}

static void on_reply(lg_run *run, lg_conn *c, const lg_msg *msg, int64_t now)
{
    lg_request r;
    if (take_request(c, msg->id, &r) == NULL) {
        run->st.bad_messages++;
        return;
    }
    switch (r.kind) {
    case LG_REQ_SUB_GROUP:
    case LG_REQ_SUB_LOBBY:
        if (!msg->ok) {
            lg_session_ended(run, c, LG_FAIL_REFUSED);
            return;
        }
        if (r.kind == LG_REQ_SUB_GROUP) {
            c->group = LG_SUB_ACTIVE;
            c->group_active_us = now;
            lg_model_subscribed(run, c, now, arrived_at(c, now));
        } else {
            c->lobby = LG_SUB_ACTIVE;
        }
        if (c->group == LG_SUB_ACTIVE && c->lobby == LG_SUB_ACTIVE &&
            c->state == LG_SUBSCRIBING) {
            became_ready(run, c, now);
        }
        break;
    case LG_REQ_PRESENCE:
    case LG_REQ_STATS:
        run->st.calls_answered++;
        if (!msg->ok || (r.kind == LG_REQ_PRESENCE ? msg->presence == NULL && !msg->body_skipped
                                                    : msg->num_clients < 0)) {
            run->st.call_errors++;
        }
        lg_hist_add(r.kind == LG_REQ_PRESENCE ? &run->st.presence : &run->st.presence_stats,
                    now - r.sent_us);
        lg_hist_add(r.kind == LG_REQ_PRESENCE ? &run->st.presence_arrival
                                              : &run->st.presence_stats_arrival,
                    arrived_at(c, now) - r.sent_us);
        break;
    case LG_REQ_CHECK_GROUP:
    case LG_REQ_CHECK_LOBBY:
        if (!msg->ok || msg->presence == NULL) {
            run->st.call_errors++;
            break;
        }
        lg_model_check_reply(run, c, r.kind == LG_REQ_CHECK_LOBBY, msg->presence);
        break;
    case LG_REQ_PROBE:
        if (!msg->ok || msg->num_clients < 0) {
            run->st.probe_failed++;
        } else if (msg->num_clients != 0) {
            run->st.probe_nonzero++;
        }
        break;
    default:
        break;
    }
}

static void on_connected(lg_run *run, lg_conn *c, const lg_msg *msg, int64_t now)
{
    if (c->state != LG_HELLO || strlen(msg->client) >= LG_CLIENT_MAX) {
        lg_session_ended(run, c, LG_FAIL_REFUSED);
        return;
    }
    strcpy(c->client, msg->client);
    if (c->probe) {
        c->state = LG_READY;
        if (c->counted) {
            c->counted = false;
            run->in_flight--;
        }
        return;
    }
    c->state = LG_SUBSCRIBING;
    if (pipelined(run, c)) {
        lg_model_subscribing(run, c, now); /* sent with the hello */
        return;
    }
    c->group = LG_SUB_PENDING;
    c->lobby = LG_SUB_PENDING;
    c->subscribe_sent_us = now;
    lg_model_subscribing(run, c, now);
    static const lg_req_kind both[] = {LG_REQ_SUB_GROUP, LG_REQ_SUB_LOBBY};
    if (!lg_conn_request_all(run, c, both, 2)) {
        lg_session_ended(run, c, LG_FAIL_CLOSED);
    }
}

static bool in_lobby_channel(const char *channel)
{
    return strncmp(channel, "lobby:", 6) == 0;
}

void lg_session_message(lg_run *run, lg_conn *c, const lg_msg *msg)
{
    int64_t now = lg_now_us();
    if (c->state == LG_CLOSING) {
        return; /* gone from the model already: only the close counts */
    }
    switch (msg->kind) {
    case LG_MSG_OPEN:
        if (c->state == LG_UPGRADING || c->state == LG_OPENING) {
            c->state = LG_HELLO;
            if (!send_hello(run, c)) {
                lg_session_ended(run, c, LG_FAIL_HANDSHAKE);
            }
        }
        break;
    case LG_MSG_CONNECTED:
        on_connected(run, c, msg, now);
        break;
    case LG_MSG_REPLY:
        if (c->state == LG_HELLO) { /* an error answer to the hello */
            lg_session_ended(run, c, LG_FAIL_REFUSED);
            break;
        }
        on_reply(run, c, msg, now);
        break;
    case LG_MSG_PUSH:
        run->st.pushes++;
        if (in_lobby_channel(msg->channel)) {
            run->st.pushes_ignored++;
        } else {
            lg_model_push(run, c, msg, now, arrived_at(c, now));
        }
        break;
    case LG_MSG_PING: {
        lg_buf text = {0};
        if (run->opt.proto->pong(&text)) {
            lg_conn_send_text(run, c, &text);
        }
        lg_buf_free(&text);
        break;
    }
    case LG_MSG_DISCONNECT:
        lg_session_ended(run, c, LG_FAIL_CLOSED);
        break;
    case LG_MSG_BAD:
    default:
        run->st.bad_messages++;
        break;
    }
}
