/* DNS answers: crafted packets for the shapes that matter (a CNAME
 * chain, an answer for another name, compression loops and pointers out
 * of bounds, truncation at every byte, not-a-response, errors), and what
 * comes out: the question's name and the chain's addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "attache/dns.h"

struct pkt {
	uint8_t b[1024];
	size_t n;
};

static void u8(struct pkt *p, unsigned v) { p->b[p->n++] = (uint8_t)v; }
static void u16(struct pkt *p, unsigned v) { u8(p, v >> 8); u8(p, v & 0xff); }
static void u32(struct pkt *p, uint32_t v) { u16(p, v >> 16); u16(p, v & 0xffff); }

/* "a.b.c" as labels and a root; returns where it starts. */
static size_t name(struct pkt *p, const char *s)
{
	size_t at = p->n;

	while (*s) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);
		u8(p, (unsigned)l);
		memcpy(p->b + p->n, s, l);
		p->n += l;
		s += l + (dot != NULL);
	}
	u8(p, 0);
	return at;
}

static void ptr(struct pkt *p, size_t to) { u16(p, 0xC000 | (unsigned)to); }

/* A response header (flags 0x8180: QR, RD, RA, NOERROR) and a question. */
static size_t start(struct pkt *p, unsigned flags, unsigned qd, unsigned an,
                    const char *q, unsigned qtype)
{
	size_t at;

	p->n = 0;
	u16(p, 0x1234);
	u16(p, flags);
	u16(p, qd);
	u16(p, an);
	u16(p, 0);
	u16(p, 0);
	at = name(p, q);
	u16(p, qtype);
	u16(p, 1);
	return at;
}

static void rr_head(struct pkt *p, unsigned type, uint32_t ttl, unsigned rdlen)
{
	u16(p, type);
	u16(p, 1);
	u32(p, ttl);
	u16(p, rdlen);
}

static void a_rr(struct pkt *p, size_t owner, uint32_t ttl, const char *ip)
{
	struct in_addr a;

	ptr(p, owner);
	rr_head(p, 1, ttl, 4);
	inet_pton(AF_INET, ip, &a);
	memcpy(p->b + p->n, &a, 4);
	p->n += 4;
}

/* A CNAME from owner to target (written in full); returns where the
 * target's name starts. */
static size_t cname_rr(struct pkt *p, size_t owner, uint32_t ttl,
                       const char *target)
{
	size_t len_at, at;

	ptr(p, owner);
	rr_head(p, 5, ttl, 0);
	len_at = p->n - 2;
	at = name(p, target);
	p->b[len_at] = (uint8_t)((p->n - at) >> 8);
	p->b[len_at + 1] = (uint8_t)((p->n - at) & 0xff);
	return at;
}

static const char *ip4(const struct dns_addr *a, char *buf)
{
	return inet_ntop(AF_INET, a->addr, buf, INET6_ADDRSTRLEN);
}

static void test_plain_answer(void **state)
{
	struct pkt p;
	struct dns_addr out[8];
	char n[DNS_NAME_MAX], buf[INET6_ADDRSTRLEN];
	size_t q = start(&p, 0x8180, 1, 2, "Cache.Partner.Example", 1);

	a_rr(&p, q, 300, "203.0.113.7");
	a_rr(&p, q, 200, "203.0.113.8");
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 8), 2);
	assert_string_equal(n, "cache.partner.example");
	assert_int_equal(out[0].family, AF_INET);
	assert_string_equal(ip4(&out[0], buf), "203.0.113.7");
	assert_int_equal(out[0].ttl, 300);
	assert_string_equal(ip4(&out[1], buf), "203.0.113.8");
	assert_int_equal(out[1].ttl, 200);
	/* max bounds what is written */
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 1), 1);
}

static void test_cname_chain(void **state)
{
	struct pkt p;
	struct dns_addr out[8];
	char n[DNS_NAME_MAX], buf[INET6_ADDRSTRLEN];
	size_t q = start(&p, 0x8180, 1, 4, "www.partner.example", 1);
	size_t t1 = cname_rr(&p, q, 60, "edge.cdn.example");
	size_t t2 = cname_rr(&p, t1, 600, "pop7.cdn.example");

	a_rr(&p, t2, 300, "198.51.100.7");
	/* An address for a name off the chain: not the question's. */
	name(&p, "evil.example");
	rr_head(&p, 1, 300, 4);
	u32(&p, 0xCB00710A);               /* 203.0.113.10 */
	int k = dns_parse_answer(p.b, p.n, n, out, 8);
	assert_int_equal(k, 1);
	assert_string_equal(n, "www.partner.example");
	assert_string_equal(ip4(&out[0], buf), "198.51.100.7");
	/* The chain's least TTL: the address is only good while every link is. */
	assert_int_equal(out[0].ttl, 60);
}

