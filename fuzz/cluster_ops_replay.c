/*
 * Runs the cluster wire-decoder fuzz target without libFuzzer: the seed
 * corpus, then pseudo-random inputs made the way a node writes them (a few
 * joins and leaves with random names and infos) and then damaged (bytes
 * changed, cut short), so that most inputs get past the first byte.
 *   cluster-ops-replay [--random N] [FILE...]
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster_internal.h"
#include "cluster_ops.h"

static uint64_t state = 0x9e3779b97f4a7c15ULL;

static uint32_t next(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return (uint32_t)(state >> 16);
}

static void random_name(char *out, size_t max)
{
    size_t len = 1 + next() % (max - 1);
    for (size_t i = 0; i < len; i++) {
        out[i] = (char)(' ' + next() % 95);
    }
    out[len] = '\0';
}

static void random_input(struct cl_buf *b)
{
    char ch[16], cl[16], user[16];
    unsigned char info[24];
    b->len = 0;
    for (unsigned n = next() % 5; n > 0; n--) {
        random_name(ch, sizeof ch);
        random_name(cl, sizeof cl);
        random_name(user, sizeof user);
        size_t il = next() % sizeof info;
        for (size_t i = 0; i < il; i++) {
            info[i] = (unsigned char)next();
        }
        if (next() % 3 == 0) {
            cl_encode_leave(b, ch, cl, (int)(next() % 10));
        } else {
            cl_encode_join(b, ch, cl, user, info, il, info, il / 2);
        }
    }
    for (unsigned d = next() % 4; d > 0 && b->len > 0; d--) {
        b->data[next() % b->len] = (char)next();
    }
    if (b->len > 0 && next() % 2 == 0) {
        b->len = next() % b->len;
    }
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    presence_fuzz_cluster_ops(buf, n);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long random_inputs = 0;
    int files = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--random") == 0 && i + 1 < argc) {
            random_inputs = strtoul(argv[++i], NULL, 10);
        } else if (run_file(argv[i]) != 0) {
            return 1;
        } else {
            files++;
        }
    }
    struct cl_buf b = {0};
    for (unsigned long r = 0; r < random_inputs; r++) {
        random_input(&b);
        presence_fuzz_cluster_ops((const uint8_t *)b.data, b.len);
    }
    cl_buf_free(&b);
    printf("%d passed, 0 failed: %d corpus files and %lu random inputs replayed\n",
           files + (int)random_inputs, files, random_inputs);
    return 0;
}
