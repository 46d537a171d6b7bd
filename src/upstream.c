#include "attache/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "attache/addr.h"

void socket_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void socket_close(int fd, bool abort)
{
	if (fd < 0)
		return;
	if (abort) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(fd);
}

int upstream_connect(const struct sockaddr *dst, uint32_t mark,
                     bool *in_progress, struct sockaddr_storage *local)
{
	socklen_t len = sizeof(*local);
	int fd, err;

	fd = socket(dst->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	            IPPROTO_TCP);
	if (fd < 0)
		return -1;
	socket_nodelay(fd);
	if (mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
		/* unmarked, it would be redirected back to us: do not dial */
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	*in_progress = false;
	if (connect(fd, dst, addr_len(dst)) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			close(fd);
			errno = err;
			return -1;
		}
		*in_progress = true;
	}
	memset(local, 0, sizeof(*local));
	if (getsockname(fd, (struct sockaddr *)local, &len) < 0)
		local->ss_family = AF_UNSPEC;
	return fd;
}

int upstream_mark_check(uint32_t mark)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc, err;

	if (fd < 0)
		return -1;
	rc = setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	err = errno;
	close(fd);
	errno = err;
	return rc;
}

int upstream_connect_result(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return errno;
	return err;
}
