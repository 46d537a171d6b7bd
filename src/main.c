/* attache: the daemon's entry point. Parses options, opens the listeners,
 * runs the event loop until SIGTERM/SIGINT has drained it. */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "attache/config.h"
#include "attache/conn.h"
#include "attache/dnssnoop.h"
#include "attache/health.h"
#include "attache/listener.h"
#include "attache/log.h"
#include "attache/options.h"
#include "attache/proxy.h"
#include "attache/relay.h"
#include "attache/tls.h"
#include "attache/upgroup.h"
#include "attache/upstream.h"

/* Keep a few freed buffers for the next burst; beyond that, return them. */
#define POOL_KEEP 64

/* Prints a load's messages, each on its own stderr line. */
static void print_diag(const struct diag *d)
{
	if (d->text)
		fputs(d->text, stderr);
}

/* SIGHUP: a valid file replaces the policy for new connections (open ones
 * keep theirs); an invalid one changes nothing and says why. */
static void reload(struct proxy *px)
{
	struct diag d = { 0 };
	struct config *c;

	if (!px->opt.config_path) {
		log_info("SIGHUP: no configuration file (-c), nothing to reload");
		return;
	}
	c = config_load(px->opt.config_path, &d);
	print_diag(&d);
	if (!c) {
		log_error("reload: %s has %u error(s); keeping the current policy",
		          px->opt.config_path, d.errors);
		diag_free(&d);
		return;
	}
	if (c->redirect_port && c->redirect_port != px->opt.port && !px->opt.port_set)
		log_warn("reload: listen.redirect %u takes effect at restart; still "
		         "on %u", c->redirect_port, px->opt.port);
	if (c->dns_queue_set != px->cfg->dns_queue_set ||
	    c->dns_queue != px->cfg->dns_queue)
		log_warn("reload: a dns_snoop queue change takes effect at restart");
	else if (c->dns_queue_set &&
	         (c->dns_max_entries != px->cfg->dns_max_entries ||
	          c->dns_ttl_floor_s != px->cfg->dns_ttl_floor_s ||
	          c->dns_ttl_cap_s != px->cfg->dns_ttl_cap_s))
		log_warn("reload: dns_snoop max_entries, ttl_floor and ttl_cap "
		         "take effect at restart");
	config_unref(px->cfg);
	px->cfg = c;
	log_info("reload: %s: %zu routes, default %s, %u warning(s)",
	         px->opt.config_path, c->nroutes, action_str(c->default_action),
	         d.warnings);
	diag_free(&d);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	reload(arg);
}

