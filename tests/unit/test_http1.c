/* HTTP/1.1 framing: every rejection rule (table-driven), the edge cases of
 * where a message ends, and hop-by-hop rewriting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attache/http1.h"

static ssize_t head(struct http1 *x, enum http1_kind k, const char *s,
                    struct http1_head *h)
{
	http1_init(x, k);
	return http1_head(x, (const uint8_t *)s, strlen(s), h);
}

static const struct {
	const char *req, *rule;
	int status;
} rejected[] = {
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
	  "both Content-Length and Transfer-Encoding", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
	  "both Content-Length and Transfer-Encoding", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
	  "more than one Content-Length", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n",
	  "invalid Content-Length", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
	  "invalid Content-Length", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
	  "invalid Transfer-Encoding", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	  "unsupported transfer coding", 501 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
	  "invalid Transfer-Encoding", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	  "invalid Transfer-Encoding", 400 },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n  folded\r\n\r\n", "obs-fold", 400 },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tfolded\r\n\r\n", "obs-fold", 400 },
	{ "GET / HTTP/1.1\nHost: a\n\n", "bare CR or LF", 400 },
	{ "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", "bare CR or LF", 400 },
	{ "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", "bare CR or LF", 400 },
	{ "GET / HTTP/1.1\r\nHost: a\r\nX: a\001b\r\n\r\n", "invalid byte in a header", 400 },
	{ "GET / HTTP/1.1\r\nHost : a\r\n\r\n", "invalid byte in a header", 400 },
	/* from the framing review: each one a way two parsers disagree */
	{ "GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", "invalid header name", 400 },
	{ "GET /\r\nHost: a\r\nContent-Length: 3\r\n\r\n", "malformed start line", 400 },
	{ "GET / HTTP/2.0\r\nHost: a\r\n\r\n", "invalid HTTP version", 400 },
	{ "GET / HTTP/0.9\r\nHost: a\r\n\r\n", "invalid HTTP version", 400 },
	{ "OPTIONS * RTSP/1.0\r\nHost: a\r\n\r\n", "invalid HTTP version", 400 },
	{ "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", "malformed start line", 400 },
	{ "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", "invalid HTTP version", 400 },
	{ "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", "malformed start line", 400 },
	{ "GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", "malformed start line", 400 },
	{ "GET /\x80 HTTP/1.1\r\nHost: a\r\n\r\n", "malformed start line", 400 },
	{ "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 3\r\n\r\n",
	  "CONNECT with a body", 400 },
	{ "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
	  "Transfer-Encoding in HTTP/1.0", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n",
	  "Content-Length too large", 400 },
	{ "GET http://evil.example/x HTTP/1.1\r\nHost: good.example\r\n\r\n",
	  "Host and request target disagree", 400 },
	{ "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "invalid Host", 400 },
	{ "GET / HTTP/1.1\r\nHost: a/b?c\r\n\r\n", "invalid Host", 400 },
	{ "GET / HTTP/1.1\r\nHost:\r\n\r\n", "invalid Host", 400 },
	{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n",
	  "unsupported Upgrade (only websocket)", 400 },
	{ "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", "invalid byte in a header", 400 },
	{ "GET / HTTP/1.1\r\n\r\n", "missing Host", 400 },
	{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "more than one Host", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
	  "Connection: close, Transfer-Encoding\r\n\r\n", "Connection names a framing field", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nConnection: content-length\r\n\r\n",
	  "Connection names a framing field", 400 },
	{ "GET / HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n",
	  "Connection names a framing field", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\r\n\r\n",
	  "invalid Transfer-Encoding", 400 },
	{ "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\t\t\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n", "more than one Transfer-Encoding", 400 },
	{ "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", "malformed start line", 400 },
	{ "GETX / HTTP/1.1\r\nHost: a\r\n\r\n", "invalid method", 400 },
	{ "GET / HTTP/9.1\r\nHost: a\r\n\r\n", "invalid HTTP version", 400 },
	{ "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", "invalid HTTP version", 400 },
};

static void test_rejections(void **state)
{
	for (size_t i = 0; i < sizeof(rejected) / sizeof(rejected[0]); i++) {
		struct http1 x;
		struct http1_head h;
		ssize_t r = head(&x, HTTP1_REQUEST, rejected[i].req, &h);
		if (r != -1 || !x.rule || strcmp(x.rule, rejected[i].rule) ||
		    x.status != rejected[i].status)
			fail_msg("case %zu: got %zd '%s' %d, wanted '%s' %d", i, r,
			         x.rule ? x.rule : "-", x.status, rejected[i].rule,
			         rejected[i].status);
	}
}

