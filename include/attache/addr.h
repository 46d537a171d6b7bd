/* Socket addresses as attache prints, parses and compares them. */
#ifndef ATTACHE_ADDR_H
#define ATTACHE_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "attache/common.h"

/* Room for "[ffff:...:255.255.255.255%ifname]:65535" and a NUL. */
#define ADDR_STRLEN 72

/* Writes "203.0.113.7:80" or "[2001:db8::7]:80" into out (always
 * NUL-terminated when cap > 0) and returns the length written. An address of
 * an unknown family prints as "-". */
size_t addr_format(const struct sockaddr *sa, char *out, size_t cap);

/* Parses "IPv4:PORT" or "[IPv6]:PORT" (no names, no missing port).
 * Returns 0 and fills ss/len, or -1 on anything else. */
ATT_MUST_CHECK int addr_parse(const char *s, struct sockaddr_storage *ss,
                              socklen_t *len);

/* Address, port and family equal (scope and flow info ignored). */
bool addr_equal(const struct sockaddr *a, const struct sockaddr *b);

/* 127.0.0.0/8, ::1, and ::ffff:127.0.0.0/104. */
bool addr_is_loopback(const struct sockaddr *sa);

uint16_t addr_port(const struct sockaddr *sa);
void addr_set_port(struct sockaddr *sa, uint16_t port);

/* ss made from family (AF_INET or AF_INET6), its raw address bytes (4
 * or 16) and port. */
void addr_make(struct sockaddr_storage *ss, int family, const uint8_t *bytes,
               uint16_t port);

/* The raw address bytes of an AF_INET or AF_INET6 sa (4 or 16). */
const uint8_t *addr_bytes(const struct sockaddr *sa);

/* sizeof the sockaddr for sa's family, 0 if unknown. */
socklen_t addr_len(const struct sockaddr *sa);

#endif
