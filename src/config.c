/* The YAML policy file, read with libyaml's document API and checked with
 * every error reported at FILE:LINE:COLUMN. */
#include "attache/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "attache/addr.h"
#include "attache/duration.h"
#include "attache/pin.h"
#include "attache/route.h"
#include "attache/tls.h"

#define MAX_ROUTES 4096
#define MAX_LIST 1024
#define NAME_MAX_LEN 64

/* ------------------------------------------------------------ messages */

void diag_free(struct diag *d)
{
	free(d->text);
	memset(d, 0, sizeof(*d));
}

static void diag_add(struct diag *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void diag_add(struct diag *d, const char *fmt, ...)
{
	char line[768];
	va_list ap;
	size_t k;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	k = strlen(line);
	if (d->len + k + 2 > d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 1024;
		while (cap < d->len + k + 2)
			cap *= 2;
		char *t = realloc(d->text, cap);
		if (!t)
			return;
		d->text = t;
		d->cap = cap;
	}
	memcpy(d->text + d->len, line, k);
	d->len += k;
	d->text[d->len++] = '\n';
	d->text[d->len] = '\0';
}

/* The loader's state while it walks one document. */
/* A route's tls: block while it is read. */
struct tls_spec {
	yaml_node_t *node;         /* where to report context errors */
	char *ca, *cert, *key;
	int min_version;
	bool verify;
	uint8_t (*pins)[PIN_LEN];
	size_t npins;
};

struct ld {
	const char *name;
	struct tls_spec tls;       /* of the route being read */
	yaml_document_t *doc;
	struct diag *d;
	uint8_t *seen;        /* nodes visited: an alias would visit twice */
	size_t nnodes;
	struct config *c;
	/* Routes' retry/timeout/circuit blocks, read once the top-level
	 * ones (wherever they are in the file) have given the defaults. */
	struct { yaml_node_t *n[3]; } *pol;
	size_t npol;
};

static void at(struct ld *l, const yaml_node_t *n, bool warning,
               const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void at(struct ld *l, const yaml_node_t *n, bool warning,
               const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (warning)
		l->d->warnings++;
	else
		l->d->errors++;
	diag_add(l->d, "%s:%zu:%zu: %s: %s", l->name,
	         n ? n->start_mark.line + 1 : 1, n ? n->start_mark.column + 1 : 1,
	         warning ? "warning" : "error", msg);
}

#define ERR(l, n, ...) at(l, n, false, __VA_ARGS__)
#define WARN(l, n, ...) at(l, n, true, __VA_ARGS__)

/* ------------------------------------------------------------ nodes */

static const char *node_kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_SCALAR_NODE:   return "a scalar";
	case YAML_SEQUENCE_NODE: return "a list";
	case YAML_MAPPING_NODE:  return "a mapping";
	default:                 return "nothing";
	}
}

static yaml_node_t *node(struct ld *l, int i)
{
	yaml_node_t *n = yaml_document_get_node(l->doc, i);

	if (!n)
		return NULL;
	size_t k = (size_t)(n - l->doc->nodes.start);
	if (l->seen[k]) {
		ERR(l, n, "aliases (*name) are not supported");
		return NULL;
	}
	l->seen[k] = 1;
	return n;
}

/* The scalar's text, or NULL after "expected WHAT, found ...". */
static const char *scalar(struct ld *l, const yaml_node_t *n, const char *what)
{
	if (n->type != YAML_SCALAR_NODE) {
		ERR(l, n, "expected %s, found %s", what, node_kind(n));
		return NULL;
	}
	return (const char *)n->data.scalar.value;
}

/* Calls fn for n itself (a scalar) or for each item of a list. */
typedef void (*item_fn)(struct ld *l, yaml_node_t *n, void *arg);

static void each(struct ld *l, yaml_node_t *n, const char *what, item_fn fn,
                 void *arg)
{
	if (n->type == YAML_SCALAR_NODE) {
		fn(l, n, arg);
		return;
	}
	if (n->type != YAML_SEQUENCE_NODE) {
		ERR(l, n, "expected %s or a list of them, found %s", what,
		    node_kind(n));
		return;
	}
	size_t count = (size_t)(n->data.sequence.items.top -
	                        n->data.sequence.items.start);
	if (count == 0)
		ERR(l, n, "empty list of %s", what);
	if (count > MAX_LIST) {
		ERR(l, n, "more than %d %s", MAX_LIST, what);
		return;
	}
	for (yaml_node_item_t *it = n->data.sequence.items.start;
	     it < n->data.sequence.items.top; it++) {
		yaml_node_t *item = node(l, *it);
		if (item)
			fn(l, item, arg);
	}
}

/* Edit distance, for "did you mean". */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[32];

	if (la >= 31 || lb >= 31)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t sub = prev + (a[i - 1] != b[j - 1]);
			size_t del = row[j] + 1, ins = row[j - 1] + 1;
			row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
			prev = cur;
		}
	}
	return row[lb];
}

struct key {
	const char *name;
	void (*fn)(struct ld *l, yaml_node_t *v, void *obj);
};

/* Walks a mapping: each key must be known (else an error naming the
 * nearest known one) and appear once. Returns the keys seen as a bitmask. */
static unsigned mapping(struct ld *l, yaml_node_t *n, const char *what,
                        const struct key *keys, size_t nkeys, void *obj)
{
	unsigned seen = 0;

	if (n->type != YAML_MAPPING_NODE) {
		ERR(l, n, "%s must be a mapping, found %s", what, node_kind(n));
		return 0;
	}
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
	     p < n->data.mapping.pairs.top; p++) {
		yaml_node_t *k = node(l, p->key), *v = node(l, p->value);
		const char *name;
		size_t i, best = 0, bestd = 99;

		if (!k || !v || !(name = scalar(l, k, "a key")))
			continue;
		for (i = 0; i < nkeys && strcmp(keys[i].name, name) != 0; i++) {
			size_t dd = distance(keys[i].name, name);
			if (dd < bestd) {
				bestd = dd;
				best = i;
			}
		}
		if (i == nkeys) {
			if (bestd <= 2 || (bestd <= 3 && strlen(name) > 6))
				ERR(l, k, "unknown key '%s' in %s (did you mean '%s'?)",
				    name, what, keys[best].name);
			else
				ERR(l, k, "unknown key '%s' in %s", name, what);
			continue;
		}
		if (seen & (1u << i)) {
			ERR(l, k, "duplicate key '%s' in %s", name, what);
			continue;
		}
		seen |= 1u << i;
		keys[i].fn(l, v, obj);
	}
	return seen;
}

