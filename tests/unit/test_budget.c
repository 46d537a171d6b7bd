/* The retry budget's arithmetic over a sliding window, on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "attache/budget.h"

static unsigned retries_allowed(struct budget *b, uint64_t now)
{
	unsigned n = 0;

	while (budget_retry(b, now))
		n++;
	return n;
}

/* 20 % of the requests in the window, plus the floor (1/s over 10 s). */
static void test_ratio_and_floor(void **state)
{
	struct budget b;

	budget_init(&b, 20, 1, 10000, 0);
	assert_int_equal(retries_allowed(&b, 0), 10);       /* the floor alone */
	assert_int_equal(b.missed, 1);
	for (int i = 0; i < 100; i++)
		budget_request(&b, 500);
	assert_int_equal(retries_allowed(&b, 500), 20);     /* 10 + 20 more */
	assert_int_equal(b.missed, 2);

	uint32_t req, ret, allowed;
	budget_state(&b, 500, &req, &ret, &allowed);
	assert_int_equal(req, 100);
	assert_int_equal(ret, 30);
	assert_int_equal(allowed, 30);
}

/* What is older than the window no longer counts, slice by slice. */
static void test_window_slides(void **state)
{
	struct budget b;
	uint32_t req, ret, allowed;

	budget_init(&b, 50, 0, 10000, 0);
	for (int i = 0; i < 10; i++)
		budget_request(&b, 0);                         /* slice 0 */
	for (int i = 0; i < 10; i++)
		budget_request(&b, 5500);                      /* slice 5 */
	assert_int_equal(retries_allowed(&b, 5500), 10);
	budget_state(&b, 9999, &req, &ret, &allowed);
	assert_int_equal(req, 20);
	budget_state(&b, 10000, &req, &ret, &allowed);     /* slice 0 gone */
	assert_int_equal(req, 10);
	assert_int_equal(ret, 10);
	assert_int_equal(allowed, 5);
	assert_false(budget_retry(&b, 10000));
	budget_state(&b, 16000, &req, &ret, &allowed);     /* all gone */
	assert_int_equal(req, 0);
	assert_int_equal(ret, 0);
	budget_state(&b, 1000000, &req, &ret, &allowed);   /* a long quiet */
	assert_int_equal(req, 0);
	for (int i = 0; i < 4; i++)
		budget_request(&b, 1000000);
	assert_int_equal(retries_allowed(&b, 1000000), 2);
}

/* The amplification bound the e2e test checks: under a total outage,
 * every request retried as often as the budget lets, attempts stay at
 * most (1 + ratio) x requests + the floor. */
static void test_outage_bound(void **state)
{
	struct budget b;
	uint64_t requests = 0, attempts = 0;

	budget_init(&b, 20, 2, 10000, 0);
	for (uint64_t t = 0; t < 5000; t += 5) {
		for (int app = 0; app < 4; app++) {
			budget_request(&b, t);
			requests++;
			attempts++;
			for (int r = 0; r < 3 && budget_retry(&b, t); r++)
				attempts++;
		}
	}
	assert_true(attempts <= requests + requests / 5 + 2 * 10);
	assert_true(attempts > requests);   /* retries did happen */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ratio_and_floor),
		cmocka_unit_test(test_window_slides),
		cmocka_unit_test(test_outage_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
