/*
 * What the members of a group must hear. When a member subscribes, every
 * member already subscribed (answered) must get exactly one join push
 * about it; when it goes, every subscribed member must get exactly one
 * leave. Where the order at the server cannot be known from here (both
 * subscribes in flight, a subscribe racing a close) a push may come or
 * not, but never twice; with several servers, a member that joined on
 * another server just before may be announced to the newcomer as well.
 * A member's subscribes may leave with its hello, before its client id is
 * known here: "sent before" then means before that frame left, and a push
 * about it read before its hello answer waits (early) until the answer
 * names it. Pushes about no one expected are "unexpected".
 * Groups are whole in one generator process (shards split on lobby
 * boundaries), so all members are in run->conns.
 * SPDX-License-Identifier: MIT
 */
#include "loadgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A required push not heard after this long, from a member that then
 * leaves, is lost rather than merely cut short by its leaving. */
#define LATE_US (5 * 1000000LL)
/* A client closed this recently may still be in the group at the server. */
#define RECENT_US (3 * 1000000LL)

static lg_conn *member(lg_run *run, uint32_t group, uint32_t k)
{
    uint64_t global = (uint64_t)group * run->opt.group_size + k;
    if (global < run->first || global >= (uint64_t)run->first + run->count) {
        return NULL;
    }
    return &run->conns[global - run->first];
}

/* Whether two connections talk to the same server (--port given once per
 * server; connections take them round-robin). Servers that share presence
 * through Redis see each other's changes a little later than their own. */
static bool same_server(const lg_run *run, const lg_conn *a, const lg_conn *b)
{
    return a->index % run->opt.nports == b->index % run->opt.nports;
}

static uint32_t group_of(const lg_run *run, const lg_conn *c)
{
    return c->index / run->opt.group_size;
}

static lg_expect *find(lg_conn *m, const char *client, bool join)
{
    for (uint32_t i = 0; i < m->nexpects; i++) {
        lg_expect *e = &m->expects[i];
        if (e->join == join && strcmp(e->client, client) == 0) {
            return e;
        }
    }
    return NULL;
}

/* A new zeroed entry at the end of *list. */
static lg_expect *append(lg_expect **list, uint32_t *n, uint32_t *cap)
{
    if (*n == *cap) {
        uint32_t grown_cap = *cap ? *cap * 2 : 16;
        lg_expect *grown = realloc(*list, grown_cap * sizeof *grown);
        if (grown == NULL) {
            fprintf(stderr, "server-load: out of memory\n");
            exit(2);
        }
        *list = grown;
        *cap = grown_cap;
    }
    lg_expect *e = &(*list)[(*n)++];
    memset(e, 0, sizeof *e);
    return e;
}

static void expect(lg_conn *m, const char *client, bool join, bool required, int64_t now)
{
    if (client[0] == '\0') {
        return;
    }
    lg_expect *e = find(m, client, join);
    if (e != NULL) {
        e->required |= required;
        return;
    }
    e = append(&m->expects, &m->nexpects, &m->capexpects);
    strcpy(e->client, client);
    e->join = join;
    e->required = required;
    e->created_us = now;
}

static void unexpected(lg_run *run, const lg_conn *c, const char *client, bool join)
{
    run->st.unexpected++;
    if (getenv("LG_DEBUG") != NULL && run->st.unexpected <= 10) {
        fprintf(stderr, "server-load: unexpected %s about %s at #%u (%s)\n",
                join ? "join" : "leave", client, c->index, c->client);
    }
}

/* Push about e's client heard at @p at. */
static void heard(lg_run *run, lg_expect *e, bool join, int64_t at,
                  int64_t arrived)
{
    e->count++;
    if (e->count > 1) {
        run->st.dup++;
        return;
    }
    if (e->required) {
        run->st.expected++;
    }
    e->push_us = at;
    e->push_arrived_us = arrived;
    if (join && e->reply_us != 0) {
        lg_hist_add(&run->st.join_delay, at - e->reply_us);
        lg_hist_add(&run->st.join_delay_arrival, arrived - e->reply_arrived_us);
    }
}

