/* access.c — what a serving end (transport/serve.c) needs of a repository:
 * its backend, its spool, chunk lookups, snapshot announcements and the
 * verification of a pack that arrived from elsewhere. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "internal.h"

struct backend *repo_backend(struct repo *r) { return r->be; }
const char *repo_id(const struct repo *r) { return r->cfg.id; }
int repo_spool_dirfd(const struct repo *r) { return r->spool_dirfd; }

int repo_have_chunks(struct repo *r, const uint8_t (*ids)[32], size_t n, uint8_t *ret_lack_bitmap)
{
        if (!r->catalog)
                return error_set(EINVAL, "repository %s is open without its catalog", r->path);
        memset(ret_lack_bitmap, 0, (n + 7) / 8);
        for (size_t i = 0; i < n; i++) {
                struct catalog_chunk ch;
                int k = catalog_chunk_get(r->catalog, ids[i], &ch);
                if (k < 0)
                        return k;
                if (k == 0)
                        ret_lack_bitmap[i / 8] |= (uint8_t)(1u << (i % 8));
        }
        return 0;
}

/* 0 when the catalog knows every chunk snapshot `id` references (its
 * manifest's and its files'), else -BERTH_ECORRUPT with a message. */
static int snapshot_references_present(struct repo *r, struct store *s, const char *id)
{
        struct snapfile f = { 0 };
        struct catalog_chunk ch;
        int k = snapfile_read(r, id, &f);
        if (k < 0)
                return k;
        for (size_t i = 0; i < f.nmanifest && k >= 0; i++) {
                k = catalog_chunk_get(r->catalog, f.manifest[i], &ch);
                if (k == 0)
                        k = error_set(BERTH_ECORRUPT, "snapshot %.12s: a manifest chunk was not stored", id);
        }
        _cleanup_(manifest_reader_freep) struct manifest_reader *mr = NULL;
        if (k >= 0)
                k = manifest_reader_new(s, (const uint8_t(*)[HASH_LEN])f.manifest, f.nmanifest, &mr);
        const struct entry *e;
        while (k >= 0 && (k = manifest_reader_next(mr, &e)) > 0)
                for (size_t i = 0; i < e->nchunks && k >= 0; i++) {
                        k = catalog_chunk_get(r->catalog, e->chunks[i].id, &ch);
                        if (k == 0)
                                k = error_set(BERTH_ECORRUPT, "snapshot %.12s: a chunk of a file was not stored", id);
                }
        if (k < 0 && !error_message())
                error_set(k, "snapshot %.12s cannot be read: %s", id, berth_strerror(k));
        snapfile_clear(&f);
        return k < 0 ? k : 0;
}

int repo_announce_snapshot(struct repo *r, const char *id)
{
        if (!r->catalog || !r->writable)
                return error_set(EROFS, "repository %s is not open for writing", r->path);
        if (strlen(id) != 2 * HASH_LEN || strspn(id, "0123456789abcdef") != 2 * HASH_LEN)
                return error_set(EINVAL, "'%s' is not a snapshot id", id);
        char name[16 + 2 * HASH_LEN];
        snprintf(name, sizeof name, "snapshots/%s", id);
        uint64_t size;
        int k = backend_stat(r->be, name, &size);
        if (k == -ENOENT)
                return error_set(BERTH_ENOTFOUND, "snapshot %s was not stored", id);
        if (k < 0)
                return error_set(k, "cannot read %s: %s", name, berth_strerror(k));
        if (catalog_snapshot_known(r->catalog, id) > 0)
                return 0;
        _cleanup_(store_freep) struct store *s = NULL;
        k = store_open(r, false, &s);
        if (k < 0)
                return k;
        k = snapshot_references_present(r, s, id);
        if (k < 0)
                return k;
        k = catalog_snapshot_intend(r->catalog, id);
        if (k < 0)
                return k;
        /* Index what arrived: packs not recorded yet and announced snapshot
         * files, as a writer's crash recovery does. */
        k = repo_recover(r, s, false);
        if (k < 0)
                return k;
        k = catalog_snapshot_known(r->catalog, id);
        if (k < 0)
                return k;
        if (k == 0)
                return error_set(BERTH_ECORRUPT, "snapshot %s could not be indexed", id);
        return 0;
}

