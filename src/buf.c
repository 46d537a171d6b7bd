#include "attache/buf.h"

#include <stdlib.h>
#include <string.h>

void buf_compact(struct buf *b)
{
	size_t n = buf_len(b);

	if (b->head == 0)
		return;
	if (n)
		memmove(b->data, b->data + b->head, n);
	b->head = 0;
	b->tail = (uint32_t)n;
}

void bufpool_init(struct bufpool *p, size_t max_free)
{
	memset(p, 0, sizeof(*p));
	p->max_free = max_free;
}

struct buf *bufpool_get(struct bufpool *p)
{
	struct buf *b = p->free;

	if (b) {
		p->free = b->next;
		p->nfree--;
	} else if (!(b = malloc(sizeof(*b)))) {
		return NULL;
	}
	b->next = NULL;
	b->head = b->tail = 0;
	p->live++;
	return b;
}

void bufpool_put(struct bufpool *p, struct buf *b)
{
	p->live--;
	if (p->nfree >= p->max_free) {
		free(b);
		return;
	}
	b->next = p->free;
	p->free = b;
	p->nfree++;
}

void bufpool_drain(struct bufpool *p)
{
	while (p->free) {
		struct buf *b = p->free;
		p->free = b->next;
		free(b);
	}
	p->nfree = 0;
}
