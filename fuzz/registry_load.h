/* The saved-state loader's fuzz target, callable from libFuzzer and from
 * replay, and its generator of inputs for the replay test.
 * SPDX-License-Identifier: MIT */
#ifndef PRESENCE_FUZZ_REGISTRY_LOAD_H
#define PRESENCE_FUZZ_REGISTRY_LOAD_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input; aborts with a message on any failure. */
int presence_fuzz_registry_load(const uint8_t *data, size_t size);

/* Fill buf (cap bytes) with an input drawn from *state: a saved random
 * registry, untouched or damaged; its length. */
size_t presence_fuzz_registry_load_generate(uint8_t *buf, size_t cap,
                                            uint64_t *state);

#endif
