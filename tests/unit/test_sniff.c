/* Host and SNI sniffers over captured and crafted bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attache/sniff.h"

typedef enum sniff_result (*sniffer)(const uint8_t *, size_t, char *);

static enum sniff_result run(sniffer fn, const void *p, size_t n, char *name)
{
	name[0] = '\0';
	return fn(p, n, name);
}

static enum sniff_result http(const char *s, char *name)
{
	return run(sniff_http_host, s, strlen(s), name);
}

/* Every proper prefix asks for more; the whole gives the answer. */
static void check_prefixes(sniffer fn, const uint8_t *p, size_t n,
                           enum sniff_result want, const char *want_name)
{
	char name[SNIFF_NAME_MAX];

	for (size_t k = 0; k < n; k++)
		if (run(fn, p, k, name) != SNIFF_MORE)
			fail_msg("prefix of %zu/%zu bytes: not 'incomplete'", k, n);
	assert_int_equal(run(fn, p, n, name), want);
	if (want_name)
		assert_string_equal(name, want_name);
}

static uint8_t *slurp(const char *file, size_t *n)
{
	char path[512];
	static uint8_t buf[65536];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", getenv("DATA_DIR"), file);
	f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	*n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return buf;
}

static void test_http_host(void **state)
{
	char name[SNIFF_NAME_MAX];
	const char *req = "GET /x HTTP/1.1\r\nUser-Agent: curl/7.88\r\n"
	                  "Host: API.Partner.Example:8080\r\nAccept: */*\r\n\r\n";

	check_prefixes(sniff_http_host, (const uint8_t *)req, strlen(req),
	               SNIFF_FOUND, "api.partner.example");
	assert_int_equal(http("POST / HTTP/1.1\r\nhost: [2001:DB8::7]:80\r\n"
	                      "Content-Length: 3\r\n\r\nabc", name), SNIFF_FOUND);
	assert_string_equal(name, "2001:db8::7");
	assert_int_equal(http("GET / HTTP/1.1\r\nHost:  a.example.  \r\n\r\n", name),
	                 SNIFF_FOUND);
	assert_string_equal(name, "a.example");
}

static void test_http_pipelined(void **state)
{
	char name[SNIFF_NAME_MAX];

	/* the first request's Host, whatever follows */
	assert_int_equal(http("GET /1 HTTP/1.1\r\nHost: first.example\r\n\r\n"
	                      "GET /2 HTTP/1.1\r\nHost: second.example\r\n\r\n", name),
	                 SNIFF_FOUND);
	assert_string_equal(name, "first.example");
	/* a body does not need to be there yet */
	assert_int_equal(http("POST / HTTP/1.1\r\nHost: a.example\r\n"
	                      "Content-Length: 100\r\n\r\npartial", name), SNIFF_FOUND);
}

static void test_http_absent_and_invalid(void **state)
{
	static const struct { const char *req; enum sniff_result want; } cases[] = {
		{ "GET / HTTP/1.0\r\n\r\n", SNIFF_NONE },
		{ "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", SNIFF_NONE },
		{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", SNIFF_INVALID },
		{ "GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n", SNIFF_INVALID },
		{ "GET / HTTP/1.1\r\nHost:\r\n\r\n", SNIFF_INVALID },
		{ "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", SNIFF_INVALID },
		{ "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", SNIFF_INVALID },
		{ "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", SNIFF_INVALID },
		{ "GET / HTTP/1.1\r\nHost: a\x01.example\r\n\r\n", SNIFF_INVALID },
		{ "GET / HTTP/1.1\r\nHost: a.example\r\n  folded\r\n\r\n", SNIFF_INVALID },
		{ "GET / HTTP/1.1\nHost: a.example\n\n", SNIFF_INVALID },
		{ "SSH-2.0-OpenSSH_9.2\r\n", SNIFF_INVALID },
		{ "\x16\x03\x01\x00\x10", SNIFF_INVALID },
	};
	char name[SNIFF_NAME_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum sniff_result r = http(cases[i].req, name);
		if (r != cases[i].want)
			fail_msg("case %zu: got %s", i, sniff_result_str(r));
	}
	static const char nul[] = "GET / HTTP/1.1\r\nHo\0st: a\r\n\r\n";
	assert_int_equal(run(sniff_http_host, nul, sizeof(nul) - 1, name),
	                 SNIFF_INVALID);
}

static void test_http_oversized_name(void **state)
{
	char req[1024], name[SNIFF_NAME_MAX], host[400];

	memset(host, 'a', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host);
	assert_int_equal(http(req, name), SNIFF_INVALID);
	host[254] = '\0';   /* one more than the longest DNS name */
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host);
	assert_int_equal(http(req, name), SNIFF_INVALID);
	host[253] = '\0';
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host);
	assert_int_equal(http(req, name), SNIFF_FOUND);
	assert_int_equal(strlen(name), 253);
}

static void test_sni_captured(void **state)
{
	size_t n;
	uint8_t *p;

	p = slurp("clienthello-sni.bin", &n);           /* openssl, TLS 1.3 */
	check_prefixes(sniff_tls_sni, p, n, SNIFF_FOUND, "api.partner.example");
	p = slurp("clienthello-tls12.bin", &n);
	check_prefixes(sniff_tls_sni, p, n, SNIFF_FOUND, "legacy.example");
	p = slurp("clienthello-nosni.bin", &n);
	check_prefixes(sniff_tls_sni, p, n, SNIFF_NONE, NULL);
}

/* The same ClientHello cut into two TLS records (allowed, and used by
 * clients with large hellos). */
