/* libFuzzer entry point for the saved-state loader.
 * SPDX-License-Identifier: MIT */
#include "registry_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return presence_fuzz_registry_load(data, size);
}
