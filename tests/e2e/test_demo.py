"""The README's demo command works, and shows what it promises: plain http
in, verified TLS out, and the refusal of a certificate for another name."""
import json
import os
import subprocess

from conftest import ROOT


def test_demo_plain_http_in_verified_tls_out_and_refusal(bindir):
    r = subprocess.run([os.path.join(ROOT, "examples", "demo", "run")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert '{"partner": "api.partner.example", "status": "ok"}\n(HTTP 200)' in out
    assert ("attache: upstream certificate verification failed: hostname mismatch\n"
            "(HTTP 502)") in out
    lines = [json.loads(l) for l in out.splitlines() if l.startswith('{"time"')]
    ok, refused = lines
    assert ok["dst"] == "203.0.113.7:80" and ok["upstream"] == "203.0.113.7:443"
    assert ok["tls"]["verify"] is True and ok["tls"]["version"] == "TLSv1.3"
    assert ok["name"] == "api.partner.example" and ok["outcome"] == "ok"
    assert refused["outcome"] == "tls_failed" and refused["bytes_down"] == 0
    # and it tore its world down
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "attache-demo" not in ns
    assert not os.path.exists("/etc/netns/attache-demo-app")
