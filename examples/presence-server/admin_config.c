/*
 * The admin keys of the config, and the embedded default's admin password.
 * SPDX-License-Identifier: MIT
 */
#include "admin_config.h"
#include "config.h"

#include "mem.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ADMIN_STATE_FILE "default-admin.json"

/* A password a person can copy and type: 16 characters of a-z and 2-9
 * without look-alikes (80 bits). */
#define PASSWORD_LEN 16
static const char password_chars[] = "abcdefghijkmnpqrstuvwxyz23456789";

int ps_admin_config_key(ps_admin_config *admin, const char *key,
                        json_t *value, bool *matched, char *err,
                        size_t err_len)
{
    *matched = true;
    if (strcmp(key, "admin") == 0) {
        if (!json_is_boolean(value)) {
            return ps_fail(err, err_len,
                           "key \"admin\": expected true or false");
        }
        admin->enabled = json_is_true(value);
        return 0;
    }
    if (strcmp(key, "admin_password") == 0) {
        return ps_config_string(value, key, &admin->password, err, err_len);
    }
    if (strcmp(key, "admin_secret") == 0) {
        return ps_config_string(value, key, &admin->secret, err, err_len);
    }
    *matched = false;
    return 0;
}

int ps_admin_config_check(const ps_admin_config *admin,
                          const char *token_secret, char *err,
                          size_t err_len)
{
    if (!admin->enabled) {
        return 0;
    }
    if (admin->password == NULL || *admin->password == '\0') {
        return ps_fail(err, err_len,
                       "key \"admin_password\": required when \"admin\" is "
                       "on");
    }
    if (admin->secret == NULL || *admin->secret == '\0') {
        return ps_fail(err, err_len,
                       "key \"admin_secret\": required when \"admin\" is on");
    }
    if (token_secret != NULL && strcmp(admin->secret, token_secret) == 0) {
        return ps_fail(err, err_len,
                       "key \"admin_secret\": must differ from "
                       "token_hmac_secret_key");
    }
    return 0;
}

static char *state_path_for(const char *secrets_path)
{
    const char *slash = secrets_path ? strrchr(secrets_path, '/') : NULL;
    if (slash == NULL) {
        return NULL;
    }
    size_t dir_len = (size_t)(slash - secrets_path) + 1;
    size_t len = dir_len + sizeof ADMIN_STATE_FILE;
    char *path = ps_malloc(len);
    if (path != NULL) {
        memcpy(path, secrets_path, dir_len);
        memcpy(path + dir_len, ADMIN_STATE_FILE, sizeof ADMIN_STATE_FILE);
    }
    return path;
}

static int read_state(const char *path, ps_admin_config *admin)
{
    json_t *root = json_load_file(path, 0, NULL);
    if (root == NULL) {
        return -1;
    }
    const char *pw = json_string_value(json_object_get(root, "admin_password"));
    const char *secret =
        json_string_value(json_object_get(root, "admin_secret"));
    int rc = -1;
    if (pw != NULL && secret != NULL && *pw != '\0' && *secret != '\0') {
        admin->password = ps_strdup(pw);
        admin->secret = ps_strdup(secret);
        rc = (admin->password && admin->secret) ? 0 : -1;
    }
    json_decref(root);
    return rc;
}

/* O_EXCL, as for the default secrets: of two first starts, one writes and
 * the other reads. 0 written, 1 already there, -1 failed. */
static int write_state(const char *path, const char *pw, const char *secret)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        return errno == EEXIST ? 1 : -1;
    }
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "{\"admin_password\":\"%s\",\"admin_secret\":\"%s\"}\n",
                     pw, secret);
    int rc = (n > 0 && write(fd, buf, (size_t)n) == n) ? 0 : -1;
    close(fd);
    if (rc != 0) {
        unlink(path);
    }
    return rc;
}

static int generate(char pw[PASSWORD_LEN + 1], char secret[PS_UUID_SIZE])
{
    unsigned char raw[PASSWORD_LEN];
    if (ps_random_bytes(raw, sizeof raw) != 0 || ps_uuid4(secret) != 0) {
        return -1;
    }
    for (size_t i = 0; i < PASSWORD_LEN; i++) {
        pw[i] = password_chars[raw[i] % (sizeof password_chars - 1)];
    }
    pw[PASSWORD_LEN] = '\0';
    return 0;
}

int ps_admin_config_default(ps_admin_config *admin, const char *secrets_path,
                            char *err, size_t err_len)
{
    ps_admin_config_free(admin);
    admin->enabled = true;
    char *path = state_path_for(secrets_path);
    if (path != NULL && read_state(path, admin) == 0) {
        admin->state_path = path;
        return 0;
    }
    ps_free(admin->password);
    ps_free(admin->secret);
    admin->password = admin->secret = NULL;
    char pw[PASSWORD_LEN + 1];
    char secret[PS_UUID_SIZE];
    if (generate(pw, secret) != 0) {
        ps_free(path);
        return ps_fail(err, err_len,
                       "no random numbers for the admin password");
    }
    int w = path ? write_state(path, pw, secret) : -1;
    if (w == 1 && read_state(path, admin) == 0) {
        admin->state_path = path;
        return 0;
    }
    if (w != 0) {
        ps_free(path);
        path = NULL;
    }
    ps_free(admin->password);
    ps_free(admin->secret);
    admin->password = ps_strdup(pw);
    admin->secret = ps_strdup(secret);
    admin->state_path = path;
    if (admin->password == NULL || admin->secret == NULL) {
        return ps_fail(err, err_len, "out of memory");
    }
    return 0;
}

void ps_admin_config_free(ps_admin_config *admin)
{
    ps_free(admin->password);
    ps_free(admin->secret);
    ps_free(admin->state_path);
    memset(admin, 0, sizeof *admin);
}
