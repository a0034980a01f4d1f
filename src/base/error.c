/*
 * Error messages and names, generated from PRESENCE_ERROR_LIST.
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

const char *presence_version(void)
{
    return PRESENCE_VERSION_STRING;
}

uint32_t presence_version_number(void)
{
    return PRESENCE_VERSION_NUMBER;
}
