/* One app connection, from accept to its log line:
 *
 *   accept ─► original destination ─┬► http: exchange.c, request by request
 *                                   └► [sniff the SNI] ─► route ─┬► deny
 *                                                                 └► dial ─► relay
 *
 * conn_close() is the only exit. */
#include "attache/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attache/addr.h"
#include "attache/altaddr.h"
#include "attache/clock.h"
#include "attache/config.h"
#include "attache/exchange.h"
#include "attache/log.h"
#include "attache/origdst.h"
#include "attache/proxy.h"
#include "attache/relay.h"
#include "attache/route.h"
#include "attache/sniff.h"
#include "attache/tls.h"
#include "attache/health.h"
#include "attache/upgroup.h"
#include "attache/upstream.h"

enum phase { PH_SNIFF, PH_CONNECT, PH_RELAY, PH_HTTP };

struct conn {
	struct relay relay;         /* first: the relay callback gets it back */
	LIST_ENTRY(conn) link;
	struct proxy *px;
	struct config *cfg;         /* the policy this connection started under */
	const struct route *route;  /* in cfg; NULL: the default action */
	enum action action;
	enum protocol proto;
	enum phase phase;
	int app_fd;
	bool relaying;
	struct event *ev;           /* the sniff read */
	struct event *timer;        /* sniff timeout, idle timeout */
	struct buf *early;          /* app bytes read while sniffing */
	bool app_eof;               /* ... and whether the app closed its side */
	char name[SNIFF_NAME_MAX];  /* "" when none was recovered */
	const char *name_from;
	struct hostmap_entry *dns;  /* the host map's entry for name: pinned */
	struct upreq ur;            /* asking for the upstream connection */
	bool ur_used;
	struct health *health;      /* the upstream's: admitted until close */
	struct admission adm;       /* ... and how it was let in */
	struct upconn *uc;          /* the upstream connection */
	struct exchange *x;         /* http connections */
	struct exchange_report rep; /* ... and what they report */
	struct sockaddr_storage app, dst, up;   /* up: dialled */
	struct timespec start;      /* CLOCK_MONOTONIC */
	char reason[160];
};

static void free_event(struct event **ev)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
}

/* http connections: the first request's route and name stand for the
 * connection, with totals over all of them. */
static void report_http(const struct exchange_report *r, struct log_conn *lc)
{
	lc->name = r->name[0] ? r->name : NULL;
	lc->name_from = r->name[0] ? "host" : NULL;
	lc->route = r->routed && r->route ? r->route->name : NULL;
	lc->action = r->routed ? action_str(r->action) : NULL;
	lc->upstream = r->upstream.ss_family ? (struct sockaddr *)&r->upstream
	                                     : NULL;
	lc->tls = r->tls;
	lc->tls_verify = r->tls_verify;
	lc->tls_resumed = r->tls_resumed;
	lc->tls_version = r->tls_version;
	lc->tls_cipher = r->tls_cipher;
	lc->bytes_up = r->bytes_up;
	lc->bytes_down = r->bytes_down;
	lc->http = true;
	lc->requests = r->requests;
}

/* The only exit of a connection: logs one line, frees everything.
 * Callers return at once afterwards. */
