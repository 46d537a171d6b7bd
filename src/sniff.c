#include "attache/sniff.h"

#include <ctype.h>
#include <stdbool.h>
#include <llhttp.h>
#include <string.h>

const char *sniff_result_str(enum sniff_result r)
{
	switch (r) {
	case SNIFF_MORE:    return "incomplete";
	case SNIFF_FOUND:   return "found";
	case SNIFF_NONE:    return "absent";
	case SNIFF_INVALID: return "invalid";
	}
	return "?";
}

/* Lower-cases a host (a DNS name, IPv4 or [IPv6] literal, optional :port)
 * into name without the port or brackets. Returns 0, or -1 if it is not
 * one. */
static int clean_host(const char *h, size_t n, char name[SNIFF_NAME_MAX])
{
	size_t end = n, o = 0;

	if (n > 0 && h[0] == '[') {
		const char *close = memchr(h, ']', n);
		if (!close)
			return -1;
		end = (size_t)(close - h) + 1;
		if (end < n && h[end] != ':')
			return -1;
		h++;
		n = end - 2;
		end = n;
		for (size_t i = 0; i < n; i++)
			if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
				return -1;
	} else {
		const char *colon = memchr(h, ':', n);
		if (colon)
			end = (size_t)(colon - h);
		for (size_t i = 0; i < end; i++)   /* (strchr would take a NUL) */
			if (!isalnum((unsigned char)h[i]) && h[i] != '-' &&
			    h[i] != '.' && h[i] != '_')
				return -1;
	}
	if (end == 0 || end > 253)   /* the longest DNS name */
		return -1;
	for (; o < end; o++)
		name[o] = (char)tolower((unsigned char)h[o]);
	while (o > 0 && name[o - 1] == '.')   /* "example.com." */
		o--;
	name[o] = '\0';
	return o ? 0 : -1;
}

/* ------------------------------------------------------------- HTTP */

struct host_state {
	char field[8];         /* enough to tell "host" from the rest */
	size_t field_len;
	bool in_host;
	char value[SNIFF_NAME_MAX + 8];
	size_t value_len;
	bool value_too_long;
	unsigned hosts;        /* Host headers seen */
	bool complete;
};

static int on_field(llhttp_t *p, const char *at, size_t len)
{
	struct host_state *s = p->data;

	for (size_t i = 0; i < len && s->field_len < sizeof(s->field); i++)
		s->field[s->field_len++] = (char)tolower((unsigned char)at[i]);
	if (len > sizeof(s->field))
		s->field_len = sizeof(s->field);   /* too long to be "host" */
	return 0;
}

static int on_field_done(llhttp_t *p)
{
	struct host_state *s = p->data;

	s->in_host = s->field_len == 4 && memcmp(s->field, "host", 4) == 0;
	s->field_len = 0;
	if (s->in_host) {
		s->hosts++;
		s->value_len = 0;
		s->value_too_long = false;
	}
	return 0;
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
	struct host_state *s = p->data;

	if (!s->in_host)
		return 0;
	if (s->value_len + len >= sizeof(s->value)) {
		s->value_too_long = true;
		return 0;
	}
	memcpy(s->value + s->value_len, at, len);
	s->value_len += len;
	return 0;
}

static int on_headers_done(llhttp_t *p)
{
	struct host_state *s = p->data;

	s->complete = true;
	return HPE_PAUSED;   /* the body is not ours to look at */
}

enum sniff_result sniff_http_host(const uint8_t *p, size_t len,
                                  char name[SNIFF_NAME_MAX])
{
	static const llhttp_settings_t settings = {
		.on_header_field = on_field,
		.on_header_field_complete = on_field_done,
		.on_header_value = on_value,
		.on_headers_complete = on_headers_done,
	};
	struct host_state s;
	llhttp_t parser;
	llhttp_errno_t err;

	memset(&s, 0, sizeof(s));
	llhttp_init(&parser, HTTP_REQUEST, &settings);
	parser.data = &s;
	err = llhttp_execute(&parser, (const char *)p, len);
	if (err != HPE_OK && err != HPE_PAUSED)
		return SNIFF_INVALID;
	if (!s.complete)
		return SNIFF_MORE;
	if (s.hosts == 0)
		return SNIFF_NONE;
	if (s.hosts > 1 || s.value_too_long)
		return SNIFF_INVALID;
	/* llhttp drops the leading whitespace; the trailing is ours to drop. */
	while (s.value_len > 0 && (s.value[s.value_len - 1] == ' ' ||
	                           s.value[s.value_len - 1] == '\t'))
		s.value_len--;
	return clean_host(s.value, s.value_len, name) == 0 ? SNIFF_FOUND
	                                                   : SNIFF_INVALID;
}

