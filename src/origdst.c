#include "attache/origdst.h"

#include <errno.h>
#include <netinet/in.h>   /* before the linux/ headers, which defer to it */
#include <string.h>

#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>

#include "attache/addr.h"

int origdst_lookup(int fd, int family, origdst_sockopt_fn gso,
                   struct sockaddr_storage *out)
{
	socklen_t want, len;
	int level, name;

	if (!gso)
		gso = getsockopt;
	if (family == AF_INET) {
		level = SOL_IP;
		name = SO_ORIGINAL_DST;
		want = sizeof(struct sockaddr_in);
	} else if (family == AF_INET6) {
		level = SOL_IPV6;
		name = IP6T_SO_ORIGINAL_DST;
		want = sizeof(struct sockaddr_in6);
	} else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	memset(out, 0, sizeof(*out));
	len = want;
	if (gso(fd, level, name, out, &len) < 0)
		return -1;
	/* The kernel fills a whole sockaddr of the socket's family; anything
	 * else is not an answer we can trust to dial. */
	if (len != want || out->ss_family != family ||
	    addr_port((struct sockaddr *)out) == 0) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

enum origdst_verdict origdst_classify(const struct sockaddr *orig,
                                      const struct sockaddr *local,
                                      uint16_t redirect_port)
{
	if (addr_equal(orig, local))
		return ORIGDST_DIRECT;
	if (addr_port(orig) == redirect_port && addr_is_loopback(orig))
		return ORIGDST_LOOP;
	return ORIGDST_OK;
}

const char *origdst_verdict_str(enum origdst_verdict v)
{
	switch (v) {
	case ORIGDST_OK:     return "ok";
	case ORIGDST_DIRECT: return "not redirected: connection made to attache's listener";
	case ORIGDST_LOOP:   return "loop: original destination is attache itself";
	}
	return "?";
}
