#include "attache/conn.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attache/addr.h"
#include "attache/log.h"
#include "attache/origdst.h"
#include "attache/proxy.h"
#include "attache/relay.h"
#include "attache/upstream.h"

struct conn {
	struct relay relay;         /* first: the relay callback gets it back */
	LIST_ENTRY(conn) link;
	struct proxy *px;
	int app_fd, up_fd;
	bool relaying;
	struct event *connect_ev;   /* upstream connect, with its timeout */
	struct event *idle_ev;
	struct sockaddr_storage app, dst, up_local;
	struct timespec start;      /* CLOCK_MONOTONIC */
	char reason[128];
};

static uint64_t elapsed_us(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - since->tv_sec) * 1000000u +
	       (uint64_t)((now.tv_nsec - since->tv_nsec) / 1000);
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

/* The only exit of a connection: logs one line, frees everything.
 * Callers return at once afterwards. */
static void conn_close(struct conn *c, const char *outcome, const char *reason,
                       bool abort)
{
	struct proxy *px = c->px;
	struct log_conn lc = {
		.app = (struct sockaddr *)&c->app,
		.dst = c->dst.ss_family ? (struct sockaddr *)&c->dst : NULL,
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
	if (c->connect_ev)
		event_free(c->connect_ev);
	if (c->idle_ev)
		event_free(c->idle_ev);
	socket_close(c->app_fd, abort);
	if (c->up_fd >= 0) {
		up_port_ref(px, &c->up_local, -1);
		socket_close(c->up_fd, abort);
	}
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

static void on_relay_end(struct relay *r, const char *outcome,
                         const char *reason, bool abort)
{
	conn_close((struct conn *)r, outcome, reason, abort);
}

static void arm_idle(struct conn *c, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	evtimer_add(c->idle_ev, &tv);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t idle = relay_now_ms() - c->relay.last_active_ms;
	uint64_t limit = c->px->opt.idle_timeout_ms;

	/* Activity does not touch the timer (that would cost a heap update per
	 * read); the timer looks at the last activity when it fires. */
	if (idle + 5 < limit) {
		arm_idle(c, limit - idle);
		return;
	}
	conn_close(c, "timeout", "idle timeout", true);
}

static void start_relay(struct conn *c)
{
	struct proxy *px = c->px;

	event_free(c->connect_ev);
	c->connect_ev = NULL;
	if (relay_init(&c->relay, px->base, c->app_fd, c->up_fd, &px->pool,
	               on_relay_end) < 0) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	c->relaying = true;
	if (!(c->idle_ev = evtimer_new(px->base, on_idle, c))) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	arm_idle(c, px->opt.idle_timeout_ms);
	relay_start(&c->relay);
}

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
	start_relay(c);
}

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
	bool in_progress;

	if (!c) {
		log_warn("out of memory: dropping a connection");
		socket_close(fd, true);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &c->start);
	c->px = px;
	c->app_fd = fd;
	c->up_fd = -1;
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
	c->up_fd = upstream_connect((struct sockaddr *)&c->dst, &in_progress,
	                            &c->up_local);
	if (c->up_fd < 0) {
		close_errno(c, "connect_failed", "upstream connect", errno);
		return;
	}
	up_port_ref(px, &c->up_local, +1);
	if (!in_progress) {
		start_relay(c);
		return;
	}
	c->connect_ev = event_new(px->base, c->up_fd, EV_WRITE, on_connect, c);
	if (!c->connect_ev) {
		conn_close(c, "error", "out of memory", true);
		return;
	}
	uint64_t ms = px->opt.connect_timeout_ms;
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
	event_add(c->connect_ev, &tv);
}

void conn_close_all(struct proxy *px, const char *outcome, const char *reason)
{
	while (!LIST_EMPTY(&px->conns))
		conn_close(LIST_FIRST(&px->conns), outcome, reason, true);
}
