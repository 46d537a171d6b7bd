/* The wolfSSL adapter (native API: wolfSSL_UseSNI, check_domain_name,
 * get1_session; not the OpenSSL compatibility layer). */
#include "attache/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "attache/addr.h"
#include "attache/buf.h"

/* Forward secrecy and AEAD only: TLS 1.3's suites, and TLS 1.2's ECDHE
 * with AES-GCM or ChaCha20-Poly1305 (Mozilla's "intermediate" minus the
 * finite-field DHE suites). */
static const char ciphers[] =
	"TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"
	"TLS13-CHACHA20-POLY1305-SHA256:"
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

#define SESSION_SLOTS 64
#define NAME_MAX_LEN 256

struct session_slot {
	char name[NAME_MAX_LEN];
	struct sockaddr_storage addr;
	WOLFSSL_SESSION *s;
};

struct tls_ctx {
	WOLFSSL_CTX *ctx;
	bool verify;
	uint8_t (*pins)[PIN_LEN];
	size_t npins;
	struct session_slot slots[SESSION_SLOTS];
	size_t next_slot;
};

struct tls {
	WOLFSSL *ssl;
	struct tls_ctx *ctx;
	int fd;
	struct bufpool *pool;
	struct buf *rb;      /* ciphertext read ahead, served to wolfSSL */
	bool rx_short;       /* the last recv() emptied the socket */
	char name[NAME_MAX_LEN];
	struct sockaddr_storage addr;
	bool done;           /* handshake completed and checked */
	bool failed;
	bool final;          /* the failure is the certificate's */
	int wlen;            /* a write to repeat with this length */
	char err[160];
};

void tls_global_init(void)
{
	wolfSSL_Init();
}

void tls_global_cleanup(void)
{
	wolfSSL_Cleanup();
}

const char *tls_reason(int err, bool *verify_failure)
{
	static const struct { int code; bool verify; const char *text; } map[] = {
		{ ASN_AFTER_DATE_E, true, "certificate verification failed: certificate expired" },
		{ ASN_BEFORE_DATE_E, true, "certificate verification failed: certificate not yet valid" },
		{ DOMAIN_NAME_MISMATCH, true, "certificate verification failed: hostname mismatch" },
		{ IPADDR_MISMATCH, true, "certificate verification failed: IP address mismatch" },
		{ ASN_NO_SIGNER_E, true, "certificate verification failed: unknown issuer "
		  "(untrusted root, self-signed, or missing intermediate)" },
		{ ASN_SELF_SIGNED_E, true, "certificate verification failed: self-signed certificate" },
		{ ASN_SIG_CONFIRM_E, true, "certificate verification failed: bad signature" },
		{ ASN_PATHLEN_INV_E, true, "certificate verification failed: path length exceeded" },
		{ VERSION_ERROR, false, "handshake failed: protocol version below the minimum" },
		{ MATCH_SUITE_ERROR, false, "handshake failed: no cipher suite in common" },
		{ SOCKET_PEER_CLOSED_E, false, "handshake failed: upstream closed the connection" },
		{ SOCKET_ERROR_E, false, "handshake failed: connection error" },
		{ FATAL_ERROR, false, "handshake failed: upstream sent a fatal alert" },
	};

	for (size_t i = 0; i < ATT_ARRAY_LEN(map); i++)
		if (map[i].code == err) {
			if (verify_failure)
				*verify_failure = map[i].verify;
			return map[i].text;
		}
	if (verify_failure)
		*verify_failure = false;
	return NULL;
}

const char *tls_alert_reason(int alert)
{
	switch (alert) {
	case 40:  return "handshake failure (no common parameters, or a client certificate is required)";
	case 42:  return "the upstream rejected our client certificate";
	case 48:  return "the upstream does not trust our client certificate's issuer (unknown_ca)";
	case 70:  return "protocol version below the minimum (the upstream offers only older versions)";
	case 71:  return "insufficient security (no cipher suite in common)";
	case 112: return "the upstream does not know the name we asked for (unrecognized_name)";
	case 116: return "the upstream requires a client certificate";
	}
	return NULL;
}

