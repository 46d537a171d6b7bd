#include "attache/initopts.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
"Usage: attache-init --proxy-uid USER [OPTION]...\n"
"       attache-init --cleanup [OPTION]...\n"
"Installs the rules that send this network namespace's outbound TCP to\n"
"attache's redirect port: for IPv4 and, when the netns has it, IPv6; in\n"
"chains of their own (nat " RULESET_NAT_CHAIN ", filter " RULESET_FILTER_CHAIN
", mangle " RULESET_MANGLE_CHAIN "),\n"
"each family applied with one iptables-restore --noflush. If anything\n"
"fails, every family is put back as it was. Running it again leaves the same\n"
"rules. Needs CAP_NET_ADMIN (and CAP_NET_RAW for iptables-legacy; CAP_SETUID\n"
"and CAP_SETGID for --verify).\n"
"\n"
"The proxy's own connections are never redirected; say how to tell them\n"
"(at least one of):\n"
"      --proxy-uid USER     uid (name or number) attache runs as\n"
"      --proxy-gid GROUP    gid (name or number) attache runs as\n"
"      --proxy-mark MARK    socket mark attache sets on its upstream\n"
"                           connections (attache --mark MARK; needs\n"
"                           CAP_NET_ADMIN there)\n"
"What is redirected:\n"
"      --redirect-port PORT attache's redirect port (default 15001)\n"
"      --include-cidrs LIST only these destinations (default all)\n"
"      --include-ports LIST only these TCP ports (default all)\n"
"      --exclude-cidrs LIST never these destinations\n"
"      --exclude-ports LIST never these TCP ports; exclusions win\n"
"      --ipv6 MODE          redirect|reject: IPv6 egress goes through attache\n"
"                           (default), or is rejected\n"
"Beyond the redirect:\n"
"      --lockdown           reject every other new outbound connection:\n"
"                           UDP but DNS (so QUIC cannot skip the policy),\n"
"                           TCP that was not redirected, ICMP; the proxy's\n"
"                           own and the exclusions still go\n"
"      --dns-queue N        DNS answers (UDP from port 53) to NFQUEUE N, for\n"
"                           attache's dns_snoop, with --queue-bypass: DNS\n"
"                           keeps working while attache is not running\n"
"How:\n"
"      --backend NAME       auto|nft|legacy: iptables back end (default auto:\n"
"                           the one that already holds rules in this netns,\n"
"                           else nft)\n"
"      --verify             after installing, prove that a connection from\n"
"                           another uid is redirected (exit 3 if not)\n"
"      --dry-run            print the exact iptables-restore input, apply nothing\n"
"      --cleanup            remove every rule and chain attache-init added,\n"
"                           and nothing else, in both families and back ends\n"
"                           (the options that shape rules are ignored)\n"
"  -h, --help               show this help and exit\n"
"      --version            show the version and exit\n"
"\n"
"LIST is comma-separated: CIDRs (10.0.0.0/8, fd00::/8, or one address) or\n"
"ports (443, 8000-8100). Every option can also be given as an environment\n"
"variable ATTACHE_INIT_<OPTION>, e.g. ATTACHE_INIT_PROXY_UID=1337,\n"
"ATTACHE_INIT_LOCKDOWN=1; the command line wins.\n"
"Loopback traffic (-o lo, 127.0.0.0/8, ::1) is never redirected.\n"
"Exit status: 0 applied (or nothing to do), 1 could not apply (the rules in\n"
"place before are left as they were), 2 bad usage, 3 --verify failed (the\n"
"rules stay installed).\n";

enum opt_id {
	O_UID = 256, O_GID, O_MARK, O_PORT, O_INC_CIDRS, O_INC_PORTS,
	O_EXC_CIDRS, O_EXC_PORTS, O_IPV6, O_LOCKDOWN, O_DNS_QUEUE, O_BACKEND,
	O_VERIFY, O_DRY, O_CLEANUP, O_VERSION, O_END
};

