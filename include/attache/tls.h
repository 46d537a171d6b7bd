/* TLS origination, behind one small interface: nothing else in attache
 * sees a wolfSSL type. wolfSSL does the socket I/O itself (its own recv
 * and send on the non-blocking fd): one copy each way, between the kernel
 * and our relay buffer, with the crypto in between.
 *
 * Return convention for tls_read/tls_write: >0 bytes; TLS_AGAIN with
 * *want set to EV_READ or EV_WRITE (wait for that, then call again with
 * the same arguments); 0 from tls_read is the end of the stream;
 * TLS_FAIL is an error, whose reason tls_error() gives. */
#ifndef ATTACHE_TLS_H
#define ATTACHE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "attache/common.h"
#include "attache/pin.h"

#define TLS_AGAIN (-1)
#define TLS_FAIL (-2)

/* A route's TLS policy. */
struct tls_profile {
	const char *ca_file;       /* NULL: the system bundle */
	const char *cert_file;     /* client certificate chain (mTLS) */
	const char *key_file;
	int min_version;           /* 12 (TLS 1.2) or 13 */
	bool verify;               /* false: lab use only, and loud */
	const uint8_t (*pins)[PIN_LEN];
	size_t npins;
};

#define TLS_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

struct bufpool;
struct tls_ctx;
struct tls;

/* Once per process, before anything else here. */
void tls_global_init(void);
void tls_global_cleanup(void);

/* A context for a profile: trust, versions, ciphers, client certificate,
 * pins and a session cache. Returns NULL with a reason in err. */
ATT_MUST_CHECK struct tls_ctx *tls_ctx_new(const struct tls_profile *p,
                                           char *err, size_t errlen);
void tls_ctx_free(struct tls_ctx *c);

/* A client connection on fd (connected, non-blocking) to addr, verified
 * against name (a DNS name or an IP literal; SNI for DNS names). The
 * session of the last connection to the same (name, addr) in this context
 * is offered for resumption. Ciphertext is read ahead into buffers from
 * pool. NULL when out of memory. */
struct tls *tls_new(struct tls_ctx *c, int fd, const char *name,
                    const struct sockaddr *addr, struct bufpool *pool);

/* Frees it; a connection that completed its handshake first leaves its
 * session in the context's cache for the next one. */
void tls_free(struct tls *t);

/* Drives the handshake: 1 done (chain, name and pins checked), TLS_AGAIN
 * (*want set), or TLS_FAIL. */
int tls_handshake(struct tls *t, short *want);

ssize_t tls_read(struct tls *t, void *buf, size_t len, short *want);
ssize_t tls_write(struct tls *t, const void *buf, size_t len, short *want);

/* Bytes held (decrypted, or read ahead) that no socket event announces. */
size_t tls_pending(struct tls *t);

/* Did the last read leave nothing behind, neither in the socket (its
 * last recv() came back short) nor held here? Then the next read can wait
 * for an event instead of paying a syscall for EAGAIN. */
bool tls_read_drained(struct tls *t);

/* Sends close_notify (best effort: the socket is not waited for). */
void tls_close_notify(struct tls *t);

/* The reason of the last failure, e.g. "certificate verification failed:
 * hostname mismatch". */
const char *tls_error(const struct tls *t);
/* A failure that retrying will not fix: anything but a socket error or
 * a peer that closed (the certificate, an alert, a version). */
bool tls_error_is_final(const struct tls *t);

const char *tls_version(const struct tls *t);
const char *tls_cipher(const struct tls *t);
bool tls_resumed(const struct tls *t);

/* Reason text for a wolfSSL error code, and for a TLS alert the upstream
 * sent (pure; tested on their own). NULL when there is no better text. */
const char *tls_reason(int err, bool *verify_failure);
const char *tls_alert_reason(int alert);

#endif
