"""3/6: TLS origination. Real TLS servers in ext with certificates made for
this run; attache must verify by name and fail closed with the right reason."""
import os
import subprocess

import pytest

import pki
from conftest import EXT_V4, PROXY_UID

# ext port -> server certificate (file stem in the PKI), and extra flags
SERVERS = {
    8001: ("good", []),
    8002: ("wild", []),
    8003: ("ip", []),
    8004: ("expired", []),
    8005: ("notyet", []),
    8006: ("wrongname", []),
    8007: ("selfsigned", []),
    8008: ("untrusted", []),
    8009: ("good-leaf-only", []),
    8010: ("good", ["--max-tls", "1.1"]),
    8013: ("good", ["--client-ca", "client-ca.pem"]),
    8016: ("good", ["--truncate"]),
}

# app port -> (ext TLS port, hostname, extra tls settings, expected reason or None)
CASES = {
    7001: (8001, "api.partner.example", {}, None),
    7002: (8002, "a.wild.example", {}, None),
    7003: (8003, "203.0.113.7", {}, None),
    7004: (8004, "api.partner.example", {}, "certificate expired"),
    7005: (8005, "api.partner.example", {}, "certificate not yet valid"),
    7006: (8006, "api.partner.example", {}, "hostname mismatch"),
    7007: (8007, "api.partner.example", {}, "self-signed certificate"),
    7008: (8008, "api.partner.example", {}, "unknown issuer"),
    7009: (8009, "api.partner.example", {}, "unknown issuer"),
    7010: (8010, "api.partner.example", {}, "protocol version"),
    7011: (8001, "api.partner.example", {"pins": "[{other}]"}, "public key pin mismatch"),
    7012: (8001, "api.partner.example", {"pins": "[{good}]"}, None),
    7013: (8013, "api.partner.example", {"client_cert": "{client_pem}",
                                         "client_key": "{client_key}"}, None),
    7014: (8013, "api.partner.example", {}, "requires a client certificate"),
    7015: (8002, "wild.example", {}, "hostname mismatch"),   # *.wild.example is not wild.example
    7016: (8016, "api.partner.example", {}, None),            # truncation
    7020: (8001, "api.partner.example", {}, None),            # resumption
}


@pytest.fixture(scope="module")
def tls_world(module_world):
    w = module_world
    d = os.path.join(w.tmp, "pki")   # readable by attache's uid
    os.mkdir(d, 0o755)
    files, pins = pki.make(str(d))
    for port, (stem, extra) in SERVERS.items():
        extra = [files.get(x, x) for x in extra]
        key = stem.replace("-leaf-only", "") + ".key"
        w.server("tls-echo", "--listen", f"{EXT_V4}:{port}", "--cert", files[stem + ".pem"],
                 "--key", files[key], *extra)
    w.server("https", "--listen", f"{EXT_V4}:8443", "--cert", files["good.pem"],
             "--key", files["good.key"])
    w.server("https", "--listen", f"{EXT_V4}:8444", "--cert", files["wrongname.pem"],
             "--key", files["wrongname.key"])
    # Count anything reaching ext on the ports the app dialled: attache must
    # only ever send TLS, to the TLS ports.
    subprocess.run(["ip", "netns", "exec", w.ext, "iptables", "-I", "INPUT", "-p", "tcp",
                    "-m", "multiport", "--dports", "80,7000:7099", "-j", "DROP"], check=True)

    routes = []
    for port, (tport, name, extra, _) in CASES.items():
        tls = {"port": tport, "ca": files["root.pem"], **extra}
        tls_yaml = ", ".join(f"{k}: {v}" for k, v in tls.items())
        tls_yaml = tls_yaml.format(good=pins["good"], other=pins["other"],
                                   client_pem=files["client.pem"],
                                   client_key=files["client.key"])
        routes.append(f"  - name: tls-{port}\n    match: {{ port: {port} }}\n"
                      f"    action: tls\n    hostname: \"{name}\"\n    tls: {{ {tls_yaml} }}\n")
    routes.append(f"""  - name: http-api
    match: {{ host: api.partner.example, port: 80 }}
    action: tls
    protocol: http
    tls: {{ port: 8443, ca: {files["root.pem"]} }}
  - name: http-bad-cert
    match: {{ host: bad.partner.example, port: 80 }}
    action: tls
    protocol: http
    tls: {{ port: 8444, ca: {files["root.pem"]} }}
  - name: http-any
    match: {{ port: 80 }}
    action: tls
    protocol: http
    tls: {{ port: 8443, ca: {files["root.pem"]} }}
""")
    w.init("--proxy-uid", str(PROXY_UID))
    w.start_attache("-c", w.write_config("default: deny\nroutes:\n" + "".join(routes)))
    w.pki = files
    return w