/* ------------------------------------------------------------ values */

static int parse_u16(const char *s, uint16_t *out)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end || errno || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static bool get_port(struct ld *l, yaml_node_t *n, uint16_t *out)
{
	const char *s = scalar(l, n, "a port");

	if (!s)
		return false;
	if (parse_u16(s, out) < 0 || *out == 0) {
		ERR(l, n, "port '%s' is out of range (1-65535)", s);
		return false;
	}
	return true;
}

struct ports {
	struct port_range **v;
	size_t *n;
};

static void add_port_range(struct ld *l, yaml_node_t *n, void *arg)
{
	struct ports *ps = arg;
	const char *s = scalar(l, n, "a port or range");
	char lo[8], *dash;
	struct port_range r;

	if (!s)
		return;
	dash = strchr(s, '-');
	if (dash && (size_t)(dash - s) < sizeof(lo)) {
		memcpy(lo, s, (size_t)(dash - s));
		lo[dash - s] = '\0';
		if (parse_u16(lo, &r.lo) < 0 || parse_u16(dash + 1, &r.hi) < 0 ||
		    r.lo == 0 || r.hi == 0) {
			ERR(l, n, "port range '%s' is out of range (1-65535)", s);
			return;
		}
		if (r.lo > r.hi) {
			ERR(l, n, "port range '%s' is backwards", s);
			return;
		}
	} else if (parse_u16(s, &r.lo) < 0 || r.lo == 0) {
		ERR(l, n, "port '%s' is out of range (1-65535)", s);
		return;
	} else {
		r.hi = r.lo;
	}
	struct port_range *v = realloc(*ps->v, (*ps->n + 1) * sizeof(*v));
	if (!v) {
		ERR(l, n, "out of memory");
		return;
	}
	v[(*ps->n)++] = r;
	*ps->v = v;
}

/* Lower-cases a DNS name or "*." pattern in place; false if it is not one. */
static bool valid_hostname(char *h, bool wildcard_ok)
{
	size_t label = 0, len = strlen(h);
	char *p = h;

	if (wildcard_ok && h[0] == '*' && h[1] == '.')
		p += 2;
	if (*p == '\0' || len > 253)
		return false;
	for (; *p; p++) {
		*p = (char)tolower((unsigned char)*p);
		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
		} else if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') {
			if ((label == 0 && *p == '-') || ++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return label > 0 && p[-1] != '-';
}

static void add_host(struct ld *l, yaml_node_t *n, void *arg)
{
	struct route *r = arg;
	const char *s = scalar(l, n, "a host name");
	char *h;

	if (!s)
		return;
	if (!(h = strdup(s)) || !valid_hostname(h, true)) {
		ERR(l, n, h ? "'%s' is not a host name or '*.' pattern"
		            : "'%s': out of memory", s);
		free(h);
		return;
	}
	char **v = realloc(r->hosts, (r->nhosts + 1) * sizeof(*v));
	if (!v) {
		ERR(l, n, "out of memory");   /* never a route that takes any name */
		free(h);
		return;
	}
	v[r->nhosts++] = h;
	r->hosts = v;
}

static void add_cidr(struct ld *l, yaml_node_t *n, void *arg)
{
	struct route *r = arg;
	const char *s = scalar(l, n, "a CIDR");
	char ip[INET6_ADDRSTRLEN + 1], *slash;
	struct cidr c = { 0 };
	unsigned max;

	if (!s)
		return;
	slash = strchr(s, '/');
	size_t iplen = slash ? (size_t)(slash - s) : strlen(s);
	if (iplen >= sizeof(ip))
		goto bad;
	memcpy(ip, s, iplen);
	ip[iplen] = '\0';
	if (inet_pton(AF_INET, ip, c.addr) == 1) {
		c.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, ip, c.addr) == 1) {
		c.family = AF_INET6;
		max = 128;
	} else {
		goto bad;
	}
	c.plen = (uint8_t)max;
	if (slash) {
		char *end;
		unsigned long p;
		if (slash[1] < '0' || slash[1] > '9')
			goto bad;
		p = strtoul(slash + 1, &end, 10);
		if (*end || p > max)
			goto bad;
		c.plen = (uint8_t)p;
	}
	for (unsigned bit = c.plen; bit < max; bit++) {
		if (c.addr[bit / 8] & (0x80 >> (bit % 8))) {
			char net[INET6_ADDRSTRLEN];
			for (unsigned b = c.plen; b < max; b++)
				c.addr[b / 8] &= (uint8_t)~(0x80 >> (b % 8));
			inet_ntop(c.family, c.addr, net, sizeof(net));
			ERR(l, n, "CIDR '%s' has host bits set (did you mean "
			    "'%s/%u'?)", s, net, c.plen);
			return;
		}
	}
	struct cidr *v = realloc(r->cidrs, (r->ncidrs + 1) * sizeof(*v));
	if (!v) {
		ERR(l, n, "out of memory");
		return;
	}
	v[r->ncidrs++] = c;
	r->cidrs = v;
	return;
bad:
	ERR(l, n, "'%s' is not a CIDR (e.g. 203.0.113.0/24 or 2001:db8::/32)", s);
}

static bool get_enum(struct ld *l, yaml_node_t *n, const char *what,
                     const char *const *names, size_t count, int *out)
{
	const char *s = scalar(l, n, what);

	if (!s)
		return false;
	for (size_t i = 0; i < count; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (int)i;
			return true;
		}
	char list[128] = "";
	for (size_t i = 0; i < count; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
		         i ? (i + 1 == count ? " or " : ", ") : "", names[i]);
	ERR(l, n, "%s '%s' is not %s", what, s, list);
	return false;
}

