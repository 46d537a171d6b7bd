"""attache-init against real iptables in a fresh namespace."""
import os
import subprocess

from conftest import PROXY_UID, sh


def snapshot(world):
    """Both families' rules, without the timestamp comments."""
    out = []
    for tool in ("iptables-save", "ip6tables-save"):
        r = sh("ip", "netns", "exec", world.app, tool)
        out += [l for l in r.stdout.splitlines() if not l.startswith("#")]
    return out


def seed_unrelated_rules(world):
    """Rules someone else owns, which attache-init must leave alone."""
    for tool in ("iptables", "ip6tables"):
        dst = "198.51.100.9" if tool == "iptables" else "2001:db8::9"
        sh("ip", "netns", "exec", world.app, tool, "-t", "nat", "-A", "OUTPUT",
           "-d", dst, "-j", "RETURN")
        sh("ip", "netns", "exec", world.app, tool, "-A", "OUTPUT", "-p", "udp",
           "--dport", "9", "-j", "DROP")


def test_g_twice_then_cleanup_leaves_no_trace(world):
    seed_unrelated_rules(world)
    before = snapshot(world)
    world.init("--proxy-uid", str(PROXY_UID))
    once = snapshot(world)
    assert once != before
    assert sum("-j ATTACHE_OUTPUT" in l for l in once) == 2   # one jump per family
    assert sum("REDIRECT --to-ports 15001" in l for l in once) == 2
    world.init("--proxy-uid", str(PROXY_UID))
    assert snapshot(world) == once                             # idempotent
    r = world.init("--cleanup")
    assert "removed ATTACHE_OUTPUT" in r.stdout
    assert snapshot(world) == before                           # no trace
    r = world.init("--cleanup")                                # nothing left to do
    assert r.returncode == 0
    assert snapshot(world) == before


def test_rerun_with_new_port_replaces_rules(world):
    world.init("--proxy-uid", str(PROXY_UID))
    world.init("--proxy-uid", str(PROXY_UID), "--redirect-port", "16001")
    snap = snapshot(world)
    assert not any("15001" in l for l in snap)
    assert sum("REDIRECT --to-ports 16001" in l for l in snap) == 2
    assert sum("-j ATTACHE_OUTPUT" in l for l in snap) == 2


def test_dry_run_prints_exact_rules_and_changes_nothing(world):
    before = snapshot(world)
    r = world.init("--proxy-uid", str(PROXY_UID), "--dry-run")
    assert snapshot(world) == before
    assert "# iptables-restore --noflush\n*nat\n:ATTACHE_OUTPUT - [0:0]\n" in r.stdout
    assert "# ip6tables-restore --noflush\n" in r.stdout
    assert "--uid-owner 1337" in r.stdout and "-j REDIRECT --to-ports 15001" in r.stdout
    # Feeding the printed IPv4 ruleset to iptables-restore gives the same
    # rules as running attache-init: the dry run is exact.
    v4 = r.stdout.split("# ip6tables-restore --noflush\n")[0]
    subprocess.run(["ip", "netns", "exec", world.app, "iptables-restore", "--noflush"],
                   input=v4, text=True, check=True)
    by_hand = snapshot(world)
    world.init("--proxy-uid", str(PROXY_UID), "--ipv6", "off")
    assert snapshot(world) == by_hand


def test_bad_usage_exits_2_with_a_reason(world):
    r = world.init(check=False)
    assert r.returncode == 2 and "--proxy-uid is required" in r.stderr
    r = world.init("--proxy-uid", "1337", "--redirect-port", "99999", check=False)
    assert r.returncode == 2 and "is not a port" in r.stderr


def test_failed_apply_leaves_rules_as_they_were(world, tmp_path):
    world.init("--proxy-uid", str(PROXY_UID), "--ipv6", "off")
    before = snapshot(world)
    shim = tmp_path / "iptables-restore"
    shim.write_text("#!/bin/sh\ncat >/dev/null\necho 'iptables-restore: line 3 failed' >&2\nexit 1\n")
    shim.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    r = subprocess.run(["ip", "netns", "exec", world.app,
                        os.path.join(world.bindir, "attache-init"), "--proxy-uid", "4242",
                        "--ipv6", "off"], env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert "iptables-restore failed, rules left as they were: iptables-restore: line 3 failed" in r.stderr
    assert snapshot(world) == before