static void set_error(struct tls *t, int err)
{
	bool final = false;
	const char *r = tls_reason(err, &final);
	WOLFSSL_ALERT_HISTORY h;

	t->failed = true;
	/* Only a broken path is worth another try; anything the handshake
	 * itself refused (a certificate, an alert, a version) would be
	 * refused again. */
	(void)final;
	t->final = err != SOCKET_ERROR_E && err != SOCKET_PEER_CLOSED_E;
	/* An alert from the upstream says more than our error code does. */
	if (wolfSSL_get_alert_history(t->ssl, &h) == WOLFSSL_SUCCESS &&
	    h.last_rx.level == 2 && tls_alert_reason(h.last_rx.code)) {
		snprintf(t->err, sizeof(t->err), "handshake failed: %s (alert %d)",
		         tls_alert_reason(h.last_rx.code), h.last_rx.code);
		return;
	}
	if (r) {
		snprintf(t->err, sizeof(t->err), "%s", r);
	} else {
		char buf[WOLFSSL_MAX_ERROR_SZ];
		wolfSSL_ERR_error_string_n((unsigned long)err, buf, sizeof(buf));
		snprintf(t->err, sizeof(t->err), "TLS error %d: %s", err, buf);
	}
}

struct tls_ctx *tls_ctx_new(const struct tls_profile *p, char *err,
                            size_t errlen)
{
	struct tls_ctx *c = calloc(1, sizeof(*c));
	const char *ca = p->ca_file ? p->ca_file : TLS_SYSTEM_CA;

	if (!c || !(c->ctx = wolfSSL_CTX_new(wolfTLS_client_method()))) {
		snprintf(err, errlen, "out of memory");
		free(c);
		return NULL;
	}
	c->verify = p->verify;
	if (wolfSSL_CTX_SetMinVersion(c->ctx, p->min_version == 13
	                              ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS ||
	    wolfSSL_CTX_set_cipher_list(c->ctx, ciphers) != WOLFSSL_SUCCESS) {
		snprintf(err, errlen, "cannot set the TLS version or ciphers");
		goto fail;
	}
	if (p->verify) {
		if (wolfSSL_CTX_load_verify_locations(c->ctx, ca, NULL) != WOLFSSL_SUCCESS) {
			snprintf(err, errlen, "cannot load CA certificates from %s", ca);
			goto fail;
		}
		wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_PEER, NULL);
	} else {
		wolfSSL_CTX_set_verify(c->ctx, WOLFSSL_VERIFY_NONE, NULL);
	}
	if (p->cert_file || p->key_file) {
		if (!p->cert_file || !p->key_file) {
			snprintf(err, errlen, "client_cert and client_key go together");
			goto fail;
		}
		if (wolfSSL_CTX_use_certificate_chain_file(c->ctx, p->cert_file) != WOLFSSL_SUCCESS) {
			snprintf(err, errlen, "cannot load the client certificate %s", p->cert_file);
			goto fail;
		}
		if (wolfSSL_CTX_use_PrivateKey_file(c->ctx, p->key_file, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS ||
		    wolfSSL_CTX_check_private_key(c->ctx) != WOLFSSL_SUCCESS) {
			snprintf(err, errlen, "cannot load the client key %s (or it does not "
			         "match the certificate)", p->key_file);
			goto fail;
		}
	}
	wolfSSL_CTX_UseSessionTicket(c->ctx);
	if (p->npins) {
		c->pins = malloc(p->npins * PIN_LEN);
		if (!c->pins) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		memcpy(c->pins, p->pins, p->npins * PIN_LEN);
		c->npins = p->npins;
	}
	return c;
fail:
	tls_ctx_free(c);
	return NULL;
}

void tls_ctx_free(struct tls_ctx *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < SESSION_SLOTS; i++)
		if (c->slots[i].s)
			wolfSSL_SESSION_free(c->slots[i].s);
	if (c->ctx)
		wolfSSL_CTX_free(c->ctx);
	free(c->pins);
	free(c);
}

static struct session_slot *find_slot(struct tls_ctx *c, const char *name,
                                      const struct sockaddr *addr)
{
	for (size_t i = 0; i < SESSION_SLOTS; i++) {
		struct session_slot *s = &c->slots[i];
		if (s->s && strcmp(s->name, name) == 0 &&
		    addr_equal((struct sockaddr *)&s->addr, addr))
			return s;
	}
	return NULL;
}

