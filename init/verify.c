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

static void sockaddr_of(int family, const uint8_t *a, uint16_t port,
                        struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (family == 6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, a, 16);
		s6->sin6_port = htons(port);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, a, 4);
		s4->sin_port = htons(port);
	}
}

/* The app's side, in a child: another uid and gid, no mark. Exits 0 when
 * the token was sent, else with the errno that stopped it. */
static void client(const struct init_opts *o, const struct sockaddr *to,
                   const char *token)
{
	uid_t uid = o->have_uid && o->proxy_uid == 65534 ? 65533 : 65534;
	gid_t gid = o->have_gid && o->proxy_gid == 65534 ? 65533 : 65534;
	struct timeval tv = { VERIFY_WAIT_MS / 1000 - 1, 0 };
	int fd;

	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		_exit(errno & 0x7f);
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
	sockaddr_of(family, addr, port, &to);
	addr_format((struct sockaddr *)&to, where, sizeof(where));
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		snprintf(msg, len, "IPv%d: getrandom: %s", family, strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(token + 2 * i, 3, "%02x", rnd[i]);

	static const uint8_t lo6[16] = { [15] = 1 };
	static const uint8_t lo4[4] = { 127, 0, 0, 1 };
	sockaddr_of(family, family == 6 ? lo6 : lo4, o->redirect_port, &lo);
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
		if (e == ENETUNREACH) {
			/* no packet of that family can leave: nothing to bypass */
			snprintf(msg, len, "IPv%d: no route out of the netns to %s, "
			         "so nothing to redirect", family, where);
			rc = 1;
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
	         "reached port %u", family, where,
	         o->have_uid && o->proxy_uid == 65534 ? 65533 : 65534,
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
