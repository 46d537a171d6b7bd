#include "attache/ruleset.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JUMP "-A OUTPUT -p tcp -j " RULESET_CHAIN

static int sb_add(struct strbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int sb_add(struct strbuf *b, const char *fmt, ...)
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

/* "-j ATTACHE_OUTPUT" as the last token, or followed by more options. */
static bool jumps_to_us(const char *line, size_t len)
{
	static const char tok[] = " -j " RULESET_CHAIN;
	const size_t tl = sizeof(tok) - 1;

	for (size_t i = 0; i + tl <= len; i++)
		if (memcmp(line + i, tok, tl) == 0 &&
		    (i + tl == len || line[i + tl] == ' '))
			return true;
	return false;
}

int nat_state_parse(const char *save, struct nat_state *st, const char **err)
{
	bool in_nat = false;

	memset(st, 0, sizeof(*st));
	for (const char *p = save; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		if (len == 4 && memcmp(p, "*nat", 4) == 0) {
			in_nat = true;
		} else if (len > 0 && p[0] == '*') {
			in_nat = false;
		} else if (in_nat && len > sizeof(RULESET_CHAIN) &&
		           p[0] == ':' &&
		           memcmp(p + 1, RULESET_CHAIN " ",
		                  sizeof(RULESET_CHAIN)) == 0) {
			st->chain = true;
		} else if (in_nat && len > 10 && memcmp(p, "-A OUTPUT ", 10) == 0 &&
		           jumps_to_us(p, len)) {
			if (st->njumps == RULESET_MAX_JUMPS) {
				*err = "too many jumps into " RULESET_CHAIN
				       " in nat OUTPUT";
				nat_state_free(st);
				return -1;
			}
			if (!(st->jumps[st->njumps] = strndup(p, len))) {
				*err = "out of memory";
				nat_state_free(st);
				return -1;
			}
			st->njumps++;
		}
		p = nl ? nl + 1 : NULL;
	}
	return 0;
}

void nat_state_free(struct nat_state *st)
{
	for (size_t i = 0; i < st->njumps; i++)
		free(st->jumps[i]);
	memset(st, 0, sizeof(*st));
}

static int delete_jumps(const struct nat_state *st, struct strbuf *out)
{
	for (size_t i = 0; i < st->njumps; i++)
		if (sb_add(out, "-D%s\n", st->jumps[i] + 2) < 0)
			return -1;
	return 0;
}

int ruleset_install(const struct init_opts *o, int family,
                    const struct nat_state *st, struct strbuf *out)
{
	const char *lo = family == 6 ? "::1/128" : "127.0.0.0/8";
	const char *c = RULESET_CHAIN;
	int rc = 0;

	rc |= sb_add(out, "*nat\n:%s - [0:0]\n", c);
	if (o->have_uid)
		rc |= sb_add(out, "-A %s -m owner --uid-owner %u -m comment "
		             "--comment \"attache: the proxy itself\" "
		             "-j RETURN\n", c, o->proxy_uid);
	rc |= sb_add(out, "-A %s -o lo -m comment --comment \"attache: "
	             "local traffic\" -j RETURN\n", c);
	rc |= sb_add(out, "-A %s -d %s -m comment --comment \"attache: "
	             "loopback\" -j RETURN\n", c, lo);
	rc |= sb_add(out, "-A %s -p tcp -m comment --comment \"attache: to "
	             "the proxy\" -j REDIRECT --to-ports %u\n", c,
	             o->redirect_port);
	/* Exactly one jump, first in OUTPUT: keep it if that is what is
	 * there, otherwise replace whatever jumps a past run left. */
	if (!(st->njumps == 1 && strcmp(st->jumps[0], JUMP) == 0)) {
		rc |= delete_jumps(st, out);
		rc |= sb_add(out, "-I OUTPUT 1 -p tcp -j %s\n", c);
	}
	rc |= sb_add(out, "COMMIT\n");
	return rc ? -1 : 0;
}

int ruleset_cleanup(const struct nat_state *st, struct strbuf *out)
{
	int rc = 0;

	if (!st->chain && st->njumps == 0)
		return sb_add(out, "%s", "");
	rc |= sb_add(out, "*nat\n");
	rc |= delete_jumps(st, out);
	if (st->chain)
		rc |= sb_add(out, "-F %s\n-X %s\n", RULESET_CHAIN, RULESET_CHAIN);
	rc |= sb_add(out, "COMMIT\n");
	return rc ? -1 : 0;
}
