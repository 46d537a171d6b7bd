/* One app connection, from accept to its log line:
 *
 *   accept ─► original destination ─► [sniff the name] ─► route ─┬► deny
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
#include "attache/config.h"
#include "attache/log.h"
#include "attache/origdst.h"
#include "attache/proxy.h"
#include "attache/relay.h"
#include "attache/route.h"
#include "attache/sniff.h"
#include "attache/tls.h"
#include "attache/upstream.h"

/* A denied http request gets its 403, then we read (and drop) what the app
 * still sends for this long, so our close does not reset the 403 away. */
#define LINGER_MS 1000
#define LINGER_BYTES (64 * 1024)

enum phase { PH_SNIFF, PH_CONNECT, PH_TLS, PH_RELAY, PH_LINGER };

struct conn {
	struct relay relay;         /* first: the relay callback gets it back */
	LIST_ENTRY(conn) link;
	struct proxy *px;
	struct config *cfg;         /* the policy this connection started under */
	const struct route *route;  /* in cfg; NULL: the default action */
	enum action action;
	enum protocol proto;
	enum phase phase;
	int app_fd, up_fd;
	bool relaying;
	struct event *ev;           /* this phase's fd event */
	struct event *timer;        /* sniff timeout, idle timeout, linger */
	struct buf *early;          /* app bytes read while sniffing */
	bool app_eof;               /* ... and whether the app closed its side */
	size_t lingered;
	char name[SNIFF_NAME_MAX];  /* "" when none was recovered */
	const char *name_from;
	struct tls *tls;            /* upstream TLS on tls routes */
	bool tls_done;
	struct sockaddr_storage app, dst, up, up_local;   /* up: dialled */
	struct timespec start;      /* CLOCK_MONOTONIC */
	uint64_t connect_deadline;  /* relay_now_ms() by which TCP+TLS are up */
	char reason[128];
};

static uint64_t elapsed_us(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - since->tv_sec) * 1000000u +
	       (uint64_t)((now.tv_nsec - since->tv_nsec) / 1000);
}

static void arm(struct event *ev, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	event_add(ev, &tv);
}

static void up_port_ref(struct proxy *px, const struct sockaddr_storage *a,
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

static void free_event(struct event **ev)
{
	if (*ev)
		event_free(*ev);
	*ev = NULL;
}

/* The only exit of a connection: logs one line, frees everything.
 * Callers return at once afterwards. */
static void conn_close(struct conn *c, const char *outcome, const char *reason,
                       bool abort)
{
	struct proxy *px = c->px;
	bool routed = c->cfg && c->phase != PH_SNIFF;
	struct log_conn lc = {
		.app = (struct sockaddr *)&c->app,
		.dst = c->dst.ss_family ? (struct sockaddr *)&c->dst : NULL,
		.name = c->name[0] ? c->name : NULL,
		.name_from = c->name[0] ? c->name_from : NULL,
		.route = routed && c->route ? c->route->name : NULL,
		.action = routed ? action_str(c->action) : NULL,
		.upstream = c->up.ss_family ? (struct sockaddr *)&c->up : NULL,
		.tls = c->tls != NULL,
		.tls_verify = c->route && c->route->tls_verify,
		.tls_resumed = c->tls_done && tls_resumed(c->tls),
		.tls_version = c->tls_done ? tls_version(c->tls) : NULL,
		.tls_cipher = c->tls_done ? tls_cipher(c->tls) : NULL,
		.bytes_up = c->relay.h[RELAY_APP].nsent,
		.bytes_down = c->relay.h[RELAY_UP].nsent,
		.duration_us = elapsed_us(&c->start),
		.outcome = outcome,
		.reason = reason,
	};

	clock_gettime(CLOCK_REALTIME, &lc.time);
	logger_conn(px->log, &lc);

	if (c->relaying)
		relay_release(&c->relay);
	if (c->tls)
		tls_free(c->tls);
	free_event(&c->ev);
	free_event(&c->timer);
	if (c->early)
		bufpool_put(&px->pool, c->early);
	socket_close(c->app_fd, abort);
	if (c->up_fd >= 0) {
		up_port_ref(px, &c->up_local, -1);
		socket_close(c->up_fd, abort);
	}
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

static void on_timer(evutil_socket_t fd, short what, void *arg);

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
			arm(c->timer, limit - idle);
			return;
		}
		conn_close(c, "timeout", "idle timeout", true);
		return;
	}
	case PH_LINGER:
		conn_close(c, c->action == ACTION_DENY ? "denied" : "tls_failed",
		           c->reason, false);
		return;
	case PH_CONNECT:
	case PH_TLS:
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

	free_event(&c->ev);
	if (relay_init(&c->relay, px->base, c->app_fd, c->up_fd, &px->pool,
	               on_relay_end) < 0) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	c->relaying = true;
	c->phase = PH_RELAY;
	if (c->tls)
		relay_set_tls(&c->relay, RELAY_UP, c->tls);
	relay_preload(&c->relay, c->early, c->app_eof);
	c->early = NULL;
	arm(c->timer, px->opt.idle_timeout_ms);
	relay_start(&c->relay);   /* may close c: nothing follows */
}

