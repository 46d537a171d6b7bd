/* attache-init: installs (or with --cleanup removes) the rules that send
 * a network namespace's outbound TCP to attache.
 *
 * For each family it reads every table with {ip,ip6}tables-<backend>-save
 * -c, builds the iptables-restore input (ruleset.c), and only then applies
 * anything: one --noflush transaction per family. If a family fails, every
 * family already touched is put back from what was read (ruleset_rollback):
 * the legacy back end commits table by table, and IPv4 may have applied
 * before IPv6 failed. */
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
#include "attache/verify.h"

extern char **environ;

static const char *const backend_name[] = {
	[BACKEND_AUTO] = "auto", [BACKEND_NFT] = "nft",
	[BACKEND_LEGACY] = "legacy",
};

struct family {
	int v;                    /* 4 or 6 */
	struct strbuf saved;      /* -save -c: what to put back */
	struct fw_state st;
	struct strbuf rules;
	bool tried;               /* restore ran: roll it back on failure */
};

/* "ip6tables-legacy-restore" */
static const char *tool(int v, enum init_backend be, const char *what)
{
	static char buf[4][48];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s-%s-%s", v == 6 ? "ip6tables"
	         : "iptables", backend_name[be], what);
	return buf[i];
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
}

/* Runs argv with input on its stdin; collects stdout and stderr. Returns
 * the exit status (0-255), or -1 if it could not run, or if its output
 * could not be kept (errno set). The input is written without blocking,
 * between reads: a tool that writes much to stderr before it has read all
 * of a large input (a rollback holds whole tables) cannot deadlock us,
 * and one that exits early is an EPIPE (SIGPIPE is ignored in main). */