enum early_young {
    YOUNG_KEPT,     /* still waiting for their subject's hello answer */
    YOUNG_DROPPED,  /* m leaves: they cannot be judged any more */
    YOUNG_COUNTED,  /* the end: every answer has been read */
};

/* Early pushes of m not claimed within LATE_US were about no one:
 * unexpected. The younger ones as @p young says. */
static void expire_early(lg_run *run, lg_conn *m, int64_t now, enum early_young young)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < m->nearly; i++) {
        bool old = now - m->early[i].push_us > LATE_US;
        if (old || young == YOUNG_COUNTED) {
            unexpected(run, m, m->early[i].client, m->early[i].join);
        } else if (young == YOUNG_KEPT) {
            m->early[kept++] = m->early[i];
        }
    }
    m->nearly = kept;
}

/* m's early pushes about @p client: heard now that the model expects them. */
static void claim_early(lg_run *run, lg_conn *m, const char *client)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < m->nearly; i++) {
        lg_expect *p = &m->early[i];
        lg_expect *e = strcmp(p->client, client) == 0 ? find(m, client, p->join) : NULL;
        if (e != NULL) {
            heard(run, e, p->join, p->push_us, p->push_arrived_us);
        } else {
            m->early[kept++] = *p;
        }
    }
    m->nearly = kept;
}

/*
 * Called once c's client id is known, with its subscribes sent at
 * c->subscribe_sent_us: with the hello's answer when they went with the
 * hello, so that pushes about c may have been read before (early).
 */
void lg_model_subscribing(lg_run *run, lg_conn *c, int64_t now)
{
    uint32_t g = group_of(run, c);
    /* This slot's previous session may leave only now at the server (a
     * dropped socket is noticed when it is noticed): its leave may come. */
    if (c->prev_client[0] != '\0' && now - c->prev_closed_us < RECENT_US) {
        expect(c, c->prev_client, false, false, now);
    }
    for (uint32_t k = 0; k < run->opt.group_size; k++) {
        lg_conn *m = member(run, g, k);
        if (m == NULL || m == c) {
            continue;
        }
        if (m->group == LG_SUB_ACTIVE && m->group_active_us <= c->subscribe_sent_us) {
            /* m was answered before c's subscribe left: the server took
             * m's first, and m must hear c. */
            expect(m, c->client, true, true, now);
            if (!same_server(run, m, c)) {
                /* m's join may reach c's server only after c subscribed
                 * there: c then hears it, rightly, since c's server did
                 * not yet count m. */
                expect(c, m->client, true, false, now);
            }
        } else if (m->group != LG_SUB_NONE) {
            /* Both in flight at once: whichever subscribe the server takes
             * second hears the other. (An m whose id is not known yet
             * adds its half when it is.) */
            expect(m, c->client, true, false, now);
            expect(c, m->client, true, false, now);
        }
        claim_early(run, m, c->client);
        if (m->prev_client[0] != '\0' && now - m->prev_closed_us < RECENT_US) {
            expect(c, m->prev_client, false, false, now);
        }
    }
}

void lg_model_subscribed(lg_run *run, lg_conn *c, int64_t now, int64_t arrived)
{
    if (run->phase != LG_PHASE_CHURN) {
        return; /* the workload times the churn's join pushes only */
    }
    uint32_t g = group_of(run, c);
    for (uint32_t k = 0; k < run->opt.group_size; k++) {
        lg_conn *m = member(run, g, k);
        if (m == NULL || m == c) {
            continue;
        }
        lg_expect *e = find(m, c->client, true);
        if (e == NULL) {
            continue;
        }
        e->reply_us = now;
        e->reply_arrived_us = arrived;
        if (e->push_us != 0) { /* the push was read first: no delay seen */
            lg_hist_add(&run->st.join_delay, e->push_us - now);
            lg_hist_add(&run->st.join_delay_arrival, e->push_arrived_us - arrived);
        }
    }
}

