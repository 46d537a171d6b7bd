/* Command-line options of the attache daemon. */
#ifndef ATTACHE_OPTIONS_H
#define ATTACHE_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "attache/common.h"

#define ATTACHE_DEFAULT_PORT 15001

struct options {
	const char *config_path;      /* -c; NULL: the built-in policy */
	bool check;                   /* --check: validate and exit */
	bool port_set;                /* -p given: it wins over the file */
	uint16_t port;                /* redirect listener, 127.0.0.1 and ::1 */
	uint64_t connect_timeout_ms;  /* upstream connect */
	uint64_t idle_timeout_ms;     /* no byte either way for this long */
	uint32_t mark;                /* SO_MARK on upstream sockets; 0: none */
	uint64_t drain_timeout_ms;    /* SIGTERM: time left to open conns */
};

void options_defaults(struct options *o);

/* Parses argv into o (which holds the defaults on entry). Returns 0 to run,
 * 1 when --help or --version was printed to out (exit 0), -1 after printing
 * a one-line error and a usage hint to err (exit 2). */
ATT_MUST_CHECK int options_parse(struct options *o, int argc, char **argv,
                                 FILE *out, FILE *err);

#endif
