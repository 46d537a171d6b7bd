/* The daemon's state, one per process, owned by main(). Types only: the
 * listener (listener.h) fills it and conn.c adds to and takes from it. */
#ifndef ATTACHE_PROXY_H
#define ATTACHE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "attache/buf.h"
#include "attache/hostmap.h"
#include "attache/options.h"

struct config;
struct conn;
struct event;
struct event_base;
struct evconnlistener;
struct logger;

#define PROXY_MAX_LISTENERS 2

struct proxy {
	struct event_base *base;
	struct options opt;
	struct config *cfg;        /* the current policy; a reload swaps it */
	struct logger *log;
	struct bufpool pool;

	LIST_HEAD(conn_list, conn) conns;
	size_t nconns;
	LIST_HEAD(upgroup_list, upgroup) groups;   /* upstreams in use */
	LIST_HEAD(upconn_list, upconn) upconns;    /* their sockets, lent out */
	LIST_HEAD(health_list, health) health;     /* breakers, budgets */
	uint64_t rng;              /* backoff jitter (xorshift state, not 0) */
	/* dns_snoop: names behind addresses (hosts_on: configured) */
	struct hostmap hosts;
	bool hosts_on;
	struct dnssnoop *snoop;
	struct event *pool_timer;  /* closes idle upstreams past their time */
	/* Called by conn.c after a connection freed its fds: the listener
	 * resumes a paused accept and finishes a drain from here. */
	void (*conn_closed)(struct proxy *px);

	struct evconnlistener *lis[PROXY_MAX_LISTENERS];
	struct sockaddr_storage lis_addr[PROXY_MAX_LISTENERS];
	size_t nlis;
	bool accept_paused;
	bool accept_exhausted;     /* warned; cleared by the next accept */
	struct event *accept_retry;
	bool draining;
	struct event *drain_timer;

	/* How many of our upstream sockets use each local port: a connection
	 * accepted from one of them is our own traffic come back (the redirect
	 * does not exclude our uid), and relaying it would loop. upgroup.c
	 * keeps the count. */
	uint8_t up_ports[65536];
};

#endif
