#include "attache/upgroup.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attache/addr.h"
#include "attache/backoff.h"
#include "attache/clock.h"
#include "attache/config.h"
#include "attache/health.h"
#include "attache/proxy.h"
#include "attache/relay.h"
#include "attache/tls.h"
#include "attache/upstream.h"

enum { RQ_IDLE, RQ_QUEUED, RQ_CONNECT, RQ_TLS, RQ_HANDOVER, RQ_BACKOFF };

/* ------------------------------------------------------------ ports */

/* How many of our upstream sockets use each local port: a connection the
 * listener accepts from one of them is our own traffic come back. */
static void proxy_up_port(struct proxy *px, const struct sockaddr_storage *a,
                          int delta)
{
	uint16_t p = addr_port((const struct sockaddr *)a);

	if (p == 0)
		return;
	if (delta > 0 && px->up_ports[p] < UINT8_MAX)
		px->up_ports[p]++;
	else if (delta < 0 && px->up_ports[p] > 0 && px->up_ports[p] < UINT8_MAX)
		px->up_ports[p]--;   /* a saturated count stays: safe side */
}

bool upconn_is_loop(struct proxy *px, const struct sockaddr *peer,
                    const struct sockaddr *dst)
{
	struct upconn *uc;

	if (px->up_ports[addr_port(peer)] == 0)
		return false;
	/* The whole 4-tuple: an app's socket may share its local port with
	 * one of ours when the two go to different places. */
	LIST_FOREACH(uc, &px->upconns, link)
		if (addr_equal((struct sockaddr *)&uc->local, peer) &&
		    addr_equal((struct sockaddr *)&uc->peer, dst))
			return true;
	return false;
}

/* ------------------------------------------------------------ groups */

static void group_maybe_free(struct upgroup *g)
{
	if (g->nopen || g->nfresh || g->nwaiting || g->pins)
		return;
	LIST_REMOVE(g, link);
	health_put(g->h);
	config_unref(g->cfg);
	free(g);
}

static void grant_next(struct upgroup *g);

void upgroup_unused(struct upgroup *g)
{
	group_maybe_free(g);
}

/* A connection of g is gone for good: its slot is free. */
static void slot_freed(struct upgroup *g, bool fresh)
{
	if (fresh) {
		g->nfresh--;
		group_maybe_free(g);
		return;
	}
	g->nopen--;
	if (g->nwaiting)
		grant_next(g);
	else
		group_maybe_free(g);
}

static void close_conn(int fd, struct tls *t, bool polite, bool abort)
{
	if (t) {
		if (polite)
			tls_close_notify(t);
		tls_free(t);
	}
	socket_close(fd, abort);
}

static void upconn_forget(struct upconn *uc);

/* The pool drops an idle connection (expired, dead, over max_idle). */
static void on_pool_close(struct pool_entry *e, const char *why, void *arg)
{
	struct upgroup *g = arg;
	struct upconn *uc = e->ref;

	(void)why;
	close_conn(uc->fd, uc->tls, true, false);
	upconn_forget(uc);
	slot_freed(g, false);   /* pooled ones are never fresh */
}

/* Events drop a connection that turns readable while idle; what is left
 * to check is one that idled long, where a peek is cheap insurance. */
static bool pool_check(const struct pool_entry *e, uint64_t now_ms, void *arg)
{
	const struct upconn *uc = e->ref;

	(void)arg;
	if (uc->seen || (uc->tls && tls_pending(uc->tls) > 0))
		return false;
	return now_ms - e->idle_since_ms < 1000 || pool_peek_healthy(e);
}

struct upgroup *upgroup_get(struct proxy *px, const struct pool_key *key,
                            struct tls_ctx *tls, struct config *cfg,
                            const struct pool_limits *lim)
{
	struct upgroup *g;

	/* A reload makes new groups, with the new limits; the old ones go
	 * when their last connection does. */
	LIST_FOREACH(g, &px->groups, link)
		if (g->cfg == cfg && g->lim_src == lim &&
		    pool_key_equal(&g->key, key))
			return g;
	if (!(g = calloc(1, sizeof(*g))))
		return NULL;
	if (!(g->h = health_get(px, (struct sockaddr *)&key->addr))) {
		free(g);
		return NULL;
	}
	g->px = px;
	g->key = *key;
	g->tls = tls;
	g->cfg = config_ref(cfg);
	g->lim = *lim;
	g->lim_src = lim;
	pool_init(&g->idle, lim->max_idle, lim->idle_timeout_ms,
	          lim->max_requests, on_pool_close, g);
	g->idle.check = pool_check;
	TAILQ_INIT(&g->waiting);
	LIST_INSERT_HEAD(&px->groups, g, link);
	return g;
}

