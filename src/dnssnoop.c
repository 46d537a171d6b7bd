#include "attache/dnssnoop.h"

#include <errno.h>
#include <poll.h>
#include <event2/event.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "attache/dns.h"
#include "attache/hostmap.h"
#include "attache/log.h"
#include "attache/relay.h"

#define SNOOP_BUF (0xffff + 512)       /* one packet and its headers */
#define SNOOP_RCVBUF (4 << 20)
#define SNOOP_QMAXLEN 1024             /* past it, the kernel accepts */

struct dnssnoop {
	struct mnl_socket *nl;
	unsigned portid;
	uint16_t queue;
	struct event *ev;
	struct hostmap *map;
	uint64_t packets, unreadable;
	char buf[SNOOP_BUF];
};

int dnssnoop_packet(struct hostmap *map, const uint8_t *pkt, size_t len,
                    uint64_t now_ms)
{
	struct dns_addr a[DNS_MAX_ADDRS];
	char name[DNS_NAME_MAX];
	size_t off;
	int n, added = 0;

	if (len >= 20 && pkt[0] >> 4 == 4) {
		off = (size_t)(pkt[0] & 0x0f) * 4;
		/* UDP, and not a fragment (its offset or MF bit set) */
		if (off < 20 || pkt[9] != 17 || (((pkt[6] & 0x3f) << 8) | pkt[7]))
			return -1;
	} else if (len >= 40 && pkt[0] >> 4 == 6) {
		off = 40;
		if (pkt[6] != 17)   /* extension headers: not read */
			return -1;
	} else {
		return -1;
	}
	if (len < off + 8 || ((pkt[off] << 8) | pkt[off + 1]) != 53)
		return -1;
	/* the UDP length, not the packet's: trailing bytes are not DNS */
	size_t ulen = (size_t)((pkt[off + 4] << 8) | pkt[off + 5]);
	if (ulen < 8 || ulen > len - off)
		return -1;
	n = dns_parse_answer(pkt + off + 8, ulen - 8, name, a, DNS_MAX_ADDRS);
	for (int i = 0; i < n; i++)
		added += hostmap_add(map, name, a[i].family, a[i].addr, a[i].ttl,
		                     now_ms);
	return n < 0 ? -1 : added;
}

static int send_msg(struct dnssnoop *s, struct nlmsghdr *nlh)
{
	return mnl_socket_sendto(s->nl, nlh, nlh->nlmsg_len) < 0 ? -1 : 0;
}

static int on_packet(const struct nlmsghdr *nlh, void *arg);

/* Sends a config message and waits (up to a second) for the kernel's
 * answer: a refusal (no CAP_NET_ADMIN, a queue another process holds)
 * comes back as an error ack, not from sendto. A packet queued before the
 * ack gets its verdict here, like any other. */
static int config_msg(struct dnssnoop *s, struct nlmsghdr *nlh, uint32_t seq)
{
	struct pollfd pfd = { .fd = mnl_socket_get_fd(s->nl), .events = POLLIN };
	uint64_t deadline = relay_now_ms() + 1000;
	ssize_t n;

	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	if (send_msg(s, nlh) < 0)
		return -1;
	for (;;) {
		uint64_t now = relay_now_ms();
		if (now >= deadline ||
		    poll(&pfd, 1, (int)(deadline - now)) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = mnl_socket_recvfrom(s->nl, s->buf, sizeof(s->buf));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ENOBUFS)
				continue;
			return -1;
		}
		int rc = mnl_cb_run(s->buf, (size_t)n, seq, s->portid,
		                    on_packet, s);
		if (rc <= MNL_CB_STOP)
			return rc;   /* -1 with errno: refused; 0: acked */
	}
}

