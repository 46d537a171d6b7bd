#include "attache/pool.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "attache/addr.h"
#include "attache/tls.h"

void pool_init(struct pool *p, size_t max_idle, uint64_t idle_timeout_ms,
               unsigned max_requests, pool_close_fn close, void *arg)
{
	memset(p, 0, sizeof(*p));
	TAILQ_INIT(&p->idle);
	p->max_idle = max_idle;
	p->idle_timeout_ms = idle_timeout_ms;
	p->max_requests = max_requests;
	p->close = close;
	p->arg = arg;
}

bool pool_key_equal(const struct pool_key *a, const struct pool_key *b)
{
	/* addr_equal ignores the IPv6 scope: a link-local fe80::1 on one
	 * link is not the same upstream as on another. */
	if (a->addr.ss_family == AF_INET6 &&
	    ((const struct sockaddr_in6 *)&a->addr)->sin6_scope_id !=
	    ((const struct sockaddr_in6 *)&b->addr)->sin6_scope_id)
		return false;
	return a->tls_ctx == b->tls_ctx &&
	       addr_equal((const struct sockaddr *)&a->addr,
	                  (const struct sockaddr *)&b->addr) &&
	       strcmp(a->name, b->name) == 0;
}

static void drop(struct pool *p, struct pool_entry *e, const char *why)
{
	TAILQ_REMOVE(&p->idle, e, link);
	p->nidle--;
	p->close(e, why, p->arg);
	free(e);
}

struct pool_entry *pool_put(struct pool *p, const struct pool_key *k, int fd,
                            struct tls *tls, void *ref, unsigned requests,
                            uint64_t now_ms)
{
	struct pool_entry *e;

	if (p->max_idle == 0 || (p->max_requests && requests >= p->max_requests))
		return NULL;
	if (!(e = calloc(1, sizeof(*e))))
		return NULL;
	e->key = *k;
	e->fd = fd;
	e->tls = tls;
	e->ref = ref;
	e->requests = requests;
	e->idle_since_ms = now_ms;
	TAILQ_INSERT_HEAD(&p->idle, e, link);
	p->nidle++;
	while (p->nidle > p->max_idle) {
		p->stats.evicted++;
		drop(p, TAILQ_LAST(&p->idle, pool_list), "pool full");
	}
	return e;   /* the newest is never the one evicted */
}

void pool_remove(struct pool *p, struct pool_entry *e, const char *why)
{
	p->stats.dead++;
	drop(p, e, why);
}

/* Is an idle connection still fit for a request? Its peer must not have
 * closed it or sent anything: a byte now would be a late or stray reply
 * (or a close_notify), and a request sent after it would be misframed. */
bool pool_peek_healthy(const struct pool_entry *e)
{
	char b;
	ssize_t n;

	if (e->tls && tls_pending(e->tls) > 0)
		return false;
	n = recv(e->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

bool pool_take(struct pool *p, const struct pool_key *k, uint64_t now_ms,
               int *fd, struct tls **tls, void **ref, unsigned *requests)
{
	struct pool_entry *e, *next;

	for (e = TAILQ_FIRST(&p->idle); e; e = next) {
		next = TAILQ_NEXT(e, link);
		if (!pool_key_equal(&e->key, k))
			continue;
		if (now_ms - e->idle_since_ms >= p->idle_timeout_ms) {
			p->stats.expired++;
			drop(p, e, "idle timeout");
			continue;
		}
		if (!(p->check ? p->check(e, now_ms, p->arg) : pool_peek_healthy(e))) {
			p->stats.dead++;
			drop(p, e, "closed or readable while idle");
			continue;
		}
		*fd = e->fd;
		*tls = e->tls;
		*ref = e->ref;
		*requests = e->requests;
		TAILQ_REMOVE(&p->idle, e, link);
		p->nidle--;
		free(e);
		p->stats.reused++;
		return true;
	}
	return false;
}

void pool_expire(struct pool *p, uint64_t now_ms)
{
	struct pool_entry *e, *prev;

	/* Oldest last: walk from the tail while entries are past their time. */
	for (e = TAILQ_LAST(&p->idle, pool_list); e; e = prev) {
		prev = TAILQ_PREV(e, pool_list, link);
		if (now_ms - e->idle_since_ms < p->idle_timeout_ms)
			break;
		p->stats.expired++;
		drop(p, e, "idle timeout");
	}
}

void pool_drain(struct pool *p)
{
	while (!TAILQ_EMPTY(&p->idle))
		drop(p, TAILQ_FIRST(&p->idle), "shutdown");
}

size_t pool_idle_for(const struct pool *p, const struct pool_key *k)
{
	const struct pool_entry *e;
	size_t n = 0;

	TAILQ_FOREACH(e, &p->idle, link)
		if (pool_key_equal(&e->key, k))
			n++;
	return n;
}