static void test_aaaa_and_nodata(void **state)
{
	struct pkt p;
	struct dns_addr out[4];
	char n[DNS_NAME_MAX], buf[INET6_ADDRSTRLEN];
	size_t q = start(&p, 0x8180, 1, 1, "v6.partner.example", 28);
	struct in6_addr a;

	ptr(&p, q);
	rr_head(&p, 28, 120, 16);
	inet_pton(AF_INET6, "2001:db8::7", &a);
	memcpy(p.b + p.n, &a, 16);
	p.n += 16;
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), 1);
	assert_int_equal(out[0].family, AF_INET6);
	assert_string_equal(inet_ntop(AF_INET6, out[0].addr, buf, sizeof(buf)),
	                    "2001:db8::7");
	assert_int_equal(out[0].ttl, 120);

	/* No address of that kind: nothing, and no error. */
	start(&p, 0x8180, 1, 0, "v4only.partner.example", 28);
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), 0);
	assert_string_equal(n, "v4only.partner.example");
}

static void test_not_an_answer(void **state)
{
	struct pkt p;
	struct dns_addr out[4];
	char n[DNS_NAME_MAX];
	size_t q;

	/* a query, not a response */
	q = start(&p, 0x0100, 1, 1, "a.example", 1);
	a_rr(&p, q, 300, "203.0.113.7");
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), -1);
	/* NXDOMAIN */
	start(&p, 0x8183, 1, 0, "a.example", 1);
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), -1);
	/* two questions */
	q = start(&p, 0x8180, 2, 0, "a.example", 1);
	name(&p, "b.example");
	u16(&p, 1);
	u16(&p, 1);
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), -1);
	/* an MX question */
	start(&p, 0x8180, 1, 0, "a.example", 15);
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), -1);
	/* a name that is no host name */
	start(&p, 0x8180, 1, 0, "a b.example", 1);
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), -1);
	/* nothing at all, and a header alone */
	assert_int_equal(dns_parse_answer(p.b, 0, n, out, 4), -1);
	assert_int_equal(dns_parse_answer(p.b, 12, n, out, 4), -1);
}

static void test_compression_loops(void **state)
{
	struct pkt p;
	struct dns_addr out[4];
	char n[DNS_NAME_MAX];
	size_t q = start(&p, 0x8180, 1, 1, "a.example", 1);

	/* An answer whose owner points at itself. */
	size_t self = p.n;
	ptr(&p, self);
	rr_head(&p, 1, 300, 4);
	u32(&p, 0xCB007107);
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), -1);

	/* Two pointers at each other. */
	q = start(&p, 0x8180, 1, 1, "a.example", 1);
	size_t x = p.n;
	ptr(&p, x + 2);
	ptr(&p, x);
	rr_head(&p, 1, 300, 4);
	u32(&p, 0xCB007107);
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), -1);

	/* A pointer past the end. */
	q = start(&p, 0x8180, 1, 1, "a.example", 1);
	ptr(&p, 1000);
	rr_head(&p, 1, 300, 4);
	u32(&p, 0xCB007107);
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), -1);
	(void)q;
}

static void test_truncated_everywhere(void **state)
{
	struct pkt p;
	struct dns_addr out[4];
	char n[DNS_NAME_MAX];
	size_t q = start(&p, 0x8180, 1, 2, "www.partner.example", 1);
	size_t t = cname_rr(&p, q, 60, "edge.cdn.example");

	a_rr(&p, t, 300, "198.51.100.7");
	assert_int_equal(dns_parse_answer(p.b, p.n, n, out, 4), 1);
	/* Every shorter packet is an error (or, cut exactly between
	 * records, fewer answers): never a read past the end (valgrind and
	 * ASan run this) and never an address that was not all there. */
	for (size_t len = 0; len < p.n; len++) {
		int k = dns_parse_answer(p.b, len, n, out, 4);
		assert_true(k <= 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_answer),
		cmocka_unit_test(test_cname_chain),
		cmocka_unit_test(test_aaaa_and_nodata),
		cmocka_unit_test(test_not_an_answer),
		cmocka_unit_test(test_compression_loops),
		cmocka_unit_test(test_truncated_everywhere),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
