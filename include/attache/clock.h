/* Time, the few ways the daemon needs it. */
#ifndef ATTACHE_CLOCK_H
#define ATTACHE_CLOCK_H

#include <stdint.h>
#include <time.h>

struct event;

/* Microseconds since since (CLOCK_MONOTONIC). */
uint64_t clock_elapsed_us(const struct timespec *since);

/* Adds ev (a timer, or an event with a timeout) to fire in ms. */
void clock_arm_ms(struct event *ev, uint64_t ms);

#endif