static const char *const action_names[] = { "pass", "deny", "tls" };
static const char *const protocol_names[] = { "tcp", "http", "tls" };

const char *action_str(enum action a) { return action_names[a]; }
const char *protocol_str(enum protocol p) { return protocol_names[p]; }

/* ------------------------------------------------------------ sections */

static void k_redirect(struct ld *l, yaml_node_t *v, void *obj)
{
	(void)get_port(l, v, &l->c->redirect_port);
}

static void k_admin(struct ld *l, yaml_node_t *v, void *obj)
{
	const char *s = scalar(l, v, "an address");
	struct sockaddr_storage ss;
	socklen_t len;

	if (!s)
		return;
	if (addr_parse(s, &ss, &len) < 0) {
		ERR(l, v, "admin '%s' is not IP:PORT (e.g. 127.0.0.1:15000)", s);
		return;
	}
	if (!(l->c->admin = strdup(s)))
		ERR(l, v, "out of memory");
}

static void k_listen(struct ld *l, yaml_node_t *v, void *obj)
{
	static const struct key keys[] = {
		{ "redirect", k_redirect }, { "admin", k_admin },
	};
	mapping(l, v, "listen", keys, ATT_ARRAY_LEN(keys), NULL);
}

static void k_default(struct ld *l, yaml_node_t *v, void *obj)
{
	int a;

	if (get_enum(l, v, "default", action_names, 2, &a))
		l->c->default_action = (enum action)a;
}

static void k_http_ports(struct ld *l, yaml_node_t *v, void *obj)
{
	struct ports ps = { &l->c->http_ports, &l->c->nhttp_ports };

	each(l, v, "ports", add_port_range, &ps);
}

static void k_sniff_timeout(struct ld *l, yaml_node_t *v, void *obj)
{
	const char *s = scalar(l, v, "a duration");

	if (s && (duration_parse(s, 60000, &l->c->sniff_timeout_ms) < 0 ||
	          l->c->sniff_timeout_ms == 0))
		ERR(l, v, "sniff timeout '%s' is not a duration from 1ms to 60s", s);
}

static void k_sniff_bytes(struct ld *l, yaml_node_t *v, void *obj)
{
	const char *s = scalar(l, v, "a byte count");
	char *end;
	unsigned long n;

	if (!s)
		return;
	n = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || n < 64 || n > 32768) {
		ERR(l, v, "sniff max_bytes '%s' is not a number from 64 to 32768", s);
		return;
	}
	l->c->sniff_max_bytes = (uint32_t)n;
}

static void k_sniff(struct ld *l, yaml_node_t *v, void *obj)
{
	static const struct key keys[] = {
		{ "timeout", k_sniff_timeout }, { "max_bytes", k_sniff_bytes },
	};
	mapping(l, v, "sniff", keys, ATT_ARRAY_LEN(keys), NULL);
}

/* ------------------------------------------------------------ pool */

#define UNSET_U UINT32_MAX
#define UNSET_MS UINT64_MAX

static bool get_uint(struct ld *l, yaml_node_t *v, const char *what,
                     unsigned long hi, unsigned *out)
{
	const char *s = scalar(l, v, "a number");
	char *end;
	unsigned long n;

	if (!s)
		return false;
	errno = 0;
	n = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end || errno || n > hi) {
		ERR(l, v, "%s '%s' is not a number from 0 to %lu", what, s, hi);
		return false;
	}
	*out = (unsigned)n;
	return true;
}

static void get_ms(struct ld *l, yaml_node_t *v, const char *what,
                   uint64_t max_ms, uint64_t *out)
{
	const char *s = scalar(l, v, "a duration");

	if (s && (duration_parse(s, max_ms, out) < 0 || *out == 0))
		ERR(l, v, "%s '%s' is not a duration from 1ms to %llus", what, s,
		    (unsigned long long)(max_ms / 1000));
}

static void p_max_idle(struct ld *l, yaml_node_t *v, void *obj)
{
	(void)get_uint(l, v, "max_idle", 100000, &((struct pool_limits *)obj)->max_idle);
}

static void p_idle_timeout(struct ld *l, yaml_node_t *v, void *obj)
{
	get_ms(l, v, "idle_timeout", 3600 * 1000,
	       &((struct pool_limits *)obj)->idle_timeout_ms);
}

static void p_max_per_upstream(struct ld *l, yaml_node_t *v, void *obj)
{
	(void)get_uint(l, v, "max_per_upstream", 100000,
	               &((struct pool_limits *)obj)->max_per_upstream);
}

static void p_max_requests(struct ld *l, yaml_node_t *v, void *obj)
{
	(void)get_uint(l, v, "max_requests_per_connection", 1000000000,
	               &((struct pool_limits *)obj)->max_requests);
}

static void p_queue(struct ld *l, yaml_node_t *v, void *obj)
{
	(void)get_uint(l, v, "queue", 100000, &((struct pool_limits *)obj)->queue_max);
}

static void p_queue_timeout(struct ld *l, yaml_node_t *v, void *obj)
{
	get_ms(l, v, "queue_timeout", 600 * 1000,
	       &((struct pool_limits *)obj)->queue_timeout_ms);
}

static void pool_block(struct ld *l, yaml_node_t *v, struct pool_limits *lim)
{
	static const struct key keys[] = {
		{ "max_idle", p_max_idle }, { "idle_timeout", p_idle_timeout },
		{ "max_per_upstream", p_max_per_upstream },
		{ "max_requests_per_connection", p_max_requests },
		{ "queue", p_queue }, { "queue_timeout", p_queue_timeout },
	};
	mapping(l, v, "pool", keys, ATT_ARRAY_LEN(keys), lim);
}

static void k_pool(struct ld *l, yaml_node_t *v, void *obj)
{
	pool_block(l, v, &l->c->pool);
}

