/* Logs. Each connection ends in exactly one JSON line on the access log
 * (stdout); daemon messages go to stderr as "attache: LEVEL: text". */
#ifndef ATTACHE_LOG_H
#define ATTACHE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct event_base;

/* Retries and the upstream's health, as one request (or a tcp
 * connection) met them. circuit NULL: no upstream was asked. */
struct log_resil {
	unsigned tries;                /* dials and sends, the first included */
	uint64_t backoff_ms;           /* slept between them */
	const char *circuit;           /* closed, open, half_open */
	uint32_t budget_retries;       /* retries in the budget's window */
	uint32_t budget_allowed;       /* ... and how many it allows */
	bool budget_spent;             /* a retry was refused by it */
};

/* What one connection line says. Pointers may be NULL where unknown. */
struct log_conn {
	struct timespec time;          /* wall clock at close */
	const struct sockaddr *app;    /* the app's address */
	const struct sockaddr *dst;    /* its original destination */
	const char *name;              /* the host name it meant */
	const char *name_from;         /* host, sni or route */
	const char *route;             /* the route taken; NULL: default */
	const char *action;            /* pass, deny, tls */
	const struct sockaddr *upstream;   /* the address dialled */
	bool tls;                      /* the upstream side spoke TLS */
	bool tls_verify;               /* ... verified (false: lab route) */
	bool tls_resumed;
	const char *tls_version;       /* NULL until the handshake is done */
	const char *tls_cipher;
	uint64_t bytes_up;             /* app -> upstream */
	uint64_t bytes_down;           /* upstream -> app */
	bool http;                     /* an http connection: */
	unsigned requests;             /* ... its requests */
	struct log_resil resil;        /* tcp connections: their dial */
	uint64_t duration_us;
	const char *outcome;           /* one word: ok, rejected, ... */
	const char *reason;            /* what happened, in words */
};

/* What one request line says (http routes: one per request, besides the
 * connection's line). */
struct log_req {
	struct timespec time;          /* wall clock at its end */
	const struct sockaddr *app;
	const struct sockaddr *dst;
	const char *host;              /* from Host, or the route's hostname */
	const char *route;
	const char *action;
	const char *method;            /* "" before the head was read */
	const char *target;
	int status;                    /* 0: no response */
	const struct sockaddr *upstream;
	const char *conn;              /* "new", "reused", NULL: none */
	unsigned conn_requests;        /* this one included */
	bool tls, tls_resumed;
	const char *tls_version;
	uint64_t bytes_up, bytes_down; /* heads and bodies, as on the wire */
	uint64_t duration_us;
	struct log_resil resil;
	const char *outcome;
	const char *reason;            /* NULL: none; a broken rule's name */
};

size_t log_format_req(char *out, size_t cap, const struct log_req *r);

/* Formats c as one JSON object and a newline into out. Returns the length,
 * or 0 if it does not fit in cap (nothing useful is left in out then). */
size_t log_format_conn(char *out, size_t cap, const struct log_conn *c);

/* Formats t as "2026-11-30T13:51:58.123Z" (24 bytes + NUL). */
void log_format_time(const struct timespec *t, char out[32]);

/* A buffered line writer: lines are kept until 16 KiB are pending or
 * 50 ms pass, so a busy proxy writes its log in few syscalls. */
struct logger;

struct logger *logger_new(struct event_base *base, int fd);
void logger_conn(struct logger *lg, const struct log_conn *c);
void logger_req(struct logger *lg, const struct log_req *r);
void logger_flush(struct logger *lg);
void logger_free(struct logger *lg);   /* flushes first */

/* stderr messages, printf-style. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
