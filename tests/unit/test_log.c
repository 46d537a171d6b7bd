#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "attache/addr.h"
#include "attache/log.h"

static void test_time(void **state)
{
	struct timespec t = { 1796046718, 987654321 };   /* 2026-11-30 */
	char s[32];

	log_format_time(&t, s);
	assert_string_equal(s, "2026-11-30T13:51:58.987Z");
	t.tv_sec = 0;
	t.tv_nsec = 0;
	log_format_time(&t, s);
	assert_string_equal(s, "1970-01-01T00:00:00.000Z");
}

static void test_conn_line(void **state)
{
	struct sockaddr_storage app, dst;
	socklen_t len;
	char out[512];
	struct log_conn c = {
		.time = { 1796046718, 5000000 },
		.bytes_up = 82, .bytes_down = 10485760,
		.duration_us = 1234567,
		.outcome = "ok", .reason = "closed",
		.name = "api.partner.example", .name_from = "host",
		.route = "partner-api", .action = "pass",
	};

	assert_int_equal(addr_parse("203.0.113.1:37418", &app, &len), 0);
	assert_int_equal(addr_parse("[2001:db8::7]:80", &dst, &len), 0);
	c.app = (struct sockaddr *)&app;
	c.dst = (struct sockaddr *)&dst;
	size_t n = log_format_conn(out, sizeof(out), &c);
	assert_string_equal(out,
		"{\"time\":\"2026-11-30T13:51:58.005Z\",\"app\":\"203.0.113.1:37418\","
		"\"dst\":\"[2001:db8::7]:80\",\"name\":\"api.partner.example\","
		"\"name_from\":\"host\",\"route\":\"partner-api\",\"action\":\"pass\","
		"\"upstream\":null,\"tls\":null,\"bytes_up\":82,\"bytes_down\":10485760,"
		"\"duration_ms\":1234.567,\"outcome\":\"ok\",\"reason\":\"closed\"}\n");
	assert_int_equal(n, strlen(out));
}

static void test_tls_fields(void **state)
{
	struct sockaddr_storage up;
	socklen_t len;
	char out[1024];
	struct log_conn c = {
		.outcome = "ok", .reason = "closed", .action = "tls",
		.tls = true, .tls_verify = false, .tls_resumed = true,
		.tls_version = "TLSv1.3", .tls_cipher = "TLS13-AES128-GCM-SHA256",
	};

	assert_int_equal(addr_parse("203.0.113.7:443", &up, &len), 0);
	c.upstream = (struct sockaddr *)&up;
	assert_true(log_format_conn(out, sizeof(out), &c) > 0);
	assert_non_null(strstr(out, "\"upstream\":\"203.0.113.7:443\",\"tls\":{\"version\":"
	                            "\"TLSv1.3\",\"cipher\":\"TLS13-AES128-GCM-SHA256\","
	                            "\"resumed\":true,\"verify\":false}"));
	c.tls_version = c.tls_cipher = NULL;   /* failed before the handshake ended */
	assert_true(log_format_conn(out, sizeof(out), &c) > 0);
	assert_non_null(strstr(out, "\"tls\":{\"version\":null,\"cipher\":null"));
}

static void test_escaping_and_nulls(void **state)
{
	char out[512];
	struct log_conn c = {
		.outcome = "rejected",
		.reason = "quote\" back\\slash\nnewline\x01",
	};

	assert_true(log_format_conn(out, sizeof(out), &c) > 0);
	assert_non_null(strstr(out, "\"app\":null,\"dst\":null,\"name\":null,"
	                            "\"name_from\":null,\"route\":null,\"action\":null"));
	assert_non_null(strstr(out,
		"\"reason\":\"quote\\\" back\\\\slash\\u000anewline\\u0001\"}"));
	assert_non_null(strstr(out, "\"duration_ms\":0.000"));
}

static void test_does_not_overflow(void **state)
{
	char out[40];
	struct log_conn c = { .outcome = "ok", .reason = "closed" };

	memset(out, 'x', sizeof(out));
	assert_int_equal(log_format_conn(out, sizeof(out), &c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_conn_line),
		cmocka_unit_test(test_tls_fields),
		cmocka_unit_test(test_escaping_and_nulls),
		cmocka_unit_test(test_does_not_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