static void conn_close(struct conn *c, const char *outcome, const char *reason,
                       bool abort)
{
	struct proxy *px = c->px;
	bool routed = c->cfg && c->phase != PH_SNIFF;
	struct tls *t = c->uc ? c->uc->tls : NULL;
	struct log_conn lc = {
		.app = (struct sockaddr *)&c->app,
		.dst = c->dst.ss_family ? (struct sockaddr *)&c->dst : NULL,
		.name = c->name[0] ? c->name : NULL,
		.name_from = c->name[0] ? c->name_from : NULL,
		.route = routed && c->route ? c->route->name : NULL,
		.action = routed ? action_str(c->action) : NULL,
		.upstream = c->up.ss_family ? (struct sockaddr *)&c->up : NULL,
		.tls = c->action == ACTION_TLS && c->up.ss_family,
		.tls_verify = c->route && c->route->tls_verify,
		.tls_resumed = t && tls_resumed(t),
		.tls_version = t ? tls_version(t) : NULL,
		.tls_cipher = t ? tls_cipher(t) : NULL,
		.bytes_up = c->relay.h[RELAY_APP].nsent,
		.bytes_down = c->relay.h[RELAY_UP].nsent,
		.duration_us = clock_elapsed_us(&c->start),
		.outcome = outcome,
		.reason = reason,
	};

	if (c->phase == PH_HTTP)
		report_http(&c->rep, &lc);
	lc.resil.tries = c->ur.tries;
	lc.resil.backoff_ms = c->ur.backoff_ms;
	lc.resil.budget_spent = c->ur.budget_out;
	if (c->health) {
		lc.resil.circuit = health_circuit(c->health);
		health_budget(c->health, &lc.resil.budget_retries,
		              &lc.resil.budget_allowed);
		health_done(c->health, &c->adm);
		health_put(c->health);
	}
	clock_gettime(CLOCK_REALTIME, &lc.time);
	logger_conn(px->log, &lc);

	if (c->x)
		exchange_free(c->x);
	if (c->relaying)
		relay_release(&c->relay);
	if (c->ur_used)
		upreq_cancel(&c->ur);
	if (c->uc)
		upconn_release(c->uc, false, abort);
	if (c->dns)
		hostmap_unpin(&px->hosts, c->dns, relay_now_ms());
	free_event(&c->ev);
	free_event(&c->timer);
	if (c->early)
		bufpool_put(&px->pool, c->early);
	socket_close(c->app_fd, abort);
	config_unref(c->cfg);
	LIST_REMOVE(c, link);
	px->nconns--;
	free(c);
	if (px->conn_closed)
		px->conn_closed(px);
}

static void close_errno(struct conn *c, const char *outcome, const char *what,
                        int err)
{
	snprintf(c->reason, sizeof(c->reason), "%s: %s", what, strerror(err));
	conn_close(c, outcome, c->reason, true);
}

/* ------------------------------------------------------------ timer */

static void sniff_done(struct conn *c, enum sniff_result r);

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	switch (c->phase) {
	case PH_SNIFF:
		/* The app said too little for a name: route without one. */
		sniff_done(c, SNIFF_MORE);
		return;
	case PH_RELAY: {
		uint64_t idle = relay_now_ms() - c->relay.last_active_ms;
		uint64_t limit = c->px->opt.idle_timeout_ms;
		/* Activity does not touch the timer (a heap update per read);
		 * the timer looks at the last activity when it fires. */
		if (idle + 5 < limit) {
			clock_arm_ms(c->timer, limit - idle);
			return;
		}
		conn_close(c, "timeout", "idle timeout", true);
		return;
	}
	case PH_CONNECT:
	case PH_HTTP:
		break;
	}
}

/* ------------------------------------------------------------ relay */

static void on_relay_end(struct relay *r, const char *outcome,
                         const char *reason, bool abort)
{
	conn_close((struct conn *)r, outcome, reason, abort);
}

static void start_relay(struct conn *c)
{
	struct proxy *px = c->px;

	if (relay_init(&c->relay, px->base, c->app_fd, c->uc->fd, &px->pool,
	               on_relay_end) < 0) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	c->relaying = true;
	c->phase = PH_RELAY;
	if (c->uc->tls)
		relay_set_tls(&c->relay, RELAY_UP, c->uc->tls);
	relay_preload(&c->relay, RELAY_APP, c->early, c->app_eof);
	c->early = NULL;
	clock_arm_ms(c->timer, px->opt.idle_timeout_ms);
	relay_start(&c->relay);   /* may close c: nothing follows */
}

/* ------------------------------------------------------------ dial */

static void on_upconn(void *arg, struct upconn *uc, const char *outcome,
                      const char *reason)
{
	struct conn *c = arg;

	if (!uc) {
		snprintf(c->reason, sizeof(c->reason), "%s", reason);
		conn_close(c, outcome, c->reason, true);
		return;
	}
	c->uc = uc;
	memcpy(&c->up, &uc->peer, sizeof(c->up));   /* maybe another address */
	health_result(c->health, c->ur.pol, &c->adm, true);
	start_relay(c);
}

