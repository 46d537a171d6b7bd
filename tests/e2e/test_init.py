"""attache-init against real iptables in fresh namespaces, on both back ends
(iptables-nft and iptables-legacy, called by their own binaries) and both
families. Traffic is counted where it lands: on ext, by counting rules."""
import os
import re
import subprocess

import pytest

from conftest import EXT_V4, EXT_V4B, EXT_V6, PROXY_UID, sh

BACKENDS = ("nft", "legacy")
DOC_V4, DOC_V6 = "192.0.2.1", "2001:db8:ffff::1"   # --verify's targets


def snapshot(world, backend="nft"):
    """Both families' rules in one back end, without timestamp comments
    and counters (legacy prints a chain's even without -c)."""
    out = []
    for fam in ("iptables", "ip6tables"):
        r = sh("ip", "netns", "exec", world.app, f"{fam}-{backend}-save")
        out += [re.sub(r"\[\d+:\d+\]$", "[0:0]", l) for l in r.stdout.splitlines()
                if not l.startswith("#")]
    return out


def ours(world, backend):
    return [l for l in snapshot(world, backend) if "ATTACHE" in l]


def seed_unrelated_rules(world, backend="nft"):
    """Rules someone else owns, which attache-init must leave alone."""
    for fam in ("iptables", "ip6tables"):
        tool = f"{fam}-{backend}"
        dst = "198.51.100.9" if fam == "iptables" else "2001:db8::9"
        sh("ip", "netns", "exec", world.app, tool, "-t", "nat", "-A", "OUTPUT",
           "-d", dst, "-j", "RETURN")
        sh("ip", "netns", "exec", world.app, tool, "-A", "OUTPUT", "-p", "udp",
           "--dport", "9", "-j", "DROP")
        sh("ip", "netns", "exec", world.app, tool, "-t", "mangle", "-A", "INPUT",
           "-p", "udp", "--sport", "9", "-j", "ACCEPT")


def count(world, tag, *match, v6=False):
    """A counting rule on ext's INPUT (no target: it only counts)."""
    sh("ip", "netns", "exec", world.ext, "ip6tables" if v6 else "iptables", "-w",
       "-I", "INPUT", *match, "-m", "comment", "--comment", tag)


def counted(world, tag, v6=False):
    out = sh("ip", "netns", "exec", world.ext, "ip6tables" if v6 else "iptables",
             "-w", "-nvxL", "INPUT").stdout
    for line in out.splitlines():
        if f"/* {tag} */" in line:
            return int(line.split()[0])
    raise AssertionError(out)


def count_syns(world, tag, dst, port):
    v6 = ":" in dst
    count(world, tag, "-d", dst, "-p", "tcp", "--syn", "--dport", str(port), v6=v6)


def probe(world, to, uid=None):
    """Connects and sends a line; "hello\n" back means an echo server on ext
    (or attache relaying to it) answered."""
    return world.client("c-probe", "--to", to, "--timeout", "0.5", uid=uid)


def reached(r):
    return r.get("data") == "hello\n"


def doc_routes(world):
    """Routes to --verify's documentation addresses, which ext holds: a
    connection that escapes the redirect lands there, on an address these
    tests made, and nowhere else."""
    sh("ip", "-n", world.app, "route", "add", "192.0.2.0/24", "dev", "veth-app")
    sh("ip", "-n", world.app, "-6", "route", "add", "2001:db8:ffff::/64", "dev", "veth-app")
    sh("ip", "-n", world.ext, "addr", "add", DOC_V4 + "/32", "dev", "veth-ext")
    sh("ip", "-n", world.ext, "addr", "add", DOC_V6 + "/128", "dev", "veth-ext", "nodad")


def shim(tmp_path, name, body):
    """A stand-in for one iptables tool, first in PATH."""
    p = tmp_path / name
    p.write_text("#!/bin/bash\n" + body)
    p.chmod(0o755)
    return str(tmp_path)


# ---- rules: idempotent, exact, removable, on either back end

