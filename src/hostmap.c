#include "attache/hostmap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static size_t alen(int family)
{
	return family == AF_INET6 ? 16 : 4;
}

/* FNV-1a over the address. */
static size_t bucket(const struct hostmap *m, int family, const uint8_t *addr)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)family;

	for (size_t i = 0; i < alen(family); i++)
		h = (h ^ addr[i]) * 1099511628211ULL;
	return (size_t)h & (m->nbuckets - 1);
}

static bool same_addr(const struct hostmap_entry *e, int family,
                      const uint8_t *addr)
{
	return e->family == family && memcmp(e->addr, addr, alen(family)) == 0;
}

bool hostmap_init(struct hostmap *m, size_t max, uint32_t ttl_floor_s,
                  uint32_t ttl_cap_s)
{
	memset(m, 0, sizeof(*m));
	m->max = max ? max : 1;
	m->ttl_floor_s = ttl_floor_s;
	m->ttl_cap_s = ttl_cap_s > ttl_floor_s ? ttl_cap_s : ttl_floor_s;
	for (m->nbuckets = 16; m->nbuckets < m->max; m->nbuckets *= 2)
		;
	TAILQ_INIT(&m->by_age);
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	return m->buckets != NULL;
}

static void unlink_entry(struct hostmap *m, struct hostmap_entry *e)
{
	struct hostmap_entry **pp = &m->buckets[bucket(m, e->family, e->addr)];

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
	TAILQ_REMOVE(&m->by_age, e, age);
	m->count--;
	free(e);
}

void hostmap_free(struct hostmap *m)
{
	struct hostmap_entry *e;

	while ((e = TAILQ_FIRST(&m->by_age)))
		unlink_entry(m, e);
	free(m->buckets);
	m->buckets = NULL;
}

/* Makes room for one: the oldest entry nobody pins goes (an expired one
 * is older than its TTL says anyway). */
static bool make_room(struct hostmap *m)
{
	struct hostmap_entry *e;

	if (m->count < m->max)
		return true;
	TAILQ_FOREACH(e, &m->by_age, age)
		if (!e->pins) {
			unlink_entry(m, e);
			return true;
		}
	m->full++;
	return false;
}

bool hostmap_add(struct hostmap *m, const char *name, int family,
                 const uint8_t *addr, uint32_t ttl_s, uint64_t now_ms)
{
	struct hostmap_entry *e;
	size_t b = bucket(m, family, addr);

	if (ttl_s < m->ttl_floor_s)
		ttl_s = m->ttl_floor_s;
	if (ttl_s > m->ttl_cap_s)
		ttl_s = m->ttl_cap_s;
	for (e = m->buckets[b]; e; e = e->next)
		if (same_addr(e, family, addr) && strcmp(e->name, name) == 0) {
			e->expires_ms = now_ms + (uint64_t)ttl_s * 1000;
			e->seen_ms = now_ms;
			TAILQ_REMOVE(&m->by_age, e, age);
			TAILQ_INSERT_TAIL(&m->by_age, e, age);
			return true;
		}
	if (strlen(name) >= DNS_NAME_MAX || !make_room(m) ||
	    !(e = calloc(1, sizeof(*e))))
		return false;
	e->family = family;
	memcpy(e->addr, addr, alen(family));
	strcpy(e->name, name);
	e->expires_ms = now_ms + (uint64_t)ttl_s * 1000;
	e->seen_ms = now_ms;
	e->next = m->buckets[b];
	m->buckets[b] = e;
	TAILQ_INSERT_TAIL(&m->by_age, e, age);
	m->count++;
	return true;
}

/* Newest resolved first. */
static int by_seen(const struct hostmap_entry *a, const struct hostmap_entry *b)
{
	return a->seen_ms > b->seen_ms ? -1 : a->seen_ms < b->seen_ms;
}

/* Family, then address bytes. */
static int by_addr(const struct hostmap_entry *a, const struct hostmap_entry *b)
{
	if (a->family != b->family)
		return a->family < b->family ? -1 : 1;
	return memcmp(a->addr, b->addr, alen(a->family));
}

/* Puts e into out[0..*n) kept sorted by cmp, up to max (past it, the
 * last in order go). */
static void insert_sorted(struct hostmap_entry **out, size_t *n, size_t max,
                          struct hostmap_entry *e,
                          int (*cmp)(const struct hostmap_entry *,
                                     const struct hostmap_entry *))
{
	size_t i = *n < max ? (*n)++ : max;

	while (i > 0 && cmp(out[i - 1], e) > 0) {
		if (i < max)
			out[i] = out[i - 1];
		i--;
	}
	if (i < max)
		out[i] = e;
}

size_t hostmap_lookup(struct hostmap *m, int family, const uint8_t *addr,
                      uint64_t now_ms, struct hostmap_entry **out,
                      size_t max)
{
	size_t n = 0;

	for (struct hostmap_entry *e = m->buckets[bucket(m, family, addr)]; e;
	     e = e->next)
		if (same_addr(e, family, addr) && e->expires_ms > now_ms)
			insert_sorted(out, &n, max, e, by_seen);
	return n;
}

size_t hostmap_by_name(struct hostmap *m, const char *name, uint64_t now_ms,
                       struct hostmap_entry **out, size_t max)
{
	size_t n = 0;
	struct hostmap_entry *e;

	TAILQ_FOREACH(e, &m->by_age, age)
		if (e->expires_ms > now_ms && strcmp(e->name, name) == 0)
			insert_sorted(out, &n, max, e, by_addr);
	return n;
}

void hostmap_pin(struct hostmap_entry *e)
{
	e->pins++;
}

void hostmap_unpin(struct hostmap *m, struct hostmap_entry *e,
                   uint64_t now_ms)
{
	if (e->pins && --e->pins == 0 && e->expires_ms <= now_ms)
		unlink_entry(m, e);
}

void hostmap_expire(struct hostmap *m, uint64_t now_ms)
{
	struct hostmap_entry *e, *next;

	for (e = TAILQ_FIRST(&m->by_age); e; e = next) {
		next = TAILQ_NEXT(e, age);
		if (!e->pins && e->expires_ms <= now_ms)
			unlink_entry(m, e);
	}
}
