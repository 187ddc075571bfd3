/* check.c — verifying a repository.
 *
 * Structure first (snapshot files hash to their names, every pack the
 * catalog lists exists with the recorded size and a trailer that agrees
 * with the catalog), then with read_data every chunk of every pack is
 * decompressed and re-hashed.  Finally every snapshot's manifest is read,
 * and each snapshot that references a damaged or missing chunk is named,
 * with an example path, so the operator knows what a damaged pack costs.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

struct checker {
        struct repo *repo;
        struct store *store;
        const struct check_options *o;
        struct check_result *res;
        struct idset bad;          /* chunks known to be damaged or unreadable */
        struct record_cache rc;    /* --read-data: the record being read */
        int64_t last_progress;
};

static void problem(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct checker *c, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        c->res->errors++;
        if (c->o->problem)
                c->o->problem(c->o->events.ud, msg);
}

static void tick(struct checker *c, const char *what)
{
        if (!c->o->events.progress || mono_ns() - c->last_progress < 250 * 1000 * 1000)
                return;
        c->last_progress = mono_ns();
        struct snapshot_progress p = { .files = c->res->packs, .bytes = c->res->bytes, .path = what };
        c->o->events.progress(c->o->events.ud, &p);
}

static int mark_bad(void *ud, const struct catalog_chunk *ch)
{
        idset_add(ud, ch->id);
        return 0;
}

static int count_row(void *ud, const struct catalog_chunk *ch)
{
        (*(uint64_t *)ud)++;
        return 0;
}

/* A listed pack that is gone: says whether backups since have stored its
 * chunks again (the catalog then points them elsewhere) or what is lost. */
static int missing_pack(struct checker *c, int64_t id, const char *path, int err)
{
        uint64_t left = 0;
        int k = catalog_chunk_foreach_in_pack(c->repo->catalog, id, count_row, &left);
        if (k < 0)
                return k;
        if (left == 0)
                problem(c, "pack %s is missing, but every chunk it held has been stored again since; "
                           "'berth catalog rebuild' forgets it",
                        path);
        else
                problem(c, "pack %s is missing: %s; %llu chunk(s) of data are only there (the next backup of a "
                           "volume that still has that data stores it again)",
                        path, strerror(err), (unsigned long long)left);
        return 0;
}

/* Record offset, then offset inside the record. */
static int by_offset(const void *a, const void *b)
{
        const struct pack_entry *x = a, *y = b;
        if (x->offset != y->offset)
                return x->offset < y->offset ? -1 : 1;
        return x->inner < y->inner ? -1 : x->inner > y->inner;
}

struct catalog_rows {
        struct pack_entry *trailer;
        size_t n;
        uint64_t mismatches;
};

static int compare_row(void *ud, const struct catalog_chunk *ch)
{
        struct catalog_rows *cr = ud;
        struct pack_entry key = { .offset = ch->offset, .inner = ch->inner };
        const struct pack_entry *t = bsearch(&key, cr->trailer, cr->n, sizeof key, by_offset);
        if (!t || memcmp(t->id, ch->id, HASH_LEN) != 0 || t->stored_len != ch->stored_len ||
            t->raw_len != ch->raw_len || t->flags != ch->flags)
                cr->mismatches++;
        return 0;
}

static int read_pack_data(struct checker *c, const char *name, const struct pack_entry *entries, size_t n,
                          uint64_t *ret_bad)
{
        uint64_t bad = 0;

        /* Every chunk must decompress to bytes that hash to its id (the
         * trailer, which names the pack, was checked already).  Entries
         * are in pack order: each record is decoded once for its chunks,
         * and a damaged record costs the chunks inside it, each named. */
        for (size_t i = 0; i < n; i++) {
                const struct pack_entry *e = &entries[i];
                const uint8_t *plain;
                int k = record_cache_chunk(&c->rc, c->repo->keys, c->repo->be, name, e, &plain);
                if (k < 0) {
                        char hex[2 * HASH_LEN + 1];
                        hex_encode(e->id, HASH_LEN, hex);
                        problem(c, "pack %s: chunk %.16s at offset %u+%u is damaged", name, hex, e->offset,
                                e->inner);
                        idset_add(&c->bad, e->id);
                        bad++;
                }
                c->res->chunks++;
                if (i == 0 || e->offset != entries[i - 1].offset)
                        c->res->bytes += e->stored_len;
                tick(c, name);
        }
        *ret_bad = bad;
        return 0;
}

