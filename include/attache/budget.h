/* A retry budget, shared by every app that calls one upstream: over a
 * sliding window, retries may add at most ratio x the requests seen, plus
 * a small floor per second so a quiet upstream can still be retried. When
 * it is spent, the retry is not made and the miss is counted: an outage
 * is never amplified past (1 + ratio) x the apps' own load. Pure, with
 * the owner's clock. */
#ifndef ATTACHE_BUDGET_H
#define ATTACHE_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

#define BUDGET_BUCKETS 10          /* the window, in equal slices */

struct budget {
	unsigned ratio_pct;            /* retries per 100 requests */
	unsigned floor_per_s;          /* retries allowed per second anyway */
	uint64_t window_ms;
	uint64_t slice_ms;             /* window_ms / BUDGET_BUCKETS */
	uint64_t cur_start_ms;         /* when the current slice began */
	unsigned cur;                  /* the current slice */
	struct { uint32_t requests, retries; } slice[BUDGET_BUCKETS];
	uint64_t missed;               /* retries refused, ever */
};

void budget_init(struct budget *b, unsigned ratio_pct, unsigned floor_per_s,
                 uint64_t window_ms, uint64_t now_ms);

/* An app's request (not a retry) to this upstream. */
void budget_request(struct budget *b, uint64_t now_ms);

/* May one more retry be made now? true: yes, and it is counted; false:
 * the budget is spent, and the miss is counted. */
bool budget_retry(struct budget *b, uint64_t now_ms);

/* What the window holds now, for the log. */
void budget_state(struct budget *b, uint64_t now_ms, uint32_t *requests,
                  uint32_t *retries, uint32_t *allowed);

#endif
