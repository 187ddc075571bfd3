/* test-escape.c — names shown escaped, and times in ns that saturate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../common/common.h"

static void check_name(const char *in, size_t n, const char *want)
{
        char *got = escape_name(in, n);
        assert_string_equal(got, want);
        free(got);
}

/* the literal's length, NULs included */
#define CHECK(lit, want) check_name(lit, sizeof(lit) - 1, want)

static void test_escape_controls(void **state)
{
        CHECK("plain name", "plain name");
        CHECK("x\nberth: error: forged", "x\\nberth: error: forged");
        CHECK("\t\r\a\b\f\v\x1b[31m", "\\t\\r\\a\\b\\f\\v\\e[31m");
        CHECK("nul\0x", "nul\\x00x");
        CHECK("\x01\x7f", "\\x01\\x7f");
        CHECK("back\\slash", "back\\\\slash");
}

static void test_escape_utf8(void **state)
{
        /* valid UTF-8 passes: é, €, 😀 */
        CHECK("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
        /* latin-1, a truncated sequence, an overlong '/', a surrogate, a C1 CSI */
        CHECK("\xe9t\xe9", "\\xe9t\\xe9");
        CHECK("a\xe2\x82", "a\\xe2\\x82");
        CHECK("\xc0\xaf", "\\xc0\\xaf");
        CHECK("\xed\xa0\x80", "\\xed\\xa0\\x80");
        CHECK("\xc2\x9b" "31m", "\\xc2\\x9b31m");
}

static void test_escape_text_keeps_backslashes(void **state)
{
        char *got = escape_text("'a\\b\nc'");
        assert_string_equal(got, "'a\\b\\nc'");
        free(got);
}

static void test_time_ns_saturates(void **state)
{
        assert_int_equal(time_ns(1700000000, 5), 1700000000000000005LL);
        assert_int_equal(time_ns(-1, 0), -1000000000LL);
        assert_int_equal(time_ns(1000000000000000LL, 0), INT64_MAX);
        assert_int_equal(time_ns(-1000000000000000LL, 999999999), INT64_MIN);
        assert_int_equal(time_ns(INT64_MAX / 1000000000, 999999999), INT64_MAX);
        assert_int_equal(time_ns(INT64_MAX, 0), INT64_MAX);
        assert_int_equal(time_ns(INT64_MIN, 0), INT64_MIN);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_escape_controls),
                cmocka_unit_test(test_escape_utf8),
                cmocka_unit_test(test_escape_text_keeps_backslashes),
                cmocka_unit_test(test_time_ns_saturates),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
