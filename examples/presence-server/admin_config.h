/*
 * The admin page's configuration: Centrifugo's "admin", "admin_password"
 * and "admin_secret" keys, and for the embedded default a password and a
 * secret generated once and kept beside the default secrets.
 * SPDX-License-Identifier: MIT
 */
#ifndef PS_ADMIN_CONFIG_H
#define PS_ADMIN_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct ps_admin_config {
    bool enabled;   /**< "admin": serve the page under /admin */
    char *password; /**< "admin_password": what a person types to sign in */
    char *secret;   /**< "admin_secret": signs the session tokens */
    /** Set for the embedded default: where its password is kept (NULL if
     *  it could not be saved). */
    char *state_path;
} ps_admin_config;

/** Parse @p key if it is one of the admin keys (*matched then true).
 *  0, or -1 with @p err naming the key. */
int ps_admin_config_key(ps_admin_config *admin, const char *key,
                        json_t *value, bool *matched, char *err,
                        size_t err_len);

/** With "admin" on, the password and the secret must both be set, as
 *  Centrifugo requires, and the secret must not be @p token_secret (the
 *  client tokens' one, NULL if unset): else a client token for user
 *  "admin" would open the page. 0, or -1 with @p err naming the key. */
int ps_admin_config_check(const ps_admin_config *admin,
                          const char *token_secret, char *err,
                          size_t err_len);

/**
 * Turn the admin page on for the embedded default, with a password and a
 * secret read from default-admin.json in the directory of @p secrets_path
 * (the default secrets' file), or generated and saved there (mode 0600).
 * With @p secrets_path NULL, or when the file cannot be written, they are
 * generated for this run only. 0 or -1 (@p err says why).
 */
int ps_admin_config_default(ps_admin_config *admin, const char *secrets_path,
                            char *err, size_t err_len);

void ps_admin_config_free(ps_admin_config *admin);

#endif