static void r_pool(struct ld *l, yaml_node_t *v, void *obj)
{
	pool_block(l, v, &((struct route *)obj)->pool);
}

static void r_via(struct ld *l, yaml_node_t *v, void *obj)
{
	static const char *const bools[] = { "false", "true" };
	int i;

	if (get_enum(l, v, "via", bools, 2, &i))
		((struct route *)obj)->via = i;
}

/* A route's pool takes what it leaves unset from the top-level one. */
static void inherit_pool(struct config *c)
{
	for (size_t i = 0; i < c->nroutes; i++) {
		struct pool_limits *p = &c->routes[i].pool;
		if (p->max_idle == UNSET_U)
			p->max_idle = c->pool.max_idle;
		if (p->idle_timeout_ms == UNSET_MS)
			p->idle_timeout_ms = c->pool.idle_timeout_ms;
		if (p->max_per_upstream == UNSET_U)
			p->max_per_upstream = c->pool.max_per_upstream;
		if (p->max_requests == UNSET_U)
			p->max_requests = c->pool.max_requests;
		if (p->queue_max == UNSET_U)
			p->queue_max = c->pool.queue_max;
		if (p->queue_timeout_ms == UNSET_MS)
			p->queue_timeout_ms = c->pool.queue_timeout_ms;
	}
}

/* ------------------------------------------------------------ dns_snoop */

static void d_queue(struct ld *l, yaml_node_t *v, void *obj)
{
	unsigned q;

	l->c->dns_queue_set = true;   /* given, even if wrong: one error */
	if (get_uint(l, v, "dns_snoop queue", 65535, &q))
		l->c->dns_queue = (uint16_t)q;
}

static void d_max(struct ld *l, yaml_node_t *v, void *obj)
{
	unsigned n;

	if (get_uint(l, v, "max_entries", 1000000, &n)) {
		if (n == 0)
			ERR(l, v, "max_entries must be at least 1");
		l->c->dns_max_entries = n;
	}
}

static void d_ttl(struct ld *l, yaml_node_t *v, const char *what,
                  uint32_t *out)
{
	uint64_t ms = (uint64_t)*out * 1000;

	get_ms(l, v, what, 24 * 3600 * 1000, &ms);
	*out = (uint32_t)((ms + 999) / 1000);
}

static void d_floor(struct ld *l, yaml_node_t *v, void *obj)
{
	d_ttl(l, v, "ttl_floor", &l->c->dns_ttl_floor_s);
}

static void d_cap(struct ld *l, yaml_node_t *v, void *obj)
{
	d_ttl(l, v, "ttl_cap", &l->c->dns_ttl_cap_s);
}

static void k_dns_snoop(struct ld *l, yaml_node_t *v, void *obj)
{
	static const struct key keys[] = {
		{ "queue", d_queue }, { "max_entries", d_max },
		{ "ttl_floor", d_floor }, { "ttl_cap", d_cap },
	};
	mapping(l, v, "dns_snoop", keys, ATT_ARRAY_LEN(keys), NULL);
	if (!l->c->dns_queue_set)
		ERR(l, v, "dns_snoop needs a queue (the NFQUEUE number "
		    "attache-init --dns-queue was given)");
	if (l->c->dns_ttl_cap_s < l->c->dns_ttl_floor_s)
		ERR(l, v, "ttl_cap is below ttl_floor");
}

/* ------------------------------------------------------------ policy */

bool policy_has_status(const uint16_t *list, unsigned n, int status)
{
	for (unsigned i = 0; i < n; i++)
		if (list[i] == status)
			return true;
	return false;
}

static void q_attempts(struct ld *l, yaml_node_t *v, void *obj)
{
	struct policy *p = obj;

	if (get_uint(l, v, "attempts", 10, &p->attempts) && p->attempts == 0)
		ERR(l, v, "attempts counts the first try too: at least 1");
}

struct statuses {
	uint16_t *v;
	unsigned *n;
	unsigned *flags;           /* NULL: statuses only */
};

static void add_status(struct ld *l, yaml_node_t *n, void *arg)
{
	struct statuses *st = arg;
	const char *s = scalar(l, n, "a status or condition");
	uint16_t code;

	if (!s)
		return;
	if (st->flags && strcmp(s, "reset") == 0) {
		*st->flags |= RETRY_ON_RESET;
		return;
	}
	if (st->flags && strcmp(s, "timeout") == 0) {
		*st->flags |= RETRY_ON_TIMEOUT;
		return;
	}
	if (parse_u16(s, &code) < 0 || code < 500 || code > 599) {
		ERR(l, n, "'%s' is not %sa 5xx status", s,
		    st->flags ? "reset, timeout or " : "");
		return;
	}
	if (*st->n == POLICY_MAX_STATUSES) {
		ERR(l, n, "more than %d statuses", POLICY_MAX_STATUSES);
		return;
	}
	st->v[(*st->n)++] = code;
}

static void q_on(struct ld *l, yaml_node_t *v, void *obj)
{
	struct policy *p = obj;
	struct statuses st = { p->retry_status, &p->nretry_status, &p->retry_on };

	/* The list replaces the default; [] is allowed: nothing but what
	 * never reached the upstream is retried. */
	p->retry_on = 0;
	p->nretry_status = 0;
	if (v->type == YAML_SEQUENCE_NODE &&
	    v->data.sequence.items.top == v->data.sequence.items.start)
		return;
	each(l, v, "retry conditions", add_status, &st);
}

static void b_base(struct ld *l, yaml_node_t *v, void *obj)
{
	get_ms(l, v, "backoff base", 60 * 1000,
	       &((struct policy *)obj)->backoff_base_ms);
}

static void b_cap(struct ld *l, yaml_node_t *v, void *obj)
{
	get_ms(l, v, "backoff cap", 600 * 1000,
	       &((struct policy *)obj)->backoff_cap_ms);
}

static void q_backoff(struct ld *l, yaml_node_t *v, void *obj)
{
	static const struct key keys[] = { { "base", b_base }, { "cap", b_cap } };

	mapping(l, v, "backoff", keys, ATT_ARRAY_LEN(keys), obj);
}

