/*
 * The API-sequence fuzzer's check of coalesced diffs: a naive model of
 * presence_subscribe_coalesced() fed with the reference model's events,
 * and the comparison of what presence_flush() delivers with the net diff
 * of the model's changes in each window.
 * SPDX-License-Identifier: MIT
 */
#ifndef PRESENCE_FUZZ_API_COALESCE_H
#define PRESENCE_FUZZ_API_COALESCE_H

#include "api_model.h"

/* A member's changes in the model's open window. */
typedef struct coalesce_model_member {
    bool touched;
    bool was_present;
    bool present;
    bool updated;
    int before_info; /* when its first change was a leave */
    int before_node;
    int info;
    int node;
    presence_leave_reason reason;
    int64_t time_ms;
} coalesce_model_member;

typedef struct coalesce_model_channel {
    bool pending;
    bool count_only_mode;
    bool window_count_only;
    bool from_empty;
    /* A seq skipped inside the window (a change with no client event):
     * the library must say resync. */
    bool gap;
    uint64_t from_seq;
    uint64_t seq;
    size_t num_clients;
    size_t num_users;
    int64_t first_ms;
    int64_t last_ms;
    int64_t due_ms;
    size_t joins, leaves, updates;
    coalesce_model_member m[MODEL_CLIENTS];
    int order[MODEL_CLIENTS]; /* clients by first change */
    int norder;
} coalesce_model_channel;

/* What a diff brought, converted to the model's indexes. */
typedef struct coalesce_got_member {
    presence_event_kind kind;
    presence_leave_reason reason;
    int client;
    int info;
    int node;
} coalesce_got_member;

typedef struct coalesce_got {
    int channel; /* -1: a scope-wide resync */
    unsigned flags;
    uint64_t from_epoch, from_seq, epoch, seq;
    size_t num_clients, num_users;
    size_t joined, left, updated;
    int64_t first_ms, last_ms;
    size_t count;
    coalesce_got_member members[MODEL_CLIENTS];
} coalesce_got;

typedef struct coalesce_check {
    presence_subscription sub;
    int64_t window_ms;
    size_t above, below;
    coalesce_model_channel ch[MODEL_CHANNELS];
    coalesce_got got[MODEL_CHANNELS + 1];
    size_t ngot;
    unsigned long bad; /* a diff broke its own rules */
} coalesce_check;

/* Subscribe the coalesced subscription (scope: every channel). */
void coalesce_check_start(coalesce_check *cc, presence_registry *reg);
/* Feed one step's model events (those the library delivered). */
void coalesce_check_feed(coalesce_check *cc, const model_event *events,
                         size_t n);
/* After a step: flush as op's bits say, and compare what came with the
 * model; epochs are the ones each channel's events last carried. Aborts
 * on a mismatch. */
void coalesce_check_step(coalesce_check *cc, presence_registry *reg,
                         uint8_t op, int64_t now_ms, const uint64_t *epochs);

#endif
