/* fuzz-schedule.c — a berth.schedule label value: parse, and when it
 * parses, its canonical text parses to the same schedule and the next run
 * is always later than the time it is computed from. */
#include <stdlib.h>
#include <string.h>

#include "../../common/common.h"
#include "../../common/schedule.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = xstrndup((const char *)data, size);
        struct schedule a, b;
        if (schedule_parse(s, &a) == 0) {
                char text[64];
                schedule_format(&a, text, sizeof text);
                if (schedule_parse(text, &b) != 0 || a.kind != b.kind || a.every != b.every || a.hour != b.hour ||
                    a.minute != b.minute)
                        abort();
                static const int64_t times[] = { 0, 1796601599, 1774745400, 1792281600, 4102444799 };
                for (size_t i = 0; i < ELEMENTSOF(times); i++)
                        if (schedule_next(&a, times[i]) <= times[i])
                                abort();
                if (schedule_interval(&a) == 0)
                        abort();
        }
        free(s);
        return 0;
}