@pytest.mark.parametrize("backend", BACKENDS)
def test_twice_then_cleanup_leaves_no_trace(world, backend):
    other = "legacy" if backend == "nft" else "nft"
    seed_unrelated_rules(world, backend)
    before = snapshot(world, backend)
    args = ("--proxy-uid", str(PROXY_UID), "--lockdown", "--dns-queue", "7",
            "--exclude-cidrs", "10.0.0.0/8,fd00::/8", "--backend", backend)
    r = world.init(*args)
    assert f"iptables-{backend}: redirecting IPv4 and IPv6 TCP to port 15001" in r.stdout
    once = snapshot(world, backend)
    for chain in ("ATTACHE_OUTPUT", "ATTACHE_EGRESS", "ATTACHE_DNS"):
        assert sum(l.endswith(f"-j {chain}") for l in once) == 2, once   # a jump per family
    assert sum("REDIRECT --to-ports 15001" in l for l in once) == 2
    assert sum("-d 10.0.0.0/8" in l for l in once) == 2      # nat and filter, IPv4
    assert sum("-d fd00::/8" in l for l in once) == 2        # ... and IPv6
    world.init(*args)
    assert snapshot(world, backend) == once                  # idempotent
    assert ours(world, other) == []                          # one back end only
    # Dropping --lockdown and --dns-queue takes their chains away.
    world.init("--proxy-uid", str(PROXY_UID), "--backend", backend)
    assert not any("ATTACHE_EGRESS" in l or "ATTACHE_DNS" in l
                   for l in snapshot(world, backend))
    r = world.init("--cleanup")
    assert f"iptables-{backend}: removed attache's chains from IPv4 and IPv6" in r.stdout
    assert snapshot(world, backend) == before                # no trace
    r = world.init("--cleanup")                              # nothing left to do
    assert r.returncode == 0 and "nothing of attache's to remove" in r.stdout
    assert snapshot(world, backend) == before


def test_auto_backend_is_the_one_holding_rules(world):
    sh("ip", "netns", "exec", world.app, "iptables-legacy", "-t", "nat", "-A",
       "OUTPUT", "-d", "198.51.100.9", "-j", "RETURN")
    r = world.init("--proxy-uid", str(PROXY_UID))
    assert "iptables-legacy:" in r.stdout
    assert ours(world, "legacy") and not ours(world, "nft")
    # A second run stays there, and so does --cleanup.
    assert "iptables-legacy:" in world.init("--proxy-uid", str(PROXY_UID)).stdout
    world.init("--cleanup")
    assert not ours(world, "legacy")
    # The seeded rule still decides; without it nothing does: nft,
    # Debian's default.
    assert "iptables-legacy:" in world.init("--proxy-uid", str(PROXY_UID)).stdout
    world.init("--cleanup")
    sh("ip", "netns", "exec", world.app, "iptables-legacy", "-t", "nat", "-D",
       "OUTPUT", "-d", "198.51.100.9", "-j", "RETURN")
    assert "iptables-nft:" in world.init("--proxy-uid", str(PROXY_UID)).stdout


def test_cleanup_removes_ours_from_both_backends(world):
    world.init("--proxy-uid", str(PROXY_UID), "--backend", "nft")
    world.init("--proxy-uid", str(PROXY_UID), "--backend", "legacy", "--lockdown")
    assert ours(world, "nft") and ours(world, "legacy")
    r = world.init("--cleanup")
    assert "iptables-nft: removed" in r.stdout and "iptables-legacy: removed" in r.stdout
    assert not ours(world, "nft") and not ours(world, "legacy")


