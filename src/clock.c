#include "attache/clock.h"

#include <event2/event.h>

uint64_t clock_elapsed_us(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (uint64_t)(now.tv_sec - since->tv_sec) * 1000000u +
	       (uint64_t)((now.tv_nsec - since->tv_nsec) / 1000);
}

void clock_arm_ms(struct event *ev, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };

	event_add(ev, &tv);
}
