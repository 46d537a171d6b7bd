/* attache-init --verify: proves, after installing, that the rules send a
 * connection from an app to attache's redirect port. A throwaway listener
 * takes the redirect port on loopback; a child process, as a uid and gid
 * that are not the proxy's, connects to an address the rules redirect (a
 * documentation address when it is) and sends a random token; the listener
 * must receive the token on a connection whose original destination is
 * that address. */
#ifndef ATTACHE_VERIFY_H
#define ATTACHE_VERIFY_H

#include <stddef.h>

#include "attache/ruleset.h"

/* For family 4 or 6: 0 proven, with what was proven in msg; 1 nothing to
 * prove, because nothing of that family is redirected or the netns has no
 * route out for it (msg says which); -1 not proven, with why in msg. */
int init_verify(const struct init_opts *o, int family, char *msg, size_t len);

#endif
