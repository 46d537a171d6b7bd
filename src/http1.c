#include "attache/http1.h"

#include <ctype.h>
#include <string.h>

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

static int on_field(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *x = of(p);

	if (x->head_done)
		return 0;   /* trailers: llhttp checks their syntax */

	if (x->cur_name_len == 0)
		x->cur_name = (uint32_t)((const uint8_t *)at - x->base);
	x->cur_name_len += (uint32_t)n;
	return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t n)
{
	struct http1 *x = of(p);

	if (x->head_done)
		return 0;   /* trailers: llhttp checks their syntax */
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
	struct http1_head *h = x->h;
	const uint8_t *name = x->base + x->cur_name;

	if (x->head_done)
		return 0;

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

static const uint8_t *find(const uint8_t *p, size_t len, const char *s, size_t sl)
{
	for (size_t i = 0; i + sl <= len; i++)
		if (memcmp(p + i, s, sl) == 0)
			return p + i;
	return NULL;
}

ssize_t http1_head(struct http1 *x, const uint8_t *p, size_t len,
                   struct http1_head *h)
{
	size_t skip = 0, hl;
	const uint8_t *eol, *end;
	llhttp_errno_t e;

	/* Empty lines before a request line are allowed (RFC 9112 2.2). */
	while (skip + 2 <= len && p[skip] == '\r' && p[skip + 1] == '\n')
		skip += 2;
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
	for (size_t i = 0; i < hl; i++)
		if ((p[i] == '\r' && i + 1 < hl && p[i + 1] != '\n') ||
		    (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')))
			return fail(x, "bare CR or LF", x->kind == HTTP1_REQUEST ? 400 : 502);
	/* obs-fold: a line that starts with white space continues the last
	 * (RFC 9112 5.2 lets us reject it; llhttp 8 would accept it). */
	for (const uint8_t *q = p; (q = find(q, hl - (size_t)(q - p), "\r\n", 2)); q += 2)
		if ((size_t)(q - p) + 2 < hl && (q[2] == ' ' || q[2] == '\t'))
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
	} else {
		h->status = x->p.status_code;
	}
	h->len = hl;
	h->start = (uint32_t)skip;
	h->major = x->p.http_major;
	h->minor = x->p.http_minor;
	h->chunked = (x->p.flags & F_CHUNKED) != 0;
	if (x->tes > 1)
		return fail(x, "more than one Transfer-Encoding",
		            x->kind == HTTP1_REQUEST ? 400 : 502);
	/* A Transfer-Encoding that llhttp did not frame as chunked is one
	 * another parser might ("chunked<TAB>"): never forward it. */
	if (x->tes && !h->chunked)
		return fail(x, "ambiguous Transfer-Encoding",
		            x->kind == HTTP1_REQUEST ? 400 : 502);
	if (x->p.flags & F_CONTENT_LENGTH)
		h->content_length = (int64_t)x->p.content_length;
	h->keep_alive = llhttp_should_keep_alive(&x->p) != 0;
	h->upgrade = x->p.upgrade != 0;
	h->no_body = x->kind == HTTP1_RESPONSE &&
	             (x->head_of_head || h->status < 200 || h->status == 204 ||
	              h->status == 304);
	return (ssize_t)hl;
}

/* ---------------------------------------------------------- body */

ssize_t http1_body(struct http1 *x, const uint8_t *p, size_t len, bool *done)
{
	llhttp_errno_t e;

	*done = x->msg_done;
	if (x->msg_done || len == 0)
		return 0;
	x->base = p;
	e = llhttp_execute(&x->p, (const char *)p, len);
	if (e == HPE_OK)
		return (ssize_t)len;
	if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
		*done = true;
		return (ssize_t)((const uint8_t *)llhttp_get_error_pos(&x->p) - p);
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
	if (ok && h->upgrade)
		ok = put(out, cap, &o, "Connection: upgrade\r\n", 21);
	else if (ok && close)
		ok = put(out, cap, &o, "Connection: close\r\n", 19);
	ok = ok && put(out, cap, &o, "\r\n", 2);
	return ok ? o : 0;
}
