/* The host names the apps of this netns resolved, by address: filled
 * from the DNS answers they receive (dns.h, fed by the 6/6 snoop), read
 * by name recovery after Host and SNI.
 *
 * One entry per (address, name): several names per address (shared
 * hosting, CDNs) and several addresses per name. Each lives for its TTL,
 * floored (an answer with TTL 0 must still cover the connect that follows
 * it) and capped (a name that moved is not believed for days). The table
 * is bounded: when full, the entry added longest ago goes, unless it is
 * pinned, i.e. backs an open connection; a pinned entry outlives its TTL
 * until unpinned. Pure: the caller's clock, no I/O. */
#ifndef ATTACHE_HOSTMAP_H
#define ATTACHE_HOSTMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "attache/dns.h"

struct hostmap_entry {
	TAILQ_ENTRY(hostmap_entry) age;     /* oldest first */
	struct hostmap_entry *next;         /* bucket chain */
	int family;
	uint8_t addr[16];
	uint64_t seen_ms;                   /* last resolved */
	uint64_t expires_ms;
	unsigned pins;
	char name[DNS_NAME_MAX];
};

struct hostmap {
	struct hostmap_entry **buckets;
	size_t nbuckets;                    /* a power of two */
	TAILQ_HEAD(hostmap_age, hostmap_entry) by_age;
	size_t count, max;
	uint32_t ttl_floor_s, ttl_cap_s;
	uint64_t full;                      /* answers dropped: all pinned */
};

/* false when out of memory. */
bool hostmap_init(struct hostmap *m, size_t max, uint32_t ttl_floor_s,
                  uint32_t ttl_cap_s);
void hostmap_free(struct hostmap *m);

/* name resolved to addr (family's length) for ttl seconds, now: a new
 * entry, or the old one refreshed and made the newest. false when the
 * table is full of pinned entries (counted in full) or out of memory. */
bool hostmap_add(struct hostmap *m, const char *name, int family,
                 const uint8_t *addr, uint32_t ttl_s, uint64_t now_ms);

/* The entries for addr still valid now, the most recently resolved
 * first, up to max; returns how many it gave. */
size_t hostmap_lookup(struct hostmap *m, int family, const uint8_t *addr,
                      uint64_t now_ms, struct hostmap_entry **out,
                      size_t max);

/* The entries for name still valid now, any family, up to max, in the
 * order of their addresses (family, then bytes); returns how many it
 * gave. A linear scan: it serves a retry's next address, not every
 * connection. */
size_t hostmap_by_name(struct hostmap *m, const char *name, uint64_t now_ms,
                       struct hostmap_entry **out, size_t max);

/* A connection uses e (from a lookup): it stays until unpinned. */
void hostmap_pin(struct hostmap_entry *e);
void hostmap_unpin(struct hostmap *m, struct hostmap_entry *e,
                   uint64_t now_ms);

/* Frees the expired entries nobody pins. */
void hostmap_expire(struct hostmap *m, uint64_t now_ms);

#endif
