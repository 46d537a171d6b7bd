#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "attache/initopts.h"

static char outbuf[4096], errbuf[4096];

static int parse(struct init_opts *o, const char *const *args)
{
	char *argv[16];
	int argc = 0;
	FILE *out = fmemopen(outbuf, sizeof(outbuf), "w");
	FILE *err = fmemopen(errbuf, sizeof(errbuf), "w");

	argv[argc++] = "attache-init";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	int rc = init_opts_parse(o, argc, argv, out, err);
	fclose(out);
	fclose(err);
	return rc;
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void test_install(void **state)
{
	struct init_opts o;

	assert_int_equal(parse(&o, ARGS("--proxy-uid", "1337")), 0);
	assert_true(o.have_uid);
	assert_int_equal(o.proxy_uid, 1337);
	assert_int_equal(o.redirect_port, 15001);
	assert_int_equal(o.ipv6, IPV6_AUTO);
	assert_false(o.dry_run);
	assert_false(o.cleanup);

	assert_int_equal(parse(&o, ARGS("--proxy-uid=root", "--redirect-port",
	                                 "16001", "--ipv6", "off",
	                                 "--dry-run")), 0);
	assert_int_equal(o.proxy_uid, 0);
	assert_int_equal(o.redirect_port, 16001);
	assert_int_equal(o.ipv6, IPV6_OFF);
	assert_true(o.dry_run);
}

static void test_cleanup_needs_no_uid(void **state)
{
	struct init_opts o;

	assert_int_equal(parse(&o, ARGS("--cleanup")), 0);
	assert_true(o.cleanup);
	assert_false(o.have_uid);
}

static void test_errors(void **state)
{
	const struct { const char *const *args; const char *msg; } bad[] = {
		{ ARGS("--dry-run"), "--proxy-uid is required" },
		{ ARGS("--proxy-uid", "no-such-user-here"), "neither a uid nor a known user" },
		{ ARGS("--proxy-uid", "12x"), "neither a uid" },
		{ ARGS("--proxy-uid", "1", "--redirect-port", "0"), "'0' is not a port" },
		{ ARGS("--proxy-uid", "1", "--redirect-port", "70000"), "is not a port" },
		{ ARGS("--proxy-uid", "1", "--ipv6", "maybe"), "'maybe' is not auto, on or off" },
		{ ARGS("--proxy-uid"), "--proxy-uid needs a value" },
		{ ARGS("--flush-everything"), "unknown option" },
		{ ARGS("--cleanup", "now"), "unexpected argument 'now'" },
	};
	struct init_opts o;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(&o, bad[i].args), -1);
		if (!strstr(errbuf, bad[i].msg))
			fail_msg("case %zu: '%s' not in '%s'", i, bad[i].msg, errbuf);
	}
}

static void test_help(void **state)
{
	struct init_opts o;

	assert_int_equal(parse(&o, ARGS("--help")), 1);
	assert_non_null(strstr(outbuf, "--cleanup"));
	assert_non_null(strstr(outbuf, "Exit status"));
	assert_int_equal(parse(&o, ARGS("--version")), 1);
	assert_non_null(strstr(outbuf, "attache-init " ATTACHE_VERSION));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_install),
		cmocka_unit_test(test_cleanup_needs_no_uid),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