void upgroup_expire(struct proxy *px)
{
	struct upgroup *g, *next;
	uint64_t now = relay_now_ms();

	/* A pool dropping its last connection may free its group. */
	for (g = LIST_FIRST(&px->groups); g; g = next) {
		next = LIST_NEXT(g, link);
		g->pins++;   /* the last close must not free g under the pool */
		pool_expire(&g->idle, now);
		g->pins--;
		group_maybe_free(g);
	}
}

void upgroup_drain(struct proxy *px)
{
	struct upgroup *g, *next;

	for (g = LIST_FIRST(&px->groups); g; g = next) {
		next = LIST_NEXT(g, link);
		g->pins++;
		pool_drain(&g->idle);
		g->pins--;
		group_maybe_free(g);
	}
}

/* ------------------------------------------------------------ upconn */

static struct upconn *upconn_new(struct upgroup *g, int fd,
                                 const struct sockaddr *peer,
                                 const struct sockaddr_storage *local)
{
	struct upconn *uc = calloc(1, sizeof(*uc));

	if (!uc)
		return NULL;
	uc->g = g;
	uc->fd = fd;
	memcpy(&uc->peer, peer, addr_len(peer));
	if (local)
		uc->local = *local;
	proxy_up_port(g->px, &uc->local, +1);
	LIST_INSERT_HEAD(&g->px->upconns, uc, link);
	return uc;
}

/* Frees the struct and its event; the caller closed the socket. */
static void upconn_forget(struct upconn *uc)
{
	if (uc->ev)
		event_free(uc->ev);
	proxy_up_port(uc->g->px, &uc->local, -1);
	LIST_REMOVE(uc, link);
	free(uc);
}

static void on_upconn_event(evutil_socket_t fd, short what, void *arg)
{
	struct upconn *uc = arg;

	if (uc->io) {
		uc->io(uc, what, uc->io_arg);
		return;
	}
	/* Nobody holds it: a late reply, a close_notify, a FIN or a reset.
	 * A request sent now would be misframed or lost. */
	if (!(what & (EV_READ | EV_CLOSED)))
		return;
	uc->seen = true;
	if (uc->idle) {
		struct upgroup *g = uc->g;
		g->pins++;
		pool_remove(&g->idle, uc->idle, "readable while idle");
		g->pins--;
		group_maybe_free(g);
	}
}

bool upconn_watch(struct upconn *uc, upconn_io_fn io, void *arg)
{
	uc->io = io;
	uc->io_arg = arg;
	if (uc->ev)
		return true;
	uc->ev = event_new(uc->g->px->base, uc->fd,
	                   EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED,
	                   on_upconn_event, uc);
	return uc->ev && event_add(uc->ev, NULL) == 0;
}

void upconn_unwatch(struct upconn *uc)
{
	if (uc->ev)
		event_free(uc->ev);
	uc->ev = NULL;
	uc->io = NULL;
}

void upconn_release(struct upconn *uc, bool reusable, bool abort)
{
	struct upgroup *g = uc->g;

	/* One dialled to another address of the name served its request;
	 * the pool holds only the group's own (a plain one carries any Host
	 * of its route, and another Host may live elsewhere). */
	if (reusable && !addr_equal((struct sockaddr *)&uc->peer,
	                            (struct sockaddr *)&uc->g->key.addr))
		reusable = false;
	uc->requests++;
	uc->io = NULL;
	if (uc->fresh) {
		close_conn(uc->fd, uc->tls, !abort, abort);
		upconn_forget(uc);
		slot_freed(g, true);
		return;
	}
	if (reusable && g->nwaiting &&
	    (!g->lim.max_requests || uc->requests < g->lim.max_requests)) {
		struct upreq *r = TAILQ_FIRST(&g->waiting);
		TAILQ_REMOVE(&g->waiting, r, link);
		g->nwaiting--;
		g->stats.reused++;
		uc->reused = true;
		r->uc = uc;
		r->phase = RQ_HANDOVER;
		event_del(r->ev);
		event_active(r->ev, EV_TIMEOUT, 1);
		return;
	}
	if (reusable && upconn_watch(uc, NULL, NULL) &&
	    (uc->idle = pool_put(&g->idle, &g->key, uc->fd, uc->tls, uc,
	                         uc->requests, relay_now_ms())))
		return;
	close_conn(uc->fd, uc->tls, !abort, abort);
	upconn_forget(uc);
	slot_freed(g, false);
}