/* A duration, or "0" for none. */
static void get_ms_or_none(struct ld *l, yaml_node_t *v, const char *what,
                           uint64_t max_ms, uint64_t *out)
{
	const char *s = scalar(l, v, "a duration");

	if (s && strcmp(s, "0") == 0)
		*out = 0;
	else
		get_ms(l, v, what, max_ms, out);
}

static void q_per_try(struct ld *l, yaml_node_t *v, void *obj)
{
	get_ms_or_none(l, v, "per_try_timeout", 3600 * 1000,
	               &((struct policy *)obj)->per_try_timeout_ms);
}

/* "20%" or "0.2". */
static void g_ratio(struct ld *l, yaml_node_t *v, void *obj)
{
	const char *s = scalar(l, v, "a ratio");
	char *end;
	double r;

	if (!s)
		return;
	errno = 0;
	r = strtod(s, &end);
	if (end != s && strcmp(end, "%") == 0)
		r /= 100;
	else if (*end)
		end = NULL;
	if (*s < '0' || *s > '9' || !end || errno || r < 0 || r > 10) {
		ERR(l, v, "budget ratio '%s' is not a ratio from 0 to 10 "
		    "(e.g. 0.2 or 20%%)", s);
		return;
	}
	((struct policy *)obj)->budget_pct = (unsigned)(r * 100 + 0.5);
}

static void g_floor(struct ld *l, yaml_node_t *v, void *obj)
{
	(void)get_uint(l, v, "min_per_second", 100000,
	               &((struct policy *)obj)->budget_floor);
}

static void q_budget(struct ld *l, yaml_node_t *v, void *obj)
{
	static const struct key keys[] = {
		{ "ratio", g_ratio }, { "min_per_second", g_floor },
	};

	mapping(l, v, "budget", keys, ATT_ARRAY_LEN(keys), obj);
}

static void retry_block(struct ld *l, yaml_node_t *v, struct policy *p)
{
	static const struct key keys[] = {
		{ "attempts", q_attempts }, { "on", q_on },
		{ "backoff", q_backoff }, { "per_try_timeout", q_per_try },
		{ "budget", q_budget },
	};

	mapping(l, v, "retry", keys, ATT_ARRAY_LEN(keys), p);
	if (p->backoff_cap_ms < p->backoff_base_ms)
		ERR(l, v, "backoff cap is below its base");
}

static void o_request(struct ld *l, yaml_node_t *v, void *obj)
{
	/* 0: none, the idle timeout alone */
	get_ms_or_none(l, v, "request timeout", 24 * 3600 * 1000,
	               &((struct policy *)obj)->request_timeout_ms);
}

static void timeout_block(struct ld *l, yaml_node_t *v, struct policy *p)
{
	static const struct key keys[] = { { "request", o_request } };

	mapping(l, v, "timeout", keys, ATT_ARRAY_LEN(keys), p);
}

static void c_failures(struct ld *l, yaml_node_t *v, void *obj)
{
	(void)get_uint(l, v, "consecutive_failures", 10000,
	               &((struct policy *)obj)->circuit_failures);
}

static void c_open(struct ld *l, yaml_node_t *v, void *obj)
{
	get_ms(l, v, "open_for", 3600 * 1000,
	       &((struct policy *)obj)->circuit_open_ms);
}

static void c_open_max(struct ld *l, yaml_node_t *v, void *obj)
{
	get_ms(l, v, "open_max", 24 * 3600 * 1000,
	       &((struct policy *)obj)->circuit_open_max_ms);
}

static void c_statuses(struct ld *l, yaml_node_t *v, void *obj)
{
	struct policy *p = obj;
	struct statuses st = { p->circuit_status, &p->ncircuit_status, NULL };

	p->ncircuit_status = 0;
	if (v->type == YAML_SEQUENCE_NODE &&
	    v->data.sequence.items.top == v->data.sequence.items.start)
		return;
	each(l, v, "statuses", add_status, &st);
}

static void c_max_active(struct ld *l, yaml_node_t *v, void *obj)
{
	(void)get_uint(l, v, "max_active_requests", 1000000,
	               &((struct policy *)obj)->max_active);
}

static void circuit_block(struct ld *l, yaml_node_t *v, struct policy *p)
{
	static const struct key keys[] = {
		{ "consecutive_failures", c_failures }, { "open_for", c_open },
		{ "open_max", c_open_max }, { "statuses", c_statuses },
		{ "max_active_requests", c_max_active },
	};

	mapping(l, v, "circuit", keys, ATT_ARRAY_LEN(keys), p);
	if (p->circuit_open_max_ms < p->circuit_open_ms)
		ERR(l, v, "open_max is below open_for");
}

typedef void (*block_fn)(struct ld *l, yaml_node_t *v, struct policy *p);
static const block_fn policy_blocks[3] = {
	retry_block, timeout_block, circuit_block
};

static void k_retry(struct ld *l, yaml_node_t *v, void *obj)
{
	retry_block(l, v, &l->c->policy);
}

static void k_timeout(struct ld *l, yaml_node_t *v, void *obj)
{
	timeout_block(l, v, &l->c->policy);
}

static void k_circuit(struct ld *l, yaml_node_t *v, void *obj)
{
	circuit_block(l, v, &l->c->policy);
}

/* A route's block is kept for later (see struct ld). */
static void keep_block(struct ld *l, yaml_node_t *v, int which)
{
	size_t i = l->c->nroutes - 1;

	if (i >= l->npol) {
		void *t = realloc(l->pol, (i + 1) * sizeof(*l->pol));
		if (!t) {
			ERR(l, v, "out of memory");
			return;
		}
		l->pol = t;
		memset(&l->pol[l->npol], 0, (i + 1 - l->npol) * sizeof(*l->pol));
		l->npol = i + 1;
	}
	l->pol[i].n[which] = v;
}

static void r_retry(struct ld *l, yaml_node_t *v, void *obj)
{
	keep_block(l, v, 0);
}