static int check_pack(void *ud, int64_t id, const uint8_t hash[CATALOG_HASH_LEN], uint64_t size, uint32_t nchunks)
{
        struct checker *c = ud;
        char path[128];
        uint64_t have;
        struct pack_entry *entries = NULL;
        size_t n = 0;
        uint64_t bad = 0;
        bool damaged = false;

        pack_path(hash, path, sizeof path);
        c->res->packs++;
        tick(c, path);
        int err = backend_stat(c->repo->be, path, &have);
        if (err < 0) {
                int k = missing_pack(c, id, path, -err);
                if (k < 0)
                        return k;
                damaged = true;
                goto done;
        }
        if (have != size) {
                problem(c, "pack %s has %llu bytes, the catalog says %llu", path, (unsigned long long)have,
                        (unsigned long long)size);
                damaged = true;
        }
        uint8_t actual[HASH_LEN];
        if (pack_read_trailer(c->repo->keys, c->repo->be, path, have, &entries, &n, actual) < 0) {
                problem(c, "%s", error_message());
                error_clear();
                damaged = true;
                goto done;
        }
        if (memcmp(actual, hash, HASH_LEN) != 0) {
                problem(c, "pack %s is damaged: its trailer does not match its name", path);
                damaged = true;
        }
        if (n > 1)
                qsort(entries, n, sizeof *entries, by_offset);
        struct catalog_rows cr = { entries, n, 0 };
        int k = catalog_chunk_foreach_in_pack(c->repo->catalog, id, compare_row, &cr);
        if (k < 0)
                return k;
        if (cr.mismatches) {
                problem(c, "pack %s: %llu catalog entries do not match its trailer (if the pack is sound, the catalog "
                           "is damaged: recreate it with 'berth catalog rebuild')",
                        path, (unsigned long long)cr.mismatches);
                damaged = true;
        }
        if (n != nchunks && !damaged) {
                /* Both are the trailer's count when the pack was indexed. */
                problem(c, "pack %s holds %zu chunks, the catalog says %u: the catalog is damaged; recreate it "
                           "with 'berth catalog rebuild'",
                        path, n, nchunks);
        }
        if (c->o->read_data) {
                read_pack_data(c, path, entries, n, &bad);
                if (bad)
                        damaged = true;
        } else
                c->res->chunks += n;
done:
        free(entries);
        if (damaged) {
                c->res->damaged_packs++;
                /* Chunks we cannot vouch for: all of a pack whose structure
                 * is broken, the bad ones of a pack that only has bad chunks. */
                if (!bad)
                        catalog_chunk_foreach_in_pack(c->repo->catalog, id, mark_bad, &c->bad);
        }
        return 0;
}

/* backend_list() callback: counts packs and snapshot files the catalog
 * does not know. */
static int count_unindexed(void *ud, const char *name, uint64_t size)
{
        struct checker *c = ud;
        uint8_t hash[HASH_LEN];
        const char *id = snapfile_name_id(name);
        if (id) {
                if (catalog_snapshot_known(c->repo->catalog, id) == 0)
                        c->res->unindexed++;
        } else if (pack_name_parse(name, hash) == 0 && catalog_pack_known(c->repo->catalog, hash) == 0)
                c->res->unindexed++;
        return 0;
}

