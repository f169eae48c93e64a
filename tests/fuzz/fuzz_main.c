/* libFuzzer entry of one target, chosen at compile time with
 * -DPB_FUZZ_TARGET=ckpt (idx, cifar, row, lua); tests/fuzz/smoke.sh builds it. */
#include <stddef.h>
#include <stdint.h>

#include "pb_fuzz.h"

#define PB_CAT(a, b) a##b
#define PB_ENTRY(t) PB_CAT(pb_fuzz_, t)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[1024];
    PB_ENTRY(PB_FUZZ_TARGET)(data, size, err, sizeof err);
    return 0;
}