/* wolfSSL's receive callback. wolfSSL asks for exactly what it needs
 * next (a 5-byte record header, then the record), which costs two recv()
 * per 16 KiB record on its own; reading ahead into a pooled buffer makes
 * it one recv() per BUF_SIZE of ciphertext, at the price of a memcpy. */
static int recv_cb(WOLFSSL *ssl, char *out, int sz, void *arg)
{
	struct tls *t = arg;
	struct buf *b = t->rb;
	size_t k;

	if (!b) {
		ssize_t n;
		if (!(b = bufpool_get(t->pool)))
			return WOLFSSL_CBIO_ERR_GENERAL;
		n = recv(t->fd, b->data, BUF_SIZE, 0);
		t->rx_short = n < BUF_SIZE;
		if (n <= 0) {
			int err = errno;
			bufpool_put(t->pool, b);
			if (n == 0)
				return WOLFSSL_CBIO_ERR_CONN_CLOSE;
			if (err == EAGAIN || err == EWOULDBLOCK)
				return WOLFSSL_CBIO_ERR_WANT_READ;
			if (err == EINTR)
				return WOLFSSL_CBIO_ERR_ISR;
			return err == ECONNRESET ? WOLFSSL_CBIO_ERR_CONN_RST
			                         : WOLFSSL_CBIO_ERR_GENERAL;
		}
		b->tail = (uint32_t)n;
		t->rb = b;
	}
	k = (size_t)sz < buf_len(b) ? (size_t)sz : buf_len(b);
	memcpy(out, b->data + b->head, k);
	b->head += (uint32_t)k;
	if (buf_len(b) == 0) {
		bufpool_put(t->pool, b);
		t->rb = NULL;
	}
	return (int)k;
}

bool tls_read_drained(struct tls *t)
{
	return t->rx_short && tls_pending(t) == 0;
}

static bool is_ip(const char *name)
{
	unsigned char b[16];

	return inet_pton(AF_INET, name, b) == 1 || inet_pton(AF_INET6, name, b) == 1;
}

struct tls *tls_new(struct tls_ctx *c, int fd, const char *name,
                    const struct sockaddr *addr, struct bufpool *pool)
{
	struct tls *t = calloc(1, sizeof(*t));
	struct session_slot *slot;

	if (!t || !(t->ssl = wolfSSL_new(c->ctx))) {
		free(t);
		return NULL;
	}
	t->ctx = c;
	t->fd = fd;
	t->pool = pool;
	snprintf(t->name, sizeof(t->name), "%s", name ? name : "");
	memcpy(&t->addr, addr, addr_len(addr));
	wolfSSL_set_fd(t->ssl, fd);   /* sends go straight to the socket */
	wolfSSL_SSLSetIORecv(t->ssl, recv_cb);
	wolfSSL_SetIOReadCtx(t->ssl, t);
	if (t->name[0] && !is_ip(t->name))
		wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, t->name,
		               (unsigned short)strlen(t->name));
	if (c->verify)
		wolfSSL_check_domain_name(t->ssl, t->name);
	if ((slot = find_slot(c, t->name, addr)))
		wolfSSL_set_session(t->ssl, slot->s);
	return t;
}

static void save_session(struct tls *t)
{
	struct tls_ctx *c = t->ctx;
	struct session_slot *slot = find_slot(c, t->name, (struct sockaddr *)&t->addr);
	WOLFSSL_SESSION *s = wolfSSL_get1_session(t->ssl);

	if (!s)
		return;
	if (!slot) {
		slot = &c->slots[c->next_slot];
		c->next_slot = (c->next_slot + 1) % SESSION_SLOTS;
		snprintf(slot->name, sizeof(slot->name), "%s", t->name);
		memcpy(&slot->addr, &t->addr, sizeof(slot->addr));
	}
	if (slot->s)
		wolfSSL_SESSION_free(slot->s);
	slot->s = s;
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	if (t->done && !t->failed)
		save_session(t);
	wolfSSL_free(t->ssl);
	if (t->rb)
		bufpool_put(t->pool, t->rb);
	free(t);
}

