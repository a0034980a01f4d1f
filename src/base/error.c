/*
 * Error messages and names, and the names of event kinds and leave
 * reasons, generated from their X-macro lists in presence.h.
 * SPDX-License-Identifier: MIT
 */
#include "presence.h"

const char *presence_strerror(int error)
{
    switch (error) {
#define PRESENCE_ERROR_MESSAGE_(name, value, message)                          \
    case (value):                                                              \
        return (message);
        PRESENCE_ERROR_LIST(PRESENCE_ERROR_MESSAGE_)
#undef PRESENCE_ERROR_MESSAGE_
    default:
        return "unknown error";
    }
}

const char *presence_error_name(int error)
{
    switch (error) {
#define PRESENCE_ERROR_NAME_(name, value, message)                             \
    case (value):                                                              \
        return #name;
        PRESENCE_ERROR_LIST(PRESENCE_ERROR_NAME_)
#undef PRESENCE_ERROR_NAME_
    default:
        return "UNKNOWN";
    }
}

const char *presence_event_kind_name(presence_event_kind kind)
{
    switch (kind) {
#define PRESENCE_EVENT_KIND_NAME_(name, value, text)                           \
    case PRESENCE_EVENT_##name:                                                \
        return (text);
        PRESENCE_EVENT_KIND_LIST(PRESENCE_EVENT_KIND_NAME_)
#undef PRESENCE_EVENT_KIND_NAME_
    default:
        return "unknown";
    }
}

const char *presence_leave_reason_name(presence_leave_reason reason)
{
    switch (reason) {
#define PRESENCE_LEAVE_REASON_NAME_(name, value, text)                         \
    case PRESENCE_LEAVE_##name:                                                \
        return (text);
        PRESENCE_LEAVE_REASON_LIST(PRESENCE_LEAVE_REASON_NAME_)
#undef PRESENCE_LEAVE_REASON_NAME_
    default:
        return "unknown";
    }
}

const char *presence_version(void)
{
    return PRESENCE_VERSION_STRING;
}

uint32_t presence_version_number(void)
{
    return PRESENCE_VERSION_NUMBER;
}
