/* libFuzzer entry point of a presence server fuzz target, chosen at build
 * time with -DPS_FUZZ_TARGET=ps_fuzz_server_frames (or _config).
 * SPDX-License-Identifier: MIT */
#include "server_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return PS_FUZZ_TARGET(data, size);
}
