#include "attache/ruleset.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Our chain in each table, the built-in chain that jumps to it, and that
 * jump exactly as iptables-save prints it (so a second run recognises it). */
static const struct {
	const char *table, *chain, *hook, *jump;
} ours[RS_NTABLES] = {
	[RS_NAT] = { "nat", RULESET_NAT_CHAIN, "OUTPUT",
	             "-A OUTPUT -p tcp -j " RULESET_NAT_CHAIN },
	[RS_FILTER] = { "filter", RULESET_FILTER_CHAIN, "OUTPUT",
	                "-A OUTPUT -j " RULESET_FILTER_CHAIN },
	[RS_MANGLE] = { "mangle", RULESET_MANGLE_CHAIN, "INPUT",
	                "-A INPUT -j " RULESET_MANGLE_CHAIN },
};

const char *ruleset_table_name(enum rs_table t)
{
	return ours[t].table;
}

int strbuf_add(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL,
		              b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if (b->p && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return 0;
		}
		size_t cap = b->cap ? b->cap * 2 : 1024;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
}

void strbuf_free(struct strbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

const char *cidr_str(const struct cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	inet_ntop(c->family == 6 ? AF_INET6 : AF_INET, c->addr, a, sizeof(a));
	snprintf(buf, len, "%s/%u", a, c->prefix);
	return buf;
}

/* ---- reading iptables-save */

/* " -j CHAIN" as the last token, or followed by more options; not inside
 * a quoted comment. */
static bool jumps_to(const char *line, size_t len, const char *chain)
{
	char tok[64];
	size_t tl = (size_t)snprintf(tok, sizeof(tok), " -j %s", chain);
	bool quoted = false;

	for (size_t i = 0; i + tl <= len; i++) {
		if (line[i] == '\\' && quoted) {
			i++;
			continue;
		}
		if (line[i] == '"')
			quoted = !quoted;
		if (!quoted && memcmp(line + i, tok, tl) == 0 &&
		    (i + tl == len || line[i + tl] == ' '))
			return true;
	}
	return false;
}

static bool starts(const char *p, size_t len, const char *word)
{
	size_t wl = strlen(word);
	return len >= wl && memcmp(p, word, wl) == 0;
}

int fw_state_parse(const char *save, struct fw_state *st, const char **err)
{
	int t = -1;

	memset(st, 0, sizeof(*st));
	for (const char *p = save; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		const char *l = p;

		p = nl ? nl + 1 : NULL;
		/* "[packets:bytes] -A ..." with -c */
		if (len > 0 && l[0] == '[') {
			const char *sp = memchr(l, ' ', len);
			if (!sp)
				continue;
			len -= (size_t)(sp + 1 - l);
			l = sp + 1;
		}
		/* iptables-nft: "# Table `filter' is incompatible, use 'nft'
		 * tool." for a table holding rules it cannot show */
		if (starts(l, len, "# Table `")) {
			for (int i = 0; i < RS_NTABLES; i++) {
				size_t tl = strlen(ours[i].table);
				if (len > 9 + tl && memcmp(l + 9, ours[i].table, tl) == 0 &&
				    l[9 + tl] == '\'' &&
				    memmem(l, len, "incompatible", 12))
					st->t[i].incompatible = true;
			}
			continue;
		}
		if (len > 1 && l[0] == '*') {
			t = -1;
			for (int i = 0; i < RS_NTABLES; i++)
				if (len - 1 == strlen(ours[i].table) &&
				    memcmp(l + 1, ours[i].table, len - 1) == 0)
					t = i;
			if (t >= 0)
				st->t[t].present = true;
			continue;
		}
		if (t < 0)
			continue;
		struct table_state *ts = &st->t[t];
		char decl[64], hook[64];
		snprintf(decl, sizeof(decl), ":%s ", ours[t].chain);
		snprintf(hook, sizeof(hook), "-A %s ", ours[t].hook);
		if (starts(l, len, decl)) {
			ts->chain = true;
		} else if (starts(l, len, "-A ")) {
			ts->nrules++;
			if (!starts(l, len, hook))
				continue;
			ts->hook_rules++;
			if (!jumps_to(l, len, ours[t].chain))
				continue;
			if (ts->hook_rules == 1)
				ts->first = true;
			if (ts->njumps == RULESET_MAX_JUMPS) {
				*err = "too many jumps into attache's chain";
				fw_state_free(st);
				return -1;
			}
			if (!(ts->jumps[ts->njumps] = strndup(l, len))) {
				*err = "out of memory";
				fw_state_free(st);
				return -1;
			}
			ts->njumps++;
		}
	}
	return 0;
}

void fw_state_free(struct fw_state *st)
{
	for (int t = 0; t < RS_NTABLES; t++)
		for (size_t i = 0; i < st->t[t].njumps; i++)
			free(st->t[t].jumps[i]);
	memset(st, 0, sizeof(*st));
}

bool fw_state_ours(const struct fw_state *st)
{
	for (int t = 0; t < RS_NTABLES; t++)
		if (st->t[t].chain || st->t[t].njumps)
			return true;
	return false;
}

/* ---- writing rules */

struct gen {
	struct strbuf *out;
	const char *chain;
	int rc;
};

static void rule(struct gen *g, const char *match, const char *comment,
                 const char *target)
{
	g->rc |= strbuf_add(g->out, "-A %s%s%s -m comment --comment \"attache: "
	                    "%s\" -j %s\n", g->chain, *match ? " " : "", match,
	                    comment, target);
}

static void port_match(char *buf, size_t len, const char *proto,
                       const struct portrange *r)
{
	if (r->lo == r->hi)
		snprintf(buf, len, "-p %s -m %s --dport %u", proto, proto, r->lo);
	else
		snprintf(buf, len, "-p %s -m %s --dport %u:%u", proto, proto,
		         r->lo, r->hi);
}

/* The proxy's own traffic: by uid, gid or mark. */
static void proxy_returns(struct gen *g, const struct init_opts *o)
{
	char m[64];

	if (o->have_uid) {
		snprintf(m, sizeof(m), "-m owner --uid-owner %u", o->proxy_uid);
		rule(g, m, "the proxy itself", "RETURN");
	}
	if (o->have_gid) {
		snprintf(m, sizeof(m), "-m owner --gid-owner %u", o->proxy_gid);
		rule(g, m, "the proxy's group", "RETURN");
	}
	if (o->have_mark) {
		/* its bits, whatever else a mangle rule may have set */
		snprintf(m, sizeof(m), "-m mark --mark 0x%x/0x%x", o->proxy_mark,
		         o->proxy_mark);
		rule(g, m, "the proxy's socket mark", "RETURN");
	}
}

/* --exclude-cidrs of this family, and --exclude-ports (TCP). */
static void exclusions(struct gen *g, const struct init_opts *o, int family)
{
	char m[96], c[64];

	for (size_t i = 0; i < o->n_exclude_cidrs; i++) {
		if (o->exclude_cidrs[i].family != family)
			continue;
		snprintf(m, sizeof(m), "-d %s",
		         cidr_str(&o->exclude_cidrs[i], c, sizeof(c)));
		rule(g, m, "excluded", "RETURN");
	}
	for (size_t i = 0; i < o->n_exclude_ports; i++) {
		port_match(m, sizeof(m), "tcp", &o->exclude_ports[i]);
		rule(g, m, "excluded port", "RETURN");
	}
}

/* Declares our chain: created, or flushed when it exists. */
static void chain_head(struct gen *g, enum rs_table t)
{
	g->chain = ours[t].chain;
	g->rc |= strbuf_add(g->out, "*%s\n:%s - [0:0]\n", ours[t].table,
	                    ours[t].chain);
}

static void delete_jumps(struct gen *g, const struct table_state *ts)
{
	for (size_t i = 0; i < ts->njumps; i++)
		g->rc |= strbuf_add(g->out, "-D%s\n", ts->jumps[i] + 2);
}

/* Exactly one jump to our chain, first in its built-in chain (a rule
 * before it could take traffic past the redirect or the lockdown): kept if
 * that is what is there, else whatever jumps are there are replaced
 * ("-I CHAIN" inserts first). */
static void chain_tail(struct gen *g, enum rs_table t,
                       const struct table_state *ts)
{
	if (!(ts->njumps == 1 && ts->first &&
	      strcmp(ts->jumps[0], ours[t].jump) == 0)) {
		delete_jumps(g, ts);
		g->rc |= strbuf_add(g->out, "-I%s\n", ours[t].jump + 2);
	}
	g->rc |= strbuf_add(g->out, "COMMIT\n");
}

static void remove_table(struct gen *g, enum rs_table t,
                         const struct table_state *ts)
{
	if (!ts->chain && !ts->njumps)
		return;
	g->rc |= strbuf_add(g->out, "*%s\n", ours[t].table);
	delete_jumps(g, ts);
	if (ts->chain)
		g->rc |= strbuf_add(g->out, "-F %s\n-X %s\n", ours[t].chain,
		                    ours[t].chain);
	g->rc |= strbuf_add(g->out, "COMMIT\n");
}

static void nat_rules(struct gen *g, const struct init_opts *o, int family)
{
	char m[160], c[64], to[32];
	size_t ni = 0, np = 0;

	proxy_returns(g, o);
	rule(g, "-o lo", "local traffic", "RETURN");
	rule(g, family == 6 ? "-d ::1/128" : "-d 127.0.0.0/8", "loopback",
	     "RETURN");
	exclusions(g, o, family);
	/* Inclusions: every included CIDR of this family with every included
	 * port range; none given means all. */
	for (size_t i = 0; i < o->n_include_cidrs; i++)
		ni += o->include_cidrs[i].family == family;
	if (o->n_include_cidrs && !ni)
		return;   /* only other families' CIDRs are included */
	snprintf(to, sizeof(to), "REDIRECT --to-ports %u", o->redirect_port);
	np = o->n_include_ports ? o->n_include_ports : 1;
	for (size_t i = 0; i < (o->n_include_cidrs ? o->n_include_cidrs : 1); i++) {
		const struct cidr *ic = o->n_include_cidrs ? &o->include_cidrs[i] : NULL;
		if (ic && ic->family != family)
			continue;
		for (size_t j = 0; j < np; j++) {
			size_t n = 0;
			m[0] = '\0';
			if (ic)
				n = (size_t)snprintf(m, sizeof(m), "-d %s ",
				                     cidr_str(ic, c, sizeof(c)));
			if (o->n_include_ports)
				port_match(m + n, sizeof(m) - n, "tcp",
				           &o->include_ports[j]);
			else
				snprintf(m + n, sizeof(m) - n, "-p tcp");
			rule(g, m, "to the proxy", to);
		}
	}
}

/* Outbound connections that did not go through the proxy: rejected (TCP
 * with a reset, the rest with ICMP port unreachable), but for local
 * traffic, connections redirected to the proxy, replies and connections
 * already open, DNS, and the exclusions; under
 * --lockdown, the proxy's own; on IPv6, neighbour discovery. */
static void egress_rules(struct gen *g, const struct init_opts *o, int family,
                         bool proxy_ok)
{
	rule(g, "-o lo", "local traffic", "RETURN");
	/* -o still names the device routed to before nat OUTPUT redirected
	 * the packet, so a redirect is told by its conntrack state */
	rule(g, "-m conntrack --ctstate DNAT", "redirected to the proxy",
	     "RETURN");
	rule(g, "-m conntrack --ctstate RELATED,ESTABLISHED",
	     "replies and open connections", "RETURN");
	if (proxy_ok)
		proxy_returns(g, o);
	rule(g, "-p udp -m udp --dport 53", "DNS", "RETURN");
	exclusions(g, o, family);
	if (family == 6) {
		/* and multicast listener reports (131, 143): with MLD
		 * snooping on the link, the pod's own neighbour solicitations
		 * would stop reaching it without them */
		static const char *const nd[][2] = {
			{ "router-solicitation", "neighbour discovery" },
			{ "neighbour-solicitation", "neighbour discovery" },
			{ "neighbour-advertisement", "neighbour discovery" },
			{ "131", "multicast listener report" },
			{ "143", "multicast listener report" },
		};
		char m[96];
		for (size_t i = 0; i < ATT_ARRAY_LEN(nd); i++) {
			snprintf(m, sizeof(m), "-p ipv6-icmp -m icmp6 --icmpv6-type %s",
			         nd[i][0]);
			rule(g, m, nd[i][1], "RETURN");
		}
	}
	const char *why = proxy_ok ? "lockdown: not through the proxy"
	                           : "IPv6 egress rejected (--ipv6 reject)";
	rule(g, "-p tcp", why, "REJECT --reject-with tcp-reset");
	rule(g, "", why, family == 6 ? "REJECT --reject-with icmp6-port-unreachable"
	                             : "REJECT --reject-with icmp-port-unreachable");
}

int ruleset_install(const struct init_opts *o, int family,
                    const struct fw_state *st, struct strbuf *out)
{
	struct gen g = { .out = out };
	bool reject6 = family == 6 && o->ipv6 == IPV6_REJECT;
	char target[96];

	/* nat: the redirect (none for IPv6 that is rejected) */
	if (!reject6) {
		chain_head(&g, RS_NAT);
		nat_rules(&g, o, family);
		chain_tail(&g, RS_NAT, &st->t[RS_NAT]);
	} else {
		remove_table(&g, RS_NAT, &st->t[RS_NAT]);
	}
	/* filter: --lockdown, or IPv6 rejected */
	if (o->lockdown || reject6) {
		chain_head(&g, RS_FILTER);
		egress_rules(&g, o, family, !reject6);
		chain_tail(&g, RS_FILTER, &st->t[RS_FILTER]);
	} else {
		remove_table(&g, RS_FILTER, &st->t[RS_FILTER]);
	}
	/* mangle: DNS answers to attache's snoop; ESTABLISHED only, so a
	 * datagram from port 53 that answers no query of ours is not read */
	if (o->have_dns_queue) {
		chain_head(&g, RS_MANGLE);
		snprintf(target, sizeof(target), "NFQUEUE --queue-num %u "
		         "--queue-bypass", o->dns_queue);
		rule(&g, "-p udp -m udp --sport 53 -m conntrack --ctstate "
		     "ESTABLISHED", "DNS answers to the proxy", target);
		chain_tail(&g, RS_MANGLE, &st->t[RS_MANGLE]);
	} else {
		remove_table(&g, RS_MANGLE, &st->t[RS_MANGLE]);
	}
	return g.rc ? -1 : 0;
}

int ruleset_cleanup(const struct fw_state *st, struct strbuf *out)
{
	struct gen g = { .out = out };

	g.rc |= strbuf_add(out, "%s", "");
	for (int t = 0; t < RS_NTABLES; t++)
		remove_table(&g, (enum rs_table)t, &st->t[t]);
	return g.rc ? -1 : 0;
}

/* The "*table" ... "COMMIT" section of table t in text, or NULL. */
static const char *section(const char *text, const char *table, size_t *len)
{
	size_t tl = strlen(table);

	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		if (p[0] == '*' && strncmp(p + 1, table, tl) == 0 &&
		    (p[1 + tl] == '\n' || p[1 + tl] == '\0')) {
			const char *end = strstr(p, "\nCOMMIT");
			if (!end)
				return NULL;
			end += 7;
			if (*end == '\n')
				end++;
			*len = (size_t)(end - p);
			return p;
		}
		p = nl ? nl + 1 : NULL;
	}
	return NULL;
}

