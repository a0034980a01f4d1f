/* libFuzzer entry point for the cluster wire-decoder fuzzer.
 * SPDX-License-Identifier: MIT */
#include "cluster_ops.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return presence_fuzz_cluster_ops(data, size);
}
