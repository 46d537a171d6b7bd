/* Where the app was going: the original destination of a REDIRECTed
 * connection, and whether attache may act on it.
 *
 * The lookup goes through a getsockopt-shaped seam so unit tests can feed
 * it kernel answers without netfilter. */
#ifndef ATTACHE_ORIGDST_H
#define ATTACHE_ORIGDST_H

#include <stdint.h>
#include <sys/socket.h>

#include "attache/common.h"

typedef int (*origdst_sockopt_fn)(int fd, int level, int name, void *val,
                                  socklen_t *len);

/* Reads SO_ORIGINAL_DST (family AF_INET) or IP6T_SO_ORIGINAL_DST (AF_INET6)
 * of fd into out. Returns 0, or -1 with errno set: the kernel's errno
 * (ENOENT: no NAT entry, i.e. not redirected), or EPROTO when the answer is
 * malformed (wrong length or family, port 0). gso NULL means getsockopt. */
ATT_MUST_CHECK int origdst_lookup(int fd, int family, origdst_sockopt_fn gso,
                                  struct sockaddr_storage *out);

enum origdst_verdict {
	ORIGDST_OK,          /* a redirected connection: relay it */
	ORIGDST_DIRECT,      /* the app dialled attache's listener itself */
	ORIGDST_LOOP,        /* the destination is attache again */
};

/* Decides what to do with a connection accepted on a listener whose address
 * is `local`, whose original destination is `orig`. A destination equal to
 * the accepted socket's own address means no redirect happened; a loopback
 * destination on the redirect port would send it back to attache. */
enum origdst_verdict origdst_classify(const struct sockaddr *orig,
                                      const struct sockaddr *local,
                                      uint16_t redirect_port);

/* Log text for a verdict. */
const char *origdst_verdict_str(enum origdst_verdict v);

#endif