static void check_snapshot(struct checker *c, const struct catalog_snapshot *s)
{
        struct snapfile f = { 0 };
        char t[32];
        format_time(s->started, t, sizeof t);

        c->res->snapshots++;
        if (snapfile_read(c->repo, s->id, &f) < 0) {
                problem(c, "snapshot %.12s (%s, %s) cannot be used: %s", s->id, s->name, t, error_message());
                error_clear();
                c->res->damaged_snapshots++;
                return;
        }
        struct manifest_reader *mr = NULL;
        const struct entry *e;
        uint64_t bad_files = 0, missing = 0;
        _cleanup_free_ char *example = NULL;
        int k = 0;
        for (size_t i = 0; i < f.nmanifest; i++)
                if (idset_contains(&c->bad, f.manifest[i]))
                        k = error_set(BERTH_ECORRUPT, "its file list is in a damaged pack");
        if (k == 0)
                k = manifest_reader_new(c->store, (const uint8_t(*)[HASH_LEN])f.manifest, f.nmanifest, &mr);
        while (k == 0 && (k = manifest_reader_next(mr, &e)) > 0) {
                k = 0;
                bool bad = false;
                for (size_t i = 0; i < e->nchunks && !bad; i++) {
                        if (idset_contains(&c->bad, e->chunks[i].id))
                                bad = true;
                        else if (store_has(c->store, e->chunks[i].id) == 0) {
                                bad = true;
                                missing++;
                        }
                }
                if (bad) {
                        bad_files++;
                        if (!example)
                                example = xstrdup(e->path);
                }
        }
        manifest_reader_free(mr);
        if (k < 0) {
                problem(c, "snapshot %.12s (%s, %s) is damaged: %s", s->id, s->name, t, error_message());
                error_clear();
                c->res->damaged_snapshots++;
        } else if (bad_files) {
                problem(c, "snapshot %.12s (%s, %s) is damaged: %llu file(s) reference %s data, e.g. '%s'", s->id,
                        s->name, t, (unsigned long long)bad_files, missing ? "missing" : "damaged", example);
                c->res->damaged_snapshots++;
        }
        snapfile_clear(&f);
}

struct catalog_problems {
        struct checker *c;
        unsigned n;
};

static void catalog_problem(void *ud, const char *msg)
{
        struct catalog_problems *cp = ud;
        cp->n++;
        problem(cp->c, "catalog %s: %s", cp->c->repo->catalog_path, msg);
}

int snapshot_check(struct repo *r, const struct check_options *o, struct check_result *ret)
{
        struct check_result res = { 0 };
        struct checker c = { .repo = r, .o = o, .res = &res };
        struct catalog_snapshot *list = NULL;
        size_t n = 0;
        int k;

        /* The catalog first: everything below reads it. */
        struct catalog_problems cp = { &c, 0 };
        k = catalog_integrity_check(r->catalog, catalog_problem, &cp);
        if (k != 0) {
                if (k < 0 && !cp.n) {
                        /* It cannot even be read through. */
                        problem(&c, "%s", error_message());
                        error_clear();
                }
                problem(&c, "catalog %s is damaged: recreate it from the packs and snapshot files with 'berth "
                            "catalog rebuild', then check again",
                        r->catalog_path);
                *ret = res;
                return 0;
        }
        k = store_open(r, false, &c.store);
        if (k < 0)
                return k;
        k = catalog_pack_foreach(r->catalog, check_pack, &c);
        if (k < 0)
                goto out;
        /* Listing failures are not the repository's damage: the counts of
         * unindexed files are advice. */
        if (backend_list(r->be, "packs/", count_unindexed, &c) < 0 ||
            backend_list(r->be, "snapshots/", count_unindexed, &c) < 0)
                error_clear();

        k = catalog_snapshot_list(r->catalog, NULL, &list, &n);
        if (k < 0)
                goto out;
        for (size_t i = 0; i < n; i++)
                check_snapshot(&c, &list[i]);
        *ret = res;
        k = 0;
out:
        catalog_snapshot_list_free(list, n);
        idset_free(&c.bad);
        record_cache_free(&c.rc);
        store_free(c.store);
        return k;
}
