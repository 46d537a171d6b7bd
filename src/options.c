#include "attache/options.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "attache/duration.h"

#define MAX_TIMEOUT_MS (7ULL * 24 * 3600 * 1000)

static const char usage[] =
"Usage: attache [OPTION]...\n"
"Transparent egress ambassador: relays the TCP connections that\n"
"attache-init's REDIRECT rules send to it, to where the app was going\n"
"(SO_ORIGINAL_DST), as the policy's routes say. Connection logs are JSON\n"
"lines on stdout, messages on stderr. SIGHUP reloads the policy file (an\n"
"invalid file keeps the current policy); SIGTERM/SIGINT drain and exit.\n"
"\n"
"  -c, --config FILE           the policy (YAML); without it, relay everything\n"
"      --check                 validate the configuration, print every error\n"
"                              and warning, exit 0 if it is valid, 1 if not\n"
"  -p, --port PORT             redirect port on 127.0.0.1 and ::1 (default:\n"
"                              the file's listen.redirect, else 15001)\n"
"      --connect-timeout DUR   upstream connect timeout, each try (the\n"
"                              policy's retry: says how many; default 5s)\n"
"      --idle-timeout DUR      close a connection idle both ways (default 1h)\n"
"      --drain-timeout DUR     on SIGTERM/SIGINT, time open connections get\n"
"                              before they are closed (default 15s)\n"
"      --mark MARK             set this socket mark (SO_MARK) on upstream\n"
"                              connections, for attache-init --proxy-mark;\n"
"                              needs CAP_NET_ADMIN\n"
"  -h, --help                  show this help and exit\n"
"      --version               show the version and exit\n"
"\n"
"DUR is a number with a unit: 250ms, 5s, 2m, 1h (no unit: seconds).\n"
"attache must run under the uid (or gid, or with the --mark) that\n"
"attache-init --proxy-uid (--proxy-gid, --proxy-mark) excludes from the\n"
"redirect, or its own upstream connections come back to it (it detects that\n"
"and refuses them).\n";

void options_defaults(struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->port = ATTACHE_DEFAULT_PORT;
	o->connect_timeout_ms = 5000;
	o->idle_timeout_ms = 3600 * 1000;
	o->drain_timeout_ms = 15000;
}

static int parse_timeout(const char *name, const char *arg, uint64_t *ms,
                         FILE *err)
{
	if (duration_parse(arg, MAX_TIMEOUT_MS, ms) < 0 || *ms == 0) {
		fprintf(err, "attache: --%s: '%s' is not a duration between "
		        "1ms and 7 days (e.g. 500ms, 5s, 2m)\n", name, arg);
		return -1;
	}
	return 0;
}

int options_parse(struct options *o, int argc, char **argv, FILE *out,
                  FILE *err)
{
	enum { OPT_CONNECT = 256, OPT_IDLE, OPT_DRAIN, OPT_VERSION, OPT_CHECK,
	       OPT_MARK };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "port", required_argument, NULL, 'p' },
		{ "connect-timeout", required_argument, NULL, OPT_CONNECT },
		{ "idle-timeout", required_argument, NULL, OPT_IDLE },
		{ "drain-timeout", required_argument, NULL, OPT_DRAIN },
		{ "mark", required_argument, NULL, OPT_MARK },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	long v;
	int c;

	optind = 0;   /* full re-initialisation: options_parse may run twice */
	opterr = 0;   /* we print our own errors */
	while ((c = getopt_long(argc, argv, ":c:p:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			o->config_path = optarg;
			break;
		case OPT_CHECK:
			o->check = true;
			break;
		case 'p':
			v = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v < 1 || v > 65535) {
				fprintf(err, "attache: --port: '%s' is not a port "
				        "(1-65535)\n", optarg);
				goto usage;
			}
			o->port = (uint16_t)v;
			o->port_set = true;
			break;
		case OPT_CONNECT:
			if (parse_timeout("connect-timeout", optarg,
			                  &o->connect_timeout_ms, err) < 0)
				goto usage;
			break;
		case OPT_IDLE:
			if (parse_timeout("idle-timeout", optarg,
			                  &o->idle_timeout_ms, err) < 0)
				goto usage;
			break;
		case OPT_DRAIN:
			if (parse_timeout("drain-timeout", optarg,
			                  &o->drain_timeout_ms, err) < 0)
				goto usage;
			break;
		case OPT_MARK: {
			unsigned long m;
			errno = 0;
			m = strtoul(optarg, &end, 0);
			if (*optarg == '\0' || *optarg == '-' || *end != '\0' ||
			    errno || m == 0 || m > 0xffffffffUL) {
				fprintf(err, "attache: --mark: '%s' is not a mark "
				        "(1-0xffffffff)\n", optarg);
				goto usage;
			}
			o->mark = (uint32_t)m;
			break;
		}
		case 'h':
			fputs(usage, out);
			return 1;
		case OPT_VERSION:
			fprintf(out, "attache %s\n", ATTACHE_VERSION);
			return 1;
		case ':':
			fprintf(err, "attache: %s needs a value\n",
			        argv[optind - 1]);
			goto usage;
		default:
			fprintf(err, "attache: unknown option '%s'\n",
			        argv[optind - 1]);
			goto usage;
		}
	}
	if (optind < argc) {
		fprintf(err, "attache: unexpected argument '%s'\n", argv[optind]);
		goto usage;
	}
	return 0;
usage:
	fprintf(err, "Try 'attache --help'.\n");
	return -1;
}