/* ------------------------------------------------------------- TLS */

#define TLS_HANDSHAKE 22
#define TLS_CLIENT_HELLO 1
#define TLS_EXT_SERVER_NAME 0
#define TLS_HELLO_MAX 16384   /* a bigger ClientHello is not sniffed */

/* A bounds-checked reader: any read past the end sets bad. */
struct rd {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

static uint32_t rd_n(struct rd *r, size_t n)
{
	uint32_t v = 0;

	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		v = v << 8 | r->p[r->off++];
	return v;
}

static void rd_skip(struct rd *r, size_t n)
{
	if (r->bad || r->len - r->off < n)
		r->bad = true;
	else
		r->off += n;
}

enum sniff_result sniff_tls_sni(const uint8_t *p, size_t len,
                                char name[SNIFF_NAME_MAX])
{
	uint8_t hs[TLS_HELLO_MAX + 4];
	size_t have = 0, want = 0, off = 0;

	/* Reassemble the handshake message from its records. */
	while (have < 4 || have < want) {
		if (len - off < 5)
			return SNIFF_MORE;
		const uint8_t *rec = p + off;
		size_t rlen = (size_t)rec[3] << 8 | rec[4];
		if (rec[0] != TLS_HANDSHAKE || rec[1] != 3 || rlen == 0 ||
		    rlen > 16384 + 2048)
			return SNIFF_INVALID;
		off += 5;
		size_t take = len - off < rlen ? len - off : rlen;
		if (have + take > sizeof(hs))
			take = sizeof(hs) - have;
		memcpy(hs + have, p + off, take);
		have += take;
		off += take;
		if (have >= 4 && want == 0) {
			if (hs[0] != TLS_CLIENT_HELLO)
				return SNIFF_INVALID;
			want = 4 + ((size_t)hs[1] << 16 | (size_t)hs[2] << 8 | hs[3]);
			if (want > sizeof(hs))
				return SNIFF_INVALID;
		}
		if (take < rlen && have < want)
			return SNIFF_MORE;   /* this record is not all here yet */
	}

	struct rd r = { .p = hs, .len = want, .off = 4 };
	rd_skip(&r, 2 + 32);                  /* version, random */
	rd_skip(&r, rd_n(&r, 1));             /* session id */
	rd_skip(&r, rd_n(&r, 2));             /* cipher suites */
	rd_skip(&r, rd_n(&r, 1));             /* compression methods */
	if (r.bad)
		return SNIFF_INVALID;
	if (r.off == r.len)
		return SNIFF_NONE;                /* no extensions at all */
	size_t ext_len = rd_n(&r, 2);
	if (r.bad || ext_len > r.len - r.off)
		return SNIFF_INVALID;
	/* A reader bounded by the extensions block itself, so no extension
	 * header can be read past the block's end. */
	struct rd x = { .p = hs + r.off, .len = ext_len };
	while (x.off < x.len) {
		uint32_t type = rd_n(&x, 2), elen = rd_n(&x, 2);
		if (x.bad || elen > x.len - x.off)
			return SNIFF_INVALID;
		if (type != TLS_EXT_SERVER_NAME) {
			x.off += elen;
			continue;
		}
		struct rd e = { .p = x.p + x.off, .len = elen };
		size_t list = rd_n(&e, 2);
		if (e.bad || list != elen - 2)
			return SNIFF_INVALID;
		while (e.off < e.len) {
			uint32_t ntype = rd_n(&e, 1), nlen = rd_n(&e, 2);
			if (e.bad || nlen > e.len - e.off)
				return SNIFF_INVALID;
			if (ntype == 0)   /* host_name */
				return clean_host((const char *)e.p + e.off, nlen,
				                  name) == 0 ? SNIFF_FOUND
				                             : SNIFF_INVALID;
			e.off += nlen;
		}
		return SNIFF_NONE;
	}
	return SNIFF_NONE;
}