static const struct option longopts[] = {
	{ "proxy-uid", required_argument, NULL, O_UID },
	{ "proxy-gid", required_argument, NULL, O_GID },
	{ "proxy-mark", required_argument, NULL, O_MARK },
	{ "redirect-port", required_argument, NULL, O_PORT },
	{ "include-cidrs", required_argument, NULL, O_INC_CIDRS },
	{ "include-ports", required_argument, NULL, O_INC_PORTS },
	{ "exclude-cidrs", required_argument, NULL, O_EXC_CIDRS },
	{ "exclude-ports", required_argument, NULL, O_EXC_PORTS },
	{ "ipv6", required_argument, NULL, O_IPV6 },
	{ "lockdown", no_argument, NULL, O_LOCKDOWN },
	{ "dns-queue", required_argument, NULL, O_DNS_QUEUE },
	{ "backend", required_argument, NULL, O_BACKEND },
	{ "verify", no_argument, NULL, O_VERIFY },
	{ "dry-run", no_argument, NULL, O_DRY },
	{ "cleanup", no_argument, NULL, O_CLEANUP },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, O_VERSION },
	{ NULL, 0, NULL, 0 },
};

static int parse_id(const char *s, bool group, uint32_t *id)
{
	char *end;
	unsigned long v;

	if (*s >= '0' && *s <= '9') {
		v = strtoul(s, &end, 10);
		if (*end != '\0' || v >= 0xffffffffUL)
			return -1;
		*id = (uint32_t)v;
		return 0;
	}
	if (group) {
		struct group *gr = getgrnam(s);
		if (!gr)
			return -1;
		*id = (uint32_t)gr->gr_gid;
	} else {
		struct passwd *pw = getpwnam(s);
		if (!pw)
			return -1;
		*id = (uint32_t)pw->pw_uid;
	}
	return 0;
}

static int parse_num(const char *s, int base, unsigned long min,
                     unsigned long max, unsigned long *v)
{
	char *end;

	if (!*s || *s == '-' || isspace((unsigned char)*s))
		return -1;
	*v = strtoul(s, &end, base);
	return *end == '\0' && *v >= min && *v <= max ? 0 : -1;
}

int init_parse_cidr(const char *s, struct cidr *c, char *why, size_t len)
{
	char a[INET6_ADDRSTRLEN + 8];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long prefix;

	memset(c, 0, sizeof(*c));
	if (alen == 0 || alen >= INET6_ADDRSTRLEN) {
		snprintf(why, len, "'%s' is not an address or CIDR", s);
		return -1;
	}
	memcpy(a, s, alen);
	a[alen] = '\0';
	c->family = strchr(a, ':') ? 6 : 4;
	if (inet_pton(c->family == 6 ? AF_INET6 : AF_INET, a, c->addr) != 1) {
		snprintf(why, len, "'%s' is not an address or CIDR", s);
		return -1;
	}
	prefix = c->family == 6 ? 128 : 32;
	if (slash && parse_num(slash + 1, 10, 0, prefix, &prefix) < 0) {
		snprintf(why, len, "'%s': the prefix length is not 0-%u", s,
		         c->family == 6 ? 128 : 32);
		return -1;
	}
	c->prefix = (uint8_t)prefix;
	/* host bits set: say what was probably meant rather than guess */
	struct cidr net = *c;
	size_t bytes = c->family == 6 ? 16 : 4;
	for (size_t i = 0; i < bytes; i++) {
		unsigned keep = prefix >= (i + 1) * 8 ? 8
		              : prefix > i * 8 ? (unsigned)(prefix - i * 8) : 0;
		net.addr[i] &= (uint8_t)(0xff00u >> keep);
	}
	if (memcmp(net.addr, c->addr, bytes) != 0) {
		char n[64];
		snprintf(why, len, "'%s' has host bits set (did you mean %s?)", s,
		         cidr_str(&net, n, sizeof(n)));
		return -1;
	}
	return 0;
}

int init_parse_ports(const char *s, struct portrange *r, char *why, size_t len)
{
	char lo[8];
	const char *dash = strpbrk(s, "-:");
	unsigned long a, b;
	size_t n = dash ? (size_t)(dash - s) : strlen(s);

	if (n == 0 || n >= sizeof(lo))
		goto bad;
	memcpy(lo, s, n);
	lo[n] = '\0';
	if (parse_num(lo, 10, 1, 65535, &a) < 0)
		goto bad;
	b = a;
	if (dash && parse_num(dash + 1, 10, 1, 65535, &b) < 0)
		goto bad;
	if (b < a) {
		snprintf(why, len, "'%s': the range runs backwards", s);
		return -1;
	}
	r->lo = (uint16_t)a;
	r->hi = (uint16_t)b;
	return 0;
bad:
	snprintf(why, len, "'%s' is not a port or range (1-65535, e.g. 8000-8100)",
	         s);
	return -1;
}

