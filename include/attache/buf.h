/* Fixed-size byte buffers from a small free list.
 *
 * A relay direction holds a buffer only while bytes are in flight, so idle
 * connections cost no buffer memory and a busy one at most BUF_SIZE per
 * direction: that is the bound that keeps a slow reader from growing us. */
#ifndef ATTACHE_BUF_H
#define ATTACHE_BUF_H

#include <stddef.h>
#include <stdint.h>

#define BUF_SIZE (32 * 1024)

struct buf {
	struct buf *next;        /* free-list link */
	uint32_t head, tail;     /* pending bytes are data[head, tail) */
	unsigned char data[BUF_SIZE];
};

struct bufpool {
	struct buf *free;
	size_t nfree, max_free;  /* keep at most max_free for reuse */
	size_t live;             /* handed out and not yet returned */
};

static inline size_t buf_len(const struct buf *b) { return b->tail - b->head; }
static inline size_t buf_room(const struct buf *b) { return BUF_SIZE - b->tail; }

/* Moves pending bytes to the front so the whole free space is at the end. */
void buf_compact(struct buf *b);

void bufpool_init(struct bufpool *p, size_t max_free);
/* An empty buffer, or NULL when memory is exhausted. */
struct buf *bufpool_get(struct bufpool *p);
void bufpool_put(struct bufpool *p, struct buf *b);
/* Frees the cached buffers (live ones stay with their owners). */
void bufpool_drain(struct bufpool *p);

#endif