/* A retry's address: another one of the connection's name, if any. */
static bool next_addr(void *arg, unsigned tries, struct sockaddr_storage *out)
{
	struct conn *c = arg;
	bool fixed = c->name_from && strcmp(c->name_from, "route") == 0;
	struct altaddr_query q = {
		.cfg = c->cfg, .route = c->route, .name = c->name,
		.match_name = fixed ? NULL : c->name,
		.orig = (struct sockaddr *)&c->dst,
		.port = addr_port((struct sockaddr *)&c->up),
	};

	return c->px->hosts_on &&
	       altaddr_next(&c->px->hosts, &q, tries, relay_now_ms(), out);
}

/* A connection of its own (never pooled): TCP, then TLS on tls routes,
 * both dialled by upgroup.c. */
static void dial(struct conn *c)
{
	struct pool_key key;
	struct upgroup *g;
	struct upconn *uc = NULL;
	const char *outcome = NULL, *no;
	const struct policy *pol;
	bool tls = c->action == ACTION_TLS;

	c->phase = PH_CONNECT;
	memcpy(&c->up, &c->dst, sizeof(c->up));
	if (tls && c->route->tls_port)
		addr_set_port((struct sockaddr *)&c->up, c->route->tls_port);
	memset(&key, 0, sizeof(key));
	key.addr = c->up;
	key.tls_ctx = tls ? c->route->tls : NULL;
	if (tls)
		snprintf(key.name, sizeof(key.name), "%s", c->name);
	g = upgroup_get(c->px, &key, tls ? c->route->tls : NULL, c->cfg,
	                c->route ? &c->route->pool : &c->cfg->pool);
	if (!g) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	/* An open circuit, or too many connections in flight: closed at
	 * once (a reset: the app learns now, not at its first read). */
	pol = c->route ? &c->route->policy : &c->cfg->policy;
	no = health_admit(g->h, pol, &c->adm, c->reason, sizeof(c->reason));
	if (no) {
		upgroup_unused(g);
		conn_close(c, no, c->reason, true);
		return;
	}
	c->health = health_ref(g->h);
	memset(&c->ur, 0, sizeof(c->ur));
	c->ur.fresh = true;
	c->ur.pol = pol;
	c->ur.adm = &c->adm;
	c->ur.attempts = pol->attempts;
	c->ur.next_addr = next_addr;
	c->ur_used = true;
	if (upreq_start(&c->ur, g, on_upconn, c, &uc, &outcome) < 0) {
		snprintf(c->reason, sizeof(c->reason), "%s", c->ur.reason);
		conn_close(c, outcome, c->reason, true);
	}
}

/* ------------------------------------------------------------ route */

/* No name in the bytes: the one an app of this netns resolved to this
 * address most recently, if the DNS snoop saw it. Pinned while the
 * connection lives (the table never evicts it meanwhile). */
static void name_from_dns(struct conn *c)
{
	struct proxy *px = c->px;
	const struct sockaddr *sa = (struct sockaddr *)&c->dst;
	struct hostmap_entry *e;

	if (c->name[0] || !px->hosts_on)
		return;
	if (hostmap_lookup(&px->hosts, sa->sa_family, addr_bytes(sa),
	                   relay_now_ms(), &e, 1)) {
		snprintf(c->name, sizeof(c->name), "%s", e->name);
		c->name_from = "dns";
		hostmap_pin(e);
		c->dns = e;
	}
}

static void decide(struct conn *c)
{
	name_from_dns(c);
	c->route = route_match(c->cfg, (struct sockaddr *)&c->dst,
	                       c->name[0] ? c->name : NULL);
	if (!c->name[0] && c->route && c->route->hostname) {
		snprintf(c->name, sizeof(c->name), "%s", c->route->hostname);
		c->name_from = "route";
	}
	c->action = c->route ? c->route->action : c->cfg->default_action;
	c->phase = PH_CONNECT;
	if (c->action == ACTION_DENY) {
		if (c->route)
			snprintf(c->reason, sizeof(c->reason),
			         "denied by route '%s'", c->route->name);
		else
			snprintf(c->reason, sizeof(c->reason),
			         "denied by the default policy");
		conn_close(c, "denied", c->reason, false);
		return;
	}
	if (c->action == ACTION_TLS && c->route->tls_verify && !c->name[0]) {
		/* Never send without verification: no name, nothing to verify. */
		conn_close(c, "tls_failed", "no host name to verify the upstream "
		           "against (the app sent none; set the route's "
		           "hostname)", true);
		return;
	}
	dial(c);
}