/* ------------------------------------------------------------ dialling */

static bool retry_later(struct upreq *r, bool final);

static void fail(struct upreq *r, const char *outcome)
{
	struct upconn *uc = r->uc;
	struct upgroup *g = r->g;
	bool final = uc && uc->tls && tls_error_is_final(uc->tls);

	r->uc = NULL;
	r->phase = RQ_IDLE;
	if (uc) {
		close_conn(uc->fd, uc->tls, false, true);
		upconn_forget(uc);
	}
	/* The slot stays ours while we back off: the retry is this dial's. */
	if (retry_later(r, final))
		return;
	slot_freed(g, r->fresh);
	r->done(r->arg, NULL, outcome, r->reason);
}

static void succeed(struct upreq *r)
{
	struct upconn *uc = r->uc;

	r->uc = NULL;
	r->phase = RQ_IDLE;
	event_del(r->ev);
	r->done(r->arg, uc, NULL, NULL);
}

static void on_event(evutil_socket_t fd, short what, void *arg);

static bool set_event(struct upreq *r, int fd, short what, uint64_t ms)
{
	if (r->ev)
		event_free(r->ev);
	r->ev = event_new(r->g->px->base, fd, what, on_event, r);
	if (!r->ev)
		return false;
	clock_arm_ms(r->ev, ms);
	return true;
}

static void tls_step(struct upreq *r)
{
	short want = 0;
	int rc = tls_handshake(r->uc->tls, &want);
	uint64_t now = relay_now_ms();

	if (rc == 1) {
		succeed(r);
		return;
	}
	if (rc == TLS_FAIL) {
		snprintf(r->reason, sizeof(r->reason), "upstream %s",
		         tls_error(r->uc->tls));
		fail(r, "tls_failed");
		return;
	}
	/* One deadline for TCP and TLS together: the connect timeout. */
	if (!set_event(r, r->uc->fd, want,
	               r->deadline_ms > now ? r->deadline_ms - now : 1)) {
		snprintf(r->reason, sizeof(r->reason), "out of memory");
		fail(r, "error");
	}
}

static void connected(struct upreq *r)
{
	struct upgroup *g = r->g;

	if (!g->tls) {
		succeed(r);
		return;
	}
	r->phase = RQ_TLS;
	r->uc->tls = tls_new(g->tls, r->uc->fd, g->key.name,
	                     (struct sockaddr *)&r->uc->peer, &g->px->pool);
	if (!r->uc->tls) {
		snprintf(r->reason, sizeof(r->reason), "out of memory");
		fail(r, "error");
		return;
	}
	tls_step(r);
}

/* Undoes a dial that failed at once: the slot is freed, nobody called. */
static int dial_failed(struct upreq *r, const char *outcome)
{
	struct upgroup *g = r->g;

	if (r->uc) {
		close_conn(r->uc->fd, NULL, false, true);
		upconn_forget(r->uc);
		r->uc = NULL;
	}
	r->phase = RQ_IDLE;
	r->outcome = outcome;
	slot_freed(g, r->fresh);
	return -1;
}

/* After a failed dial (r->reason says why): counts the failure against
 * the upstream's circuit and, when the policy, the budget and the
 * circuit allow another try, arms the backoff and returns true. */
