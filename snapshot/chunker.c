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
