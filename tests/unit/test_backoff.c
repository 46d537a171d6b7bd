/* Backoff with full jitter: bounds, spread, and no overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "attache/backoff.h"

static void test_ceiling(void **state)
{
	struct backoff b = { 25, 1000 };

	assert_int_equal(backoff_ceiling(&b, 0), 25);
	assert_int_equal(backoff_ceiling(&b, 1), 50);
	assert_int_equal(backoff_ceiling(&b, 5), 800);
	assert_int_equal(backoff_ceiling(&b, 6), 1000);     /* capped */
	assert_int_equal(backoff_ceiling(&b, 4000), 1000);  /* no overflow */
	b = (struct backoff){ UINT64_MAX / 3, UINT64_MAX };
	assert_true(backoff_ceiling(&b, 70) >= UINT64_MAX / 3);
}

/* Every wait lies in [0, ceiling]; over many draws they spread over the
 * whole range (mean near half the ceiling, both ends reached). */
static void test_full_jitter(void **state)
{
	struct backoff b = { 100, 400 };
	uint64_t rng = 42;

	for (unsigned attempt = 0; attempt < 4; attempt++) {
		uint64_t c = backoff_ceiling(&b, attempt), lo = c, hi = 0, sum = 0;
		const int n = 20000;
		for (int i = 0; i < n; i++) {
			uint64_t d = backoff_delay(&b, attempt, &rng);
			assert_true(d <= c);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			sum += d;
		}
		double mean = (double)sum / n;
		assert_true(mean > 0.45 * (double)c && mean < 0.55 * (double)c);
		assert_true(lo <= c / 50 && hi >= c - c / 50);
	}
	b = (struct backoff){ 0, 0 };
	assert_int_equal(backoff_delay(&b, 3, &rng), 0);
}

/* Two apps (two states) that failed at the same moment wait different
 * times. */
static void test_streams_differ(void **state)
{
	struct backoff b = { 1000, 1000 };
	uint64_t r1 = 1, r2 = 2;
	int same = 0;

	for (int i = 0; i < 100; i++)
		same += backoff_delay(&b, 0, &r1) == backoff_delay(&b, 0, &r2);
	assert_true(same < 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ceiling),
		cmocka_unit_test(test_full_jitter),
		cmocka_unit_test(test_streams_differ),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