/* Splits a comma (or space) separated list; each item through one of the
 * parsers above, appended to arr. */
static int parse_list(const char *s, bool cidrs, void *arr, size_t *n,
                      char *why, size_t len)
{
	size_t start = *n;
	char item[128];

	while (*s) {
		size_t l = strcspn(s, ", \t\n");
		if (l == 0) {
			s++;
			continue;
		}
		if (l >= sizeof(item)) {
			snprintf(why, len, "'%.20s...' is too long", s);
			return -1;
		}
		if (*n == INIT_MAX_LIST) {
			snprintf(why, len, "more than %d items", INIT_MAX_LIST);
			return -1;
		}
		memcpy(item, s, l);
		item[l] = '\0';
		if (cidrs ? init_parse_cidr(item, (struct cidr *)arr + *n, why, len)
		          : init_parse_ports(item, (struct portrange *)arr + *n,
		                             why, len))
			return -1;
		(*n)++;
		s += l;
	}
	if (*n == start) {
		snprintf(why, len, "the list is empty");
		return -1;
	}
	return 0;
}

static int parse_bool(const char *s, bool *v)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off", "" };

	for (size_t i = 0; i < ATT_ARRAY_LEN(yes); i++)
		if (strcasecmp(s, yes[i]) == 0)
			return *v = true, 0;
	for (size_t i = 0; i < ATT_ARRAY_LEN(no); i++)
		if (strcasecmp(s, no[i]) == 0)
			return *v = false, 0;
	return -1;
}

/* One option's value into o. val is NULL for a flag given on the command
 * line; from the environment a flag has a yes/no value. Returns 0 or -1
 * with why set. */
static int apply(struct init_opts *o, int id, const char *val, char *why,
                 size_t len)
{
	unsigned long v;
	bool flag = true;

	switch (id) {
	case O_LOCKDOWN: case O_VERIFY: case O_DRY: case O_CLEANUP:
		if (val && parse_bool(val, &flag) < 0) {
			snprintf(why, len, "'%s' is not 1/true/yes or 0/false/no", val);
			return -1;
		}
		*(id == O_LOCKDOWN ? &o->lockdown : id == O_VERIFY ? &o->verify :
		  id == O_DRY ? &o->dry_run : &o->cleanup) = flag;
		return 0;
	case O_UID:
	case O_GID:
		if (parse_id(val, id == O_GID, id == O_UID ? &o->proxy_uid
		                                           : &o->proxy_gid) < 0) {
			snprintf(why, len, "'%s' is neither a number nor a known %s",
			         val, id == O_UID ? "user" : "group");
			return -1;
		}
		*(id == O_UID ? &o->have_uid : &o->have_gid) = true;
		return 0;
	case O_MARK:
		if (parse_num(val, 0, 1, 0xffffffffUL, &v) < 0) {
			snprintf(why, len, "'%s' is not a mark (1-0xffffffff)", val);
			return -1;
		}
		o->proxy_mark = (uint32_t)v;
		o->have_mark = true;
		return 0;
	case O_PORT:
		if (parse_num(val, 10, 1, 65535, &v) < 0) {
			snprintf(why, len, "'%s' is not a port (1-65535)", val);
			return -1;
		}
		o->redirect_port = (uint16_t)v;
		return 0;
	case O_DNS_QUEUE:
		if (parse_num(val, 10, 0, 65535, &v) < 0) {
			snprintf(why, len, "'%s' is not a queue number (0-65535)", val);
			return -1;
		}
		o->dns_queue = (uint16_t)v;
		o->have_dns_queue = true;
		return 0;
	case O_INC_CIDRS:
		return parse_list(val, true, o->include_cidrs, &o->n_include_cidrs,
		                  why, len);
	case O_EXC_CIDRS:
		return parse_list(val, true, o->exclude_cidrs, &o->n_exclude_cidrs,
		                  why, len);
	case O_INC_PORTS:
		return parse_list(val, false, o->include_ports, &o->n_include_ports,
		                  why, len);
	case O_EXC_PORTS:
		return parse_list(val, false, o->exclude_ports, &o->n_exclude_ports,
		                  why, len);
	case O_IPV6:
		if (strcmp(val, "redirect") == 0)
			o->ipv6 = IPV6_REDIRECT;
		else if (strcmp(val, "reject") == 0)
			o->ipv6 = IPV6_REJECT;
		else {
			snprintf(why, len, "'%s' is not redirect or reject", val);
			return -1;
		}
		return 0;
	case O_BACKEND:
		if (strcmp(val, "auto") == 0)
			o->backend = BACKEND_AUTO;
		else if (strcmp(val, "nft") == 0)
			o->backend = BACKEND_NFT;
		else if (strcmp(val, "legacy") == 0)
			o->backend = BACKEND_LEGACY;
		else {
			snprintf(why, len, "'%s' is not auto, nft or legacy", val);
			return -1;
		}
		return 0;
	}
	snprintf(why, len, "not an option");
	return -1;
}

