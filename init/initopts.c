#include "attache/initopts.h"

#include <getopt.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
"Usage: attache-init --proxy-uid USER [OPTION]...\n"
"       attache-init --cleanup [OPTION]...\n"
"Installs the nat rules that send this network namespace's outbound TCP to\n"
"attache's redirect port, in a chain of its own (" RULESET_CHAIN "), applied\n"
"atomically with iptables-restore --noflush (ip6tables-restore for IPv6).\n"
"Running it again leaves the same rules. Needs CAP_NET_ADMIN.\n"
"\n"
"      --proxy-uid USER     uid (name or number) attache runs as; its own\n"
"                           connections are not redirected (required)\n"
"      --redirect-port PORT attache's redirect port (default 15001)\n"
"      --ipv6 MODE          auto|on|off: also redirect IPv6 (default auto:\n"
"                           on when the kernel has IPv6)\n"
"      --dry-run            print the exact iptables-restore input, apply nothing\n"
"      --cleanup            remove every rule and chain attache-init added,\n"
"                           and nothing else\n"
"  -h, --help               show this help and exit\n"
"      --version            show the version and exit\n"
"\n"
"Loopback traffic (-o lo, 127.0.0.0/8, ::1) is never redirected.\n"
"Exit status: 0 applied (or nothing to do), 1 could not apply (the rules in\n"
"place before are left as they were), 2 bad usage.\n";

static int parse_uid(const char *s, uint32_t *uid)
{
	char *end;
	unsigned long v;
	struct passwd *pw;

	if (*s >= '0' && *s <= '9') {
		v = strtoul(s, &end, 10);
		if (*end != '\0' || v >= 0xffffffffUL)
			return -1;
		*uid = (uint32_t)v;
		return 0;
	}
	pw = getpwnam(s);
	if (!pw)
		return -1;
	*uid = (uint32_t)pw->pw_uid;
	return 0;
}

int init_opts_parse(struct init_opts *o, int argc, char **argv, FILE *out,
                    FILE *err)
{
	enum { O_UID = 256, O_PORT, O_IPV6, O_DRY, O_CLEANUP, O_VERSION };
	static const struct option longopts[] = {
		{ "proxy-uid", required_argument, NULL, O_UID },
		{ "redirect-port", required_argument, NULL, O_PORT },
		{ "ipv6", required_argument, NULL, O_IPV6 },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "cleanup", no_argument, NULL, O_CLEANUP },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int c;

	memset(o, 0, sizeof(*o));
	o->redirect_port = 15001;
	o->ipv6 = IPV6_AUTO;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case O_UID:
			if (parse_uid(optarg, &o->proxy_uid) < 0) {
				fprintf(err, "attache-init: --proxy-uid: '%s' is "
				        "neither a uid nor a known user\n", optarg);
				goto usage;
			}
			o->have_uid = true;
			break;
		case O_PORT:
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 1 || v > 65535) {
				fprintf(err, "attache-init: --redirect-port: '%s' "
				        "is not a port (1-65535)\n", optarg);
				goto usage;
			}
			o->redirect_port = (uint16_t)v;
			break;
		case O_IPV6:
			if (strcmp(optarg, "auto") == 0)
				o->ipv6 = IPV6_AUTO;
			else if (strcmp(optarg, "on") == 0)
				o->ipv6 = IPV6_ON;
			else if (strcmp(optarg, "off") == 0)
				o->ipv6 = IPV6_OFF;
			else {
				fprintf(err, "attache-init: --ipv6: '%s' is not "
				        "auto, on or off\n", optarg);
				goto usage;
			}
			break;
		case O_DRY:
			o->dry_run = true;
			break;
		case O_CLEANUP:
			o->cleanup = true;
			break;
		case 'h':
			fputs(usage, out);
			return 1;
		case O_VERSION:
			fprintf(out, "attache-init %s\n", ATTACHE_VERSION);
			return 1;
		case ':':
			fprintf(err, "attache-init: %s needs a value\n",
			        argv[optind - 1]);
			goto usage;
		default:
			fprintf(err, "attache-init: unknown option '%s'\n",
			        argv[optind - 1]);
			goto usage;
		}
	}
	if (optind < argc) {
		fprintf(err, "attache-init: unexpected argument '%s'\n",
		        argv[optind]);
		goto usage;
	}
	if (!o->cleanup && !o->have_uid) {
		fprintf(err, "attache-init: --proxy-uid is required: without it "
		        "attache's own connections would be redirected back to it\n");
		goto usage;
	}
	return 0;
usage:
	fprintf(err, "Try 'attache-init --help'.\n");
	return -1;
}
