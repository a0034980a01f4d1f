/*
 * The default config's secrets file: made private (0600) on the first
 * start and read back later; refused, with a message that says what to
 * do, when others may read or write it or when another user owns it (as
 * ssh refuses a private key), instead of being used or replaced.
 * SPDX-License-Identifier: MIT
 */
#include "common.h"

#include "../config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

static char dir[64];
static char file[128];

static int make_dir(void **state)
{
    (void)state;
    assert_non_null(make_temp_dir(dir, sizeof dir, "ps-secrets"));
    snprintf(file, sizeof file, "%s/default-secrets.json", dir);
    setenv("PRESENCE_SERVER_STATE_DIR", dir, 1);
    return 0;
}

static int remove_dir(void **state)
{
    (void)state;
    unlink(file);
    rmdir(dir);
    return 0;
}

static void write_file(mode_t mode)
{
    unlink(file);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("{\"api_key\":\"k1\",\"token_hmac_secret_key\":\"s1\"}\n", f);
    fclose(f);
    assert_int_equal(chmod(file, mode), 0);
}

static void test_first_start_makes_a_private_file(void **state)
{
    (void)state;
    unlink(file);
    ps_config cfg;
    char err[512];
    assert_int_equal(ps_config_load_default(&cfg, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char *key = strdup(cfg.api_key);
    ps_config_free(&cfg);
    /* The next start reads the same secrets. */
    assert_int_equal(ps_config_load_default(&cfg, err, sizeof err), 0);
    assert_string_equal(cfg.api_key, key);
    ps_config_free(&cfg);
    free(key);
}

static void test_private_modes_accepted(void **state)
{
    (void)state;
    const mode_t modes[] = {0600, 0400, 0700};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        write_file(modes[i]);
        ps_config cfg;
        char err[512];
        assert_int_equal(ps_config_load_default(&cfg, err, sizeof err), 0);
        assert_string_equal(cfg.api_key, "k1");
        assert_string_equal(cfg.token_hmac_secret_key, "s1");
        ps_config_free(&cfg);
    }
}

static void test_open_modes_refused(void **state)
{
    (void)state;
    const mode_t modes[] = {0644, 0640, 0604, 0660, 0602, 0620, 0666, 0610};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        write_file(modes[i]);
        ps_config cfg;
        char err[512] = "";
        assert_int_equal(ps_config_load_default(&cfg, err, sizeof err), -1);
        char want[64];
        snprintf(want, sizeof want, "has mode %04o", (unsigned)modes[i]);
        if (strstr(err, want) == NULL || strstr(err, "chmod 600") == NULL ||
            strstr(err, file) == NULL) {
            fail_msg("mode %04o: %s", (unsigned)modes[i], err);
        }
        /* Refused, not replaced: the file is as it was. */
        struct stat st;
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(st.st_mode & 0777, modes[i]);
    }
}

static void test_other_owner_refused(void **state)
{
    (void)state;
    if (geteuid() != 0) {
        skip(); /* giving a file away needs root */
    }
    write_file(0600);
    assert_int_equal(chown(file, 12345, 12345), 0);
    ps_config cfg;
    char err[512] = "";
    assert_int_equal(ps_config_load_default(&cfg, err, sizeof err), -1);
    if (strstr(err, "owned by uid 12345, not by this user") == NULL) {
        fail_msg("%s", err);
    }
}

static void test_not_a_regular_file(void **state)
{
    (void)state;
    unlink(file);
    assert_int_equal(mkdir(file, 0700), 0);
    ps_config cfg;
    char err[512] = "";
    assert_int_equal(ps_config_load_default(&cfg, err, sizeof err), -1);
    rmdir(file);
    if (strstr(err, "not a regular file") == NULL) {
        fail_msg("%s", err);
    }
}

int main(void)
{
    counting_install();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_start_makes_a_private_file),
        cmocka_unit_test(test_private_modes_accepted),
        cmocka_unit_test(test_open_modes_refused),
        cmocka_unit_test(test_other_owner_refused),
        cmocka_unit_test(test_not_a_regular_file),
    };
    return cmocka_run_group_tests_name("server secrets file", tests, make_dir,
                                       remove_dir);
}
