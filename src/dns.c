#include "attache/dns.h"

#include <ares.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define HDR 12

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* Lower-cases name in place; false unless it is a host name (letters,
 * digits, '-' and '_' in labels of 1 to 63, 253 at most). */
static int host_name(char *name)
{
	size_t len = strlen(name), label = 0;

	if (len == 0 || len > DNS_NAME_MAX - 1)
		return 0;
	for (char *c = name; *c; c++) {
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
		if (*c == '.') {
			if (label == 0)
				return 0;
			label = 0;
			continue;
		}
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		      *c == '-' || *c == '_') || ++label > 63)
			return 0;
	}
	return label > 0;
}

int dns_parse_answer(const uint8_t *p, size_t len, char name[DNS_NAME_MAX],
                     struct dns_addr *out, size_t max)
{
	struct ares_addrttl v4[DNS_MAX_ADDRS];
	struct ares_addr6ttl v6[DNS_MAX_ADDRS];
	char *qname = NULL;
	long qlen;
	int n = DNS_MAX_ADDRS, rc;
	uint16_t qtype;

	/* A response (QR), a standard query, no error, one question. */
	if (len < HDR || len > 65535 || !(p[2] & 0x80) || (p[2] & 0x78) ||
	    (p[3] & 0x0f) || be16(p + 4) != 1)
		return -1;
	if (ares_expand_name(p + HDR, p, (int)len, &qname, &qlen) != ARES_SUCCESS)
		return -1;
	if ((size_t)(HDR + qlen + 4) > len || strlen(qname) >= DNS_NAME_MAX) {
		ares_free_string(qname);
		return -1;
	}
	strcpy(name, qname);
	ares_free_string(qname);
	if (!host_name(name))
		return -1;
	qtype = be16(p + HDR + qlen);
	if (be16(p + HDR + qlen + 2) != 1)   /* class IN */
		return -1;
	if (max > DNS_MAX_ADDRS)
		max = DNS_MAX_ADDRS;
	if (qtype == 1)
		rc = ares_parse_a_reply(p, (int)len, NULL, v4, &n);
	else if (qtype == 28)
		rc = ares_parse_aaaa_reply(p, (int)len, NULL, v6, &n);
	else
		return -1;
	if (rc == ARES_ENODATA)
		return 0;               /* a name with no address of this kind */
	if (rc != ARES_SUCCESS || n < 0)
		return -1;
	if ((size_t)n > max)
		n = (int)max;
	for (int i = 0; i < n; i++) {
		memset(&out[i], 0, sizeof(out[i]));
		if (qtype == 1) {
			out[i].family = AF_INET;
			memcpy(out[i].addr, &v4[i].ipaddr, 4);
			out[i].ttl = v4[i].ttl > 0 ? (uint32_t)v4[i].ttl : 0;
		} else {
			out[i].family = AF_INET6;
			memcpy(out[i].addr, &v6[i].ip6addr, 16);
			out[i].ttl = v6[i].ttl > 0 ? (uint32_t)v6[i].ttl : 0;
		}
	}
	return n;
}
