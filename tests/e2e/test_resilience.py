"""5/6: retries, budget, circuit and timeouts, counted at the upstream.

A scripted upstream in ext (peer.py fault, plain on :80 and TLS on :443)
logs every connection it accepts and every request it reads, with the
app's request id; nothing listens on :81 (connections there are refused)
and an iptables rule in ext counts the SYNs that reach it."""
import json
import os
import statistics
import threading
import time

import pytest

import pki
from conftest import EXT_V4, PROXY_UID, sh

POLICY = """retry:
  attempts: 3
  on: [reset, timeout, 503]
  backoff: {{ base: 5ms, cap: 20ms }}
  per_try_timeout: 400ms
  budget: {{ ratio: 20%, min_per_second: {floor} }}
timeout: {{ request: {request} }}
circuit: {{ consecutive_failures: {failures}, open_for: {open_for}, open_max: 4s,
           max_active_requests: {max_active} }}
"""

ROUTES = """routes:
  - name: plain
    match: {{ cidr: {ext}/32, port: 80 }}
    protocol: http
    action: pass
  - name: secure
    match: {{ cidr: {ext}/32, port: 8080 }}
    protocol: http
    action: tls
    hostname: api.partner.example
    tls: {{ port: 443, ca: {ca} }}
  - name: dead
    match: {{ cidr: {ext}/32, port: 81 }}
    protocol: http
    action: pass
  - name: dead-tcp
    match: {{ cidr: {ext}/32, port: 82 }}
    action: pass
"""


