/* libFuzzer: DNS answers as the snoop sees them, any bytes. Whatever it
 * returns must be sane: a count within the bound, a lower-case host name,
 * addresses of the question's family. The same bytes also go in as a
 * queued IP packet, into a small host map. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "attache/dns.h"
#include "attache/dnssnoop.h"
#include "attache/hostmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dns_addr out[DNS_MAX_ADDRS];
	char name[DNS_NAME_MAX];
	int n = dns_parse_answer(data, size, name, out, 8);
	struct hostmap m;

	if (hostmap_init(&m, 4, 1, 60)) {
		if (dnssnoop_packet(&m, data, size, 1000) > DNS_MAX_ADDRS || m.count > 4)
			__builtin_trap();
		hostmap_free(&m);
	}

	if (n < -1 || n > 8)
		__builtin_trap();
	if (n < 0)
		return 0;
	size_t len = strlen(name);
	if (len == 0 || len > 253 || name[len - 1] == '.')
		__builtin_trap();
	for (const char *c = name; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			__builtin_trap();
	for (int i = 0; i < n; i++)
		if (out[i].family != out[0].family ||
		    (out[i].family != AF_INET && out[i].family != AF_INET6))
			__builtin_trap();
	return 0;
}
