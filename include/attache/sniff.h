/* Name recovery from the app's first bytes: the Host header of an HTTP
 * request, or the SNI of a TLS ClientHello.
 *
 * Pure functions over the bytes read so far (call again with more): they
 * never allocate, never read past len, and keep nothing between calls.
 * The bytes themselves are forwarded unchanged by the caller. */
#ifndef ATTACHE_SNIFF_H
#define ATTACHE_SNIFF_H

#include <stddef.h>
#include <stdint.h>

#define SNIFF_NAME_MAX 256   /* bytes for a name and its NUL */

enum sniff_result {
	SNIFF_MORE,      /* not enough bytes yet */
	SNIFF_FOUND,     /* name holds the lower-case host, no port */
	SNIFF_NONE,      /* a complete message without a name */
	SNIFF_INVALID,   /* not the protocol, or malformed */
};

/* The Host of the first request (llhttp, strict). More than one Host
 * header is INVALID (a smuggling shape); so is a Host that is not a DNS
 * name or IP literal. */
enum sniff_result sniff_http_host(const uint8_t *p, size_t len,
                                  char name[SNIFF_NAME_MAX]);

/* The host_name in the server_name extension of a ClientHello, which may
 * span several TLS records. Bytes that are not a TLS handshake: INVALID. */
enum sniff_result sniff_tls_sni(const uint8_t *p, size_t len,
                                char name[SNIFF_NAME_MAX]);

const char *sniff_result_str(enum sniff_result r);

#endif
