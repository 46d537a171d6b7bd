# Shared by the benchmarks: a two-namespace world, a PKI, process CPU.
# Source it; it sets APP, EXT, WORK and an EXIT trap that tears down.
set -euo pipefail
BENCH_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APP=attache-bench-app
EXT=attache-bench-ext
PROXY_UID=1337
WORK=$(mktemp -d /tmp/attache-bench.XXXXXX)
chmod 755 "$WORK"
BENCH_PIDS=()

bench_cleanup() {
	for p in "${BENCH_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	ip netns pids "$APP" 2>/dev/null | xargs -r kill 2>/dev/null || true
	ip netns pids "$EXT" 2>/dev/null | xargs -r kill 2>/dev/null || true
	ip netns del "$APP" 2>/dev/null || true
	ip netns del "$EXT" 2>/dev/null || true
	rm -rf "/etc/netns/$APP" "$WORK"
}
trap bench_cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "bench: run it as root" >&2; exit 1; }

bench_world() {
	ip netns del "$APP" 2>/dev/null || true
	ip netns del "$EXT" 2>/dev/null || true
	ip netns add "$APP"
	ip netns add "$EXT"
	ip link add veth-app netns "$APP" type veth peer name veth-ext netns "$EXT"
	ip -n "$APP" addr add 203.0.113.1/24 dev veth-app
	ip -n "$EXT" addr add 203.0.113.7/24 dev veth-ext
	for ns in "$APP" "$EXT"; do ip -n "$ns" link set lo up; done
	ip -n "$APP" link set veth-app up
	ip -n "$EXT" link set veth-ext up
	mkdir -p "/etc/netns/$APP"
	echo "203.0.113.7 api.partner.example" > "/etc/netns/$APP/hosts"
}

bench_pki() {   # a CA and a certificate for api.partner.example in $WORK
	(cd "$WORK"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout ca.key -out ca.pem -subj "/CN=attache bench CA" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout api.key -out api.csr -subj "/CN=api.partner.example" 2>/dev/null
	printf 'subjectAltName=DNS:api.partner.example\nbasicConstraints=CA:FALSE\n' > api.ext
	openssl x509 -req -in api.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile api.ext -out api.pem 2>/dev/null
	chmod 644 ./*.pem ./*.key)
}

bench_wait_port() {   # NS PORT
	for _ in $(seq 200); do
		ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q LISTEN && return 0
		sleep 0.05
	done
	echo "bench: nothing listens on $2 in $1" >&2
	exit 1
}

# utime+stime of a process and its threads, in clock ticks
bench_cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

bench_rss_kib() {   # "VmRSS/RssAnon": all resident pages / the process's own
	awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } END { print r "/" a }' "/proc/$1/status"
}
