/* The per-upstream health entry: admission (max_active, an open circuit,
 * the one half-open probe and giving it back), retries against the
 * budget and the circuit, sharing by address, and expiry. The breaker's
 * and the budget's own arithmetic are in test_breaker.c and
 * test_budget.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "attache/config.h"
#include "attache/health.h"
#include "attache/proxy.h"

static struct proxy px;

static struct sockaddr_in addr(uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
	                           .sin_port = htons(port),
	                           .sin_addr.s_addr = htonl(0xCB007107) };
	return sin;
}

static struct policy policy(void)
{
	struct config *c = config_default();
	struct policy p = c->policy;

	config_unref(c);
	return p;
}

static void test_admission(void **state)
{
	struct sockaddr_in a = addr(443), b = addr(444);
	struct health *h = health_get(&px, (struct sockaddr *)&a);
	struct policy p = policy();
	struct admission m, m2, old;
	char why[160];

	assert_ptr_equal(health_get(&px, (struct sockaddr *)&a), h);   /* shared */
	assert_int_equal(h->refs, 2);
	health_put(h);
	assert_ptr_not_equal(health_get(&px, (struct sockaddr *)&b), h);

	/* max_active: the third in flight is refused, and counted. */
	p.max_active = 2;
	assert_null(health_admit(h, &p, &m, why, sizeof(why)));
	assert_null(health_admit(h, &p, &m, why, sizeof(why)));
	assert_string_equal(health_admit(h, &p, &m, why, sizeof(why)),
	                    "max_active");
	assert_non_null(strstr(why, "2 requests in flight"));
	assert_int_equal(h->stats.max_active, 1);
	health_done(h, &m);
	assert_null(health_admit(h, &p, &m, why, sizeof(why)));
	assert_false(m.probe);
	health_done(h, &m);
	health_done(h, &m);
	assert_int_equal(h->nactive, 0);

	/* Three failures open the circuit (failures 3): fail fast. One
	 * request admitted before, still in flight, is "old". */
	p.max_active = 0;
	p.circuit_failures = 3;
	p.circuit_open_ms = 5;
	p.circuit_open_max_ms = 40;
	assert_null(health_admit(h, &p, &old, why, sizeof(why)));
	for (int i = 0; i < 3; i++) {
		assert_null(health_admit(h, &p, &m, why, sizeof(why)));
		health_result(h, &p, &m, false);
		health_done(h, &m);
	}
	assert_string_equal(health_circuit(h), "open");
	assert_string_equal(health_admit(h, &p, &m, why, sizeof(why)),
	                    "circuit_open");
	assert_non_null(strstr(why, "circuit open: 3 failures in a row"));
	assert_int_equal(h->stats.circuit_open, 1);

	/* Past the ejection: one probe; a second request waits for it. */
	usleep(8000);
	assert_null(health_admit(h, &p, &m, why, sizeof(why)));
	assert_true(m.probe);
	assert_string_equal(health_circuit(h), "half_open");
	assert_string_equal(health_admit(h, &p, &m2, why, sizeof(why)),
	                    "circuit_open");
	assert_non_null(strstr(why, "a probe is out"));
	/* The old request's news is old: it neither trips nor closes. */
	health_result(h, &p, &old, false);
	assert_string_equal(health_circuit(h), "half_open");
	health_done(h, &old);
	/* The probe's app went away: no verdict, the next one probes. */
	health_done(h, &m);
	assert_null(health_admit(h, &p, &m, why, sizeof(why)));
	assert_true(m.probe);
	health_result(h, &p, &m, true);   /* it worked: closed */
	health_done(h, &m);
	assert_string_equal(health_circuit(h), "closed");
	assert_null(health_admit(h, &p, &m, why, sizeof(why)));
	assert_false(m.probe);
	health_done(h, &m);
	assert_int_equal(h->nactive, 0);

	/* Circuit off: failures change nothing. */
	p.circuit_failures = 0;
	for (int i = 0; i < 10; i++)
		health_result(h, &p, &m, false);
	assert_null(health_admit(h, &p, &m, why, sizeof(why)));
	health_done(h, &m);
	health_put(h);
}

static void test_retries(void **state)
{
	struct sockaddr_in a = addr(8443);
	struct health *h = health_get(&px, (struct sockaddr *)&a);
	struct policy p = policy();
	uint32_t retries, allowed;
	char why[160];
	struct admission m;

	/* No floor, 50%: two requests buy one retry. */
	p.budget_pct = 50;
	p.budget_floor = 0;
	p.circuit_failures = 0;
	for (int i = 0; i < 2; i++) {
		assert_null(health_admit(h, &p, &m, why, sizeof(why)));
		health_done(h, &m);
	}
	assert_null(health_retry(h, &p));
	assert_string_equal(health_retry(h, &p), "retry budget spent");
	assert_int_equal(h->stats.retries, 1);
	assert_int_equal(h->stats.budget_missed, 1);
	health_budget(h, &retries, &allowed);
	assert_int_equal(retries, 1);
	assert_int_equal(allowed, 1);

	/* A circuit the tries opened allows no retry, budget or not. */
	p.budget_floor = 100;
	p.circuit_failures = 1;
	health_result(h, &p, &m, false);
	assert_string_equal(health_retry(h, &p), "circuit open");
	health_put(h);
}

static void test_expiry(void **state)
{
	struct sockaddr_in a = addr(9443);
	struct health *h = health_get(&px, (struct sockaddr *)&a), *e;
	int n = 0;

	/* Held, or used within the window: kept. */
	health_expire(&px);
	LIST_FOREACH(e, &px.health, link)
		n += e == h;
	assert_int_equal(n, 1);
	health_put(h);
	health_expire(&px);
	n = 0;
	LIST_FOREACH(e, &px.health, link)
		n += e == h;
	assert_int_equal(n, 1);
	/* Unheld and quiet for a window: gone (everything else too). */
	LIST_FOREACH(e, &px.health, link) {
		e->last_used_ms -= 2 * POLICY_BUDGET_WINDOW_MS;
		e->breaker.open_until_ms = 0;
		e->refs = 0;
	}
	health_expire(&px);
	assert_true(LIST_EMPTY(&px.health));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admission),
		cmocka_unit_test(test_retries),
		cmocka_unit_test(test_expiry),
	};
	LIST_INIT(&px.health);
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	health_drain(&px);
	return rc;
}
