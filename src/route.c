#include "attache/route.h"

#include <netinet/in.h>
#include <string.h>

#include "attache/addr.h"

bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
	const uint8_t *a;
	unsigned full, rest;

	if (sa->sa_family != c->family)
		return false;
	a = sa->sa_family == AF_INET
	        ? (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr
	        : ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	full = c->plen / 8;
	rest = c->plen % 8;
	if (memcmp(a, c->addr, full) != 0)
		return false;
	return rest == 0 ||
	       ((a[full] ^ c->addr[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool host_match(const char *pattern, const char *name)
{
	size_t pl, nl;

	if (!name)
		return false;
	if (pattern[0] == '*' && pattern[1] == '.') {
		pl = strlen(pattern + 1);   /* ".example.com" */
		nl = strlen(name);
		return nl > pl && strcmp(name + nl - pl, pattern + 1) == 0;
	}
	return strcmp(pattern, name) == 0;
}

static bool ports_match(const struct route *r, uint16_t port)
{
	if (r->nports == 0)
		return true;
	for (size_t i = 0; i < r->nports; i++)
		if (port >= r->ports[i].lo && port <= r->ports[i].hi)
			return true;
	return false;
}

static bool addr_matches(const struct route *r, const struct sockaddr *dst)
{
	if (r->ncidrs == 0)
		return true;
	for (size_t i = 0; i < r->ncidrs; i++)
		if (cidr_match(&r->cidrs[i], dst))
			return true;
	return false;
}

static bool hosts_match(const struct route *r, const char *name)
{
	if (r->nhosts == 0)
		return true;
	if (!name)
		name = r->hostname;
	for (size_t i = 0; i < r->nhosts; i++)
		if (host_match(r->hosts[i], name))
			return true;
	return false;
}

enum protocol route_protocol(const struct config *c, const struct sockaddr *dst)
{
	uint16_t port = addr_port(dst);

	for (size_t i = 0; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];
		if (addr_matches(r, dst) && ports_match(r, port))
			return r->protocol;
	}
	for (size_t i = 0; i < c->nhttp_ports; i++)
		if (port >= c->http_ports[i].lo && port <= c->http_ports[i].hi)
			return PROTO_HTTP;
	return PROTO_TCP;
}

const struct route *route_match(const struct config *c,
                                const struct sockaddr *dst, const char *name)
{
	uint16_t port = addr_port(dst);

	for (size_t i = 0; i < c->nroutes; i++) {
		const struct route *r = &c->routes[i];
		if (addr_matches(r, dst) && ports_match(r, port) &&
		    hosts_match(r, name))
			return r;
	}
	return NULL;
}

static bool cidr_covers(const struct cidr *a, const struct cidr *b)
{
	struct sockaddr_storage ss;

	if (a->family != b->family || a->plen > b->plen)
		return false;
	memset(&ss, 0, sizeof(ss));
	ss.ss_family = (sa_family_t)b->family;
	if (b->family == AF_INET)
		memcpy(&((struct sockaddr_in *)&ss)->sin_addr, b->addr, 4);
	else
		memcpy(&((struct sockaddr_in6 *)&ss)->sin6_addr, b->addr, 16);
	return cidr_match(a, (struct sockaddr *)&ss);
}

bool route_covers(const struct route *a, const struct route *b)
{
	/* a's conditions must each take everything b's take; a condition a
	 * leaves out takes everything, one b leaves out takes more than any
	 * list can. */
	if (a->ncidrs) {
		if (!b->ncidrs)
			return false;
		for (size_t j = 0; j < b->ncidrs; j++) {
			bool in = false;
			for (size_t i = 0; i < a->ncidrs && !in; i++)
				in = cidr_covers(&a->cidrs[i], &b->cidrs[j]);
			if (!in)
				return false;
		}
	}
	if (a->nports) {
		if (!b->nports)
			return false;
		for (size_t j = 0; j < b->nports; j++) {
			bool in = false;
			for (size_t i = 0; i < a->nports && !in; i++)
				in = a->ports[i].lo <= b->ports[j].lo &&
				     b->ports[j].hi <= a->ports[i].hi;
			if (!in)
				return false;
		}
	}
	if (a->nhosts) {
		if (!b->nhosts)
			return false;
		for (size_t j = 0; j < b->nhosts; j++) {
			const char *h = b->hosts[j];
			bool in = false;
			/* A wildcard b, read as a name, is taken by a only
			 * when a takes every name b does. */
			for (size_t i = 0; i < a->nhosts && !in; i++)
				in = host_match(a->hosts[i], h);
			if (!in)
				return false;
		}
	}
	return true;
}
