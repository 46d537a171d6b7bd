/* One app connection on an http route, request by request:
 *
 *   HEAD ─► route ─► (deny: 403) ─► WAIT for an upstream connection ─►
 *   EXCH (request out, response back, both streamed) ─► done ─► HEAD ...
 *                                    └─ 101 / CONNECT 2xx ─► TUNNEL (relay)
 *
 * One pump moves whatever can move. Sockets are watched edge-triggered,
 * registered once (the app's for its life, an upstream's by upgroup.c
 * for its whole life, pooled or not), and readiness is remembered in
 * rd/wr flags: a small request costs one read and one write each way and
 * no epoll_ctl at all. */
#include "attache/exchange.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attache/addr.h"
#include "attache/altaddr.h"
#include "attache/backoff.h"
#include "attache/buf.h"
#include "attache/clock.h"
#include "attache/health.h"
#include "attache/http1.h"
#include "attache/log.h"
#include "attache/proxy.h"
#include "attache/relay.h"
#include "attache/route.h"
#include "attache/tls.h"
#include "attache/upgroup.h"
#include "attache/upstream.h"

#define LINGER_MS 1000
#define LINGER_BYTES (64 * 1024)
#define VIA_LINE "Via: 1.1 attache\r\n"
/* A request kept for a retry: its head and up to 64 KiB of body. A
 * longer one streams, and is not retried once past that. */
#define REPLAY_BODY_MAX (64 * 1024)
/* The longest Retry-After honoured; a longer one is the app's to see. */
#define RETRY_AFTER_MAX_MS 10000

/* How a try failed, for the retry rules. */
enum tryfail {
	TF_UNSENT,     /* nothing of the request reached the upstream */
	TF_RESET,      /* reset or closed before any response byte */
	TF_TIMEOUT,    /* per_try_timeout */
	TF_STATUS,     /* a status the policy retries */
};

enum xstate { XS_HEAD, XS_WAIT, XS_EXCH, XS_TUNNEL, XS_LINGER };

/* One side's socket and what we know of its readiness. */
struct side {
	int fd;
	struct tls *tls;            /* upstream on tls routes; not owned */
	struct event *ev;           /* the app's (the upstream's is upgroup's) */
	bool rd_ready, wr_ready;    /* worth a syscall without an event */
	bool hup;                   /* the peer closed: read to the end */
	size_t tls_wlen;            /* a TLS write to repeat with this length */
};

struct exchange {
	struct proxy *px;
	struct config *cfg;
	struct exchange_report *rep;
	exchange_end_fn end;
	void *arg;
	struct sockaddr_storage app_addr, dst;
	enum xstate st;
	struct side a, u;           /* the app, the upstream */
	struct event *timer;        /* idle timeout, linger */
	struct event *kick;         /* a pump that yielded comes back here */
	uint64_t last_active_ms;
	bool app_eof;
	struct buf *ain, *aout, *uin, *uout;
	/* the request in flight */
	struct http1 rq, rs;
	struct http1_head h;        /* the head being parsed (either way) */
	const struct route *route;
	enum action action;
	char host[SNIFF_NAME_MAX];
	char method[24], target[256];
	int status;                 /* 0 until the response head came */
	bool head_req, upgrade_req, connect_req, keep_alive, req_11;
	bool app_said_close;        /* the request itself asked for a close */
	bool tunnel;                /* the upstream agreed to the upgrade */
	bool req_done, resp_head, resp_done, resp_to_eof;
	bool app_close;             /* close the app's side after this one */
	bool up_reusable;
	uint32_t req_ready, resp_ready; /* checked body bytes at ain/uin head */
	uint64_t req_bytes, resp_bytes; /* this request, as we wrote it */
	struct timespec req_start;
	struct upreq ur;
	bool ur_used;
	struct upconn *uc;
	/* retries (see retry_request): */
	const struct policy *pol;
	struct pool_key key;        /* the upstream, to ask again */
	bool host_fixed;            /* host is the route's hostname */
	struct tls_ctx *key_tls;
	const struct pool_limits *lim;
	struct health *health;      /* held from admission to the end */
	struct admission adm;       /* how it was let in (probe, epoch) */
	bool idempotent;
	int h_method;
	unsigned tries, retries;
	uint64_t slept_ms;
	bool budget_spent;
	uint64_t deadline_ms;       /* the request timeout; 0: none (yet) */
	struct event *rtimer;       /* per-try timeout, deadline, backoff */
	bool backing_off;
	uint8_t *replay;            /* what was written upstream, for a retry */
	uint32_t req_head_len;      /* ... of which the head (the rest: body) */
	uint32_t replay_len, replay_cap, replay_sent;
	bool replay_on;             /* keeping it (idempotent, retries on) */
	struct relay relay;         /* the tunnel */
	bool relaying;
	size_t lingered;
	const char *outcome;        /* ours, when we answered the request */
	char reason[192];
};

static void pump(struct exchange *x);
static void finish(struct exchange *x, const char *outcome,
                   const char *reason, bool abort);
static int admit(struct exchange *x);
static int start_try(struct exchange *x, struct upgroup *g);
static int retry_request(struct exchange *x, enum tryfail why,
                         const char *outcome, int status, uint64_t wait_ms);

/* ------------------------------------------------------------ buffers */

static struct buf *need(struct exchange *x, struct buf **b)
{
	if (!*b)
		*b = bufpool_get(&x->px->pool);
	return *b;
}

/* Gives back a buffer with nothing pending: idle connections hold none. */
static void give_back(struct exchange *x, struct buf **b)
{
	if (*b && buf_len(*b) == 0) {
		bufpool_put(&x->px->pool, *b);
		*b = NULL;
	}
}

static size_t blen(const struct buf *b)
{
	return b ? buf_len(b) : 0;
}

/* Worth a read into b? A head must be read until it is whole or over
 * its bound (any room will do); a body only with a quarter free, for
 * fewer, larger reads. */
static bool room_to_read(const struct buf *b, bool body)
{
	return !b || buf_len(b) < (body ? BUF_SIZE - BUF_SIZE / 4 : BUF_SIZE);
}

/* ------------------------------------------------------------ io */

enum { IO_AGAIN = -1, IO_ERR = -2 };

/* Reads into b: >0, 0 at EOF, IO_AGAIN, or IO_ERR with errno set (or
 * EPROTO for TLS, whose reason tls_error() gives). */
