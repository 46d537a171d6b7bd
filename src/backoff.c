#include "attache/backoff.h"

uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

uint64_t backoff_ceiling(const struct backoff *b, unsigned attempt)
{
	uint64_t c = b->base_ms;

	/* Doubling stops at the cap, before it could overflow. */
	for (unsigned i = 0; i < attempt && c < b->cap_ms; i++)
		c = c > b->cap_ms / 2 ? b->cap_ms : c * 2;
	return c < b->cap_ms ? c : b->cap_ms;
}

uint64_t backoff_delay(const struct backoff *b, unsigned attempt,
                       uint64_t *rng)
{
	uint64_t c = backoff_ceiling(b, attempt);

	return c ? rng_next(rng) % (c + 1) : 0;
}