def test_dry_run_prints_exact_rules_and_changes_nothing(world):
    before = snapshot(world)
    r = world.init("--proxy-uid", str(PROXY_UID), "--lockdown", "--dry-run")
    assert snapshot(world) == before
    assert r.stdout.startswith("# iptables-nft-restore --noflush\n*nat\n"
                               ":ATTACHE_OUTPUT - [0:0]\n")
    assert "--uid-owner 1337" in r.stdout and "-j REDIRECT --to-ports 15001" in r.stdout
    # Feeding what it printed to iptables-restore gives the same rules as
    # running attache-init: the dry run is exact.
    v4, v6 = r.stdout.split("# ip6tables-nft-restore --noflush\n")
    for tool, text in (("iptables-nft-restore", v4), ("ip6tables-nft-restore", v6)):
        subprocess.run(["ip", "netns", "exec", world.app, tool, "--noflush"],
                       input=text, text=True, check=True)
    by_hand = snapshot(world)
    world.init("--cleanup")
    world.init("--proxy-uid", str(PROXY_UID), "--lockdown")
    assert snapshot(world) == by_hand
    r = world.init("--proxy-uid", str(PROXY_UID), "--backend", "legacy", "--dry-run")
    assert "# iptables-legacy-restore --noflush\n" in r.stdout


def test_environment_variables_stand_for_options(world):
    env = {"ATTACHE_INIT_PROXY_UID": str(PROXY_UID), "ATTACHE_INIT_LOCKDOWN": "true",
           "ATTACHE_INIT_EXCLUDE_PORTS": "22,6000-6100",
           "ATTACHE_INIT_REDIRECT_PORT": "16001"}
    world.init(env=env)
    from_env = snapshot(world)
    assert any("REDIRECT --to-ports 16001" in l for l in from_env)
    world.init("--cleanup")
    world.init("--proxy-uid", str(PROXY_UID), "--lockdown", "--exclude-ports",
               "22,6000-6100", "--redirect-port", "16001")
    assert snapshot(world) == from_env
    # The command line wins over the environment.
    world.init("--redirect-port", "15001", env=env)
    assert any("REDIRECT --to-ports 15001" in l for l in snapshot(world))
    r = world.init(env={"ATTACHE_INIT_PROXY_UID": "nobody-here"}, check=False)
    assert r.returncode == 2
    assert "ATTACHE_INIT_PROXY_UID: 'nobody-here' is neither a number nor a known user" \
        in r.stderr


def test_bad_usage_exits_2_with_a_reason(world):
    before = snapshot(world)
    for args, msg in (
            ((), "--proxy-uid, --proxy-gid or --proxy-mark is required"),
            (("--proxy-uid", "1337", "--redirect-port", "99999"), "is not a port"),
            (("--proxy-uid", "1337", "--exclude-cidrs", "10.1.0.0/8"),
             "has host bits set (did you mean 10.0.0.0/8?)"),
            (("--proxy-uid", "1337", "--ipv6", "ignore"), "is not redirect or reject"),
            (("--proxy-uid", "1337", "--backend", "bpf"), "is not auto, nft or legacy")):
        r = world.init(*args, check=False)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
    assert snapshot(world) == before


# ---- a failed apply leaves the rules as they were

def test_failed_apply_puts_every_family_back(world, tmp_path):
    seed_unrelated_rules(world)
    world.init("--proxy-uid", str(PROXY_UID))
    before = snapshot(world)
    # IPv4 applies, then IPv6 fails: IPv4 must be put back too. The shim
    # fails only the apply (--noflush), not the rollback.
    path = shim(tmp_path, "ip6tables-nft-restore",
                'case " $* " in *" --noflush "*) cat >/dev/null\n'
                '  echo "ip6tables-restore: line 5 failed" >&2; exit 1;; esac\n'
                'exec /usr/sbin/ip6tables-nft-restore "$@"\n')
    r = world.init("--proxy-uid", "4242", "--redirect-port", "16001", "--lockdown",
                   path=path, check=False)
    assert r.returncode == 1, r
    assert "IPv6: ip6tables-nft-restore failed: ip6tables-restore: line 5 failed" in r.stderr
    assert "IPv4: rules put back as they were" in r.stderr
    assert snapshot(world) == before