bool ruleset_touches(const char *input, enum rs_table t)
{
	size_t len;

	return input && section(input, ours[t].table, &len);
}

int ruleset_rollback(const char *saved, const char *input, struct strbuf *out)
{
	int rc = strbuf_add(out, "%s", "");

	for (int t = 0; t < RS_NTABLES; t++) {
		const char *s;
		size_t len;
		if (!input || !section(input, ours[t].table, &len))
			continue;
		s = saved ? section(saved, ours[t].table, &len) : NULL;
		if (s)
			rc |= strbuf_add(out, "%.*s%s", (int)len, s,
			                 s[len - 1] == '\n' ? "" : "\n");
		else
			rc |= strbuf_add(out, "*%s\nCOMMIT\n", ours[t].table);
	}
	return rc ? -1 : 0;
}

enum init_backend ruleset_pick_backend(const bool usable[2],
                                       const bool ours_[2],
                                       const size_t nat_rules[2])
{
	enum init_backend be[2] = { BACKEND_NFT, BACKEND_LEGACY };

	for (int i = 0; i < 2; i++)
		if (usable[i] && ours_[i])
			return be[i];
	if (usable[0] && usable[1] && (nat_rules[0] || nat_rules[1]))
		return nat_rules[1] > nat_rules[0] ? BACKEND_LEGACY : BACKEND_NFT;
	if (usable[0])
		return BACKEND_NFT;
	return usable[1] ? BACKEND_LEGACY : BACKEND_AUTO;
}

