/* A retry's next address: only the name's other addresses that the
 * policy routes as it routed the original, never loopback, in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "attache/addr.h"
#include "attache/altaddr.h"
#include "attache/config.h"
#include "attache/hostmap.h"
#include "attache/route.h"

static const char policy[] =
	"routes:\n"
	"  - name: blocked\n"
	"    match: { cidr: [198.51.100.66/32] }\n"
	"    action: deny\n"
	"  - name: cache\n"
	"    match: { host: cache.partner.example, port: 7000 }\n"
	"    action: tls\n"
	"    tls: { port: 443 }\n";

static void add(struct hostmap *m, const char *name, const char *a)
{
	uint8_t b[16];
	int fam = strchr(a, ':') ? AF_INET6 : AF_INET;

	assert_int_equal(inet_pton(fam, a, b), 1);
	assert_true(hostmap_add(m, name, fam, b, 60, 1000));
}

static const char *next(struct hostmap *m, const struct altaddr_query *q,
                        unsigned tries)
{
	static char buf[64];
	struct sockaddr_storage out;

	if (!altaddr_next(m, q, tries, 2000, &out))
		return "(orig)";
	addr_format((struct sockaddr *)&out, buf, sizeof(buf));
	return buf;
}

static void test_next_address(void **state)
{
	struct diag d = { 0 };
	struct config *c = config_parse("t.yaml", policy, strlen(policy), &d);
	struct sockaddr_storage orig;
	socklen_t len;
	struct hostmap m;

	assert_non_null(c);
	diag_free(&d);
	assert_true(hostmap_init(&m, 64, 1, 3600));
	assert_int_equal(addr_parse("203.0.113.7:7000", &orig, &len), 0);
	struct altaddr_query q = {
		.cfg = c, .name = "cache.partner.example",
		.match_name = "cache.partner.example",
		.orig = (struct sockaddr *)&orig, .port = 443,
	};
	q.route = route_match(c, q.orig, q.match_name);
	assert_string_equal(q.route->name, "cache");

	/* nothing else resolved: always the original */
	add(&m, "cache.partner.example", "203.0.113.7");
	assert_string_equal(next(&m, &q, 1), "(orig)");

	add(&m, "cache.partner.example", "203.0.113.8");
	add(&m, "cache.partner.example", "198.51.100.66");   /* denied */
	add(&m, "cache.partner.example", "127.0.0.1");       /* loopback */
	add(&m, "cache.partner.example", "0.0.0.0");
	add(&m, "cache.partner.example", "2001:db8::8");
	add(&m, "other.example", "203.0.113.9");
	/* round the original and the two it may use, on the dialled port */
	assert_string_equal(next(&m, &q, 1), "203.0.113.8:443");
	assert_string_equal(next(&m, &q, 2), "[2001:db8::8]:443");
	assert_string_equal(next(&m, &q, 3), "(orig)");
	assert_string_equal(next(&m, &q, 4), "203.0.113.8:443");

	/* no name, or no table: nothing */
	q.name = "";
	assert_string_equal(next(&m, &q, 1), "(orig)");
	q.name = "cache.partner.example";
	assert_false(altaddr_next(NULL, &q, 1, 2000, &orig));

	/* expired answers are not used */
	struct sockaddr_storage out;
	assert_false(altaddr_next(&m, &q, 1, 1000 + 61000, &out));

	hostmap_free(&m);
	config_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_next_address),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