def test_failed_apply_on_legacy_puts_back_the_tables_it_committed(world, tmp_path):
    # iptables-legacy-restore commits table by table: make the second table
    # (filter, after nat) fail, so nat is already changed when it does.
    seed_unrelated_rules(world, "legacy")
    world.init("--proxy-uid", str(PROXY_UID), "--backend", "legacy")
    before = snapshot(world, "legacy")
    path = shim(tmp_path, "iptables-legacy-restore",
                'case " $* " in *" --noflush "*)\n'
                '  awk \'/^\\*filter/ {f=1} f && /^COMMIT/ && !d {print "-A NOSUCHCHAIN -j ACCEPT"; d=1} {print}\' |\n'
                '  /usr/sbin/iptables-legacy-restore "$@"; exit $?;; esac\n'
                'exec /usr/sbin/iptables-legacy-restore "$@"\n')
    r = world.init("--proxy-uid", str(PROXY_UID), "--backend", "legacy",
                   "--redirect-port", "16001", "--lockdown", path=path, check=False)
    assert r.returncode == 1, r
    assert "IPv4: iptables-legacy-restore failed" in r.stderr
    assert "IPv4: rules put back as they were" in r.stderr
    assert snapshot(world, "legacy") == before
    assert not any("16001" in l for l in snapshot(world, "legacy"))


# ---- what is redirected, counted where it lands

@pytest.mark.parametrize("backend", BACKENDS)
def test_exclusions_and_inclusions_take_effect(world, backend):
    world.server("echo", "--listen", f"{EXT_V4}:9000", "--listen", f"{EXT_V4}:9001",
                 "--listen", f"{EXT_V4}:9003", "--listen", f"{EXT_V4B}:9000",
                 "--listen", f"[{EXT_V6}]:9000", "--listen", f"[{EXT_V6}]:9001")
    cases = {   # destination: lands on ext? (attache is not running: a
                # redirected connection is refused on loopback)
        f"{EXT_V4}:9000": False,        # included port: redirected
        f"{EXT_V4}:9001": True,         # excluded port
        f"{EXT_V4}:9003": True,         # not an included port
        f"{EXT_V4B}:9000": True,        # excluded destination
        f"[{EXT_V6}]:9000": False,      # IPv6, redirected
        f"[{EXT_V6}]:9001": True,       # IPv6, excluded port
    }
    for i, to in enumerate(cases):
        host, port = to.rsplit(":", 1)
        count_syns(world, f"c{i}", host.strip("[]"), port)
    world.init("--backend", backend, "--proxy-uid", str(PROXY_UID), "--proxy-gid", "1338",
               "--include-ports", "9000-9002", "--exclude-ports", "9001",
               "--exclude-cidrs", f"{EXT_V4B}/32")
    for i, (to, lands) in enumerate(cases.items()):
        r = probe(world, to)
        assert reached(r) == lands, (to, r)
        if not lands:
            assert r["result"] in ("refused", "reset"), (to, r)
        host = to.rsplit(":", 1)[0]
        assert counted(world, f"c{i}", v6=host.startswith("[")) == (1 if lands else 0), to
    # The proxy's uid and gid go out directly.
    assert reached(probe(world, f"{EXT_V4}:9000", uid=PROXY_UID))
    assert reached(probe(world, f"[{EXT_V6}]:9000", uid=1338))
    assert counted(world, "c0") == 1 and counted(world, "c4", v6=True) == 1
    assert not reached(probe(world, f"{EXT_V4}:9000", uid=4242))


@pytest.mark.parametrize("backend", BACKENDS)
def test_proxy_mark_lets_attache_out_without_its_own_uid(world, backend):
    world.server("echo", "--listen", f"{EXT_V4}:9000")
    count_syns(world, "m", EXT_V4, 9000)
    # No --proxy-uid: attache (uid 1337) is told apart by its mark alone.
    world.init("--proxy-mark", "0x539", "--backend", backend)
    world.start_attache("--mark", "0x539", caps=("net_admin",))
    r = world.client("c-echo", "--to", f"{EXT_V4}:9000", "--bytes", "4096")
    assert r["intact"], r
    e = world.wait_log(lambda e: e["outcome"] == "ok")
    assert e[0]["dst"] == f"{EXT_V4}:9000"
    assert counted(world, "m") == 1                   # one connection, no loop
    assert not [e for e in world.log() if e["reason"].startswith("loop")]


