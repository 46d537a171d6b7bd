#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "attache/options.h"

static char outbuf[4096], errbuf[4096];

static int parse(struct options *o, const char *const *args)
{
	char *argv[16];
	int argc = 0;
	FILE *out = fmemopen(outbuf, sizeof(outbuf), "w");
	FILE *err = fmemopen(errbuf, sizeof(errbuf), "w");

	argv[argc++] = "attache";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	options_defaults(o);
	int rc = options_parse(o, argc, argv, out, err);
	fclose(out);
	fclose(err);
	return rc;
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void test_defaults(void **state)
{
	struct options o;

	assert_int_equal(parse(&o, (const char *const[]){ NULL }), 0);
	assert_int_equal(o.port, 15001);
	assert_int_equal(o.connect_timeout_ms, 5000);
	assert_int_equal(o.idle_timeout_ms, 3600000);
	assert_int_equal(o.drain_timeout_ms, 15000);
	assert_int_equal(o.mark, 0);
}

static void test_values(void **state)
{
	struct options o;

	assert_int_equal(parse(&o, ARGS("-p", "16001", "--connect-timeout",
	                                 "250ms", "--idle-timeout=2m",
	                                 "--drain-timeout", "3")), 0);
	assert_int_equal(o.port, 16001);
	assert_int_equal(o.connect_timeout_ms, 250);
	assert_int_equal(o.idle_timeout_ms, 120000);
	assert_int_equal(o.drain_timeout_ms, 3000);
	assert_int_equal(parse(&o, ARGS("--port=1")), 0);
	assert_int_equal(o.port, 1);
	assert_int_equal(parse(&o, ARGS("--mark", "0x539")), 0);
	assert_int_equal(o.mark, 0x539);
}

static void test_errors(void **state)
{
	const struct { const char *const *args; const char *msg; } bad[] = {
		{ ARGS("-p", "0"), "'0' is not a port" },
		{ ARGS("--port", "65536"), "'65536' is not a port" },
		{ ARGS("--port", "80x"), "'80x' is not a port" },
		{ ARGS("--port"), "--port needs a value" },
		{ ARGS("--connect-timeout", "soon"), "'soon' is not a duration" },
		{ ARGS("--idle-timeout", "0"), "'0' is not a duration" },
		{ ARGS("--drain-timeout", "8d"), "'8d' is not a duration" },
		{ ARGS("--mark", "0"), "--mark: '0' is not a mark" },
		{ ARGS("--mark", "0x100000000"), "is not a mark" },
		{ ARGS("--mark", "-1"), "is not a mark" },
		{ ARGS("--bogus"), "unknown option '--bogus'" },
		{ ARGS("extra"), "unexpected argument 'extra'" },
	};
	struct options o;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(&o, bad[i].args), -1);
		assert_non_null(strstr(errbuf, bad[i].msg));
		assert_non_null(strstr(errbuf, "Try 'attache --help'"));
	}
}

static void test_help_version(void **state)
{
	struct options o;

	assert_int_equal(parse(&o, ARGS("--help")), 1);
	assert_non_null(strstr(outbuf, "Usage: attache"));
	assert_non_null(strstr(outbuf, "--drain-timeout"));
	assert_int_equal(parse(&o, ARGS("-h")), 1);
	assert_int_equal(parse(&o, ARGS("--version")), 1);
	assert_non_null(strstr(outbuf, "attache " ATTACHE_VERSION));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_help_version),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