static void test_start_lines_and_targets_accepted(void **state)
{
	struct http1 x;
	struct http1_head h;

	assert_true(head(&x, HTTP1_REQUEST, "GET http://A.example/x?y=1 HTTP/1.1\r\n"
	                 "Host: a.example\r\n\r\n", &h) > 0);
	assert_true(head(&x, HTTP1_REQUEST, "GET /p%20q;r=s?t=u&v=[w]~!$'()*+,@ HTTP/1.0\r\n\r\n",
	                 &h) > 0);
	assert_true(head(&x, HTTP1_REQUEST, "GET / HTTP/1.1\r\nHost: [2001:db8::7]:8080\r\n\r\n",
	                 &h) > 0);
	/* too many empty lines before a request */
	assert_int_equal(head(&x, HTTP1_REQUEST, "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
	                      "GET / HTTP/1.1\r\nHost: a\r\n\r\n", &h), -1);
	assert_string_equal(x.rule, "empty lines before the request");
}

static void test_bad_status_lines(void **state)
{
	static const char *bad[] = {
		"HTTP/1.1  200 OK\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 20 X\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 099 X\r\n\r\n",
		"HTTP/1.1 600 X\r\n\r\n",
		"HTTP/2.0 200 OK\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http1 x;
		struct http1_head h;
		http1_init(&x, HTTP1_RESPONSE);
		if (http1_head(&x, (const uint8_t *)bad[i], strlen(bad[i]), &h) != -1 ||
		    x.status != 502)
			fail_msg("case %zu accepted", i);
	}
}

static void test_trailers_follow_the_rules(void **state)
{
	static const struct { const char *body, *rule; } cases[] = {
		{ "0\r\n\nNEXT", "bare CR or LF" },
		{ "0\r\nX: y\r\n\nNEXT", "bare CR or LF" },
		{ "0\r\nX: y\nZ: w\r\n\r\n", "invalid byte in a header" },
		{ "0\r\nContent-Length: 50\r\n\r\n", "framing field in trailers" },
		{ "0\r\nHost: evil\r\n\r\n", "framing field in trailers" },
		{ "0\r\nX : y\r\n\r\n", "invalid byte in a header" },
	};
	const char *req = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http1 x;
		struct http1_head h;
		bool done = false;
		ssize_t r = 0;
		assert_true(head(&x, HTTP1_REQUEST, req, &h) > 0);
		/* whole, then byte by byte */
		for (int pass = 0; pass < 2; pass++) {
			const char *b = cases[i].body;
			size_t n = strlen(b), off = 0;
			if (pass)
				assert_true(head(&x, HTTP1_REQUEST, req, &h) > 0);
			r = 0;
			while (off < n && r >= 0 && !done) {
				size_t k = pass ? 1 : n - off;
				r = http1_body(&x, (const uint8_t *)b + off, k, &done);
				off += r > 0 ? (size_t)r : 0;
			}
			if (r != -1 || !x.rule || strcmp(x.rule, cases[i].rule) != 0)
				fail_msg("case %zu pass %d: got %zd '%s'", i, pass, r,
				         x.rule ? x.rule : "-");
			done = false;
		}
	}
}

static void test_nul_in_header(void **state)
{
	static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
	struct http1 x;
	struct http1_head h;

	http1_init(&x, HTTP1_REQUEST);
	assert_int_equal(http1_head(&x, (const uint8_t *)req, sizeof(req) - 1, &h), -1);
	assert_string_equal(x.rule, "invalid byte in a header");
}