int repo_index_pack(struct repo *r, const char *name, uint64_t size)
{
        uint8_t hash[HASH_LEN], actual[HASH_LEN];
        _cleanup_free_ struct pack_entry *entries = NULL;
        size_t n = 0;
        struct catalog *c = r->catalog;

        if (!c || !r->writable)
                return 0;
        if (pack_name_parse(name, hash) < 0)
                return error_set(EINVAL, "'%s' is not a pack name", name);
        int k = catalog_pack_known(c, hash);
        if (k != 0)
                return k < 0 ? k : 0;
        k = pack_read_trailer(r->keys, r->be, name, size, &entries, &n, actual);
        if (k < 0)
                return k;
        if (memcmp(actual, hash, HASH_LEN) != 0)
                return error_set(BERTH_ECORRUPT, "pack %s: its name is not the hash of its trailer", name);
        k = recover_record_pack(c, hash, size, entries, n);
        return k < 0 ? k : 1;
}

static void dctx_freep(ZSTD_DCtx **d) { ZSTD_freeDCtx(*d); }

int snapshot_verify_pack(int fd, uint64_t size, const char *name)
{
        uint8_t want[HASH_LEN], got[HASH_LEN], head[PACK_HEADER_SIZE];
        int k;

        if (pack_name_parse(name, want) < 0)
                return error_set(EINVAL, "'%s' is not a pack name", name);
        if (size < PACK_HEADER_SIZE + PACK_FOOTER_SIZE)
                return error_set(BERTH_ECORRUPT, "pack %s is truncated (%llu bytes)", name, (unsigned long long)size);
        if (pread_all(fd, head, sizeof head, 0) < 0 || !pack_header_ok(head))
                return error_set(BERTH_ECORRUPT, "pack %s has no pack header", name);
        _cleanup_free_ struct pack_entry *entries = NULL;
        size_t n;
        uint8_t magic[8];
        /* An encrypted repository's pack: its shape and name only, which
         * the sealed trailer's digest and hash pin down without the key. */
        bool sealed = pread_all(fd, magic, sizeof magic, (off_t)size - 8) == 0 &&
                      memcmp(magic, PACK_FOOTER_MAGIC_SEALED, 8) == 0;
        k = pack_read_trailer_fd(NULL, fd, name, size, sealed ? NULL : &entries, &n, got);
        if (k < 0)
                return k;
        if (memcmp(got, want, HASH_LEN) != 0)
                return error_set(BERTH_ECORRUPT, "pack %s: its name is not the hash of its trailer", name);
        if (sealed)
                return 0;

        _cleanup_(dctx_freep) ZSTD_DCtx *dctx = ZSTD_createDCtx();
        if (!dctx)
                return error_set(ENOMEM, "cannot allocate a zstd context");
        _cleanup_free_ uint8_t *stored = xmalloc(PACK_MAX_CHUNK);
        struct buf out = { 0 };
        for (size_t i = 0; i < n; i++) {
                /* Each record decoded once, for all its chunks. */
                k = 0;
                if (i == 0 || entries[i].offset != entries[i - 1].offset) {
                        k = pread_all(fd, stored, entries[i].stored_len, entries[i].offset);
                        if (k == 0)
                                k = record_decode(NULL, &entries[i], stored, &out, dctx);
                }
                if (k == 0)
                        k = record_chunk_check(NULL, &entries[i], out.data, out.len);
                if (k < 0) {
                        buf_free(&out);
                        return error_set(k == -EIO ? BERTH_ECORRUPT : k, "pack %s: chunk %zu does not match its id",
                                         name, i);
                }
        }
        buf_free(&out);
        return 0;
}
