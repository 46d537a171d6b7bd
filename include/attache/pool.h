/* Idle upstream connections kept for reuse.
 *
 * An entry is keyed by (address, port, TLS context, name): the TLS context
 * stands for the trust, the client certificate and the rest of a route's
 * TLS profile, and the name is the one the connection was verified (and
 * SNI'd) for, so a connection verified for one name never serves another.
 * A connection is checked before it is handed out: closed by the peer, or
 * readable with bytes nobody asked for, and it is discarded. Bounded in
 * number and in idle time. No event loop inside: the owner runs
 * pool_expire() from a timer, with its own clock. */
#ifndef ATTACHE_POOL_H
#define ATTACHE_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "attache/sniff.h"

struct tls;

struct pool_key {
	struct sockaddr_storage addr;
	const void *tls_ctx;           /* NULL: plain TCP */
	char name[SNIFF_NAME_MAX];     /* "" on plain TCP without a name */
};

struct pool_entry {
	TAILQ_ENTRY(pool_entry) link;  /* most recently idle first */
	struct pool_key key;
	int fd;
	struct tls *tls;
	void *ref;                     /* what keeps tls_ctx alive (a config) */
	unsigned requests;             /* served so far */
	uint64_t idle_since_ms;
};

/* Closes an entry's connection and drops its ref; why is for the log. */
typedef void (*pool_close_fn)(struct pool_entry *e, const char *why, void *arg);
/* Is an idle entry fit for reuse? (Default: pool_peek_healthy.) */
typedef bool (*pool_check_fn)(const struct pool_entry *e, uint64_t now_ms,
                              void *arg);

struct pool {
	TAILQ_HEAD(pool_list, pool_entry) idle;
	size_t nidle;
	size_t max_idle;               /* over it, the longest idle goes */
	uint64_t idle_timeout_ms;
	unsigned max_requests;         /* 0: no limit */
	pool_close_fn close;
	pool_check_fn check;           /* NULL: pool_peek_healthy */
	void *arg;
	struct {
		uint64_t reused, dead, expired, evicted;
	} stats;
};

void pool_init(struct pool *p, size_t max_idle, uint64_t idle_timeout_ms,
               unsigned max_requests, pool_close_fn close, void *arg);

/* Keeps a connection that just finished a request. Returns its entry, or
 * NULL when the pool will not keep it (it served max_requests); the
 * caller closes it then. May close the longest-idle entry to stay within
 * max_idle. */
struct pool_entry *pool_put(struct pool *p, const struct pool_key *k, int fd,
                            struct tls *tls, void *ref, unsigned requests,
                            uint64_t now_ms);

/* Closes one idle entry that its owner found dead (counted as dead). */
void pool_remove(struct pool *p, struct pool_entry *e, const char *why);

/* The MSG_PEEK check: not closed by the peer, nothing unasked-for to read
 * (in the socket, or held inside TLS). One syscall. */
bool pool_peek_healthy(const struct pool_entry *e);

/* Hands out the most recently idle healthy connection for k (true), and
 * closes the expired or dead ones it meets on the way. The caller owns
 * the returned fd, tls and ref. */
bool pool_take(struct pool *p, const struct pool_key *k, uint64_t now_ms,
               int *fd, struct tls **tls, void **ref, unsigned *requests);

/* Closes what has been idle longer than idle_timeout_ms. */
void pool_expire(struct pool *p, uint64_t now_ms);

/* Closes everything (shutdown, or a config that no longer pools). */
void pool_drain(struct pool *p);

size_t pool_idle_for(const struct pool *p, const struct pool_key *k);

bool pool_key_equal(const struct pool_key *a, const struct pool_key *b);

#endif