/* ------------------------------------------------------------ dial */

static void connected(struct conn *c);

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	int err;

	if (what & EV_TIMEOUT) {
		conn_close(c, "connect_failed", "upstream connect timeout", true);
		return;
	}
	err = upstream_connect_result(fd);
	if (err) {
		close_errno(c, "connect_failed", "upstream connect", err);
		return;
	}
	connected(c);
}

static void dial(struct conn *c)
{
	struct proxy *px = c->px;
	bool in_progress;

	c->phase = PH_CONNECT;
	c->connect_deadline = relay_now_ms() + px->opt.connect_timeout_ms;
	memcpy(&c->up, &c->dst, sizeof(c->up));
	if (c->action == ACTION_TLS && c->route->tls_port) {
		if (c->up.ss_family == AF_INET)
			((struct sockaddr_in *)&c->up)->sin_port = htons(c->route->tls_port);
		else
			((struct sockaddr_in6 *)&c->up)->sin6_port = htons(c->route->tls_port);
	}
	c->up_fd = upstream_connect((struct sockaddr *)&c->up, &in_progress,
	                            &c->up_local);
	if (c->up_fd < 0) {
		close_errno(c, "connect_failed", "upstream connect", errno);
		return;
	}
	up_port_ref(px, &c->up_local, +1);
	if (!in_progress) {
		connected(c);
		return;
	}
	c->ev = event_new(px->base, c->up_fd, EV_WRITE, on_connect, c);
	if (!c->ev) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	arm(c->ev, px->opt.connect_timeout_ms);
}

/* ------------------------------------------------------------ deny */

static void on_linger_read(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	char sink[4096];
	ssize_t n = recv(fd, sink, sizeof(sink), 0);

	if (n > 0 && (c->lingered += (size_t)n) < LINGER_BYTES)
		return;
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	conn_close(c, c->action == ACTION_DENY ? "denied" : "tls_failed",
	           c->reason, false);
}

/* Ends a connection that will not reach its upstream, saying why: on
 * http, a response whose one-line body is c->reason, then a lingering
 * close so the app reads it; otherwise a close (a reset when abort). */
static void refuse(struct conn *c, int status, const char *outcome, bool abort)
{
	char resp[512];
	int n;

	if (c->proto != PROTO_HTTP) {
		conn_close(c, outcome, c->reason, abort);
		return;
	}
	n = snprintf(resp, sizeof(resp),
	             "HTTP/1.1 %d %s\r\n"
	             "Content-Type: text/plain\r\n"
	             "Content-Length: %zu\r\n"
	             "Connection: close\r\n"
	             "\r\n"
	             "attache: %s\n", status,
	             status == 403 ? "Forbidden" : "Bad Gateway",
	             strlen(c->reason) + 10, c->reason);
	/* A fresh socket takes a few hundred bytes at once; if it does not,
	 * the app gets a cut response, never anything else. */
	(void)send(c->app_fd, resp, (size_t)n, MSG_NOSIGNAL);
	shutdown(c->app_fd, SHUT_WR);
	free_event(&c->ev);
	if (c->app_eof) {
		conn_close(c, outcome, c->reason, false);
		return;
	}
	c->phase = PH_LINGER;
	c->ev = event_new(c->px->base, c->app_fd, EV_READ | EV_PERSIST,
	                  on_linger_read, c);
	if (!c->ev) {
		conn_close(c, outcome, c->reason, false);
		return;
	}
	event_add(c->ev, NULL);
	arm(c->timer, LINGER_MS);
}

static void deny(struct conn *c)
{
	if (c->route)
		snprintf(c->reason, sizeof(c->reason), "denied by route '%s'",
		         c->route->name);
	else
		snprintf(c->reason, sizeof(c->reason),
		         "denied by the default policy");
	refuse(c, 403, "denied", false);
}

/* Fail closed: the app gets no upstream byte, and a reason. */
static void tls_refuse(struct conn *c, const char *why)
{
	snprintf(c->reason, sizeof(c->reason), "upstream %s", why);
	refuse(c, 502, "tls_failed", true);
}

/* ------------------------------------------------------------ tls */

static void tls_step(struct conn *c);

