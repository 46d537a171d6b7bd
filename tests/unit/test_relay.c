/* The pump, over socketpairs: no network, real kernel buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "attache/relay.h"

struct fixture {
	struct event_base *base;
	struct bufpool pool;
	struct relay r;
	int app, app_px;   /* the app's end, attache's app-side end */
	int up_px, up;     /* attache's upstream end, the server's end */
	const char *outcome, *reason;
	bool ended, abort;
	char reason_copy[128];
};

static struct fixture *cur;

static void on_end(struct relay *r, const char *outcome, const char *reason,
                   bool abort)
{
	cur->ended = true;
	cur->outcome = outcome;
	cur->abort = abort;
	snprintf(cur->reason_copy, sizeof(cur->reason_copy), "%s", reason);
	cur->reason = cur->reason_copy;
	relay_release(r);
}

static void nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int a[2], u[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, u), 0);
	f->app = a[0];
	f->app_px = a[1];
	f->up_px = u[0];
	f->up = u[1];
	for (int i = 0; i < 2; i++) {
		nonblock(a[i]);
		nonblock(u[i]);
	}
	f->base = event_base_new();
	bufpool_init(&f->pool, 4);
	assert_int_equal(relay_init(&f->r, f->base, f->app_px, f->up_px,
	                            &f->pool, on_end), 0);
	cur = f;
	relay_start(&f->r);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f->ended)
		relay_release(&f->r);
	assert_int_equal(f->pool.live, 0);   /* every buffer came back */
	bufpool_drain(&f->pool);
	event_base_free(f->base);
	close(f->app);
	close(f->app_px);
	close(f->up_px);
	close(f->up);
	free(f);
	return 0;
}

static void spin(struct fixture *f, int rounds)
{
	for (int i = 0; i < rounds && !f->ended; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static size_t read_all(int fd, char *buf, size_t cap)
{
	size_t got = 0;
	ssize_t n;

	while (got < cap && (n = read(fd, buf + got, cap - got)) > 0)
		got += (size_t)n;
	return got;
}

static void test_both_ways(void **state)
{
	struct fixture *f = *state;
	char buf[64];

	assert_int_equal(write(f->app, "request", 7), 7);
	spin(f, 4);
	assert_int_equal(read_all(f->up, buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "request", 7);
	assert_int_equal(write(f->up, "response!", 9), 9);
	spin(f, 4);
	assert_int_equal(read_all(f->app, buf, sizeof(buf)), 9);
	assert_memory_equal(buf, "response!", 9);
	assert_int_equal(f->r.h[RELAY_APP].nsent, 7);
	assert_int_equal(f->r.h[RELAY_UP].nsent, 9);
	assert_false(f->ended);
	/* nothing in flight: no buffer held */
	assert_int_equal(f->pool.live, 0);
}

static void test_half_close(void **state)
{
	struct fixture *f = *state;
	char buf[64];

	assert_int_equal(write(f->app, "last words", 10), 10);
	shutdown(f->app, SHUT_WR);
	spin(f, 6);
	assert_int_equal(read_all(f->up, buf, sizeof(buf)), 10);
	assert_int_equal(read(f->up, buf, sizeof(buf)), 0);   /* EOF carried */
	assert_false(f->ended);
	/* the other direction still flows */
	assert_int_equal(write(f->up, "reply after eof", 15), 15);
	spin(f, 4);
	assert_int_equal(read_all(f->app, buf, sizeof(buf)), 15);
	assert_false(f->ended);
	shutdown(f->up, SHUT_WR);
	spin(f, 4);
	assert_int_equal(read(f->app, buf, sizeof(buf)), 0);
	assert_true(f->ended);
	assert_string_equal(f->outcome, "ok");
	assert_false(f->abort);
}

static void test_backpressure(void **state)
{
	struct fixture *f = *state;
	static unsigned char chunk[4096], got[4096];
	uint64_t sent = 0, recvd = 0;
	ssize_t n;

	/* The app does not read: the server writes until the kernel refuses,
	 * with the relay pumping all along. The relay must stall, holding at
	 * most one buffer for this direction. */
	for (int round = 0; round < 2000; round++) {
		for (size_t i = 0; i < sizeof(chunk); i++)
			chunk[i] = (unsigned char)((sent + i) * 131 % 251);
		n = write(f->up, chunk, sizeof(chunk));
		if (n > 0)
			sent += (uint64_t)n;
		spin(f, 2);
		assert_true(f->pool.live <= 1);
		if (n < 0 && round > 100)
			break;
	}
	assert_true(n < 0 && errno == EAGAIN);   /* the writer was stalled */
	assert_true(sent < 16u * 1024 * 1024);
	/* Now read everything: intact, in order. */
	for (int i = 0; i < 100000 && recvd < sent; i++) {
		n = read(f->app, got, sizeof(got));
		if (n > 0) {
			for (ssize_t j = 0; j < n; j++)
				assert_int_equal(got[j],
				                 (unsigned char)((recvd + (uint64_t)j) * 131 % 251));
			recvd += (uint64_t)n;
		}
		spin(f, 1);
	}
	assert_int_equal(recvd, sent);
	assert_int_equal(f->r.h[RELAY_UP].nsent, sent);
}

static void test_peer_gone(void **state)
{
	struct fixture *f = *state;

	close(f->up);
	f->up = -1;
	spin(f, 4);   /* upstream EOF: carried to the app as a half-close */
	assert_false(f->ended);
	assert_int_equal(write(f->app, "late", 4), 4);
	spin(f, 4);
	assert_true(f->ended);
	assert_string_equal(f->outcome, "reset");
	assert_string_equal(f->reason, "upstream write: Broken pipe");
	assert_true(f->abort);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_gone, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
