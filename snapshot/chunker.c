/* chunker.c — FastCDC content-defined chunking (gear hash, normalized
 * chunking, cut-point skipping).  Pure: no I/O, no allocation. */
#include "internal.h"

static uint64_t splitmix64(uint64_t *state)
{
        uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

/* The top `bits` bits set: in a gear hash the high bits depend on the most
 * recent 64 bytes, the low bits only on the last few. */
static uint64_t top_mask(unsigned bits)
{
        return bits == 0 ? 0 : ~0ULL << (64 - bits);
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
        uint64_t state = seed;
        for (size_t i = 0; i < 256; i++)
                c->gear[i] = splitmix64(&state);
        return 0;
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

        for (; i < normal; i++) {
                fp = (fp << 1) + c->gear[p[i]];
                if (!(fp & c->mask_s))
                        return i + 1;
        }
        for (; i < end; i++) {
                fp = (fp << 1) + c->gear[p[i]];
                if (!(fp & c->mask_l))
                        return i + 1;
        }
        return end;
}
