/* The cluster wire-decoder fuzz target (cluster_ops.c).
 * SPDX-License-Identifier: MIT */
#ifndef PRESENCE_FUZZ_CLUSTER_OPS_H
#define PRESENCE_FUZZ_CLUSTER_OPS_H

#include <stddef.h>
#include <stdint.h>

int presence_fuzz_cluster_ops(const uint8_t *data, size_t size);
/* Structured inputs for the replay build (cluster_ops_generate.c). */
size_t presence_fuzz_cluster_ops_generate(uint8_t *buf, size_t cap,
                                          uint64_t *state);

#endif
