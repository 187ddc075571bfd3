/* fuzz-pack.c — a pack's tail (trailer and footer): parse, and check that
 * every accepted entry lies inside the data area. */
#include <stdlib.h>

#include "../../snapshot/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pack_entry *e = NULL;
        size_t n = 0;
        uint64_t pack_size = (uint64_t)size + PACK_HEADER_SIZE;
        if (pack_parse_trailer(data, size, pack_size, &e, &n) == 0) {
                for (size_t i = 0; i < n; i++)
                        if (e[i].offset < PACK_HEADER_SIZE || (uint64_t)e[i].offset + e[i].stored_len > pack_size)
                                abort();
                free(e);
        }
        return 0;
}
