/* fuzz-pack.c — a pack's tail (trailer and footer), format 1 or 2: parse,
 * check that every accepted entry lies inside the data area and that the
 * chunks of a format-2 record tile it in order; then decode each record
 * the input holds (the input stands for the pack after its 8-byte header)
 * and check each chunk against its id, as a reader would. */
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "../../snapshot/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct pack_entry *e = NULL;
        size_t n = 0;
        uint64_t pack_size = (uint64_t)size + PACK_HEADER_SIZE;
        if (pack_parse_trailer(data, size, pack_size, &e, &n) != 0)
                return 0;
        /* Format 1 lets entries share an offset (each a record alone). */
        bool v2 = memcmp(data + size - 8, PACK_FOOTER_MAGIC, 8) == 0;
        static ZSTD_DCtx *dctx;
        if (!dctx)
                dctx = ZSTD_createDCtx();
        struct buf plain = { 0 };
        for (size_t i = 0; i < n; i++) {
                if (e[i].offset < PACK_HEADER_SIZE || (uint64_t)e[i].offset + e[i].stored_len > pack_size ||
                    (uint64_t)e[i].inner + e[i].raw_len > PACK_MAX_CHUNK)
                        abort();
                bool same = i > 0 && e[i].offset == e[i - 1].offset;
                if (v2 && same && e[i].inner != e[i - 1].inner + e[i - 1].raw_len)
                        abort();
                if (v2 && !same && i > 0 && e[i].offset < (uint64_t)e[i - 1].offset + e[i - 1].stored_len)
                        abort();
                if (!v2 && (e[i].inner != 0 || (e[i].flags & PACK_F_ALONE)))
                        abort();
                /* A chunk alone in its record shares it with no other. */
                bool next = i + 1 < n && e[i + 1].offset == e[i].offset;
                if ((e[i].flags & PACK_F_ALONE) && (same || next || e[i].inner != 0))
                        abort();
                const uint8_t *stored = data + (e[i].offset - PACK_HEADER_SIZE);
                if (!same && record_decode(NULL, &e[i], stored, &plain, dctx) != 0)
                        buf_reset(&plain);
                if (plain.len && record_chunk_check(NULL, &e[i], plain.data, plain.len) == 0 &&
                    ((uint64_t)e[i].inner + e[i].raw_len > plain.len ||
                     ((e[i].flags & PACK_F_ALONE) && e[i].raw_len != plain.len)))
                        abort();
                /* What store_read_stored asks of the stored bytes. */
                (void)record_is_alone(&e[i], stored);
        }
        buf_free(&plain);
        free(e);
        return 0;
}
