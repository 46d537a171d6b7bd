"""6/6, first slice: names learnt from DNS answers over NFQUEUE.

dnsmasq in ext answers api.partner.example -> 203.0.113.7; the app's
netns resolves through it (/etc/netns/<app>/resolv.conf). attache-init
--dns-queue (each test on both back ends) installs the NFQUEUE rule, with
--queue-bypass, that sends the DNS answers the app receives to attache,
which runs with CAP_NET_ADMIN to read the queue."""
import os
import shutil
import time

import pytest

import pki
from conftest import EXT_V4, EXT_V4B, EXT_V6, PROXY_UID, sh

QUEUE = 5353


def wait_udp(w, port):
    for _ in range(200):
        out = sh("ip", "netns", "exec", w.ext, "ss", "-Hlun", f"sport = :{port}").stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on udp {port}")


@pytest.fixture(params=["nft", "legacy"])
def dns(world, request):
    d = os.path.join(world.tmp, "pki")
    os.mkdir(d, 0o755)
    files, _ = pki.make(d)
    world.server("tls-echo", "--listen", f"{EXT_V4}:443", "--listen", f"[{EXT_V6}]:443",
                 "--cert", files["good.pem"], "--key", files["good.key"])
    world.spawn(world.ext, ["dnsmasq", "-k", "--conf-file=/dev/null", "--no-resolv",
                            "--no-hosts", "--bind-interfaces",
                            f"--listen-address={EXT_V4}", f"--listen-address={EXT_V6}",
                            "--pid-file=",
                            f"--host-record=api.partner.example,{EXT_V4},{EXT_V6}",
                            f"--host-record=multi.partner.example,{EXT_V4B}",
                            f"--host-record=multi.partner.example,{EXT_V4}",
                            "--local-ttl=60"])
    wait_udp(world, 53)
    etc = f"/etc/netns/{world.app}"
    os.makedirs(etc, exist_ok=True)
    with open(os.path.join(etc, "resolv.conf"), "w") as f:
        f.write(f"nameserver {EXT_V4}\n")
    world.init("--proxy-uid", str(PROXY_UID), "--dns-queue", str(QUEUE),
               "--backend", request.param)
    world.config = world.write_config(f"""dns_snoop: {{ queue: {QUEUE} }}
routes:
  - name: partner-cache
    match: {{ host: api.partner.example, port: 7000 }}
    action: tls
    tls: {{ port: 443, ca: {files["root.pem"]} }}
  - name: multi
    match: {{ host: multi.partner.example, port: 7001 }}
    action: pass
    retry: {{ backoff: {{ base: 1ms, cap: 5ms }} }}
  - name: multi-http
    match: {{ host: multi.partner.example, port: 7002 }}
    protocol: http
    action: pass
    retry: {{ backoff: {{ base: 1ms, cap: 5ms }} }}
""")
    world.etc = etc
    yield world
    shutil.rmtree(etc, ignore_errors=True)


def test_a_resolved_name_is_originated_as_verified_tls(dns):
    dns.start_attache("-c", dns.config, caps=("net_admin",))
    assert "dns_snoop: reading DNS answers from NFQUEUE" in dns.stderr()
    # The app resolves the name, then speaks plain TCP to the address:
    # no Host, no SNI. attache knows the name from the DNS answer.
    r = dns.client("c-echo", "--to", "api.partner.example:7000", "--bytes", "100000")
    assert r["recv"] == 100000 and r["intact"], r
    e = dns.wait_log(lambda e: e["dst"] == f"{EXT_V4}:7000")[0]
    assert e["name"] == "api.partner.example" and e["name_from"] == "dns", e
    assert e["route"] == "partner-cache" and e["tls"]["verify"] is True, e
    assert e["upstream"] == f"{EXT_V4}:443"


def test_an_answer_over_ipv6_names_an_ipv6_address(dns):
    # The resolver is reached over IPv6 and asked for AAAA: the answer
    # goes through ip6tables' queue rule.
    with open(os.path.join(dns.etc, "resolv.conf"), "w") as f:
        f.write(f"nameserver {EXT_V6}\n")
    dns.start_attache("-c", dns.config, caps=("net_admin",))
    assert dns.client("c-resolve", "--to", "6", "--host",
                      "api.partner.example")["addrs"] == [EXT_V6]
    r = dns.client("c-echo", "--to", f"[{EXT_V6}]:7000", "--bytes", "10000")
    assert r["intact"], r
    e = dns.wait_log(lambda e: e["dst"] == f"[{EXT_V6}]:7000")[0]
    assert e["name"] == "api.partner.example" and e["name_from"] == "dns", e
    assert e["tls"]["verify"] is True and e["upstream"] == f"[{EXT_V6}]:443", e


def test_a_retry_goes_to_the_next_address_of_the_name(dns):
    # multi.partner.example has two addresses; the app picks the dead one.
    dns.server("echo", "--listen", f"{EXT_V4}:7001")
    dns.start_attache("-c", dns.config, caps=("net_admin",))
    assert dns.client("c-resolve", "--to", "-", "--host",
                      "multi.partner.example")["addrs"] == sorted([EXT_V4B, EXT_V4])
    r = dns.client("c-echo", "--to", f"{EXT_V4B}:7001", "--bytes", "10000")
    assert r["intact"], r
    e = dns.wait_log(lambda e: e["dst"] == f"{EXT_V4B}:7001")[0]
    assert e["name"] == "multi.partner.example" and e["route"] == "multi", e
    assert e["upstream"] == f"{EXT_V4}:7001" and e["tries"] == 2, e
    assert e["outcome"] == "ok", e
    # On an http route the name is the Host; the connection to the other
    # address serves its request and is not pooled for the original's.
    dns.server("http", "--listen", f"{EXT_V4}:7002")
    r = dns.client("c-http", "--to", f"{EXT_V4B}:7002", "--host",
                   "multi.partner.example", "--count", "2")
    assert r["statuses"] == {"200": 2}, r
    reqs = dns.wait_log(lambda e: e["dst"] == f"{EXT_V4B}:7002", count=2, kind="request")
    assert all(e["upstream"] == f"{EXT_V4}:7002" and e["conn"] == "new" for e in reqs), reqs


def test_an_address_nobody_resolved_has_no_name(dns):
    dns.start_attache("-c", dns.config, caps=("net_admin",))
    dns.client("c-probe", "--to", f"{EXT_V4}:7000", "--timeout", "3")
    e = dns.wait_log(lambda e: e["dst"] == f"{EXT_V4}:7000")[0]
    assert e["name"] is None and e["route"] is None, e


def test_dns_resolves_with_attache_stopped(dns):
    # The queue's bypass: with nobody reading it, answers pass.
    assert dns.client("c-resolve", "--to", "-", "--host",
                      "api.partner.example")["addrs"] == [EXT_V4]
    dns.start_attache("-c", dns.config, caps=("net_admin",))
    assert dns.client("c-resolve", "--to", "-", "--host",
                      "api.partner.example")["addrs"] == [EXT_V4]
    dns.stop_attache()
    assert dns.client("c-resolve", "--to", "-", "--host",
                      "api.partner.example")["addrs"] == [EXT_V4]


def test_without_the_capability_attache_says_why(dns):
    with pytest.raises(AssertionError) as e:
        dns.start_attache("-c", dns.config)
    dns.attache_stopped = True   # its exit is the point
    assert "dns_snoop: bind NFQUEUE 5353: Operation not permitted (needs " \
        "CAP_NET_ADMIN)" in str(e.value), str(e.value)
