/* test-known-hosts.c — known_hosts matching as ssh(1) does it: ports exact
 * both ways, patterns, negation, hashed names, markers, bad lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../../common/common.h"
#include "../../transport/internal.h"
#include "../../transport/transport.h"

/* Two ed25519 public keys (wire blobs in base64), as ssh-keygen writes them. */
#define KEY_A "AAAAC3NzaC1lZDI1NTE5AAAAIBToXsNVN53BlZTrc2r7S/G+xuq69siQpoH8Ec8VrHPO"
#define KEY_B "AAAAC3NzaC1lZDI1NTE5AAAAIM1tWAY5XSoT2hzk8mPuPUIhjJ3AdF3NPHkmfrZ+Iqy4"
/* ssh-keygen -lf of KEY_A */
#define KEY_A_FP "SHA256:z/DtXLnRu3lrrUvvhl8cFw5Yec7vvNuHMeIIb3WDiys"
/* "|1|salt|hash" of "[vault]:2222" with salt "0123456789abcdefghij" */
#define HASHED_VAULT_2222 "|1|MDEyMzQ1Njc4OWFiY2RlZmdoaWo=|"

static char dir[] = "/tmp/test-known-hosts.XXXXXX";
static char path[64];

static uint8_t key_a[51], key_b[51];

static void decode(const char *b64, uint8_t *out)
{
        uint8_t tmp[64];
        int n = EVP_DecodeBlock(tmp, (const uint8_t *)b64, (int)strlen(b64));
        assert_int_equal(n, 51);
        memcpy(out, tmp, 51);
}

static void write_file(const char *text)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void expect(const char *host, unsigned port, const uint8_t *key, enum known_host_verdict want,
                   unsigned want_line)
{
        enum known_host_verdict v;
        unsigned line;

        assert_int_equal(known_hosts_check(path, host, port, key, 51, &v, &line), 0);
        if (v != want || (want != KNOWN_HOST_UNKNOWN && line != want_line))
                fail_msg("%s:%u: verdict %d line %u, wanted %d line %u", host, port, v, line, want, want_line);
}

static int setup(void **state)
{
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/known_hosts", dir);
        decode(KEY_A, key_a);
        decode(KEY_B, key_b);
        return 0;
}

static int teardown(void **state)
{
        unlink(path);
        rmdir(dir);
        return 0;
}

static void test_ports_are_exact(void **state)
{
        write_file("vault ssh-ed25519 " KEY_A "\n"
                   "[vault]:2222 ssh-ed25519 " KEY_B "\n");
        expect("vault", 22, key_a, KNOWN_HOST_MATCH, 1);
        expect("vault", 0, key_a, KNOWN_HOST_MATCH, 1);
        /* the port-22 entry says nothing about 2222, nor 2222's about 22 */
        expect("vault", 2222, key_b, KNOWN_HOST_MATCH, 2);
        expect("vault", 2222, key_a, KNOWN_HOST_CHANGED, 2);
        expect("vault", 22, key_b, KNOWN_HOST_CHANGED, 1);
        expect("vault", 2223, key_a, KNOWN_HOST_UNKNOWN, 0);
        /* "[vault]:22" is how nobody writes port 22, but it is not "vault" */
        write_file("[vault]:22 ssh-ed25519 " KEY_A "\n");
        expect("vault", 22, key_a, KNOWN_HOST_UNKNOWN, 0);
}

static void test_patterns(void **state)
{
        write_file("# comment\n"
                   "\n"
                   "   \n"
                   "db1,VAULT,10.0.0.7 ssh-ed25519 " KEY_A " a comment\n"
                   "*.example.org,!bad.example.org ssh-ed25519 " KEY_B "\n"
                   "[web?]:2222 ssh-ed25519 " KEY_A "\n");
        expect("vault", 22, key_a, KNOWN_HOST_MATCH, 4);
        expect("Vault", 22, key_a, KNOWN_HOST_MATCH, 4);
        expect("10.0.0.7", 22, key_a, KNOWN_HOST_MATCH, 4);
        expect("10.0.0.70", 22, key_a, KNOWN_HOST_UNKNOWN, 0);
        expect("a.example.org", 22, key_b, KNOWN_HOST_MATCH, 5);
        expect("bad.example.org", 22, key_b, KNOWN_HOST_UNKNOWN, 0);
        expect("a.example.org", 2222, key_b, KNOWN_HOST_UNKNOWN, 0);
        expect("web1", 2222, key_a, KNOWN_HOST_MATCH, 6);
        expect("web12", 2222, key_a, KNOWN_HOST_UNKNOWN, 0);
}

