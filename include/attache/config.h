/* The egress policy: one YAML file read into an immutable struct.
 *
 * A reload builds a new config and swaps the proxy's pointer; connections
 * hold a reference to the config they started with, so they finish on it
 * while new ones see the new one. */
#ifndef ATTACHE_CONFIG_H
#define ATTACHE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "attache/common.h"

struct tls_ctx;

enum action { ACTION_PASS, ACTION_DENY, ACTION_TLS };
enum protocol { PROTO_TCP, PROTO_HTTP, PROTO_TLS };

struct cidr {
	int family;            /* AF_INET or AF_INET6 */
	uint8_t addr[16];      /* network byte order, host bits zero */
	uint8_t plen;
};

struct port_range {
	uint16_t lo, hi;       /* inclusive */
};

/* A route's pooling, as the config states it. */
struct pool_limits {
	unsigned max_idle;            /* idle connections kept per upstream */
	uint64_t idle_timeout_ms;     /* ... for at most this long */
	unsigned max_per_upstream;    /* open connections; 0: no limit */
	unsigned max_requests;        /* per connection; 0: no limit */
	unsigned queue_max;           /* requests waiting for a connection */
	uint64_t queue_timeout_ms;    /* ... each for at most this long */
};

#define POOL_DEFAULT_MAX_IDLE 16
#define POOL_DEFAULT_IDLE_TIMEOUT_MS 30000
#define POOL_DEFAULT_MAX_PER_UPSTREAM 64
#define POOL_DEFAULT_MAX_REQUESTS 1000
#define POOL_DEFAULT_QUEUE_MAX 256
#define POOL_DEFAULT_QUEUE_TIMEOUT_MS 5000

/* Retries, timeouts and the circuit: the resilience policy of a route
 * (a route's blocks override the top-level ones key by key). */
#define POLICY_MAX_STATUSES 8
#define RETRY_ON_RESET 1u          /* reset or closed before any response */
#define RETRY_ON_TIMEOUT 2u        /* per_try_timeout ran out */

struct policy {
	/* retry: */
	unsigned attempts;            /* tries in all, the first included */
	unsigned retry_on;            /* RETRY_ON_*, for idempotent requests */
	uint16_t retry_status[POLICY_MAX_STATUSES];
	unsigned nretry_status;
	uint64_t backoff_base_ms, backoff_cap_ms;
	uint64_t per_try_timeout_ms;  /* 0: none, the request timeout only */
	unsigned budget_pct;          /* retries per 100 requests, per upstream */
	unsigned budget_floor;        /* ... plus this many per second */
	/* timeout: */
	uint64_t request_timeout_ms;  /* until the response head; 0: none */
	/* circuit: */
	unsigned circuit_failures;    /* consecutive; 0: no circuit breaker */
	uint64_t circuit_open_ms, circuit_open_max_ms;
	uint16_t circuit_status[POLICY_MAX_STATUSES];   /* count as failures */
	unsigned ncircuit_status;
	unsigned max_active;          /* requests in flight per upstream; 0: any */
};

#define POLICY_DEFAULT_ATTEMPTS 3
#define POLICY_DEFAULT_BACKOFF_BASE_MS 25
#define POLICY_DEFAULT_BACKOFF_CAP_MS 250
#define POLICY_DEFAULT_BUDGET_PCT 20
#define POLICY_DEFAULT_BUDGET_FLOOR 10
#define POLICY_BUDGET_WINDOW_MS 10000
#define POLICY_DEFAULT_REQUEST_TIMEOUT_MS 30000
#define POLICY_DEFAULT_CIRCUIT_FAILURES 5
#define POLICY_DEFAULT_CIRCUIT_OPEN_MS 10000
#define POLICY_DEFAULT_CIRCUIT_OPEN_MAX_MS 300000

/* Is status in the list? */
bool policy_has_status(const uint16_t *list, unsigned n, int status);

struct route {
	char *name;
	struct cidr *cidrs;
	size_t ncidrs;         /* 0: any destination address */
	struct port_range *ports;
	size_t nports;         /* 0: any port */
	char **hosts;          /* lower case; "*.example.com" wildcards */
	size_t nhosts;         /* 0: any name (or none) */
	enum action action;
	enum protocol protocol;
	char *hostname;        /* the name fixed in the route, or NULL */
	/* action tls: */
	struct tls_ctx *tls;   /* trust, versions, client cert, pins, sessions */
	uint16_t tls_port;     /* 0: the original port */
	bool tls_verify;       /* false only with an explicit verify: false */
	/* protocol http: */
	struct pool_limits pool;
	bool via;              /* add "Via: 1.1 attache" to requests */
	struct policy policy;  /* retry, timeout, circuit */
	unsigned line;         /* where it was written, for messages */
};

struct config {
	int refs;
	char *path;            /* NULL for the built-in default */
	uint16_t redirect_port;   /* 0: not set in the file */
	char *admin;           /* reserved: validated, not served yet */
	enum action default_action;
	struct port_range *http_ports;
	size_t nhttp_ports;
	uint64_t sniff_timeout_ms;
	uint32_t sniff_max_bytes;
	struct pool_limits pool;   /* top-level pool:, the routes' default */
	struct policy policy;      /* top-level retry/timeout/circuit: ditto */
	/* dns_snoop: the names behind addresses, from the apps' DNS answers */
	uint16_t dns_queue;        /* its NFQUEUE number, when dns_queue_set */
	bool dns_queue_set;
	uint32_t dns_max_entries;
	uint32_t dns_ttl_floor_s, dns_ttl_cap_s;
	struct route *routes;
	size_t nroutes;
};

#define CONFIG_DNS_MAX_ENTRIES 4096
#define CONFIG_DNS_TTL_FLOOR_S 30
#define CONFIG_DNS_TTL_CAP_S 3600
#define CONFIG_SNIFF_TIMEOUT_MS 1000
#define CONFIG_SNIFF_MAX_BYTES 16384
#define CONFIG_MAX_FILE (1 << 20)

/* Everything a load had to say: "FILE:LINE:COL: error: ..." lines. */
struct diag {
	char *text;
	size_t len, cap;
	unsigned errors, warnings;
};
void diag_free(struct diag *d);

/* Parses YAML text (name is used in messages). Returns a config with one
 * reference, or NULL when there was any error; every error and warning is
 * appended to d, not just the first. */
ATT_MUST_CHECK struct config *config_parse(const char *name, const char *text,
                                           size_t len, struct diag *d);

/* Reads and parses a file (at most CONFIG_MAX_FILE bytes). */
ATT_MUST_CHECK struct config *config_load(const char *path, struct diag *d);

/* The built-in policy without -c: no routes, default pass. */
ATT_MUST_CHECK struct config *config_default(void);

struct config *config_ref(struct config *c);
void config_unref(struct config *c);

const char *action_str(enum action a);
const char *protocol_str(enum protocol p);

#endif
