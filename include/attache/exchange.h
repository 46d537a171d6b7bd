/* HTTP/1.1 exchanges on `protocol: http` connections.
 *
 * The app's connection is read request by request (http1.c frames each
 * one strictly); each request is routed by its own Host, sent on an
 * upstream connection from its group (upgroup.c: pooled, bounded), and
 * its response framed back. Pipelined requests are answered in order, one
 * at a time. A websocket upgrade or a CONNECT becomes a tunnel (relay.c)
 * on a connection of its own once the upstream agrees.
 *
 * Bodies pass through as they are (chunked stays chunked): framing is
 * checked, never changed, so nothing is buffered whole. At most four
 * BUF_SIZE buffers per connection while a request is in flight, none
 * while it waits for the next one. */
#ifndef ATTACHE_EXCHANGE_H
#define ATTACHE_EXCHANGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "attache/config.h"
#include "attache/sniff.h"

struct buf;
struct exchange;
struct proxy;

/* What the connection's own log line says of its exchanges: the first
 * request's route and name, and totals. */
struct exchange_report {
	char name[SNIFF_NAME_MAX];
	const struct route *route;   /* NULL: the default action */
	enum action action;
	bool routed;
	struct sockaddr_storage upstream;
	const char *tls_version, *tls_cipher;   /* the first TLS upstream's */
	bool tls, tls_resumed, tls_verify;
	uint64_t bytes_up, bytes_down;
	unsigned requests;
};

/* Called once when the connection is over; the owner frees the exchange
 * from inside it. abort: reset the app's connection. */
typedef void (*exchange_end_fn)(void *arg, const char *outcome,
                                const char *reason, bool abort);

/* Takes over app_fd (the owner closes it after end) with early, bytes
 * already read from it (may be NULL; owned from here). rep is the
 * owner's, filled as requests go. NULL when out of memory. */
struct exchange *exchange_new(struct proxy *px, struct config *cfg, int app_fd,
                              const struct sockaddr *app,
                              const struct sockaddr *dst, struct buf *early,
                              bool app_eof, struct exchange_report *rep,
                              exchange_end_fn end, void *arg);

/* Starts reading requests; may end (via end) before it returns. */
void exchange_start(struct exchange *x);

/* Frees it and whatever upstream connection it holds (closed: a
 * request cut short never leaves a connection for the next). */
void exchange_free(struct exchange *x);

#endif
