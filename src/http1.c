#include "attache/http1.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2 token characters. */
static bool tchar(uint8_t c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool ieq(const uint8_t *a, size_t al, const char *b)
{
	size_t bl = strlen(b);

	if (al != bl)
		return false;
	for (size_t i = 0; i < al; i++)
		if (tolower(a[i]) != b[i])
			return false;
	return true;
}

static int fail(struct http1 *x, const char *rule, int status)
{
	if (!x->rule) {
		x->rule = rule;
		x->status = status;
	}
	return -1;
}

/* ---------------------------------------------------------- callbacks */

static struct http1 *of(llhttp_t *p)
{
	return p->data;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *x = of(p);

	if (x->h->target_len == 0)
		x->h->target = (uint32_t)((const uint8_t *)at - x->base);
	x->h->target_len += (uint32_t)n;
	return 0;
}

/* The byte k places before at, looking into the previous piece's last
 * bytes when at is near the start of this one. */
static uint8_t before(const struct http1 *x, const char *at, size_t k)
{
	size_t off = (size_t)((const uint8_t *)at - x->base);

	return off >= k ? x->base[off - k] : x->tail[sizeof(x->tail) - (k - off)];
}

static int on_field(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *x = of(p);

	if (x->head_done) {
		/* A trailer field: the head's rules hold here too. Each starts
		 * a line, so CRLF must come right before it. */
		if (x->tr_name_len == 0 &&
		    (before(x, at, 1) != '\n' || before(x, at, 2) != '\r'))
			return fail(x, "bare CR or LF", x->kind == HTTP1_REQUEST ? 400 : 502);
		for (size_t i = 0; i < n; i++) {
			if (!tchar((uint8_t)at[i]))
				return fail(x, "invalid header name", x->kind == HTTP1_REQUEST ? 400 : 502);
			if (x->tr_name_len < sizeof(x->tr_name))
				x->tr_name[x->tr_name_len] = (char)tolower((uint8_t)at[i]);
			x->tr_name_len++;
		}
		return 0;
	}

	if (x->cur_name_len == 0)
		x->cur_name = (uint32_t)((const uint8_t *)at - x->base);
	x->cur_name_len += (uint32_t)n;
	return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *x = of(p);

	if (x->head_done) {   /* a trailer value: no line breaks, no folds */
		for (size_t i = 0; i < n; i++)
			if (at[i] == '\r' || at[i] == '\n')
				return fail(x, "obs-fold", x->kind == HTTP1_REQUEST ? 400 : 502);
		return 0;
	}
	struct http1_head *h = x->h;
	struct http1_field *f = &h->fields[h->nfields];

	if (f->value_len == 0)
		f->value = (uint32_t)((const uint8_t *)at - x->base);
	f->value_len += (uint32_t)n;
	return 0;
}

static int on_field_done(llhttp_t *p)
{
	struct http1 *x = of(p);

	if (x->head_done) {
		/* Framing and routing fields have no business in trailers. */
		static const char *const banned[] = {
			"content-length", "transfer-encoding", "host",
		};
		size_t l = x->tr_name_len;
		x->tr_name_len = 0;
		if (l == 0)
			return fail(x, "invalid header name", x->kind == HTTP1_REQUEST ? 400 : 502);
		for (size_t i = 0; i < sizeof(banned) / sizeof(banned[0]); i++)
			if (l == strlen(banned[i]) && memcmp(x->tr_name, banned[i], l) == 0)
				return fail(x, "framing field in trailers",
				            x->kind == HTTP1_REQUEST ? 400 : 502);
		return 0;
	}
	struct http1_head *h = x->h;
	const uint8_t *name = x->base + x->cur_name;

	if (x->cur_name_len == 0)
		return fail(x, "invalid header name", 400);

	if (h->nfields == HTTP1_MAX_HEADERS)
		return fail(x, "too many header fields", 431);
	/* llhttp takes "Host : x"; RFC 9112 5.1 says reject it. */
	for (uint32_t i = 0; i < x->cur_name_len; i++)
		if (!tchar(name[i]))
			return fail(x, "invalid header name", 400);
	h->fields[h->nfields].name = x->cur_name;
	h->fields[h->nfields].name_len = x->cur_name_len;
	h->fields[h->nfields].value = 0;
	h->fields[h->nfields].value_len = 0;
	x->cur_name_len = 0;
	return 0;
}

static int on_value_done(llhttp_t *p)
{
	struct http1 *x = of(p);
	if (x->head_done)
		return 0;
	struct http1_head *h = x->h;
	struct http1_field *f = &h->fields[h->nfields];
	const uint8_t *name = x->base + f->name, *v = x->base + f->value;
	size_t vl = f->value_len;

	while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;   /* trailing OWS is not part of the value */
	f->value_len = (uint32_t)vl;
	if (ieq(name, f->name_len, "host")) {
		x->hosts++;
		h->host = f->value;
		h->host_len = f->value_len;
		/* A Host must be a host, with an optional port (RFC 9110 7.2). */
		bool ok = vl > 0;
		for (size_t i = 0; ok && i < vl; i++)
			ok = isalnum(v[i]) || strchr("-._~:[]%!$&'()*+;=", v[i]);
		if (!ok)
			return fail(x, "invalid Host", 400);
	} else if (ieq(name, f->name_len, "transfer-encoding")) {
		/* We frame by chunked and nothing else; any other coding in
		 * a request is one we would have to understand (RFC 9112 6.1). */
		x->tes++;
		if (!ieq(v, vl, "chunked"))
			x->bad_te = true;
	} else if (ieq(name, f->name_len, "expect") && ieq(v, vl, "100-continue")) {
		h->expect_continue = true;
	} else if (ieq(name, f->name_len, "connection")) {
		/* "Connection: Transfer-Encoding" would have the rewrite drop a
		 * framing field while the body still passes as it was framed. */
		static const char *const framing[] = {
			"transfer-encoding", "content-length", "host",
		};
		for (const uint8_t *t = v, *e = v + vl; t < e;) {
			const uint8_t *u;
			while (t < e && (*t == ',' || *t == ' ' || *t == '\t'))
				t++;
			for (u = t; u < e && *u != ',' && *u != ' ' && *u != '\t'; u++)
				;
			for (size_t k = 0; k < sizeof(framing) / sizeof(framing[0]); k++)
				if (ieq(t, (size_t)(u - t), framing[k]))
					return fail(x, "Connection names a framing field",
					            x->kind == HTTP1_REQUEST ? 400 : 502);
			t = u;
		}
	}
	h->nfields++;
	return 0;
}

static int on_headers_done(llhttp_t *p)
{
	struct http1 *x = of(p);

	x->head_done = true;
	/* A response to HEAD, a 1xx, 204 or 304 has no body, whatever its
	 * headers say (RFC 9112 6.3). */
	if (x->kind == HTTP1_RESPONSE &&
	    (x->head_of_head || p->status_code < 200 || p->status_code == 204 ||
	     p->status_code == 304))
		return 1;
	return 0;
}

static int on_message_done(llhttp_t *p)
{
	of(p)->msg_done = true;
	return HPE_PAUSED;
}

void http1_init(struct http1 *x, enum http1_kind kind)
{
	memset(x, 0, sizeof(*x));
	x->kind = kind;
	llhttp_settings_init(&x->cb);
	x->cb.on_url = on_url;
	x->cb.on_header_field = on_field;
	x->cb.on_header_field_complete = on_field_done;
	x->cb.on_header_value = on_value;
	x->cb.on_header_value_complete = on_value_done;
	x->cb.on_headers_complete = on_headers_done;
	x->cb.on_message_complete = on_message_done;
}

void http1_expect_head(struct http1 *x, bool head_request)
{
	x->head_of_head = head_request;
}

void http1_next(struct http1 *x)
{
	x->head_done = x->msg_done = false;
	x->rule = NULL;
	x->status = 0;
}

static const char *rule_of(llhttp_errno_t e, const char *reason)
{
	switch (e) {
	case HPE_UNEXPECTED_CONTENT_LENGTH:
		return strstr(reason, "Transfer-Encoding")
		       ? "both Content-Length and Transfer-Encoding"
		       : "more than one Content-Length";
	case HPE_INVALID_CONTENT_LENGTH:   return "invalid Content-Length";
	case HPE_INVALID_TRANSFER_ENCODING: return "invalid Transfer-Encoding";
	case HPE_INVALID_HEADER_TOKEN:     return "invalid byte in a header";
	case HPE_LF_EXPECTED:
	case HPE_CR_EXPECTED:              return "bare CR or LF";
	case HPE_INVALID_CHUNK_SIZE:       return "invalid chunk size";
	case HPE_INVALID_METHOD:           return "invalid method";
	case HPE_INVALID_URL:              return "invalid request target";
	case HPE_INVALID_VERSION:          return "invalid HTTP version";
	case HPE_INVALID_STATUS:           return "invalid status";
	case HPE_INVALID_CONSTANT:         return "malformed start line";
	default:                           return "malformed message";
	}
}

/* ---------------------------------------------------------- head */

/* The start line, byte for byte: "METHOD SP target SP HTTP/1.x" or
 * "HTTP/1.x SP 3DIGIT SP reason", single spaces, a target of URI
 * characters only. What llhttp lets slide here (double spaces, tabs,
 * HTTP/0.9 or 2.0, status 20 or 099) another parser splits otherwise. */
static int start_line(struct http1 *x, const uint8_t *l, size_t n)
{
	bool req = x->kind == HTTP1_REQUEST;
	int bad = req ? 400 : 502;
	size_t i = 0, t;

	if (req) {
		while (i < n && tchar(l[i]))
			i++;
		if (i == 0 || i >= n || l[i] != ' ')
			return fail(x, "malformed start line", bad);
		for (t = ++i; i < n && l[i] > 0x20 && l[i] < 0x7f &&
		              !strchr("\"<>\\^`{|}#", l[i]); i++)
			;
		if (i == t || i >= n || l[i] != ' ')
			return fail(x, "malformed start line", bad);
		i++;
		if (n - i != 8 || memcmp(l + i, "HTTP/1.", 7) != 0 ||
		    (l[i + 7] != '0' && l[i + 7] != '1'))
			return fail(x, "invalid HTTP version", bad);
		return 0;
	}
	if (n < 13 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') ||
	    l[8] != ' ' || !isdigit(l[9]) || !isdigit(l[10]) || !isdigit(l[11]) ||
	    l[12] != ' ')
		return fail(x, "malformed status line", bad);
	int status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	if (status < 100 || status > 599)
		return fail(x, "invalid status", bad);
	return 0;
}

static const uint8_t *find(const uint8_t *p, size_t len, const char *s, size_t sl)
{
	return memmem(p, len, s, sl);
}

ssize_t http1_head(struct http1 *x, const uint8_t *p, size_t len,
                   struct http1_head *h)
{
	size_t skip = 0, hl;
	const uint8_t *eol, *end;
	llhttp_errno_t e;

	/* Empty lines before a request line are allowed (RFC 9112 2.2): a
	 * few of them. */
	while (skip + 2 <= len && p[skip] == '\r' && p[skip + 1] == '\n')
		skip += 2;
	if (skip > 16)
		return fail(x, "empty lines before the request", 400);
	if (skip == len)
		return 0;
	eol = find(p + skip, len - skip < HTTP1_MAX_LINE + 2 ? len - skip : HTTP1_MAX_LINE + 2,
	           "\r\n", 2);
	if (!eol && len - skip > HTTP1_MAX_LINE)
		return fail(x, "request line too long", x->kind == HTTP1_REQUEST ? 414 : 502);
	end = find(p + skip, len - skip < HTTP1_MAX_HEAD ? len - skip : HTTP1_MAX_HEAD,
	           "\r\n\r\n", 4);
	if (!end) {
		if (len - skip >= HTTP1_MAX_HEAD)
			return fail(x, "header block too large",
			            x->kind == HTTP1_REQUEST ? 431 : 502);
		/* Still let llhttp reject garbage early instead of waiting. */
		hl = len;
	} else {
		hl = (size_t)(end - p) + 4;
	}
	/* Every line ends in CRLF: a CR alone or an LF alone is how two
	 * parsers come to disagree about where a header ends. */
	/* (memchr from line end to line end: a head has a few dozen.) */
	for (const uint8_t *q = p; (q = memchr(q, '\r', hl - (size_t)(q - p))); q++)
		if (q + 1 < p + hl && q[1] != '\n')
			return fail(x, "bare CR or LF", x->kind == HTTP1_REQUEST ? 400 : 502);
	for (const uint8_t *q = p; (q = memchr(q, '\n', hl - (size_t)(q - p))); q++)
		if (q == p || q[-1] != '\r')
			return fail(x, "bare CR or LF", x->kind == HTTP1_REQUEST ? 400 : 502);
	if (eol && start_line(x, p + skip, (size_t)(eol - (p + skip))) < 0)
		return -1;
	/* obs-fold: a line that starts with white space continues the last
	 * (RFC 9112 5.2 lets us reject it; llhttp 8 would accept it). */
	for (const uint8_t *q = p; (q = memchr(q, '\n', hl - (size_t)(q - p))); q++)
		if (q + 1 < p + hl && (q[1] == ' ' || q[1] == '\t'))
			return fail(x, "obs-fold", x->kind == HTTP1_REQUEST ? 400 : 502);

	memset(h, 0, offsetof(struct http1_head, fields));
	h->content_length = -1;
	x->h = h;
	x->base = p;
	x->cur_name_len = 0;
	x->hosts = x->tes = 0;
	x->bad_te = x->head_done = x->msg_done = false;
	x->rule = NULL;
	llhttp_init(&x->p, x->kind == HTTP1_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &x->cb);
	x->p.data = x;
	e = llhttp_execute(&x->p, (const char *)p, hl);
	if (x->rule)
		return -1;   /* one of our own rules, from a callback */
	if (e != HPE_OK && e != HPE_PAUSED && e != HPE_PAUSED_UPGRADE)
		return fail(x, rule_of(e, llhttp_get_error_reason(&x->p)),
		            x->kind == HTTP1_REQUEST ? 400 : 502);
	if (!x->head_done)
		return 0;

	if (x->kind == HTTP1_REQUEST) {
		if (x->hosts > 1)
			return fail(x, "more than one Host", 400);
		if (x->hosts == 0 && x->p.http_major == 1 && x->p.http_minor >= 1)
			return fail(x, "missing Host", 400);
		if (x->bad_te)
			return fail(x, "unsupported transfer coding", 501);
		h->method = x->p.method;
		if (h->method == HTTP_CONNECT &&
		    (x->tes || (x->p.flags & F_CONTENT_LENGTH)))
			return fail(x, "CONNECT with a body", 400);
		if (x->tes && x->p.http_minor == 0)
			return fail(x, "Transfer-Encoding in HTTP/1.0", 400);
		/* An absolute-form target names the host itself; upstreams go
		 * by it (RFC 9112 3.2.2), so it must be the Host we route by. */
		const uint8_t *tg = p + h->target;
		size_t tl = h->target_len, sl = 0;
		if (tl > 7 && ieq(tg, 7, "http://"))
			sl = 7;
		else if (tl > 8 && ieq(tg, 8, "https://"))
			sl = 8;
		if (sl) {
			size_t al = 0;
			while (sl + al < tl && tg[sl + al] != '/' && tg[sl + al] != '?')
				al++;
			if (al != h->host_len ||
			    strncasecmp((const char *)tg + sl, (const char *)p + h->host, al) != 0)
				return fail(x, "Host and request target disagree", 400);
		}
	} else {
		h->status = x->p.status_code;
	}
	h->len = hl;
	h->start = (uint32_t)skip;
	h->major = x->p.http_major;
	h->minor = x->p.http_minor;
	h->chunked = (x->p.flags & F_CHUNKED) != 0;
	x->h_chunked = h->chunked;
	memcpy(x->tail, "\r\n\r\n", sizeof(x->tail));   /* the head ended so */
	x->tr_name_len = 0;
	if (x->tes > 1)
		return fail(x, "more than one Transfer-Encoding",
		            x->kind == HTTP1_REQUEST ? 400 : 502);
	/* A Transfer-Encoding that llhttp did not frame as chunked is one
	 * another parser might ("chunked<TAB>"): never forward it. */
	if (x->tes && !h->chunked)
		return fail(x, "ambiguous Transfer-Encoding",
		            x->kind == HTTP1_REQUEST ? 400 : 502);
	if (x->p.flags & F_CONTENT_LENGTH) {
		if (x->p.content_length > (uint64_t)INT64_MAX / 2)
			return fail(x, "Content-Length too large",
			            x->kind == HTTP1_REQUEST ? 400 : 502);
		h->content_length = (int64_t)x->p.content_length;
	}
	h->keep_alive = llhttp_should_keep_alive(&x->p) != 0;
	h->upgrade = x->p.upgrade != 0;
	if (h->upgrade && x->kind == HTTP1_REQUEST && h->method != HTTP_CONNECT) {
		/* Tunnels are for websockets: an h2c upgrade would let a client
		 * speak HTTP/2 past our framing. XXX: strip it instead. */
		bool ws = false;
		for (size_t i = 0; i < h->nfields; i++)
			if (ieq(p + h->fields[i].name, h->fields[i].name_len, "upgrade"))
				ws = ieq(p + h->fields[i].value, h->fields[i].value_len, "websocket");
		if (!ws)
			return fail(x, "unsupported Upgrade (only websocket)", 400);
	}
	h->no_body = x->kind == HTTP1_RESPONSE &&
	             (x->head_of_head || h->status < 200 || h->status == 204 ||
	              h->status == 304);
	return (ssize_t)hl;
}

/* ---------------------------------------------------------- body */

/* Remembers the last bytes seen, for checks that look back across
 * pieces. */
static void keep_tail(struct http1 *x, const uint8_t *p, size_t n)
{
	size_t k = sizeof(x->tail);

	if (n >= k) {
		memcpy(x->tail, p + n - k, k);
	} else {
		memmove(x->tail, x->tail + n, k - n);
		memcpy(x->tail + k - n, p, n);
	}
}

ssize_t http1_body(struct http1 *x, const uint8_t *p, size_t len, bool *done)
{
	llhttp_errno_t e;

	*done = x->msg_done;
	if (x->msg_done || len == 0)
		return 0;
	x->base = p;
	e = llhttp_execute(&x->p, (const char *)p, len);
	if (x->rule)
		return -1;   /* a trailer broke one of our rules */
	if (e == HPE_OK) {
		keep_tail(x, p, len);
		return (ssize_t)len;
	}
	if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
		size_t used = (size_t)((const uint8_t *)llhttp_get_error_pos(&x->p) - p);
		keep_tail(x, p, used);
		/* A chunked message ends in CRLF CRLF, whatever llhttp forgave. */
		if (x->h_chunked && memcmp(x->tail, "\r\n\r\n", 4) != 0)
			return fail(x, "bare CR or LF", x->kind == HTTP1_REQUEST ? 400 : 502);
		*done = true;
		return (ssize_t)used;
	}
	return fail(x, rule_of(e, llhttp_get_error_reason(&x->p)),
	            x->kind == HTTP1_REQUEST ? 400 : 502);
}

