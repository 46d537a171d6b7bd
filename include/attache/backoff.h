/* Exponential backoff with full jitter (the AWS architecture blog's
 * "full jitter": sleep a uniform random time in [0, min(cap, base * 2^n)]),
 * so the apps of a pod that all failed at once do not all come back at
 * once. Pure: the caller owns the random state. */
#ifndef ATTACHE_BACKOFF_H
#define ATTACHE_BACKOFF_H

#include <stdint.h>

struct backoff {
	uint64_t base_ms;   /* the ceiling of the first retry's wait */
	uint64_t cap_ms;    /* no ceiling grows past this */
};

/* xorshift64*: small, fast, good enough to spread retries (not for keys).
 * *state must not be 0. */
uint64_t rng_next(uint64_t *state);

/* The ceiling before retry number attempt (0 for the first retry):
 * min(cap, base * 2^attempt), without overflow. */
uint64_t backoff_ceiling(const struct backoff *b, unsigned attempt);

/* A wait in [0, backoff_ceiling(b, attempt)] milliseconds. */
uint64_t backoff_delay(const struct backoff *b, unsigned attempt,
                       uint64_t *rng);

#endif