static int on_packet(const struct nlmsghdr *nlh, void *arg)
{
	struct dnssnoop *s = arg;
	struct nlattr *attr[NFQA_MAX + 1] = { 0 };
	struct nfqnl_msg_packet_hdr *ph;
	char vbuf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *v;
	uint32_t id;

	if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
		return MNL_CB_OK;
	ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	id = ntohl(ph->packet_id);
	/* The verdict first, always ACCEPT: the app's answer goes on now,
	 * whatever the parse below makes of it. */
	v = nfq_nlmsg_put(vbuf, NFQNL_MSG_VERDICT, s->queue);
	nfq_nlmsg_verdict_put(v, (int)id, NF_ACCEPT);
	if (send_msg(s, v) < 0 && send_msg(s, v) < 0)
		log_warn("dns_snoop: verdict for packet %u: %s; that answer is "
		         "held until attache exits or the queue fills", id,
		         strerror(errno));
	s->packets++;
	if (attr[NFQA_PAYLOAD] &&
	    dnssnoop_packet(s->map, mnl_attr_get_payload(attr[NFQA_PAYLOAD]),
	                    mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]),
	                    relay_now_ms()) < 0)
		s->unreadable++;
	return MNL_CB_OK;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
	struct dnssnoop *s = arg;

	for (int i = 0; i < 64; i++) {   /* then the loop's other events */
		ssize_t n = mnl_socket_recvfrom(s->nl, s->buf, sizeof(s->buf));
		if (n < 0) {
			if (errno == ENOBUFS) {
				log_warn("dns_snoop: queue messages lost (ENOBUFS); "
				         "their packets are accepted by the queue's "
				         "fail-open");
				continue;
			}
			return;   /* EAGAIN, or nothing we can do */
		}
		mnl_cb_run(s->buf, (size_t)n, 0, s->portid, on_packet, s);
	}
}

struct dnssnoop *dnssnoop_open(struct event_base *base, uint16_t queue,
                               struct hostmap *map, char *err, size_t errlen)
{
	struct dnssnoop *s = calloc(1, sizeof(*s));
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	int rcv = SNOOP_RCVBUF;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->queue = queue;
	s->map = map;
	s->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!s->nl || mnl_socket_bind(s->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		snprintf(err, errlen, "netlink socket: %s", strerror(errno));
		goto fail;
	}
	s->portid = mnl_socket_get_portid(s->nl);
	(void)setsockopt(mnl_socket_get_fd(s->nl), SOL_SOCKET, SO_RCVBUFFORCE,
	                 &rcv, sizeof(rcv));

	/* One message: bind, copy mode, queue length and fail-open arrive
	 * together, so no packet waits on a queue that cannot fail open. */
	nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, queue);
	nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, SNOOP_QMAXLEN);
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_FAIL_OPEN));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN));
	if (config_msg(s, nlh, 1) < 0) {
		int e = errno;
		snprintf(err, errlen, "bind NFQUEUE %u: %s%s", queue, strerror(e),
		         e == EPERM ? " (needs CAP_NET_ADMIN)" :
		         e == EBUSY ? " (another process reads that queue)" : "");
		goto fail;
	}
	s->ev = event_new(base, mnl_socket_get_fd(s->nl), EV_READ | EV_PERSIST,
	                  on_readable, s);
	if (!s->ev || event_add(s->ev, NULL) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return s;
fail:
	dnssnoop_close(s);
	return NULL;
}

void dnssnoop_close(struct dnssnoop *s)
{
	if (!s)
		return;
	if (s->ev)
		event_free(s->ev);
	if (s->nl) {
		/* Answers already queued get their ACCEPT before the socket
		 * goes: closing it would drop them. */
		ssize_t n;
		while ((n = mnl_socket_recvfrom(s->nl, s->buf, sizeof(s->buf))) > 0 ||
		       (n < 0 && (errno == EINTR || errno == ENOBUFS)))
			if (n > 0)
				mnl_cb_run(s->buf, (size_t)n, 0, s->portid,
				           on_packet, s);
		mnl_socket_close(s->nl);
	}
	free(s);
}
