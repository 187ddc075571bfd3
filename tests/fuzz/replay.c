/* replay.c — main() for the fuzz targets: runs LLVMFuzzerTestOneInput on
 * every file of the corpus directories (or files) given, so `make check`
 * replays the corpus; build a target with clang -fsanitize=fuzzer (without
 * this file) to fuzz it. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
        FILE *f = fopen(path, "rb");
        if (!f) {
                perror(path);
                return -1;
        }
        uint8_t *buf = NULL;
        size_t n = 0, cap = 0;
        for (;;) {
                if (n == cap) {
                        cap = cap ? cap * 2 : 4096;
                        buf = realloc(buf, cap);
                        if (!buf)
                                abort();
                }
                size_t k = fread(buf + n, 1, cap - n, f);
                if (k == 0)
                        break;
                n += k;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        return 0;
}

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
        int runs = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        perror(argv[i]);
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return 1;
                        runs++;
                        continue;
                }
                DIR *d = opendir(argv[i]);
                struct dirent *de;
                char **names = NULL;
                size_t n = 0;
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.') {
                                names = realloc(names, (n + 1) * sizeof *names);
                                names[n++] = strdup(de->d_name);
                        }
                closedir(d);
                qsort(names, n, sizeof *names, cmp);
                for (size_t j = 0; j < n; j++) {
                        char path[4096];
                        snprintf(path, sizeof path, "%s/%s", argv[i], names[j]);
                        if (run_file(path) < 0)
                                return 1;
                        runs++;
                        free(names[j]);
                }
                free(names);
        }
        printf("%d inputs ran\n", runs);
        return 0;
}
