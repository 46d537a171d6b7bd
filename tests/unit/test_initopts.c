/* attache-init's options: the command line, the environment, the lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "attache/initopts.h"

static char outbuf[8192], errbuf[4096];

static int parse_env(struct init_opts *o, const char *const *args,
                     const char *const *env)
{
	char *argv[32];
	int argc = 0;
	FILE *out = fmemopen(outbuf, sizeof(outbuf), "w");
	FILE *err = fmemopen(errbuf, sizeof(errbuf), "w");

	argv[argc++] = "attache-init";
	for (; *args; args++)
		argv[argc++] = (char *)*args;
	argv[argc] = NULL;
	int rc = init_opts_parse(o, argc, argv, (char **)env, out, err);
	fclose(out);
	fclose(err);
	return rc;
}

static int parse(struct init_opts *o, const char *const *args)
{
	return parse_env(o, args, NULL);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

static void test_install(void **state)
{
	struct init_opts o;

	assert_int_equal(parse(&o, ARGS("--proxy-uid", "1337")), 0);
	assert_true(o.have_uid);
	assert_false(o.have_gid || o.have_mark || o.lockdown || o.verify);
	assert_int_equal(o.proxy_uid, 1337);
	assert_int_equal(o.redirect_port, 15001);
	assert_int_equal(o.ipv6, IPV6_REDIRECT);
	assert_int_equal(o.backend, BACKEND_AUTO);
	assert_false(o.dry_run);
	assert_false(o.cleanup);
	assert_false(o.have_dns_queue);

	assert_int_equal(parse(&o, ARGS("--proxy-uid=root", "--redirect-port",
	                                 "16001", "--ipv6", "reject",
	                                 "--dry-run", "--backend", "legacy",
	                                 "--lockdown", "--dns-queue", "0",
	                                 "--verify")), 0);
	assert_int_equal(o.proxy_uid, 0);
	assert_int_equal(o.redirect_port, 16001);
	assert_int_equal(o.ipv6, IPV6_REJECT);
	assert_int_equal(o.backend, BACKEND_LEGACY);
	assert_true(o.dry_run && o.lockdown && o.verify && o.have_dns_queue);
	assert_int_equal(o.dns_queue, 0);

	/* a gid or a mark alone tells the proxy's traffic too */
	assert_int_equal(parse(&o, ARGS("--proxy-gid", "root")), 0);
	assert_true(o.have_gid && !o.have_uid);
	assert_int_equal(o.proxy_gid, 0);
	assert_int_equal(parse(&o, ARGS("--proxy-mark", "0x539")), 0);
	assert_true(o.have_mark);
	assert_int_equal(o.proxy_mark, 0x539);
}

static void test_lists(void **state)
{
	struct init_opts o;

	assert_int_equal(parse(&o, ARGS("--proxy-uid", "1",
	                                 "--exclude-cidrs", "10.0.0.0/8, fd00::/8",
	                                 "--exclude-cidrs", "169.254.169.254",
	                                 "--include-ports", "80,8000-8100",
	                                 "--exclude-ports", "8080:8081")), 0);
	assert_int_equal(o.n_exclude_cidrs, 3);   /* given twice: added up */
	assert_int_equal(o.exclude_cidrs[0].family, 4);
	assert_int_equal(o.exclude_cidrs[0].prefix, 8);
	assert_int_equal(o.exclude_cidrs[1].family, 6);
	assert_int_equal(o.exclude_cidrs[1].addr[0], 0xfd);
	assert_int_equal(o.exclude_cidrs[2].prefix, 32);
	assert_int_equal(o.n_include_ports, 2);
	assert_int_equal(o.include_ports[1].lo, 8000);
	assert_int_equal(o.include_ports[1].hi, 8100);
	assert_int_equal(o.exclude_ports[0].lo, 8080);
	assert_int_equal(o.exclude_ports[0].hi, 8081);
}