/* "proxy-uid" -> "ATTACHE_INIT_PROXY_UID" */
static void env_name(const char *opt, char *buf, size_t len)
{
	size_t n = (size_t)snprintf(buf, len, "ATTACHE_INIT_");

	for (; *opt && n + 1 < len; opt++)
		buf[n++] = *opt == '-' ? '_' : (char)toupper((unsigned char)*opt);
	buf[n] = '\0';
}

static const char *env_get(char **envp, const char *name)
{
	size_t nl = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, nl) == 0 && (*envp)[nl] == '=')
			return *envp + nl + 1;
	return NULL;
}

int init_opts_parse(struct init_opts *o, int argc, char **argv, char **envp,
                    FILE *out, FILE *err)
{
	bool from_cli[O_END - O_UID] = { false };
	char why[160], name[48];
	int c;

	memset(o, 0, sizeof(*o));
	o->redirect_port = 15001;
	o->ipv6 = IPV6_REDIRECT;
	o->backend = BACKEND_AUTO;

	for (const struct option *lo = longopts; lo->name; lo++) {
		const char *val;
		if (lo->val < O_UID || lo->val == O_VERSION)
			continue;
		env_name(lo->name, name, sizeof(name));
		if (!(val = env_get(envp, name)))
			continue;
		if (apply(o, lo->val, val, why, sizeof(why)) < 0) {
			fprintf(err, "attache-init: %s: %s\n", name, why);
			goto usage;
		}
	}

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage, out);
			return 1;
		case O_VERSION:
			fprintf(out, "attache-init %s\n", ATTACHE_VERSION);
			return 1;
		case ':':
			fprintf(err, "attache-init: %s needs a value\n",
			        argv[optind - 1]);
			goto usage;
		case '?':
			fprintf(err, "attache-init: unknown option '%s'\n",
			        argv[optind - 1]);
			goto usage;
		}
		/* A list on the command line replaces the environment's; given
		 * twice there, the second adds to the first. */
		if (!from_cli[c - O_UID]) {
			from_cli[c - O_UID] = true;
			if (c == O_INC_CIDRS)
				o->n_include_cidrs = 0;
			else if (c == O_EXC_CIDRS)
				o->n_exclude_cidrs = 0;
			else if (c == O_INC_PORTS)
				o->n_include_ports = 0;
			else if (c == O_EXC_PORTS)
				o->n_exclude_ports = 0;
		}
		if (apply(o, c, optarg, why, sizeof(why)) < 0) {
			for (const struct option *lo = longopts; lo->name; lo++)
				if (lo->val == c)
					fprintf(err, "attache-init: --%s: %s\n",
					        lo->name, why);
			goto usage;
		}
	}
	if (optind < argc) {
		fprintf(err, "attache-init: unexpected argument '%s'\n",
		        argv[optind]);
		goto usage;
	}
	if (!o->cleanup && !o->have_uid && !o->have_gid && !o->have_mark) {
		fprintf(err, "attache-init: --proxy-uid, --proxy-gid or --proxy-mark "
		        "is required: without one, attache's own connections would "
		        "be redirected back to it\n");
		goto usage;
	}
	return 0;
usage:
	fprintf(err, "Try 'attache-init --help'.\n");
	return -1;
}
