/* Durations as operators write them: "250ms", "5s", "2m", "1h", or a bare
 * number of seconds ("5", "0.5"). */
#ifndef ATTACHE_DURATION_H
#define ATTACHE_DURATION_H

#include <stdint.h>

#include "attache/common.h"

/* Parses s into milliseconds. Returns 0, or -1 if s is empty, negative,
 * has an unknown unit or trailing bytes, or exceeds max_ms. */
ATT_MUST_CHECK int duration_parse(const char *s, uint64_t max_ms,
                                  uint64_t *ms);

#endif
