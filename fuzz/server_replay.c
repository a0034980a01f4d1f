/*
 * Runs a presence server fuzz target without libFuzzer, so that the plain
 * and sanitizer test builds exercise it: every corpus file given, then a
 * number of inputs made from the corpus by a fixed-seed mutator (bytes
 * flipped, inserted, erased, records spliced from two files), which stay
 * close enough to the format to get past its first bytes.
 *   replay [--random N] [FILE...]
 * The target is chosen at build time (-DPS_FUZZ_TARGET=...).
 * SPDX-License-Identifier: MIT
 */
#include "server_fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT 8192

typedef struct input {
    uint8_t *data;
    size_t len;
} input;

static uint64_t rng_state = 0x2545f4914f6cdd1dULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int read_file(const char *path, input *out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    out->data = malloc(MAX_INPUT);
    out->len = fread(out->data, 1, MAX_INPUT, f);
    fclose(f);
    return 0;
}

/* One mutant of the corpus in buf; returns its length. */
static size_t mutate(const input *corpus, size_t n, uint8_t *buf)
{
    size_t len = 0;
    if (n > 0) {
        const input *a = &corpus[rng() % n];
        len = a->len;
        memcpy(buf, a->data, len);
    }
    int edits = 1 + (int)(rng() % 8);
    for (int e = 0; e < edits; e++) {
        switch (rng() % 5) {
        case 0: /* flip a byte */
            if (len > 0) {
                buf[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
            }
            break;
        case 1: /* a random byte */
            if (len > 0) {
                buf[rng() % len] = (uint8_t)rng();
            }
            break;
        case 2: /* insert a byte */
            if (len < MAX_INPUT) {
                size_t at = len ? rng() % (len + 1) : 0;
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (uint8_t)rng();
                len++;
            }
            break;
        case 3: /* erase a range */
            if (len > 0) {
                size_t at = rng() % len;
                size_t k = 1 + rng() % (len - at);
                if (k > 16) {
                    k = 16;
                }
                memmove(buf + at, buf + at + k, len - at - k);
                len -= k;
            }
            break;
        default: /* append a piece of another input */
            if (n > 0) {
                const input *b = &corpus[rng() % n];
                if (b->len > 0) {
                    size_t from = rng() % b->len;
                    size_t k = b->len - from;
                    if (k > MAX_INPUT - len) {
                        k = MAX_INPUT - len;
                    }
                    memcpy(buf + len, b->data + from, k);
                    len += k;
                }
            }
            break;
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    unsigned long random_inputs = 0;
    input *corpus = calloc((size_t)argc, sizeof *corpus);
    size_t n = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--random") == 0 && i + 1 < argc) {
            random_inputs = strtoul(argv[++i], NULL, 10);
        } else if (read_file(argv[i], &corpus[n]) == 0) {
            PS_FUZZ_TARGET(corpus[n].data, corpus[n].len);
            n++;
        } else {
            return 1;
        }
    }
    static uint8_t buf[MAX_INPUT];
    for (unsigned long r = 0; r < random_inputs; r++) {
        size_t len = mutate(corpus, n, buf);
        PS_FUZZ_TARGET(buf, len);
    }
    printf("%lu passed, 0 failed: %zu corpus files and %lu mutants replayed\n",
           (unsigned long)n + random_inputs, n, random_inputs);
    for (size_t i = 0; i < n; i++) {
        free(corpus[i].data);
    }
    free(corpus);
    return 0;
}