static void test_limits(void **state)
{
	static char big[HTTP1_MAX_HEAD + 2048];
	struct http1 x;
	struct http1_head h;

	/* a request line past the bound: 414, even before it ends */
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /", 5);
	big[HTTP1_MAX_LINE + 10] = '\0';
	assert_int_equal(head(&x, HTTP1_REQUEST, big, &h), -1);
	assert_string_equal(x.rule, "request line too long");
	assert_int_equal(x.status, 414);
	/* a head that never ends within the bound: 431 */
	size_t n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\n");
	char pad[1001];
	memset(pad, 'p', 1000);
	pad[1000] = '\0';
	while (n <= HTTP1_MAX_HEAD)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X-Pad: %s\r\n", pad);
	assert_int_equal(head(&x, HTTP1_REQUEST, big, &h), -1);
	assert_string_equal(x.rule, "header block too large");
	assert_int_equal(x.status, 431);
	/* too many fields */
	n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (int i = 0; i < HTTP1_MAX_HEADERS; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X: %d\r\n", i);
	snprintf(big + n, sizeof(big) - n, "\r\n");
	assert_int_equal(head(&x, HTTP1_REQUEST, big, &h), -1);
	assert_string_equal(x.rule, "too many header fields");
	assert_int_equal(x.status, 431);
}

static void test_incomplete_then_complete(void **state)
{
	const char *req = "POST /up HTTP/1.1\r\nHost: a.example\r\nContent-Length: 5\r\n\r\nhello";
	size_t hl = strstr(req, "\r\n\r\n") + 4 - req;
	struct http1 x;
	struct http1_head h;
	bool done;

	for (size_t k = 0; k < hl; k++) {
		http1_init(&x, HTTP1_REQUEST);
		if (http1_head(&x, (const uint8_t *)req, k, &h) != 0)
			fail_msg("prefix %zu: not 'need more'", k);
	}
	http1_init(&x, HTTP1_REQUEST);
	assert_int_equal(http1_head(&x, (const uint8_t *)req, strlen(req), &h), (ssize_t)hl);
	assert_int_equal(h.method, HTTP_POST);
	assert_int_equal(h.content_length, 5);
	assert_false(h.chunked);
	assert_true(h.keep_alive);
	assert_int_equal(h.host_len, 9);
	assert_memory_equal(req + h.host, "a.example", 9);
	assert_memory_equal(req + h.target, "/up", 3);
	/* the body in two pieces, then the next request's bytes are not ours */
	assert_int_equal(http1_body(&x, (const uint8_t *)"hel", 3, &done), 3);
	assert_false(done);
	assert_int_equal(http1_body(&x, (const uint8_t *)"loGET", 5, &done), 2);
	assert_true(done);
}

static void test_chunked_with_trailers(void **state)
{
	const char *req = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n";
	const char *body = "3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\nNEXT";
	struct http1 x;
	struct http1_head h;
	bool done;

	assert_true(head(&x, HTTP1_REQUEST, req, &h) > 0);
	assert_true(h.chunked);
	assert_int_equal(h.content_length, -1);
	/* byte by byte: done exactly at the end of the trailers */
	size_t n = strlen(body) - 4, i;
	for (i = 0; i < n; i++) {
		assert_int_equal(http1_body(&x, (const uint8_t *)body + i, 1, &done), 1);
		if (done)
			break;
	}
	assert_int_equal(i, n - 1);
	assert_true(done);
	/* a bad chunk size after a good one */
	assert_true(head(&x, HTTP1_REQUEST, req, &h) > 0);
	assert_int_equal(http1_body(&x, (const uint8_t *)"3\r\nabc\r\nzz\r\n", 12, &done), -1);
	assert_string_equal(x.rule, "invalid chunk size");
}

static void test_pipelined(void **state)
{
	const char *two = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n";
	struct http1 x;
	struct http1_head h;
	bool done;

	ssize_t n = head(&x, HTTP1_REQUEST, two, &h);
	assert_int_equal(n, 28);
	assert_int_equal(http1_body(&x, (const uint8_t *)two + n, 0, &done), 0);
	assert_true(done);   /* a GET without a length has no body */
	http1_next(&x);
	assert_int_equal(http1_head(&x, (const uint8_t *)two + n, strlen(two) - (size_t)n, &h), 28);
	assert_memory_equal(two + n + h.target, "/2", 2);
}

static void test_responses_without_bodies(void **state)
{
	static const struct { const char *resp; bool head_req; } cases[] = {
		{ "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true },
		{ "HTTP/1.1 204 No Content\r\n\r\n", false },
		{ "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false },
		{ "HTTP/1.1 100 Continue\r\n\r\n", false },
	};
	bool done;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http1 x;
		struct http1_head h;
		http1_init(&x, HTTP1_RESPONSE);
		http1_expect_head(&x, cases[i].head_req);
		assert_true(http1_head(&x, (const uint8_t *)cases[i].resp,
		                       strlen(cases[i].resp), &h) > 0);
		assert_true(h.no_body);
		assert_int_equal(http1_body(&x, (const uint8_t *)"", 0, &done), 0);
		if (!done)
			fail_msg("case %zu: the message did not end with its head", i);
	}
}

static void test_close_delimited_response(void **state)
{
	const char *r = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
	struct http1 x;
	struct http1_head h;
	bool done;

	http1_init(&x, HTTP1_RESPONSE);
	assert_true(http1_head(&x, (const uint8_t *)r, strlen(r), &h) > 0);
	assert_false(h.keep_alive);   /* no length: it ends when the connection does */
	assert_int_equal(http1_body(&x, (const uint8_t *)"lots of data", 12, &done), 12);
	assert_false(done);
}

/* What llhttp does not frame as chunked must not look chunked to anyone
 * (found by fuzz_http1: "chunked<TAB>" in a response). */
static void test_ambiguous_response_framing(void **state)
{
	const char *r = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n";
	struct http1 x;
	struct http1_head h;

	http1_init(&x, HTTP1_RESPONSE);
	assert_int_equal(http1_head(&x, (const uint8_t *)r, strlen(r), &h), -1);
	assert_string_equal(x.rule, "ambiguous Transfer-Encoding");
	assert_int_equal(x.status, 502);
}

static void test_upgrade(void **state)
{
	const char *req = "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
	                  "Upgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n";
	struct http1 x;
	struct http1_head h;
	uint8_t out[512];

	assert_true(head(&x, HTTP1_REQUEST, req, &h) > 0);
	assert_true(h.upgrade);
	size_t n = http1_rewrite(&h, (const uint8_t *)req, false, out, sizeof(out));
	out[n] = '\0';
	assert_string_equal((char *)out, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
	                    "Sec-WebSocket-Key: k\r\nConnection: upgrade\r\n\r\n");
}

static void test_hop_by_hop_rewrite(void **state)
{
	const char *req = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\n"
	                  "Keep-Alive: timeout=5\r\nTE: trailers\r\nX-Secret: s\r\n"
	                  "Proxy-Connection: keep-alive\r\nAccept:  */*  \r\n\r\n";
	struct http1 x;
	struct http1_head h;
	uint8_t out[512];

	assert_true(head(&x, HTTP1_REQUEST, req, &h) > 0);
	assert_true(http1_hop_by_hop(&h, (const uint8_t *)req, "x-secret", 8));
	assert_true(http1_hop_by_hop(&h, (const uint8_t *)req, "TE", 2));
	assert_false(http1_hop_by_hop(&h, (const uint8_t *)req, "accept", 6));
	size_t n = http1_rewrite(&h, (const uint8_t *)req, true, out, sizeof(out));
	out[n] = '\0';
	assert_string_equal((char *)out, "GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n"
	                    "Connection: close\r\n\r\n");
	assert_int_equal(http1_rewrite(&h, (const uint8_t *)req, true, out, 20), 0);
}

static void test_empty_lines_before_a_request(void **state)
{
	const char *req = "\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n";
	struct http1 x;
	struct http1_head h;
	uint8_t out[128];

	assert_int_equal(head(&x, HTTP1_REQUEST, req, &h), (ssize_t)strlen(req));
	assert_int_equal(h.start, 4);
	size_t n = http1_rewrite(&h, (const uint8_t *)req, false, out, sizeof(out));
	out[n] = '\0';
	assert_string_equal((char *)out, "GET /x HTTP/1.1\r\nHost: a\r\n\r\n");
}

/* Tunnels keep what they need: a websocket its Upgrade (and gets
 * Connection: upgrade back), a CONNECT nothing of the kind. */
static void test_rewrite_tunnels(void **state)
{
	const char *ws = "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
	                 "Connection: Upgrade, X-Hop\r\nX-Hop: 1\r\n\r\n";
	const char *co = "CONNECT b:443 HTTP/1.1\r\nHost: a\r\n\r\n";
	struct http1 x;
	struct http1_head h;
	uint8_t out[256];
	size_t n;

	assert_int_equal(head(&x, HTTP1_REQUEST, ws, &h), (ssize_t)strlen(ws));
	assert_true(h.upgrade);
	n = http1_rewrite(&h, (const uint8_t *)ws, false, out, sizeof(out));
	out[n] = '\0';
	assert_string_equal((char *)out, "GET /chat HTTP/1.1\r\nHost: a\r\n"
	                    "Upgrade: websocket\r\nConnection: upgrade\r\n\r\n");
	assert_int_equal(head(&x, HTTP1_REQUEST, co, &h), (ssize_t)strlen(co));
	assert_true(h.upgrade);
	n = http1_rewrite(&h, (const uint8_t *)co, false, out, sizeof(out));
	out[n] = '\0';
	assert_string_equal((char *)out, co);
}

static void test_http10(void **state)
{
	struct http1 x;
	struct http1_head h;

	assert_true(head(&x, HTTP1_REQUEST, "GET / HTTP/1.0\r\n\r\n", &h) > 0);
	assert_false(h.keep_alive);
	assert_int_equal(h.host_len, 0);   /* a 1.0 request may omit Host */
	assert_true(head(&x, HTTP1_REQUEST, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &h) > 0);
	assert_true(h.keep_alive);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rejections),
		cmocka_unit_test(test_nul_in_header),
		cmocka_unit_test(test_start_lines_and_targets_accepted),
		cmocka_unit_test(test_bad_status_lines),
		cmocka_unit_test(test_trailers_follow_the_rules),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_incomplete_then_complete),
		cmocka_unit_test(test_chunked_with_trailers),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_responses_without_bodies),
		cmocka_unit_test(test_close_delimited_response),
		cmocka_unit_test(test_ambiguous_response_framing),
		cmocka_unit_test(test_upgrade),
		cmocka_unit_test(test_hop_by_hop_rewrite),
		cmocka_unit_test(test_empty_lines_before_a_request),
		cmocka_unit_test(test_rewrite_tunnels),
		cmocka_unit_test(test_http10),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
