/* attache-init's command line. */
#ifndef ATTACHE_INITOPTS_H
#define ATTACHE_INITOPTS_H

#include <stdio.h>

#include "attache/common.h"
#include "attache/ruleset.h"

/* Parses argv into o. Returns 0 to run, 1 when --help or --version was
 * printed to out (exit 0), -1 after a one-line error on err (exit 2). */
ATT_MUST_CHECK int init_opts_parse(struct init_opts *o, int argc, char **argv,
                                   FILE *out, FILE *err);

#endif