def test_mark_without_the_capability_is_an_error_at_start(world):
    with pytest.raises(AssertionError) as e:
        world.start_attache("--mark", "0x539")
    world.attache_stopped = True   # its exit is the point
    assert "--mark 0x539: cannot set SO_MARK: Operation not permitted " \
           "(needs CAP_NET_ADMIN)" in str(e.value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lockdown_rejects_what_bypasses_the_proxy(world, backend):
    world.server("echo", "--listen", f"{EXT_V4}:9000", "--listen", f"{EXT_V4}:9003",
                 "--listen", f"[{EXT_V6}]:9003")
    count_syns(world, "t9000", EXT_V4, 9000)
    count_syns(world, "t9003", EXT_V4, 9003)
    count_syns(world, "t6", EXT_V6, 9003)
    count(world, "quic", "-p", "udp", "--dport", "443")
    count(world, "quic6", "-p", "udp", "--dport", "443", v6=True)
    count(world, "dns", "-p", "udp", "--dport", "53")
    world.init("--backend", backend, "--proxy-uid", str(PROXY_UID),
               "--include-ports", "9000", "--lockdown")
    world.start_attache()
    # Redirected: through attache, allowed.
    assert reached(probe(world, f"{EXT_V4}:9000"))
    assert counted(world, "t9000") == 1
    world.wait_log(lambda e: e["dst"] == f"{EXT_V4}:9000")
    # Escaped the redirect (port 9003 is not included): rejected at once.
    for to, tag, v6 in ((f"{EXT_V4}:9003", "t9003", False),
                        (f"[{EXT_V6}]:9003", "t6", True)):
        r = probe(world, to)
        assert r["result"] in ("refused", "reset") and not reached(r), (to, r)
        assert counted(world, tag, v6=v6) == 0
    # QUIC-like UDP 443: rejected; DNS goes.
    assert world.client("c-udp", "--to", f"{EXT_V4}:443")["result"] == "refused"
    assert world.client("c-udp", "--to", f"[{EXT_V6}]:443")["result"] == "refused"
    assert counted(world, "quic") == 0 and counted(world, "quic6", v6=True) == 0
    world.client("c-udp", "--to", f"{EXT_V4}:53")
    assert counted(world, "dns") == 1
    # The proxy's own connections go.
    assert reached(probe(world, f"{EXT_V4}:9003", uid=PROXY_UID))
    assert counted(world, "t9003") == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_ipv6_reject_rejects_ipv6_and_still_redirects_ipv4(world, backend):
    world.server("echo", "--listen", f"{EXT_V4}:9000", "--listen", f"[{EXT_V6}]:9000")
    count_syns(world, "v6", EXT_V6, 9000)
    r = world.init("--proxy-uid", str(PROXY_UID), "--ipv6", "reject", "--backend", backend)
    assert "IPv6 egress rejected" in r.stdout
    world.start_attache()
    assert reached(probe(world, f"{EXT_V4}:9000"))
    world.wait_log(lambda e: e["dst"] == f"{EXT_V4}:9000" and e["outcome"] == "ok")
    r = probe(world, f"[{EXT_V6}]:9000")
    assert r["result"] in ("refused", "reset"), r
    assert counted(world, "v6", v6=True) == 0
    assert not any("[" in e["dst"] for e in world.log())   # attache never saw it


# ---- --verify

@pytest.mark.parametrize("backend", BACKENDS)
def test_verify_proves_the_redirect_and_catches_a_broken_rule(world, backend, tmp_path):
    doc_routes(world)
    count_syns(world, "doc", DOC_V4, 80)
    r = world.init("--proxy-uid", str(PROXY_UID), "--backend", backend, "--lockdown",
                   "--verify")
    assert r.returncode == 0
    assert f"IPv4: verified: a connection to {DOC_V4}:80 from uid 65534 reached port 15001" \
        in r.stdout
    assert f"IPv6: verified: a connection to [{DOC_V6}]:80" in r.stdout
    assert counted(world, "doc") == 0                 # nothing left the netns
    # A ruleset whose REDIRECT went missing on the way in: --verify fails.
    path = shim(tmp_path, f"iptables-{backend}-restore",
                f'grep -v -- "-j REDIRECT" | /usr/sbin/iptables-{backend}-restore "$@"\n')
    r = world.init("--proxy-uid", str(PROXY_UID), "--backend", backend, "--verify",
                   path=path, check=False)
    assert r.returncode == 3, r
    assert f"--verify failed: IPv4: a connection to {DOC_V4}:80 was not redirected " \
           "to port 15001" in r.stderr
    assert "IPv6: verified" in r.stdout
    assert counted(world, "doc") >= 1                 # it went out instead


def test_verify_needs_the_port_free(world):
    doc_routes(world)
    world.init("--proxy-uid", str(PROXY_UID))
    world.start_attache()
    r = world.init("--proxy-uid", str(PROXY_UID), "--verify", check=False)
    assert r.returncode == 3
    assert "cannot listen on the redirect port 15001: Address already in use " \
           "(is attache already running?" in r.stderr


# ---- families

@pytest.mark.parametrize("backend", BACKENDS)
def test_ipv6_only_namespace(world, backend):
    sh("ip", "-n", world.app, "-4", "addr", "flush", "dev", "veth-app")
    doc_routes(world)
    world.server("echo", "--listen", f"[{EXT_V6}]:9000")
    r = world.init("--proxy-uid", str(PROXY_UID), "--verify", "--lockdown",
                   "--backend", backend)
    assert r.returncode == 0, r
    assert "IPv6: verified" in r.stdout
    world.start_attache()
    assert reached(probe(world, f"[{EXT_V6}]:9000"))
    e = world.wait_log(lambda e: e["outcome"] == "ok")
    assert e[0]["dst"] == f"[{EXT_V6}]:9000"


def test_ipv6_only_without_a_route_for_ipv4_verifies_ipv6(world):
    # doc_routes gives IPv4 a route; here IPv4 has none at all.
    sh("ip", "-n", world.app, "-4", "addr", "flush", "dev", "veth-app")
    sh("ip", "-n", world.app, "-6", "route", "add", "2001:db8:ffff::/64", "dev", "veth-app")
    sh("ip", "-n", world.ext, "addr", "add", DOC_V6 + "/128", "dev", "veth-ext", "nodad")
    r = world.init("--proxy-uid", str(PROXY_UID), "--verify")
    assert r.returncode == 0, r
    assert "IPv4: the netns has no route out, so nothing to redirect" in r.stdout
    assert "IPv6: verified" in r.stdout


def test_a_netns_with_ipv6_disabled_gets_ipv4_rules_only(world):
    sh("ip", "netns", "exec", world.app, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
       "net.ipv6.conf.default.disable_ipv6=1")
    r = world.init("--proxy-uid", str(PROXY_UID))
    assert "redirecting IPv4 TCP" in r.stdout
    assert "IPv6: not in this netns, no rules" in r.stdout
    snap = snapshot(world)
    assert sum(l.endswith("-j ATTACHE_OUTPUT") for l in snap) == 1
    assert any("127.0.0.0/8" in l for l in snap)


def test_rerun_with_new_port_replaces_rules(world):
    world.init("--proxy-uid", str(PROXY_UID))
    world.init("--proxy-uid", str(PROXY_UID), "--redirect-port", "16001")
    snap = snapshot(world)
    assert not any("15001" in l for l in snap)
    assert sum("REDIRECT --to-ports 16001" in l for l in snap) == 2
    assert sum(l.endswith("-j ATTACHE_OUTPUT") for l in snap) == 2


def test_a_rule_put_before_our_jump_is_overtaken(world):
    world.init("--proxy-uid", str(PROXY_UID))
    sh("ip", "netns", "exec", world.app, "iptables", "-t", "nat", "-I", "OUTPUT", "1",
       "-p", "tcp", "-j", "RETURN")
    world.init("--proxy-uid", str(PROXY_UID))
    out = sh("ip", "netns", "exec", world.app, "iptables", "-t", "nat", "-S",
             "OUTPUT").stdout.splitlines()
    assert out[1] == "-A OUTPUT -p tcp -j ATTACHE_OUTPUT", out
    assert sum("ATTACHE_OUTPUT" in l for l in out) == 1


def test_a_cleanup_that_fails_says_so_and_puts_back(world):
    # Someone else's chain jumps to ours: deleting our chain fails.
    world.init("--proxy-uid", str(PROXY_UID))
    sh("ip", "netns", "exec", world.app, "iptables", "-t", "nat", "-N", "OTHER")
    sh("ip", "netns", "exec", world.app, "iptables", "-t", "nat", "-A", "OTHER",
       "-j", "ATTACHE_OUTPUT")
    before = snapshot(world)
    r = world.init("--cleanup", check=False)
    assert r.returncode == 1, r
    assert "IPv4: iptables-nft-restore failed" in r.stderr
    assert "rules put back as they were" in r.stderr
    assert "removed" not in r.stdout
    assert snapshot(world) == before


def test_legacy_tables_it_cannot_read_are_an_error_not_a_fallback(world):
    # Without CAP_NET_RAW iptables-legacy cannot read its tables; falling
    # back to nft would leave a pod with rules in both.
    sh("ip", "netns", "exec", world.app, "iptables-legacy", "-t", "nat", "-A",
       "OUTPUT", "-d", "198.51.100.9", "-j", "RETURN")
    r = sh("ip", "netns", "exec", world.app, "setpriv", "--bounding-set=-net_raw",
           os.path.join(world.bindir, "attache-init"), "--proxy-uid", str(PROXY_UID),
           check=False)
    assert r.returncode == 1, r
    assert "this netns has iptables-legacy tables, but they cannot be read" in r.stderr
    assert "needs CAP_NET_RAW" in r.stderr
    assert not ours(world, "nft") and not ours(world, "legacy")


def test_verify_without_setuid_says_so(world):
    doc_routes(world)
    r = sh("ip", "netns", "exec", world.app, "setpriv", "--bounding-set=-setuid,-setgid",
           os.path.join(world.bindir, "attache-init"), "--proxy-uid", str(PROXY_UID),
           "--verify", check=False)
    assert r.returncode == 3, r
    assert "cannot run the probe as uid 65534: Operation not permitted " \
           "(needs CAP_SETUID and CAP_SETGID)" in r.stderr


def test_a_large_rollback_to_a_chatty_tool_neither_hangs_nor_dies(world, tmp_path):
    # The rollback input is whole tables: past a pipe's 64 KiB here. The
    # restore tool writes 300 KB to stderr before reading any of it, and
    # IPv6's apply fails, so IPv4 must be put back through that tool.
    rules = "*nat\n" + "".join(f"-A OUTPUT -d 198.51.{i // 250}.{i % 250 + 1}/32 "
                               f"-p tcp --dport {1000 + i} -j RETURN\n"
                               for i in range(1500)) + "COMMIT\n"
    subprocess.run(["ip", "netns", "exec", world.app, "iptables-nft-restore", "--noflush"],
                   input=rules, text=True, check=True)
    world.init("--proxy-uid", str(PROXY_UID))
    before = snapshot(world)
    assert len("\n".join(before)) > 80_000   # over a pipe's 64 KiB
    shim(tmp_path, "iptables-nft-restore",
         'case " $* " in *" --noflush "*) ;; *)\n'
         '  head -c 300000 /dev/zero | tr "\\0" x >&2;; esac\n'
         'exec /usr/sbin/iptables-nft-restore "$@"\n')
    path = shim(tmp_path, "ip6tables-nft-restore",
                'case " $* " in *" --noflush "*) cat >/dev/null; exit 1;; esac\n'
                'exec /usr/sbin/ip6tables-nft-restore "$@"\n')
    env = dict(os.environ, PATH=f"{path}:{os.environ['PATH']}")
    r = subprocess.run(["ip", "netns", "exec", world.app,
                        os.path.join(world.bindir, "attache-init"), "--proxy-uid", "4242",
                        "--lockdown"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr[-500:]
    assert "IPv4: rules put back as they were" in r.stderr
    assert snapshot(world) == before
