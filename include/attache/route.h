/* Which route a connection takes. Pure functions over the config. */
#ifndef ATTACHE_ROUTE_H
#define ATTACHE_ROUTE_H

#include <stdbool.h>
#include <sys/socket.h>

#include "attache/config.h"

/* How to read the name the app meant on a connection to dst: the protocol
 * of the first route whose address and port conditions take dst (host
 * conditions aside), else http on an http_ports port, else tcp (read
 * nothing: server-first protocols are never kept waiting). */
enum protocol route_protocol(const struct config *c, const struct sockaddr *dst);

/* The first route whose every condition holds for dst and name (lower
 * case, or NULL when none was recovered; a route's host condition then
 * looks at the route's own fixed hostname). NULL: the default action. */
const struct route *route_match(const struct config *c,
                                const struct sockaddr *dst, const char *name);

/* "*.example.com" takes "a.example.com" and "a.b.example.com", not
 * "example.com"; other patterns take only themselves. */
bool host_match(const char *pattern, const char *name);

bool cidr_match(const struct cidr *c, const struct sockaddr *sa);

/* Does every connection that b takes also satisfy a (so a, written first,
 * shadows b)? */
bool route_covers(const struct route *a, const struct route *b);

#endif