/* ---- --verify's target */

static bool in_cidr(const struct cidr *c, const uint8_t *a)
{
	size_t full = c->prefix / 8;
	unsigned rest = c->prefix % 8;

	if (memcmp(c->addr, a, full) != 0)
		return false;
	return !rest || ((c->addr[full] ^ a[full]) & (0xff00u >> rest) & 0xff) == 0;
}

static bool in_ports(const struct portrange *r, size_t n, uint16_t port)
{
	for (size_t i = 0; i < n; i++)
		if (port >= r[i].lo && port <= r[i].hi)
			return true;
	return false;
}

static bool redirected(const struct init_opts *o, int family,
                       const uint8_t *a)
{
	static const uint8_t lo6[16] = { [15] = 1 };
	bool inc = o->n_include_cidrs == 0;

	if (family == 6 ? memcmp(a, lo6, 16) == 0 : a[0] == 127)
		return false;   /* the loopback rule */
	for (size_t i = 0; i < o->n_exclude_cidrs; i++)
		if (o->exclude_cidrs[i].family == family &&
		    in_cidr(&o->exclude_cidrs[i], a))
			return false;
	for (size_t i = 0; i < o->n_include_cidrs; i++)
		if (o->include_cidrs[i].family == family &&
		    in_cidr(&o->include_cidrs[i], a))
			inc = true;
	return inc;
}

