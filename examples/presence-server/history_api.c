/*
 * The presence_changes API method (see history_api.h).
 * SPDX-License-Identifier: MIT
 */
#include "history_api.h"

#include "wire.h"

#include <errno.h>
#include <inttypes.h>
#include <presence.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Epochs are 64 random bits: a string, which JavaScript reads exactly. */
static json_t *epoch_string(uint64_t epoch)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRIu64, epoch);
    return json_string(text);
}

/* A decimal uint64 and nothing else. */
static bool epoch_parse(const char *text, uint64_t *out)
{
    if (*text < '0' || *text > '9' || strlen(text) > 20) {
        return false;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0' || errno != 0) {
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

static const char *change_type(presence_event_kind kind)
{
    return kind == PRESENCE_EVENT_JOIN    ? "join"
           : kind == PRESENCE_EVENT_LEAVE ? "leave"
                                          : "update";
}

static json_t *change_json(const presence_history_entry *e)
{
    const presence_member *m = &e->member;
    json_t *info =
        ps_wire_client_info(m->user_id, m->client_id, m->conn_info,
                            m->conn_info_len, m->chan_info, m->chan_info_len);
    json_t *change = info == NULL ? NULL
                                  : json_pack("{s:s,s:I,s:I,s:o}", "type",
                                              change_type(e->kind), "offset",
                                              (json_int_t)e->seq, "time",
                                              (json_int_t)e->time_ms, "info",
                                              info);
    if (change != NULL && e->kind == PRESENCE_EVENT_LEAVE &&
        json_object_set_new(change, "reason",
                            json_string(presence_leave_reason_name(
                                e->reason))) != 0) {
        json_decref(change);
        change = NULL;
    }
    return change;
}

/* {"recovered":B,"epoch":E,"offset":N, key:value}; value is stolen. */
static json_t *result_json(bool recovered, const presence_channel_stats *st,
                           const char *key, json_t *value)
{
    json_t *epoch = epoch_string(st->epoch);
    if (value == NULL || epoch == NULL) {
        json_decref(value);
        json_decref(epoch);
        return NULL;
    }
    return json_pack("{s:b,s:o,s:I,s:o}", "recovered", recovered, "epoch",
                     epoch, "offset", (json_int_t)st->seq, key, value);
}

static json_t *changes_result(const presence_history *h)
{
    json_t *list = json_array();
    for (size_t i = 0; list != NULL && i < h->count; i++) {
        if (json_array_append_new(list, change_json(&h->entries[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    return result_json(true, &h->stats, "changes", list);
}

static json_t *presence_result(ps_server *server, const char *channel,
                               int *error_code)
{
    presence_snapshot *snap = NULL;
    int rc = presence_query(server->registry, channel, presence_trusted(),
                            &snap);
    if (rc != PRESENCE_OK) {
        *error_code = ps_wire_code_from_presence(rc);
        return NULL;
    }
    json_t *result =
        result_json(false, &snap->stats, "presence", ps_wire_presence(snap));
    presence_snapshot_free(snap);
    return result;
}

json_t *ps_history_api_changes(ps_server *server, json_t *params,
                               int *error_code)
{
    *error_code = PS_ERR_BAD_REQUEST;
    json_t *channel = json_object_get(params, "channel");
    json_t *epoch = json_object_get(params, "epoch");
    json_t *offset = json_object_get(params, "offset");
    uint64_t since_epoch = 0;
    if (!json_is_object(params) || !json_is_string(channel) ||
        *json_string_value(channel) == '\0' ||
        (epoch != NULL && (!json_is_string(epoch) ||
                           !epoch_parse(json_string_value(epoch),
                                        &since_epoch))) ||
        (offset != NULL &&
         (!json_is_integer(offset) || json_integer_value(offset) < 0))) {
        return NULL;
    }
    const char *name = json_string_value(channel);
    json_t *result = NULL;
    *error_code = PS_ERR_INTERNAL;
    if (epoch != NULL) {
        presence_history *h = NULL;
        uint64_t since_seq =
            offset != NULL ? (uint64_t)json_integer_value(offset) : 0;
        int rc = presence_changes_since(server->registry, name,
                                        presence_trusted(), since_epoch,
                                        since_seq, &h);
        if (rc == PRESENCE_OK) {
            result = changes_result(h);
            presence_history_free(h);
            return result;
        }
        if (rc != PRESENCE_ERR_SNAPSHOT_NEEDED) {
            *error_code = ps_wire_code_from_presence(rc);
            return NULL;
        }
    }
    return presence_result(server, name, error_code);
}
