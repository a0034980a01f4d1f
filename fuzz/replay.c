/*
 * Runs a fuzz target without libFuzzer, so that the plain and sanitizer
 * test builds exercise it: every file given on the command line (the seed
 * corpus), then a number of pseudo-random inputs from a fixed seed.
 *   replay [--random N] [FILE...]
 * Built once per target: -DREPLAY_TARGET=the target's function, and
 * optionally -DREPLAY_GENERATE=a function that makes structured inputs
 * (otherwise they are random bytes).
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef REPLAY_TARGET
#define REPLAY_TARGET presence_fuzz_api_sequence
#endif

int REPLAY_TARGET(const uint8_t *data, size_t size);
#ifdef REPLAY_GENERATE
/* Fill buf (cap bytes) with an input drawn from *state; its length. */
size_t REPLAY_GENERATE(uint8_t *buf, size_t cap, uint64_t *state);
#endif

static uint32_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (uint32_t)(*state >> 24);
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
    REPLAY_TARGET(buf, n);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned long random_inputs = 0;
    int files = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--random") == 0 && i + 1 < argc) {
            random_inputs = strtoul(argv[++i], NULL, 10);
        } else {
            if (run_file(argv[i]) != 0) {
                return 1;
            }
            files++;
        }
    }
    uint64_t state = 0x9e3779b97f4a7c15ULL;
    static uint8_t buf[4096];
    for (unsigned long r = 0; r < random_inputs; r++) {
#ifdef REPLAY_GENERATE
        size_t len = REPLAY_GENERATE(buf, sizeof buf, &state);
#else
        size_t len = 1 + (size_t)(r * 37 % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            buf[i] = (uint8_t)next_random(&state);
        }
#endif
        REPLAY_TARGET(buf, len);
    }
    (void)next_random;
    printf("%d passed, 0 failed: %d corpus files and %lu random inputs replayed\n",
           files + (int)random_inputs, files, random_inputs);
    return 0;
}
