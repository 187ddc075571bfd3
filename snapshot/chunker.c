/* chunker.c — FastCDC content-defined chunking (gear hash, normalized
 * chunking, cut-point skipping), and page-aligned chunks for database
 * files.  Pure: no I/O, no allocation. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static uint64_t splitmix64(uint64_t *state)
{
        uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/* `bits` bits set just below the top bit: in a gear hash the high bits
 * depend on the most recent bytes (up to 64), the low bits only on the last
 * few.  Bit 63 is left out so that the mask shifted left by one, used at
 * odd positions of the two-bytes-per-step loop, loses nothing. */
static uint64_t top_mask(unsigned bits)
{
        return bits == 0 ? 0 : (~0ULL << (64 - bits)) >> 1;
}

int chunker_init(struct chunker *c, uint32_t min, uint32_t avg, uint32_t max, uint64_t seed)
{
        if (avg == 0 || (avg & (avg - 1)) != 0 || min == 0 || min >= avg || avg >= max || max > PACK_MAX_CHUNK ||
            avg < 64)
                return -EINVAL;
        unsigned bits = (unsigned)__builtin_ctz(avg);
        c->min = min;
        c->avg = avg;
        c->max = max;
        c->mask_s = top_mask(bits + 2);
        c->mask_l = top_mask(bits - 2);
        c->mask_s_ls = c->mask_s << 1;
        c->mask_l_ls = c->mask_l << 1;
        uint64_t state = seed;
        for (size_t i = 0; i < 256; i++) {
                c->gear[i] = splitmix64(&state);
                c->gear_ls[i] = c->gear[i] << 1;
        }
        return 0;
}

void chunker_set_gear(struct chunker *c, const uint64_t gear[256])
{
        for (size_t i = 0; i < 256; i++) {
                c->gear[i] = gear[i];
                c->gear_ls[i] = gear[i] << 1;
        }
}

size_t chunker_cut(const struct chunker *c, const uint8_t *p, size_t n, bool eof)
{
        if (n <= c->min)
                return eof ? n : 0;
        if (n < c->max && !eof)
                /* Cannot tell yet whether the cut lies beyond n. */
                return 0;

        size_t end = n < c->max ? n : c->max;
        size_t normal = c->avg < end ? c->avg : end;
        uint64_t fp = 0;
        size_t i = c->min;

        /* Two bytes per step (FastCDC's "rolling two bytes"): the first
         * byte's gear value and the mask are pre-shifted by one, so the
         * hash seen at the odd position equals the one-byte-at-a-time hash
         * shifted left by one; both positions are tested.  Cut points are
         * the same as the plain loop's. */
        for (; i + 1 < normal; i += 2) {
                fp = (fp << 2) + c->gear_ls[p[i]];
                if (!(fp & c->mask_s_ls))
                        return i + 1;
                fp += c->gear[p[i + 1]];
                if (!(fp & c->mask_s))
                        return i + 2;
        }
        for (; i < normal; i++) {
                fp = (fp << 1) + c->gear[p[i]];
                if (!(fp & c->mask_s))
                        return i + 1;
        }
        for (; i + 1 < end; i += 2) {
                fp = (fp << 2) + c->gear_ls[p[i]];
                if (!(fp & c->mask_l_ls))
                        return i + 1;
                fp += c->gear[p[i + 1]];
                if (!(fp & c->mask_l))
                        return i + 2;
        }
        for (; i < end; i++) {
                fp = (fp << 1) + c->gear[p[i]];
                if (!(fp & c->mask_l))
                        return i + 1;
        }
        return end;
}

/* ---- page-aligned chunking ------------------------------------------------------ */

int pages_parse(const char *s, int32_t *ret)
{
        if (strcmp(s, "auto") == 0) {
                *ret = PAGES_AUTO;
                return 0;
        }
        if (strcmp(s, "off") == 0) {
                *ret = PAGES_OFF;
                return 0;
        }
        uint64_t v;
        if (parse_size(s, &v) < 0 || v < PAGES_MIN_SIZE || v > PAGES_MAX_SIZE || (v & (v - 1)) != 0)
                return -EINVAL;
        *ret = (int32_t)v;
        return 0;
}