static int run(char *const argv[], const char *input, struct strbuf *out,
               struct strbuf *err)
{
	int in_p[2] = { -1, -1 }, out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 };
	size_t in_len = input ? strlen(input) : 0, in_off = 0;
	int status, lost = 0;
	pid_t pid;

	if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0 ||
	    pipe2(err_p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		int e = errno;
		close_pair(in_p);
		close_pair(out_p);
		close_pair(err_p);
		errno = e;
		return -1;
	}
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
	} else {
		(void)fcntl(in_p[1], F_SETFL, O_NONBLOCK);
	}
	struct pollfd pf[3] = {
		{ .fd = out_p[0], .events = POLLIN },
		{ .fd = err_p[0], .events = POLLIN },
		{ .fd = in_p[1], .events = POLLOUT },
	};
	struct strbuf *sink[2] = { out, err };
	while (pf[0].fd >= 0 || pf[1].fd >= 0 || pf[2].fd >= 0) {
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
				if (strbuf_add(sink[i], "%.*s", (int)n, buf) < 0)
					lost = ENOMEM;
			} else if (n == 0 || errno != EINTR) {
				close(pf[i].fd);
				pf[i].fd = -1;
			}
		}
		if (pf[2].fd >= 0 && pf[2].revents) {
			ssize_t n = write(pf[2].fd, input + in_off, in_len - in_off);
			if (n > 0)
				in_off += (size_t)n;
			if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
			    in_off == in_len) {
				close(pf[2].fd);
				pf[2].fd = -1;
			}
		}
	}
	for (int i = 0; i < 3; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (lost) {
		errno = lost;
		return -1;
	}
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

/* Reads every table of family v in back end be into saved. Returns 0, or
 * -1 with why (one line) in msg. */
static int save(int v, enum init_backend be, struct strbuf *saved, char *msg,
                size_t len)
{
	const char *t = tool(v, be, "save");
	char *argv[] = { (char *)t, "-c", NULL };
	struct strbuf err = { 0 };
	int rc = run(argv, NULL, saved, &err);

	if (rc != 0)
		snprintf(msg, len, "%s: %s", t, rc < 0 ? strerror(errno)
		                                       : first_line(&err));
	strbuf_free(&err);
	return rc == 0 ? 0 : -1;
}

static int restore(int v, enum init_backend be, const char *input, bool noflush)
{
	const char *t = tool(v, be, "restore");
	/* a rollback puts the counters back too */
	char *argv[] = { (char *)t, "--wait",
	                 noflush ? "--noflush" : "--counters", NULL };
	struct strbuf out = { 0 }, err = { 0 };
	int rc = run(argv, input, &out, &err);

	if (rc != 0)
		fprintf(stderr, "attache-init: IPv%d: %s failed: %s\n", v, t,
		        rc < 0 ? strerror(errno) : first_line(&err));
	strbuf_free(&out);
	strbuf_free(&err);
	return rc == 0 ? 0 : -1;
}

static char first_char(const char *path, char dflt)
{
	FILE *f = fopen(path, "r");
	char c = dflt;

	if (f) {
		if (fread(&c, 1, 1, f) != 1)
			c = dflt;
		fclose(f);
	}
	return c;
}

/* IPv6 is on in this netns: the kernel has it, and it is not disabled for
 * all interfaces and new ones, or an interface other than lo has an
 * IPv6 address anyway. */
static bool ipv6_on(void)
{
	char line[256];
	bool on = false;
	FILE *f;

	if (!(f = fopen("/proc/net/if_inet6", "r")))
		return false;
	while (!on && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		const char *dev = strrchr(line, ' ');
		on = dev && strcmp(dev + 1, "lo") != 0;
	}
	fclose(f);
	return on ||
	       first_char("/proc/sys/net/ipv6/conf/all/disable_ipv6", '1') == '0' ||
	       first_char("/proc/sys/net/ipv6/conf/default/disable_ipv6", '1') == '0';
}

/* The legacy back end has tables in this netns (it may hold rules even
 * when its tools cannot read them: they need CAP_NET_RAW). */
static bool legacy_in_use(void)
{
	return first_char("/proc/net/ip_tables_names", '\0') != '\0' ||
	       first_char("/proc/net/ip6_tables_names", '\0') != '\0';
}

/* auto: the back end that holds our chains, else the one whose nat tables
 * hold rules, else nft. */
static enum init_backend pick_backend(const struct init_opts *o, size_t nf)
{
	bool usable[2] = { false, false }, mine[2] = { false, false };
	size_t nat[2] = { 0, 0 };
	char why[2][256] = { "", "" };

	if (o->backend != BACKEND_AUTO)
		return o->backend;
	for (int b = 0; b < 2; b++) {
		for (size_t i = 0; i < nf; i++) {
			int v = i == 0 ? 4 : 6;
			struct strbuf s = { 0 };
			struct fw_state st;
			const char *e;
			if (save(v, b == 0 ? BACKEND_NFT : BACKEND_LEGACY, &s,
			         why[b], sizeof(why[b])) < 0) {
				strbuf_free(&s);
				usable[b] = false;
				break;
			}
			usable[b] = true;
			if (fw_state_parse(s.p ? s.p : "", &st, &e) == 0) {
				mine[b] |= fw_state_ours(&st);
				nat[b] += st.t[RS_NAT].nrules;
				fw_state_free(&st);
			}
			strbuf_free(&s);
		}
	}
	if (!usable[1] && legacy_in_use()) {
		fprintf(stderr, "attache-init: this netns has iptables-legacy "
		        "tables, but they cannot be read: %s (iptables-legacy needs "
		        "CAP_NET_RAW as well as CAP_NET_ADMIN; or --backend)\n",
		        why[1]);
		return BACKEND_AUTO;
	}
	enum init_backend be = ruleset_pick_backend(usable, mine, nat);
	if (be == BACKEND_AUTO)
		fprintf(stderr, "attache-init: no iptables back end works here: "
		        "%s; %s\n", why[0], why[1]);
	else if (mine[0] && mine[1])
		fprintf(stderr, "attache-init: warning: attache's chains are in "
		        "both back ends; updating %s's (--cleanup removes both)\n",
		        backend_name[be]);
	else if (usable[0] && usable[1] && nat[0] && nat[1] && !mine[0] && !mine[1])
		fprintf(stderr, "attache-init: warning: both back ends hold nat "
		        "rules (nft %zu, legacy %zu); using %s (--backend to "
		        "choose)\n", nat[0], nat[1], backend_name[be]);
	return be;
}

/* Puts back every family that was tried. */
static void rollback(struct family *fams, size_t nf, enum init_backend be)
{
	for (size_t i = 0; i < nf; i++) {
		struct strbuf in = { 0 };
		if (!fams[i].tried)
			continue;
		if (ruleset_rollback(fams[i].saved.p, fams[i].rules.p, &in) < 0 ||
		    restore(fams[i].v, be, in.p, false) < 0)
			fprintf(stderr, "attache-init: IPv%d: COULD NOT PUT BACK the "
			        "rules as they were; check %s\n", fams[i].v,
			        tool(fams[i].v, be, "save"));
		else
			fprintf(stderr, "attache-init: IPv%d: rules put back as they "
			        "were\n", fams[i].v);
		strbuf_free(&in);
	}
}

/* Reads, builds and applies for one back end. Returns 0; 1 when applying
 * failed (what was touched is put back); 2 when the rules could not be
 * read or built (nothing was touched). *changed: something was applied.
 * IPv6 (fams[1]) is skipped when it cannot be read and need6 is false. */
static int install_or_cleanup(const struct init_opts *o, enum init_backend be,
                              struct family *fams, size_t *nf, bool need6,
                              bool *changed)
{
	char msg[512];
	const char *e;

	/* Read and build everything before applying anything. */
	for (size_t i = 0; i < *nf; i++) {
		struct family *f = &fams[i];
		if (save(f->v, be, &f->saved, msg, sizeof(msg)) < 0) {
			if (f->v == 6 && !need6) {
				*nf = 1;
				break;
			}
			fprintf(stderr, "attache-init: IPv%d: cannot read the rules: "
			        "%s\n", f->v, msg);
			return 2;
		}
		if (fw_state_parse(f->saved.p ? f->saved.p : "", &f->st, &e) < 0) {
			fprintf(stderr, "attache-init: IPv%d: %s\n", f->v, e);
			return 2;
		}
		if ((o->cleanup ? ruleset_cleanup(&f->st, &f->rules)
		                : ruleset_install(o, f->v, &f->st, &f->rules)) < 0) {
			fprintf(stderr, "attache-init: out of memory\n");
			return 2;
		}
		/* A table iptables-nft cannot show (native nft rules) would be
		 * flushed by a rollback that never saw its rules. */
		for (int t = 0; t < RS_NTABLES; t++)
			if (f->st.t[t].incompatible &&
			    ruleset_touches(f->rules.p, (enum rs_table)t)) {
				fprintf(stderr, "attache-init: IPv%d: the %s table "
				        "holds rules %s cannot show (made with nft?); "
				        "attache-init leaves it alone\n", f->v,
				        ruleset_table_name((enum rs_table)t),
				        tool(f->v, be, "save"));
				return 2;
			}
	}
	if (o->dry_run) {
		for (size_t i = 0; i < *nf; i++)
			printf("# %s --noflush\n%s", tool(fams[i].v, be, "restore"),
			       fams[i].rules.len ? fams[i].rules.p
			                         : "# (nothing to do)\n");
		return 0;
	}
	for (size_t i = 0; i < *nf; i++) {
		if (fams[i].rules.len == 0)
			continue;
		fams[i].tried = true;
		if (restore(fams[i].v, be, fams[i].rules.p, true) < 0) {
			rollback(fams, *nf, be);
			return 1;
		}
	}
	for (size_t i = 0; i < *nf; i++)
		*changed |= fams[i].tried;
	return 0;
}

static void free_families(struct family *fams, size_t nf)
{
	for (size_t i = 0; i < nf; i++) {
		strbuf_free(&fams[i].saved);
		strbuf_free(&fams[i].rules);
		fw_state_free(&fams[i].st);
		fams[i].tried = false;
	}
}

static void describe(const struct init_opts *o, enum init_backend be,
                     bool v6)
{
	char ex[128] = "";
	size_t n = 0;

	if (o->have_uid)
		n += (size_t)snprintf(ex + n, sizeof(ex) - n, "uid %u, ", o->proxy_uid);
	if (o->have_gid)
		n += (size_t)snprintf(ex + n, sizeof(ex) - n, "gid %u, ", o->proxy_gid);
	if (o->have_mark)
		n += (size_t)snprintf(ex + n, sizeof(ex) - n, "mark 0x%x, ",
		                      o->proxy_mark);
	printf("attache-init: iptables-%s: redirecting IPv4%s TCP to port %u "
	       "(%sloopback%s excluded)%s%s%s\n", backend_name[be],
	       v6 && o->ipv6 == IPV6_REDIRECT ? " and IPv6" : "",
	       o->redirect_port, ex,
	       o->n_exclude_cidrs || o->n_exclude_ports ? ", the exclusions" : "",
	       !v6 ? "; IPv6: not in this netns, no rules"
	           : o->ipv6 == IPV6_REJECT ? "; IPv6 egress rejected" : "",
	       o->lockdown ? "; lockdown" : "",
	       o->have_dns_queue ? "; DNS answers to NFQUEUE" : "");
}

int main(int argc, char **argv)
{
	struct family fams[2] = { { .v = 4 }, { .v = 6 } };
	struct init_opts o;
	enum init_backend be;
	bool v6 = ipv6_on(), changed = false;
	size_t nf = v6 ? 2 : 1;
	char msg[512];
	int rc = 1;

	/* A tool that exits before reading all its input is an EPIPE; an
	 * inherited SIGCHLD ignore would make waitpid fail. */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGCHLD, SIG_DFL);
	switch (init_opts_parse(&o, argc, argv, environ, stdout, stderr)) {
	case 1:
		return 0;
	case -1:
		return 2;
	}

	if (o.cleanup) {
		/* Everything of ours, wherever it is: both back ends, and IPv6
		 * too if its tools can read it, even with IPv6 now off. */
		bool any = false;
		rc = 0;
		for (enum init_backend b = BACKEND_NFT; b <= BACKEND_LEGACY; b++) {
			if (o.backend != BACKEND_AUTO && o.backend != b)
				continue;
			bool ch = false;
			size_t n = 2;
			int r = install_or_cleanup(&o, b, fams, &n, v6, &ch);
			/* auto: a back end nobody can read holds nothing of ours,
			 * unless it has tables (legacy: CAP_NET_RAW missing) */
			if (r == 1 || (r == 2 && (o.backend == b ||
			                          (b == BACKEND_LEGACY && legacy_in_use()))))
				rc = 1;
			if (ch && !o.dry_run)
				printf("attache-init: iptables-%s: removed attache's "
				       "chains from IPv4%s\n", backend_name[b],
				       n == 2 ? " and IPv6" : "");
			any |= ch;
			free_families(fams, 2);
		}
		if (!any && !o.dry_run && rc == 0)
			printf("attache-init: nothing of attache's to remove\n");
		return rc;
	}

	if ((be = pick_backend(&o, nf)) == BACKEND_AUTO)
		return 1;
	rc = install_or_cleanup(&o, be, fams, &nf, true, &changed) ? 1 : 0;
	if (rc != 0 || o.dry_run)
		goto out;
	describe(&o, be, v6);
	if (o.verify) {
		for (size_t i = 0; i < nf; i++) {
			int r = init_verify(&o, fams[i].v, msg, sizeof(msg));
			fprintf(r < 0 ? stderr : stdout, "attache-init: %s%s\n",
			        r < 0 ? "--verify failed: " : "", msg);
			if (r < 0)
				rc = 3;
		}
	}
out:
	free_families(fams, nf);
	return rc;
}