static ssize_t side_read(struct side *s, struct buf *b)
{
	ssize_t n;
	short want = 0;

	if (buf_room(b) < BUF_SIZE / 4 || buf_room(b) == 0)
		buf_compact(b);
	if (s->tls) {
		n = tls_read(s->tls, b->data + b->tail, buf_room(b), &want);
		if (n == TLS_AGAIN) {
			/* Whichever way it waits, an edge will come. */
			s->rd_ready = false;
			if (want == EV_WRITE)
				s->wr_ready = false;
			return IO_AGAIN;
		}
		if (n == TLS_FAIL) {
			errno = EPROTO;
			return IO_ERR;
		}
		if (n > 0 && tls_read_drained(s->tls))
			s->rd_ready = s->hup;
	} else {
		size_t room = buf_room(b);
		n = recv(s->fd, b->data + b->tail, room, 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				s->rd_ready = false;
				return IO_AGAIN;
			}
			return IO_ERR;
		}
		/* A short read emptied the socket: the next read waits for an
		 * edge instead of paying a syscall for EAGAIN (unless the peer
		 * closed: its EOF brings no edge of its own). */
		if (n > 0 && (size_t)n < room)
			s->rd_ready = s->hup;
	}
	b->tail += (uint32_t)n;
	return n;
}

static ssize_t side_write(struct side *s, const uint8_t *p, size_t len)
{
	ssize_t n;
	short want = 0;

	if (s->tls) {
		if (s->tls_wlen)
			len = s->tls_wlen;   /* the same arguments, as wolfSSL asks */
		n = tls_write(s->tls, p, len, &want);
		if (n == TLS_AGAIN) {
			s->tls_wlen = len;
			s->wr_ready = false;
			if (want == EV_READ)
				s->rd_ready = false;
			return IO_AGAIN;
		}
		s->tls_wlen = 0;
		if (n == TLS_FAIL) {
			errno = EPROTO;
			return IO_ERR;
		}
		return n;
	}
	n = send(s->fd, p, len, MSG_NOSIGNAL);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR) {
			s->wr_ready = false;
			return IO_AGAIN;
		}
		return IO_ERR;
	}
	if ((size_t)n < len)
		s->wr_ready = false;
	return n;
}

/* An edge on one side: remember what it said, then move. */
static void side_event(struct exchange *x, struct side *s, short what)
{
	/* TLS turns readiness around (a read may wait to write): any edge
	 * on its socket is worth another try both ways. */
	if ((what & (EV_READ | EV_CLOSED)) || s->tls)
		s->rd_ready = true;
	if ((what & EV_WRITE) || s->tls)
		s->wr_ready = true;
	if (what & EV_CLOSED)
		s->hup = true;
	x->last_active_ms = relay_now_ms();
	pump(x);
}

static void on_app_event(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *x = arg;

	side_event(x, &x->a, what);
}

static void on_up_event(struct upconn *uc, short what, void *arg)
{
	struct exchange *x = arg;

	side_event(x, &x->u, what);
}

static void side_reset(struct side *s, int fd, struct tls *tls)
{
	s->fd = fd;
	s->tls = tls;
	s->rd_ready = s->hup = false;
	s->wr_ready = true;
	s->tls_wlen = 0;
}

static void side_free(struct side *s)
{
	if (s->ev)
		event_free(s->ev);
	s->ev = NULL;
}

/* Could a read on s give bytes now? */
static bool can_read(struct side *s)
{
	return s->rd_ready || (s->tls && tls_pending(s->tls) > 0);
}

/* ------------------------------------------------------------ log */

/* Each request's last word: its admission is given back and its line
 * logged. */
static void log_request(struct exchange *x, const char *outcome,
                        const char *reason)
{
	struct log_req lr = {
		.app = (struct sockaddr *)&x->app_addr,
		.dst = (struct sockaddr *)&x->dst,
		.host = x->host[0] ? x->host : NULL,
		.route = x->route ? x->route->name : NULL,
		.action = action_str(x->action),
		.method = x->method,
		.target = x->target,
		.status = x->status,
		.bytes_up = x->req_bytes,
		.bytes_down = x->resp_bytes,
		.duration_us = clock_elapsed_us(&x->req_start),
		.outcome = outcome,
		.reason = reason,
		.resil = { .tries = x->tries, .backoff_ms = x->slept_ms,
		           .budget_spent = x->budget_spent },
	};

	if (x->rtimer)
		event_del(x->rtimer);
	x->backing_off = false;
	if (x->health) {
		health_done(x->health, &x->adm);
		lr.resil.circuit = health_circuit(x->health);
		health_budget(x->health, &lr.resil.budget_retries,
		              &lr.resil.budget_allowed);
		health_put(x->health);
		x->health = NULL;
	}

	if (x->uc) {
		lr.upstream = (struct sockaddr *)&x->uc->peer;
		lr.conn = x->uc->reused ? "reused" : "new";
		lr.conn_requests = x->uc->requests + 1;
		if (x->uc->tls) {
			lr.tls = true;
			lr.tls_resumed = tls_resumed(x->uc->tls);
			lr.tls_version = tls_version(x->uc->tls);
		}
	}
	clock_gettime(CLOCK_REALTIME, &lr.time);
	logger_req(x->px->log, &lr);
	x->rep->requests++;
}

/* ------------------------------------------------------------ ending */

/* Gives the upstream connection back (kept when reusable), or closes
 * it; abort: as a reset, for a request cut short. */
static void drop_upstream(struct exchange *x, bool reusable, bool abort)
{
	if (x->ur_used)
		upreq_cancel(&x->ur);
	x->ur_used = false;
	if (x->uc) {
		upconn_release(x->uc, reusable, abort);
		x->uc = NULL;
	}
}

/* The only way out: the owner logs the connection and frees us. */
static void finish(struct exchange *x, const char *outcome,
                   const char *reason, bool abort)
{
	/* A tunnel that ended well closes its upstream gently too, so the
	 * last bytes and the close_notify are not reset away. */
	if (x->relaying && !abort)
		drop_upstream(x, false, false);
	x->end(x->arg, outcome, reason, abort);
}

static void end_linger(struct exchange *x)
{
	finish(x, x->outcome ? x->outcome : "ok",
	       x->outcome ? x->reason : NULL, false);
}

/* Reads and drops what the app still sends; -1 once done (x is gone). */
static int linger_step(struct exchange *x)
{
	char sink[4096];
	ssize_t n;

	while (can_read(&x->a)) {
		n = recv(x->a.fd, sink, sizeof(sink), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			x->a.rd_ready = false;
			return 0;
		}
		if (n <= 0 || (x->lingered += (size_t)n) >= LINGER_BYTES) {
			end_linger(x);
			return -1;
		}
	}
	return 0;
}

/* Closes the app's side once what we wrote has gone: a shutdown, then
 * whatever the app still sends is read and dropped for a while, so our
 * close does not reset our last response away. */
static int linger(struct exchange *x)
{
	drop_upstream(x, false, true);
	/* An app that asked for the close and sent all of its request sends
	 * nothing more: a plain close cannot reset our answer away. */
	if (x->app_eof || (x->app_said_close && x->req_done && !blen(x->ain))) {
		end_linger(x);
		return -1;
	}
	shutdown(x->a.fd, SHUT_WR);
	x->st = XS_LINGER;
	event_del(x->timer);
	clock_arm_ms(x->timer, LINGER_MS);
	return linger_step(x);
}

