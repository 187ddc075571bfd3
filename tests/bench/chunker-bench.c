/* chunker-bench.c — the chunker alone, on one core: cuts 512 MiB of
 * pseudo-random bytes held in memory and prints GB/s (best of 3). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "../../snapshot/internal.h"

int main(void)
{
        size_t n = 512u << 20;
        uint8_t *p = xmalloc(n);
        uint64_t x = 88172645463325252ULL;
        for (size_t i = 0; i < n; i += 8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                memcpy(p + i, &x, 8);
        }
        struct chunker c;
        if (chunker_init(&c, 8u << 10, 32u << 10, 128u << 10, 1) < 0)
                return 1;
        double best = 0;
        size_t chunks = 0;
        for (int round = 0; round < 3; round++) {
                int64_t t0 = mono_ns();
                chunks = 0;
                for (size_t pos = 0; pos < n;) {
                        size_t cut = chunker_cut(&c, p + pos, n - pos, true);
                        pos += cut;
                        chunks++;
                }
                double gbs = (double)n / (double)(mono_ns() - t0);
                if (gbs > best)
                        best = gbs;
        }
        printf("chunker: %.2f GB/s on one core (%zu chunks of %.1f KiB average over %zu MiB)\n", best, chunks,
               (double)n / (double)chunks / 1024, n >> 20);
        free(p);
        return 0;
}
