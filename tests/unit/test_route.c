/* The matcher: first route whose every condition holds wins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "attache/addr.h"
#include "attache/config.h"
#include "attache/route.h"

static struct config *load(const char *yaml)
{
	struct diag d = { 0 };
	struct config *c = config_parse("t.yaml", yaml, strlen(yaml), &d);

	if (!c)
		fail_msg("config: %s", d.text);
	/* warnings are fine here: some policies below are odd on purpose */
	diag_free(&d);
	return c;
}

static const struct sockaddr *sa(const char *s)
{
	static struct sockaddr_storage ss[4];
	static int i;
	socklen_t len;

	i = (i + 1) % 4;
	assert_int_equal(addr_parse(s, &ss[i], &len), 0);
	return (struct sockaddr *)&ss[i];
}

static const char *route(const struct config *c, const char *dst, const char *name)
{
	const struct route *r = route_match(c, sa(dst), name);

	return r ? r->name : "(default)";
}

static const char policy[] =
	"http_ports: [8080]\n"
	"routes:\n"
	"  - name: api\n"
	"    match: { host: api.partner.example, port: 80 }\n"
	"    action: pass\n"
	"    protocol: http\n"
	"  - name: cdn\n"
	"    match: { host: \"*.cdn.example\" }\n"
	"    action: deny\n"
	"    protocol: tls\n"
	"  - name: lab4\n"
	"    match: { cidr: [203.0.113.0/25], port: [22, 5000-5100] }\n"
	"    action: pass\n"
	"  - name: lab6\n"
	"    match: { cidr: \"2001:db8:1::/48\" }\n"
	"    action: deny\n"
	"  - name: fixed\n"
	"    match: { host: db.partner.example, port: 5432 }\n"
	"    action: pass\n"
	"    hostname: db.partner.example\n"
	"  - name: web\n"
	"    match: { port: 80 }\n"
	"    action: deny\n"
	"    protocol: http\n";

static void test_match(void **state)
{
	struct config *c = load(policy);

	assert_string_equal(route(c, "203.0.113.7:80", "api.partner.example"), "api");
	assert_string_equal(route(c, "203.0.113.7:80", "other.example"), "web");
	assert_string_equal(route(c, "203.0.113.7:80", NULL), "web");
	/* wildcards: one label or more, never the bare domain */
	assert_string_equal(route(c, "198.51.100.1:443", "a.cdn.example"), "cdn");
	assert_string_equal(route(c, "198.51.100.1:443", "a.b.cdn.example"), "cdn");
	assert_string_equal(route(c, "198.51.100.1:443", "cdn.example"), "(default)");
	assert_string_equal(route(c, "198.51.100.1:443", "xcdn.example"), "(default)");
	/* v4 CIDR edges and port ranges */
	assert_string_equal(route(c, "203.0.113.0:22", NULL), "lab4");
	assert_string_equal(route(c, "203.0.113.127:5100", NULL), "lab4");
	assert_string_equal(route(c, "203.0.113.128:22", NULL), "(default)");
	assert_string_equal(route(c, "203.0.113.5:5101", NULL), "(default)");
	assert_string_equal(route(c, "203.0.113.5:4999", NULL), "(default)");
	/* v6 prefix; families never cross */
	assert_string_equal(route(c, "[2001:db8:1:ffff::9]:1", NULL), "lab6");
	assert_string_equal(route(c, "[2001:db8:2::9]:1", NULL), "(default)");
	assert_string_equal(route(c, "[::ffff:203.0.113.5]:22", NULL), "(default)");
	/* with no recovered name, a host condition looks at the fixed name */
	assert_string_equal(route(c, "198.51.100.9:5432", NULL), "fixed");
	assert_string_equal(route(c, "198.51.100.9:5432", "other.example"), "(default)");
	config_unref(c);
}

