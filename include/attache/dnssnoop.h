/* DNS snooping: the DNS answers this netns receives are queued to
 * attache by attache-init --dns-queue (NFQUEUE, with --queue-bypass) and
 * read here, in the event loop, through libnetfilter_queue's libmnl API.
 * Every packet is accepted at once, whatever it holds: an app's DNS is
 * never dropped or held for a parse. The kernel is asked to fail open
 * (accept) when the queue is full. What the answers say goes into the
 * host map (hostmap.h). */
#ifndef ATTACHE_DNSSNOOP_H
#define ATTACHE_DNSSNOOP_H

#include <stddef.h>
#include <stdint.h>

struct dnssnoop;
struct event_base;
struct hostmap;

/* Binds NFQUEUE queue (needs CAP_NET_ADMIN) and starts reading it into
 * map. NULL on failure, with why in err. */
struct dnssnoop *dnssnoop_open(struct event_base *base, uint16_t queue,
                               struct hostmap *map, char *err, size_t errlen);
void dnssnoop_close(struct dnssnoop *s);

/* One queued packet (IPv4 or IPv6, UDP from port 53): what its answer
 * says goes into map. Returns how many addresses it added, or -1 when it
 * was not a DNS answer it could read. Pure. */
int dnssnoop_packet(struct hostmap *map, const uint8_t *pkt, size_t len,
                    uint64_t now_ms);

#endif