static void test_hashed(void **state)
{
        char line[256];
        /* the HMAC is computed here with libcrypto, as ssh-keygen -H does */
        uint8_t md[20];
        unsigned mdlen;
        HMAC(EVP_sha1(), "0123456789abcdefghij", 20, (const uint8_t *)"[vault]:2222", 12, md, &mdlen);
        char b64[64];
        EVP_EncodeBlock((uint8_t *)b64, md, 20);
        snprintf(line, sizeof line, HASHED_VAULT_2222 "%s ssh-ed25519 " KEY_A "\n", b64);
        write_file(line);
        expect("vault", 2222, key_a, KNOWN_HOST_MATCH, 1);
        expect("VAULT", 2222, key_b, KNOWN_HOST_CHANGED, 1);
        expect("vault", 22, key_a, KNOWN_HOST_UNKNOWN, 0);
        expect("vault2", 2222, key_a, KNOWN_HOST_UNKNOWN, 0);
}

static void test_markers_and_bad_lines(void **state)
{
        write_file("@cert-authority * ssh-ed25519 " KEY_A "\n"
                   "@bogus vault ssh-ed25519 " KEY_A "\n"
                   "vault ssh-ed25519\n"
                   "vault ssh-ed25519 AAAA\n"
                   "vault ssh-rsa " KEY_A "\n"
                   "vault ssh-ed25519 " KEY_A "\n"
                   "@revoked vault ssh-ed25519 " KEY_B "\n"
                   "vault ssh-ed25519 " KEY_B "\n");
        /* only line 6 is a usable entry for key A; line 7 revokes key B for vault */
        expect("vault", 22, key_a, KNOWN_HOST_MATCH, 6);
        expect("vault", 22, key_b, KNOWN_HOST_REVOKED, 7);
        /* a CA line alone does not make a host known */
        write_file("@cert-authority * ssh-ed25519 " KEY_A "\n");
        expect("vault", 22, key_a, KNOWN_HOST_UNKNOWN, 0);
}

static void test_methods(void **state)
{
        char *m = NULL;

        write_file("vault ecdsa-sha2-nistp256 AAAA\n" /* bad: skipped */
                   "vault ssh-ed25519 " KEY_A "\n"
                   "@revoked vault ssh-ed25519 " KEY_B "\n"
                   "vault ssh-ed25519 " KEY_B "\n");
        assert_int_equal(known_hosts_methods(path, "vault", 22, &m), 0);
        assert_string_equal(m, "ssh-ed25519");
        free(m);
        assert_int_equal(known_hosts_methods(path, "vault", 2222, &m), 0);
        assert_null(m);
        unlink(path);
        assert_int_equal(known_hosts_methods(path, "vault", 22, &m), 0);
        assert_null(m);
}

static void test_add(void **state)
{
        char sub[128];
        struct stat st;

        snprintf(sub, sizeof sub, "%s/new/known_hosts", dir);
        assert_int_equal(known_hosts_add(sub, "Vault", 2222, key_a, 51), 0);
        assert_int_equal(stat(sub, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        strcpy(path, sub);
        expect("vault", 2222, key_a, KNOWN_HOST_MATCH, 1);
        /* appended after a last line without its newline */
        FILE *f = fopen(path, "a");
        fputs("other ssh-ed25519 " KEY_B, f);
        fclose(f);
        assert_int_equal(known_hosts_add(path, "vault", 22, key_b, 51), 0);
        expect("vault", 22, key_b, KNOWN_HOST_MATCH, 3);
        expect("other", 22, key_b, KNOWN_HOST_MATCH, 2);
        unlink(path);
        *strrchr(sub, '/') = 0;
        assert_int_equal(stat(sub, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        rmdir(sub);
        snprintf(path, sizeof path, "%s/known_hosts", dir);
}

static void test_fingerprint(void **state)
{
        char fp[SSH_FINGERPRINT_MAX];
        ssh_fingerprint(key_a, 51, fp);
        assert_string_equal(fp, KEY_A_FP);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ports_are_exact),
                cmocka_unit_test(test_patterns),
                cmocka_unit_test(test_hashed),
                cmocka_unit_test(test_markers_and_bad_lines),
                cmocka_unit_test(test_methods),
                cmocka_unit_test(test_add),
                cmocka_unit_test(test_fingerprint),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