int ruleset_probe_target(const struct init_opts *o, int family,
                         uint8_t addr[16], uint16_t *port)
{
	static const uint8_t doc4[4] = { 192, 0, 2, 1 };
	static const uint8_t doc6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff,
	                                  [15] = 1 };
	size_t alen = family == 6 ? 16 : 4;
	bool found;

	if (family == 6 && o->ipv6 == IPV6_REJECT)
		return -1;
	/* The documentation address; else, in order, the first address of
	 * each included network and the first one past each exclusion. */
	memcpy(addr, family == 6 ? doc6 : doc4, alen);
	found = redirected(o, family, addr);
	for (size_t i = 0; i < o->n_include_cidrs && !found; i++) {
		const struct cidr *c = &o->include_cidrs[i];
		if (c->family != family)
			continue;
		memcpy(addr, c->addr, alen);
		if (c->prefix < alen * 8)
			addr[alen - 1] |= 1;
		found = redirected(o, family, addr);
	}
	for (size_t i = 0; i < o->n_exclude_cidrs && !found; i++) {
		const struct cidr *c = &o->exclude_cidrs[i];
		if (c->family != family || c->prefix == 0)
			continue;
		/* the network's last address, plus one */
		memcpy(addr, c->addr, alen);
		for (size_t b = c->prefix; b < alen * 8; b++)
			addr[b / 8] |= (uint8_t)(0x80 >> (b % 8));
		size_t k = alen;
		while (k > 0 && ++addr[k - 1] == 0)
			k--;
		found = k > 0 && redirected(o, family, addr);
	}
	if (!found)
		return -1;
	/* port 80, else the lowest included port that is not excluded */
	for (uint32_t p = 80; p <= 65535 + 80; p++) {
		uint16_t q = (uint16_t)(p > 65535 ? p - 65535 : p);
		if ((o->n_include_ports == 0 ||
		     in_ports(o->include_ports, o->n_include_ports, q)) &&
		    !in_ports(o->exclude_ports, o->n_exclude_ports, q)) {
			*port = q;
			return 0;
		}
	}
	return -1;
}