/* ------------------------------------------------------------ http */

static void on_exchange_end(void *arg, const char *outcome, const char *reason,
                            bool abort)
{
	struct conn *c = arg;

	if (reason) {
		snprintf(c->reason, sizeof(c->reason), "%s", reason);
		reason = c->reason;
	}
	conn_close(c, outcome, reason ? reason : "closed", abort);
}

static void start_http(struct conn *c)
{
	c->phase = PH_HTTP;
	c->x = exchange_new(c->px, c->cfg, c->app_fd, (struct sockaddr *)&c->app,
	                    (struct sockaddr *)&c->dst, NULL, false, &c->rep,
	                    on_exchange_end, c);
	if (!c->x) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	exchange_start(c->x);   /* may close c: nothing follows */
}

/* ------------------------------------------------------------ sniff */

static void sniff_done(struct conn *c, enum sniff_result r)
{
	free_event(&c->ev);
	event_del(c->timer);
	if (r != SNIFF_FOUND)
		c->name[0] = '\0';
	decide(c);
}

static void on_sniff_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct buf *b = c->early;
	size_t max = c->cfg->sniff_max_bytes;
	enum sniff_result r;
	ssize_t n;

	if (!b && !(b = c->early = bufpool_get(&c->px->pool))) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	n = recv(fd, b->data + b->tail, max - buf_len(b), 0);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		close_errno(c, "reset", "app read", errno);
		return;
	}
	b->tail += (uint32_t)n;
	if (n == 0)
		c->app_eof = true;
	r = sniff_tls_sni(b->data, buf_len(b), c->name);
	c->name_from = "sni";
	if (r == SNIFF_MORE && !c->app_eof && buf_len(b) < max)
		return;
	sniff_done(c, r);
}

/* ------------------------------------------------------------ accept */

void conn_accept(struct proxy *px, int fd, const struct sockaddr *peer,
                 const struct sockaddr *local)
{
	struct conn *c = calloc(1, sizeof(*c));
	enum origdst_verdict v;

	if (!c) {
		log_warn("out of memory: dropping a connection");
		socket_close(fd, true);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &c->start);
	c->px = px;
	c->app_fd = fd;
	c->phase = PH_SNIFF;
	memcpy(&c->app, peer, addr_len(peer));
	LIST_INSERT_HEAD(&px->conns, c, link);
	px->nconns++;

	if (origdst_lookup(fd, local->sa_family, NULL, &c->dst) < 0) {
		c->dst.ss_family = AF_UNSPEC;
		close_errno(c, "rejected", "no original destination", errno);
		return;
	}
	v = origdst_classify((struct sockaddr *)&c->dst, local, px->opt.port);
	if (v != ORIGDST_OK) {
		conn_close(c, "rejected", origdst_verdict_str(v), false);
		return;
	}
	if (upconn_is_loop(px, peer, (struct sockaddr *)&c->dst)) {
		conn_close(c, "rejected", "loop: attache's own upstream "
		           "connection was redirected back to it (run attache "
		           "as the uid given to attache-init --proxy-uid)", true);
		return;
	}
	/* TCP_NODELAY comes from the listener (Linux copies it to accepted
	 * sockets): no setsockopt per connection. */
	c->cfg = config_ref(px->cfg);
	c->timer = evtimer_new(px->base, on_timer, c);
	if (!c->timer) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	c->proto = route_protocol(c->cfg, (struct sockaddr *)&c->dst);
	if (c->proto == PROTO_HTTP) {
		start_http(c);
		return;
	}
	if (c->proto == PROTO_TCP) {
		/* Server-first protocols must not wait: dial at once. */
		decide(c);
		return;
	}
	c->ev = event_new(px->base, fd, EV_READ | EV_PERSIST, on_sniff_read, c);
	if (!c->ev) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	event_add(c->ev, NULL);
	clock_arm_ms(c->timer, c->cfg->sniff_timeout_ms);
}

void conn_close_all(struct proxy *px, const char *outcome, const char *reason)
{
	while (!LIST_EMPTY(&px->conns))
		conn_close(LIST_FIRST(&px->conns), outcome, reason, true);
}
