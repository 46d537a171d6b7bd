#include "attache/breaker.h"

#include <string.h>

void breaker_init(struct breaker *b, unsigned threshold, uint64_t eject_ms,
                  uint64_t eject_max_ms)
{
	memset(b, 0, sizeof(*b));
	b->threshold = threshold ? threshold : 1;
	b->eject_ms = eject_ms;
	b->eject_max_ms = eject_max_ms > eject_ms ? eject_max_ms : eject_ms;
}

static void trip(struct breaker *b, uint64_t now_ms)
{
	uint64_t t = b->eject_ms;

	for (unsigned i = 0; i < b->trips && t < b->eject_max_ms; i++)
		t = t > b->eject_max_ms / 2 ? b->eject_max_ms : t * 2;
	if (t > b->eject_max_ms)
		t = b->eject_max_ms;
	b->trips++;
	b->state = BREAKER_OPEN;
	b->open_until_ms = now_ms + t;
	b->probing = false;
	b->failures = 0;
}

bool breaker_allow(struct breaker *b, uint64_t now_ms)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		return true;
	case BREAKER_OPEN:
		if (now_ms < b->open_until_ms)
			return false;
		b->state = BREAKER_HALF_OPEN;
		b->probing = true;
		return true;
	case BREAKER_HALF_OPEN:
		if (b->probing)
			return false;   /* one probe at a time */
		b->probing = true;
		return true;
	}
	return false;
}

void breaker_success(struct breaker *b)
{
	if (b->state == BREAKER_OPEN)
		return;   /* a straggler from before it opened proves nothing */
	b->state = BREAKER_CLOSED;
	b->failures = 0;
	b->trips = 0;
	b->probing = false;
}

void breaker_failure(struct breaker *b, uint64_t now_ms)
{
	switch (b->state) {
	case BREAKER_CLOSED:
		if (++b->failures >= b->threshold)
			trip(b, now_ms);
		return;
	case BREAKER_HALF_OPEN:
		trip(b, now_ms);    /* the probe failed: out again, for longer */
		return;
	case BREAKER_OPEN:
		return;             /* a request from before it opened */
	}
}

const char *breaker_state_str(enum breaker_state s)
{
	static const char *const names[] = { "closed", "open", "half_open" };

	return names[s];
}