/* Answers the request with our own response and closes: nothing of it
 * went upstream, or what did is abandoned (the connection with it).
 * Returns -1: x may be gone. */
static int respond_with(struct exchange *x, int status, const char *outcome,
                        const char *reason, const char *extra)
{
	char resp[512];
	size_t n;

	if (reason != x->reason)
		snprintf(x->reason, sizeof(x->reason), "%s", reason);
	x->outcome = outcome;
	x->status = status;
	n = http1_error_response(resp, sizeof(resp), status, x->reason, extra,
	                         true);
	log_request(x, outcome, x->reason);
	/* Whatever was queued for the app is dropped: this replaces it. A
	 * fresh response fits in any socket buffer; if not, the app gets a
	 * cut one and a reset, never anything else. */
	if (send(x->a.fd, resp, n, MSG_NOSIGNAL) != (ssize_t)n) {
		finish(x, outcome, x->reason, true);
		return -1;
	}
	(void)linger(x);
	return -1;
}

static int respond_error(struct exchange *x, int status, const char *outcome,
                         const char *reason)
{
	return respond_with(x, status, outcome, reason, NULL);
}

/* ------------------------------------------------------------ request */

static void reset_request(struct exchange *x)
{
	x->route = NULL;
	x->host[0] = x->method[0] = x->target[0] = '\0';
	x->status = 0;
	x->head_req = x->upgrade_req = x->connect_req = false;
	x->keep_alive = x->req_11 = x->tunnel = x->app_said_close = false;
	x->req_done = x->resp_head = x->resp_done = x->resp_to_eof = false;
	x->app_close = x->up_reusable = false;
	x->req_ready = x->resp_ready = 0;
	x->req_bytes = x->resp_bytes = 0;
	x->reason[0] = '\0';
	x->outcome = NULL;
}