void lg_model_forget(lg_run *run, lg_conn *c, int64_t now)
{
    expire_early(run, c, now, YOUNG_DROPPED);
    for (uint32_t i = 0; i < c->nexpects; i++) {
        lg_expect *e = &c->expects[i];
        if (e->required && e->count == 0 && now - e->created_us > LATE_US) {
            run->st.lost++;
            run->st.expected++;
        }
    }
    c->nexpects = 0;
}

void lg_model_leaving(lg_run *run, lg_conn *c, int64_t now)
{
    if (c->group != LG_SUB_NONE && c->client[0] != '\0') {
        uint32_t g = group_of(run, c);
        for (uint32_t k = 0; k < run->opt.group_size; k++) {
            lg_conn *m = member(run, g, k);
            if (m == NULL || m == c) {
                continue;
            }
            if (c->group == LG_SUB_PENDING) {
                /* Its subscribe may never have been taken (a refusal, a
                 * reset that discarded it): its join is not owed. */
                lg_expect *j = find(m, c->client, true);
                if (j != NULL) {
                    j->required = 0;
                }
            }
            if (m->group == LG_SUB_ACTIVE) {
                expect(m, c->client, false, c->group == LG_SUB_ACTIVE, now);
            } else if (m->group == LG_SUB_PENDING) {
                expect(m, c->client, false, false, now);
            }
        }
    }
    if (c->client[0] != '\0') {
        strcpy(c->prev_client, c->client);
        c->prev_closed_us = now;
    }
    c->client[0] = '\0';
    c->group = LG_SUB_NONE;
    c->lobby = LG_SUB_NONE;
    lg_model_forget(run, c, now);
}

void lg_model_push(lg_run *run, lg_conn *c, const lg_msg *msg, int64_t now,
                   int64_t arrived)
{
    if (strcmp(msg->client, c->client) == 0) {
        return; /* about itself */
    }
    lg_expect *e = find(c, msg->client, msg->join);
    if (e != NULL) {
        heard(run, e, msg->join, now, arrived);
        return;
    }
    /* Perhaps about a member whose hello answer is not read yet: kept
     * until it is, or counted unexpected after LATE_US. */
    expire_early(run, c, now, YOUNG_KEPT);
    lg_expect *p = append(&c->early, &c->nearly, &c->capearly);
    snprintf(p->client, sizeof p->client, "%s", msg->client);
    p->join = msg->join;
    p->push_us = now;
    p->push_arrived_us = arrived;
}

void lg_model_finish(lg_run *run)
{
    for (uint32_t i = 0; i < run->count; i++) {
        lg_conn *c = &run->conns[i];
        expire_early(run, c, lg_now_us(), YOUNG_COUNTED);
        for (uint32_t j = 0; j < c->nexpects; j++) {
            lg_expect *e = &c->expects[j];
            if (e->required && e->count == 0) {
                run->st.lost++;
                run->st.expected++;
                e->required = 0; /* counted once */
            }
        }
    }
}

/* The presence of c's group or lobby against the members answered. */
void lg_model_check_reply(lg_run *run, lg_conn *c, bool lobby, json_t *presence)
{
    uint32_t size = lobby ? run->opt.lobby_size : run->opt.group_size;
    uint64_t start = (uint64_t)(c->index / size) * size;
    uint64_t found = 0;
    for (uint64_t i = start; i < start + size; i++) {
        if (i < run->first || i >= (uint64_t)run->first + run->count) {
            continue;
        }
        const lg_conn *m = &run->conns[i - run->first];
        uint8_t sub = lobby ? m->lobby : m->group;
        if (sub != LG_SUB_ACTIVE) {
            continue;
        }
        if (json_object_get(presence, m->client) != NULL) {
            found++;
        } else {
            run->st.missing++;
        }
    }
    run->st.ghosts += json_object_size(presence) - found;
    if (lobby) {
        run->st.lobbies_checked++;
    } else {
        run->st.groups_checked++;
    }
}
