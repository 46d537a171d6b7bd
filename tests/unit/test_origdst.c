/* Original-destination decoding through the getsockopt seam. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "attache/addr.h"
#include "attache/origdst.h"

/* What the fake kernel answers. */
static struct {
	int err;                     /* errno to fail with, 0 to answer */
	struct sockaddr_storage ans;
	socklen_t ans_len;
	int level, name;             /* what was asked */
} k;

static int fake_gso(int fd, int level, int name, void *val, socklen_t *len)
{
	k.level = level;
	k.name = name;
	if (k.err) {
		errno = k.err;
		return -1;
	}
	socklen_t n = k.ans_len < *len ? k.ans_len : *len;
	memcpy(val, &k.ans, n);
	*len = k.ans_len;
	return 0;
}

static void answer(const char *a)
{
	socklen_t len;

	memset(&k, 0, sizeof(k));
	assert_int_equal(addr_parse(a, &k.ans, &len), 0);
	k.ans_len = len;
}

static void test_ipv4(void **state)
{
	struct sockaddr_storage out;
	char s[ADDR_STRLEN];

	answer("203.0.113.7:80");
	assert_int_equal(origdst_lookup(3, AF_INET, fake_gso, &out), 0);
	assert_int_equal(k.level, SOL_IP);
	assert_int_equal(k.name, 80);   /* SO_ORIGINAL_DST */
	addr_format((struct sockaddr *)&out, s, sizeof(s));
	assert_string_equal(s, "203.0.113.7:80");
}

static void test_ipv6(void **state)
{
	struct sockaddr_storage out;
	char s[ADDR_STRLEN];

	answer("[2001:db8::7]:443");
	assert_int_equal(origdst_lookup(3, AF_INET6, fake_gso, &out), 0);
	assert_int_equal(k.level, SOL_IPV6);
	assert_int_equal(k.name, 80);   /* IP6T_SO_ORIGINAL_DST */
	addr_format((struct sockaddr *)&out, s, sizeof(s));
	assert_string_equal(s, "[2001:db8::7]:443");
}

static void test_not_redirected(void **state)
{
	struct sockaddr_storage out;

	memset(&k, 0, sizeof(k));
	k.err = ENOENT;
	errno = 0;
	assert_int_equal(origdst_lookup(3, AF_INET, fake_gso, &out), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_malformed_answers(void **state)
{
	struct sockaddr_storage out;

	/* v4 answer to a v6 question */
	answer("203.0.113.7:80");
	assert_int_equal(origdst_lookup(3, AF_INET6, fake_gso, &out), -1);
	assert_int_equal(errno, EPROTO);
	/* short answer */
	answer("203.0.113.7:80");
	k.ans_len = 4;
	assert_int_equal(origdst_lookup(3, AF_INET, fake_gso, &out), -1);
	assert_int_equal(errno, EPROTO);
	/* port 0 cannot be dialled */
	answer("203.0.113.7:0");
	assert_int_equal(origdst_lookup(3, AF_INET, fake_gso, &out), -1);
	assert_int_equal(errno, EPROTO);
	/* a family we do not do */
	assert_int_equal(origdst_lookup(3, AF_UNIX, fake_gso, &out), -1);
	assert_int_equal(errno, EAFNOSUPPORT);
}

static enum origdst_verdict classify(const char *orig, const char *local)
{
	struct sockaddr_storage o, l;
	socklen_t len;

	assert_int_equal(addr_parse(orig, &o, &len), 0);
	assert_int_equal(addr_parse(local, &l, &len), 0);
	return origdst_classify((void *)&o, (void *)&l, 15001);
}

static void test_classify(void **state)
{
	assert_int_equal(classify("203.0.113.7:80", "127.0.0.1:15001"), ORIGDST_OK);
	assert_int_equal(classify("[2001:db8::7]:80", "[::1]:15001"), ORIGDST_OK);
	assert_int_equal(classify("127.0.0.1:15001", "127.0.0.1:15001"), ORIGDST_DIRECT);
	assert_int_equal(classify("[::1]:15001", "[::1]:15001"), ORIGDST_DIRECT);
	assert_int_equal(classify("127.0.0.2:15001", "127.0.0.1:15001"), ORIGDST_LOOP);
	assert_int_equal(classify("[::ffff:127.0.0.1]:15001", "[::1]:15001"), ORIGDST_LOOP);
	/* our port on a remote host is just a destination */
	assert_int_equal(classify("203.0.113.7:15001", "127.0.0.1:15001"), ORIGDST_OK);
	/* loopback on another port is not us */
	assert_int_equal(classify("127.0.0.1:8080", "127.0.0.1:15001"), ORIGDST_OK);
	assert_string_not_equal(origdst_verdict_str(ORIGDST_DIRECT),
	                        origdst_verdict_str(ORIGDST_LOOP));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_not_redirected),
		cmocka_unit_test(test_malformed_answers),
		cmocka_unit_test(test_classify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
