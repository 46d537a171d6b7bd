#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

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
		"\"upstream\":null,\"tls\":null,\"tries\":0,\"backoff_ms\":0,"
		"\"circuit\":null,\"budget\":null,\"bytes_up\":82,\"bytes_down\":10485760,"
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

/* The arithmetic date against libc's, across leap days and centuries. */
static void test_time_matches_gmtime(void **state)
{
	for (int64_t sec = -86400LL * 366; sec < 4102444800LL * 2; sec += 86399 * 7 + 3607) {
		struct timespec t = { (time_t)sec, 123000000 };
		struct tm tm;
		time_t tt = (time_t)sec;
		char want[64], got[32];

		gmtime_r(&tt, &tm);
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S.123Z", &tm);
		log_format_time(&t, got);
		assert_string_equal(got, want);
	}
}

static void test_request_line(void **state)
{
	struct sockaddr_storage app, up;
	socklen_t len;
	char out[1024];
	struct log_req r = {
		.time = { 1796046718, 5000000 },
		.host = "api.partner.example", .route = "partner-api",
		.action = "tls", .method = "GET", .target = "/v1/x?q=\"1\"",
		.status = 200, .conn = "reused", .conn_requests = 7,
		.tls = true, .tls_version = "TLSv1.3",
		.bytes_up = 77, .bytes_down = 149, .duration_us = 195,
		.resil = { .tries = 2, .backoff_ms = 31, .circuit = "closed",
		           .budget_retries = 1, .budget_allowed = 100 },
		.outcome = "ok",
	};

	assert_int_equal(addr_parse("203.0.113.1:37418", &app, &len), 0);
	assert_int_equal(addr_parse("203.0.113.7:443", &up, &len), 0);
	r.app = (struct sockaddr *)&app;
	r.upstream = (struct sockaddr *)&up;
	size_t n = log_format_req(out, sizeof(out), &r);
	assert_int_equal(n, strlen(out));
	assert_string_equal(out,
		"{\"time\":\"2026-11-30T13:51:58.005Z\",\"kind\":\"request\","
		"\"app\":\"203.0.113.1:37418\",\"dst\":null,"
		"\"host\":\"api.partner.example\",\"route\":\"partner-api\","
		"\"action\":\"tls\",\"method\":\"GET\",\"path\":\"/v1/x?q=\\\"1\\\"\","
		"\"status\":200,\"upstream\":\"203.0.113.7:443\",\"conn\":\"reused\","
		"\"conn_requests\":7,\"tls\":{\"version\":\"TLSv1.3\",\"resumed\":false},"
		"\"bytes_up\":77,\"bytes_down\":149,\"tries\":2,\"backoff_ms\":31,"
		"\"circuit\":\"closed\",\"budget\":{\"retries\":1,\"allowed\":100,"
		"\"spent\":false},\"duration_ms\":0.195,"
		"\"outcome\":\"ok\",\"reason\":null}\n");

	/* a request refused before any head: no method, no status */
	struct log_req bad = { .outcome = "rejected", .reason = "bare CR or LF",
	                       .method = "", .target = "" };
	assert_true(log_format_req(out, sizeof(out), &bad) > 0);
	assert_non_null(strstr(out, "\"method\":null,\"path\":null,\"status\":null,"));
	assert_non_null(strstr(out, "\"reason\":\"bare CR or LF\"}"));
	/* too small a buffer: nothing, not half a line */
	assert_int_equal(log_format_req(out, 40, &r), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_time_matches_gmtime),
		cmocka_unit_test(test_request_line),
		cmocka_unit_test(test_conn_line),
		cmocka_unit_test(test_tls_fields),
		cmocka_unit_test(test_escaping_and_nulls),
		cmocka_unit_test(test_does_not_overflow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
