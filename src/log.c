#include "attache/log.h"

#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "attache/addr.h"

#define LOGGER_CAP (32 * 1024)
#define LOGGER_HIGH (16 * 1024)
#define LOGGER_LINE_MAX 2048

struct logger {
	int fd;
	struct event *flush_ev;
	bool armed;
	size_t len;
	char buf[LOGGER_CAP];
};

/* A bounded string builder: `ok` goes false once anything did not fit. */
struct sb {
	char *p;
	size_t len, cap;
	bool ok;
};

static void sb_put(struct sb *b, const char *s, size_t n)
{
	if (!b->ok || b->len + n >= b->cap) {
		b->ok = false;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void sb_puts(struct sb *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

/* Decimal, without printf: a log line has a dozen numbers. */
static void sb_uint(struct sb *b, uint64_t v)
{
	char d[20];
	size_t n = sizeof(d);

	do {
		d[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	sb_put(b, d + n, sizeof(d) - n);
}

/* A JSON string: quotes, backslashes and control bytes escaped; bytes
 * >= 0x80 pass as they are (reasons are ASCII, names are checked later).
 * Runs that need no escape are copied whole. */
static void sb_json_str(struct sb *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	sb_put(b, "\"", 1);
	while (s && *s) {
		const char *run = s;
		while (*s && *s != '"' && *s != '\\' &&
		       (unsigned char)*s >= 0x20 && *s != 0x7f)
			s++;
		sb_put(b, run, (size_t)(s - run));
		if (!*s)
			break;
		unsigned char ch = (unsigned char)*s++;
		if (ch == '"' || ch == '\\') {
			char esc[2] = { '\\', (char)ch };
			sb_put(b, esc, 2);
		} else {
			char esc[6] = { '\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15] };
			sb_put(b, esc, 6);
		}
	}
	sb_put(b, "\"", 1);
}

static void sb_json_str_or_null(struct sb *b, const char *s)
{
	if (s)
		sb_json_str(b, s);
	else
		sb_puts(b, "null");
}

static void sb_json_addr(struct sb *b, const struct sockaddr *sa)
{
	char a[ADDR_STRLEN];

	if (!sa) {
		sb_puts(b, "null");
		return;
	}
	if (sa->sa_family == AF_INET) {   /* the common case, by hand */
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		const uint8_t *ip = (const uint8_t *)&in->sin_addr;
		sb_put(b, "\"", 1);
		for (int i = 0; i < 4; i++) {
			sb_uint(b, ip[i]);
			sb_put(b, i < 3 ? "." : ":", 1);
		}
		sb_uint(b, ntohs(in->sin_port));
		sb_put(b, "\"", 1);
		return;
	}
	addr_format(sa, a, sizeof(a));
	sb_json_str(b, a);
}

/* "1.234" milliseconds from microseconds */
static void sb_ms(struct sb *b, uint64_t us)
{
	char f[4] = { '.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
	              (char)('0' + us % 10) };

	sb_uint(b, us / 1000);
	sb_put(b, f, 4);
}

static void two(char *o, unsigned v)
{
	o[0] = (char)('0' + v / 10 % 10);
	o[1] = (char)('0' + v % 10);
}

void log_format_time(const struct timespec *t, char out[32])
{
	/* UTC by arithmetic (days to civil date, after Howard Hinnant's
	 * algorithm): a line per request makes gmtime+strftime show up in
	 * profiles. */
	int64_t secs = t->tv_sec, days = secs / 86400, sod = secs % 86400;
	int64_t z, era, doe, yoe, y, doy, mp, d, m;
	unsigned ms = (unsigned)(t->tv_nsec / 1000000) % 1000;

	if (sod < 0) {
		sod += 86400;
		days--;
	}
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;

	two(out, (unsigned)(y / 100));
	two(out + 2, (unsigned)(y % 100));
	out[4] = '-';
	two(out + 5, (unsigned)m);
	out[7] = '-';
	two(out + 8, (unsigned)d);
	out[10] = 'T';
	two(out + 11, (unsigned)(sod / 3600));
	out[13] = ':';
	two(out + 14, (unsigned)(sod / 60 % 60));
	out[16] = ':';
	two(out + 17, (unsigned)(sod % 60));
	out[19] = '.';
	out[20] = (char)('0' + ms / 100);
	two(out + 21, ms);
	out[23] = 'Z';
	out[24] = '\0';
}

static void sb_resil(struct sb *b, const struct log_resil *r)
{
	sb_puts(b, ",\"tries\":");
	sb_uint(b, r->tries);
	sb_puts(b, ",\"backoff_ms\":");
	sb_uint(b, r->backoff_ms);
	sb_puts(b, ",\"circuit\":");
	sb_json_str_or_null(b, r->circuit);
	if (!r->circuit) {
		sb_puts(b, ",\"budget\":null");
		return;
	}
	sb_puts(b, ",\"budget\":{\"retries\":");
	sb_uint(b, r->budget_retries);
	sb_puts(b, ",\"allowed\":");
	sb_uint(b, r->budget_allowed);
	sb_puts(b, r->budget_spent ? ",\"spent\":true}" : ",\"spent\":false}");
}

size_t log_format_conn(char *out, size_t cap, const struct log_conn *c)
{
	struct sb b = { out, 0, cap, true };
	char ts[32];

	log_format_time(&c->time, ts);
	sb_puts(&b, "{\"time\":");
	sb_json_str(&b, ts);
	sb_puts(&b, ",\"app\":");
	sb_json_addr(&b, c->app);
	sb_puts(&b, ",\"dst\":");
	sb_json_addr(&b, c->dst);
	sb_puts(&b, ",\"name\":");
	sb_json_str_or_null(&b, c->name);
	sb_puts(&b, ",\"name_from\":");
	sb_json_str_or_null(&b, c->name_from);
	sb_puts(&b, ",\"route\":");
	sb_json_str_or_null(&b, c->route);
	sb_puts(&b, ",\"action\":");
	sb_json_str_or_null(&b, c->action);
	sb_puts(&b, ",\"upstream\":");
	sb_json_addr(&b, c->upstream);
	if (c->tls) {
		sb_puts(&b, ",\"tls\":{\"version\":");
		sb_json_str_or_null(&b, c->tls_version);
		sb_puts(&b, ",\"cipher\":");
		sb_json_str_or_null(&b, c->tls_cipher);
		sb_puts(&b, c->tls_resumed ? ",\"resumed\":true" : ",\"resumed\":false");
		sb_puts(&b, c->tls_verify ? ",\"verify\":true}" : ",\"verify\":false}");
	} else {
		sb_puts(&b, ",\"tls\":null");
	}
	if (c->http) {
		sb_puts(&b, ",\"requests\":");
		sb_uint(&b, c->requests);
	} else {
		sb_resil(&b, &c->resil);
	}
	sb_puts(&b, ",\"bytes_up\":");
	sb_uint(&b, c->bytes_up);
	sb_puts(&b, ",\"bytes_down\":");
	sb_uint(&b, c->bytes_down);
	sb_puts(&b, ",\"duration_ms\":");
	sb_ms(&b, c->duration_us);
	sb_puts(&b, ",\"outcome\":");
	sb_json_str(&b, c->outcome);
	sb_puts(&b, ",\"reason\":");
	sb_json_str(&b, c->reason);
	sb_puts(&b, "}\n");
	if (!b.ok)
		return 0;
	out[b.len] = '\0';
	return b.len;
}

size_t log_format_req(char *out, size_t cap, const struct log_req *r)
{
	struct sb b = { out, 0, cap, true };
	char ts[32];

	log_format_time(&r->time, ts);
	sb_puts(&b, "{\"time\":");
	sb_json_str(&b, ts);
	sb_puts(&b, ",\"kind\":\"request\",\"app\":");
	sb_json_addr(&b, r->app);
	sb_puts(&b, ",\"dst\":");
	sb_json_addr(&b, r->dst);
	sb_puts(&b, ",\"host\":");
	sb_json_str_or_null(&b, r->host);
	sb_puts(&b, ",\"route\":");
	sb_json_str_or_null(&b, r->route);
	sb_puts(&b, ",\"action\":");
	sb_json_str_or_null(&b, r->action);
	sb_puts(&b, ",\"method\":");
	sb_json_str_or_null(&b, r->method && r->method[0] ? r->method : NULL);
	sb_puts(&b, ",\"path\":");
	sb_json_str_or_null(&b, r->target && r->target[0] ? r->target : NULL);
	sb_puts(&b, ",\"status\":");
	if (r->status > 0)
		sb_uint(&b, (uint64_t)r->status);
	else
		sb_puts(&b, "null");
	sb_puts(&b, ",\"upstream\":");
	sb_json_addr(&b, r->upstream);
	sb_puts(&b, ",\"conn\":");
	sb_json_str_or_null(&b, r->conn);
	sb_puts(&b, ",\"conn_requests\":");
	sb_uint(&b, r->conn_requests);
	if (r->tls) {
		sb_puts(&b, ",\"tls\":{\"version\":");
		sb_json_str_or_null(&b, r->tls_version);
		sb_puts(&b, r->tls_resumed ? ",\"resumed\":true}" : ",\"resumed\":false}");
	} else {
		sb_puts(&b, ",\"tls\":null");
	}
	sb_puts(&b, ",\"bytes_up\":");
	sb_uint(&b, r->bytes_up);
	sb_puts(&b, ",\"bytes_down\":");
	sb_uint(&b, r->bytes_down);
	sb_resil(&b, &r->resil);
	sb_puts(&b, ",\"duration_ms\":");
	sb_ms(&b, r->duration_us);
	sb_puts(&b, ",\"outcome\":");
	sb_json_str(&b, r->outcome);
	sb_puts(&b, ",\"reason\":");
	sb_json_str_or_null(&b, r->reason);
	sb_puts(&b, "}\n");
	if (!b.ok)
		return 0;
	out[b.len] = '\0';
	return b.len;
}

static void logger_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;   /* a log sink that fails loses lines, not traffic */
		p += w;
		n -= (size_t)w;
	}
}

void logger_flush(struct logger *lg)
{
	if (lg->len)
		logger_write_all(lg->fd, lg->buf, lg->len);
	lg->len = 0;
	if (lg->armed) {
		event_del(lg->flush_ev);
		lg->armed = false;
	}
}

static void logger_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct logger *lg = arg;

	lg->armed = false;
	logger_flush(lg);
}

struct logger *logger_new(struct event_base *base, int fd)
{
	struct logger *lg = calloc(1, sizeof(*lg));

	if (!lg)
		return NULL;
	lg->fd = fd;
	lg->flush_ev = evtimer_new(base, logger_flush_cb, lg);
	if (!lg->flush_ev) {
		free(lg);
		return NULL;
	}
	return lg;
}

/* Appends one line that format() writes; flushes at the high mark, or
 * after a short while. */
static void logger_line(struct logger *lg, const char *what,
                        size_t (*format)(char *, size_t, const void *),
                        const void *arg)
{
	static const struct timeval flush_after = { 0, 50 * 1000 };
	size_t n;

	if (LOGGER_CAP - lg->len < LOGGER_LINE_MAX)
		logger_flush(lg);
	n = format(lg->buf + lg->len, LOGGER_CAP - lg->len, arg);
	if (n == 0) {
		log_warn("a %s log line did not fit in %d bytes", what,
		         LOGGER_LINE_MAX);
		return;
	}
	lg->len += n;
	if (lg->len >= LOGGER_HIGH) {
		logger_flush(lg);
	} else if (!lg->armed) {
		evtimer_add(lg->flush_ev, &flush_after);
		lg->armed = true;
	}
}

static size_t format_conn(char *out, size_t cap, const void *c)
{
	return log_format_conn(out, cap, c);
}

static size_t format_req(char *out, size_t cap, const void *r)
{
	return log_format_req(out, cap, r);
}

void logger_conn(struct logger *lg, const struct log_conn *c)
{
	logger_line(lg, "connection", format_conn, c);
}

void logger_req(struct logger *lg, const struct log_req *r)
{
	logger_line(lg, "request", format_req, r);
}

void logger_free(struct logger *lg)
{
	if (!lg)
		return;
	logger_flush(lg);
	event_free(lg->flush_ev);
	free(lg);
}

static void vlog(const char *level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void vlog(const char *level, const char *fmt, va_list ap)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "attache: %s: ", level);

	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	strcat(line, "\n");
	logger_write_all(STDERR_FILENO, line, strlen(line));
}

#define DEFINE_LOG(fn, level)                          \
	void fn(const char *fmt, ...)                  \
	{                                              \
		va_list ap;                            \
		va_start(ap, fmt);                     \
		vlog(level, fmt, ap);                  \
		va_end(ap);                            \
	}

DEFINE_LOG(log_info, "info")
DEFINE_LOG(log_warn, "warning")
DEFINE_LOG(log_error, "error")
