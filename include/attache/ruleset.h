/* attache-init's rules: what is in the nat table now, and the
 * iptables-restore input that takes it to where it should be.
 *
 * Everything here is pure text in, text out, so the exact rules are
 * checked against golden files without touching a kernel. */
#ifndef ATTACHE_RULESET_H
#define ATTACHE_RULESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attache/common.h"

#define RULESET_CHAIN "ATTACHE_OUTPUT"
#define RULESET_MAX_JUMPS 16

struct init_opts {
	uint16_t redirect_port;
	bool have_uid;
	uint32_t proxy_uid;
	enum { IPV6_AUTO, IPV6_ON, IPV6_OFF } ipv6;
	bool dry_run;
	bool cleanup;
};

/* What the nat table holds of ours, read from `iptables-save -t nat`. */
struct nat_state {
	bool chain;                          /* :ATTACHE_OUTPUT exists */
	size_t njumps;
	char *jumps[RULESET_MAX_JUMPS];      /* "-A OUTPUT ... -j ATTACHE_OUTPUT" */
};

/* Parses iptables-save output. Returns 0, or -1 with *err set when there
 * are more jumps into our chain than RULESET_MAX_JUMPS (or no memory). */
ATT_MUST_CHECK int nat_state_parse(const char *save, struct nat_state *st,
                                   const char **err);
void nat_state_free(struct nat_state *st);

/* A growable string; ruleset_* append to it. */
struct strbuf {
	char *p;
	size_t len, cap;
};
void strbuf_free(struct strbuf *b);

/* The iptables-restore --noflush input that installs the redirect for
 * family 4 or 6, given the table's current state: our chain is declared
 * (created, or flushed when it exists) and refilled, and exactly one jump
 * to it leads OUTPUT, so applying it twice changes nothing.
 * Returns 0 or -1 (no memory). */
ATT_MUST_CHECK int ruleset_install(const struct init_opts *o, int family,
                                   const struct nat_state *st,
                                   struct strbuf *out);

/* The input that removes every jump into our chain and the chain itself,
 * and nothing else. Empty when there is nothing of ours. */
ATT_MUST_CHECK int ruleset_cleanup(const struct nat_state *st,
                                   struct strbuf *out);

#endif