static void on_tls_event(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (what & EV_TIMEOUT) {
		tls_refuse(c, "TLS handshake timeout");
		return;
	}
	tls_step(c);
}

static void tls_step(struct conn *c)
{
	short want = 0;
	int r = tls_handshake(c->tls, &want);
	uint64_t now = relay_now_ms();

	if (r == 1) {
		c->tls_done = true;
		free_event(&c->ev);
		start_relay(c);
		return;
	}
	if (r == TLS_FAIL) {
		tls_refuse(c, tls_error(c->tls));
		return;
	}
	free_event(&c->ev);
	c->ev = event_new(c->px->base, c->up_fd, want, on_tls_event, c);
	if (!c->ev) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	/* One deadline for TCP and TLS together: the connect timeout. */
	arm(c->ev, c->connect_deadline > now ? c->connect_deadline - now : 1);
}

static void start_tls(struct conn *c)
{
	free_event(&c->ev);
	c->phase = PH_TLS;
	c->tls = tls_new(c->route->tls, c->up_fd, c->name,
	                 (struct sockaddr *)&c->up, &c->px->pool);
	if (!c->tls) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	tls_step(c);
}

/* TCP is up: TLS first on tls routes, else relay at once. */
static void connected(struct conn *c)
{
	if (c->action == ACTION_TLS)
		start_tls(c);
	else
		start_relay(c);
}

/* ------------------------------------------------------------ route */

static void decide(struct conn *c)
{
	c->route = route_match(c->cfg, (struct sockaddr *)&c->dst,
	                       c->name[0] ? c->name : NULL);
	if (!c->name[0] && c->route && c->route->hostname) {
		snprintf(c->name, sizeof(c->name), "%s", c->route->hostname);
		c->name_from = "route";
	}
	c->action = c->route ? c->route->action : c->cfg->default_action;
	if (c->action == ACTION_DENY) {
		deny(c);
		return;
	}
	if (c->action == ACTION_TLS && c->route->tls_verify && !c->name[0]) {
		/* Never send without verification: no name, nothing to verify. */
		snprintf(c->reason, sizeof(c->reason), "no host name to verify the "
		         "upstream against (the app sent none; set the route's "
		         "hostname)");
		refuse(c, 502, "tls_failed", true);
		return;
	}
	dial(c);
}

/* ------------------------------------------------------------ sniff */

static void sniff_done(struct conn *c, enum sniff_result r)
{
	free_event(&c->ev);
	event_del(c->timer);
	if (r != SNIFF_FOUND)
		c->name[0] = '\0';
	c->phase = PH_CONNECT;
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
	if (c->proto == PROTO_HTTP) {
		r = sniff_http_host(b->data, buf_len(b), c->name);
		c->name_from = "host";
	} else {
		r = sniff_tls_sni(b->data, buf_len(b), c->name);
		c->name_from = "sni";
	}
	if (r == SNIFF_MORE && !c->app_eof && buf_len(b) < max)
		return;
	sniff_done(c, r);
}

/* ------------------------------------------------------------ accept */

/* Is peer one of our own upstream sockets, redirected back to us? */
static bool is_own_upstream(struct proxy *px, const struct sockaddr *peer)
{
	struct conn *c;

	if (px->up_ports[addr_port(peer)] == 0)
		return false;
	LIST_FOREACH(c, &px->conns, link)
		if (c->up_fd >= 0 &&
		    addr_equal((struct sockaddr *)&c->up_local, peer))
			return true;
	return false;
}

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
	c->up_fd = -1;
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
	if (is_own_upstream(px, peer)) {
		conn_close(c, "rejected", "loop: attache's own upstream "
		           "connection was redirected back to it (run attache "
		           "as the uid given to attache-init --proxy-uid)", true);
		return;
	}
	socket_nodelay(fd);
	c->cfg = config_ref(px->cfg);
	c->timer = evtimer_new(px->base, on_timer, c);
	if (!c->timer) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	c->proto = route_protocol(c->cfg, (struct sockaddr *)&c->dst);
	if (c->proto == PROTO_TCP) {
		/* Server-first protocols must not wait: dial at once. */
		c->phase = PH_CONNECT;
		decide(c);
		return;
	}
	c->ev = event_new(px->base, fd, EV_READ | EV_PERSIST, on_sniff_read, c);
	if (!c->ev) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	event_add(c->ev, NULL);
	arm(c->timer, c->cfg->sniff_timeout_ms);
}

void conn_close_all(struct proxy *px, const char *outcome, const char *reason)
{
	while (!LIST_EMPTY(&px->conns))
		conn_close(LIST_FIRST(&px->conns), outcome, reason, true);
}
