/* What attache knows of one upstream (an address and port), shared by
 * every route, app and pool group that reaches it: its circuit breaker,
 * its retry budget, and how many requests it has in flight. It outlives
 * the groups and survives a reload, so a new config does not forget an
 * outage; an entry nobody holds goes once its circuit is closed and its
 * budget window is empty. */
#ifndef ATTACHE_HEALTH_H
#define ATTACHE_HEALTH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "attache/breaker.h"
#include "attache/budget.h"

struct policy;
struct proxy;

struct health {
	LIST_ENTRY(health) link;      /* proxy.health */
	struct sockaddr_storage addr;
	unsigned refs;
	struct breaker breaker;
	struct budget budget;
	unsigned nactive;             /* requests admitted, not yet done */
	unsigned epoch;               /* trips so far: a result from a request
	                                 admitted before the last one is old
	                                 news, and ignored */
	uint64_t last_used_ms;
	struct {
		uint64_t requests, retries, budget_missed, circuit_open,
		         max_active;
	} stats;
};

/* The entry for addr, with a reference (NULL: out of memory). */
struct health *health_get(struct proxy *px, const struct sockaddr *addr);
void health_put(struct health *h);
struct health *health_ref(struct health *h);

/* An admitted request's standing: whether it is the circuit's half-open
 * probe, and the epoch it was admitted in. */
struct admission {
	bool probe;
	unsigned epoch;
};

/* Why a request may not go: NULL when it may (one more is active, and
 * *adm says how it was let in), else the outcome ("circuit_open",
 * "max_active") with the reason in why. */
const char *health_admit(struct health *h, const struct policy *p,
                         struct admission *adm, char *why, size_t cap);

/* The admitted request is over, without a verdict of its own (those
 * went through health_result): one less active; an unanswered probe is
 * given back, so the next request probes. */
void health_done(struct health *h, const struct admission *adm);

/* How one try went (a dial, or a request's response), from a request
 * admitted as adm: ignored when the circuit has tripped since (adm NULL:
 * taken as current). */
void health_result(struct health *h, const struct policy *p,
                   const struct admission *adm, bool ok);

/* May a retry be made now? NULL: yes, and it is counted; else why not:
 * "circuit open" (the tries so far opened it) or "retry budget spent"
 * (the miss is counted). */
const char *health_retry(struct health *h, const struct policy *p);

/* For the log: the circuit's state and "retries/allowed" of the budget. */
const char *health_circuit(const struct health *h);
void health_budget(struct health *h, uint32_t *retries, uint32_t *allowed);

/* Frees the entries nobody holds that have nothing left to remember. */
void health_expire(struct proxy *px);

/* Frees every entry (shutdown: nobody holds any). */
void health_drain(struct proxy *px);

#endif
