#include "attache/verify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attache/addr.h"
#include "attache/origdst.h"

#define VERIFY_WAIT_MS 3000

/* The app's side, in a child: another uid and gid, no mark. Exits 0 when
 * the token was sent, else with the errno that stopped it. */
static uid_t probe_uid(const struct init_opts *o)
{
	return o->have_uid && o->proxy_uid == 65534 ? 65533 : 65534;
}

/* The netns has a route of family other than through lo (the kernel's
 * own local, link-local and multicast routes aside). */
static bool has_routes(int family)
{
	FILE *f = fopen(family == 6 ? "/proc/net/ipv6_route" : "/proc/net/route",
	                "r");
	char line[512], dev[64], dst[40];
	bool any = false;

	if (!f)
		return true;   /* cannot tell: assume it has */
	while (!any && fgets(line, sizeof(line), f)) {
		if (family == 6) {
			/* dst plen src plen next metric ref use flags dev;
			 * RTF_LOCAL (0x80000000): an address of our own */
			unsigned long flags;
			if (sscanf(line, "%39s %*s %*s %*s %*s %*s %*s %*s %lx %63s",
			           dst, &flags, dev) != 3)
				continue;
			any = strcmp(dev, "lo") != 0 && !(flags & 0x80000000UL) &&
			      strncmp(dst, "fe80", 4) != 0 && strncmp(dst, "ff", 2) != 0;
		} else {
			/* Iface Destination ...; the first line is a header */
			if (sscanf(line, "%63s", dev) != 1 ||
			    strcmp(dev, "Iface") == 0)
				continue;
			any = strcmp(dev, "lo") != 0;
		}
	}
	fclose(f);
	return any;
}

static void client(const struct init_opts *o, const struct sockaddr *to,
                   const char *token)
{
	uid_t uid = probe_uid(o);
	gid_t gid = o->have_gid && o->proxy_gid == 65534 ? 65533 : 65534;
	struct timeval tv = { VERIFY_WAIT_MS / 1000 - 1, 0 };
	int fd;

	/* 0x80: it could not become the app (not a redirect failure) */
	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		_exit(0x80 | (errno & 0x7f));
	fd = socket(to->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		_exit(errno & 0x7f);
	/* a connection that is not redirected goes out and may hang */
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, to, addr_len(to)) < 0)
		_exit(errno & 0x7f);
	if (write(fd, token, strlen(token)) != (ssize_t)strlen(token))
		_exit(EPIPE);
	close(fd);
	_exit(0);
}

static int wait_fd(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	return n;
}

int init_verify(const struct init_opts *o, int family, char *msg, size_t len)
{
	struct sockaddr_storage to, lo, orig;
	uint8_t addr[16], rnd[16];
	char token[40], got[40], where[INET6_ADDRSTRLEN + 8];
	uint16_t port;
	int lfd = -1, cfd = -1, one = 1, status, rc = -1;
	pid_t pid = -1;
	ssize_t n = 0;

	if (ruleset_probe_target(o, family, addr, &port) < 0) {
		snprintf(msg, len, "IPv%d: nothing is redirected, nothing to "
		         "verify", family);
		return 1;
	}
	addr_make(&to, family == 6 ? AF_INET6 : AF_INET, addr, port);
	addr_format((struct sockaddr *)&to, where, sizeof(where));
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(msg, len, "IPv%d: getrandom: %s", family, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);

	static const uint8_t lo6[16] = { [15] = 1 };
	static const uint8_t lo4[4] = { 127, 0, 0, 1 };
	addr_make(&lo, family == 6 ? AF_INET6 : AF_INET, family == 6 ? lo6 : lo4,
	          o->redirect_port);
	lfd = socket(lo.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (family == 6 && setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
	                               sizeof(one)) < 0) ||
	    bind(lfd, (struct sockaddr *)&lo, addr_len((struct sockaddr *)&lo)) < 0 ||
	    listen(lfd, 4) < 0) {
		snprintf(msg, len, "IPv%d: cannot listen on the redirect port %u: "
		         "%s%s", family, o->redirect_port, strerror(errno),
		         errno == EADDRINUSE ? " (is attache already running? "
		         "--verify needs the port free)" : "");
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(msg, len, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		close(lfd);
		client(o, (struct sockaddr *)&to, token);
	}
	/* Wait for the connection, or for the child to fail first. */
	int arrived = 0, waited = 0;
	bool exited = false;
	while (!arrived && !exited && waited < VERIFY_WAIT_MS) {
		arrived = wait_fd(lfd, 50);
		waited += 50;
		exited = waitpid(pid, &status, WNOHANG) == pid;
	}
	if (exited && !arrived)
		arrived = wait_fd(lfd, 0);   /* it connected, then exited */
	if (exited)
		pid = -1;
	if (arrived <= 0) {
		/* nothing arrived: the child says why, or is still waiting */
		if (!exited) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			pid = -1;
		}
		int e = exited && WIFEXITED(status) ? WEXITSTATUS(status) : ETIMEDOUT;
		if (e & 0x80) {
			snprintf(msg, len, "IPv%d: cannot run the probe as uid %u: "
			         "%s (needs CAP_SETUID and CAP_SETGID)", family,
			         probe_uid(o), strerror(e & 0x7f));
			goto out;
		}
		if (e == ENETUNREACH && !has_routes(family)) {
			/* no packet of that family can leave: nothing to bypass */
			snprintf(msg, len, "IPv%d: the netns has no route out, so "
			         "nothing to redirect", family);
			rc = 1;
			goto out;
		}
		if (e == ENETUNREACH) {
			snprintf(msg, len, "IPv%d: no route to %s to prove the "
			         "redirect with (the netns routes only elsewhere)",
			         family, where);
			goto out;
		}
		snprintf(msg, len, "IPv%d: a connection to %s was not redirected "
		         "to port %u: %s", family, where, o->redirect_port,
		         e ? strerror(e) : "it went elsewhere");
		goto out;
	}
	cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (cfd < 0) {
		snprintf(msg, len, "IPv%d: accept: %s", family, strerror(errno));
		goto out;
	}
	if (origdst_lookup(cfd, family == 6 ? AF_INET6 : AF_INET, NULL, &orig) < 0 ||
	    !addr_equal((struct sockaddr *)&orig, (struct sockaddr *)&to)) {
		snprintf(msg, len, "IPv%d: a connection arrived on port %u, but "
		         "not redirected from %s", family, o->redirect_port, where);
		goto out;
	}
	while (wait_fd(cfd, VERIFY_WAIT_MS) > 0 &&
	       (size_t)n < sizeof(got) - 1) {
		ssize_t r = read(cfd, got + n, sizeof(got) - 1 - (size_t)n);
		if (r <= 0)
			break;
		n += r;
	}
	got[n] = '\0';
	if (strcmp(got, token) != 0) {
		snprintf(msg, len, "IPv%d: the redirected connection from %s did "
		         "not carry the token", family, where);
		goto out;
	}
	snprintf(msg, len, "IPv%d: verified: a connection to %s from uid %u "
	         "reached port %u", family, where, probe_uid(o),
	         o->redirect_port);
	rc = 0;
out:
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
	return rc;
}
