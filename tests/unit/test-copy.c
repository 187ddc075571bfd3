/* test-copy.c — chunks handed to a store in their stored form
 * (store_put_stored, as copy does): kept byte for byte, verified before
 * they count as stored, read back without decoding (store_read_stored).
 * And snapshot_copy between encrypted repositories that share a master
 * key (chunk ids kept, the snapshot file sealed again for the destination)
 * and that do not (re-keyed), each restored identical. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>
#include <zstd.h>

#include "../../snapshot/internal.h"

struct fixture {
        char dir[64];
        struct repo *r;
        struct store *s;
};

static int setup(void **state)
{
        struct fixture *f = xcalloc(1, sizeof *f);
        snprintf(f->dir, sizeof f->dir, "/tmp/berth-copy.XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        char path[128];
        snprintf(path, sizeof path, "%s/repo", f->dir);
        assert_int_equal(repo_init(path, NULL), 0);
        assert_int_equal(repo_open(path, REPO_WRITE, 0, &f->r), 0);
        assert_int_equal(repo_store(f->r, &f->s), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        repo_free(f->r);
        rm_rf_at(AT_FDCWD, f->dir);
        free(f);
        return 0;
}

static void test_stored_forms_kept(void **state)
{
        struct fixture *f = *state;
        uint8_t plain[20000], id[HASH_LEN], raw_id[HASH_LEN], raw[3000];
        for (size_t i = 0; i < sizeof plain; i++)
                plain[i] = (uint8_t)(i % 7);
        for (size_t i = 0; i < sizeof raw; i++)
                raw[i] = (uint8_t)(i * 2654435761u >> 13);
        hash_sha256(plain, sizeof plain, id);
        hash_sha256(raw, sizeof raw, raw_id);
        /* a zstd frame at a level the repository would not use */
        uint8_t frame[ZSTD_COMPRESSBOUND(20000)];
        size_t flen = ZSTD_compress(frame, sizeof frame, plain, sizeof plain, 19);
        assert_false(ZSTD_isError(flen));

        assert_int_equal(store_put_stored(f->s, id, PACK_F_ZSTD, frame, flen, sizeof plain), 1);
        assert_int_equal(store_put_stored(f->s, id, PACK_F_ZSTD, frame, flen, sizeof plain), 0);
        assert_int_equal(store_put_stored(f->s, raw_id, 0, raw, sizeof raw, sizeof raw), 1);
        assert_int_equal(store_flush(f->s), 0);
        assert_int_equal(store_has(f->s, id), 1);

        struct buf b = { 0 };
        struct pack_entry e;
        assert_int_equal(store_read_stored(f->s, id, &b, &e), 0);
        assert_int_equal(e.flags & ~PACK_F_ALONE, PACK_F_ZSTD);
        assert_int_equal(e.stored_len, flen);
        assert_int_equal(e.raw_len, sizeof plain);
        assert_memory_equal(b.data, frame, flen);
        assert_int_equal(store_read(f->s, id, &b), 0);
        assert_int_equal(b.len, sizeof plain);
        assert_memory_equal(b.data, plain, sizeof plain);
        assert_int_equal(store_read_stored(f->s, raw_id, &b, &e), 0);
        assert_int_equal(e.flags & ~PACK_F_ALONE, 0);
        assert_memory_equal(b.data, raw, sizeof raw);
        buf_free(&b);
        /* a put of the ordinary kind dedupes against it */
        uint8_t id2[HASH_LEN];
        assert_int_equal(store_put(f->s, false, plain, sizeof plain, id2), 0);
}

static void test_wrong_bytes_refused(void **state)
{
        struct fixture *f = *state;
        uint8_t plain[5000], id[HASH_LEN];
        memset(plain, 'a', sizeof plain);
        hash_sha256(plain, sizeof plain, id);
        plain[100] ^= 1; /* not the bytes of that id */
        assert_int_equal(store_put_stored(f->s, id, 0, plain, sizeof plain, sizeof plain), 1);
        error_clear();
        assert_int_equal(store_flush(f->s), -BERTH_ECORRUPT);
        assert_non_null(strstr(error_message(), "damaged"));
        assert_int_equal(catalog_chunk_count(f->r->catalog), 0);
        /* raw bytes whose lengths disagree are refused at once */
        assert_int_equal(store_put_stored(f->s, id, 0, plain, sizeof plain, sizeof plain - 1), -BERTH_ECORRUPT);
}

/* ---- encrypted repositories ---- */

static char pw_a[] = "password a", pw_b[] = "password b";
static const char *pw_b_path;

static int test_password(const char *where, bool confirm, char **ret)
{
        (void)confirm;
        *ret = xstrdup(pw_b_path && strcmp(where, pw_b_path) == 0 ? pw_b : pw_a);
        return 0;
}

static void make_tree(const char *dir)
{
        assert_int_equal(mkdir(dir, 0755), 0);
        for (int i = 0; i < 3; i++) {
                char p[256];
                snprintf(p, sizeof p, "%s/f%d", dir, i);
                size_t n = 300000 + 70000 * (size_t)i;
                uint8_t *b = xmalloc(n);
                for (size_t k = 0; k < n; k += 256)
                        assert_int_equal(getrandom(b + k, MIN(256, n - k), 0), (ssize_t)MIN(256, n - k));
                int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                assert_true(fd >= 0);
                assert_int_equal(write_all(fd, b, n), 0);
                close(fd);
                free(b);
        }
}