static bool retry_later(struct upreq *r, bool final)
{
	struct upgroup *g = r->g;
	uint64_t wait;
	struct backoff b;
	const char *no;

	if (!r->pol)
		return false;
	health_result(g->h, r->pol, r->adm, false);
	if (final || r->tries >= (r->attempts ? r->attempts : 1))
		return false;
	if ((no = health_retry(g->h, r->pol))) {
		size_t n = strlen(r->reason);
		r->budget_out = strcmp(no, "retry budget spent") == 0;
		snprintf(r->reason + n, sizeof(r->reason) - n, "; no retry: %s",
		         no);
		return false;
	}
	b.base_ms = r->pol->backoff_base_ms;
	b.cap_ms = r->pol->backoff_cap_ms;
	wait = backoff_delay(&b, r->tries - 1, &g->px->rng);
	r->backoff_ms += wait;
	r->phase = RQ_BACKOFF;
	if (!set_event(r, -1, 0, wait ? wait : 1)) {
		r->phase = RQ_IDLE;
		return false;
	}
	return true;
}

/* Starts a new connection for r, whose slot is already counted: 0, and
 * r->done says how it went, or -1 when it failed at once (r->outcome and
 * r->reason say why; nobody is called). */
static int dial(struct upreq *r)
{
	struct upgroup *g = r->g;
	struct sockaddr_storage local, next;
	const struct sockaddr *to = (struct sockaddr *)&g->key.addr;
	bool in_progress;
	int fd;

	/* A retry goes to the name's next address first, if it has one. */
	if (r->tries && r->next_addr && r->next_addr(r->arg, r->tries, &next))
		to = (struct sockaddr *)&next;
	g->stats.dialled++;
	r->tries++;
	r->deadline_ms = relay_now_ms() + g->px->opt.connect_timeout_ms;
	fd = upstream_connect(to, g->px->opt.mark, &in_progress, &local);
	if (fd < 0) {
		snprintf(r->reason, sizeof(r->reason), "upstream connect: %s",
		         strerror(errno));
		r->uc = NULL;
		if (retry_later(r, false))
			return 0;
		return dial_failed(r, "connect_failed");
	}
	if ((r->uc = upconn_new(g, fd, to, &local)))
		r->uc->fresh = r->fresh;
	else {
		socket_close(fd, true);
		snprintf(r->reason, sizeof(r->reason), "out of memory");
		return dial_failed(r, "error");
	}
	r->phase = RQ_CONNECT;
	/* Even a connect that is done already (loopback) is reported by
	 * the writable event: r->done is never called from in here. */
	(void)in_progress;
	if (!set_event(r, fd, EV_WRITE, g->px->opt.connect_timeout_ms)) {
		snprintf(r->reason, sizeof(r->reason), "out of memory");
		return dial_failed(r, "error");
	}
	return 0;
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
	struct upreq *r = arg;
	int err;

	switch (r->phase) {
	case RQ_BACKOFF:
		if (dial(r) < 0)
			r->done(r->arg, NULL, r->outcome, r->reason);
		return;
	case RQ_QUEUED:
		/* Timed out waiting for a connection. */
		TAILQ_REMOVE(&r->g->waiting, r, link);
		r->g->nwaiting--;
		r->g->stats.queue_timeout++;
		r->phase = RQ_IDLE;
		snprintf(r->reason, sizeof(r->reason), "no upstream connection "
		         "free within %llu ms (max_per_upstream %u reached)",
		         (unsigned long long)r->g->lim.queue_timeout_ms,
		         r->g->lim.max_per_upstream);
		{
			struct upgroup *g = r->g;
			r->done(r->arg, NULL, "queue_timeout", r->reason);
			group_maybe_free(g);
		}
		return;
	case RQ_HANDOVER:
		if (r->uc && (r->uc->seen ||
		              (r->uc->tls && tls_pending(r->uc->tls) > 0))) {
			/* It spoke (or closed) on its way over: not for us.
			 * Its slot is ours to dial with. */
			close_conn(r->uc->fd, r->uc->tls, false, true);
			upconn_forget(r->uc);
			r->uc = NULL;
		}
		if (r->uc) {
			succeed(r);
			return;
		}
		if (dial(r) < 0)   /* granted a slot */
			r->done(r->arg, NULL, r->outcome, r->reason);
		return;
	case RQ_CONNECT:
		if (what & EV_TIMEOUT) {
			snprintf(r->reason, sizeof(r->reason),
			         "upstream connect timeout");
			fail(r, "connect_failed");
			return;
		}
		err = upstream_connect_result(fd);
		if (err) {
			snprintf(r->reason, sizeof(r->reason),
			         "upstream connect: %s", strerror(err));
			fail(r, "connect_failed");
			return;
		}
		connected(r);
		return;
	case RQ_TLS:
		if (what & EV_TIMEOUT) {
			snprintf(r->reason, sizeof(r->reason),
			         "upstream TLS handshake timeout");
			fail(r, "tls_failed");
			return;
		}
		tls_step(r);
		return;
	}
}

