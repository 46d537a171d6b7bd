#include "attache/altaddr.h"

#include <netinet/in.h>
#include <string.h>

#include "attache/addr.h"
#include "attache/hostmap.h"
#include "attache/route.h"

#define ALTADDR_MAX 16

static void to_sockaddr(const struct hostmap_entry *e, uint16_t port,
                        struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (e->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)out;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, e->addr, 16);
		s6->sin6_port = htons(port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)out;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, e->addr, 4);
		s4->sin_port = htons(port);
	}
}

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
		to_sockaddr(e[i], orig_port, &probe);
		if (addr_is_loopback((struct sockaddr *)&probe) ||
		    addr_equal((struct sockaddr *)&probe, q->orig) ||
		    route_match(q->cfg, (struct sockaddr *)&probe,
		                q->match_name) != q->route)
			continue;
		to_sockaddr(e[i], q->port, &alt[k++]);
	}
	if (k == 0 || tries % (k + 1) == 0)
		return false;
	*out = alt[tries % (k + 1) - 1];
	return true;
}
