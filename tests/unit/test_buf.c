#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "attache/buf.h"

static void test_compact(void **state)
{
	struct bufpool p;
	struct buf *b;

	bufpool_init(&p, 1);
	b = bufpool_get(&p);
	assert_non_null(b);
	assert_int_equal(buf_len(b), 0);
	assert_int_equal(buf_room(b), BUF_SIZE);
	memcpy(b->data, "0123456789", 10);
	b->tail = 10;
	b->head = 4;
	buf_compact(b);
	assert_int_equal(b->head, 0);
	assert_int_equal(buf_len(b), 6);
	assert_memory_equal(b->data, "456789", 6);
	assert_int_equal(buf_room(b), BUF_SIZE - 6);
	bufpool_put(&p, b);
	bufpool_drain(&p);
}

static void test_pool_reuse_and_bound(void **state)
{
	struct bufpool p;
	struct buf *a, *b, *c;

	bufpool_init(&p, 1);
	a = bufpool_get(&p);
	b = bufpool_get(&p);
	assert_int_equal(p.live, 2);
	a->tail = 5;
	bufpool_put(&p, a);
	bufpool_put(&p, b);   /* over max_free: freed, not kept */
	assert_int_equal(p.nfree, 1);
	assert_int_equal(p.live, 0);
	c = bufpool_get(&p);
	assert_ptr_equal(c, a);          /* reused */
	assert_int_equal(buf_len(c), 0); /* and reset */
	assert_int_equal(p.nfree, 0);
	bufpool_put(&p, c);
	bufpool_drain(&p);
	assert_int_equal(p.nfree, 0);
	assert_null(p.free);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_compact),
		cmocka_unit_test(test_pool_reuse_and_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