/* The first waiter of g may dial: a slot came free. */
static void grant_next(struct upgroup *g)
{
	struct upreq *r = TAILQ_FIRST(&g->waiting);

	TAILQ_REMOVE(&g->waiting, r, link);
	g->nwaiting--;
	g->nopen++;
	r->uc = NULL;
	r->phase = RQ_HANDOVER;
	event_del(r->ev);
	event_active(r->ev, EV_TIMEOUT, 1);
}

int upreq_start(struct upreq *r, struct upgroup *g, upreq_fn done, void *arg,
                struct upconn **ucp, const char **outcome)
{
	struct upconn *uc;
	int fd;
	struct tls *t;
	void *ref;
	unsigned requests;

	r->g = g;
	r->done = done;
	r->arg = arg;
	r->reason[0] = '\0';
	/* A pool_take that drops dead entries frees their slots (to waiters
	 * ahead of us, if any); the pin keeps g alive meanwhile. */
	g->pins++;
	if (!r->fresh && pool_take(&g->idle, &g->key, relay_now_ms(), &fd, &t,
	                           &ref, &requests)) {
		g->pins--;
		uc = ref;
		uc->idle = NULL;
		uc->reused = true;
		g->stats.reused++;
		*ucp = uc;
		return 1;
	}
	g->pins--;
	if (!r->ev && !(r->ev = event_new(g->px->base, -1, 0, on_event, r))) {
		snprintf(r->reason, sizeof(r->reason), "out of memory");
		*outcome = "error";
		group_maybe_free(g);
		return -1;
	}
	/* A dedicated connection (a relay's, a tunnel's) is counted apart:
	 * long-lived ones must not starve the pooled requests. */
	if (r->fresh || !g->lim.max_per_upstream ||
	    g->nopen < g->lim.max_per_upstream) {
		if (r->fresh)
			g->nfresh++;
		else
			g->nopen++;
		/* Dialled now, so its socket is taken before anything else
		 * can take the fd (the listener, when fds run short). */
		if (dial(r) < 0) {
			*outcome = r->outcome;
			return -1;
		}
		return 0;
	}
	if (g->nwaiting >= g->lim.queue_max) {
		g->stats.queue_full++;
		snprintf(r->reason, sizeof(r->reason), "upstream busy: %u "
		         "connections open (max_per_upstream) and %u requests "
		         "waiting (queue full)", g->nopen, g->nwaiting);
		*outcome = "queue_full";
		group_maybe_free(g);
		return -1;
	}
	g->stats.queued++;
	TAILQ_INSERT_TAIL(&g->waiting, r, link);
	g->nwaiting++;
	r->phase = RQ_QUEUED;
	clock_arm_ms(r->ev, g->lim.queue_timeout_ms);
	return 0;
}

void upreq_cancel(struct upreq *r)
{
	struct upgroup *g = r->g;

	if (r->ev) {
		event_free(r->ev);
		r->ev = NULL;
	}
	switch (r->phase) {
	case RQ_IDLE:
		return;
	case RQ_QUEUED:
		TAILQ_REMOVE(&g->waiting, r, link);
		g->nwaiting--;
		r->phase = RQ_IDLE;
		group_maybe_free(g);
		return;
	case RQ_BACKOFF:
		r->phase = RQ_IDLE;
		slot_freed(g, r->fresh);
		return;
	case RQ_HANDOVER:
		r->phase = RQ_IDLE;
		if (r->uc) {   /* a healthy connection: back for the next */
			struct upconn *uc = r->uc;
			r->uc = NULL;
			uc->requests--;   /* handed over after serving >= 1;
			                     release counts one more */
			upconn_release(uc, true, false);
			return;
		}
		slot_freed(g, r->fresh);
		return;
	case RQ_CONNECT:
	case RQ_TLS:
		r->phase = RQ_IDLE;
		close_conn(r->uc->fd, r->uc->tls, false, true);
		upconn_forget(r->uc);
		r->uc = NULL;
		slot_freed(g, r->fresh);
		return;
	}
}
