/* attache-init's rules: what a family's tables hold of ours now, and the
 * iptables-restore input that takes them to where they should be.
 *
 * attache-init owns one chain per table, reached by one jump that leads a
 * built-in chain:
 *   nat     ATTACHE_OUTPUT  from OUTPUT   the REDIRECT, after the exclusions
 *   filter  ATTACHE_EGRESS  from OUTPUT   --lockdown, and IPv6 "reject"
 *   mangle  ATTACHE_DNS     from INPUT    DNS answers to NFQUEUE (mangle,
 *           not filter: a queue's ACCEPT ends the table it was given in,
 *           and must not skip the pod's own filter INPUT rules)
 *
 * Everything here is pure text in, text out, so the exact rules are
 * checked against golden files without touching a kernel. */
#ifndef ATTACHE_RULESET_H
#define ATTACHE_RULESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attache/common.h"

#define RULESET_NAT_CHAIN "ATTACHE_OUTPUT"
#define RULESET_FILTER_CHAIN "ATTACHE_EGRESS"
#define RULESET_MANGLE_CHAIN "ATTACHE_DNS"
#define RULESET_MAX_JUMPS 16
#define INIT_MAX_LIST 32

struct cidr {
	uint8_t family;                /* 4 or 6 */
	uint8_t prefix;
	uint8_t addr[16];              /* network order; host bits zero */
};

struct portrange {
	uint16_t lo, hi;
};

enum init_ipv6 { IPV6_REDIRECT, IPV6_REJECT };
enum init_backend { BACKEND_AUTO, BACKEND_NFT, BACKEND_LEGACY };

struct init_opts {
	uint16_t redirect_port;
	bool have_uid, have_gid, have_mark;
	uint32_t proxy_uid, proxy_gid, proxy_mark;
	enum init_ipv6 ipv6;
	enum init_backend backend;
	struct cidr exclude_cidrs[INIT_MAX_LIST], include_cidrs[INIT_MAX_LIST];
	size_t n_exclude_cidrs, n_include_cidrs;
	struct portrange exclude_ports[INIT_MAX_LIST], include_ports[INIT_MAX_LIST];
	size_t n_exclude_ports, n_include_ports;
	bool lockdown;
	bool have_dns_queue;
	uint16_t dns_queue;
	bool dry_run, cleanup, verify;
};

enum rs_table { RS_NAT, RS_FILTER, RS_MANGLE, RS_NTABLES };

/* "nat", "filter", "mangle" */
const char *ruleset_table_name(enum rs_table t);

/* What one table holds of ours, read from iptables-save. */
struct table_state {
	bool present;                        /* the save has the table */
	bool chain;                          /* our chain exists */
	size_t nrules;                       /* every -A line in the table */
	size_t hook_rules;                   /* ... in the built-in chain */
	bool first;                          /* a jump of ours leads it */
	bool incompatible;                   /* nft: rules the tool cannot show */
	size_t njumps;
	char *jumps[RULESET_MAX_JUMPS];      /* "-A OUTPUT ... -j ATTACHE_..." */
};

struct fw_state {
	struct table_state t[RS_NTABLES];
};

/* Parses iptables-save output (with or without -c counters). Returns 0,
 * or -1 with *err set when a built-in chain has more than
 * RULESET_MAX_JUMPS jumps into ours (or no memory). */
ATT_MUST_CHECK int fw_state_parse(const char *save, struct fw_state *st,
                                  const char **err);
void fw_state_free(struct fw_state *st);
/* Holds any chain or jump of ours. */
bool fw_state_ours(const struct fw_state *st);

/* A growable string; ruleset_* append to it. */
struct strbuf {
	char *p;
	size_t len, cap;
};
ATT_MUST_CHECK int strbuf_add(struct strbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void strbuf_free(struct strbuf *b);

/* The iptables-restore --noflush input that installs o for family 4 or 6
 * given the tables' current state: each chain we need is declared
 * (created, or flushed when it exists) and refilled, exactly one jump to it
 * leads its built-in chain, and a chain of ours that o no longer needs
 * (say --lockdown was dropped) is removed, so applying it twice changes
 * nothing. Returns 0 or -1 (no memory). */
ATT_MUST_CHECK int ruleset_install(const struct init_opts *o, int family,
                                   const struct fw_state *st,
                                   struct strbuf *out);

/* The input that removes every jump into our chains and the chains, and
 * nothing else. Empty when there is nothing of ours. */
ATT_MUST_CHECK int ruleset_cleanup(const struct fw_state *st,
                                   struct strbuf *out);

/* Whether input (a ruleset_* result) has a section for table t. */
bool ruleset_touches(const char *input, enum rs_table t);

/* The iptables-restore input (without --noflush) that puts back, as they
 * were in saved (iptables-save -c output), the tables that input (a
 * ruleset_* result) touches; a table saved did not have is restored empty.
 * Returns 0 or -1 (no memory). */
ATT_MUST_CHECK int ruleset_rollback(const char *saved, const char *input,
                                    struct strbuf *out);

/* Which back end to use when none was forced: the one that holds our
 * chains, else the one whose nat tables hold rules (the most, if both),
 * else nft. usable[] says whether each (nft, legacy) could be read. */
enum init_backend ruleset_pick_backend(const bool usable[2],
                                       const bool ours[2],
                                       const size_t nat_rules[2]);

/* An address and port of family that o's rules redirect, for --verify:
 * a documentation address (192.0.2.1, 2001:db8:ffff::1) and port 80 when those
 * are redirected, else the first ones that are. -1 when nothing of that
 * family is. addr is 4 or 16 bytes. */
ATT_MUST_CHECK int ruleset_probe_target(const struct init_opts *o, int family,
                                        uint8_t addr[16], uint16_t *port);

/* "10.0.0.0/8", "2001:db8::/32" into buf. */
const char *cidr_str(const struct cidr *c, char *buf, size_t len);

#endif
