"""4/6: http routes. The app speaks plain HTTP/1.1 to port 80; attache frames
each request, carries it over pooled, verified TLS connections, and rejects
every smuggling shape before it reaches the upstream.

Upstreams in ext: nginx (TLS on 443, and on 8443 with a 1 s keep-alive
timeout), whose access log records the connection serial of every request,
and peer.py's HTTPS server on 9443 (chunked bodies, websockets, slow
answers, header echo)."""
import collections
import os
import re
import subprocess
import time

import pytest

import pki
from conftest import EXT_V4, PROXY_UID

MAX_PER_UPSTREAM = 4
NGINX_LOG_FORMAT = "$connection $connection_requests $ssl_session_reused $host \"$request\" $status"

NGINX_CONF = """
worker_processes 1;
user root;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    log_format t '{fmt}';
    access_log {d}/nginx-access.log t;
    default_type application/json;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    keepalive_requests 100000;
    client_body_temp_path {d}/body;
    server {{
        listen {ext}:443 ssl;
        keepalive_timeout 60s;
        location / {{ return 200 '{{"path": "$request_uri"}}\\n'; }}
    }}
    server {{
        listen {ext}:8443 ssl;
        keepalive_timeout 1s;
        location / {{ return 200 '{{"path": "$request_uri"}}\\n'; }}
    }}
}}
"""

# host -> (upstream TLS port, extra route settings)
ROUTES = {
    "api.partner.example": (443, ""),
    "other.partner.example": (443, ""),
    "idle.partner.example": (8443, ""),
    "ws.partner.example": (9443, ""),
    "bulk.partner.example": (9443, ""),
    "slow.partner.example": (9443, "    pool: { max_per_upstream: 1, queue: 1, "
                                    "queue_timeout: 300ms }\n"),
    "via.partner.example": (9443, "    via: true\n"),
}


def wait_port(w, port):
    for _ in range(200):
        out = subprocess.run(["ip", "netns", "exec", w.ext, "ss", "-Hltn",
                              f"sport = :{port}"], capture_output=True, text=True).stdout
        if "LISTEN" in out:
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} in ext")


@pytest.fixture(scope="module")
def hw(module_world):
    w = module_world
    d = os.path.join(w.tmp, "pki")
    os.mkdir(d, 0o755)
    files, _ = pki.make(d)
    nd = os.path.join(w.tmp, "nginx")
    os.mkdir(nd, 0o755)
    with open(os.path.join(nd, "nginx.conf"), "w") as f:
        f.write(NGINX_CONF.format(d=nd, fmt=NGINX_LOG_FORMAT, cert=files["http.pem"],
                                  key=files["http.key"], ext=EXT_V4))
    w.spawn(w.ext, ["nginx", "-c", os.path.join(nd, "nginx.conf"), "-g", "daemon off;"])
    wait_port(w, 443)
    wait_port(w, 8443)
    w.server("https", "--listen", f"{EXT_V4}:9443", "--cert", files["http.pem"],
             "--key", files["http.key"])
    w.nginx_log = os.path.join(nd, "nginx-access.log")

    routes = ""
    for host, (port, extra) in ROUTES.items():
        routes += (f"  - name: {host.split('.')[0]}\n"
                   f"    match: {{ cidr: {EXT_V4}/32, port: 80, host: {host} }}\n"
                   f"    protocol: http\n    action: tls\n"
                   f"    tls: {{ port: {port}, ca: {files['root.pem']} }}\n" + extra)
    w.config_text = f"pool: {{ max_per_upstream: {MAX_PER_UPSTREAM} }}\nroutes:\n" + routes
    path = w.write_config(w.config_text)
    w.init("--proxy-uid", str(PROXY_UID))
    w.start_attache("-c", path)
    yield w
    # Under a sanitizer build (ATTACHE_BUILD=build-asan) this is where a
    # memory error would show.
    assert w.attache.poll() is None, "attache died: " + w.stderr()
    assert "runtime error" not in w.stderr() and "Sanitizer" not in w.stderr()


