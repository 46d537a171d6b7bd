/* attache-init: installs (or with --cleanup removes) the REDIRECT rules
 * that send a network namespace's outbound TCP to attache.
 *
 * It reads the nat table with {ip,ip6}tables-save, builds the
 * iptables-restore input for each family (ruleset.c), and applies each in
 * one --noflush transaction, so a failure leaves that family's rules as
 * they were. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attache/initopts.h"
#include "attache/ruleset.h"

struct family {
	int v;                    /* 4 or 6 */
	const char *save, *restore;
	struct nat_state st;
	struct strbuf rules;
};

static int append(struct strbuf *b, const char *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Runs argv with input on its stdin; collects stdout and stderr. Returns
 * the exit status (0-255), or -1 if it could not run (errno set). */
static int run(char *const argv[], const char *input, struct strbuf *out,
               struct strbuf *err)
{
	int in_p[2], out_p[2], err_p[2], status;
	size_t in_len = input ? strlen(input) : 0, in_off = 0;
	pid_t pid;

	if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0 ||
	    pipe2(err_p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(in_p[0], 0);
		dup2(out_p[1], 1);
		dup2(err_p[1], 2);
		execvp(argv[0], argv);
		fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(in_p[0]);
	close(out_p[1]);
	close(err_p[1]);
	if (in_len == 0) {
		close(in_p[1]);
		in_p[1] = -1;
	}
	struct pollfd pf[3] = {
		{ .fd = out_p[0], .events = POLLIN },
		{ .fd = err_p[0], .events = POLLIN },
		{ .fd = in_p[1], .events = POLLOUT },
	};
	struct strbuf *sink[2] = { out, err };
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		if (poll(pf, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			char buf[4096];
			ssize_t n;
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			n = read(pf[i].fd, buf, sizeof(buf));
			if (n > 0) {
				(void)append(sink[i], buf, (size_t)n);
			} else if (n == 0 || errno != EINTR) {
				close(pf[i].fd);
				pf[i].fd = -1;
			}
		}
		if (pf[2].fd >= 0 && pf[2].revents) {
			ssize_t n = write(pf[2].fd, input + in_off, in_len - in_off);
			if (n > 0)
				in_off += (size_t)n;
			if (n < 0 || in_off == in_len) {
				close(pf[2].fd);
				pf[2].fd = -1;
			}
		}
	}
	if (pf[2].fd >= 0)
		close(pf[2].fd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* The first line of a tool's stderr, for one-line errors. */
static const char *first_line(struct strbuf *b)
{
	if (!b->p || !b->len)
		return "(no message)";
	char *nl = strchr(b->p, '\n');
	if (nl)
		*nl = '\0';
	return b->p;
}

static int read_state(struct family *f, bool dry_run)
{
	char *argv[] = { (char *)f->save, "-t", "nat", NULL };
	struct strbuf out = { 0 }, err = { 0 };
	const char *why = NULL;
	int rc = run(argv, NULL, &out, &err);

	if (rc != 0) {
		fprintf(stderr, "attache-init: IPv%d: cannot read the nat table "
		        "with %s: %s\n", f->v, f->save,
		        rc < 0 ? strerror(errno) : first_line(&err));
		strbuf_free(&out);
		strbuf_free(&err);
		return -1;
	}
	rc = nat_state_parse(out.p ? out.p : "", &f->st, &why);
	if (rc < 0)
		fprintf(stderr, "attache-init: IPv%d: %s\n", f->v, why);
	strbuf_free(&out);
	strbuf_free(&err);
	(void)dry_run;
	return rc;
}

static int apply(struct family *f)
{
	char *argv[] = { (char *)f->restore, "--noflush", "--wait", NULL };
	struct strbuf out = { 0 }, err = { 0 };
	int rc = run(argv, f->rules.p, &out, &err);

	if (rc != 0)
		fprintf(stderr, "attache-init: IPv%d: %s failed, rules left as "
		        "they were: %s\n", f->v, f->restore,
		        rc < 0 ? strerror(errno) : first_line(&err));
	strbuf_free(&out);
	strbuf_free(&err);
	return rc == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct family fams[2] = {
		{ .v = 4, .save = "iptables-save", .restore = "iptables-restore" },
		{ .v = 6, .save = "ip6tables-save", .restore = "ip6tables-restore" },
	};
	struct init_opts o;
	size_t nf = 1;
	int rc = 1;

	switch (init_opts_parse(&o, argc, argv, stdout, stderr)) {
	case 1:
		return 0;
	case -1:
		return 2;
	}
	if (o.ipv6 == IPV6_ON ||
	    (o.ipv6 == IPV6_AUTO && access("/proc/net/if_inet6", F_OK) == 0))
		nf = 2;

	/* Read and build everything before applying anything. */
	for (size_t i = 0; i < nf; i++) {
		struct family *f = &fams[i];
		if (read_state(f, o.dry_run) < 0)
			goto out;
		if ((o.cleanup ? ruleset_cleanup(&f->st, &f->rules)
		               : ruleset_install(&o, f->v, &f->st, &f->rules)) < 0) {
			fprintf(stderr, "attache-init: out of memory\n");
			goto out;
		}
	}
	if (o.dry_run) {
		for (size_t i = 0; i < nf; i++)
			printf("# %s --noflush\n%s", fams[i].restore,
			       fams[i].rules.len ? fams[i].rules.p
			                         : "# (nothing to do)\n");
		rc = 0;
		goto out;
	}
	/* XXX: each family is atomic on its own; if IPv6 fails after IPv4
	 * applied, IPv4 keeps its new rules. Issue 6/6 rolls IPv4 back. */
	for (size_t i = 0; i < nf; i++) {
		if (fams[i].rules.len == 0)
			continue;
		if (apply(&fams[i]) < 0)
			goto out;
	}
	if (o.cleanup)
		printf("attache-init: removed %s from IPv4%s\n", RULESET_CHAIN,
		       nf == 2 ? " and IPv6" : "");
	else
		printf("attache-init: redirecting IPv4%s TCP to port %u (uid %u "
		       "and loopback excluded)\n", nf == 2 ? " and IPv6" : "",
		       o.redirect_port, o.proxy_uid);
	rc = 0;
out:
	for (size_t i = 0; i < 2; i++) {
		nat_state_free(&fams[i].st);
		strbuf_free(&fams[i].rules);
	}
	return rc;
}
