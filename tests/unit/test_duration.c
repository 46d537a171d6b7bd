#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "attache/duration.h"

static void test_units(void **state)
{
	static const struct { const char *s; uint64_t ms; } ok[] = {
		{ "250ms", 250 }, { "5s", 5000 }, { "5", 5000 }, { "0.5", 500 },
		{ "1.5s", 1500 }, { "2m", 120000 }, { "1h", 3600000 },
		{ "0", 0 }, { "0ms", 0 },
	};
	uint64_t ms;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(duration_parse(ok[i].s, UINT64_MAX / 2, &ms), 0);
		assert_int_equal(ms, ok[i].ms);
	}
}

static void test_rejects(void **state)
{
	static const char *bad[] = {
		"", "s", "-1", "+1", " 1", "1 s", "1sec", "1d", "inf", "nan",
		"1e400", "5ms ", "1..2", "0x10",
	};
	uint64_t ms = 77;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(duration_parse(bad[i], UINT64_MAX / 2, &ms), -1);
	assert_int_equal(duration_parse(NULL, 10, &ms), -1);
	assert_int_equal(ms, 77);   /* untouched on failure */
}

static void test_max(void **state)
{
	uint64_t ms;

	assert_int_equal(duration_parse("10s", 10000, &ms), 0);
	assert_int_equal(duration_parse("10001ms", 10000, &ms), -1);
	assert_int_equal(duration_parse("1h", 10000, &ms), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
