/* fuzz-manifest.c — one manifest record: decode, and when it decodes,
 * encode again and decode to the same record. */
#include <stdlib.h>
#include <string.h>

#include "../../snapshot/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct entry_store es = { 0 }, again = { 0 };
        struct buf a = { 0 }, b = { 0 };
        if (entry_decode(data, size, &es) == 0) {
                entry_encode(&es.e, &a);
                if (entry_decode(a.data, a.len, &again) != 0)
                        abort();
                entry_encode(&again.e, &b);
                if (a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
                        abort();
                uint8_t content[16], meta[8];
                entry_digests(&es.e, content, meta);
        }
        entry_store_free(&es);
        entry_store_free(&again);
        buf_free(&a);
        buf_free(&b);
        return 0;
}
