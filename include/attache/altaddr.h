/* The next address of a name, for a connection-level retry.
 *
 * attache dials the address the app chose. When that dial fails and the
 * name the connection is for has other addresses that apps of the netns
 * resolved (dns_snoop's table), the retry goes to another of them first:
 * round the original and the others, in address order. Only to an address
 * the policy routes exactly as it routed the original, so a retry never
 * reaches what a route denies or sends elsewhere; never to a loopback or
 * unspecified one. */
#ifndef ATTACHE_ALTADDR_H
#define ATTACHE_ALTADDR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct hostmap;
struct route;

struct altaddr_query {
	const struct config *cfg;
	const struct route *route;    /* what orig was routed by (NULL: none) */
	const char *name;             /* whose addresses */
	const char *match_name;       /* the name the route was matched with */
	const struct sockaddr *orig;  /* the app's original destination */
	uint16_t port;                /* the port dialled (a tls route's) */
};

/* The address for try number tries (1: the first retry) into out: true,
 * or false when it is the original's turn or the name has no other. */
bool altaddr_next(struct hostmap *map, const struct altaddr_query *q,
                  unsigned tries, uint64_t now_ms,
                  struct sockaddr_storage *out);

#endif
