/*
 * Runs a fuzz target without libFuzzer, so that the plain and sanitizer
 * test builds exercise it: every file given on the command line (the seed
 * corpus), then a number of pseudo-random inputs from a fixed seed.
 *   replay [--random N] [FILE...]
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_sequence.h"

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
    presence_fuzz_api_sequence(buf, n);
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
        size_t len = 1 + (size_t)(r * 37 % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            buf[i] = (uint8_t)(state >> 24);
        }
        presence_fuzz_api_sequence(buf, len);
    }
    printf("%d passed, 0 failed: %d corpus files and %lu random inputs replayed\n",
           files + (int)random_inputs, files, random_inputs);
    return 0;
}
