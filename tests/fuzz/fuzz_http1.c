/* libFuzzer: HTTP/1.1 framing, both directions. The first byte picks the
 * direction (and, for responses, whether the request was a HEAD) and how
 * the body is cut into pieces. Checks: no piece is over-consumed, a
 * message ends once, and a head attache rewrites (hop-by-hop fields out)
 * parses again to the same message. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attache/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[HTTP1_MAX_HEAD + 64];
	struct http1_head h, h2;
	struct http1 x, y;
	enum http1_kind kind;
	size_t piece;
	ssize_t n;

	if (size < 1)
		return 0;
	kind = data[0] & 1 ? HTTP1_RESPONSE : HTTP1_REQUEST;
	bool head_req = data[0] & 2;
	piece = 1 + (data[0] >> 2);
	data++;
	size--;
	http1_init(&x, kind);
	http1_expect_head(&x, head_req);
	n = http1_head(&x, data, size, &h);
	if (n < 0 && (!x.rule || !x.status))
		__builtin_trap();   /* every refusal names its rule */
	if (n <= 0)
		return 0;
	if ((size_t)n > size || h.len != (size_t)n)
		__builtin_trap();

	size_t len = http1_rewrite(&h, data, false, out, sizeof(out));
	if (len) {
		http1_init(&y, kind);
		http1_expect_head(&y, head_req);
		if (http1_head(&y, out, len, &h2) != (ssize_t)len ||
		    h2.method != h.method || h2.status != h.status ||
		    h2.content_length != h.content_length || h2.chunked != h.chunked)
			__builtin_trap();
	}

	bool done = false;
	for (size_t off = (size_t)n; off < size && !done;) {
		size_t k = size - off < piece ? size - off : piece;
		ssize_t used = http1_body(&x, data + off, k, &done);
		if (used < 0)
			return 0;
		if ((size_t)used > k || (!done && (size_t)used != k))
			__builtin_trap();
		off += (size_t)used;
	}
	return 0;
}
