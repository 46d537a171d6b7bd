/* The circuit breaker's states, on a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "attache/breaker.h"

static void test_opens_after_threshold(void **state)
{
	struct breaker b;

	breaker_init(&b, 3, 1000, 8000);
	breaker_failure(&b, 0);
	breaker_failure(&b, 0);
	breaker_success(&b);                 /* consecutive: a success resets */
	breaker_failure(&b, 0);
	breaker_failure(&b, 0);
	assert_true(breaker_allow(&b, 0));
	assert_int_equal(b.state, BREAKER_CLOSED);
	breaker_failure(&b, 100);
	assert_int_equal(b.state, BREAKER_OPEN);
	assert_string_equal(breaker_state_str(b.state), "open");
	assert_false(breaker_allow(&b, 100));
	assert_false(breaker_allow(&b, 1099));
	breaker_success(&b);                 /* a straggler: still open */
	assert_false(breaker_allow(&b, 1099));
}

static void test_half_open_probe(void **state)
{
	struct breaker b;

	breaker_init(&b, 1, 1000, 8000);
	breaker_failure(&b, 0);
	assert_true(breaker_allow(&b, 1000));      /* the probe */
	assert_int_equal(b.state, BREAKER_HALF_OPEN);
	assert_false(breaker_allow(&b, 1000));     /* only one */
	assert_false(breaker_allow(&b, 5000));
	breaker_success(&b);
	assert_int_equal(b.state, BREAKER_CLOSED);
	assert_true(breaker_allow(&b, 5000));
	assert_true(breaker_allow(&b, 5000));
}

/* Each trip in a row ejects twice as long, up to the cap; a close starts
 * over. */
static void test_ejection_grows_and_caps(void **state)
{
	struct breaker b;
	uint64_t now = 0;
	uint64_t want[] = { 1000, 2000, 4000, 8000, 8000 };

	breaker_init(&b, 1, 1000, 8000);
	breaker_failure(&b, now);
	for (unsigned i = 0; i < 5; i++) {
		assert_int_equal(b.open_until_ms - now, want[i]);
		now = b.open_until_ms;
		assert_false(breaker_allow(&b, now - 1));
		assert_true(breaker_allow(&b, now));
		breaker_failure(&b, now);            /* the probe fails */
	}
	now = b.open_until_ms;
	assert_true(breaker_allow(&b, now));
	breaker_success(&b);
	breaker_failure(&b, now);
	assert_int_equal(b.open_until_ms - now, 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opens_after_threshold),
		cmocka_unit_test(test_half_open_probe),
		cmocka_unit_test(test_ejection_grows_and_caps),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
