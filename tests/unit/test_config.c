/* The policy file: what it accepts, and every error at its position. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attache/config.h"

static struct config *parse(const char *yaml, struct diag *d)
{
	memset(d, 0, sizeof(*d));
	return config_parse("t.yaml", yaml, strlen(yaml), d);
}

static void test_full(void **state)
{
	struct diag d;
	struct config *c = parse(
		"listen: { redirect: 16001, admin: \"127.0.0.1:15000\" }\n"
		"default: deny\n"
		"http_ports: [80, \"8000-8100\"]\n"
		"sniff: { timeout: 250ms, max_bytes: 4096 }\n"
		"routes:\n"
		"  - name: partner-api\n"
		"    match: { host: [API.Partner.Example, \"*.cdn.example\"], port: 80 }\n"
		"    action: pass\n"
		"    protocol: http\n"
		"  - name: db\n"
		"    match:\n"
		"      cidr: [203.0.113.0/24, \"2001:db8::/32\", 198.51.100.7]\n"
		"      port: [5432, 6000-6010]\n"
		"    action: deny\n"
		"    hostname: db.partner.example\n", &d);

	assert_non_null(c);
	assert_int_equal(d.errors, 0);
	assert_int_equal(d.warnings, 0);
	assert_int_equal(c->redirect_port, 16001);
	assert_string_equal(c->admin, "127.0.0.1:15000");
	assert_int_equal(c->default_action, ACTION_DENY);
	assert_int_equal(c->nhttp_ports, 2);
	assert_int_equal(c->http_ports[1].lo, 8000);
	assert_int_equal(c->http_ports[1].hi, 8100);
	assert_int_equal(c->sniff_timeout_ms, 250);
	assert_int_equal(c->sniff_max_bytes, 4096);
	assert_int_equal(c->nroutes, 2);
	const struct route *r = &c->routes[0];
	assert_string_equal(r->name, "partner-api");
	assert_int_equal(r->nhosts, 2);
	assert_string_equal(r->hosts[0], "api.partner.example");   /* lower-cased */
	assert_string_equal(r->hosts[1], "*.cdn.example");
	assert_int_equal(r->protocol, PROTO_HTTP);
	assert_int_equal(r->line, 6);
	r = &c->routes[1];
	assert_int_equal(r->ncidrs, 3);
	assert_int_equal(r->cidrs[0].family, AF_INET);
	assert_int_equal(r->cidrs[0].plen, 24);
	assert_int_equal(r->cidrs[1].family, AF_INET6);
	assert_int_equal(r->cidrs[1].plen, 32);
	assert_int_equal(r->cidrs[2].plen, 32);   /* a bare address */
	assert_int_equal(r->nports, 2);
	assert_int_equal(r->ports[1].hi, 6010);
	assert_int_equal(r->action, ACTION_DENY);
	assert_int_equal(r->protocol, PROTO_TCP);   /* the default */
	assert_string_equal(r->hostname, "db.partner.example");
	assert_string_equal(action_str(r->action), "deny");
	assert_string_equal(protocol_str(PROTO_TLS), "tls");

	/* references: the last unref frees (valgrind and ASan watch this) */
	assert_ptr_equal(config_ref(c), c);
	config_unref(c);
	config_unref(c);
	diag_free(&d);
}

static void test_empty_is_default(void **state)
{
	struct diag d;
	struct config *c = parse("", &d);

	assert_non_null(c);
	assert_int_equal(c->nroutes, 0);
	assert_int_equal(c->default_action, ACTION_PASS);
	assert_int_equal(c->sniff_timeout_ms, CONFIG_SNIFF_TIMEOUT_MS);
	config_unref(c);
	c = config_default();
	assert_int_equal(c->default_action, ACTION_PASS);
	config_unref(c);
	diag_free(&d);
}

