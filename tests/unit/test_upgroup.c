/* Upstream groups over a real event loop and a loopback listener: limits,
 * the queue (full, timed out, handed a connection), idle connections
 * that turn readable, dedicated ones counted apart, and the drain. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attache/addr.h"
#include "attache/config.h"
#include "attache/health.h"
#include "attache/proxy.h"
#include "attache/upgroup.h"

struct world {
	struct proxy px;
	struct config *cfg;
	int lfd;                       /* the "upstream": a listener */
	struct pool_key key;
	struct pool_limits lim;
};

struct ask {                       /* one request for a connection */
	struct upreq r;
	struct upconn *uc;
	const char *outcome;
	char reason[160];
	int answers;
};

static void on_done(void *arg, struct upconn *uc, const char *outcome,
                    const char *reason)
{
	struct ask *a = arg;

	a->answers++;
	a->uc = uc;
	a->outcome = outcome;
	if (reason)
		snprintf(a->reason, sizeof(a->reason), "%s", reason);
}

static int setup(void **state)
{
	struct world *w = calloc(1, sizeof(*w));
	struct sockaddr_in sin = { .sin_family = AF_INET,
	                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);

	w->px.base = event_base_new();
	w->px.opt.connect_timeout_ms = 2000;
	bufpool_init(&w->px.pool, 4);
	LIST_INIT(&w->px.groups);
	LIST_INIT(&w->px.upconns);
	LIST_INIT(&w->px.health);
	w->px.rng = 88172645463325252ULL;
	w->cfg = config_default();
	w->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(bind(w->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(w->lfd, 16), 0);
	assert_int_equal(getsockname(w->lfd, (struct sockaddr *)&sin, &len), 0);
	memcpy(&w->key.addr, &sin, sizeof(sin));
	w->lim = (struct pool_limits){ .max_idle = 4, .idle_timeout_ms = 10000,
	                               .max_per_upstream = 1, .max_requests = 3,
	                               .queue_max = 1, .queue_timeout_ms = 50 };
	*state = w;
	return 0;
}

static int teardown(void **state)
{
	struct world *w = *state;

	upgroup_drain(&w->px);
	assert_true(LIST_EMPTY(&w->px.groups));   /* nothing leaks a group */
	assert_true(LIST_EMPTY(&w->px.upconns));
	health_drain(&w->px);
	close(w->lfd);
	config_unref(w->cfg);
	bufpool_drain(&w->px.pool);
	event_base_free(w->px.base);
	free(w);
	return 0;
}

/* Runs the loop until a has an answer (or a second passed). */
static void wait_for(struct world *w, struct ask *a, int answers)
{
	for (int i = 0; i < 200 && a->answers < answers; i++)
		event_base_loop(w->px.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(5000);
	assert_int_equal(a->answers, answers);
}

static int start(struct world *w, struct upgroup *g, struct ask *a, bool fresh)
{
	memset(a, 0, sizeof(*a));
	a->r.fresh = fresh;
	int rc = upreq_start(&a->r, g, on_done, a, &a->uc, &a->outcome);
	if (rc != 0)
		snprintf(a->reason, sizeof(a->reason), "%s", a->r.reason);
	return rc;
}

static int start_pol(struct world *w, struct upgroup *g, struct ask *a,
                     const struct policy *pol, unsigned attempts)
{
	memset(a, 0, sizeof(*a));
	a->r.pol = pol;
	a->r.attempts = attempts;
	return upreq_start(&a->r, g, on_done, a, &a->uc, &a->outcome);
}

static void test_limit_queue_and_handover(void **state)
{
	struct world *w = *state;
	struct upgroup *g = upgroup_get(&w->px, &w->key, NULL, w->cfg, &w->lim);
	struct ask a, b, c, d, f;

	assert_non_null(g);
	assert_ptr_equal(upgroup_get(&w->px, &w->key, NULL, w->cfg, &w->lim), g);

	assert_int_equal(start(w, g, &a, false), 0);     /* dials */
	wait_for(w, &a, 1);
	assert_non_null(a.uc);
	assert_false(a.uc->reused);
	assert_int_equal(g->nopen, 1);

	assert_int_equal(start(w, g, &b, false), 0);     /* waits: at the limit */
	assert_int_equal(g->nwaiting, 1);
	assert_int_equal(start(w, g, &c, false), -1);    /* the queue is full */
	assert_string_equal(c.outcome, "queue_full");
	assert_non_null(strstr(c.reason, "queue full"));

	/* A dedicated connection does not count against the limit. */
	assert_int_equal(start(w, g, &f, true), 0);
	wait_for(w, &f, 1);
	assert_non_null(f.uc);
	assert_int_equal(g->nopen, 1);
	assert_int_equal(g->nfresh, 1);
	upconn_release(f.uc, true, false);               /* never pooled */
	assert_int_equal(g->nfresh, 0);
	assert_int_equal(g->idle.nidle, 0);
	upreq_cancel(&f.r);

	/* Given back, a's connection goes straight to b, the first waiter. */
	int fd = a.uc->fd;
	upconn_release(a.uc, true, false);
	upreq_cancel(&a.r);
	wait_for(w, &b, 1);
	assert_non_null(b.uc);
	assert_true(b.uc->reused);
	assert_int_equal(b.uc->fd, fd);
	assert_int_equal(g->nopen, 1);

	/* Nobody gives it back now: the next waiter times out with a 503's
	 * reason. */
	assert_int_equal(start(w, g, &d, false), 0);
	wait_for(w, &d, 1);
	assert_null(d.uc);
	assert_string_equal(d.outcome, "queue_timeout");
	assert_non_null(strstr(d.reason, "no upstream connection free within 50 ms"));
	assert_int_equal(g->nwaiting, 0);
	upreq_cancel(&d.r);

	upconn_release(b.uc, true, false);               /* to the pool */
	upreq_cancel(&b.r);
	assert_int_equal(g->idle.nidle, 1);
	upreq_cancel(&c.r);
}

static void test_idle_connection_that_speaks_is_dropped(void **state)
{
	struct world *w = *state;
	struct upgroup *g = upgroup_get(&w->px, &w->key, NULL, w->cfg, &w->lim);
	struct ask a, b;
	int srv;

	assert_int_equal(start(w, g, &a, false), 0);
	wait_for(w, &a, 1);
	srv = accept(w->lfd, NULL, NULL);
	assert_true(srv >= 0);
	upconn_release(a.uc, true, false);
	upreq_cancel(&a.r);
	assert_int_equal(g->idle.nidle, 1);

	/* A late byte from the upstream while idle: out at once, by the
	 * event; the group goes with its last connection. */
	assert_int_equal(write(srv, "x", 1), 1);
	for (int i = 0; i < 50 && !LIST_EMPTY(&w->px.groups); i++)
		event_base_loop(w->px.base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(2000);
	assert_true(LIST_EMPTY(&w->px.groups));
	assert_true(LIST_EMPTY(&w->px.upconns));

	/* A new request dials a new connection. */
	g = upgroup_get(&w->px, &w->key, NULL, w->cfg, &w->lim);
	assert_int_equal(start(w, g, &b, false), 0);
	wait_for(w, &b, 1);
	assert_false(b.uc->reused);
	upconn_release(b.uc, false, true);
	upreq_cancel(&b.r);
	close(srv);
}

static void test_max_requests_and_refused(void **state)
{
	struct world *w = *state;
	struct upgroup *g = upgroup_get(&w->px, &w->key, NULL, w->cfg, &w->lim);
	struct ask a;

	/* Served max_requests (3): closed, not pooled. */
	assert_int_equal(start(w, g, &a, false), 0);
	wait_for(w, &a, 1);
	for (int i = 0; i < 2; i++) {
		struct upconn *uc = a.uc;
		upconn_release(uc, true, false);
		upreq_cancel(&a.r);
		assert_int_equal(g->idle.nidle, 1);
		assert_int_equal(start(w, g, &a, false), 1);   /* from the pool */
		assert_true(a.uc->reused);
	}
	upconn_release(a.uc, true, false);
	upreq_cancel(&a.r);
	g = upgroup_get(&w->px, &w->key, NULL, w->cfg, &w->lim);
	assert_int_equal(g->idle.nidle, 0);

	/* Nothing listens: the dial fails, and says so. */
	close(w->lfd);
	w->lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_int_equal(start(w, g, &a, false), 0);
	wait_for(w, &a, 1);
	assert_null(a.uc);
	assert_string_equal(a.outcome, "connect_failed");
	assert_non_null(strstr(a.reason, "Connection refused"));
	upreq_cancel(&a.r);
}

/* A refused dial is tried again after a jittered backoff, until the
 * attempts, the circuit or the budget say no; each try is counted. */
static void test_connect_retries(void **state)
{
	struct world *w = *state;
	struct policy pol = w->cfg->policy;
	struct upgroup *g;
	struct ask a;
	/* Held here: a group goes with its last request, its health not. */
	struct health *h = health_get(&w->px, (struct sockaddr *)&w->key.addr);

	close(w->lfd);                     /* nothing listens */
	w->lfd = socket(AF_INET, SOCK_STREAM, 0);
	pol.backoff_base_ms = 5;
	pol.backoff_cap_ms = 20;
	pol.circuit_failures = 0;
	g = upgroup_get(&w->px, &w->key, NULL, w->cfg, &w->lim);
	assert_int_equal(start_pol(w, g, &a, &pol, 3), 0);
	wait_for(w, &a, 1);
	assert_string_equal(a.outcome, "connect_failed");
	assert_int_equal(a.r.tries, 3);
	assert_true(a.r.backoff_ms <= 5 + 10);    /* ceilings 5, then 10 */
	assert_false(a.r.budget_out);
	assert_non_null(strstr(a.reason, "refused"));
	upreq_cancel(&a.r);

	/* A circuit that opens at the second failure ends the tries. */
	pol.circuit_failures = 2;
	g = upgroup_get(&w->px, &w->key, NULL, w->cfg, &w->lim);
	assert_int_equal(start_pol(w, g, &a, &pol, 5), 0);
	wait_for(w, &a, 1);
	assert_int_equal(a.r.tries, 2);
	assert_non_null(strstr(a.reason, "no retry: circuit open"));
	assert_int_equal(h->breaker.state, BREAKER_OPEN);
	upreq_cancel(&a.r);

	/* No budget (ratio 0, no floor): one try, and the miss is said. */
	pol.circuit_failures = 0;
	pol.budget_pct = pol.budget_floor = 0;
	g = upgroup_get(&w->px, &w->key, NULL, w->cfg, &w->lim);
	uint64_t missed = h->stats.budget_missed;
	assert_int_equal(start_pol(w, g, &a, &pol, 3), 0);
	wait_for(w, &a, 1);
	assert_int_equal(a.r.tries, 1);
	assert_true(a.r.budget_out);
	assert_non_null(strstr(a.reason, "retry budget spent"));
	assert_int_equal(h->stats.budget_missed, missed + 1);
	upreq_cancel(&a.r);
	health_put(h);
}

static struct sockaddr_storage alt_addr;
static unsigned alt_calls;

static bool next_alt(void *arg, unsigned tries, struct sockaddr_storage *out)
{
	(void)arg;
	alt_calls++;
	if (tries % 2 == 0)
		return false;          /* the group's own address's turn */
	*out = alt_addr;
	return true;
}

/* A retry goes to the name's next address when the caller has one; that
 * connection serves its request and is not pooled under the group's. */
static void test_retry_goes_to_the_next_address(void **state)
{
	struct world *w = *state;
	struct policy pol = w->cfg->policy;
	struct upgroup *g;
	struct ask a;
	struct health *h = health_get(&w->px, (struct sockaddr *)&w->key.addr);
	struct sockaddr_in dead = { .sin_family = AF_INET,
	                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(dead);
	int tmp = socket(AF_INET, SOCK_STREAM, 0);

	/* the group's address: a port nothing listens on */
	assert_int_equal(bind(tmp, (struct sockaddr *)&dead, sizeof(dead)), 0);
	assert_int_equal(getsockname(tmp, (struct sockaddr *)&dead, &len), 0);
	close(tmp);
	memcpy(&alt_addr, &w->key.addr, sizeof(alt_addr));   /* the listener */
	memcpy(&w->key.addr, &dead, sizeof(dead));
	pol.backoff_base_ms = 1;
	pol.backoff_cap_ms = 2;
	g = upgroup_get(&w->px, &w->key, NULL, w->cfg, &w->lim);
	assert_int_equal(start_pol(w, g, &a, &pol, 3), 0);
	a.r.next_addr = next_alt;   /* the first dial does not ask */
	wait_for(w, &a, 1);
	assert_null(a.outcome);
	assert_non_null(a.uc);
	assert_int_equal(a.r.tries, 2);
	assert_int_equal(alt_calls, 1);
	assert_true(addr_equal((struct sockaddr *)&a.uc->peer,
	                       (struct sockaddr *)&alt_addr));
	upreq_cancel(&a.r);                          /* frees its event */
	upconn_release(a.uc, true, false);
	assert_true(LIST_EMPTY(&w->px.upconns));     /* closed, not pooled */
	health_put(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_limit_queue_and_handover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retry_goes_to_the_next_address,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_connection_that_speaks_is_dropped,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_requests_and_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_retries, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
