/* test-s3.c — s3:// URLs and ListObjectsV2 replies (transport/backend-s3.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/common.h"
#include "../../transport/s3.h"

static void url_ok(void **state)
{
        struct s3_url u = { 0 };
        assert_int_equal(s3_url_parse("s3://backups/fleet?endpoint=https://rgw.internal:7480", &u), 0);
        assert_string_equal(u.bucket, "backups");
        assert_string_equal(u.prefix, "fleet");
        assert_string_equal(u.endpoint, "https://rgw.internal:7480");
        assert_null(u.region);
        assert_false(u.virtual_host); /* an explicit endpoint: path style */
        assert_false(u.insecure);

        assert_int_equal(s3_url_parse("s3://my.bucket-1/a/b/c/?endpoint=http%3A%2F%2F127.0.0.1%3A8000/&region=eu-west-3"
                                      "&style=virtual&insecure=1", &u), 0);
        assert_string_equal(u.bucket, "my.bucket-1");
        assert_string_equal(u.prefix, "a/b/c");
        assert_string_equal(u.endpoint, "http://127.0.0.1:8000");
        assert_string_equal(u.region, "eu-west-3");
        assert_true(u.virtual_host);
        assert_true(u.insecure);

        /* no endpoint: AWS, virtual-host style; no prefix: the bucket's root */
        assert_int_equal(s3_url_parse("s3://bucket", &u), 0);
        assert_string_equal(u.prefix, "");
        assert_null(u.endpoint);
        assert_true(u.virtual_host);
        assert_int_equal(s3_url_parse("s3://bucket/?style=path", &u), 0);
        assert_string_equal(u.prefix, "");
        assert_false(u.virtual_host);
        s3_url_clear(&u);
        assert_null(u.bucket);
        assert_true(s3_url_is("s3://x"));
        assert_false(s3_url_is("ssh://x"));
}

static void url_bad(void **state)
{
        static const char *const bad[][2] = {
                { "ssh://host/x", "not an s3:// URL" },
                { "s3://", "bucket name" },
                { "s3://ab", "bucket name" },
                { "s3://Upper/x", "bucket name" },
                { "s3://-bucket/x", "bucket name" },
                { "s3://bucket_x/x", "bucket name" },
                { "s3://bucket/a//b", "prefix" },
                { "s3://bucket/.hidden", "prefix" },
                { "s3://bucket/a b", "prefix" },
                { "s3://bucket/x?endpoint", "KEY=VALUE" },
                { "s3://bucket/x?endpoint=ftp://host", "invalid endpoint" },
                { "s3://bucket/x?endpoint=http://host/path", "invalid endpoint" },
                { "s3://bucket/x?endpoint=http://", "invalid endpoint" },
                { "s3://bucket/x?endpoint=http://h%zz", "%-escape" },
                { "s3://bucket/x?endpoint=http://h%00x", "%-escape" },
                { "s3://bucket/x?region=", "invalid region" },
                { "s3://bucket/x?region=EU_1", "invalid region" },
                { "s3://bucket/x?style=diagonal", "invalid style" },
                { "s3://bucket/x?insecure=yes", "invalid insecure" },
                { "s3://bucket/x?color=blue", "unknown parameter 'color'" },
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct s3_url u = { 0 };
                error_clear();
                int r = s3_url_parse(bad[i][0], &u);
                if (r != -EINVAL)
                        fail_msg("'%s' gave %d, not -EINVAL", bad[i][0], r);
                if (!error_message() || !strstr(error_message(), bad[i][1]))
                        fail_msg("'%s': message '%s' lacks '%s'", bad[i][0], error_message(), bad[i][1]);
                assert_null(u.bucket);
        }
}

struct seen {
        char keys[8][64];
        uint64_t sizes[8];
        int n;
};

static int add(void *ud, const char *key, uint64_t size)
{
        struct seen *s = ud;
        if (s->n == 8)
                return -E2BIG;
        snprintf(s->keys[s->n], sizeof s->keys[0], "%s", key);
        s->sizes[s->n++] = size;
        return 0;
}

static int stop(void *ud, const char *key, uint64_t size) { return -ECANCELED; }

static int parse(const char *xml, struct seen *s, bool *trunc, char **token)
{
        memset(s, 0, sizeof *s);
        return s3_parse_list(xml, strlen(xml), add, s, trunc, token);
}

static void list_ok(void **state)
{
        struct seen s;
        bool trunc;
        char *token;
        const char *page1 =
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name>"
                "<Prefix>fleet/packs/</Prefix><MaxKeys>2</MaxKeys><IsTruncated>true</IsTruncated>"
                "<Contents><Key>fleet/packs/ab/ab01</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
                "<ETag>&quot;x&quot;</ETag><Size>16777216</Size><StorageClass>STANDARD</StorageClass></Contents>"
                "<Contents><Key>fleet/a&amp;b</Key><Size>0</Size></Contents>"
                "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
                "<KeyCount>2</KeyCount></ListBucketResult>";
        assert_int_equal(parse(page1, &s, &trunc, &token), 0);
        assert_int_equal(s.n, 2);
        assert_string_equal(s.keys[0], "fleet/packs/ab/ab01");
        assert_int_equal(s.sizes[0], 16777216);
        assert_string_equal(s.keys[1], "fleet/a&b");
        assert_int_equal(s.sizes[1], 0);
        assert_true(trunc);
        assert_string_equal(token, "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");
        free(token);

        /* the last page; an empty listing */
        assert_int_equal(parse("<ListBucketResult><IsTruncated>false</IsTruncated>"
                               "<Contents><Key>k</Key><Size>5</Size></Contents></ListBucketResult>",
                               &s, &trunc, &token), 0);
        assert_int_equal(s.n, 1);
        assert_false(trunc);
        assert_null(token);
        assert_int_equal(parse("<ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>", &s, &trunc, &token), 0);
        assert_int_equal(s.n, 0);
        assert_false(trunc);

        /* fn's error stops the listing */
        assert_int_equal(s3_parse_list(page1, strlen(page1), stop, NULL, &trunc, &token), -ECANCELED);
        assert_null(token);
}

static void list_bad(void **state)
{
        static const char *const bad[] = {
                "",
                "not xml",
                "<ListBucketResult><Contents><Key>k</Key><Size>1</Size></Contents>", /* unclosed */
                "<Error><Code>NoSuchBucket</Code></Error>",
                "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
                "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
                "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
                "<ListBucketResult><Contents><Key>k</Key><Size>12x</Size></Contents></ListBucketResult>",
                "<ListBucketResult><Contents><Key>k</Key><Size>99999999999999999999999</Size></Contents>"
                "</ListBucketResult>",
                "<ListBucketResult><Contents><Key></Key><Size>1</Size></Contents></ListBucketResult>",
                "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", /* no token */
                "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><ListBucketResult><Contents><Key>&e;</Key>"
                "<Size>1</Size></Contents></ListBucketResult>",
        };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                struct seen s;
                bool trunc;
                char *token;
                int r = parse(bad[i], &s, &trunc, &token);
                if (r != -BERTH_EPROTO)
                        fail_msg("listing %zu gave %d, not -BERTH_EPROTO", i, r);
                assert_null(token);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(url_ok),
                cmocka_unit_test(url_bad),
                cmocka_unit_test(list_ok),
                cmocka_unit_test(list_bad),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
