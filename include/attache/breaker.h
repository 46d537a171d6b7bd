/* A circuit breaker per upstream. Closed, it counts consecutive
 * failures; at the threshold it opens, and requests fail fast without
 * touching the upstream. After the ejection time (doubling with every
 * trip in a row, capped) it lets one probe through (half-open): a success
 * closes it, a failure opens it again for longer. Pure, with the owner's
 * clock. */
#ifndef ATTACHE_BREAKER_H
#define ATTACHE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

struct breaker {
	unsigned threshold;        /* consecutive failures that open it */
	uint64_t eject_ms;         /* the first ejection */
	uint64_t eject_max_ms;     /* the longest */
	enum breaker_state state;
	unsigned failures;         /* consecutive, while closed */
	unsigned trips;            /* openings in a row, without a close */
	uint64_t open_until_ms;
	bool probing;              /* half-open: the probe is out */
};

void breaker_init(struct breaker *b, unsigned threshold, uint64_t eject_ms,
                  uint64_t eject_max_ms);

/* May a request go to the upstream now? Open: no (fail fast). Past the
 * ejection time: yes for exactly one, the probe. */
bool breaker_allow(struct breaker *b, uint64_t now_ms);

void breaker_success(struct breaker *b);
void breaker_failure(struct breaker *b, uint64_t now_ms);

/* "closed", "open", "half_open". */
const char *breaker_state_str(enum breaker_state s);

#endif
