/* The upstream pool over real sockets (socketpairs) and a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attache/addr.h"
#include "attache/pool.h"

static int closed[64];
static const char *why[64];
static size_t nclosed;

static void on_close(struct pool_entry *e, const char *reason, void *arg)
{
	closed[nclosed] = e->fd;
	why[nclosed++] = reason;
	close(e->fd);
}

/* A connected pair: *peer is the upstream's end, the return value ours. */
static int conn(int *peer)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	*peer = sv[1];
	return sv[0];
}

static struct pool_key key(const char *addr, const void *ctx, const char *name)
{
	struct pool_key k;
	socklen_t len;

	memset(&k, 0, sizeof(k));
	assert_int_equal(addr_parse(addr, &k.addr, &len), 0);
	k.tls_ctx = ctx;
	strcpy(k.name, name);
	return k;
}

static int ctx_a, ctx_b;   /* stand-ins for two routes' TLS contexts */

static void test_key_separation(void **state)
{
	struct pool p;
	struct pool_key k = key("203.0.113.7:443", &ctx_a, "api.example");
	struct pool_key other_name = key("203.0.113.7:443", &ctx_a, "other.example");
	struct pool_key other_ctx = key("203.0.113.7:443", &ctx_b, "api.example");
	struct pool_key other_port = key("203.0.113.7:8443", &ctx_a, "api.example");
	struct pool_key plain = key("203.0.113.7:443", NULL, "api.example");
	int peer, fd = conn(&peer), got;
	struct tls *t;
	void *ref;
	unsigned n;

	nclosed = 0;
	pool_init(&p, 8, 60000, 0, on_close, NULL);
	assert_true(pool_put(&p, &k, fd, NULL, NULL, 1, 0));
	/* a connection verified for one name never serves another */
	assert_false(pool_take(&p, &other_name, 1, &got, &t, &ref, &n));
	assert_false(pool_take(&p, &other_ctx, 1, &got, &t, &ref, &n));
	assert_false(pool_take(&p, &other_port, 1, &got, &t, &ref, &n));
	assert_false(pool_take(&p, &plain, 1, &got, &t, &ref, &n));
	assert_int_equal(pool_idle_for(&p, &k), 1);
	assert_true(pool_take(&p, &k, 1, &got, &t, &ref, &n));
	assert_int_equal(got, fd);
	assert_int_equal(n, 1);
	assert_int_equal(p.stats.reused, 1);
	assert_int_equal(nclosed, 0);
	close(fd);
	close(peer);
}

static void test_most_recent_first_and_bound(void **state)
{
	struct pool p;
	struct pool_key k = key("203.0.113.7:80", NULL, "");
	int peers[3], fds[3], got;
	struct tls *t;
	void *ref;
	unsigned n;

	nclosed = 0;
	pool_init(&p, 2, 60000, 0, on_close, NULL);
	for (int i = 0; i < 3; i++) {
		fds[i] = conn(&peers[i]);
		assert_true(pool_put(&p, &k, fds[i], NULL, NULL, 1, (uint64_t)i));
	}
	/* over max_idle: the longest idle went */
	assert_int_equal(nclosed, 1);
	assert_int_equal(closed[0], fds[0]);
	assert_string_equal(why[0], "pool full");
	assert_int_equal(p.stats.evicted, 1);
	assert_true(pool_take(&p, &k, 3, &got, &t, &ref, &n));
	assert_int_equal(got, fds[2]);   /* the warmest first */
	close(got);
	pool_drain(&p);
	assert_int_equal(nclosed, 2);
	assert_string_equal(why[1], "shutdown");
	assert_int_equal(p.nidle, 0);
	for (int i = 0; i < 3; i++)
		close(peers[i]);
}

static void test_max_requests(void **state)
{
	struct pool p;
	struct pool_key k = key("203.0.113.7:80", NULL, "");
	int peer, fd = conn(&peer);

	pool_init(&p, 8, 60000, 100, on_close, NULL);
	assert_false(pool_put(&p, &k, fd, NULL, NULL, 100, 0));   /* the caller closes */
	assert_true(pool_put(&p, &k, fd, NULL, NULL, 99, 0));
	pool_drain(&p);
	close(peer);
	pool_init(&p, 0, 60000, 0, on_close, NULL);               /* pooling off */
	assert_false(pool_put(&p, &k, fd, NULL, NULL, 1, 0));
}

static void test_idle_timeout(void **state)
{
	struct pool p;
	struct pool_key k = key("203.0.113.7:80", NULL, "");
	int peers[3], fds[3], got;
	struct tls *t;
	void *ref;
	unsigned n;

	nclosed = 0;
	pool_init(&p, 8, 1000, 0, on_close, NULL);
	for (int i = 0; i < 3; i++) {
		fds[i] = conn(&peers[i]);
		assert_true(pool_put(&p, &k, fds[i], NULL, NULL, 1, (uint64_t)i * 500));
	}
	pool_expire(&p, 1499);   /* fds[0] idle since 0: 1499 >= 1000 */
	assert_int_equal(nclosed, 1);
	assert_int_equal(closed[0], fds[0]);
	assert_string_equal(why[0], "idle timeout");
	/* taking at 2000: fds[2] (idle since 1000) has just reached its limit */
	assert_true(pool_take(&p, &k, 1999, &got, &t, &ref, &n));
	assert_int_equal(got, fds[2]);
	close(got);
	assert_false(pool_take(&p, &k, 2600, &got, &t, &ref, &n));
	assert_int_equal(nclosed, 2);   /* fds[1], expired on the way */
	assert_int_equal(p.stats.expired, 2);
	for (int i = 0; i < 3; i++)
		close(peers[i]);
}

static void test_dead_connections_are_not_reused(void **state)
{
	struct pool p;
	struct pool_key k = key("203.0.113.7:80", NULL, "");
	int closed_peer, talky_peer, good_peer, got;
	int a = conn(&closed_peer), b = conn(&talky_peer), c = conn(&good_peer);
	struct tls *t;
	void *ref;
	unsigned n;

	nclosed = 0;
	pool_init(&p, 8, 60000, 0, on_close, NULL);
	assert_true(pool_put(&p, &k, c, NULL, NULL, 1, 0));
	assert_true(pool_put(&p, &k, b, NULL, NULL, 1, 0));
	assert_true(pool_put(&p, &k, a, NULL, NULL, 1, 0));
	close(closed_peer);                                   /* the upstream closed */
	assert_int_equal(write(talky_peer, "late", 4), 4);    /* or sent unasked */
	assert_true(pool_take(&p, &k, 1, &got, &t, &ref, &n));
	assert_int_equal(got, c);   /* both bad ones discarded on the way */
	assert_int_equal(nclosed, 2);
	assert_int_equal(p.stats.dead, 2);
	assert_string_equal(why[0], "closed or readable while idle");
	close(c);
	close(talky_peer);
	close(good_peer);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_separation),
		cmocka_unit_test(test_most_recent_first_and_bound),
		cmocka_unit_test(test_max_requests),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_dead_connections_are_not_reused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
