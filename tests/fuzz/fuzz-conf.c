/* fuzz-conf.c — berth.conf: KEY = VALUE lines read by agent/main.c's
 * load_config_file(), for every command and for the agent's reload (the
 * first byte picks which).  main.c is compiled in (its main() renamed);
 * the other agent objects are linked (see the Makefile). */
#include <sys/mman.h>

int berth_main(int argc, char **argv);
#define main berth_main
#include "../../agent/main.c"
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 1)
                return 0;
        int fd = memfd_create("berth.conf", MFD_CLOEXEC);
        if (fd < 0 || write_all(fd, data + 1, size - 1) < 0)
                abort();
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        (void)load_config_file(path, true, data[0] & 1);
        close(fd);
        log_set_level(LOG_ERR); /* a log_level line must not make the next inputs chatty */
        return 0;
}
