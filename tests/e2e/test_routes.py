"""2/6: one policy file, name recovery (Host, SNI), pass and deny, reload."""
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import BUILD, EXT_V4, EXT_V4B, PROXY_UID, ROOT, sh

MIB = 1024 * 1024

POLICY = """
default: deny
sniff: { timeout: 30s }
routes:
  - name: partner-api
    match: { host: api.partner.example, port: 80 }
    action: pass
    protocol: http
  - name: web-other
    match: { port: 80 }
    action: deny
    protocol: http
  - name: tls-allowed
    match: { host: "*.allowed.example", port: 443 }
    action: pass
    protocol: tls
  - name: tls-rest
    match: { port: 443 }
    action: deny
    protocol: tls
  - name: mail
    match: { cidr: 203.0.113.0/24, port: 25 }
    action: pass
  - name: bulk
    match: { cidr: [203.0.113.7, 198.51.100.7], port: 9001 }
    action: pass
  - name: blocked-db
    match: { cidr: 198.51.100.0/24, port: 5432 }
    action: deny
"""


@pytest.fixture(scope="session")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("cert")
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
       "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
       "-subj", "/CN=ext.example", "-days", "1")
    return str(d / "cert.pem"), str(d / "key.pem")


@pytest.fixture
def routed(world):
    world.init("--proxy-uid", str(PROXY_UID))
    world.start_attache("-c", world.write_config(POLICY))
    return world