static void test_protocol(void **state)
{
	struct config *c = load(policy);

	/* the first route taking the address and port decides, names aside */
	assert_int_equal(route_protocol(c, sa("203.0.113.7:80")), PROTO_HTTP);
	assert_int_equal(route_protocol(c, sa("198.51.100.1:443")), PROTO_TLS);
	assert_int_equal(route_protocol(c, sa("203.0.113.5:22")), PROTO_TLS);
	assert_int_equal(route_protocol(c, sa("[2001:db8:1::1]:22")), PROTO_TLS);
	config_unref(c);

	c = load("http_ports: [8080, 9000-9001]\n"
	         "routes:\n"
	         "  - name: ssh\n"
	         "    match: { port: 22 }\n"
	         "    action: pass\n");
	assert_int_equal(route_protocol(c, sa("203.0.113.7:22")), PROTO_TCP);
	assert_int_equal(route_protocol(c, sa("203.0.113.7:8080")), PROTO_HTTP);
	assert_int_equal(route_protocol(c, sa("203.0.113.7:9001")), PROTO_HTTP);
	assert_int_equal(route_protocol(c, sa("203.0.113.7:9002")), PROTO_TCP);
	config_unref(c);
}

static void test_every_port_route_warns(void **state)
{
	struct diag d = { 0 };
	struct config *c = config_parse("t.yaml", policy, strlen(policy), &d);

	assert_non_null(c);
	assert_non_null(strstr(d.text, "t.yaml:7:3: warning: route 'cdn' reads a tls "
	                               "name on every port"));
	config_unref(c);
	diag_free(&d);
}

static void test_host_match(void **state)
{
	assert_true(host_match("a.example", "a.example"));
	assert_false(host_match("a.example", "b.example"));
	assert_false(host_match("a.example", "xa.example"));
	assert_false(host_match("a.example", NULL));
	assert_true(host_match("*.example", "a.example"));
	assert_false(host_match("*.example", "example"));
	assert_false(host_match("*.example", ".example"));
	assert_false(host_match("*.example", "aexample"));
}

static void test_cidr_match(void **state)
{
	struct cidr c = { .family = AF_INET, .addr = { 10, 1, 2, 0 }, .plen = 23 };

	assert_true(cidr_match(&c, sa("10.1.2.0:1")));
	assert_true(cidr_match(&c, sa("10.1.3.255:1")));
	assert_false(cidr_match(&c, sa("10.1.4.0:1")));
	assert_false(cidr_match(&c, sa("10.1.1.255:1")));
	c.plen = 0;
	assert_true(cidr_match(&c, sa("255.255.255.255:1")));
	assert_false(cidr_match(&c, sa("[::1]:1")));
}

static void test_covers(void **state)
{
	struct config *c = load(
		"routes:\n"
		"  - { name: any-80, match: { port: 80 }, action: pass }\n"
		"  - { name: net-80, match: { cidr: 203.0.113.0/24, port: 80 }, action: pass }\n"
		"  - { name: net-80-81, match: { cidr: 203.0.113.0/24, port: 80-81 }, action: pass }\n"
		"  - { name: wild, match: { host: \"*.example\" }, action: pass, protocol: http }\n"
		"  - { name: sub-wild, match: { host: \"*.a.example\" }, action: pass, protocol: http }\n"
		"  - { name: exact, match: { host: a.example }, action: pass, protocol: http }\n");
	const struct route *r = c->routes;

	assert_true(route_covers(&r[0], &r[1]));    /* any address on 80 */
	assert_false(route_covers(&r[1], &r[0]));
	assert_false(route_covers(&r[0], &r[2]));   /* 81 is not in 80 */
	assert_true(route_covers(&r[2], &r[1]));
	assert_true(route_covers(&r[3], &r[4]));    /* *.example takes *.a.example */
	assert_false(route_covers(&r[4], &r[3]));
	assert_true(route_covers(&r[3], &r[5]));
	assert_false(route_covers(&r[5], &r[3]));
	assert_false(route_covers(&r[1], &r[3]));   /* a port condition vs none */
	config_unref(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_protocol),
		cmocka_unit_test(test_every_port_route_warns),
		cmocka_unit_test(test_host_match),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_covers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
