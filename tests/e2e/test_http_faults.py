"""4/6: an upstream that misbehaves must never make attache reuse a
connection that is not exactly at a message boundary, nor stall it.
A plain-HTTP upstream in ext (peer.py http-faults) logs which of its
connections every request arrived on."""
import os
import time

import pytest

from conftest import EXT_V4, PROXY_UID, sh

CONFIG = f"""routes:
  - name: web
    match: {{ cidr: {EXT_V4}/32, port: 80 }}
    protocol: http
    action: pass
"""


@pytest.fixture
def faults(world):
    world.up_log = os.path.join(world.tmp, "upstream.log")
    world.server("http-faults", "--listen", f"{EXT_V4}:80", "--log", world.up_log)
    world.init("--proxy-uid", str(PROXY_UID))
    world.start_attache("-c", world.write_config(CONFIG), "--idle-timeout", "5s")
    return world


def upstream_conns(w):
    """{request path: upstream connection number}"""
    with open(w.up_log) as f:
        return {l.split()[2]: l.split()[0] for l in f}


def raw(w, data, timeout=5, body=0):
    return w.client("c-raw", "--to", f"{EXT_V4}:80", "--data", repr(data),
                    "--bytes", str(body), "--timeout", str(timeout))["response"]


def get(path, close=False):
    return (f"GET {path} HTTP/1.1\r\nHost: a.example\r\n" +
            ("Connection: close\r\n" if close else "") + "\r\n").encode()


def test_a_response_past_the_end_is_dropped_with_its_connection(faults):
    assert raw(faults, get("/extra", close=True)).endswith("\r\n\r\nok")
    # The unasked-for second response must not answer the next request.
    out = raw(faults, get("/second", close=True))
    assert out.endswith("\r\n\r\nreal") and "EVIL" not in out, out
    c = upstream_conns(faults)
    assert c["/extra"] != c["/second"]


def test_an_upstream_that_closed_after_its_response_is_not_reused(faults):
    assert raw(faults, get("/closeafter", close=True)).endswith("ok")
    time.sleep(0.2)
    out = raw(faults, get("/after", close=True))
    assert out.startswith("HTTP/1.1 200") and out.endswith("real"), out
    e = faults.wait_log(lambda e: e["path"] == "/after", kind="request")[0]
    assert e["conn"] == "new" and e["outcome"] == "ok"


def test_a_response_before_the_body_ends_retires_the_connection(faults):
    # Small socket buffers on both sides, and an upstream that answers
    # without reading: most of the body is still in attache when the
    # response comes, so the connection is not at a message boundary.
    for ns in (faults.app, faults.ext):
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.tcp_wmem=4096 4096 4096",
           "net.ipv4.tcp_rmem=4096 4096 4096")
    n = 300000
    req = (b"POST /early HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n"
           b"Content-Length: %d\r\n\r\n" % n)
    out = raw(faults, req, timeout=8, body=n)
    assert out.startswith("HTTP/1.1 200") and out.endswith("ok"), out[:200]
    # The upstream never read the body: its connection cannot carry the next.
    out = raw(faults, get("/next", close=True))
    assert out.endswith("real"), out
    c = upstream_conns(faults)
    assert c["/early"] != c["/next"]


def test_a_big_response_head_in_pieces_does_not_stall(faults):
    t0 = time.monotonic()
    out = raw(faults, get("/bighead", close=True), timeout=4)
    assert out.startswith("HTTP/1.1 200") and out.endswith("ok"), out[-200:]
    assert "X-Pad-0029" in out
    assert time.monotonic() - t0 < 4


def test_a_bad_response_is_a_502_naming_the_rule(faults):
    out = raw(faults, get("/badresponse", close=True))
    assert out.startswith("HTTP/1.1 502 "), out
    assert "bad response: more than one Content-Length" in out
    e = faults.wait_log(lambda e: e["path"] == "/badresponse", kind="request")[0]
    assert e["outcome"] == "upstream_failed" and e["status"] == 502


def test_a_response_cut_short_resets_the_app(faults):
    # The app has the head and part of the body: a close would pass the
    # cut body off as whole, so it gets a reset.
    r = faults.client("c-raw", "--to", f"{EXT_V4}:80", "--data", repr(get("/cut")),
                      "--timeout", "5")
    assert r["response"].startswith("HTTP/1.1 200") and r["closed"] == "reset", r
    e = faults.wait_log(lambda e: e["path"] == "/cut", kind="request")[0]
    assert e["outcome"] == "upstream_failed"
    assert "in the middle of a response" in e["reason"]


def test_drain_with_idle_pooled_connections(faults):
    assert raw(faults, get("/pooled", close=True)).endswith("real")
    time.sleep(0.2)
    assert faults.stop_attache() == 0
    err = faults.stderr()
    assert "Sanitizer" not in err and "runtime error" not in err, err
