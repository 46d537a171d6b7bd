/* The byte pump between two sockets (relayd's session: two symmetric
 * halves that point at each other, so the pump is written once).
 *
 * Each half reads its socket into at most one BUF_SIZE buffer and writes
 * it to the peer's socket at once (no wait for a writable event unless the
 * kernel pushes back). A full buffer stops reading its side until the peer
 * drains it: a slow reader stalls its writer and memory never grows. EOF on
 * one side becomes shutdown(SHUT_WR) on the other once the buffer drained,
 * while the other direction keeps flowing. */
#ifndef ATTACHE_RELAY_H
#define ATTACHE_RELAY_H

#include <stdbool.h>
#include <stdint.h>

#include "attache/buf.h"
#include "attache/common.h"

struct event;
struct event_base;
struct relay;
struct tls;

struct half {
	int fd;
	const char *name;        /* "app" or "upstream", for reasons */
	struct event *rev, *wev;
	struct buf *in;          /* read from fd, not yet written to peer */
	struct tls *tls;         /* NULL: plain TCP; not owned */
	bool rd_on, wr_on;       /* rev / wev added */
	bool rd_wants_write;     /* TLS read waits for writability */
	bool wr_wants_read;      /* TLS write waits for readability */
	bool rd_eof;             /* read returned 0 */
	bool wr_shut;            /* shutdown(SHUT_WR) done on fd */
	uint64_t nsent;          /* bytes read here and written to peer */
	struct half *peer;
	struct relay *r;
};

/* Called once when the relay ends: both directions closed cleanly
 * (outcome "ok"), or an error (the relay has already stopped its events;
 * abort asks the owner to reset rather than close the sockets). The owner
 * frees the relay from inside this call and must not return into it. */
typedef void (*relay_end_fn)(struct relay *r, const char *outcome,
                             const char *reason, bool abort);

struct relay {
	struct half h[2];        /* RELAY_APP, RELAY_UP */
	struct bufpool *pool;
	relay_end_fn end;
	uint64_t last_active_ms; /* monotonic, for the owner's idle timer */
	char reason[256];        /* storage for derived reasons */
};

enum { RELAY_APP = 0, RELAY_UP = 1 };

/* Sets up the events for two connected non-blocking sockets; the relay
 * does not own the fds (relay_release leaves them open). Returns 0 or -1
 * (out of memory). Nothing moves until relay_start. */
ATT_MUST_CHECK int relay_init(struct relay *r, struct event_base *base,
                              int app_fd, int up_fd, struct bufpool *pool,
                              relay_end_fn end);

/* Hands the relay bytes already read from one side (the app's first
 * message, read while sniffing; what followed an upgrade's head) to be
 * written to the other first; eof if that side already closed. b (may be
 * NULL) is owned by the relay from here. Before relay_start. */
void relay_preload(struct relay *r, int which, struct buf *b, bool eof);

/* Puts TLS (already handshaken) on one half; the relay reads and writes
 * through it and ends a closed direction with close_notify. Before
 * relay_start; the caller keeps ownership. */
void relay_set_tls(struct relay *r, int which, struct tls *t);

/* Starts reading both sides (and writes preloaded bytes). May end the relay (via end) before it
 * returns if a socket fails at once. */
void relay_start(struct relay *r);

/* Frees the events and buffers. Safe after relay_init, from anywhere,
 * including from the end callback. */
void relay_release(struct relay *r);

/* CLOCK_MONOTONIC_COARSE in milliseconds: cheap enough for every read. */
uint64_t relay_now_ms(void);

#endif
