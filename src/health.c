#include "attache/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attache/addr.h"
#include "attache/config.h"
#include "attache/proxy.h"
#include "attache/relay.h"

struct health *health_get(struct proxy *px, const struct sockaddr *addr)
{
	struct health *h;
	uint64_t now = relay_now_ms();

	LIST_FOREACH(h, &px->health, link)
		if (addr_equal((struct sockaddr *)&h->addr, addr)) {
			h->refs++;
			h->last_used_ms = now;
			return h;
		}
	if (!(h = calloc(1, sizeof(*h))))
		return NULL;
	memcpy(&h->addr, addr, addr_len(addr));
	h->refs = 1;
	h->last_used_ms = now;
	breaker_init(&h->breaker, POLICY_DEFAULT_CIRCUIT_FAILURES,
	             POLICY_DEFAULT_CIRCUIT_OPEN_MS,
	             POLICY_DEFAULT_CIRCUIT_OPEN_MAX_MS);
	budget_init(&h->budget, POLICY_DEFAULT_BUDGET_PCT,
	            POLICY_DEFAULT_BUDGET_FLOOR, POLICY_BUDGET_WINDOW_MS, now);
	LIST_INSERT_HEAD(&px->health, h, link);
	return h;
}

struct health *health_ref(struct health *h)
{
	h->refs++;
	return h;
}

void health_put(struct health *h)
{
	if (h)
		h->refs--;
}

/* The policy of the request at hand sets the thresholds: routes to one
 * upstream normally agree, and when they do not, each request is judged
 * by its own route's. */
static void apply(struct health *h, const struct policy *p)
{
	h->breaker.threshold = p->circuit_failures ? p->circuit_failures : 1;
	h->breaker.eject_ms = p->circuit_open_ms;
	h->breaker.eject_max_ms = p->circuit_open_max_ms;
	h->budget.ratio_pct = p->budget_pct;
	h->budget.floor_per_s = p->budget_floor;
}

const char *health_admit(struct health *h, const struct policy *p,
                         struct admission *adm, char *why, size_t cap)
{
	uint64_t now = relay_now_ms();

	apply(h, p);
	h->last_used_ms = now;
	adm->probe = false;
	adm->epoch = h->epoch;
	if (p->max_active && h->nactive >= p->max_active) {
		h->stats.max_active++;
		snprintf(why, cap, "upstream busy: %u requests in flight "
		         "(max_active_requests)", h->nactive);
		return "max_active";
	}
	if (p->circuit_failures) {
		if (!breaker_allow(&h->breaker, now)) {
			uint64_t until = h->breaker.open_until_ms;
			h->stats.circuit_open++;
			if (until > now)
				snprintf(why, cap, "circuit open: %u failures in a "
				         "row; next try in %llu ms",
				         h->breaker.threshold,
				         (unsigned long long)(until - now));
			else
				snprintf(why, cap, "circuit half open: a probe "
				         "is out");
			return "circuit_open";
		}
		adm->probe = h->breaker.state == BREAKER_HALF_OPEN;
	}
	h->nactive++;
	h->stats.requests++;
	budget_request(&h->budget, now);
	return NULL;
}

void health_result(struct health *h, const struct policy *p,
                   const struct admission *adm, bool ok)
{
	if (!p->circuit_failures || (adm && adm->epoch != h->epoch))
		return;
	apply(h, p);
	if (ok) {
		breaker_success(&h->breaker);
		return;
	}
	bool was_open = h->breaker.state == BREAKER_OPEN;
	breaker_failure(&h->breaker, relay_now_ms());
	if (!was_open && h->breaker.state == BREAKER_OPEN)
		h->epoch++;
}

void health_done(struct health *h, const struct admission *adm)
{
	if (h->nactive)
		h->nactive--;
	if (adm->probe && adm->epoch == h->epoch &&
	    h->breaker.state == BREAKER_HALF_OPEN)
		h->breaker.probing = false;   /* the next request probes */
}

const char *health_retry(struct health *h, const struct policy *p)
{
	apply(h, p);
	if (p->circuit_failures && h->breaker.state == BREAKER_OPEN)
		return "circuit open";
	if (!budget_retry(&h->budget, relay_now_ms())) {
		h->stats.budget_missed++;
		return "retry budget spent";
	}
	h->stats.retries++;
	return NULL;
}

const char *health_circuit(const struct health *h)
{
	return breaker_state_str(h->breaker.state);
}

void health_budget(struct health *h, uint32_t *retries, uint32_t *allowed)
{
	uint32_t req;

	budget_state(&h->budget, relay_now_ms(), &req, retries, allowed);
}

void health_expire(struct proxy *px)
{
	struct health *h, *next;
	uint64_t now = relay_now_ms();

	for (h = LIST_FIRST(&px->health); h; h = next) {
		next = LIST_NEXT(h, link);
		/* Past its window and its ejection, nothing it remembers
		 * would change a decision (a new probe is as good as any). */
		if (h->refs || now - h->last_used_ms < POLICY_BUDGET_WINDOW_MS ||
		    now < h->breaker.open_until_ms)
			continue;
		LIST_REMOVE(h, link);
		free(h);
	}
}

void health_drain(struct proxy *px)
{
	struct health *h;

	while ((h = LIST_FIRST(&px->health))) {
		LIST_REMOVE(h, link);
		free(h);
	}
}