static void same_files(const char *a, const char *b)
{
        for (int i = 0; i < 3; i++) {
                char pa[256], pb[256];
                snprintf(pa, sizeof pa, "%s/f%d", a, i);
                snprintf(pb, sizeof pb, "%s/f%d", b, i);
                struct buf x = { 0 }, y = { 0 };
                assert_int_equal(read_file_at(AT_FDCWD, pa, 1 << 20, &x), 0);
                assert_int_equal(read_file_at(AT_FDCWD, pb, 1 << 20, &y), 0);
                assert_int_equal(x.len, y.len);
                assert_memory_equal(x.data, y.data, x.len);
                buf_free(&x);
                buf_free(&y);
        }
}

/* Source A (password a) with one snapshot; destination B (password b),
 * whose only key object wraps A's master key when share_key. */
static void copy_encrypted(bool share_key)
{
        char dir[64], a[128], bdir[128], src[128], out[128], cache[128];
        snprintf(dir, sizeof dir, "/tmp/berth-copy.XXXXXX");
        assert_non_null(mkdtemp(dir));
        snprintf(a, sizeof a, "%s/a", dir);
        snprintf(bdir, sizeof bdir, "%s/b", dir);
        snprintf(src, sizeof src, "%s/src", dir);
        snprintf(out, sizeof out, "%s/out", dir);
        snprintf(cache, sizeof cache, "%s/cache", dir);
        setenv("BERTH_CACHE_DIR", cache, 1);
        setenv("BERTH_SCRYPT_N_LOG2", "10", 1);
        pw_b_path = bdir;
        repo_set_password_source(test_password);
        make_tree(src);

        struct repo_init_options oa = { .password = pw_a }, ob = { .password = pw_b };
        assert_int_equal(repo_init(a, &oa), 0);
        assert_int_equal(repo_init(bdir, &ob), 0);
        struct repo *ra, *rb;
        assert_int_equal(repo_open(a, REPO_WRITE, 0, &ra), 0);
        struct backup_options bo = { .path = src, .name = "t" };
        struct backup_result br;
        assert_int_equal(snapshot_backup(ra, &bo, &br), 0);

        if (share_key) {
                /* B's key object replaced by one wrapping A's master key
                 * (what an `init --copy-key-from` would write). */
                assert_int_equal(repo_open(bdir, REPO_READ, 0, &rb), 0);
                struct crypto_kdf kdf = { .n = 1 << 10, .r = 8, .p = 1 };
                char *text = NULL;
                assert_int_equal(crypto_key_wrap(crypto_master(ra->keys), rb->cfg.id, rb->cfg.cipher, pw_b, &kdf,
                                                 &text), 0);
                char old[256], new[256];
                snprintf(old, sizeof old, "%s/keys/%s", bdir, rb->key_name);
                snprintf(new, sizeof new, "%s/keys/00000000000000aa", bdir);
                repo_free(rb);
                assert_int_equal(unlink(old), 0);
                int fd = open(new, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                assert_true(fd >= 0);
                assert_int_equal(write_all(fd, text, strlen(text)), 0);
                close(fd);
                free(text);
        }
        assert_int_equal(repo_open(bdir, REPO_WRITE, 0, &rb), 0);
        assert_int_equal(memcmp(crypto_master(ra->keys), crypto_master(rb->keys), CRYPTO_KEY_LEN) == 0, share_key);

        struct copy_result cr;
        assert_int_equal(snapshot_copy(ra, rb, br.id, NULL, &cr), 0);
        assert_false(cr.present);
        assert_true(cr.chunks_sent > 0);
        /* Same master key: the same ids, so the same snapshot id; else another. */
        assert_int_equal(strcmp(cr.id, br.id) == 0, share_key);
        struct restore_options ro = { .target = out };
        struct restore_result rr;
        assert_int_equal(snapshot_restore(rb, cr.id, &ro, &rr), 0);
        same_files(src, out);
        /* again: present, nothing sent */
        assert_int_equal(snapshot_copy(ra, rb, br.id, NULL, &cr), 0);
        assert_true(cr.present);
        assert_int_equal(cr.chunks_sent, 0);
        repo_free(rb);
        repo_free(ra);
        /* the destination opens with its own password only */
        pw_b_path = NULL;
        error_clear();
        assert_int_equal(repo_open(bdir, REPO_READ, 0, &rb), -EACCES);
        error_clear();
        repo_set_password_source(NULL);
        unsetenv("BERTH_CACHE_DIR");
        rm_rf_at(AT_FDCWD, dir);
}

static void test_copy_same_master_key(void **state) { (void)state; copy_encrypted(true); }

static void test_copy_rekeyed(void **state) { (void)state; copy_encrypted(false); }

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_stored_forms_kept, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wrong_bytes_refused, setup, teardown),
                cmocka_unit_test(test_copy_same_master_key),
                cmocka_unit_test(test_copy_rekeyed),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
