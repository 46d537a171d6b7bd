/* What the snoop takes from a queued packet: the DNS answer inside UDP
 * from port 53, over IPv4 or IPv6; anything else (another port, a
 * fragment, TCP, a cut packet) is passed over without a guess. The
 * netlink side is exercised by tests/e2e/test_dns.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#include "attache/dnssnoop.h"
#include "attache/hostmap.h"

/* A DNS answer: cache.partner.example A 203.0.113.7, TTL 300. */
static const uint8_t answer[] = {
	0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0,
	5, 'c', 'a', 'c', 'h', 'e', 7, 'p', 'a', 'r', 't', 'n', 'e', 'r',
	7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0, 0, 1, 0, 1,
	0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 1, 0x2c, 0, 4, 203, 0, 113, 7,
};

static size_t ip4_udp(uint8_t *p, uint16_t sport, const uint8_t *payload,
                      size_t n)
{
	memset(p, 0, 28);
	p[0] = 0x45;
	p[9] = 17;
	p[20] = (uint8_t)(sport >> 8);
	p[21] = (uint8_t)sport;
	p[24] = (uint8_t)((8 + n) >> 8);
	p[25] = (uint8_t)(8 + n);
	memcpy(p + 28, payload, n);
	return 28 + n;
}

static void test_packets(void **state)
{
	struct hostmap m;
	struct hostmap_entry *e;
	uint8_t p[512], a[4] = { 203, 0, 113, 7 };
	size_t n;

	assert_true(hostmap_init(&m, 16, 1, 3600));
	n = ip4_udp(p, 53, answer, sizeof(answer));
	assert_int_equal(dnssnoop_packet(&m, p, n, 1000), 1);
	assert_int_equal(hostmap_lookup(&m, AF_INET, a, 2000, &e, 1), 1);
	assert_string_equal(e->name, "cache.partner.example");

	/* not from port 53 */
	n = ip4_udp(p, 5353, answer, sizeof(answer));
	assert_int_equal(dnssnoop_packet(&m, p, n, 1000), -1);
	/* a fragment: its offset set, or more to come */
	n = ip4_udp(p, 53, answer, sizeof(answer));
	p[6] = 0x20;
	assert_int_equal(dnssnoop_packet(&m, p, n, 1000), -1);
	/* TCP */
	n = ip4_udp(p, 53, answer, sizeof(answer));
	p[9] = 6;
	assert_int_equal(dnssnoop_packet(&m, p, n, 1000), -1);
	/* cut anywhere: never an entry, never a read past the end */
	n = ip4_udp(p, 53, answer, sizeof(answer));
	for (size_t len = 0; len < n; len++)
		assert_true(dnssnoop_packet(&m, p, len, 1000) <= 0);

	/* the UDP length says where DNS ends: bytes after it are not read,
	 * and a length past the packet is not believed */
	n = ip4_udp(p, 53, answer, sizeof(answer));
	p[25] -= 4;   /* the answer's address cut off by the UDP length */
	memset(p + n, 0xff, 16);
	assert_true(dnssnoop_packet(&m, p, n + 16, 1000) <= 0);
	n = ip4_udp(p, 53, answer, sizeof(answer));
	p[25] += 1;
	assert_int_equal(dnssnoop_packet(&m, p, n, 1000), -1);

	/* IPv6 */
	memset(p, 0, 48);
	p[0] = 0x60;
	p[6] = 17;
	p[40] = 0;
	p[41] = 53;
	p[45] = (uint8_t)(8 + sizeof(answer));
	memcpy(p + 48, answer, sizeof(answer));
	assert_int_equal(dnssnoop_packet(&m, p, 48 + sizeof(answer), 1000), 1);
	hostmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_packets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
