/* fuzz-snapfile.c — a snapshot file (JSON) as stored in snapshots/. */
#include "../../snapshot/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct snapfile f = { 0 };
        if (snapfile_parse(data, size, &f) == 0)
                snapfile_clear(&f);
        return 0;
}