static void test_parsers(void **state)
{
	struct cidr c;
	struct portrange r;
	char why[160], buf[64];

	assert_int_equal(init_parse_cidr("2001:db8::/32", &c, why, sizeof(why)), 0);
	assert_string_equal(cidr_str(&c, buf, sizeof(buf)), "2001:db8::/32");
	assert_int_equal(init_parse_cidr("::1", &c, why, sizeof(why)), 0);
	assert_int_equal(c.prefix, 128);
	assert_int_equal(init_parse_cidr("0.0.0.0/0", &c, why, sizeof(why)), 0);
	assert_int_equal(init_parse_cidr("10.1.2.3/8", &c, why, sizeof(why)), -1);
	assert_string_equal(why, "'10.1.2.3/8' has host bits set (did you mean "
	                         "10.0.0.0/8?)");
	assert_int_equal(init_parse_cidr("10.0.0.0/33", &c, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "prefix length is not 0-32"));
	assert_int_equal(init_parse_cidr("10.0.0.0/", &c, why, sizeof(why)), -1);
	assert_int_equal(init_parse_cidr("example.com", &c, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not an address or CIDR"));
	assert_int_equal(init_parse_cidr("/8", &c, why, sizeof(why)), -1);

	assert_int_equal(init_parse_ports("65535", &r, why, sizeof(why)), 0);
	assert_int_equal(r.lo, 65535);
	assert_int_equal(r.hi, 65535);
	assert_int_equal(init_parse_ports("1-2", &r, why, sizeof(why)), 0);
	assert_int_equal(init_parse_ports("0", &r, why, sizeof(why)), -1);
	assert_int_equal(init_parse_ports("70000", &r, why, sizeof(why)), -1);
	assert_int_equal(init_parse_ports("9-3", &r, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "runs backwards"));
	assert_int_equal(init_parse_ports("http", &r, why, sizeof(why)), -1);
	assert_int_equal(init_parse_ports("80-", &r, why, sizeof(why)), -1);
}

static void test_environment(void **state)
{
	struct init_opts o;
	const char *const env[] = {
		"PATH=/usr/bin",
		"ATTACHE_INIT_PROXY_UID=1337",
		"ATTACHE_INIT_PROXY_MARK=0x10",
		"ATTACHE_INIT_REDIRECT_PORT=16001",
		"ATTACHE_INIT_LOCKDOWN=true",
		"ATTACHE_INIT_VERIFY=0",
		"ATTACHE_INIT_EXCLUDE_PORTS=22,25",
		"ATTACHE_INIT_DNS_QUEUE=7",
		"ATTACHE_INIT_IPV6=reject",
		"ATTACHE_INIT_BACKEND=nft",
		NULL,
	};

	assert_int_equal(parse_env(&o, NONE, env), 0);
	assert_int_equal(o.proxy_uid, 1337);
	assert_int_equal(o.proxy_mark, 0x10);
	assert_int_equal(o.redirect_port, 16001);
	assert_true(o.lockdown);
	assert_false(o.verify);
	assert_int_equal(o.n_exclude_ports, 2);
	assert_int_equal(o.dns_queue, 7);
	assert_int_equal(o.ipv6, IPV6_REJECT);
	assert_int_equal(o.backend, BACKEND_NFT);

	/* the command line wins; a list there replaces the environment's */
	assert_int_equal(parse_env(&o, ARGS("--redirect-port", "15001",
	                                    "--exclude-ports", "443"), env), 0);
	assert_int_equal(o.redirect_port, 15001);
	assert_int_equal(o.n_exclude_ports, 1);
	assert_int_equal(o.exclude_ports[0].lo, 443);

	/* a bad value names the variable it came from */
	const char *const bad[] = { "ATTACHE_INIT_PROXY_UID=1",
	                            "ATTACHE_INIT_LOCKDOWN=maybe", NULL };
	assert_int_equal(parse_env(&o, NONE, bad), -1);
	assert_non_null(strstr(errbuf, "ATTACHE_INIT_LOCKDOWN: 'maybe' is not "
	                               "1/true/yes or 0/false/no"));
}

static void test_errors(void **state)
{
	const struct { const char *const *args; const char *msg; } bad[] = {
		{ ARGS("--dry-run"), "--proxy-uid, --proxy-gid or --proxy-mark is required" },
		{ ARGS("--proxy-uid", "no-such-user-here"), "--proxy-uid: 'no-such-user-here' is neither a number nor a known user" },
		{ ARGS("--proxy-gid", "no-such-group-here"), "nor a known group" },
		{ ARGS("--proxy-uid", "12x"), "neither a number" },
		{ ARGS("--proxy-mark", "0"), "--proxy-mark: '0' is not a mark" },
		{ ARGS("--proxy-uid", "1", "--redirect-port", "0"), "'0' is not a port" },
		{ ARGS("--proxy-uid", "1", "--redirect-port", "70000"), "is not a port" },
		{ ARGS("--proxy-uid", "1", "--redirect-port", "-1"), "is not a port" },
		{ ARGS("--proxy-uid", "1", "--ipv6", "off"), "'off' is not redirect or reject" },
		{ ARGS("--proxy-uid", "1", "--backend", "iptables"), "is not auto, nft or legacy" },
		{ ARGS("--proxy-uid", "1", "--dns-queue", "65536"), "not a queue number" },
		{ ARGS("--proxy-uid", "1", "--exclude-cidrs", ","), "--exclude-cidrs: the list is empty" },
		{ ARGS("--proxy-uid", "1", "--include-cidrs", "10.0.0.1/8"), "--include-cidrs: '10.0.0.1/8' has host bits set" },
		{ ARGS("--proxy-uid", "1", "--include-ports", "80,x"), "--include-ports: 'x' is not a port" },
		{ ARGS("--proxy-uid"), "--proxy-uid needs a value" },
		{ ARGS("--flush-everything"), "unknown option" },
		{ ARGS("--cleanup", "now"), "unexpected argument 'now'" },
	};
	struct init_opts o;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(&o, bad[i].args), -1);
		if (!strstr(errbuf, bad[i].msg))
			fail_msg("case %zu: '%s' not in '%s'", i, bad[i].msg, errbuf);
	}
}

static void test_list_bound(void **state)
{
	char list[INIT_MAX_LIST * 8 + 16] = "";
	struct init_opts o;

	for (int i = 0; i <= INIT_MAX_LIST; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%d,",
		         1000 + i);
	assert_int_equal(parse(&o, ARGS("--proxy-uid", "1", "--exclude-ports",
	                                 list)), -1);
	assert_non_null(strstr(errbuf, "more than 32 items"));
}

static void test_help(void **state)
{
	struct init_opts o;

	assert_int_equal(parse(&o, ARGS("--help")), 1);
	assert_non_null(strstr(outbuf, "--cleanup"));
	assert_non_null(strstr(outbuf, "ATTACHE_INIT_"));
	assert_non_null(strstr(outbuf, "Exit status"));
	assert_int_equal(parse(&o, ARGS("--version")), 1);
	assert_non_null(strstr(outbuf, "attache-init " ATTACHE_VERSION));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_install),
		cmocka_unit_test(test_lists),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_environment),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_list_bound),
		cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