def curl(world, url, *args):
    r = subprocess.run(["ip", "netns", "exec", world.app, "curl", "-sS", "--max-time", "10",
                        "-w", "\n%{http_code}", *args, url], capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def entry(world, **want):
    [e] = world.wait_log(lambda e: all(e.get(k) == v for k, v in want.items()))
    return e


def test_routing_by_host_header(routed):
    routed.server("http", "--listen", f"{EXT_V4}:80")
    code, body = curl(routed, f"http://{EXT_V4}/v1/status", "-H", "Host: API.Partner.Example")
    assert code == 200
    # the request reached the server byte for byte, Host included
    seen = json.loads(body)
    assert {k: seen[k] for k in ("method", "path", "host", "body")} == {
        "method": "GET", "path": "/v1/status", "host": "API.Partner.Example", "body": 0}
    e = entry(routed, route="partner-api")
    assert e["name"] == "api.partner.example" and e["name_from"] == "host"
    assert e["action"] == "pass" and e["outcome"] == "ok"

    code, body = curl(routed, f"http://{EXT_V4}/v1/status", "-H", "Host: evil.example")
    assert code == 403
    assert body == "attache: denied by route 'web-other'\n"
    e = entry(routed, route="web-other")
    assert e["name"] == "evil.example" and e["outcome"] == "denied"
    assert e["reason"] == "denied by route 'web-other'"


def test_deny_with_a_body_still_gets_its_403(routed):
    routed.server("http", "--listen", f"{EXT_V4}:80")
    # A 200 KiB upload to a denied host: the 403 must not be lost to a reset.
    code, body = curl(routed, f"http://{EXT_V4}/upload", "-H", "Host: evil.example",
                      "--data-binary", "@-", "-H", "Expect:")
    assert code == 403


def test_routing_by_sni_pass_through(routed, cert):
    routed.server("tls-echo", "--listen", f"{EXT_V4}:443", "--cert", cert[0], "--key", cert[1])
    r = routed.client("c-tls", "--to", f"{EXT_V4}:443", "--sni", "api.allowed.example")
    assert r == {"result": "ok", "data": "ping over tls\n"}
    e = entry(routed, route="tls-allowed")
    assert e["name"] == "api.allowed.example" and e["name_from"] == "sni"

    r = routed.client("c-tls", "--to", f"{EXT_V4}:443", "--sni", "other.example")
    assert r["result"] != "ok", r
    e = entry(routed, route="tls-rest")
    assert e["name"] == "other.example" and e["outcome"] == "denied"


def test_deny_rule_and_default(routed):
    routed.server("echo", "--listen", f"{EXT_V4B}:5432", "--listen", f"{EXT_V4}:7777")
    r = routed.client("c-probe", "--to", f"{EXT_V4B}:5432", "--timeout", "5")
    assert r["result"] in ("eof", "reset") and r["data"] == "", r
    e = entry(routed, dst=f"{EXT_V4B}:5432")
    assert e["route"] == "blocked-db" and e["action"] == "deny" and e["outcome"] == "denied"
    # nothing matches 7777: the default (deny) applies, and says so
    r = routed.client("c-probe", "--to", f"{EXT_V4}:7777", "--timeout", "5")
    assert r["data"] == "", r
    e = entry(routed, dst=f"{EXT_V4}:7777")
    assert e["route"] is None and e["reason"] == "denied by the default policy"


def test_server_first_protocol_is_not_sniffed(routed):
    # sniff.timeout is 30 s: had attache waited for the client to speak on
    # this tcp route, the client's 5 s wait for the banner would run out.
    routed.server("banner", "--listen", f"{EXT_V4}:25")
    r = routed.client("c-banner", "--to", f"{EXT_V4}:25", "--timeout", "5")
    assert r["result"] == "ok" and r["line"].startswith("220 "), r
    print(f"\nbanner through attache after {r['seconds']} s")


def test_reload_during_a_long_transfer(routed):
    total = 40 * MIB
    routed.server("source", "--listen", f"{EXT_V4}:9001", "--bytes", str(total))
    result = {}

    def transfer():
        result.update(routed.client("c-slowread", "--to", f"{EXT_V4}:9001",
                                    "--rate", str(10 * MIB), "--timeout", "30", timeout=120))

    t = threading.Thread(target=transfer)
    t.start()
    time.sleep(1.0)
    # The new policy denies exactly this destination.
    err = routed.reload(POLICY.replace("name: bulk\n    match: { cidr: [203.0.113.7, 198.51.100.7], port: 9001 }\n    action: pass",
                                       "name: bulk\n    match: { cidr: [203.0.113.7, 198.51.100.7], port: 9001 }\n    action: deny"))
    assert "reload: " in err and "error" not in err.split("reload:")[-1]
    r = routed.client("c-probe", "--to", f"{EXT_V4}:9001", "--timeout", "5")
    assert r["data"] == "", r          # new connections follow the new rules
    t.join()
    assert result["recv"] == total and result["intact"], result   # the old one finished
    lines = routed.wait_log(lambda e: e["dst"] == f"{EXT_V4}:9001", count=2)
    by_outcome = {e["outcome"]: e for e in lines}
    assert by_outcome["ok"]["action"] == "pass" and by_outcome["ok"]["bytes_down"] == total
    assert by_outcome["denied"]["route"] == "bulk"


def test_invalid_reload_keeps_the_old_rules(routed):
    routed.server("http", "--listen", f"{EXT_V4}:80")
    err = routed.reload("default: pass\nroutes:\n  - name: x\n    match: { port: 99999 }\n"
                        "    action: pass\n")
    assert "attache.yaml:4:20: error: port '99999' is out of range" in err
    assert "keeping the current policy" in err
    code, body = curl(routed, f"http://{EXT_V4}/", "-H", "Host: evil.example")
    assert code == 403 and "web-other" in body
    assert routed.attache.poll() is None


def test_check_lists_every_mistake(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("default: allow\n"
                 "listen: { redirect: 0 }\n"
                 "routes:\n"
                 "  - name: a\n"
                 "    match: { cidr: 10.1.2.3/8, port: 80 }\n"
                 "    action: pass\n"
                 "  - name: a\n"
                 "    match: { prot: 1 }\n"
                 "    action: pass\n")
    r = subprocess.run([os.path.join(BUILD, "attache"), "--check", "-c", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    for want in (f"{p}:1:10: error: default 'allow' is not pass or deny",
                 f"{p}:2:21: error: port '0' is out of range",
                 f"{p}:5:20: error: CIDR '10.1.2.3/8' has host bits set (did you mean '10.0.0.0/8'?)",
                 f"{p}:7:11: error: duplicate route name 'a' (first at line 4)",
                 f"{p}:8:14: error: unknown key 'prot' in match (did you mean 'port'?)"):
        assert want in r.stderr, r.stderr
    assert "5 error(s)" in r.stdout
    p.write_text(POLICY)
    r = subprocess.run([os.path.join(BUILD, "attache"), "--check", "-c", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "OK: 7 routes, default deny" in r.stdout, r.stdout + r.stderr
    # and a daemon refuses to start on a bad file
    p.write_text("default: allow\n")
    r = subprocess.run([os.path.join(BUILD, "attache"), "-c", str(p)], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 1 and "not starting" in r.stderr


def test_example_configs_are_valid():
    d = os.path.join(ROOT, "examples", "configs")
    files = [f for f in os.listdir(d) if f.endswith(".yaml")]
    assert files
    for f in files:
        r = subprocess.run([os.path.join(BUILD, "attache"), "--check", "-c",
                            os.path.join(d, f)], capture_output=True, text=True)
        assert r.returncode == 0 and "0 warning(s)" in r.stdout, (f, r.stdout, r.stderr)
