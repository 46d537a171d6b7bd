/* Dialling the upstream: a non-blocking connect whose outcome the caller
 * learns from a writable event (with the connect timeout on that event). */
#ifndef ATTACHE_UPSTREAM_H
#define ATTACHE_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "attache/common.h"

/* Opens a non-blocking TCP socket, sets SO_MARK to mark unless it is 0
 * (attache-init --proxy-mark tells the proxy's traffic by it), and starts
 * connecting it to dst. Returns the fd, with *in_progress telling whether
 * to wait for it to become writable, or -1 with errno when the socket
 * could not be marked or the connect failed at once
 * (e.g. ENETUNREACH). local receives the socket's own address (its
 * ephemeral port is known once connect() has been called). */
ATT_MUST_CHECK int upstream_connect(const struct sockaddr *dst,
                                    uint32_t mark, bool *in_progress,
                                    struct sockaddr_storage *local);

/* Whether this process may set mark (SO_MARK needs CAP_NET_ADMIN):
 * 0, or -1 with errno. Checked at start, so a missing capability is an
 * error there rather than a failure on every connection. */
ATT_MUST_CHECK int upstream_mark_check(uint32_t mark);

/* After the socket became writable: 0 if connected, else the errno value
 * of the failure (SO_ERROR). */
int upstream_connect_result(int fd);

/* Sets TCP_NODELAY: the relay writes what it read at once, so Nagle would
 * only add delay to small exchanges. */
void socket_nodelay(int fd);

/* Closes fd; with abort, as a reset (SO_LINGER 0), so the peer cannot take
 * a truncated stream for a complete one. */
void socket_close(int fd, bool abort);

#endif