def nginx_lines(w, marker):
    """(connection serial, requests on it, session reused, host, request, status)
    of every nginx access log line whose request contains marker."""
    out = []
    with open(w.nginx_log) as f:
        for line in f:
            m = re.match(r'(\d+) (\d+) (\S+) (\S+) "([^"]*)" (\d+)', line)
            if m and marker in m.group(5):
                out.append(m.groups())
    return out


def client(w, mode, *args, host="api.partner.example", timeout=120):
    return w.client(mode, "--to", f"{EXT_V4}:80", "--host", host, *args, timeout=timeout)


def test_a_new_connection_per_request_reuses_few_upstream_connections(hw):
    r = client(hw, "c-http", "--path", "/a", "--count", "1000", "--parallel", "8")
    assert r["statuses"] == {"200": 1000}, r
    seen = nginx_lines(hw, "GET /a?")
    assert len(seen) == 1000
    conns = {c for c, *_ in seen}
    # Counted at the upstream: every TLS handshake is a new connection there.
    assert 1 <= len(conns) <= MAX_PER_UPSTREAM, conns
    mine = hw.wait_log(lambda e: e["path"] and e["path"].startswith("/a?"),
                       kind="request", count=1000)
    assert len(mine) == 1000
    assert sum(e["conn"] == "new" for e in mine) == len(conns)
    e = mine[-1]
    assert e["method"] == "GET" and e["host"] == "api.partner.example"
    assert e["status"] == 200 and e["outcome"] == "ok" and e["route"] == "api"
    assert e["tls"]["version"] == "TLSv1.3" and e["upstream"] == f"{EXT_V4}:443"
    print(f"test a: 1000 requests over {len(conns)} upstream TLS connections")


def test_b_keep_alive_and_pipelining_in_order(hw):
    r = client(hw, "c-http", "--path", "/ka", "--count", "100", "--keep-alive")
    assert r["statuses"] == {"200": 100}, r
    conn_line = hw.wait_log(lambda e: e.get("requests") == 100)[0]
    assert conn_line["outcome"] == "ok" and conn_line["route"] == "api"

    r = client(hw, "c-pipeline", "--paths", "/p1,/p2,HEAD:/p3,/p4,/p5")
    got = r["responses"]
    assert [x["status"] for x in got] == [200] * 5
    assert [x["body"] for x in got] == ['{"path": "/p1"}\n', '{"path": "/p2"}\n', "",
                                        '{"path": "/p4"}\n', '{"path": "/p5"}\n']
    assert [x["close"] for x in got] == [False] * 4 + [True]


def test_c_chunked_50mib_both_ways(hw):
    r = client(hw, "c-bulk", "--bytes", str(50 * 1024 * 1024), host="bulk.partner.example")
    assert r == {"upload_ok": True, "download_ok": True, "download_chunked": True,
                 "status": [200, 200]}, r


def test_d_websocket_upgrade_both_ways(hw):
    r = client(hw, "c-ws", "--bytes", str(1024 * 1024), host="ws.partner.example")
    assert r["status"] == "HTTP/1.1 101 Switching Protocols" and r["accept_ok"], r
    assert r["hello"] == "hello from the websocket server"
    assert r["intact"] and r["recv"] == 1024 * 1024, r
    e = hw.wait_log(lambda e: e["path"] == "/chat", kind="request")[0]
    assert e["status"] == 101 and e["conn"] == "new" and e["bytes_up"] > 1024 * 1024


def test_d_connect_becomes_a_tunnel(hw):
    # The upstream here plays a forward proxy: CONNECT, 200, then bytes.
    r = client(hw, "c-connect", "--path", "tunnel.partner.example:443",
               "--bytes", str(256 * 1024), host="ws.partner.example")
    assert r["status"] == "HTTP/1.1 200 Connection established" and r["intact"], r
    e = hw.wait_log(lambda e: e["method"] == "CONNECT", kind="request")[0]
    assert e["status"] == 200 and e["outcome"] == "ok" and e["conn"] == "new"
    assert e["bytes_up"] > 256 * 1024 and e["bytes_down"] > 256 * 1024