/* ---------------------------------------------------------- rewrite */

bool http1_hop_by_hop(const struct http1_head *h, const uint8_t *base,
                      const char *n, size_t nl)
{
	static const char *const fixed[] = {
		"connection", "keep-alive", "proxy-connection", "te", "upgrade",
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (ieq((const uint8_t *)n, nl, fixed[i]))
			return !(h->upgrade && i == 4);   /* a tunnel keeps Upgrade */
	/* Names the Connection header lists are this hop's too. */
	for (size_t i = 0; i < h->nfields; i++) {
		const struct http1_field *f = &h->fields[i];
		const uint8_t *v = base + f->value, *end = v + f->value_len;
		if (!ieq(base + f->name, f->name_len, "connection"))
			continue;
		while (v < end) {
			const uint8_t *t;
			while (v < end && (*v == ',' || *v == ' ' || *v == '\t'))
				v++;
			for (t = v; t < end && *t != ',' && *t != ' ' && *t != '\t'; t++)
				;
			if (t > v) {
				bool same = (size_t)(t - v) == nl;
				for (size_t k = 0; same && k < nl; k++)
					same = tolower(v[k]) == tolower((uint8_t)n[k]);
				if (same)
					return true;
			}
			v = t;
		}
	}
	return false;
}

static bool put(uint8_t *out, size_t cap, size_t *o, const void *s, size_t n)
{
	if (*o + n > cap)
		return false;
	memcpy(out + *o, s, n);
	*o += n;
	return true;
}

size_t http1_rewrite(const struct http1_head *h, const uint8_t *base,
                     bool close, uint8_t *out, size_t cap)
{
	const uint8_t *start = base + h->start;
	const uint8_t *eol = find(start, h->len - h->start, "\r\n", 2);
	size_t o = 0;
	bool ok = eol && put(out, cap, &o, start, (size_t)(eol - start) + 2);

	for (size_t i = 0; ok && i < h->nfields; i++) {
		const struct http1_field *f = &h->fields[i];
		if (http1_hop_by_hop(h, base, (const char *)base + f->name, f->name_len))
			continue;
		ok = put(out, cap, &o, base + f->name, f->name_len) &&
		     put(out, cap, &o, ": ", 2) &&
		     put(out, cap, &o, base + f->value, f->value_len) &&
		     put(out, cap, &o, "\r\n", 2);
	}
	/* A websocket's Upgrade needs its Connection: upgrade; a CONNECT
	 * (also a tunnel to llhttp) needs none. */
	if (ok && h->upgrade && h->method != HTTP_CONNECT)
		ok = put(out, cap, &o, "Connection: upgrade\r\n", 21);
	else if (ok && close)
		ok = put(out, cap, &o, "Connection: close\r\n", 19);
	ok = ok && put(out, cap, &o, "\r\n", 2);
	return ok ? o : 0;
}

/* ---------------------------------------------------------- our own */

const char *http1_status_text(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Error";
	}
}

size_t http1_error_response(char *out, size_t cap, int status,
                            const char *reason, const char *extra, bool close)
{
	int n = snprintf(out, cap,
	                 "HTTP/1.1 %d %s\r\n"
	                 "Content-Type: text/plain\r\n"
	                 "Content-Length: %zu\r\n"
	                 "%s%s"
	                 "\r\n"
	                 "attache: %s\n",
	                 status, http1_status_text(status), strlen(reason) + 10,
	                 close ? "Connection: close\r\n" : "",
	                 extra ? extra : "", reason);

	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
