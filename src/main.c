/* attache: the daemon's entry point. Parses options, opens the listeners,
 * runs the event loop until SIGTERM/SIGINT has drained it. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "attache/conn.h"
#include "attache/listener.h"
#include "attache/log.h"
#include "attache/options.h"
#include "attache/proxy.h"

/* Keep a few freed buffers for the next burst; beyond that, return them. */
#define POOL_KEEP 64

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct proxy *px = arg;

	log_info("%s: stop accepting, drain", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	listener_drain(px);
}

int main(int argc, char **argv)
{
	struct event *sigterm = NULL, *sigint = NULL;
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
	signal(SIGPIPE, SIG_IGN);   /* sends use MSG_NOSIGNAL; this is a net */

	px->base = event_base_new();
	if (!px->base) {
		log_error("cannot create the event loop");
		goto out;
	}
	LIST_INIT(&px->conns);
	bufpool_init(&px->pool, POOL_KEEP);
	px->log = logger_new(px->base, STDOUT_FILENO);
	sigterm = evsignal_new(px->base, SIGTERM, on_signal, px);
	sigint = evsignal_new(px->base, SIGINT, on_signal, px);
	if (!px->log || !sigterm || !sigint) {
		log_error("out of memory");
		goto out;
	}
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	if (listener_open(px) < 0)
		goto out;

	event_base_dispatch(px->base);
	/* Only a drain ends the loop; whatever it left is closed and logged. */
	conn_close_all(px, "drained", "shutdown");
	log_info("stopped");
	rc = 0;
out:
	listener_close(px);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	logger_free(px->log);
	bufpool_drain(&px->pool);
	if (px->base)
		event_base_free(px->base);
	free(px);
	return rc;
}