def one(w, port):
    [e] = w.wait_log(lambda e: e["dst"] == f"{EXT_V4}:{port}")
    return e


@pytest.mark.parametrize("port", [p for p, c in CASES.items()
                                  if c[3] is None and p not in (7016, 7020)])
def test_good_certificates_relay(tls_world, port):
    r = tls_world.client("c-line", "--to", f"{EXT_V4}:{port}")
    assert r == {"result": "ok", "data": "hello through attache\n"}
    e = one(tls_world, port)
    assert e["outcome"] == "ok" and e["action"] == "tls"
    assert e["upstream"] == f"{EXT_V4}:{CASES[port][0]}"
    assert e["tls"]["verify"] is True
    assert e["tls"]["version"] == "TLSv1.3"
    assert e["tls"]["cipher"] in ("TLS13-AES128-GCM-SHA256", "TLS13-AES256-GCM-SHA384",
                                  "TLS13-CHACHA20-POLY1305-SHA256")


@pytest.mark.parametrize("port", [p for p, c in CASES.items() if c[3] is not None])
def test_bad_certificates_fail_closed(tls_world, port):
    r = tls_world.client("c-line", "--to", f"{EXT_V4}:{port}")
    # The app receives nothing from upstream: a reset or a close, no data.
    assert r["result"] in ("reset", "eof") and r["data"] == "", r
    e = one(tls_world, port)
    assert e["outcome"] == "tls_failed"
    assert CASES[port][3] in e["reason"], e["reason"]
    assert e["bytes_down"] == 0
    # With TLS 1.3 a server that wants a client certificate says so only
    # after our handshake completed, so the app's first bytes may already
    # have gone out, encrypted, to the verified server. Every other failure
    # is found before a byte is sent.
    if port != 7014:
        assert e["bytes_up"] == 0


def test_truncation_reaches_the_app_as_a_reset(tls_world):
    # The server answers, then closes TCP without close_notify: the app gets
    # what was sent, then a reset, never a clean end it could trust.
    r = tls_world.client("c-probe", "--to", f"{EXT_V4}:7016", "--timeout", "5")
    assert r["result"] == "reset" and r["data"] == "hello\n", r
    e = one(tls_world, 7016)
    assert e["outcome"] == "tls_failed" and "without close_notify" in e["reason"]


def test_resumption_on_the_second_connection(tls_world):
    for _ in range(2):
        r = tls_world.client("c-line", "--to", f"{EXT_V4}:7020")
        assert r["result"] == "ok"
    lines = tls_world.wait_log(lambda e: e["dst"] == f"{EXT_V4}:7020", count=2)
    assert [e["tls"]["resumed"] for e in lines] == [False, True]


def curl(w, host, path="/hello"):
    r = subprocess.run(["ip", "netns", "exec", w.app, "curl", "-sS", "--max-time", "10",
                        "-w", "\n%{http_code}", "-H", f"Host: {host}",
                        f"http://{EXT_V4}{path}"], capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def test_http_in_verified_tls_out(tls_world):
    code, body = curl(tls_world, "api.partner.example", "/v1/status?x=1")
    assert code == 200
    assert '"path": "/v1/status?x=1"' in body and '"host": "api.partner.example"' in body
    e = tls_world.wait_log(lambda e: e["route"] == "http-api")[0]
    assert e["name"] == "api.partner.example" and e["tls"]["verify"] is True
    assert e["upstream"] == f"{EXT_V4}:8443"


def test_http_bad_certificate_gets_502_with_the_reason(tls_world):
    code, body = curl(tls_world, "bad.partner.example")
    assert code == 502
    assert body == ("attache: upstream certificate verification failed: "
                    "hostname mismatch\n")


def test_http_without_a_name_is_refused_not_sent_unverified(tls_world):
    r = subprocess.run(["ip", "netns", "exec", tls_world.app, "curl", "-sS", "-0",
                        "--max-time", "10", "-w", "\n%{http_code}", "-H", "Host:",
                        f"http://{EXT_V4}/"], capture_output=True, text=True)
    body, _, code = r.stdout.rpartition("\n")
    assert code == "502" and "no host name to verify" in body


def test_zz_nothing_reached_ext_in_plaintext(tls_world):
    out = subprocess.run(["ip", "netns", "exec", tls_world.ext, "iptables", "-L", "INPUT",
                          "-v", "-n", "-x"], capture_output=True, text=True, check=True).stdout
    rule = next(l for l in out.splitlines() if "multiport" in l)
    assert rule.split()[0] == "0", rule   # packets on the app's original ports
