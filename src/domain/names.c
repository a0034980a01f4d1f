/*
 * Name rules: what a channel name, client id, user id and namespace name
 * may contain, and which namespace a channel belongs to; the registry's
 * checks and the public presence_name_check and presence_channel_split
 * share them.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"

/* A scan's outcome as the registry's error, and the length on success. */
static int scan_outcome(int scanned, size_t n, bool allow_empty, size_t *len)
{
    if (scanned != 0) {
        return scanned == -1 ? PRESENCE_ERR_BAD_NAME : PRESENCE_ERR_TOO_LONG;
    }
    if (n == 0 && !allow_empty) {
        return PRESENCE_ERR_BAD_NAME;
    }
    *len = n;
    return PRESENCE_OK;
}

/* Records keep name lengths in 32 bits. */
static size_t scan_limit(size_t max)
{
    return max > UINT32_MAX ? UINT32_MAX : max;
}

int presence__check_name(const char *name, size_t max, bool allow_empty,
                         size_t *len)
{
    if (name == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t n = 0;
    int scanned = presence__scan_length(name, scan_limit(max), &n);
    return scan_outcome(scanned, n, allow_empty, len);
}

int presence__check_hash_name(const presence_registry *reg, const char *name,
                              size_t max, bool allow_empty, size_t *len,
                              uint64_t *hash)
{
    if (name == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t n = 0;
    int scanned = presence__scan_name(reg->seed, name, scan_limit(max), &n,
                                      hash);
    return scan_outcome(scanned, n, allow_empty, len);
}

static bool namespace_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* Centrifugo's rule: ^[-a-zA-Z0-9_.]{2,}$; "" names the default. */
static int check_namespace_name(const char *name, size_t max, size_t *len)
{
    if (name == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    if (max > PRESENCE_NAMESPACE_NAME_MAX) {
        max = PRESENCE_NAMESPACE_NAME_MAX;
    }
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        if (!namespace_char(name[n])) {
            return PRESENCE_ERR_BAD_NAME;
        }
        if (n >= max) {
            return PRESENCE_ERR_TOO_LONG;
        }
    }
    if (n == 1) {
        return PRESENCE_ERR_BAD_NAME;
    }
    *len = n;
    return PRESENCE_OK;
}

int presence__check_namespace_name(const char *name, size_t *len)
{
    return check_namespace_name(name, PRESENCE_NAMESPACE_NAME_MAX, len);
}

int presence_name_check(presence_name_kind kind, const char *name,
                        size_t max_len, size_t *len)
{
    size_t n = 0;
    int rc;
    switch (kind) {
    case PRESENCE_NAME_CHANNEL:
    case PRESENCE_NAME_CLIENT:
        rc = presence__check_name(name, max_len, false, &n);
        break;
    case PRESENCE_NAME_USER:
        rc = presence__check_name(name, max_len, true, &n);
        break;
    case PRESENCE_NAME_NAMESPACE:
        rc = check_namespace_name(name, max_len, &n);
        break;
    default:
        return PRESENCE_ERR_INVALID;
    }
    if (rc == PRESENCE_OK && len != NULL) {
        *len = n;
    }
    return rc;
}

bool presence__separator_ok(char c)
{
    return c > 0x20 && c < 0x7f;
}

/* A channel's namespace is what precedes its first separator: none, or
 * one at the start, means the default namespace (length 0). Returns the
 * separator, or NULL. */
static const char *namespace_split(const char *channel, size_t channel_len,
                                   char separator, size_t *ns_len)
{
    const char *sep = memchr(channel, separator, channel_len);
    *ns_len = sep == NULL ? 0 : (size_t)(sep - channel);
    return sep;
}

void presence__namespace_part(const presence_registry *reg,
                              const char *channel, size_t channel_len,
                              const char **ns, size_t *ns_len)
{
    *ns = channel;
    namespace_split(channel, channel_len, reg->separator, ns_len);
}

int presence_channel_split(const char *channel, char separator,
                           size_t *namespace_len, const char **rest)
{
    if (channel == NULL || namespace_len == NULL ||
        !presence__separator_ok(separator)) {
        return PRESENCE_ERR_INVALID;
    }
    const char *sep = namespace_split(channel, strlen(channel), separator,
                                      namespace_len);
    if (rest != NULL) {
        *rest = sep == NULL ? channel : sep + 1;
    }
    return PRESENCE_OK;
}

int presence__channel_check(presence_registry *reg, const char *name,
                            struct presence__chref *ref)
{
    int rc = presence__check_hash_name(reg, name, reg->limits.channel_name_max,
                                       false, &ref->len, &ref->hash);
    if (rc == PRESENCE_OK) {
        ref->name = name;
        ref->shard = presence__shard_of(reg, ref->hash);
        ref->ns = NULL;
        ref->ch = NULL;
        ref->idle = NULL;
    }
    return rc;
}

void presence__chref_of(presence_registry *reg, struct presence__channel *ch,
                        struct presence__chref *ref)
{
    ref->name = ch->name;
    ref->len = ch->name_len;
    ref->hash = ch->hash;
    ref->shard = presence__shard_of(reg, ch->hash);
    ref->ns = ch->ns;
    ref->ch = NULL;
    ref->idle = NULL;
}

int presence__channel_lookup_join(presence_registry *reg,
                                  struct presence__chref *ref)
{
    int rc = presence__channel_lookup(reg, ref);
    return rc == PRESENCE_OK && !ref->ns->options.presence
               ? PRESENCE_ERR_NOT_AVAILABLE
               : rc;
}

int presence__channel_lookup(presence_registry *reg,
                             struct presence__chref *ref)
{
    struct presence__channel *ch = presence__index_find(
        &ref->shard->channels, ref->hash, ref->name, ref->len);
    if (ch != NULL) {
        ref->ns = ch->ns;
        presence__chref_resolve(ch, ref); /* idle when a handle pins it */
        return PRESENCE_OK;
    }
    ref->ch = NULL;
    ref->idle = NULL;
    const char *ns_name;
    size_t ns_len;
    presence__namespace_part(reg, ref->name, ref->len, &ns_name, &ns_len);
    ref->ns = presence__namespace_find(reg, ns_name, ns_len);
    return ref->ns == NULL ? PRESENCE_ERR_UNKNOWN_NAMESPACE : PRESENCE_OK;
}
