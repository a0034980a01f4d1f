/*
 * Name rules: what a channel name, client id, user id and namespace name
 * may contain, and which namespace a channel belongs to.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "domain/domain.h"

int presence__check_name(const char *name, size_t max, bool allow_empty,
                         size_t *len)
{
    if (name == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    /* Stop counting past the limit, so a huge string costs max, not its
     * length. Records keep name lengths in 32 bits. */
    if (max > UINT32_MAX) {
        max = UINT32_MAX;
    }
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        unsigned char c = (unsigned char)name[n];
        if (c < 0x20 || c == 0x7f) {
            return PRESENCE_ERR_BAD_NAME;
        }
        if (n >= max) {
            return PRESENCE_ERR_TOO_LONG;
        }
    }
    if (n == 0 && !allow_empty) {
        return PRESENCE_ERR_BAD_NAME;
    }
    *len = n;
    return PRESENCE_OK;
}

int presence__check_hash_name(const presence_registry *reg, const char *name,
                              size_t max, bool allow_empty, size_t *len,
                              uint64_t *hash)
{
    int rc = presence__check_name(name, max, allow_empty, len);
    if (rc == PRESENCE_OK) {
        *hash = presence__hash64(reg->seed, name, *len);
    }
    return rc;
}

static bool namespace_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
}

/* Centrifugo's rule: ^[-a-zA-Z0-9_.]{2,}$; "" names the default. */
int presence__check_namespace_name(const char *name, size_t *len)
{
    if (name == NULL) {
        return PRESENCE_ERR_INVALID;
    }
    size_t n = 0;
    for (; name[n] != '\0'; n++) {
        if (!namespace_char(name[n])) {
            return PRESENCE_ERR_BAD_NAME;
        }
        if (n >= 255) {
            return PRESENCE_ERR_TOO_LONG;
        }
    }
    if (n == 1) {
        return PRESENCE_ERR_BAD_NAME;
    }
    *len = n;
    return PRESENCE_OK;
}

void presence__namespace_part(const presence_registry *reg,
                              const char *channel, size_t channel_len,
                              const char **ns, size_t *ns_len)
{
    const char *sep = memchr(channel, reg->separator, channel_len);
    *ns = channel;
    *ns_len = sep == NULL ? 0 : (size_t)(sep - channel);
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
    }
    return rc;
}

int presence__channel_lookup(presence_registry *reg,
                             struct presence__chref *ref)
{
    ref->ch = presence__index_find(&ref->shard->channels, ref->hash,
                                   ref->name, ref->len);
    if (ref->ch != NULL) {
        ref->ns = ref->ch->ns;
        return PRESENCE_OK;
    }
    const char *ns_name;
    size_t ns_len;
    presence__namespace_part(reg, ref->name, ref->len, &ns_name, &ns_len);
    ref->ns = presence__namespace_find(reg, ns_name, ns_len);
    return ref->ns == NULL ? PRESENCE_ERR_UNKNOWN_NAMESPACE : PRESENCE_OK;
}
