/* The host map on a fake clock: TTLs floored and capped, several names
 * per address (the most recently resolved first) and several addresses
 * per name, refresh, expiry, the bound, and pinned entries that neither
 * the bound nor expiry takes away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "attache/hostmap.h"

static uint8_t a4[4], b4[4], c6[16];

static int setup(void **state)
{
	inet_pton(AF_INET, "203.0.113.7", a4);
	inet_pton(AF_INET, "203.0.113.8", b4);
	inet_pton(AF_INET6, "2001:db8::7", c6);
	return 0;
}

static void test_ttl_and_names(void **state)
{
	struct hostmap m;
	struct hostmap_entry *e[4];
	uint64_t t = 1000000;

	assert_true(hostmap_init(&m, 64, 5, 3600));
	assert_true(hostmap_add(&m, "cache.partner.example", AF_INET, a4, 0, t));
	assert_true(hostmap_add(&m, "cache.partner.example", AF_INET, b4, 60, t));
	assert_true(hostmap_add(&m, "cache.partner.example", AF_INET6, c6, 86400, t));
	/* TTL 0 floored to 5 s, 86400 capped to an hour */
	assert_int_equal(hostmap_lookup(&m, AF_INET, a4, t + 4999, e, 4), 1);
	assert_string_equal(e[0]->name, "cache.partner.example");
	assert_int_equal(hostmap_lookup(&m, AF_INET, a4, t + 5000, e, 4), 0);
	assert_int_equal(hostmap_lookup(&m, AF_INET6, c6, t + 3599999, e, 4), 1);
	assert_int_equal(hostmap_lookup(&m, AF_INET6, c6, t + 3600000, e, 4), 0);
	/* the same bytes in the other family are another address */
	uint8_t b4_as6[16] = { 0 };
	memcpy(b4_as6, b4, sizeof(b4));
	assert_int_equal(hostmap_lookup(&m, AF_INET6, b4_as6, t, e, 4), 0);

	/* A second name for b4, resolved later: it comes first. */
	assert_true(hostmap_add(&m, "img.partner.example", AF_INET, b4, 60, t + 10));
	assert_int_equal(hostmap_lookup(&m, AF_INET, b4, t + 20, e, 4), 2);
	assert_string_equal(e[0]->name, "img.partner.example");
	assert_string_equal(e[1]->name, "cache.partner.example");
	/* Resolving the first again refreshes it and puts it first. */
	assert_true(hostmap_add(&m, "cache.partner.example", AF_INET, b4, 60, t + 30));
	assert_int_equal(hostmap_lookup(&m, AF_INET, b4, t + 40, e, 1), 1);
	assert_string_equal(e[0]->name, "cache.partner.example");
	assert_int_equal(m.count, 4);   /* a refresh adds nothing */
	/* ... and lives 60 s from its refresh */
	assert_int_equal(hostmap_lookup(&m, AF_INET, b4, t + 60015, e, 4), 1);

	/* By name: every live address of it, IPv4 first, then by bytes; a4
	 * expired at t + 5 s. */
	assert_int_equal(hostmap_by_name(&m, "cache.partner.example", t + 6000,
	                                 e, 4), 2);
	assert_int_equal(e[0]->family, AF_INET);
	assert_memory_equal(e[0]->addr, b4, 4);
	assert_int_equal(e[1]->family, AF_INET6);
	assert_true(hostmap_add(&m, "cache.partner.example", AF_INET, a4, 60, t + 6001));
	assert_int_equal(hostmap_by_name(&m, "cache.partner.example", t + 6002,
	                                 e, 4), 3);
	assert_memory_equal(e[0]->addr, a4, 4);   /* .7 before .8 */
	assert_memory_equal(e[1]->addr, b4, 4);
	/* past max, the greatest go */
	assert_int_equal(hostmap_by_name(&m, "cache.partner.example", t + 6002,
	                                 e, 1), 1);
	assert_memory_equal(e[0]->addr, a4, 4);
	assert_int_equal(hostmap_by_name(&m, "nobody.example", t, e, 4), 0);

	hostmap_expire(&m, t + 66002);
	assert_int_equal(m.count, 1);   /* the AAAA one: an hour */
	hostmap_free(&m);
}

static void test_bound_and_pins(void **state)
{
	struct hostmap m;
	struct hostmap_entry *e[2];
	char name[32];
	uint64_t t = 0;

	assert_true(hostmap_init(&m, 3, 1, 60));
	assert_true(hostmap_add(&m, "n0.example", AF_INET, a4, 60, t));
	assert_int_equal(hostmap_lookup(&m, AF_INET, a4, t, e, 2), 1);
	hostmap_pin(e[0]);                       /* a connection uses it */
	for (int i = 1; i <= 5; i++) {
		snprintf(name, sizeof(name), "n%d.example", i);
		assert_true(hostmap_add(&m, name, AF_INET, b4, 60, t + (uint64_t)i));
	}
	/* Full at 3: the oldest unpinned went, the pinned oldest stayed. */
	assert_int_equal(m.count, 3);
	assert_int_equal(hostmap_lookup(&m, AF_INET, a4, t + 10, e, 2), 1);
	assert_int_equal(hostmap_lookup(&m, AF_INET, b4, t + 10, e, 2), 2);
	assert_string_equal(e[0]->name, "n5.example");
	assert_string_equal(e[1]->name, "n4.example");

	/* Everything pinned: the next answer is dropped, and counted. */
	hostmap_pin(e[0]);
	hostmap_pin(e[1]);
	assert_false(hostmap_add(&m, "n6.example", AF_INET, b4, 60, t + 20));
	assert_int_equal(m.full, 1);

	/* A pinned entry outlives its TTL (lookups no longer give it), and
	 * goes when its connection does. */
	struct hostmap_entry *n5 = e[0], *n4 = e[1];
	assert_int_equal(hostmap_lookup(&m, AF_INET, b4, t + 70000, e, 2), 0);
	hostmap_expire(&m, t + 70000);
	assert_int_equal(m.count, 3);
	hostmap_unpin(&m, n5, t + 70000);
	assert_int_equal(m.count, 2);
	hostmap_unpin(&m, n4, t + 1000);         /* still valid: it stays */
	assert_int_equal(m.count, 2);
	hostmap_expire(&m, t + 70000);
	assert_int_equal(m.count, 1);            /* n0, still pinned */
	hostmap_free(&m);                        /* frees pinned ones too */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_ttl_and_names, setup),
		cmocka_unit_test_setup(test_bound_and_pins, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