/* Each bad file and the one message (with its position) it must give. */
static const struct { const char *yaml, *msg; } errors[] = {
	{ "listn: {}\n", "t.yaml:1:1: error: unknown key 'listn' in the configuration (did you mean 'listen'?)" },
	{ "routes:\n  - name: a\n    macth: {port: 1}\n    action: pass\n",
	  "t.yaml:3:5: error: unknown key 'macth' in a route (did you mean 'match'?)" },
	{ "frobnicate: 1\n", "t.yaml:1:1: error: unknown key 'frobnicate' in the configuration\n" },
	{ "default: allow\n", "t.yaml:1:10: error: default 'allow' is not pass or deny" },
	{ "default: [pass]\n", "t.yaml:1:10: error: expected default, found a list" },
	{ "listen: 15001\n", "t.yaml:1:9: error: listen must be a mapping, found a scalar" },
	{ "listen: { redirect: 0 }\n", "t.yaml:1:21: error: port '0' is out of range (1-65535)" },
	{ "listen: { redirect: 65536 }\n", "t.yaml:1:21: error: port '65536' is out of range" },
	{ "listen: { redirect: http }\n", "t.yaml:1:21: error: port 'http' is out of range" },
	{ "listen: { admin: localhost }\n", "t.yaml:1:18: error: admin 'localhost' is not IP:PORT" },
	{ "http_ports: [80, 90-85]\n", "t.yaml:1:18: error: port range '90-85' is backwards" },
	{ "http_ports: []\n", "t.yaml:1:13: error: empty list of ports" },
	{ "sniff: { timeout: forever }\n", "t.yaml:1:19: error: sniff timeout 'forever' is not a duration" },
	{ "sniff: { max_bytes: 10 }\n", "t.yaml:1:21: error: sniff max_bytes '10' is not a number from 64 to 32768" },
	{ "routes: {}\n", "t.yaml:1:9: error: routes must be a list, found a mapping" },
	{ "routes: [pass]\n", "t.yaml:1:10: error: a route must be a mapping, found a scalar" },
	{ "routes:\n  - name: a\n    match: { cidr: 203.0.113.0/33 }\n    action: pass\n",
	  "t.yaml:3:20: error: '203.0.113.0/33' is not a CIDR" },
	{ "routes:\n  - name: a\n    match: { cidr: 203.0.113.9/24 }\n    action: pass\n",
	  "t.yaml:3:20: error: CIDR '203.0.113.9/24' has host bits set (did you mean '203.0.113.0/24'?)" },
	{ "routes:\n  - name: a\n    match: { cidr: \"2001:db8::1/32\" }\n    action: pass\n",
	  "(did you mean '2001:db8::/32'?)" },
	{ "routes:\n  - name: a\n    match: { cidr: example.com }\n    action: pass\n",
	  "t.yaml:3:20: error: 'example.com' is not a CIDR" },
	{ "routes:\n  - name: a\n    match: { port: 70000 }\n    action: pass\n",
	  "t.yaml:3:20: error: port '70000' is out of range (1-65535)" },
	{ "routes:\n  - name: a\n    match: { host: \"bad host\" }\n    action: pass\n",
	  "t.yaml:3:20: error: 'bad host' is not a host name or '*.' pattern" },
	{ "routes:\n  - name: a\n    match: { host: \"a.*.example\" }\n    action: pass\n",
	  "is not a host name or '*.' pattern" },
	{ "routes:\n  - name: a\n    match: {}\n    action: pass\n",
	  "t.yaml:3:12: error: empty match" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n", "t.yaml:2:5: error: route 'a' has no action" },
	{ "routes:\n  - name: a\n    action: pass\n", "t.yaml:2:5: error: route 'a' has no match" },
	{ "routes:\n  - match: { port: 1 }\n    action: pass\n", "t.yaml:2:5: error: route has no name" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: pass\n  - name: a\n    match: { port: 2 }\n    action: pass\n",
	  "t.yaml:5:11: error: duplicate route name 'a' (first at line 2)" },
	{ "routes:\n  - name: \"a b\"\n    match: { port: 1 }\n    action: pass\n",
	  "t.yaml:2:11: error: route name 'a b' must be" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: allow\n",
	  "t.yaml:4:13: error: action 'allow' is not pass, deny or tls" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: pass\n    tls: { port: 443 }\n",
	  "t.yaml:5:10: error: a tls block needs action: tls" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: tls\n    tls: { ca: /nonexistent.pem }\n",
	  "t.yaml:5:16: error: CA file '/nonexistent.pem': No such file or directory" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: tls\n    tls: { min_version: \"1.1\" }\n",
	  "t.yaml:5:25: error: min_version '1.1' is not 1.2 or 1.3" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: tls\n    tls: { pins: [abc] }\n",
	  "t.yaml:5:19: error: pin 'abc' is not a base64 SHA-256" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: tls\n    tls: { verify: no }\n",
	  "t.yaml:5:20: error: verify 'no' is not false or true" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: tls\n    tls: { port: 0 }\n",
	  "t.yaml:5:18: error: port '0' is out of range" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: tls\n    tls: { client_cert: /etc/hostname }\n",
	  "t.yaml:5:10: error: route 'a': client_cert and client_key go together" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: pass\n    protocol: udp\n",
	  "t.yaml:5:15: error: protocol 'udp' is not tcp, http or tls" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: pass\n    hostname: \"*.x\"\n",
	  "t.yaml:5:15: error: hostname '*.x' is not a DNS name" },
	{ "default: pass\ndefault: deny\n", "t.yaml:2:1: error: duplicate key 'default' in the configuration" },
	{ "a: &x 1\nlisten: { redirect: *x }\n", "error: aliases (*name) are not supported" },
	{ "routes:\n  - name: a\n    match: { port: [1\n", "t.yaml:4:1: error: YAML: did not find expected ',' or ']'" },
	{ "routes:\n\t- name: a\n", "t.yaml:2:1: error: YAML: found character that cannot start any token" },
	{ "- 1\n- 2\n", "t.yaml:1:1: error: the configuration must be a mapping, found a list" },
	{ "pool: { max_idle: -1 }\n", "t.yaml:1:19: error: max_idle '-1' is not a number from 0 to 100000" },
	{ "pool: { idle_timeout: 2h }\n", "t.yaml:1:23: error: idle_timeout '2h' is not a duration from 1ms to 3600s" },
	{ "pool: { queue_timeout: 0s }\n", "t.yaml:1:24: error: queue_timeout '0s' is not a duration" },
	{ "pool: { max_per_upstrem: 4 }\n", "t.yaml:1:9: error: unknown key 'max_per_upstrem' in pool (did you mean 'max_per_upstream'?)" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: pass\n    pool: { queue: many }\n",
	  "t.yaml:5:20: error: queue 'many' is not a number from 0 to 100000" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: pass\n    via: yes\n",
	  "t.yaml:5:10: error: via 'yes' is not false or true" },
	{ "retry: { attempts: 0 }\n", "t.yaml:1:20: error: attempts counts the first try too: at least 1" },
	{ "retry: { attempts: 11 }\n", "t.yaml:1:20: error: attempts '11' is not a number from 0 to 10" },
	{ "retry: { on: [reset, 404] }\n", "t.yaml:1:22: error: '404' is not reset, timeout or a 5xx status" },
	{ "retry: { on: [rest] }\n", "t.yaml:1:15: error: 'rest' is not reset, timeout or a 5xx status" },
	{ "retry: { backoff: { base: 2s, cap: 1s } }\n", "t.yaml:1:8: error: backoff cap is below its base" },
	{ "retry: { budget: { ratio: 120 } }\n", "t.yaml:1:27: error: budget ratio '120' is not a ratio from 0 to 10 (e.g. 0.2 or 20%)" },
	{ "retry: { budget: { ratio: -1 } }\n", "t.yaml:1:27: error: budget ratio '-1' is not a ratio" },
	{ "circuit: { statuses: [200] }\n", "t.yaml:1:23: error: '200' is not a 5xx status" },
	{ "circuit: { open_for: 10s, open_max: 1s }\n", "t.yaml:1:10: error: open_max is below open_for" },
	{ "dns_snoop: { ttl_cap: 1m }\n", "t.yaml:1:12: error: dns_snoop needs a queue (the NFQUEUE number attache-init --dns-queue was given)" },
	{ "dns_snoop: { queue: 70000 }\n", "t.yaml:1:21: error: dns_snoop queue '70000' is not a number from 0 to 65535" },
	{ "dns_snoop: { queue: 1, ttl_floor: 2m, ttl_cap: 1m }\n", "t.yaml:1:12: error: ttl_cap is below ttl_floor" },
	{ "timeout: { request: soon }\n", "t.yaml:1:21: error: request timeout 'soon' is not a duration" },
	{ "routes:\n  - name: a\n    match: { port: 1 }\n    action: pass\n    circuit: { consecutive_failure: 3 }\n",
	  "t.yaml:5:16: error: unknown key 'consecutive_failure' in circuit (did you mean 'consecutive_failures'?)" },
};

static void test_each_error(void **state)
{
	for (size_t i = 0; i < ATT_ARRAY_LEN(errors); i++) {
		struct diag d;
		struct config *c = parse(errors[i].yaml, &d);
		if (c || !d.text || !strstr(d.text, errors[i].msg))
			fail_msg("case %zu: wanted '%s', got:\n%s", i, errors[i].msg,
			         d.text ? d.text : "(nothing)");
		assert_true(d.errors >= 1);
		diag_free(&d);
	}
}

static void test_every_error_is_reported(void **state)
{
	struct diag d;
	struct config *c = parse(
		"default: allow\n"
		"listen: { redirect: 99999, admn: x }\n"
		"routes:\n"
		"  - name: a\n"
		"    match: { cidr: 10.0.0.1/8, port: 0 }\n"
		"    action: maybe\n", &d);

	assert_null(c);
	assert_int_equal(d.errors, 6);
	const char *want[] = { "t.yaml:1:10:", "t.yaml:2:21:", "t.yaml:2:28:",
	                       "t.yaml:5:20:", "t.yaml:5:38:", "t.yaml:6:13:" };
	for (size_t i = 0; i < ATT_ARRAY_LEN(want); i++)
		assert_non_null(strstr(d.text, want[i]));
	diag_free(&d);
}

static void test_warnings_do_not_fail(void **state)
{
	struct diag d;
	struct config *c = parse(
		"routes:\n"
		"  - name: web\n"
		"    match: { cidr: 203.0.113.0/24, port: 1-1024 }\n"
		"    action: pass\n"
		"  - name: one-web\n"
		"    match: { cidr: 203.0.113.7, port: 80, host: x.example }\n"
		"    action: deny\n"
		"    protocol: http\n"
		"  - name: wild\n"
		"    match: { host: \"*.example\", port: 443 }\n"
		"    action: deny\n"
		"    protocol: tls\n"
		"  - name: sub\n"
		"    match: { host: \"a.b.example\", port: 443 }\n"
		"    action: pass\n"
		"    protocol: tls\n"
		"  - name: other-port\n"
		"    match: { host: \"a.b.example\", port: 8443 }\n"
		"    action: pass\n"
		"    protocol: tls\n"
		"  - name: tcp-name\n"
		"    match: { host: db.example, port: 5432 }\n"
		"    action: pass\n", &d);

	assert_non_null(c);
	assert_int_equal(d.errors, 0);
	assert_int_equal(d.warnings, 3);
	assert_non_null(strstr(d.text, "t.yaml:5:3: warning: route 'one-web' can never "
	                               "match: route 'web' (line 2) takes all its connections"));
	assert_non_null(strstr(d.text, "t.yaml:13:3: warning: route 'sub' can never match: "
	                               "route 'wild' (line 9)"));
	assert_null(strstr(d.text, "'other-port' can never"));
	assert_non_null(strstr(d.text, "t.yaml:21:3: warning: route 'tcp-name' matches host "
	                               "names but its protocol is tcp"));
	config_unref(c);
	diag_free(&d);
}

static void test_tls_route(void **state)
{
	struct diag d;
	struct config *c = parse(
		"routes:\n"
		"  - name: api\n"
		"    match: { host: api.partner.example, port: 80 }\n"
		"    action: tls\n"
		"    protocol: http\n"
		"    tls: { port: 443, min_version: \"1.3\",\n"
		"           pins: [\"sha256//innATRtp1guUzv1D5/i+GbL6ue0ZYGw4Yc+igknCsYQ=\"] }\n"
		"  - name: lab\n"
		"    match: { port: 8080 }\n"
		"    action: tls\n"
		"    hostname: lab.example\n"
		"    tls: { verify: false }\n", &d);

	assert_non_null(c);
	assert_int_equal(d.errors, 0);
	assert_non_null(c->routes[0].tls);
	assert_int_equal(c->routes[0].tls_port, 443);
	assert_true(c->routes[0].tls_verify);
	assert_false(c->routes[1].tls_verify);
	assert_int_equal(c->routes[1].tls_port, 0);   /* the original port */
	/* verify: false is loud */
	assert_int_equal(d.warnings, 1);
	assert_null(strstr(d.text, "TLS inside TLS"));
	assert_non_null(strstr(d.text, "t.yaml:12:10: warning: route 'lab' does not verify "
	                               "its upstream (verify: false): for lab use only"));
	config_unref(c);
	diag_free(&d);
}

static void test_tls_in_tls_warns(void **state)
{
	struct diag d;
	struct config *c = parse(
		"routes:\n"
		"  - name: double\n"
		"    match: { host: a.example, port: 443 }\n"
		"    action: tls\n"
		"    protocol: tls\n", &d);

	assert_non_null(c);
	assert_non_null(strstr(d.text, "t.yaml:2:3: warning: route 'double' originates TLS "
	                               "around traffic the app already encrypts"));
	config_unref(c);
	diag_free(&d);
}

/* Pool limits: the built-in defaults, the top-level block as the
 * routes' default, and a route's own block overriding key by key. */
static void test_pool_limits(void **state)
{
	struct diag d;
	struct config *c = parse(
		"routes:\n"
		"  - name: own\n    match: { port: 80 }\n    protocol: http\n"
		"    action: pass\n    via: true\n"
		"    pool: { max_per_upstream: 2, queue_timeout: 250ms }\n"
		"  - name: inherits\n    match: { port: 81 }\n    protocol: http\n"
		"    action: pass\n"
		"pool: { max_idle: 3, max_per_upstream: 0, max_requests_per_connection: 0 }\n", &d);

	assert_non_null(c);
	assert_int_equal(c->pool.max_idle, 3);
	assert_int_equal(c->pool.max_per_upstream, 0);
	assert_int_equal(c->pool.idle_timeout_ms, POOL_DEFAULT_IDLE_TIMEOUT_MS);
	assert_int_equal(c->routes[0].pool.max_per_upstream, 2);
	assert_int_equal(c->routes[0].pool.queue_timeout_ms, 250);
	assert_int_equal(c->routes[0].pool.max_idle, 3);           /* inherited */
	assert_int_equal(c->routes[0].pool.max_requests, 0);
	assert_int_equal(c->routes[0].pool.queue_max, POOL_DEFAULT_QUEUE_MAX);
	assert_true(c->routes[0].via);
	assert_false(c->routes[1].via);
	assert_memory_equal(&c->routes[1].pool, &c->pool, sizeof(c->pool));
	config_unref(c);
	diag_free(&d);

	c = config_default();
	assert_int_equal(c->pool.max_per_upstream, POOL_DEFAULT_MAX_PER_UPSTREAM);
	assert_int_equal(c->pool.max_requests, POOL_DEFAULT_MAX_REQUESTS);
	config_unref(c);
}

/* Retry, timeout and circuit: defaults, the top-level blocks as the
 * routes' default (even when written after the routes), and a route's
 * own blocks overriding key by key. */
static void test_policy(void **state)
{
	struct diag d;
	struct config *c;

	c = parse(
		"routes:\n"
		"  - name: own\n    match: { port: 80 }\n    protocol: http\n"
		"    action: pass\n"
		"    retry: { attempts: 1, on: [], backoff: { cap: 2s } }\n"
		"    circuit: { statuses: [500], max_active_requests: 7 }\n"
		"  - name: inherits\n    match: { port: 81 }\n    protocol: http\n"
		"    action: pass\n"
		"retry: { on: [timeout, 503], per_try_timeout: 300ms,\n"
		"         budget: { ratio: 50%, min_per_second: 3 } }\n"
		"timeout: { request: 0 }\n"
		"circuit: { consecutive_failures: 0, open_for: 2s }\n", &d);
	assert_non_null(c);
	assert_int_equal(c->policy.attempts, POLICY_DEFAULT_ATTEMPTS);
	assert_int_equal(c->policy.retry_on, RETRY_ON_TIMEOUT);
	assert_int_equal(c->policy.nretry_status, 1);
	assert_int_equal(c->policy.retry_status[0], 503);
	assert_int_equal(c->policy.per_try_timeout_ms, 300);
	assert_int_equal(c->policy.budget_pct, 50);
	assert_int_equal(c->policy.budget_floor, 3);
	assert_int_equal(c->policy.request_timeout_ms, 0);
	assert_int_equal(c->policy.circuit_failures, 0);
	assert_int_equal(c->policy.circuit_open_ms, 2000);
	assert_int_equal(c->policy.ncircuit_status, 3);   /* the default */
	/* the route's own */
	assert_int_equal(c->routes[0].policy.attempts, 1);
	assert_int_equal(c->routes[0].policy.retry_on, 0);
	assert_int_equal(c->routes[0].policy.nretry_status, 0);
	assert_int_equal(c->routes[0].policy.backoff_cap_ms, 2000);
	assert_int_equal(c->routes[0].policy.backoff_base_ms,
	                 POLICY_DEFAULT_BACKOFF_BASE_MS);
	assert_int_equal(c->routes[0].policy.ncircuit_status, 1);
	assert_int_equal(c->routes[0].policy.circuit_status[0], 500);
	assert_int_equal(c->routes[0].policy.max_active, 7);
	/* ... and what it inherited */
	assert_int_equal(c->routes[0].policy.per_try_timeout_ms, 300);
	assert_int_equal(c->routes[0].policy.circuit_open_ms, 2000);
	assert_memory_equal(&c->routes[1].policy, &c->policy, sizeof(c->policy));
	assert_true(policy_has_status(c->policy.retry_status,
	                              c->policy.nretry_status, 503));
	assert_false(policy_has_status(c->policy.retry_status,
	                               c->policy.nretry_status, 502));
	config_unref(c);
	diag_free(&d);

	c = parse("dns_snoop: { queue: 0, max_entries: 100, ttl_floor: 1500ms }\n", &d);
	assert_non_null(c);
	assert_true(c->dns_queue_set);
	assert_int_equal(c->dns_queue, 0);
	assert_int_equal(c->dns_max_entries, 100);
	assert_int_equal(c->dns_ttl_floor_s, 2);   /* rounded up */
	assert_int_equal(c->dns_ttl_cap_s, CONFIG_DNS_TTL_CAP_S);
	config_unref(c);
	diag_free(&d);

	c = config_default();
	assert_int_equal(c->policy.attempts, POLICY_DEFAULT_ATTEMPTS);
	assert_int_equal(c->policy.retry_on, RETRY_ON_RESET | RETRY_ON_TIMEOUT);
	assert_int_equal(c->policy.nretry_status, 0);
	assert_int_equal(c->policy.circuit_failures, POLICY_DEFAULT_CIRCUIT_FAILURES);
	assert_int_equal(c->policy.request_timeout_ms,
	                 POLICY_DEFAULT_REQUEST_TIMEOUT_MS);
	config_unref(c);
}

static void test_load_file(void **state)
{
	struct diag d = { 0 };
	char path[] = "/tmp/attache-test-config-XXXXXX";
	int fd = mkstemp(path);
	FILE *f = fdopen(fd, "w");

	fputs("default: deny\n", f);
	fclose(f);
	struct config *c = config_load(path, &d);
	assert_non_null(c);
	assert_string_equal(c->path, path);
	assert_int_equal(c->default_action, ACTION_DENY);
	config_unref(c);

	/* bigger than the bound */
	f = fopen(path, "w");
	for (int i = 0; i < (CONFIG_MAX_FILE / 16) + 1; i++)
		fputs("# padding......\n", f);
	fclose(f);
	assert_null(config_load(path, &d));
	assert_non_null(strstr(d.text, "larger than 1 MiB"));
	unlink(path);

	assert_null(config_load("/nonexistent/attache.yaml", &d));
	assert_non_null(strstr(d.text, "/nonexistent/attache.yaml: error: cannot open: "
	                               "No such file or directory"));
	assert_int_equal(d.errors, 2);
	diag_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_empty_is_default),
		cmocka_unit_test(test_each_error),
		cmocka_unit_test(test_every_error_is_reported),
		cmocka_unit_test(test_warnings_do_not_fail),
		cmocka_unit_test(test_tls_route),
		cmocka_unit_test(test_tls_in_tls_warns),
		cmocka_unit_test(test_pool_limits),
		cmocka_unit_test(test_policy),
		cmocka_unit_test(test_load_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
