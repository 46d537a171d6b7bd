#include "attache/budget.h"

#include <string.h>

void budget_init(struct budget *b, unsigned ratio_pct, unsigned floor_per_s,
                 uint64_t window_ms, uint64_t now_ms)
{
	memset(b, 0, sizeof(*b));
	b->ratio_pct = ratio_pct;
	b->floor_per_s = floor_per_s;
	b->slice_ms = window_ms / BUDGET_BUCKETS ? window_ms / BUDGET_BUCKETS : 1;
	b->window_ms = b->slice_ms * BUDGET_BUCKETS;
	b->cur_start_ms = now_ms;
}

/* Moves the window to now: the slices it left behind are emptied. */
static void advance(struct budget *b, uint64_t now_ms)
{
	uint64_t gone;

	if (now_ms < b->cur_start_ms + b->slice_ms)
		return;
	gone = (now_ms - b->cur_start_ms) / b->slice_ms;
	if (gone >= BUDGET_BUCKETS) {
		memset(b->slice, 0, sizeof(b->slice));
	} else {
		for (uint64_t i = 1; i <= gone; i++) {
			unsigned k = (unsigned)((b->cur + i) % BUDGET_BUCKETS);
			b->slice[k].requests = b->slice[k].retries = 0;
		}
	}
	b->cur = (unsigned)((b->cur + gone) % BUDGET_BUCKETS);
	b->cur_start_ms += gone * b->slice_ms;
}

void budget_request(struct budget *b, uint64_t now_ms)
{
	advance(b, now_ms);
	if (b->slice[b->cur].requests < UINT32_MAX)
		b->slice[b->cur].requests++;
}

void budget_state(struct budget *b, uint64_t now_ms, uint32_t *requests,
                  uint32_t *retries, uint32_t *allowed)
{
	uint64_t req = 0, ret = 0, a;

	advance(b, now_ms);
	for (unsigned i = 0; i < BUDGET_BUCKETS; i++) {
		req += b->slice[i].requests;
		ret += b->slice[i].retries;
	}
	a = req * b->ratio_pct / 100 + b->floor_per_s * b->window_ms / 1000;
	*requests = req > UINT32_MAX ? UINT32_MAX : (uint32_t)req;
	*retries = ret > UINT32_MAX ? UINT32_MAX : (uint32_t)ret;
	*allowed = a > UINT32_MAX ? UINT32_MAX : (uint32_t)a;
}

bool budget_retry(struct budget *b, uint64_t now_ms)
{
	uint32_t req, ret, allowed;

	budget_state(b, now_ms, &req, &ret, &allowed);
	if (ret >= allowed) {
		b->missed++;
		return false;
	}
	b->slice[b->cur].retries++;
	return true;
}