/* --check: every error and warning, then a verdict; exit 0 or 1. */
static int check(const struct options *o)
{
	struct diag d = { 0 };
	struct config *c = o->config_path ? config_load(o->config_path, &d)
	                                  : config_default();
	const char *name = o->config_path ? o->config_path : "built-in policy";

	print_diag(&d);
	if (c)
		printf("%s: OK: %zu routes, default %s, %u warning(s)\n", name,
		       c->nroutes, action_str(c->default_action), d.warnings);
	else
		printf("%s: %u error(s), %u warning(s)\n", name, d.errors,
		       d.warnings);
	config_unref(c);
	diag_free(&d);
	return c ? 0 : 1;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct proxy *px = arg;

	log_info("%s: stop accepting, drain", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	listener_drain(px);
}

/* Idle upstream connections are closed within a second of their time. */
static const struct timeval pool_tick = { 1, 0 };

static void on_pool_timer(evutil_socket_t fd, short what, void *arg)
{
	struct proxy *px = arg;

	upgroup_expire(px);
	health_expire(px);
	if (px->hosts_on)
		hostmap_expire(&px->hosts, relay_now_ms());
}

int main(int argc, char **argv)
{
	struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
	struct diag d = { 0 };
	struct proxy *px;
	int rc = 1;

	/* Large (the loop-detection table) but mostly untouched: calloc maps
	 * it lazily, so it costs no RSS until used. */
	px = calloc(1, sizeof(*px));
	if (!px) {
		log_error("out of memory");
		return 1;
	}
	options_defaults(&px->opt);
	switch (options_parse(&px->opt, argc, argv, stdout, stderr)) {
	case 1:
		free(px);
		return 0;
	case -1:
		free(px);
		return 2;
	}
	tls_global_init();
	if (px->opt.check) {
		rc = check(&px->opt);
		tls_global_cleanup();
		free(px);
		return rc;
	}
	px->cfg = px->opt.config_path ? config_load(px->opt.config_path, &d)
	                              : config_default();
	print_diag(&d);
	diag_free(&d);
	if (!px->cfg) {
		log_error("not starting: fix the configuration (attache --check -c %s)",
		          px->opt.config_path);
		tls_global_cleanup();
		free(px);
		return 1;
	}
	if (!px->opt.port_set && px->cfg->redirect_port)
		px->opt.port = px->cfg->redirect_port;
	signal(SIGPIPE, SIG_IGN);   /* sends use MSG_NOSIGNAL; this is a net */

	px->base = event_base_new();
	if (!px->base) {
		log_error("cannot create the event loop");
		goto out;
	}
	LIST_INIT(&px->conns);
	LIST_INIT(&px->groups);
	LIST_INIT(&px->upconns);
	LIST_INIT(&px->health);
	/* Jitter only needs apps' proxies not to agree: any seed will do,
	 * as long as it differs between processes. */
	{
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		px->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
		          ((uint64_t)getpid() << 40) ^ 0x9E3779B97F4A7C15ULL;
	}
	bufpool_init(&px->pool, POOL_KEEP);
	px->log = logger_new(px->base, STDOUT_FILENO);
	sigterm = evsignal_new(px->base, SIGTERM, on_signal, px);
	sigint = evsignal_new(px->base, SIGINT, on_signal, px);
	sighup = evsignal_new(px->base, SIGHUP, on_sighup, px);
	px->pool_timer = event_new(px->base, -1, EV_PERSIST, on_pool_timer, px);
	if (!px->log || !sigterm || !sigint || !sighup || !px->pool_timer) {
		log_error("out of memory");
		goto out;
	}
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sighup, NULL);
	event_add(px->pool_timer, &pool_tick);
	if (px->cfg->dns_queue_set) {
		char err[160];
		const struct config *c = px->cfg;
		if (!hostmap_init(&px->hosts, c->dns_max_entries, c->dns_ttl_floor_s,
		                  c->dns_ttl_cap_s)) {
			log_error("out of memory");
			goto out;
		}
		px->hosts_on = true;
		px->snoop = dnssnoop_open(px->base, c->dns_queue, &px->hosts, err,
		                          sizeof(err));
		if (!px->snoop) {
			log_error("dns_snoop: %s", err);
			goto out;
		}
		log_info("dns_snoop: reading DNS answers from NFQUEUE %u",
		         c->dns_queue);
	}
	if (px->opt.mark && upstream_mark_check(px->opt.mark) < 0) {
		log_error("--mark 0x%x: cannot set SO_MARK: %s%s", px->opt.mark,
		          strerror(errno), errno == EPERM ? " (needs CAP_NET_ADMIN)"
		                                          : "");
		goto out;
	}
	if (listener_open(px) < 0)
		goto out;

	event_base_dispatch(px->base);
	/* Answers queued now get their verdict before the queue goes. */
	dnssnoop_close(px->snoop);
	px->snoop = NULL;
	/* Only a drain ends the loop; whatever it left is closed and logged. */
	conn_close_all(px, "drained", "shutdown");
	upgroup_drain(px);
	health_drain(px);
	log_info("stopped");
	rc = 0;
out:
	listener_close(px);
	dnssnoop_close(px->snoop);
	if (px->hosts_on)
		hostmap_free(&px->hosts);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (sighup)
		event_free(sighup);
	if (px->pool_timer)
		event_free(px->pool_timer);
	logger_free(px->log);
	bufpool_drain(&px->pool);
	if (px->base)
		event_base_free(px->base);
	config_unref(px->cfg);
	tls_global_cleanup();
	free(px);
	return rc;
}
