/* attache-init's command line, and the environment variables that stand
 * for it (ATTACHE_INIT_<OPTION>, e.g. ATTACHE_INIT_PROXY_UID: init
 * containers are configured that way). The command line wins. */
#ifndef ATTACHE_INITOPTS_H
#define ATTACHE_INITOPTS_H

#include <stdio.h>

#include "attache/common.h"
#include "attache/ruleset.h"

/* Parses envp (NULL-terminated "NAME=value" strings, or NULL) and then
 * argv into o. Returns 0 to run, 1 when --help or --version was printed
 * to out (exit 0), -1 after a one-line error on err (exit 2). */
ATT_MUST_CHECK int init_opts_parse(struct init_opts *o, int argc, char **argv,
                                   char **envp, FILE *out, FILE *err);

/* Parsers the options use, exposed for their unit tests. Each returns 0,
 * or -1 with a reason in why. */
ATT_MUST_CHECK int init_parse_cidr(const char *s, struct cidr *c,
                                   char *why, size_t len);
ATT_MUST_CHECK int init_parse_ports(const char *s, struct portrange *r,
                                    char *why, size_t len);

#endif