static void r_timeout(struct ld *l, yaml_node_t *v, void *obj)
{
	keep_block(l, v, 1);
}

static void r_circuit(struct ld *l, yaml_node_t *v, void *obj)
{
	keep_block(l, v, 2);
}

/* Each route starts from the top-level policy; its own blocks override
 * what they name. */
static void inherit_policy(struct ld *l)
{
	struct config *c = l->c;

	for (size_t i = 0; i < c->nroutes; i++) {
		c->routes[i].policy = c->policy;
		for (int k = 0; i < l->npol && k < 3; k++)
			if (l->pol[i].n[k])
				policy_blocks[k](l, l->pol[i].n[k],
				                 &c->routes[i].policy);
	}
}

static void r_name(struct ld *l, yaml_node_t *v, void *obj)
{
	struct route *r = obj;
	const char *s = scalar(l, v, "a route name");
	size_t i;

	if (!s)
		return;
	for (i = 0; s[i] && i <= NAME_MAX_LEN; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
			break;
	if (i == 0 || i > NAME_MAX_LEN || s[i]) {
		ERR(l, v, "route name '%s' must be 1-%d letters, digits, '.', "
		    "'_' or '-'", s, NAME_MAX_LEN);
		return;
	}
	for (size_t j = 0; j + 1 < l->c->nroutes; j++)
		if (l->c->routes[j].name && strcmp(l->c->routes[j].name, s) == 0) {
			ERR(l, v, "duplicate route name '%s' (first at line %u)",
			    s, l->c->routes[j].line);
			return;
		}
	if (!(r->name = strdup(s)))
		ERR(l, v, "out of memory");
}

static void m_host(struct ld *l, yaml_node_t *v, void *obj)
{
	each(l, v, "host names", add_host, obj);
}

static void m_cidr(struct ld *l, yaml_node_t *v, void *obj)
{
	each(l, v, "CIDRs", add_cidr, obj);
}

static void m_port(struct ld *l, yaml_node_t *v, void *obj)
{
	struct route *r = obj;
	struct ports ps = { &r->ports, &r->nports };

	each(l, v, "ports", add_port_range, &ps);
}

static void r_match(struct ld *l, yaml_node_t *v, void *obj)
{
	static const struct key keys[] = {
		{ "host", m_host }, { "cidr", m_cidr }, { "port", m_port },
	};
	if (v->type == YAML_MAPPING_NODE &&
	    v->data.mapping.pairs.top == v->data.mapping.pairs.start) {
		ERR(l, v, "empty match: give host, cidr or port (a route for "
		    "everything is the 'default' setting)");
		return;
	}
	mapping(l, v, "match", keys, ATT_ARRAY_LEN(keys), obj);
}

static void r_action(struct ld *l, yaml_node_t *v, void *obj)
{
	struct route *r = obj;
	int a;

	if (!get_enum(l, v, "action", action_names, 3, &a))
		return;
	r->action = (enum action)a;
}

static void t_port(struct ld *l, yaml_node_t *v, void *obj)
{
	struct route *r = obj;

	(void)get_port(l, v, &r->tls_port);
}

static void t_file(struct ld *l, yaml_node_t *v, char **out, const char *what)
{
	const char *s = scalar(l, v, what);

	if (!s)
		return;
	if (access(s, R_OK) < 0) {
		ERR(l, v, "%s '%s': %s", what, s, strerror(errno));
		return;
	}
	if (!(*out = strdup(s)))
		ERR(l, v, "out of memory");
}

static void t_ca(struct ld *l, yaml_node_t *v, void *obj)
{
	t_file(l, v, &l->tls.ca, "CA file");
}

static void t_cert(struct ld *l, yaml_node_t *v, void *obj)
{
	t_file(l, v, &l->tls.cert, "client certificate");
}

static void t_key(struct ld *l, yaml_node_t *v, void *obj)
{
	t_file(l, v, &l->tls.key, "client key");
}

static void t_min_version(struct ld *l, yaml_node_t *v, void *obj)
{
	static const char *const versions[] = { "1.2", "1.3" };
	int i;

	if (get_enum(l, v, "min_version", versions, 2, &i))
		l->tls.min_version = 12 + i;
}

static void t_verify(struct ld *l, yaml_node_t *v, void *obj)
{
	static const char *const bools[] = { "false", "true" };
	int i;

	if (get_enum(l, v, "verify", bools, 2, &i))
		l->tls.verify = i;
}

static void add_pin(struct ld *l, yaml_node_t *n, void *arg)
{
	const char *s = scalar(l, n, "a pin");
	uint8_t pin[PIN_LEN];

	if (!s)
		return;
	if (pin_parse(s, pin) < 0) {
		ERR(l, n, "pin '%s' is not a base64 SHA-256 (44 characters, "
		    "e.g. from: openssl x509 -pubkey -noout | openssl pkey "
		    "-pubin -outform der | openssl dgst -sha256 -binary | base64)", s);
		return;
	}
	uint8_t (*v)[PIN_LEN] = realloc(l->tls.pins, (l->tls.npins + 1) * PIN_LEN);
	if (!v) {
		ERR(l, n, "out of memory");
		return;
	}
	memcpy(v[l->tls.npins++], pin, PIN_LEN);
	l->tls.pins = v;
}

static void t_pins(struct ld *l, yaml_node_t *v, void *obj)
{
	each(l, v, "pins", add_pin, NULL);
}

static void r_tls(struct ld *l, yaml_node_t *v, void *obj)
{
	static const struct key keys[] = {
		{ "port", t_port }, { "ca", t_ca }, { "client_cert", t_cert },
		{ "client_key", t_key }, { "min_version", t_min_version },
		{ "pins", t_pins }, { "verify", t_verify },
	};
	l->tls.node = v;
	mapping(l, v, "tls", keys, ATT_ARRAY_LEN(keys), obj);
}

static void tls_spec_free(struct tls_spec *t)
{
	free(t->ca);
	free(t->cert);
	free(t->key);
	free(t->pins);
	memset(t, 0, sizeof(*t));
	t->min_version = 12;
	t->verify = true;
}

/* After a route is read: its TLS context (files are loaded now, so a bad
 * CA or key is an error at the route, not a failure at the first
 * connection). */
static void finish_tls(struct ld *l, yaml_node_t *route_node, struct route *r)
{
	struct tls_spec *t = &l->tls;
	char err[256];

	if (r->action != ACTION_TLS) {
		if (t->node)
			ERR(l, t->node, "a tls block needs action: tls");
		return;
	}
	r->tls_verify = t->verify;
	if (!t->verify)
		WARN(l, t->node ? t->node : route_node, "route '%s' does not verify "
		     "its upstream (verify: false): for lab use only, anyone on the "
		     "path can read and change this traffic", r->name ? r->name : "?");
	if (l->d->errors)
		return;   /* files may be missing: do not pile errors up */
	struct tls_profile p = {
		.ca_file = t->ca, .cert_file = t->cert, .key_file = t->key,
		.min_version = t->min_version, .verify = t->verify,
		.pins = (const uint8_t (*)[PIN_LEN])t->pins, .npins = t->npins,
	};
	r->tls = tls_ctx_new(&p, err, sizeof(err));
	if (!r->tls)
		ERR(l, t->node ? t->node : route_node, "route '%s': %s",
		    r->name ? r->name : "?", err);
}

static void r_protocol(struct ld *l, yaml_node_t *v, void *obj)
{
	struct route *r = obj;
	int p;

	if (get_enum(l, v, "protocol", protocol_names, 3, &p))
		r->protocol = (enum protocol)p;
}

static void r_hostname(struct ld *l, yaml_node_t *v, void *obj)
{
	struct route *r = obj;
	const char *s = scalar(l, v, "a host name");
	char *h;

	if (!s)
		return;
	if (!(h = strdup(s)) || !valid_hostname(h, false)) {
		ERR(l, v, "hostname '%s' is not a DNS name", s);
		free(h);
		return;
	}
	r->hostname = h;
}

enum { R_NAME = 1, R_MATCH = 2, R_ACTION = 4 };

static void add_route(struct ld *l, yaml_node_t *n, void *arg)
{
	static const struct key keys[] = {
		{ "name", r_name }, { "match", r_match }, { "action", r_action },
		{ "protocol", r_protocol }, { "hostname", r_hostname },
		{ "tls", r_tls }, { "pool", r_pool }, { "via", r_via },
		{ "retry", r_retry }, { "timeout", r_timeout },
		{ "circuit", r_circuit },
	};
	struct config *c = l->c;
	struct route *r;
	unsigned seen;

	if (n->type != YAML_MAPPING_NODE) {
		ERR(l, n, "a route must be a mapping, found %s", node_kind(n));
		return;
	}
	if (c->nroutes == MAX_ROUTES) {
		ERR(l, n, "more than %d routes", MAX_ROUTES);
		return;
	}
	r = realloc(c->routes, (c->nroutes + 1) * sizeof(*r));
	if (!r) {
		ERR(l, n, "out of memory");
		return;
	}
	c->routes = r;
	r = &c->routes[c->nroutes++];
	memset(r, 0, sizeof(*r));
	r->line = (unsigned)n->start_mark.line + 1;
	r->pool = (struct pool_limits){ UNSET_U, UNSET_MS, UNSET_U, UNSET_U,
	                                UNSET_U, UNSET_MS };
	tls_spec_free(&l->tls);
	seen = mapping(l, n, "a route", keys, ATT_ARRAY_LEN(keys), r);
	finish_tls(l, n, r);
	tls_spec_free(&l->tls);
	if (!(seen & R_NAME))
		ERR(l, n, "route has no name");
	if (!(seen & R_MATCH))
		ERR(l, n, "route '%s' has no match", r->name ? r->name : "?");
	if (!(seen & R_ACTION))
		ERR(l, n, "route '%s' has no action (pass, deny or tls)",
		    r->name ? r->name : "?");
}

static void k_routes(struct ld *l, yaml_node_t *v, void *obj)
{
	if (v->type != YAML_SEQUENCE_NODE) {
		ERR(l, v, "routes must be a list, found %s", node_kind(v));
		return;
	}
	for (yaml_node_item_t *it = v->data.sequence.items.start;
	     it < v->data.sequence.items.top; it++) {
		yaml_node_t *item = node(l, *it);
		if (item)
			add_route(l, item, NULL);
	}
}

/* Warnings that need the whole config: shadowed routes, and host
 * conditions that nothing can satisfy yet. */
static void lint(struct ld *l, yaml_node_t *routes_node)
{
	struct config *c = l->c;

	for (size_t j = 0; j < c->nroutes; j++) {
		struct route *b = &c->routes[j];
		yaml_node_t pos = { 0 };
		pos.start_mark.line = b->line - 1;
		pos.start_mark.column = 2;
		for (size_t i = 0; i < j; i++)
			if (route_covers(&c->routes[i], b)) {
				WARN(l, &pos, "route '%s' can never match: route "
				     "'%s' (line %u) takes all its connections",
				     b->name ? b->name : "?",
				     c->routes[i].name ? c->routes[i].name : "?",
				     c->routes[i].line);
				break;
			}
		if (b->protocol != PROTO_TCP && b->nports == 0)
			WARN(l, &pos, "route '%s' reads a %s name on every port: "
			     "a server-first protocol would wait sniff.timeout "
			     "for a first message; give it a port",
			     b->name ? b->name : "?", protocol_str(b->protocol));
		if (b->action == ACTION_TLS && b->protocol == PROTO_TLS)
			WARN(l, &pos, "route '%s' originates TLS around traffic the "
			     "app already encrypts (protocol tls): pass it through "
			     "(action: pass) unless you mean TLS inside TLS",
			     b->name ? b->name : "?");
		if (b->nhosts && b->protocol == PROTO_TCP && !b->hostname &&
		    !c->dns_queue_set)
			WARN(l, &pos, "route '%s' matches host names but its "
			     "protocol is tcp, where attache reads no name: set "
			     "protocol http or tls, or a fixed hostname",
			     b->name ? b->name : "?");
	}
	(void)routes_node;
}

static void k_root(struct ld *l, yaml_node_t *root)
{
	static const struct key keys[] = {
		{ "listen", k_listen }, { "default", k_default },
		{ "http_ports", k_http_ports }, { "sniff", k_sniff },
		{ "dns_snoop", k_dns_snoop },
		{ "routes", k_routes }, { "pool", k_pool },
		{ "retry", k_retry }, { "timeout", k_timeout },
		{ "circuit", k_circuit },
	};
	mapping(l, root, "the configuration", keys, ATT_ARRAY_LEN(keys), NULL);
	inherit_pool(l->c);
	inherit_policy(l);
	if (l->d->errors == 0)
		lint(l, root);
}

/* ------------------------------------------------------------ lifetime */

static struct config *config_new(void)
{
	struct config *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->refs = 1;
	c->default_action = ACTION_PASS;
	c->sniff_timeout_ms = CONFIG_SNIFF_TIMEOUT_MS;
	c->sniff_max_bytes = CONFIG_SNIFF_MAX_BYTES;
	c->dns_max_entries = CONFIG_DNS_MAX_ENTRIES;
	c->dns_ttl_floor_s = CONFIG_DNS_TTL_FLOOR_S;
	c->dns_ttl_cap_s = CONFIG_DNS_TTL_CAP_S;
	c->pool = (struct pool_limits){
		.max_idle = POOL_DEFAULT_MAX_IDLE,
		.idle_timeout_ms = POOL_DEFAULT_IDLE_TIMEOUT_MS,
		.max_per_upstream = POOL_DEFAULT_MAX_PER_UPSTREAM,
		.max_requests = POOL_DEFAULT_MAX_REQUESTS,
		.queue_max = POOL_DEFAULT_QUEUE_MAX,
		.queue_timeout_ms = POOL_DEFAULT_QUEUE_TIMEOUT_MS,
	};
	c->policy = (struct policy){
		.attempts = POLICY_DEFAULT_ATTEMPTS,
		.retry_on = RETRY_ON_RESET | RETRY_ON_TIMEOUT,
		.backoff_base_ms = POLICY_DEFAULT_BACKOFF_BASE_MS,
		.backoff_cap_ms = POLICY_DEFAULT_BACKOFF_CAP_MS,
		.budget_pct = POLICY_DEFAULT_BUDGET_PCT,
		.budget_floor = POLICY_DEFAULT_BUDGET_FLOOR,
		.request_timeout_ms = POLICY_DEFAULT_REQUEST_TIMEOUT_MS,
		.circuit_failures = POLICY_DEFAULT_CIRCUIT_FAILURES,
		.circuit_open_ms = POLICY_DEFAULT_CIRCUIT_OPEN_MS,
		.circuit_open_max_ms = POLICY_DEFAULT_CIRCUIT_OPEN_MAX_MS,
		.circuit_status = { 502, 503, 504 },
		.ncircuit_status = 3,
	};
	return c;
}

struct config *config_default(void)
{
	return config_new();
}

struct config *config_ref(struct config *c)
{
	c->refs++;
	return c;
}

static void config_free(struct config *c)
{
	for (size_t i = 0; i < c->nroutes; i++) {
		struct route *r = &c->routes[i];
		free(r->name);
		free(r->cidrs);
		free(r->ports);
		for (size_t j = 0; j < r->nhosts; j++)
			free(r->hosts[j]);
		free(r->hosts);
		free(r->hostname);
		tls_ctx_free(r->tls);
	}
	free(c->routes);
	free(c->http_ports);
	free(c->admin);
	free(c->path);
	free(c);
}

void config_unref(struct config *c)
{
	if (c && --c->refs == 0)
		config_free(c);
}

struct config *config_parse(const char *name, const char *text, size_t len,
                            struct diag *d)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct config *c = config_new();
	struct ld l = { .name = name, .doc = &doc, .d = d, .c = c };
	unsigned errors0 = d->errors;

	if (!c) {
		diag_add(d, "%s: error: out of memory", name);
		d->errors++;
		return NULL;
	}
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		diag_add(d, "%s:%zu:%zu: error: YAML: %s%s%s", name,
		         parser.problem_mark.line + 1,
		         parser.problem_mark.column + 1,
		         parser.problem ? parser.problem : "syntax error",
		         parser.context ? " " : "",
		         parser.context ? parser.context : "");
		d->errors++;
		yaml_parser_delete(&parser);
		config_unref(c);
		return NULL;
	}
	l.nnodes = (size_t)(doc.nodes.top - doc.nodes.start);
	l.seen = calloc(l.nnodes + 1, 1);
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (!l.seen) {
		diag_add(d, "%s: error: out of memory", name);
		d->errors++;
	} else if (root) {   /* an empty file is the default policy */
		l.seen[0] = 1;
		k_root(&l, root);
	}
	free(l.seen);
	free(l.pol);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (d->errors != errors0) {
		config_unref(c);
		return NULL;
	}
	return c;
}

struct config *config_load(const char *path, struct diag *d)
{
	FILE *f = fopen(path, "rb");
	char *text;
	size_t n;
	struct config *c;

	if (!f) {
		diag_add(d, "%s: error: cannot open: %s", path, strerror(errno));
		d->errors++;
		return NULL;
	}
	text = malloc(CONFIG_MAX_FILE + 1);
	n = text ? fread(text, 1, CONFIG_MAX_FILE + 1, f) : 0;
	if (!text || ferror(f) || n > CONFIG_MAX_FILE) {
		diag_add(d, "%s: error: %s", path, !text ? "out of memory"
		         : ferror(f) ? "read error" : "larger than 1 MiB");
		d->errors++;
		fclose(f);
		free(text);
		return NULL;
	}
	fclose(f);
	c = config_parse(path, text, n, d);
	free(text);
	if (c && !(c->path = strdup(path))) {
		config_unref(c);
		return NULL;
	}
	return c;
}
