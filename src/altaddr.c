#include "attache/altaddr.h"

#include <string.h>

#include "attache/addr.h"
#include "attache/hostmap.h"
#include "attache/route.h"

#define ALTADDR_MAX 16

static bool unspecified(const struct hostmap_entry *e)
{
	static const uint8_t zero[16];

	return memcmp(e->addr, zero, e->family == AF_INET6 ? 16 : 4) == 0;
}

bool altaddr_next(struct hostmap *map, const struct altaddr_query *q,
                  unsigned tries, uint64_t now_ms,
                  struct sockaddr_storage *out)
{
	struct hostmap_entry *e[ALTADDR_MAX];
	struct sockaddr_storage alt[ALTADDR_MAX], probe;
	uint16_t orig_port = addr_port(q->orig);
	size_t n, k = 0;

	if (!map || !q->name || !q->name[0])
		return false;
	n = hostmap_by_name(map, q->name, now_ms, e, ALTADDR_MAX);
	for (size_t i = 0; i < n; i++) {
		if (unspecified(e[i]))
			continue;
		/* routed as the original was: matched on the app's port */
		addr_make(&probe, e[i]->family, e[i]->addr, orig_port);
		if (addr_is_loopback((struct sockaddr *)&probe) ||
		    addr_equal((struct sockaddr *)&probe, q->orig) ||
		    route_match(q->cfg, (struct sockaddr *)&probe,
		                q->match_name) != q->route)
			continue;
		addr_make(&alt[k++], e[i]->family, e[i]->addr, q->port);
	}
	if (k == 0 || tries % (k + 1) == 0)
		return false;
	*out = alt[tries % (k + 1) - 1];
	return true;
}
