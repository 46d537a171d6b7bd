#include "attache/relay.h"

#include "attache/tls.h"

#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Read again only when at least this much room is free: fewer, larger
 * reads (the le-proxy "resume at half" watermark). */
#define READ_ROOM_MIN (BUF_SIZE / 2)

uint64_t relay_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_read(struct half *h, bool on)
{
	if (on == h->rd_on)
		return;
	h->rd_on = on;
	if (!on) {
		event_del(h->rev);
		return;
	}
	event_add(h->rev, NULL);
	/* Bytes TLS already holds (read ahead during the handshake, or while
	 * reading was off) are announced by no socket event: run the read. */
	if (h->tls && tls_pending(h->tls) > 0)
		event_active(h->rev, EV_READ, 1);
}

static void set_write(struct half *h, bool on)
{
	if (on == h->wr_on)
		return;
	h->wr_on = on;
	if (on)
		event_add(h->wev, NULL);
	else
		event_del(h->wev);
}

static void end_errno(struct half *h, const char *op, int err)
{
	struct relay *r = h->r;
	const char *outcome = (err == ECONNRESET || err == EPIPE) ? "reset"
	                                                          : "error";

	snprintf(r->reason, sizeof(r->reason), "%s %s: %s", h->name, op,
	         strerror(err));
	set_read(&r->h[0], false);
	set_read(&r->h[1], false);
	set_write(&r->h[0], false);
	set_write(&r->h[1], false);
	r->end(r, outcome, r->reason, true);
}

static void end_tls(struct half *h, const char *op)
{
	struct relay *r = h->r;

	snprintf(r->reason, sizeof(r->reason), "%s TLS %s: %s", h->name, op,
	         tls_error(h->tls));
	set_read(&r->h[0], false);
	set_read(&r->h[1], false);
	set_write(&r->h[0], false);
	set_write(&r->h[1], false);
	r->end(r, "tls_failed", r->reason, true);
}

static bool want_read(const struct half *h)
{
	if (h->rd_eof)
		return false;
	if (!h->in)
		return true;
	return buf_room(h->in) + h->in->head >= READ_ROOM_MIN;
}

/* Writes what h read to its peer. Returns 0, or -1 when the relay ended
 * (the caller must return at once: the relay may be freed). */