static int check_pins(struct tls *t)
{
	struct tls_ctx *c = t->ctx;
	WOLFSSL_X509 *x;
	const unsigned char *der;
	uint8_t pin[PIN_LEN];
	int len;

	if (c->npins == 0)
		return 0;
	x = wolfSSL_get_peer_certificate(t->ssl);
	der = x ? wolfSSL_X509_get_der(x, &len) : NULL;
	if (!der || pin_of_cert(der, (size_t)len, pin) < 0) {
		wolfSSL_X509_free(x);
		snprintf(t->err, sizeof(t->err), "certificate verification failed: "
		         "cannot read the upstream certificate's public key");
		return -1;
	}
	wolfSSL_X509_free(x);
	for (size_t i = 0; i < c->npins; i++)
		if (memcmp(c->pins[i], pin, PIN_LEN) == 0)
			return 0;
	snprintf(t->err, sizeof(t->err), "certificate verification failed: "
	         "public key pin mismatch");
	return -1;
}

static int want_of(int err, short *want)
{
	if (err == WOLFSSL_ERROR_WANT_READ) {
		*want = EV_READ;
		return TLS_AGAIN;
	}
	if (err == WOLFSSL_ERROR_WANT_WRITE) {
		*want = EV_WRITE;
		return TLS_AGAIN;
	}
	return TLS_FAIL;
}

int tls_handshake(struct tls *t, short *want)
{
	int ret = wolfSSL_connect(t->ssl), err;

	if (ret == WOLFSSL_SUCCESS) {
		if (check_pins(t) < 0) {
			t->failed = t->final = true;
			return TLS_FAIL;
		}
		t->done = true;
		return 1;
	}
	err = wolfSSL_get_error(t->ssl, ret);
	if (want_of(err, want) == TLS_AGAIN)
		return TLS_AGAIN;
	set_error(t, err);
	return TLS_FAIL;
}

ssize_t tls_read(struct tls *t, void *buf, size_t len, short *want)
{
	int n = wolfSSL_read(t->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	int err;

	if (n > 0)
		return n;
	err = wolfSSL_get_error(t->ssl, n);
	if (err == WOLFSSL_ERROR_ZERO_RETURN)
		return 0;   /* close_notify: the end of the stream */
	if (err == SOCKET_PEER_CLOSED_E) {
		/* A TCP close without close_notify may be an attacker's FIN
		 * cutting the stream: the app must not take it for the end. */
		t->failed = true;
		snprintf(t->err, sizeof(t->err), "the upstream closed without "
		         "close_notify (the stream may be truncated)");
		return TLS_FAIL;
	}
	if (want_of(err, want) == TLS_AGAIN)
		return TLS_AGAIN;
	set_error(t, err);
	return TLS_FAIL;
}

ssize_t tls_write(struct tls *t, const void *buf, size_t len, short *want)
{
	/* wolfSSL finishes a write it could not complete only when called
	 * again with the same length. */
	int l = t->wlen ? t->wlen : (int)(len > 65536 ? 65536 : len);
	int n = wolfSSL_write(t->ssl, buf, l), err;

	if (n > 0) {
		t->wlen = 0;
		return n;
	}
	err = wolfSSL_get_error(t->ssl, n);
	if (want_of(err, want) == TLS_AGAIN) {
		t->wlen = l;
		return TLS_AGAIN;
	}
	set_error(t, err);
	return TLS_FAIL;
}

size_t tls_pending(struct tls *t)
{
	int n = wolfSSL_pending(t->ssl);

	return (n > 0 ? (size_t)n : 0) + (t->rb ? buf_len(t->rb) : 0);
}

void tls_close_notify(struct tls *t)
{
	/* XXX: if the socket is full the alert is dropped, and the upstream
	 * sees our FIN without it. */
	(void)wolfSSL_shutdown(t->ssl);
}

const char *tls_error(const struct tls *t)
{
	return t->err[0] ? t->err : "TLS error";
}

bool tls_error_is_final(const struct tls *t)
{
	return t->final;
}

const char *tls_version(const struct tls *t)
{
	return wolfSSL_get_version(t->ssl);
}

const char *tls_cipher(const struct tls *t)
{
	return wolfSSL_get_cipher_name(t->ssl);
}

bool tls_resumed(const struct tls *t)
{
	return wolfSSL_session_reused(t->ssl) == 1;
}