H = "Host: api.partner.example\r\n"
SMUGGLING = [
    # (name, bytes, status, the rule the log line names)
    ("cl-te", f"POST /smuggle-1 HTTP/1.1\r\n{H}Content-Length: 4\r\n"
              f"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /inner-1 HTTP/1.1\r\n{H}\r\n",
     400, "both Content-Length and Transfer-Encoding"),
    ("cl-cl", f"POST /smuggle-2 HTTP/1.1\r\n{H}Content-Length: 5\r\nContent-Length: 40\r\n"
              f"\r\nhello", 400, "Content-Length"),
    ("te-unknown", f"POST /smuggle-3 HTTP/1.1\r\n{H}Transfer-Encoding: gzip, chunked\r\n\r\n"
                   "0\r\n\r\n", 501, "transfer coding"),
    ("te-xchunked", f"POST /smuggle-4 HTTP/1.1\r\n{H}Transfer-Encoding: xchunked\r\n\r\n"
                    "0\r\n\r\n", 400, "Transfer-Encoding"),
    ("obs-fold", f"GET /smuggle-5 HTTP/1.1\r\n{H}X-A: a\r\n b\r\n\r\n", 400, "obs-fold"),
    ("bare-lf", f"GET /smuggle-6 HTTP/1.1\n{H}\n", 400, "bare CR or LF"),
    ("bare-cr", f"GET /smuggle-7 HTTP/1.1\r\n{H}X-A: a\rb\r\n\r\n", 400, "bare CR or LF"),
    ("nul", f"GET /smuggle-8 HTTP/1.1\r\n{H}X-A: a\x00b\r\n\r\n", 400, None),
    ("ctl", f"GET /smuggle-9 HTTP/1.1\r\n{H}X-A: a\x01b\r\n\r\n", 400, None),
    ("chunk-size", f"POST /smuggle-10 HTTP/1.1\r\n{H}Transfer-Encoding: chunked\r\n\r\n"
                   f"zz\r\nGET /inner-10 HTTP/1.1\r\n{H}\r\n", 400, "chunk"),
    ("line-414", f"GET /smuggle-11?{'a' * 9000} HTTP/1.1\r\n{H}\r\n", 414,
     "request line too long"),
    ("head-431", f"GET /smuggle-12 HTTP/1.1\r\n{H}" + "".join(
        f"X-Filler-{i}: {'b' * 1000}\r\n" for i in range(40)) + "\r\n", 431,
     "header block too large"),
]


@pytest.mark.parametrize("name,data,status,rule", SMUGGLING, ids=[s[0] for s in SMUGGLING])
def test_e_smuggling_shapes_never_reach_upstream(hw, name, data, status, rule):
    before = len(hw.log("request"))
    r = client(hw, "c-raw", "--data", repr(data.encode("latin-1")), "--timeout", "5")
    assert r["response"].startswith(f"HTTP/1.1 {status} "), r
    assert "Connection: close" in r["response"] and r["closed"] != "open", r
    deadline = time.monotonic() + 5
    while len(hw.log("request")) == before:
        assert time.monotonic() < deadline, "no request log line"
        time.sleep(0.05)
    e, = hw.log("request")[before:]
    assert e["outcome"] == "rejected" and e["status"] == status
    if rule:
        assert rule in e["reason"], e
    assert e["reason"] in r["response"]
    time.sleep(0.2)
    assert nginx_lines(hw, "smuggle") == [] and nginx_lines(hw, "inner") == []