static int flush(struct half *h)
{
	struct relay *r = h->r;
	struct half *dst = h->peer;
	struct buf *b = h->in;

	dst->wr_wants_read = false;
	while (b && buf_len(b) > 0) {
		ssize_t n;
		if (dst->tls) {
			short want = 0;
			n = tls_write(dst->tls, b->data + b->head, buf_len(b), &want);
			if (n == TLS_FAIL) {
				end_tls(dst, "write");
				return -1;
			}
			if (n == TLS_AGAIN) {
				dst->wr_wants_read = want == EV_READ;
				break;
			}
		} else {
			n = send(dst->fd, b->data + b->head, buf_len(b), MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				end_errno(dst, "write", errno);
				return -1;
			}
		}
		b->head += (uint32_t)n;
		h->nsent += (uint64_t)n;
		r->last_active_ms = relay_now_ms();
		if (buf_len(b) > 0)
			break;   /* short write: the socket is full, wait */
	}
	if (b && buf_len(b) == 0) {
		bufpool_put(r->pool, b);
		h->in = b = NULL;
	}
	set_write(dst, (b != NULL && !dst->wr_wants_read) || dst->rd_wants_write);
	set_read(h, want_read(h));
	if (dst->wr_wants_read) {
		if (dst->rd_eof) {
			/* XXX: a TLS write that needs to read (renegotiation)
			 * on a half whose peer already closed cannot finish. */
			end_errno(dst, "write", EPIPE);
			return -1;
		}
		set_read(dst, true);
	}

	if (h->rd_eof && !b && !dst->wr_shut) {
		/* Half-close carried through; the other way keeps flowing. */
		dst->wr_shut = true;
		if (dst->tls)
			tls_close_notify(dst->tls);
		if (shutdown(dst->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
			end_errno(dst, "shutdown", errno);
			return -1;
		}
	}
	if (r->h[0].wr_shut && r->h[1].wr_shut) {
		r->end(r, "ok", "closed", false);
		return -1;
	}
	return 0;
}

/* Reads once from h and passes it on. Returns -1 if the relay ended. */
static int do_read(struct half *h)
{
	struct relay *r = h->r;
	ssize_t n;

	if (h->wr_wants_read && flush(h->peer) < 0)
		return -1;   /* a TLS write on this half waited for this */
	if (!want_read(h))
		return 0;
	if (!h->in && !(h->in = bufpool_get(r->pool))) {
		end_errno(h, "buffer", ENOMEM);
		return -1;
	}
	if (buf_room(h->in) < READ_ROOM_MIN)
		buf_compact(h->in);
	if (h->tls) {
		/* Fill the buffer from what TLS already holds (records read
		 * ahead): one write downstream per wakeup, not one per record. */
		ssize_t got = 0;
		short want = 0;
		do {
			n = tls_read(h->tls, h->in->data + h->in->tail + got,
			             buf_room(h->in) - (size_t)got, &want);
			if (n > 0)
				got += n;
		} while (n > 0 && (size_t)got < buf_room(h->in) &&
		         tls_pending(h->tls) > 0);
		if (n == TLS_FAIL) {
			end_tls(h, "read");
			return -1;
		}
		if (n == TLS_AGAIN && got == 0) {
			if (want == EV_WRITE) {
				h->rd_wants_write = true;
				set_write(h, true);
			}
			return 0;
		}
		/* Data and the end of the stream can come in one read-ahead;
		 * no socket event would announce that end again. */
		if (n == 0)
			h->rd_eof = true;
		n = got;
	} else {
		n = recv(h->fd, h->in->data + h->in->tail, buf_room(h->in), 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return 0;
			end_errno(h, "read", errno);
			return -1;
		}
	}
	if (n > 0) {
		h->in->tail += (uint32_t)n;
		r->last_active_ms = relay_now_ms();
	} else {
		h->rd_eof = true;   /* plain EOF (TLS set it above) */
	}
	if (flush(h) < 0)
		return -1;
	/* wolfSSL may hold decrypted bytes that no socket event announces. */
	if (h->tls && h->rd_on && tls_pending(h->tls) > 0)
		event_active(h->rev, EV_READ, 1);
	return 0;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	(void)do_read(arg);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	struct half *dst = arg;

	if (dst->rd_wants_write) {
		dst->rd_wants_write = false;
		if (do_read(dst) < 0)
			return;
	}
	(void)flush(dst->peer);
}

int relay_init(struct relay *r, struct event_base *base, int app_fd,
               int up_fd, struct bufpool *pool, relay_end_fn end)
{
	static const char *const names[2] = { "app", "upstream" };
	const int fds[2] = { app_fd, up_fd };

	memset(r, 0, sizeof(*r));
	r->pool = pool;
	r->end = end;
	r->last_active_ms = relay_now_ms();
	for (int i = 0; i < 2; i++) {
		struct half *h = &r->h[i];
		h->fd = fds[i];
		h->name = names[i];
		h->peer = &r->h[!i];
		h->r = r;
		h->rev = event_new(base, h->fd, EV_READ | EV_PERSIST, on_read, h);
		h->wev = event_new(base, h->fd, EV_WRITE | EV_PERSIST, on_write, h);
		if (!h->rev || !h->wev) {
			relay_release(r);
			return -1;
		}
	}
	return 0;
}

void relay_set_tls(struct relay *r, int which, struct tls *t)
{
	r->h[which].tls = t;
}

void relay_preload(struct relay *r, int which, struct buf *b, bool eof)
{
	struct half *h = &r->h[which];

	h->rd_eof = eof;
	if (b && buf_len(b) > 0)
		h->in = b;
	else if (b)
		bufpool_put(r->pool, b);
}

void relay_start(struct relay *r)
{
	struct half *up = &r->h[RELAY_UP], *app = &r->h[RELAY_APP];

	if (up->in || up->rd_eof) {
		if (flush(up) < 0)
			return;   /* the relay ended */
	} else {
		set_read(up, true);
	}
	if (app->in || app->rd_eof)
		(void)flush(app);   /* may end the relay: nothing follows */
	else
		set_read(app, true);
}

void relay_release(struct relay *r)
{
	for (int i = 0; i < 2; i++) {
		struct half *h = &r->h[i];
		if (h->rev)
			event_free(h->rev);
		if (h->wev)
			event_free(h->wev);
		h->rev = h->wev = NULL;
		h->rd_on = h->wr_on = false;
		if (h->in)
			bufpool_put(r->pool, h->in);
		h->in = NULL;
	}
}