static void copy_str(char *out, size_t cap, const uint8_t *p, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

/* The Host without its port, lower case, for routing and the pool key. */
static void host_of(const struct http1_head *h, const uint8_t *base, char *out,
                    size_t cap)
{
	const uint8_t *p = base + h->host;
	size_t n = h->host_len;

	if (n && p[0] == '[') {            /* [v6]:port */
		const uint8_t *e = memchr(p, ']', n);
		n = e ? (size_t)(e - p) + 1 : n;
	} else {
		const uint8_t *e = memchr(p, ':', n);
		n = e ? (size_t)(e - p) : n;
	}
	copy_str(out, cap, p, n);
	for (char *c = out; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
}

/* ------------------------------------------------------------ retries */

/* RFC 9110 9.2.2: the methods whose repetition the app cannot tell. */
static bool is_idempotent(int method)
{
	switch (method) {
	case HTTP_GET: case HTTP_HEAD: case HTTP_OPTIONS: case HTTP_PUT:
	case HTTP_DELETE: case HTTP_TRACE:
		return true;
	default:
		return false;
	}
}

/* Retry-After in seconds (a date is not honoured: the backoff applies),
 * in ms; 0 when absent. */
static uint64_t retry_after_ms(const struct http1_head *h, const uint8_t *base)
{
	for (size_t i = 0; i < h->nfields; i++) {
		const struct http1_field *f = &h->fields[i];
		uint64_t v = 0;
		if (f->name_len != 11 ||
		    strncasecmp((const char *)base + f->name, "retry-after", 11))
			continue;
		for (uint32_t k = 0; k < f->value_len; k++) {
			uint8_t c = base[f->value + k];
			if (c < '0' || c > '9')
				return 0;
			v = v * 10 + (c - '0');
			if (v > RETRY_AFTER_MAX_MS / 1000)
				return UINT64_MAX;   /* too long: not retried */
		}
		return v * 1000;
	}
	return 0;
}

/* The try's timer: per_try_timeout or the request's deadline, whichever
 * comes first (deadline_only: the deadline). Both count from the end of
 * the app's request, as Envoy's do: an upload takes the time it takes
 * (the idle timeout bounds a stalled one). */
static void arm_try_timer(struct exchange *x, bool deadline_only)
{
	uint64_t now = relay_now_ms(), ms = 0;

	event_del(x->rtimer);
	if (!x->req_done)
		return;   /* req_step arms it when the request is whole */
	if (!x->deadline_ms && x->pol->request_timeout_ms)
		x->deadline_ms = now + x->pol->request_timeout_ms;
	if (!deadline_only)
		ms = x->pol->per_try_timeout_ms;
	if (x->deadline_ms) {
		uint64_t left = x->deadline_ms > now ? x->deadline_ms - now : 1;
		if (!ms || left < ms)
			ms = left;
	}
	if (ms)
		clock_arm_ms(x->rtimer, ms);
}

/* What the connection-level retries of this try did; got: it ended
 * with a connection (a pooled one counts as a try: the send). */
static void count_dials(struct exchange *x, bool got)
{
	x->tries += got && !x->ur.tries ? 1 : x->ur.tries;
	x->slept_ms += x->ur.backoff_ms;
	x->budget_spent |= x->ur.budget_out;
}

/* No connection could be had (after the connection-level retries). */
static int no_connection(struct exchange *x, const char *outcome,
                         const char *reason)
{
	bool busy = strncmp(outcome, "queue_", 6) == 0;

	return respond_error(x, busy ? 503 : 502, outcome, reason);
}

/* A try failed before any response byte reached the app; x->reason says
 * how. Tried again when every rule allows:
 *  - no response byte went to the app;
 *  - the request never reached the upstream, or it is idempotent, was
 *    kept whole for a replay, and the policy retries this failure;
 *  - attempts are left, and the upstream's budget and circuit agree;
 *  - the backoff ends before the request's deadline.
 * Else the app gets status naming the reason. Returns -1 (the pump
 * stops: x is waiting, or gone), or 0 for a status that is not retried:
 * the response goes to the app. */
static int retry_request(struct exchange *x, enum tryfail why,
                         const char *outcome, int status, uint64_t wait_ms)
{
	const struct policy *p = x->pol;
	bool reused = x->uc && x->uc->reused;
	bool stale = why == TF_UNSENT && reused;
	struct backoff b = { p->backoff_base_ms, p->backoff_cap_ms };
	uint64_t now = relay_now_ms(), wait;
	const char *no = NULL;

	/* A pooled connection that closed as we sent (the upstream's
	 * keep-alive timeout raced us) says nothing of the upstream: not a
	 * failure; if nothing was sent, its retry costs no budget either. */
	if (x->health && why != TF_STATUS &&
	    !(reused && why == TF_RESET && !blen(x->uin)) && !stale)
		health_result(x->health, p, &x->adm, false);
	wait = stale ? 0 : backoff_delay(&b, x->retries, &x->px->rng);
	if (wait < wait_ms)
		wait = wait_ms;
	if (x->resp_bytes || blen(x->aout))
		no = "the response had begun";
	else if (why != TF_UNSENT && !x->idempotent)
		no = "the request is not idempotent and was sent";
	else if (why != TF_UNSENT && !x->replay_on)
		no = p->attempts > 1 ? "the request was too long to keep"
		                     : "retries are off";
	else if ((why == TF_RESET && !(p->retry_on & RETRY_ON_RESET)) ||
	         (why == TF_TIMEOUT && !(p->retry_on & RETRY_ON_TIMEOUT)))
		no = "the policy does not retry it";
	else if (x->tries >= p->attempts)
		no = "no attempts left";
	else if (wait_ms == UINT64_MAX)
		no = "Retry-After is too long";
	else if (x->deadline_ms && now + wait >= x->deadline_ms)
		no = "no time left before the request timeout";
	else if (!stale && x->health && (no = health_retry(x->health, p)))
		x->budget_spent |= strcmp(no, "retry budget spent") == 0;
	if (no) {
		size_t n;
		if (why == TF_STATUS)
			return 0;
		n = strlen(x->reason);
		snprintf(x->reason + n, sizeof(x->reason) - n, "; %u %s, not "
		         "retried: %s", x->tries, x->tries == 1 ? "try" : "tries",
		         no);
		return respond_error(x, status, outcome, x->reason);
	}
	/* Again, from the start: the response so far is dropped (none of it
	 * reached the app), the request is written again from its copy. */
	x->retries++;
	drop_upstream(x, false, true);
	if (x->uin)
		x->uin->head = x->uin->tail;
	x->status = 0;
	x->resp_head = x->resp_done = x->resp_to_eof = x->up_reusable = false;
	x->resp_ready = 0;
	x->replay_sent = 0;
	x->req_bytes = 0;
	x->slept_ms += wait;
	x->st = XS_WAIT;
	x->backing_off = true;
	event_del(x->rtimer);
	if (wait)
		clock_arm_ms(x->rtimer, wait);
	else
		event_active(x->rtimer, EV_TIMEOUT, 1);
	return -1;
}

static void on_rtimer(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *x = arg;

	if (x->backing_off) {
		x->backing_off = false;
		if (start_try(x, NULL) > 0)
			pump(x);
		return;
	}
	if (x->status || (x->st != XS_WAIT && x->st != XS_EXCH))
		return;   /* the response began: its own pace from here */
	if (x->deadline_ms && relay_now_ms() + 1 >= x->deadline_ms) {
		if (x->health && x->st == XS_EXCH)
			health_result(x->health, x->pol, &x->adm, false);
		snprintf(x->reason, sizeof(x->reason), "no response within the "
		         "request timeout (%llu ms; %u %s)",
		         (unsigned long long)x->pol->request_timeout_ms, x->tries,
		         x->tries == 1 ? "try" : "tries");
		respond_error(x, 504, "timeout", x->reason);
		return;
	}
	if (x->st == XS_WAIT) {
		/* Waiting for a connection: the connect timeout and the
		 * queue's own bound apply; the deadline still does. */
		arm_try_timer(x, true);
		return;
	}
	snprintf(x->reason, sizeof(x->reason), "upstream per-try timeout "
	         "(%llu ms)", (unsigned long long)x->pol->per_try_timeout_ms);
	retry_request(x, TF_TIMEOUT, "timeout", 504, 0);
}

static void on_upconn(void *arg, struct upconn *uc, const char *outcome,
                      const char *reason);

static int got_upconn(struct exchange *x, struct upconn *uc)
{
	count_dials(x, true);
	arm_try_timer(x, false);
	x->uc = uc;
	x->st = XS_EXCH;
	side_reset(&x->u, uc->fd, uc->tls);
	if (!upconn_watch(uc, on_up_event, x))
		return respond_error(x, 502, "error", "out of memory");
	if (!x->rep->upstream.ss_family) {
		x->rep->upstream = uc->peer;
		if (uc->tls) {
			x->rep->tls = true;
			x->rep->tls_resumed = tls_resumed(uc->tls);
			x->rep->tls_version = tls_version(uc->tls);
			x->rep->tls_cipher = tls_cipher(uc->tls);
			x->rep->tls_verify = x->route && x->route->tls_verify;
		}
	}
	return 1;
}

static void on_upconn(void *arg, struct upconn *uc, const char *outcome,
                      const char *reason)
{
	struct exchange *x = arg;

	if (!uc) {
		count_dials(x, false);
		no_connection(x, outcome, reason);
		return;
	}
	if (got_upconn(x, uc) > 0)
		pump(x);
}

/* The request's head is in ain: route it and ask for a connection.
 * Returns -1 when it answered the request itself (x may be gone). */
static int begin_request(struct exchange *x, size_t hlen)
{
	const struct http1_head *h = &x->h;
	const uint8_t *base = x->ain->data + x->ain->head;
	struct sockaddr_storage up = x->dst;
	size_t n;

	clock_gettime(CLOCK_MONOTONIC, &x->req_start);
	copy_str(x->method, sizeof(x->method), (const uint8_t *)
	         llhttp_method_name((llhttp_method_t)h->method),
	         strlen(llhttp_method_name((llhttp_method_t)h->method)));
	copy_str(x->target, sizeof(x->target), base + h->target, h->target_len);
	if (h->host_len)
		host_of(h, base, x->host, sizeof(x->host));
	x->h_method = h->method;
	x->head_req = h->method == HTTP_HEAD;
	x->upgrade_req = h->upgrade;
	x->connect_req = h->method == HTTP_CONNECT;
	x->req_11 = h->minor >= 1;
	/* HTTP/1.0 apps close after each response: so do we, at once. */
	x->keep_alive = h->keep_alive && h->minor >= 1;
	x->app_said_close = !h->keep_alive;

	x->route = route_match(x->cfg, (struct sockaddr *)&x->dst,
	                       x->host[0] ? x->host : NULL);
	x->host_fixed = !x->host[0] && x->route && x->route->hostname;
	if (x->host_fixed)
		snprintf(x->host, sizeof(x->host), "%s", x->route->hostname);
	x->action = x->route ? x->route->action : x->cfg->default_action;
	if (!x->rep->routed) {
		x->rep->routed = true;
		x->rep->route = x->route;
		x->rep->action = x->action;
		snprintf(x->rep->name, sizeof(x->rep->name), "%s", x->host);
	}
	if (x->action == ACTION_DENY) {
		char why[128];
		if (x->route)
			snprintf(why, sizeof(why), "denied by route '%s'",
			         x->route->name);
		else
			snprintf(why, sizeof(why), "denied by the default policy");
		return respond_error(x, 403, "denied", why);
	}
	if (x->action == ACTION_TLS && x->route->tls_verify && !x->host[0])
		return respond_error(x, 502, "tls_failed", "no host name to "
		                     "verify the upstream against (the request "
		                     "has no Host; set the route's hostname)");

	/* The head goes out rewritten: hop-by-hop fields are ours. */
	if (!need(x, &x->uout))
		return respond_error(x, 502, "error", "out of memory");
	n = http1_rewrite(h, base, false, x->uout->data, BUF_SIZE);
	if (n && x->route && x->route->via) {
		if (n - 2 + sizeof(VIA_LINE) - 1 + 2 > BUF_SIZE) {
			n = 0;
		} else {
			memcpy(x->uout->data + n - 2, VIA_LINE "\r\n",
			       sizeof(VIA_LINE) - 1 + 2);
			n += sizeof(VIA_LINE) - 1;
		}
	}
	if (!n) {
		return respond_error(x, 431, "rejected", "header block too large");
	}
	x->uout->head = 0;
	x->uout->tail = (uint32_t)n;
	x->req_head_len = (uint32_t)n;
	x->ain->head += (uint32_t)hlen;
	/* A request without a body (and a tunnel's, whose bytes after the
	 * head are the tunnel's) is done with its head. */
	{
		bool done = false;
		ssize_t b = x->upgrade_req ? 0 : http1_body(&x->rq, NULL, 0, &done);
		x->req_done = x->upgrade_req || (b == 0 && done);
	}

	if (x->action == ACTION_TLS && x->route->tls_port)
		addr_set_port((struct sockaddr *)&up, x->route->tls_port);
	memset(&x->key, 0, sizeof(x->key));
	x->key.addr = up;
	x->key.tls_ctx = x->key_tls = x->action == ACTION_TLS ? x->route->tls
	                                                      : NULL;
	/* A TLS connection is verified for one name and never serves
	 * another; a plain one carries any Host of its route (keying it by
	 * Host would let an app open a group per made-up name). */
	if (x->key.tls_ctx)
		snprintf(x->key.name, sizeof(x->key.name), "%s", x->host);
	x->lim = x->route ? &x->route->pool : &x->cfg->pool;
	x->pol = x->route ? &x->route->policy : &x->cfg->policy;
	return admit(x);
}

/* The upstream's circuit and concurrency limit say whether the request
 * may go at all: when not, it fails fast, the upstream untouched. */
static int admit(struct exchange *x)
{
	struct upgroup *g = upgroup_get(x->px, &x->key, x->key_tls, x->cfg,
	                                x->lim);
	const char *no;
	char why[160], extra[96];

	if (!g)
		return respond_error(x, 502, "error", "out of memory");
	no = health_admit(g->h, x->pol, &x->adm, why, sizeof(why));
	if (no) {
		uint64_t now = relay_now_ms(), until = g->h->breaker.open_until_ms;
		uint64_t left = until > now ? until - now : 0;   /* 0: a probe is out */

		if (strcmp(no, "circuit_open") == 0)
			snprintf(extra, sizeof(extra), "X-Attache-Circuit: open\r\n"
			         "Retry-After: %llu\r\n",
			         (unsigned long long)(left / 1000 + 1));
		else
			extra[0] = '\0';
		upgroup_unused(g);
		return respond_with(x, 503, no, why, extra);
	}
	x->health = health_ref(g->h);
	x->idempotent = is_idempotent(x->h_method);
	x->replay_on = x->pol->attempts > 1 && x->idempotent && !x->upgrade_req;
	x->replay_len = x->replay_sent = 0;
	x->tries = x->retries = 0;
	x->slept_ms = 0;
	x->budget_spent = false;
	x->deadline_ms = 0;   /* set when the request is whole */
	return start_try(x, g);
}

/* A dial retry's address: another one of the request's host, if any. */
static bool next_addr(void *arg, unsigned tries, struct sockaddr_storage *out)
{
	struct exchange *x = arg;
	struct altaddr_query q = {
		.cfg = x->cfg, .route = x->route, .name = x->host,
		.match_name = x->host_fixed ? NULL : x->host,
		.orig = (struct sockaddr *)&x->dst,
		.port = addr_port((struct sockaddr *)&x->key.addr),
	};

	return x->px->hosts_on &&
	       altaddr_next(&x->px->hosts, &q, tries, relay_now_ms(), out);
}

/* One try: a connection from the group (pooled, or dialled with the
 * connection-level retries), then the request on it. */
static int start_try(struct exchange *x, struct upgroup *g)
{
	struct upconn *uc = NULL;
	const char *outcome = NULL;
	unsigned left = x->pol->attempts > x->tries ? x->pol->attempts - x->tries
	                                            : 1;
	int rc;

	if (!g && !(g = upgroup_get(x->px, &x->key, x->key_tls, x->cfg, x->lim)))
		return respond_error(x, 502, "error", "out of memory");
	memset(&x->ur, 0, sizeof(x->ur));
	x->ur.fresh = x->upgrade_req;
	x->ur.pol = x->pol;
	x->ur.adm = &x->adm;
	x->ur.attempts = left;
	x->ur.next_addr = next_addr;
	x->ur_used = true;
	x->st = XS_WAIT;
	arm_try_timer(x, true);   /* per-try: from the connection on */
	http1_next(&x->rs);
	http1_expect_head(&x->rs, x->head_req);
	rc = upreq_start(&x->ur, g, on_upconn, x, &uc, &outcome);
	if (rc < 0) {
		count_dials(x, false);
		return no_connection(x, outcome, x->ur.reason);
	}
	if (rc == 1)
		return got_upconn(x, uc);
	return 1;
}

/* ------------------------------------------------------------ tunnel */

static void on_relay_end(struct relay *r, const char *outcome,
                         const char *reason, bool abort)
{
	struct exchange *x = (struct exchange *)((char *)r -
	                                         offsetof(struct exchange, relay));

	x->req_bytes += r->h[RELAY_APP].nsent;
	x->resp_bytes += r->h[RELAY_UP].nsent;
	x->rep->bytes_up += r->h[RELAY_APP].nsent;
	x->rep->bytes_down += r->h[RELAY_UP].nsent;
	log_request(x, outcome, reason);
	finish(x, outcome, reason, abort);
}

/* The upstream agreed to the upgrade (or CONNECT) and its answer went
 * to the app: from here on, bytes, both ways, on this connection only. */
static void start_tunnel(struct exchange *x)
{
	side_free(&x->a);
	upconn_unwatch(x->uc);
	if (relay_init(&x->relay, x->px->base, x->a.fd, x->uc->fd, &x->px->pool,
	               on_relay_end) < 0) {
		finish(x, "error", "out of memory", true);
		return;
	}
	x->relaying = true;
	x->st = XS_TUNNEL;
	event_del(x->timer);
	if (x->uc->tls)
		relay_set_tls(&x->relay, RELAY_UP, x->uc->tls);
	relay_preload(&x->relay, RELAY_APP, x->ain, x->app_eof);
	relay_preload(&x->relay, RELAY_UP, x->uin, false);
	x->ain = x->uin = NULL;
	clock_arm_ms(x->timer, x->px->opt.idle_timeout_ms);
	relay_start(&x->relay);   /* may end x: nothing follows */
}

/* ------------------------------------------------------------ pump */

/* Request done, response done and written: log, and on to the next. */
static int complete(struct exchange *x)
{
	/* Reused only if it is exactly at a message boundary both ways:
	 * all of the request went (a response may come before the body is
	 * read), nothing past the response came (a second response would
	 * answer the next request, maybe another Host's), and the upstream
	 * has not closed. */
	bool all_sent = x->req_done && !x->req_ready && !blen(x->uout) &&
	                !x->u.tls_wlen;
	bool clean = !blen(x->uin) && !(x->u.tls && tls_pending(x->u.tls)) &&
	             !x->u.hup;
	bool reusable = x->up_reusable && x->resp_done && all_sent && clean;

	if (x->req_ready) {
		/* Body bytes the upstream will never get: they were this
		 * request's, so they are dropped, not read as the next. */
		x->ain->head += x->req_ready;
		x->req_ready = 0;
	}
	if (x->uin)
		x->uin->head = x->uin->tail;   /* past the response: dropped */
	log_request(x, "ok", NULL);
	drop_upstream(x, reusable, false);
	/* The copy's room is kept for the next request while it is small
	 * (a head): a waiting connection holds no body's worth of it. */
	if (x->replay_cap > 4096) {
		free(x->replay);
		x->replay = NULL;
		x->replay_cap = 0;
	}
	x->replay_len = x->replay_sent = 0;
	if (x->app_close && x->app_said_close && x->req_done && !blen(x->ain)) {
		/* The app asked for the close: it sends nothing more, and
		 * a plain close cannot reset our response away. */
		finish(x, "ok", NULL, false);
		return -1;
	}
	if (x->app_close)
		return linger(x);
	reset_request(x);
	http1_next(&x->rq);
	x->st = XS_HEAD;
	give_back(x, &x->aout);
	give_back(x, &x->uin);
	give_back(x, &x->uout);
	give_back(x, &x->ain);
	return 1;
}

static int head_step(struct exchange *x)
{
	ssize_t n;

	if (blen(x->ain)) {
		n = http1_head(&x->rq, x->ain->data + x->ain->head,
		               blen(x->ain), &x->h);
		if (n < 0)
			return respond_error(x, x->rq.status, "rejected", x->rq.rule);
		if (n > 0)
			return begin_request(x, (size_t)n);
		if (blen(x->ain) >= BUF_SIZE)
			return respond_error(x, 431, "rejected",
			                     "header block too large");
	}
	if (x->app_eof) {
		if (blen(x->ain))
			finish(x, "reset", "the app closed in the middle of a "
			       "request head", true);
		else
			finish(x, "ok", NULL, false);
		return -1;
	}
	if (!can_read(&x->a))
		return 0;
	if (!need(x, &x->ain)) {
		finish(x, "error", "out of memory", true);
		return -1;
	}
	n = side_read(&x->a, x->ain);
	if (n == IO_AGAIN)
		return 0;
	if (n == IO_ERR) {
		snprintf(x->reason, sizeof(x->reason), "app read: %s",
		         strerror(errno));
		finish(x, "reset", x->reason, true);
		return -1;
	}
	if (n == 0)
		x->app_eof = true;
	return 1;
}

/* Upstream failed or closed early: a 502 while the app has had nothing
 * of the response, else a reset (a cut response must not look whole). */
static int up_failed(struct exchange *x, const char *what, bool retryable)
{
	const char *on = x->uc && x->uc->reused ? " (a reused connection)" : "";
	int err = errno;

	if (x->uc && x->uc->tls && errno == EPROTO)
		snprintf(x->reason, sizeof(x->reason), "upstream %s: TLS: %s%s",
		         what, tls_error(x->uc->tls), on);
	else
		snprintf(x->reason, sizeof(x->reason), "upstream %s%s%s%s", what,
		         err ? ": " : "", err ? strerror(err) : "", on);
	if (retryable && !x->status)
		return retry_request(x, x->req_bytes || x->u.tls_wlen ? TF_RESET
		                                                      : TF_UNSENT,
		                     "upstream_failed", 502, 0);
	if (x->health && !x->status)
		health_result(x->health, x->pol, &x->adm, false);
	if (!x->status) {
		char why[sizeof(x->reason)];
		memcpy(why, x->reason, sizeof(why));
		return respond_error(x, 502, "upstream_failed", why);
	}
	log_request(x, "upstream_failed", x->reason);
	finish(x, "upstream_failed", x->reason, true);
	return -1;
}

/* Keeps a copy of request bytes as they are written upstream, so a retry
 * can write them again; past REPLAY_BODY_MAX of body the request is not
 * retried. */
static void keep_for_replay(struct exchange *x, const uint8_t *p, size_t n)
{
	size_t need = (size_t)x->replay_len + n;

	if (need > (size_t)x->req_head_len + REPLAY_BODY_MAX) {
		x->replay_on = false;
		x->replay_len = x->replay_sent = 0;
		return;
	}
	if (need > x->replay_cap) {
		size_t cap = x->replay_cap ? x->replay_cap : 1024;
		uint8_t *t;
		while (cap < need)
			cap *= 2;
		if (!(t = realloc(x->replay, cap))) {
			x->replay_on = false;
			x->replay_len = x->replay_sent = 0;
			return;
		}
		x->replay = t;
		x->replay_cap = (uint32_t)cap;
	}
	memcpy(x->replay + x->replay_len, p, n);
	x->replay_len += (uint32_t)n;
	x->replay_sent = x->replay_len;
}

/* A retry writes what the failed try had written, before the rest:
 * 1 if bytes moved, 0 if the socket is full or nothing is left to
 * replay, -1 if it ended x. */
static int replay_step(struct exchange *x)
{
	ssize_t n;

	if (x->replay_sent >= x->replay_len || !x->u.wr_ready)
		return 0;
	n = side_write(&x->u, x->replay + x->replay_sent,
	               x->replay_len - x->replay_sent);
	if (n == IO_AGAIN)
		return 0;
	if (n == IO_ERR)
		return up_failed(x, "write", true);
	x->replay_sent += (uint32_t)n;
	x->req_bytes += (uint64_t)n;
	x->rep->bytes_up += (uint64_t)n;
	return 1;
}

/* Writes from b (the first avail bytes) to s; counts them into *count. */
static int write_out(struct exchange *x, struct side *s, struct buf *b,
                     size_t avail, uint64_t *count, uint64_t *total)
{
	ssize_t n = side_write(s, b->data + b->head, avail);

	if (n == IO_AGAIN)
		return 0;
	if (n == IO_ERR) {
		if (s == &x->u)
			return up_failed(x, "write", true);
		snprintf(x->reason, sizeof(x->reason), "app write: %s",
		         strerror(errno));
		log_request(x, "reset", x->reason);
		finish(x, "reset", x->reason, true);
		return -1;
	}
	if (s == &x->u && x->replay_on)
		keep_for_replay(x, b->data + b->head, (size_t)n);
	b->head += (uint32_t)n;
	*count += (uint64_t)n;
	*total += (uint64_t)n;
	return 1;
}

/* Sends what is ready one way: out first (a rewritten head, with small
 * body pieces copied after it so both go in one write), then the checked
 * body bytes at in's head (*ready of them), straight from there. 1 if
 * bytes moved, 0 if the socket is full, -1 if it ended x. */
static int send_one_way(struct exchange *x, struct side *to, struct buf *out,
                        struct buf *in, uint32_t *ready, uint64_t *count,
                        uint64_t *total)
{
	uint32_t before;
	int r;

	if (*ready && blen(out) && !to->tls_wlen && buf_room(out) >= *ready) {
		memcpy(out->data + out->tail, in->data + in->head, *ready);
		out->tail += *ready;
		in->head += *ready;
		*ready = 0;
	}
	if (!to->wr_ready)
		return 0;
	if (blen(out))
		return write_out(x, to, out, blen(out), count, total);
	if (!*ready)
		return 0;
	before = in->head;
	if ((r = write_out(x, to, in, *ready, count, total)) < 0)
		return -1;
	*ready -= in->head - before;
	return r;
}

/* Request bytes, app to upstream. */
static int req_step(struct exchange *x)
{
	int moved = 0, r;
	ssize_t n;
	bool done;

	/* A retry's copy goes first, all of it. */
	if (x->replay_sent < x->replay_len) {
		if ((r = replay_step(x)) < 0)
			return -1;
		if (x->replay_sent < x->replay_len)
			return r;
		moved = r;
	}
	/* Checked body bytes join a head still waiting to go: one write. */
	if (!x->req_ready && !x->req_done && blen(x->ain)) {
		n = http1_body(&x->rq, x->ain->data + x->ain->head,
		               blen(x->ain), &done);
		if (n < 0) {
			if (!x->status)
				return respond_error(x, x->rq.status, "rejected",
				                     x->rq.rule);
			log_request(x, "rejected", x->rq.rule);
			finish(x, "rejected", x->rq.rule, true);
			return -1;
		}
		x->req_ready = (uint32_t)n;
		x->req_done = done;
		if (done && !x->status && x->health)
			arm_try_timer(x, false);
		if (n || done)
			moved = 1;
	}
	if ((r = send_one_way(x, &x->u, x->uout, x->ain, &x->req_ready,
	                      &x->req_bytes, &x->rep->bytes_up)) < 0)
		return -1;
	moved |= r;
	if (!x->req_done && !x->app_eof && can_read(&x->a) &&
	    room_to_read(x->ain, true)) {
		if (!need(x, &x->ain)) {
			finish(x, "error", "out of memory", true);
			return -1;
		}
		n = side_read(&x->a, x->ain);
		if (n == IO_ERR || n == 0) {
			snprintf(x->reason, sizeof(x->reason), "the app %s in "
			         "the middle of a request body", n ? "failed" :
			         "closed");
			log_request(x, "reset", x->reason);
			finish(x, "reset", x->reason, true);
			return -1;
		}
		if (n > 0)
			moved = 1;
	}
	return moved;
}

/* A response head is at uin's start: 1xx, tunnel, or the final one. */
static int resp_head(struct exchange *x, size_t hlen)
{
	const struct http1_head *h = &x->h;
	const uint8_t *base = x->uin->data + x->uin->head;
	size_t n;

	if (h->status == 101 && !x->upgrade_req) {
		errno = 0;
		return up_failed(x, "switched protocols unasked", false);
	}
	x->tunnel = x->upgrade_req &&
	            (x->connect_req ? h->status / 100 == 2 : h->status == 101);
	if ((h->status >= 200 || x->tunnel) && x->health) {
		/* The answer: the try's result, and the timers are off. */
		const struct policy *p = x->pol;
		bool bad = !x->tunnel && policy_has_status(p->circuit_status,
		                                           p->ncircuit_status,
		                                           h->status);
		event_del(x->rtimer);
		health_result(x->health, p, &x->adm, !bad);
		if (!x->tunnel && policy_has_status(p->retry_status,
		                                    p->nretry_status, h->status)) {
			snprintf(x->reason, sizeof(x->reason), "upstream answered "
			         "%d", h->status);
			if (retry_request(x, TF_STATUS, "upstream_failed", 0,
			                  retry_after_ms(h, base)) < 0)
				return -1;
			x->reason[0] = '\0';
		}
	}
	if (h->status >= 200 && !x->tunnel) {
		x->status = h->status;
		x->resp_to_eof = !h->no_body && h->content_length < 0 && !h->chunked;
		/* A refused upgrade: what the app sends next may be the
		 * tunnel's bytes, never a request. */
		if (!x->keep_alive || !x->req_done || x->resp_to_eof ||
		    x->upgrade_req)
			x->app_close = true;
		/* An answer before all of the request went out: will the
		 * upstream read and drop the rest, or take it for the next
		 * request? Nobody can tell, so its connection is retired. */
		bool all_sent = x->req_done && !x->req_ready &&
		                !blen(x->uout) && !x->u.tls_wlen;
		x->up_reusable = h->keep_alive && !x->resp_to_eof &&
		                 !x->upgrade_req && x->req_11 && all_sent;
	}
	if (!need(x, &x->aout)) {
		finish(x, "error", "out of memory", true);
		return -1;
	}
	buf_compact(x->aout);
	n = http1_rewrite(h, base, x->app_close,
	                  x->aout->data + x->aout->tail, buf_room(x->aout));
	if (!n) {
		errno = 0;
		return up_failed(x, "response head too large", false);
	}
	x->aout->tail += (uint32_t)n;
	x->uin->head += (uint32_t)hlen;
	if (x->tunnel) {
		x->status = h->status;
		x->resp_head = x->resp_done = true;
		return 1;
	}
	if (h->status < 200) {          /* interim: the final one follows */
		http1_next(&x->rs);
		http1_expect_head(&x->rs, x->head_req);
		return 1;
	}
	x->resp_head = true;
	return 1;
}

/* Response bytes, upstream to app. */
static int resp_step(struct exchange *x)
{
	int moved = 0, r;
	ssize_t n;
	bool done;

	if (!x->resp_head && blen(x->uin)) {
		n = http1_head(&x->rs, x->uin->data + x->uin->head, blen(x->uin),
		               &x->h);
		if (n < 0) {
			errno = 0;
			snprintf(x->reason, sizeof(x->reason), "bad response: %s",
			         x->rs.rule);
			{
				char what[sizeof(x->reason)];
				memcpy(what, x->reason, sizeof(what));
				return up_failed(x, what, false);
			}
		}
		if (n > 0) {
			if ((r = resp_head(x, (size_t)n)) < 0)
				return -1;
			moved = 1;
		} else if (blen(x->uin) >= BUF_SIZE) {
			errno = 0;
			return up_failed(x, "response head too large", false);
		}
	}
	if (x->resp_head && !x->resp_done && !x->resp_ready) {
		n = http1_body(&x->rs, x->uin ? x->uin->data + x->uin->head : NULL,
		               blen(x->uin), &done);
		if (n < 0) {
			snprintf(x->reason, sizeof(x->reason), "bad response "
			         "body: %s", x->rs.rule);
			log_request(x, "upstream_failed", x->reason);
			finish(x, "upstream_failed", x->reason, true);
			return -1;
		}
		x->resp_ready = (uint32_t)n;
		x->resp_done = done;
		if (n || done)
			moved = 1;
	}
	if ((r = send_one_way(x, &x->a, x->aout, x->uin, &x->resp_ready,
	                      &x->resp_bytes, &x->rep->bytes_down)) < 0)
		return -1;
	moved |= r;
	if (!x->resp_done && can_read(&x->u) && room_to_read(x->uin, x->resp_head)) {
		if (!need(x, &x->uin)) {
			finish(x, "error", "out of memory", true);
			return -1;
		}
		n = side_read(&x->u, x->uin);
		if (n == IO_ERR)
			return up_failed(x, "read", true);
		if (n == 0) {
			if (x->resp_head && x->resp_to_eof && !x->resp_ready) {
				x->resp_done = true;
				x->up_reusable = false;
				return 1;
			}
			errno = 0;
			return up_failed(x, x->resp_head ? "closed the connection "
			                 "in the middle of a response" :
			                 "closed the connection before responding",
			                 true);
		}
		if (n > 0)
			moved = 1;
	}
	return moved;
}

static int exch_step(struct exchange *x)
{
	int a, b;

	if ((a = req_step(x)) < 0 || (b = resp_step(x)) < 0)
		return -1;
	if (x->resp_done && !blen(x->aout) && !x->resp_ready) {
		if (x->tunnel) {
			start_tunnel(x);
			return -1;
		}
		if (x->req_done || x->app_close) {
			if (!x->req_done)
				x->up_reusable = false;
			return complete(x);
		}
	}
	return a | b;
}

static void pump(struct exchange *x)
{
	for (int round = 0;; round++) {
		int r = 0;
		if (round == 32) {
			/* Let other connections run: come back from the loop.
			 * (Not through a socket event: arming may delete it.) */
			event_active(x->kick, EV_TIMEOUT, 1);
			break;
		}
		if (x->st == XS_HEAD)
			r = head_step(x);
		else if (x->st == XS_EXCH)
			r = exch_step(x);
		else if (x->st == XS_LINGER)
			r = linger_step(x);
		if (r < 0)
			return;   /* ended, or handed over: x may be gone */
		if (r == 0)
			break;
	}
}

/* ------------------------------------------------------------ timer */

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
	pump(arg);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct exchange *x = arg;
	uint64_t limit = x->px->opt.idle_timeout_ms;
	uint64_t idle = relay_now_ms() - (x->st == XS_TUNNEL
	                                  ? x->relay.last_active_ms
	                                  : x->last_active_ms);

	if (x->st == XS_LINGER) {
		end_linger(x);
		return;
	}
	if (idle + 5 < limit || x->st == XS_WAIT) {
		/* The wait for a connection has its own timeouts. */
		clock_arm_ms(x->timer, idle + 5 < limit ? limit - idle : limit);
		return;
	}
	switch (x->st) {
	case XS_HEAD:
		if (blen(x->ain)) {
			respond_error(x, 408, "timeout", "the app sent no "
			              "complete request head within the idle "
			              "timeout");
			return;
		}
		finish(x, "ok", "idle timeout", false);
		return;
	case XS_EXCH:
		if (!x->status && !x->req_done) {
			respond_error(x, 408, "timeout", "the app sent no more "
			              "of its request body within the idle "
			              "timeout");
			return;
		}
		if (!x->status) {
			respond_error(x, 504, "timeout", "upstream response timeout");
			return;
		}
		log_request(x, "timeout", "idle timeout");
		finish(x, "timeout", "idle timeout", true);
		return;
	case XS_TUNNEL:
		log_request(x, "timeout", "idle timeout");
		finish(x, "timeout", "idle timeout", true);
		return;
	default:
		return;
	}
}

/* ------------------------------------------------------------ life */

struct exchange *exchange_new(struct proxy *px, struct config *cfg, int app_fd,
                              const struct sockaddr *app,
                              const struct sockaddr *dst, struct buf *early,
                              bool app_eof, struct exchange_report *rep,
                              exchange_end_fn end, void *arg)
{
	struct exchange *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->px = px;
	x->cfg = cfg;
	x->rep = rep;
	x->end = end;
	x->arg = arg;
	memcpy(&x->app_addr, app, addr_len(app));
	memcpy(&x->dst, dst, addr_len(dst));
	x->ain = early;
	x->app_eof = app_eof;
	x->u.fd = -1;
	http1_init(&x->rq, HTTP1_REQUEST);
	http1_init(&x->rs, HTTP1_RESPONSE);
	x->timer = evtimer_new(px->base, on_timer, x);
	x->kick = event_new(px->base, -1, 0, on_kick, x);
	x->rtimer = evtimer_new(px->base, on_rtimer, x);
	side_reset(&x->a, app_fd, NULL);
	x->a.ev = event_new(px->base, app_fd,
	                    EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED,
	                    on_app_event, x);
	if (!x->timer || !x->kick || !x->rtimer || !x->a.ev ||
	    event_add(x->a.ev, NULL) < 0) {
		exchange_free(x);
		return NULL;
	}
	return x;
}

void exchange_start(struct exchange *x)
{
	x->last_active_ms = relay_now_ms();
	/* Bytes already read while sniffing are parsed at once; for the
	 * socket, registering its event reports what is there (a read now
	 * would mostly find the request not yet sent). */
	clock_arm_ms(x->timer, x->px->opt.idle_timeout_ms);
	pump(x);
}

void exchange_free(struct exchange *x)
{
	if (x->relaying)
		relay_release(&x->relay);
	drop_upstream(x, false, true);
	side_free(&x->a);
	if (x->timer)
		event_free(x->timer);
	if (x->kick)
		event_free(x->kick);
	if (x->rtimer)
		event_free(x->rtimer);
	if (x->health) {   /* a request cut short: no verdict on the upstream */
		health_done(x->health, &x->adm);
		health_put(x->health);
	}
	free(x->replay);
	struct buf *bufs[] = { x->ain, x->aout, x->uin, x->uout };

	for (size_t i = 0; i < 4; i++)
		if (bufs[i])
			bufpool_put(&x->px->pool, bufs[i]);
	free(x);
}
