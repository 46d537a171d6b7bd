/* HTTP/1.1 framing, strict: where a message's head ends and its body
 * ends, and every shape that could let a request be smuggled past us
 * rejected with a named rule and a status. llhttp (strict, no lenient
 * flags) parses; this layer adds what llhttp 8.1 lets through (obs-fold,
 * whitespace before a colon, transfer codings other than chunked, a
 * missing or repeated Host) and the size limits.
 *
 * Pure over bytes: no sockets, no allocation. The caller keeps a message's
 * head in one buffer until http1_head() accepts it; bodies then pass
 * through http1_body() in pieces, and are forwarded as they are. */
#ifndef ATTACHE_HTTP1_H
#define ATTACHE_HTTP1_H

#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP1_MAX_LINE 8192      /* request line: over it, 414 */
#define HTTP1_MAX_HEAD 32768     /* whole head: over it, 431 */
#define HTTP1_MAX_HEADERS 100    /* header lines: over it, 431 */

enum http1_kind { HTTP1_REQUEST, HTTP1_RESPONSE };

struct http1_field {            /* offsets into the head's bytes */
	uint32_t name, name_len, value, value_len;
};

struct http1_head {
	size_t len;                  /* bytes of the head, final CRLF included */
	uint32_t start;              /* the start line's offset: empty lines
	                                before a request line are skipped */
	int method;                  /* llhttp_method_t (requests) */
	int status;                  /* responses */
	uint8_t major, minor;
	uint32_t target, target_len; /* request-target, offsets */
	int64_t content_length;      /* -1: none */
	bool chunked;
	bool keep_alive;             /* per version and Connection */
	bool upgrade;                /* Upgrade, or CONNECT */
	bool expect_continue;
	bool no_body;                /* HEAD response, 1xx, 204, 304 */
	uint32_t host, host_len;     /* requests: the Host value */
	size_t nfields;
	struct http1_field fields[HTTP1_MAX_HEADERS];   /* last: not cleared */
};

struct http1 {
	llhttp_t p;
	llhttp_settings_t cb;
	enum http1_kind kind;
	bool head_of_head;           /* a response to a HEAD request */
	/* while a head is parsed: */
	struct http1_head *h;
	const uint8_t *base;
	uint32_t cur_name, cur_name_len;
	unsigned hosts, tes;
	bool head_done, msg_done, bad_te, h_chunked;
	/* trailers, checked as they pass */
	char tr_name[20];
	size_t tr_name_len;
	uint8_t tail[4];             /* the last bytes of the previous piece */
	/* why it failed */
	const char *rule;
	int status;
};

/* Starts a parser for one direction. For responses, say whether the
 * request was a HEAD (its response has no body) with http1_expect_head. */
void http1_init(struct http1 *x, enum http1_kind kind);
void http1_expect_head(struct http1 *x, bool head_request);

/* Parses the head at the start of p[0, len). Returns the head's length
 * (>0, and *h filled), 0 when more bytes are needed, or -1: x->rule says
 * which rule was broken and x->status the status to answer (400, 414,
 * 431, 501; 502 for a response). */
ssize_t http1_head(struct http1 *x, const uint8_t *p, size_t len,
                   struct http1_head *h);

/* After the head: how many of these body bytes belong to the message
 * (<= len); *done when the message ended there. -1 on a framing error
 * (x->rule). A message without a body is done at once (len 0 is fine). */
ssize_t http1_body(struct http1 *x, const uint8_t *p, size_t len, bool *done);

/* Ready for the next message on the same connection (pipelining). */
void http1_next(struct http1 *x);

/* Is header name n (len nl) hop-by-hop for this head: Connection,
 * Keep-Alive, Proxy-Connection, TE, Trailer-less Upgrade, or a name the
 * Connection header lists (RFC 9110 7.6.1)? */
bool http1_hop_by_hop(const struct http1_head *h, const uint8_t *base,
                      const char *n, size_t nl);

/* Writes the head again without its hop-by-hop fields, adding
 * "Connection: close" when close is set. Returns the length, or 0 if it
 * does not fit in cap. */
size_t http1_rewrite(const struct http1_head *h, const uint8_t *base,
                     bool close, uint8_t *out, size_t cap);

/* A complete response of ours (an error: 400, 403, 502, 503, ...) whose
 * one-line body is "attache: <reason>", with Connection: close when
 * close is set. extra, if not NULL, is one more header line with its
 * CRLF. Returns the length, or 0 if it does not fit in cap. */
size_t http1_error_response(char *out, size_t cap, int status,
                            const char *reason, const char *extra, bool close);

/* The reason phrase of a status we send, e.g. "Bad Gateway". */
const char *http1_status_text(int status);

#endif
