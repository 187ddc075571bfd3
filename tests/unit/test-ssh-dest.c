/* test-ssh-dest.c — what the user types as an SSH destination. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../common/common.h"
#include "../../transport/transport.h"

static void check(const char *s, const char *user, const char *host, unsigned port, const char *path)
{
        struct ssh_destination d = {};

        if (ssh_parse_destination(s, &d) < 0)
                fail_msg("'%s' refused: %s", s, error_message());
        if (user)
                assert_string_equal(d.user, user);
        else
                assert_null(d.user);
        assert_string_equal(d.host, host);
        assert_int_equal(d.port, port);
        if (path)
                assert_string_equal(d.path, path);
        else
                assert_null(d.path);
        ssh_destination_clear(&d);
        assert_null(d.host);
}

static void refuse(const char *s, const char *words)
{
        struct ssh_destination d = {};

        error_clear();
        int r = ssh_parse_destination(s, &d);
        if (r != -EINVAL)
                fail_msg("'%s' gave %d, not -EINVAL", s, r);
        assert_null(d.host);
        assert_non_null(error_message());
        if (words && !strstr(error_message(), words))
                fail_msg("'%s': message '%s' lacks '%s'", s, error_message(), words);
}

static void test_plain(void **state)
{
        check("hostb", NULL, "hostb", 0, NULL);
        check("admin@hostb", "admin", "hostb", 0, NULL);
        check("admin@hostb:2222", "admin", "hostb", 2222, NULL);
        check("hostb.example.org:22", NULL, "hostb.example.org", 22, NULL);
        check("root@10.0.0.7:65535", "root", "10.0.0.7", 65535, NULL);
        check("a.b@h_1:1", "a.b", "h_1", 1, NULL);
}

static void test_ipv6(void **state)
{
        check("[::1]", NULL, "::1", 0, NULL);
        check("admin@[::1]:2222", "admin", "::1", 2222, NULL);
        check("admin@[fe80::1%eth0]:22", "admin", "fe80::1%eth0", 22, NULL);
        check("admin@2001:db8::7", "admin", "2001:db8::7", 0, NULL);
        check("ssh://backup@[2001:db8::7]:2222/srv/berth", "backup", "2001:db8::7", 2222, "/srv/berth");
}

static void test_url(void **state)
{
        check("ssh://backup@vault/srv/berth", "backup", "vault", 0, "/srv/berth");
        check("ssh://backup@vault:2222/srv/berth", "backup", "vault", 2222, "/srv/berth");
        check("ssh://vault", NULL, "vault", 0, NULL);
        check("ssh://vault:2222/", NULL, "vault", 2222, "/");
        check("ssh://u@vault/~/repo", "u", "vault", 0, "/~/repo");
}

static void test_refused(void **state)
{
        refuse("", NULL);
        refuse("admin@", "no host");
        refuse("@hostb", "empty user");
        refuse("admin@hostb:", "empty port");
        refuse("admin@hostb:0", "out of range");
        refuse("admin@hostb:65536", "out of range");
        refuse("admin@hostb:99999999999999999999", "out of range");
        refuse("admin@hostb:/srv/berth", "ssh://");
        refuse("admin@hostb:22x", "must be a number");
        refuse("-oProxyCommand=x", "may not start with '-'");
        refuse("admin@-hostb", "may not start with '-'");
        refuse("-admin@hostb", "may not start with '-'");
        refuse("ad min@hostb", "user name");
        refuse("admin@ho st", "host name");
        refuse("admin@host\nb", "control character");
        refuse("admin@[::1", "without ']'");
        refuse("admin@[::1]x", "after ']'");
        refuse("admin@[nonsense]:22", "IPv6");
        refuse("admin@[hostb]", "IPv6");
        refuse("admin@1:2:3", "brackets");
        refuse("a:b@hostb", "user name");
        refuse("http://hostb/x", "only ssh://");
        refuse("ssh://", "no host");
        refuse("ssh:///srv", "no host");
        refuse("ssh://u@h/a b", "space");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plain),
                cmocka_unit_test(test_ipv6),
                cmocka_unit_test(test_url),
                cmocka_unit_test(test_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
