/* Upstream connections for HTTP exchanges: dialled (TCP, then TLS on tls
 * routes), lent to one request at a time, kept idle between requests, and
 * bounded per upstream.
 *
 * A group is everything that may share connections: one pool key
 * (address, port, TLS context, name; see pool.h). It counts its open
 * connections (busy, idle and being dialled) against max_per_upstream;
 * over it, requests wait in a bounded queue, first come first served,
 * each with a timeout. A connection coming back goes straight to the
 * first waiter; one closing lets the first waiter dial.
 *
 * Everything here runs on the event loop and calls back from events only:
 * a caller is never re-entered from inside one of its own calls. */
#ifndef ATTACHE_UPGROUP_H
#define ATTACHE_UPGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "attache/config.h"
#include "attache/pool.h"

struct admission;
struct event;
struct health;
struct policy;
struct proxy;
struct tls;
struct tls_ctx;

struct upgroup {
	LIST_ENTRY(upgroup) link;     /* proxy.groups */
	struct proxy *px;
	struct pool_key key;
	struct tls_ctx *tls;          /* NULL: plain TCP */
	struct config *cfg;           /* a reference: keeps tls alive */
	struct pool_limits lim;
	struct pool idle;
	const struct pool_limits *lim_src;   /* the route's: part of the key */
	unsigned nopen;               /* busy + idle + dialling */
	unsigned nfresh;              /* dedicated ones, counted apart */
	TAILQ_HEAD(upwait_list, upreq) waiting;
	unsigned nwaiting;
	unsigned pins;                /* callers inside a call that may free g */
	struct health *h;             /* the upstream's breaker and budget */
	struct {
		uint64_t dialled, reused, queued, queue_full, queue_timeout;
	} stats;
};

struct upconn;

/* Readiness of a watched connection, edge-triggered (EV_READ, EV_WRITE,
 * EV_CLOSED): the holder keeps its own ready flags from these. */
typedef void (*upconn_io_fn)(struct upconn *uc, short what, void *arg);

/* One upstream connection, from its dial to its close: lent to a request,
 * or idle in its group's pool, where its event stays registered: a byte or
 * a close while idle takes it out at once, and reuse costs no syscall. */
struct upconn {
	LIST_ENTRY(upconn) link;      /* proxy.upconns: for loop detection */
	struct upgroup *g;
	int fd;
	struct tls *tls;              /* NULL: plain TCP */
	struct sockaddr_storage peer; /* the address dialled: the group's, or
	                                 another of its name's (next_addr) */
	struct sockaddr_storage local;
	unsigned requests;            /* requests sent on it before this one */
	bool reused;                  /* came from the pool */
	struct event *ev;             /* edge-triggered, read+write+closed */
	upconn_io_fn io;              /* the holder's; NULL: nobody listens */
	void *io_arg;
	struct pool_entry *idle;      /* in the pool: its entry */
	bool fresh;                   /* dedicated: closed after its use */
	bool seen;                    /* readable or closed while nobody held it */
};

/* The answer to an upreq: uc, or NULL with outcome ("connect_failed",
 * "tls_failed", "queue_full", "queue_timeout") and reason (kept in the upreq). */
typedef void (*upreq_fn)(void *arg, struct upconn *uc, const char *outcome,
                         const char *reason);

/* A request for a connection; owned (and embedded) by the caller. */
struct upreq {
	TAILQ_ENTRY(upreq) link;
	struct upgroup *g;
	upreq_fn done;
	void *arg;
	struct event *ev;             /* dial / handshake / queue timeout */
	struct upconn *uc;            /* being dialled, or handed over */
	uint64_t deadline_ms;         /* TCP and TLS together */
	int phase;                    /* internal */
	const char *outcome;          /* why a dial failed at once */
	bool fresh;                   /* a dedicated connection (a relay, a
	                                 tunnel): never pooled, not limited */
	/* Connection-level retries: a dial that failed (refused, timed out,
	 * unreachable, reset in the TLS handshake; never a certificate that
	 * failed verification) is tried again after a backoff with full
	 * jitter, while attempts, the upstream's budget and its circuit
	 * allow. Nothing of the app's has been sent, so any protocol may. */
	const struct policy *pol;     /* NULL: one try */
	/* Where try number tries (1: the first retry) goes, when the name
	 * has several addresses: false, or no callback, dials the group's
	 * address again. Called with arg, from the retry's event. */
	bool (*next_addr)(void *arg, unsigned tries,
	                  struct sockaddr_storage *out);
	const struct admission *adm;  /* the request's, for its results */
	unsigned attempts;            /* dials allowed; 0 counts as 1 */
	unsigned tries;               /* dials made */
	uint64_t backoff_ms;          /* slept between them */
	bool budget_out;              /* a retry was refused by the budget */
	char reason[160];
};

/* The group for key on this proxy, made on first use with lim (a later
 * caller with other limits joins the first one's group: limits belong to
 * a route, and a key includes the route's TLS context). tls may be NULL.
 * cfg is referenced while the group lives. NULL when out of memory. */
struct upgroup *upgroup_get(struct proxy *px, const struct pool_key *key,
                            struct tls_ctx *tls, struct config *cfg,
                            const struct pool_limits *lim);

/* Lets g go if nothing uses it (a caller that got it and asked nothing). */
void upgroup_unused(struct upgroup *g);

/* Asks for a connection (r zeroed, r->fresh set as wanted). Returns 1 with *ucp set when an idle one was
 * healthy, -1 when it failed at once (outcome and reason in *ucp's
 * place: see upreq_fn; r->reason holds the text), or 0 when r->done will
 * be called from an event later. */
int upreq_start(struct upreq *r, struct upgroup *g, upreq_fn done, void *arg,
                struct upconn **ucp, const char **outcome);

/* Gives up a pending request (the app went away). */
void upreq_cancel(struct upreq *r);

/* Sends uc's readiness to io (edge-triggered: the first call registers
 * the event; later ones only change who hears it). */
bool upconn_watch(struct upconn *uc, upconn_io_fn io, void *arg);

/* Stops watching (a tunnel's relay takes the socket over). */
void upconn_unwatch(struct upconn *uc);

/* Returns a connection after a request: kept for the next one when
 * reusable, else closed (abort: as a reset). */
void upconn_release(struct upconn *uc, bool reusable, bool abort);

/* Closes idle connections past their time, on every group. */
void upgroup_expire(struct proxy *px);

/* Closes every idle connection (shutdown). */
void upgroup_drain(struct proxy *px);

/* Is a connection from peer to dst (its original destination) one of our
 * own upstream connections, redirected back to us? */
bool upconn_is_loop(struct proxy *px, const struct sockaddr *peer,
                    const struct sockaddr *dst);

#endif
