/* fuzz-refs.c — snapshot references as a user types them (an id or id
 * prefix, NAME, NAME@latest, NAME@TIME), resolved by snapshot_resolve()
 * against a repository made once, in $TMPDIR, with a few series whose
 * names look like ids and times.  A reference resolves to one of its
 * snapshots, and a full id to itself; anything else fails with a message. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../common/common.h"
#include "../../snapshot/snapshot.h"
#include "../../catalog/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct repo *repo;
static char ids[8][65];
static char dir[4096];

static void cleanup(void)
{
        repo_free(repo);
        rm_rf_at(AT_FDCWD, dir);
}

static void setup(void)
{
        static const char *const names[] = { "web", "cafe", "2026", "web", "cafe", "db@x", "abcd", "web" };
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/berth-fuzz-refs.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir) || repo_init(dir, NULL) < 0 || repo_open(dir, REPO_WRITE, 0, &repo) < 0)
                abort();
        atexit(cleanup);
        struct catalog *c = repo_catalog(repo);
        for (int i = 0; i < 8; i++) {
                /* ids sharing prefixes: cafe..., and one starting with a name */
                snprintf(ids[i], sizeof ids[i], "%s%02x%056d", i < 3 ? "cafe" : i < 5 ? "abcd" : "2026", i, i);
                struct catalog_snapshot s = { .name = (char *)names[i], .started = 1770000000000000000LL + i * 3600000000000LL };
                memcpy(s.id, ids[i], sizeof s.id);
                s.finished = s.started + 1;
                if (catalog_snapshot_add(c, &s) < 0)
                        abort();
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!repo)
                setup();
        char *ref = xstrndup((const char *)data, size);
        struct catalog_snapshot s = { 0 };
        int k = snapshot_resolve(repo, ref, &s);
        if (k == 0) {
                bool known = false;
                for (int i = 0; i < 8; i++)
                        known |= strcmp(s.id, ids[i]) == 0;
                if (!known)
                        abort();
                for (int i = 0; i < 8; i++)
                        if (strcmp(ref, ids[i]) == 0 && strcmp(s.id, ids[i]) != 0)
                                abort();
                catalog_snapshot_clear(&s);
        } else if (!error_message())
                abort();
        error_clear();
        free(ref);
        return 0;
}