static void test_sni_across_records(void **state)
{
	size_t n;
	uint8_t *p = slurp("clienthello-sni.bin", &n), two[70000];
	size_t body = n - 5, cut = 100;

	memcpy(two, p, 5);
	two[3] = (uint8_t)(cut >> 8);
	two[4] = (uint8_t)cut;
	memcpy(two + 5, p + 5, cut);
	memcpy(two + 5 + cut, p, 5);
	two[5 + cut + 3] = (uint8_t)((body - cut) >> 8);
	two[5 + cut + 4] = (uint8_t)(body - cut);
	memcpy(two + 10 + cut, p + 5 + cut, body - cut);
	check_prefixes(sniff_tls_sni, two, n + 5, SNIFF_FOUND, "api.partner.example");
}

static void test_sni_malformed(void **state)
{
	size_t n;
	uint8_t *orig = slurp("clienthello-sni.bin", &n), p[4096];
	char name[SNIFF_NAME_MAX];

	assert_true(n < sizeof(p));
	/* not a handshake record */
	memcpy(p, orig, n);
	p[0] = 23;
	assert_int_equal(run(sniff_tls_sni, p, n, name), SNIFF_INVALID);
	/* not a ClientHello */
	memcpy(p, orig, n);
	p[5] = 2;
	assert_int_equal(run(sniff_tls_sni, p, n, name), SNIFF_INVALID);
	/* a session id longer than the message */
	memcpy(p, orig, n);
	p[5 + 4 + 34] = 0xff;
	assert_int_equal(run(sniff_tls_sni, p, n, name), SNIFF_INVALID);
	/* an extensions block longer than the message */
	memcpy(p, orig, n);
	size_t off = 5 + 4 + 34;
	off += 1 + p[off];
	off += 2 + (size_t)(p[off] << 8 | p[off + 1]);
	off += 1 + p[off];
	p[off] = 0xff;
	assert_int_equal(run(sniff_tls_sni, p, n, name), SNIFF_INVALID);
	/* a handshake length over the bound */
	memcpy(p, orig, n);
	p[6] = 0x7f;
	assert_int_equal(run(sniff_tls_sni, p, n, name), SNIFF_INVALID);
	/* a server name with NUL bytes in it (found by fuzz_sniff_tls) */
	static const uint8_t nul_name[] = {
		22, 3, 1, 0, 60, 1, 0, 0, 56, 3, 3, [11 ... 42] = 0, 0,
		0, 2, 0x13, 0x01, 1, 0, 0, 13, 0, 0, 0, 9, 0, 7, 0, 0, 4,
		'a', 0, 'b', 'c',
	};
	assert_int_equal(run(sniff_tls_sni, nul_name, sizeof(nul_name), name),
	                 SNIFF_INVALID);
	/* plain text */
	assert_int_equal(run(sniff_tls_sni, "GET / HTTP/1.1\r\n\r\n", 18, name),
	                 SNIFF_INVALID);
	/* every single-byte corruption: never a crash (ASan/valgrind watch),
	 * never a name that is not lower-case DNS-ish */
	for (size_t i = 0; i < n; i++) {
		memcpy(p, orig, n);
		p[i] ^= 0x5a;
		if (run(sniff_tls_sni, p, n, name) == SNIFF_FOUND)
			for (char *c = name; *c; c++)
				assert_true((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
				            strchr("-._:", *c));
	}
}

/* An extension header that starts inside the extensions block and ends
 * past it, in a hello near the size bound: the bound of the block, not of
 * the message, must stop the reader (found in review: it read up to 64 KiB
 * past the reassembly buffer). ASan and valgrind watch this test. */
static void test_sni_extension_past_its_block(void **state)
{
	static uint8_t body[16384], rec[16384 + 16];
	size_t b = 0, n = 16000, r = 0;
	char name[SNIFF_NAME_MAX];

	body[b++] = 3;
	body[b++] = 3;
	memset(body + b, 0x11, 32);
	b += 32;
	body[b++] = 0;                          /* session id */
	body[b++] = (uint8_t)(n >> 8);          /* cipher suites: most of it */
	body[b++] = (uint8_t)n;
	memset(body + b, 0x13, n);
	b += n;
	body[b++] = 1;
	body[b++] = 0;                          /* compression */
	body[b++] = 0;
	body[b++] = 2;                          /* extensions: 2 bytes long */
	const uint8_t ext[] = { 0, 0, 0xff, 0xff, 0xff, 0xfd, 0, 0xff, 0xf0 };
	memcpy(body + b, ext, sizeof(ext));     /* ...but a header of 4 */
	b += sizeof(ext);
	memset(body + b, 'a', sizeof(body) - b);
	b = sizeof(body);
	rec[r++] = 22;
	rec[r++] = 3;
	rec[r++] = 1;
	rec[r++] = (uint8_t)((b + 4) >> 8);
	rec[r++] = (uint8_t)(b + 4);
	rec[r++] = 1;
	rec[r++] = 0;
	rec[r++] = (uint8_t)(b >> 8);
	rec[r++] = (uint8_t)b;
	memcpy(rec + r, body, b);
	r += b;
	assert_int_equal(run(sniff_tls_sni, rec, r, name), SNIFF_INVALID);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_http_host),
		cmocka_unit_test(test_http_pipelined),
		cmocka_unit_test(test_http_absent_and_invalid),
		cmocka_unit_test(test_http_oversized_name),
		cmocka_unit_test(test_sni_captured),
		cmocka_unit_test(test_sni_across_records),
		cmocka_unit_test(test_sni_malformed),
		cmocka_unit_test(test_sni_extension_past_its_block),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