void pages_format(int32_t v, char *out, size_t n)
{
        if (v == PAGES_OFF)
                snprintf(out, n, "off");
        else if (v <= PAGES_AUTO)
                snprintf(out, n, "auto");
        else
                snprintf(out, n, "%d", v);
}

static bool has_name(char *const *names, size_t n, const char *want)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(names[i], want) == 0)
                        return true;
        return false;
}

uint8_t page_tree_of(char *const *names, size_t n)
{
        if (has_name(names, n, "PG_VERSION") && has_name(names, n, "base") && has_name(names, n, "global"))
                return PAGE_TREE_PG;
        if (has_name(names, n, "ibdata1") || has_name(names, n, "mysql.ibd"))
                return PAGE_TREE_MYSQL;
        if (has_name(names, n, "WiredTiger"))
                return PAGE_TREE_WT;
        return PAGE_TREE_NONE;
}

uint32_t innodb_page_size(const uint8_t *head, size_t n)
{
        /* FSP_SPACE_FLAGS: FIL_PAGE_DATA (38) + 16, big-endian; the page
         * size is bits 6..9 (MySQL 5.7+), 0 meaning the original 16 KiB. */
        if (n < 58)
                return 0;
        uint32_t flags = (uint32_t)head[54] << 24 | (uint32_t)head[55] << 16 | (uint32_t)head[56] << 8 | head[57];
        unsigned ssize = (flags >> 6) & 15;
        if (ssize == 0)
                return 16u << 10;
        if (ssize < 3 || ssize > 7)
                return 0;
        return 512u << ssize;
}

static bool ends_with(const char *s, const char *suffix)
{
        size_t a = strlen(s), b = strlen(suffix);
        return a >= b && strcmp(s + a - b, suffix) == 0;
}

static uint32_t if_multiple(uint32_t page, uint64_t size)
{
        return page && size >= page && size % page == 0 ? page : 0;
}

uint32_t page_size_detect(int32_t setting, uint8_t tree, uint32_t tree_page, const char *name, uint64_t size,
                          const uint8_t *head, size_t n)
{
        if (setting == PAGES_OFF || size == 0)
                return 0;
        if (setting > PAGES_AUTO)
                return if_multiple((uint32_t)setting, size);
        static const char sqlite_magic[16] = "SQLite format 3";
        if (n >= 100 && memcmp(head, sqlite_magic, sizeof sqlite_magic) == 0) {
                /* The page size, big-endian at offset 16; 1 means 65536. */
                uint32_t p = (uint32_t)head[16] << 8 | head[17];
                if (p == 1)
                        p = 65536;
                if (p >= 512 && (p & (p - 1)) == 0)
                        return if_multiple(p, size);
                return 0;
        }
        if (ends_with(name, ".ibd") || strncmp(name, "ibdata", 6) == 0 || strncmp(name, "undo_", 5) == 0) {
                uint32_t p = innodb_page_size(head, n);
                if (!p)
                        p = tree == PAGE_TREE_MYSQL && tree_page ? tree_page : 16u << 10;
                return if_multiple(p, size);
        }
        if (ends_with(name, ".wt"))
                return if_multiple(4u << 10, size);
        switch (tree) {
        case PAGE_TREE_PG:
                return if_multiple(tree_page ? tree_page : 8u << 10, size);
        case PAGE_TREE_MYSQL:
                return if_multiple(tree_page ? tree_page : 16u << 10, size);
        default:
                return 0;
        }
}

size_t page_chunk_bytes(uint32_t page, uint32_t per_chunk)
{
        size_t b = (size_t)page * (per_chunk ? per_chunk : 1);
        while (b < (8u << 10))
                b *= 2;
        return b;
}

size_t chunker_cut_fixed(size_t fixed, size_t n, bool eof)
{
        if (n >= fixed)
                return fixed;
        return eof ? n : 0;
}
