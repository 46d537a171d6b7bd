#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <string.h>

#include "attache/addr.h"

static void roundtrip(const char *s)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char out[ADDR_STRLEN];

	assert_int_equal(addr_parse(s, &ss, &len), 0);
	assert_int_equal(len, addr_len((struct sockaddr *)&ss));
	addr_format((struct sockaddr *)&ss, out, sizeof(out));
	assert_string_equal(out, s);
}

static void test_roundtrip(void **state)
{
	roundtrip("203.0.113.7:80");
	roundtrip("0.0.0.0:1");
	roundtrip("255.255.255.255:65535");
	roundtrip("[2001:db8::7]:443");
	roundtrip("[::1]:15001");
	roundtrip("[::ffff:127.0.0.1]:8080");
}

static void test_parse_rejects(void **state)
{
	static const char *bad[] = {
		"", ":80", "203.0.113.7", "203.0.113.7:", "203.0.113.7:65536",
		"203.0.113.7:-1", "203.0.113.7:80x", "203.0.113.256:80",
		"2001:db8::7:80", "[2001:db8::7]", "[2001:db8::7]80", "[]:80",
		"[203.0.113.7]:80", "host.example:80", "203.0.113.7: 80",
	};
	struct sockaddr_storage ss;
	socklen_t len;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(addr_parse(bad[i], &ss, &len), -1);
}

static void test_format_truncates(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char out[8];
	struct sockaddr unk = { .sa_family = AF_UNIX };

	assert_int_equal(addr_parse("[2001:db8::7]:443", &ss, &len), 0);
	assert_int_equal(addr_format((struct sockaddr *)&ss, out, sizeof(out)), 7);
	assert_string_equal(out, "[2001:d");
	assert_int_equal(addr_format(&unk, out, sizeof(out)), 1);
	assert_string_equal(out, "-");
}

static void test_equal_and_loopback(void **state)
{
	struct sockaddr_storage a, b, c, d;
	socklen_t len;

	assert_int_equal(addr_parse("127.0.0.1:15001", &a, &len), 0);
	assert_int_equal(addr_parse("127.0.0.1:15001", &b, &len), 0);
	assert_int_equal(addr_parse("127.0.0.1:15002", &c, &len), 0);
	assert_int_equal(addr_parse("[::1]:15001", &d, &len), 0);
	assert_true(addr_equal((void *)&a, (void *)&b));
	assert_false(addr_equal((void *)&a, (void *)&c));
	assert_false(addr_equal((void *)&a, (void *)&d));
	assert_true(addr_is_loopback((void *)&a));
	assert_true(addr_is_loopback((void *)&d));
	assert_int_equal(addr_port((void *)&c), 15002);

	assert_int_equal(addr_parse("127.255.0.9:1", &a, &len), 0);
	assert_true(addr_is_loopback((void *)&a));
	assert_int_equal(addr_parse("[::ffff:127.0.0.1]:1", &a, &len), 0);
	assert_true(addr_is_loopback((void *)&a));
	assert_int_equal(addr_parse("128.0.0.1:1", &a, &len), 0);
	assert_false(addr_is_loopback((void *)&a));
	assert_int_equal(addr_parse("[::2]:1", &a, &len), 0);
	assert_false(addr_is_loopback((void *)&a));
	assert_int_equal(addr_parse("[::ffff:10.0.0.1]:1", &a, &len), 0);
	assert_false(addr_is_loopback((void *)&a));
}

/* From raw bytes and back, both families. */
static void test_make_and_bytes(void **state)
{
	static const uint8_t v4[4] = { 203, 0, 113, 7 };
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 7 };
	struct sockaddr_storage ss;
	char buf[ADDR_STRLEN];

	addr_make(&ss, AF_INET, v4, 443);
	addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
	assert_string_equal(buf, "203.0.113.7:443");
	assert_memory_equal(addr_bytes((struct sockaddr *)&ss), v4, 4);
	addr_make(&ss, AF_INET6, v6, 80);
	addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
	assert_string_equal(buf, "[2001:db8::7]:80");
	assert_memory_equal(addr_bytes((struct sockaddr *)&ss), v6, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_format_truncates),
		cmocka_unit_test(test_equal_and_loopback),
		cmocka_unit_test(test_make_and_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
