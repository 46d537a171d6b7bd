#include "attache/listener.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "attache/addr.h"
#include "attache/clock.h"
#include "attache/conn.h"
#include "attache/log.h"
#include "attache/upstream.h"
#include "attache/proxy.h"

/* While accept() fails for want of fds, try again this often, besides
 * right after any connection closes. */
#define ACCEPT_RETRY_MS 250

static void accept_pause(struct proxy *px)
{
	static const struct timeval retry = { 0, ACCEPT_RETRY_MS * 1000 };

	for (size_t i = 0; i < px->nlis; i++)
		evconnlistener_disable(px->lis[i]);
	px->accept_paused = true;
	evtimer_add(px->accept_retry, &retry);
}

static void accept_resume(struct proxy *px)
{
	if (!px->accept_paused || px->draining)
		return;
	px->accept_paused = false;
	evtimer_del(px->accept_retry);
	for (size_t i = 0; i < px->nlis; i++)
		evconnlistener_enable(px->lis[i]);
}

static void on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	accept_resume(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd,
                      struct sockaddr *peer, int len, void *arg)
{
	struct proxy *px = arg;
	size_t i;

	if (px->accept_exhausted) {
		px->accept_exhausted = false;
		log_info("accept: resumed (%zu connections open)", px->nconns);
	}
	for (i = 0; i < px->nlis && px->lis[i] != l; i++)
		;
	conn_accept(px, fd, peer, (struct sockaddr *)&px->lis_addr[i]);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
	struct proxy *px = arg;
	int err = errno;

	/* Out of fds (or memory): the pending connection stays in the
	 * backlog. Stop polling the listener, or level-triggered readiness
	 * would spin us; resume when a connection closes or on the timer. */
	if (!px->accept_exhausted)
		log_warn("accept: %s; pausing accept until fds free up (%zu "
		         "connections open)", strerror(err), px->nconns);
	px->accept_exhausted = true;
	accept_pause(px);
}

static void on_conn_closed(struct proxy *px)
{
	if (px->accept_paused)
		accept_resume(px);
	if (px->draining && px->nconns == 0)
		event_base_loopbreak(px->base);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	log_warn("drain timeout: closing %zu open connections", px->nconns);
	conn_close_all(px, "drained", "drain timeout");
	event_base_loopbreak(px->base);
}

static int open_one(struct proxy *px, int family)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char a[ADDR_STRLEN];
	int one = 1, fd;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		in->sin_port = htons(px->opt.port);
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		in6->sin6_port = htons(px->opt.port);
	}
	len = addr_len((struct sockaddr *)&ss);
	addr_format((struct sockaddr *)&ss, a, sizeof(a));

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		if (family == AF_INET6 && errno == EAFNOSUPPORT) {
			log_warn("no IPv6 here: listening on IPv4 only");
			return 0;
		}
		log_error("socket for %s: %s", a, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	socket_nodelay(fd);   /* accepted sockets inherit it */
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		int err = errno;
		close(fd);
		if (family == AF_INET6 && err == EADDRNOTAVAIL) {
			log_warn("::1 is not configured: listening on IPv4 only");
			return 0;
		}
		log_error("bind %s: %s", a, strerror(err));
		return -1;
	}
	struct evconnlistener *l = evconnlistener_new(px->base, on_accept, px,
		LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 1024, fd);
	if (!l) {
		log_error("listen %s: %s", a, strerror(errno));
		close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(l, on_accept_error);
	px->lis[px->nlis] = l;
	memcpy(&px->lis_addr[px->nlis], &ss, len);
	px->nlis++;
	log_info("listening on %s", a);
	return 0;
}

int listener_open(struct proxy *px)
{
	px->conn_closed = on_conn_closed;
	px->accept_retry = evtimer_new(px->base, on_accept_retry, px);
	px->drain_timer = evtimer_new(px->base, on_drain_timeout, px);
	if (!px->accept_retry || !px->drain_timer) {
		log_error("out of memory");
		return -1;
	}
	if (open_one(px, AF_INET) < 0 || open_one(px, AF_INET6) < 0)
		return -1;
	return 0;
}

static void free_listeners(struct proxy *px)
{
	for (size_t i = 0; i < px->nlis; i++)
		evconnlistener_free(px->lis[i]);
	px->nlis = 0;
}

void listener_drain(struct proxy *px)
{
	uint64_t ms = px->opt.drain_timeout_ms;

	if (px->draining)
		return;
	px->draining = true;
	free_listeners(px);   /* new connections are refused from now on */
	evtimer_del(px->accept_retry);
	if (px->nconns == 0) {
		event_base_loopbreak(px->base);
		return;
	}
	log_info("draining %zu open connections (up to %llu ms)", px->nconns,
	         (unsigned long long)ms);
	clock_arm_ms(px->drain_timer, ms);
}

void listener_close(struct proxy *px)
{
	free_listeners(px);
	if (px->accept_retry)
		event_free(px->accept_retry);
	if (px->drain_timer)
		event_free(px->drain_timer);
	px->accept_retry = px->drain_timer = NULL;
}
