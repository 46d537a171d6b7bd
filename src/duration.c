#include "attache/duration.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int duration_parse(const char *s, uint64_t max_ms, uint64_t *ms)
{
	static const struct { const char *unit; double ms; } units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "", 1000 },   /* a bare number is seconds */
	};
	const char *end;
	bool dot = false;
	double v;

	/* Digits with at most one dot: no sign, space, exponent or hex,
	 * all of which strtod would take. */
	if (!s || *s < '0' || *s > '9')
		return -1;
	for (end = s; (*end >= '0' && *end <= '9') || (*end == '.' && !dot); end++)
		dot |= *end == '.';
	v = strtod(s, NULL);
	if (!isfinite(v))
		return -1;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) == 0) {
			double r = v * units[i].ms;
			if (r > (double)max_ms)
				return -1;
			*ms = (uint64_t)(r + 0.5);
			return 0;
		}
	}
	return -1;
}