class Fault:
    def __init__(self, w):
        self.w = w
        self.log_path = os.path.join(w.tmp, "upstream.log")
        self.ctl = os.path.join(w.tmp, "upstream.ctl")
        self.set("ok")

    def set(self, mode):
        with open(self.ctl + ".new", "w") as f:
            f.write(mode)
        os.chmod(self.ctl + ".new", 0o644)
        os.rename(self.ctl + ".new", self.ctl)

    def events(self, ev=None):
        with open(self.log_path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        return [e for e in lines if ev is None or e["ev"] == ev]

    def requests(self, rid):
        return [e for e in self.events("request") if e["id"] == rid]


def syns(w, port):
    """SYNs that reached ext on port (its counting rule's packets)."""
    out = sh("ip", "netns", "exec", w.ext, "iptables", "-w", "-nvxL", "INPUT").stdout
    for line in out.splitlines():
        if f"dpt:{port}" in line:
            return int(line.split()[0])
    raise AssertionError(out)


@pytest.fixture
def res(world):
    d = os.path.join(world.tmp, "pki")
    os.mkdir(d, 0o755)
    files, _ = pki.make(d)
    f = Fault(world)
    for args in (("fault", "--listen", f"{EXT_V4}:80"),
                 ("fault-tls", "--listen", f"{EXT_V4}:443", "--cert", files["good.pem"],
                  "--key", files["good.key"])):
        world.server(*args, "--log", f.log_path, "--ctl", f.ctl)
    for port in (81, 82):
        sh("ip", "netns", "exec", world.ext, "iptables", "-w", "-I", "INPUT", "-p", "tcp",
           "--syn", "--dport", str(port))
    world.init("--proxy-uid", str(PROXY_UID))
    world.fault = f

    def start(floor=10, request="2s", failures=0, open_for="1s", max_active=0):
        cfg = POLICY.format(floor=floor, request=request, failures=failures,
                            open_for=open_for, max_active=max_active)
        cfg += ROUTES.format(ext=EXT_V4, ca=files["root.pem"])
        world.start_attache("-c", world.write_config(cfg), "--connect-timeout", "1s")
    world.start = start
    return world


def req(w, port, path, count=1, method="GET", rid="r", body=0, seconds=0, rate=1e9):
    args = ["c-req", "--to", f"{EXT_V4}:{port}", "--path", path, "--count", str(count),
            "--method", method, "--id", rid, "--bytes", str(body), "--rate", str(rate)]
    if seconds:
        args += ["--seconds", str(seconds)]
    return w.client(*args, timeout=120)


def request_lines(w, count):
    return w.wait_log(lambda e: True, count=count, kind="request")


@pytest.mark.parametrize("port", [80, 8080], ids=["plain", "tls"])
def test_gets_succeed_through_transient_faults(res, port):
    res.start()
    # Two 503s, then a 200: three tries, the most the policy allows.
    r = req(res, port, "/status/503/2", count=4, rid="s")["requests"]
    assert [x["status"] for x in r] == [200] * 4, r
    for x in r:
        assert x["body"] == f"ok {x['id']}"
        assert len(res.fault.requests(x["id"])) == 3
    # Reset after the request was read, once: two tries.
    r = req(res, port, "/reset/1", count=4, rid="z")["requests"]
    assert [x["status"] for x in r] == [200] * 4, r
    for x in r:
        assert len(res.fault.requests(x["id"])) == 2
    lines = request_lines(res, 8)
    assert sorted(e["tries"] for e in lines) == [2] * 4 + [3] * 4, lines
    assert all(e["outcome"] == "ok" and e["status"] == 200 for e in lines)
    assert all(e["backoff_ms"] <= 20 * (e["tries"] - 1) for e in lines), lines


@pytest.mark.parametrize("port", [80, 8080], ids=["plain", "tls"])
def test_tries_run_out_and_the_last_answer_goes_to_the_app(res, port):
    res.start()
    # Three 503s and only three tries: the third 503 is the answer.
    r = req(res, port, "/status/503/3", rid="t")["requests"][0]
    assert r["status"] == 503 and r["body"] == "fail t0", r
    assert len(res.fault.requests("t0")) == 3
    # Reset every time: a 502 naming it, after three tries.
    r = req(res, port, "/reset", rid="u")["requests"][0]
    assert r["status"] == 502 and "not retried: no attempts left" in r["body"], r
    assert len(res.fault.requests("u0")) == 3


def test_a_post_reset_after_it_was_written_is_never_sent_twice(res):
    res.start()
    for port in (80, 8080):
        rid = f"p{port}-"
        r = req(res, port, "/reset/1", method="POST", body=1000, rid=rid)["requests"][0]
        assert r["status"] == 502, r
        assert "not idempotent" in r["body"], r
        seen = res.fault.requests(rid + "0")
        assert len(seen) == 1 and seen[0]["method"] == "POST" and seen[0]["body"] == 1000
    # A POST answered 503 is not retried either: the upstream saw it.
    r = req(res, 80, "/status/503/1", method="POST", body=10, rid="q")["requests"][0]
    assert r["status"] == 503 and len(res.fault.requests("q0")) == 1, r


def test_a_body_over_the_bound_is_not_kept_for_a_retry(res):
    res.start()
    r = req(res, 80, "/reset/1", method="PUT", body=65 * 1024, rid="big")["requests"][0]
    assert r["status"] == 502 and "too long to keep" in r["body"], r
    assert len(res.fault.requests("big0")) == 1
    # Under the bound, the PUT is kept and replayed whole.
    r = req(res, 80, "/reset/1", method="PUT", body=60 * 1024, rid="small")["requests"][0]
    assert r["status"] == 200, r
    assert [e["body"] for e in res.fault.requests("small0")] == [60 * 1024] * 2


@pytest.mark.parametrize("port", [80, 8080], ids=["plain", "tls"])
def test_connections_reset_at_accept_are_retried(res, port):
    res.start()
    res.fault.set("reset")
    r = req(res, port, "/", rid="a")["requests"][0]
    # Each try meets a new connection that is reset at once: plain, after
    # the GET went into it; TLS, in the handshake (a connection-level
    # retry: nothing was sent).
    assert r["status"] == 502, r
    assert len(res.fault.events("accept")) == 3
    e = request_lines(res, 1)[0]
    assert e["tries"] == 3, e
    assert e["outcome"] == ("tls_failed" if port == 8080 else "upstream_failed"), e
    res.fault.set("ok")
    r = req(res, port, "/", rid="b")["requests"][0]
    assert r["status"] == 200, r


def test_refused_connects_are_retried_with_backoff(res):
    res.start()
    for port, kind in ((81, "request"), (82, "conn")):
        before = syns(res, port)
        if kind == "request":
            r = req(res, port, "/", method="POST", body=5, rid="d")["requests"][0]
            assert r["status"] == 502 and "refused" in r["body"], r
        else:
            res.client("c-probe", "--to", f"{EXT_V4}:{port}", "--timeout", "5")
        e = res.wait_log(lambda e: e["outcome"] == "connect_failed" and "tries" in e,
                         kind=kind)[0]
        # A refused connect is safe to retry for any method or protocol.
        assert e["tries"] == 3 and syns(res, port) - before == 3, e
        assert e["circuit"] == "closed" and e["budget"]["retries"] >= 2, e


def test_an_outage_is_not_amplified_past_the_budget(res):
    # The circuit is off: the budget alone must bound the retries.
    floor, window = 2, 10
    res.start(floor=floor)
    results = []

    def app(i):
        results.append(req(res, 81, "/", rid=f"app{i}-", seconds=5))

    threads = [threading.Thread(target=app, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    requests = sum(r["count"] for r in results)
    attempts = syns(res, 81)
    statuses = {k for r in results for k in r["totals"]}
    print(f"\noutage: {requests} app requests from 4 apps in 5 s, "
          f"{attempts} upstream connection attempts "
          f"({attempts / requests:.3f} per request; budget 20% + {floor}/s)")
    assert statuses == {"502"}, results
    assert requests > 100
    assert requests < attempts <= 1.2 * requests + floor * window, (requests, attempts)
    # The log is flushed every 50 ms: wait for the line rather than read once.
    res.wait_log(lambda e: e["budget"] and e["budget"]["spent"], kind="request")


def test_the_circuit_opens_half_opens_and_closes(res):
    res.start(failures=3, open_for="1s")
    # The upstream reads each POST, then resets: one failure each (a POST
    # that was sent is never retried).
    for i in range(3):
        r = req(res, 80, "/reset", method="POST", rid=f"f{i}-")["requests"][0]
        assert r["status"] == 502 and r["circuit"] is None, r
    accepts = len(res.fault.events("accept"))
    r = req(res, 80, "/", count=20, rid="o")["requests"]
    assert all(x["status"] == 503 and x["circuit"] == "open" for x in r), r
    assert "circuit open" in r[0]["body"]
    assert len(res.fault.events("accept")) == accepts, "an open circuit dialled"
    fast = [e["duration_ms"] for e in
            res.wait_log(lambda e: e["outcome"] == "circuit_open", count=20, kind="request")]
    print(f"\ncircuit open: fail-fast median {statistics.median(fast):.3f} ms, "
          f"max {max(fast):.3f} ms of attache time")
    # After open_for, one probe goes; it fails: open again, for longer (2 s).
    time.sleep(1.2)
    r = req(res, 80, "/reset", method="POST", rid="probe1-")["requests"][0]
    assert r["status"] == 502 and len(res.fault.events("accept")) == accepts + 1, r
    time.sleep(1.2)
    r = req(res, 80, "/", rid="still")["requests"][0]
    assert r["status"] == 503 and r["circuit"] == "open", r
    # Past the longer ejection, the probe succeeds and the circuit closes
    # for everyone.
    time.sleep(1.0)
    r = req(res, 80, "/", rid="probe2-")["requests"][0]
    assert r["status"] == 200, r
    r = req(res, 80, "/", count=5, rid="after")["requests"]
    assert [x["status"] for x in r] == [200] * 5, r
    # The log is flushed every 50 ms: wait for the six 200s to be written.
    e = res.wait_log(lambda e: e["status"] == 200, count=6, kind="request")[-1]
    assert e["circuit"] == "closed", e


def test_a_tcp_route_fails_fast_with_its_circuit_open(res):
    res.start(failures=2, open_for="3s")
    before = syns(res, 82)
    for _ in range(4):
        r = res.client("c-probe", "--to", f"{EXT_V4}:82", "--timeout", "5")
        assert r["result"] in ("eof", "reset") and r["data"] == "", r
    lines = res.wait_log(lambda e: True, count=4)
    # The circuit opens at the first connection's second failed dial,
    # which ends its tries; the next ones are closed without a dial.
    outcomes = [e["outcome"] for e in lines]
    assert outcomes == ["connect_failed"] + ["circuit_open"] * 3, lines
    assert lines[0]["tries"] == 2 and syns(res, 82) - before == 2, lines
    assert all(e["tries"] == 0 for e in lines if e["outcome"] == "circuit_open")


def test_timeouts_bound_the_apps_wait(res):
    res.start(request="3s")
    # Per-try timeouts, three tries, then a 504 that says so.
    r = req(res, 80, "/stall", rid="g")["requests"][0]
    assert r["status"] == 504 and "per-try timeout" in r["body"], r
    assert len(res.fault.requests("g0")) == 3
    # A POST is sent once: its per-try timeout is the end of it.
    r = req(res, 80, "/stall", method="POST", rid="h")["requests"][0]
    assert r["status"] == 504 and "not idempotent" in r["body"], r
    assert len(res.fault.requests("h0")) == 1
    e = res.wait_log(lambda e: e["method"] == "POST", kind="request")[0]
    assert e["outcome"] == "timeout" and e["tries"] == 1, e


def test_the_request_timeout_ends_the_tries(res):
    res.start(request="1s")
    # 400 ms per try: the third would end past the deadline.
    r = req(res, 80, "/stall", rid="k")["requests"][0]
    assert r["status"] == 504 and ("request timeout" in r["body"] or
                                   "no time left" in r["body"]), r
    assert 2 <= len(res.fault.requests("k0")) <= 3


def test_the_request_timeout_counts_from_the_end_of_the_upload(res):
    res.start(request="1s")
    # 3000 bytes at 2000 bytes/s: the upload alone outlasts the timeout.
    r = req(res, 80, "/", method="PUT", body=3000, rate=2000, rid="up")["requests"][0]
    assert r["status"] == 200 and r["body"] == "ok up0", r
    assert res.fault.requests("up0")[0]["body"] == 3000


def test_retry_after_is_honoured(res):
    res.start(request="5s")
    r = req(res, 80, "/status/503/1?ra=1", rid="ra")["requests"][0]
    assert r["status"] == 200, r
    e = request_lines(res, 1)[0]
    assert e["tries"] == 2 and e["backoff_ms"] >= 1000, e
    # Past 10 s, Retry-After is the app's to honour: the 503 goes to it.
    r = req(res, 80, "/status/503/1?ra=60", rid="long")["requests"][0]
    assert r["status"] == 503 and r["body"] == "fail long0", r
    assert len(res.fault.requests("long0")) == 1


def test_max_active_requests_fails_fast_past_the_limit(res):
    res.start(max_active=2)
    out = {}

    def stall(i):
        out[i] = req(res, 80, "/stall", method="POST", rid=f"s{i}-")["requests"][0]

    threads = [threading.Thread(target=stall, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    res.fault_wait = time.monotonic() + 5
    while len([e for e in res.fault.events("request") if e["path"] == "/stall"]) < 2:
        assert time.monotonic() < res.fault_wait, res.fault.events()
        time.sleep(0.02)
    # Two in flight: the third is refused at once, the upstream untouched.
    r = req(res, 80, "/", rid="third")["requests"][0]
    assert r["status"] == 503 and "max_active_requests" in r["body"], r
    assert not res.fault.requests("third0")
    for t in threads:
        t.join()
    assert [out[i]["status"] for i in range(2)] == [504, 504], out
    # Their end frees the slots.
    r = req(res, 80, "/", rid="fourth")["requests"][0]
    assert r["status"] == 200, r
    e = res.wait_log(lambda e: e["outcome"] == "max_active", kind="request")[0]
    assert e["status"] == 503 and e["tries"] == 0, e


def test_a_flapping_upstream_is_ridden_through(res):
    res.start()
    # 503 and 200 in turns: every GET gets its 200, in one or two tries.
    r = req(res, 80, "/flap/1", count=6, rid="fl")["requests"]
    assert [x["status"] for x in r] == [200] * 6, r
    tries = [len(res.fault.requests(x["id"])) for x in r]
    assert set(tries) <= {1, 2} and 2 in tries, tries
    assert sum(tries) == len(res.fault.events("request"))


def test_a_stalled_tls_handshake_is_a_connect_failure_retried(res):
    res.start(request="10s")
    res.fault.set("stall")   # accepted, never read: the handshake hangs
    r = req(res, 8080, "/", rid="hs")["requests"][0]
    assert r["status"] == 502 and "handshake timeout" in r["body"], r
    assert len(res.fault.events("accept")) == 3
    e = request_lines(res, 1)[0]
    assert e["outcome"] == "tls_failed" and e["tries"] == 3, e
