/* The API-sequence fuzz target, callable from libFuzzer and from replay.
 * SPDX-License-Identifier: MIT */
#ifndef PRESENCE_FUZZ_API_SEQUENCE_H
#define PRESENCE_FUZZ_API_SEQUENCE_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input; aborts with a message on any mismatch. */
int presence_fuzz_api_sequence(const uint8_t *data, size_t size);

#endif
