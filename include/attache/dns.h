/* DNS answers, read for the names behind addresses: which host name did
 * an app resolve to get the address it now connects to? (6/6: the DNS
 * snoop feeds these to the host map.)
 *
 * c-ares parses (ares_parse_a_reply / ares_parse_aaaa_reply: compression
 * pointers, loops and truncation are its to guard, and OSS-Fuzz fuzzes
 * it); this layer checks that the packet is a response to one A or AAAA
 * question, takes the question's name, and keeps only addresses its
 * CNAME chain leads to. Pure over bytes. */
#ifndef ATTACHE_DNS_H
#define ATTACHE_DNS_H

#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX 254          /* a name in text, NUL included */
#define DNS_MAX_ADDRS 32          /* kept from one answer */

struct dns_addr {
	int family;                   /* AF_INET or AF_INET6 */
	uint8_t addr[16];             /* network byte order */
	uint32_t ttl;                 /* seconds: the chain's least */
};

/* Reads a DNS response (a UDP payload). Returns how many addresses it
 * gave for its question (0 to max, at most DNS_MAX_ADDRS), with the
 * question's name in name (lower case, no final dot); or -1 when it is
 * not a well-formed, successful response to one A or AAAA question, or
 * the name is not a host name. */
int dns_parse_answer(const uint8_t *p, size_t len, char name[DNS_NAME_MAX],
                     struct dns_addr *out, size_t max);

#endif
