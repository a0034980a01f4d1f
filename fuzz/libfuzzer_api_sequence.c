/* libFuzzer entry point for the API-sequence fuzzer.
 * SPDX-License-Identifier: MIT */
#include "api_sequence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return presence_fuzz_api_sequence(data, size);
}