def test_f_idle_pooled_connection_closed_by_upstream(hw):
    host = "idle.partner.example"
    r = client(hw, "c-http", "--path", "/idle1", "--count", "1", host=host)
    assert r["statuses"] == {"200": 1}
    time.sleep(2.5)   # nginx closes its side after 1 s idle
    r = client(hw, "c-http", "--path", "/idle2", "--count", "1", host=host)
    assert r["statuses"] == {"200": 1}, r
    (c1, *_), = nginx_lines(hw, "/idle1")
    (c2, *_), = nginx_lines(hw, "/idle2")
    assert c1 != c2
    e = hw.wait_log(lambda e: e["path"] and e["path"].startswith("/idle2"),
                    kind="request")[0]
    assert e["conn"] == "new" and e["outcome"] == "ok"


def test_g_two_names_on_one_address_never_share(hw):
    for i in range(3):
        for host, path in (("api.partner.example", f"/g-api{i}"),
                           ("other.partner.example", f"/g-other{i}")):
            r = client(hw, "c-http", "--path", path, "--count", "20", "--parallel", "2",
                       host=host)
            assert r["statuses"] == {"200": 20}, r
    api = {c for c, _, _, h, *_ in nginx_lines(hw, "/g-api")}
    other = {c for c, _, _, h, *_ in nginx_lines(hw, "/g-other")}
    assert {h for *_, h, _, _ in nginx_lines(hw, "/g-other")} == {"other.partner.example"}
    assert api and other and not (api & other), (api, other)


def test_queue_full_and_queue_timeout_get_503(hw):
    r = client(hw, "c-http", "--path", "/slow?ms=1500", "--count", "3", "--parallel", "3",
               host="slow.partner.example")
    assert r["statuses"] == {"200": 1, "-503": 2}, r
    lines = hw.wait_log(lambda e: e["host"] == "slow.partner.example", kind="request",
                        count=3)
    reasons = sorted(e["reason"] or "" for e in lines if e["status"] == 503)
    assert "queue full" in reasons[1] and "no upstream connection free within 300 ms" in \
        reasons[0], reasons
    assert sorted(e["outcome"] for e in lines if e["status"] == 503) == \
        ["queue_full", "queue_timeout"], lines


def test_expect_100_continue(hw):
    r = client(hw, "c-expect", "--bytes", "100000", host="bulk.partner.example")
    assert r == {"interim": "HTTP/1.1 100 Continue", "status": 200, "body": 100000}, r


def test_hop_by_hop_removed_and_via_opt_in(hw):
    hop = ("Connection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n"
           "Proxy-Connection: keep-alive\r\nX-End: 1\r\n")
    seen = {}
    for host in ("via.partner.example", "bulk.partner.example"):
        data = f"GET /hdr HTTP/1.1\r\nHost: {host}\r\n{hop}Connection: close\r\n\r\n"
        r = client(hw, "c-raw", "--data", repr(data.encode()), host=host)
        body = r["response"].split("\r\n\r\n", 1)[1]
        import json
        seen[host] = json.loads(body)
    for host, s in seen.items():
        assert "x-end" in s["headers"]
        for gone in ("x-hop", "keep-alive", "proxy-connection"):
            assert gone not in s["headers"], (host, s)
    assert seen["via.partner.example"]["via"] == "1.1 attache"
    assert seen["bulk.partner.example"]["via"] is None


def test_dead_upstream_gets_502_naming_reason(hw):
    # Nothing listens on ext:9444: a route pointing there answers 502.
    hw.reload(hw.config_text +
              f"  - name: dead\n    match: {{ cidr: {EXT_V4}/32, port: 80, "
              f"host: dead.partner.example }}\n    protocol: http\n    action: pass\n")
    data = f"GET /x HTTP/1.1\r\nHost: dead.partner.example\r\n\r\n"
    r = client(hw, "c-raw", "--data", repr(data.encode()), host="dead.partner.example")
    assert r["response"].startswith("HTTP/1.1 502 "), r
    assert "upstream connect: Connection refused" in r["response"]
