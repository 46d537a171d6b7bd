/* One app connection: original destination, upstream connect, relay, and
 * the one teardown that logs it. */
#ifndef ATTACHE_CONN_H
#define ATTACHE_CONN_H

#include <stdbool.h>
#include <sys/socket.h>

struct proxy;

/* Takes ownership of fd, accepted on a listener whose address is local,
 * from peer. Never fails to the caller: a connection that cannot be served
 * is closed and logged with its reason. */
void conn_accept(struct proxy *px, int fd, const struct sockaddr *peer,
                 const struct sockaddr *local);

/* Closes every open connection with outcome/reason (drain timeout). */
void conn_close_all(struct proxy *px, const char *outcome,
                    const char *reason);

#endif
