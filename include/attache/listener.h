/* The redirect listeners (127.0.0.1 and ::1, separate sockets), accept
 * flow control under fd exhaustion, and draining on SIGTERM. */
#ifndef ATTACHE_LISTENER_H
#define ATTACHE_LISTENER_H

#include "attache/common.h"

struct proxy;

/* Binds the redirect port on 127.0.0.1 and ::1 (IPV6_V6ONLY) and starts
 * accepting. A host without IPv6 gets a warning and IPv4 only. Returns 0,
 * or -1 after logging why (e.g. the port is in use). */
ATT_MUST_CHECK int listener_open(struct proxy *px);

/* Stops accepting (closes the listening sockets) and lets open connections
 * finish for opt.drain_timeout_ms, then closes what is left. The event loop
 * exits once no connection is open. */
void listener_drain(struct proxy *px);

/* Frees the listeners and timers. */
void listener_close(struct proxy *px);

#endif
