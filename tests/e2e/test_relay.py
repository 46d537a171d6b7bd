"""The skeleton's relay, end to end: an unmodified client in `app`, a server
in `ext`, attache in between only because of the REDIRECT rules."""
import json
import subprocess
import threading
import time

from conftest import APP_V4, EXT_V4, EXT_V4B, EXT_V6, PEER, PROXY_UID, PYTHON

MIB = 1024 * 1024


def test_a_ipv4_10mib_both_ways_intact(proxied):
    proxied.server("echo", "--listen", f"{EXT_V4}:9000")
    r = proxied.client("c-echo", "--to", f"{EXT_V4}:9000", "--bytes", str(10 * MIB))
    assert r == {"sent": 10 * MIB, "recv": 10 * MIB, "intact": True}
    # The log proves the connection went through attache, to where the app
    # was going, from the app's own address.
    [line] = proxied.wait_log(lambda e: e["dst"] == f"{EXT_V4}:9000")
    assert line["app"].startswith(APP_V4 + ":")
    assert line["bytes_up"] == 10 * MIB and line["bytes_down"] == 10 * MIB
    assert line["outcome"] == "ok"


def test_b_ipv6_10mib_both_ways_intact(proxied):
    proxied.server("echo", "--listen", f"[{EXT_V6}]:9000")
    r = proxied.client("c-echo", "--to", f"[{EXT_V6}]:9000", "--bytes", str(10 * MIB))
    assert r == {"sent": 10 * MIB, "recv": 10 * MIB, "intact": True}, open(proxied.log_path).read()
    assert r == {"sent": 10 * MIB, "recv": 10 * MIB, "intact": True}
    [line] = proxied.wait_log(lambda e: e["dst"] == f"[{EXT_V6}]:9000")
    assert line["bytes_up"] == 10 * MIB and line["bytes_down"] == 10 * MIB
    assert line["outcome"] == "ok"


def test_c_half_close_reply_after_eof(proxied):
    proxied.server("sink-reply", "--listen", f"{EXT_V4}:9000", "--bytes", str(2 * MIB))
    r = proxied.client("c-halfclose", "--to", f"{EXT_V4}:9000",
                       "--bytes", str(MIB), "--reply", str(2 * MIB))
    # The server only answers after it saw EOF, so the reply proves the
    # half-close crossed attache while the other direction kept flowing.
    assert r == {"server_got": MIB, "server_sha_ok": True,
                 "reply": 2 * MIB, "reply_ok": True}
    [line] = proxied.wait_log(lambda e: e["dst"] == f"{EXT_V4}:9000")
    assert line["outcome"] == "ok"


def test_d_direct_connection_refused_no_loop(proxied):
    for to in ("127.0.0.1:15001", "[::1]:15001"):
        r = proxied.client("c-probe", "--to", to, "--timeout", "5")
        assert r["result"] in ("eof", "reset") and r["data"] == "", r
    lines = proxied.wait_log(lambda e: e["outcome"] == "rejected", count=2)
    assert all("not redirected" in e["reason"] for e in lines)
    time.sleep(0.3)
    # Exactly the two rejections: nothing was dialled, nothing looped.
    assert len(proxied.log()) == 2


def test_d_own_traffic_redirected_back_is_a_loop(world):
    # attache-init told the wrong uid: attache's own upstream connection is
    # redirected back to it. It must notice and refuse, not loop.
    world.server("echo", "--listen", f"{EXT_V4}:9000")
    world.init("--proxy-uid", "4242")
    world.start_attache()
    r = world.client("c-probe", "--to", f"{EXT_V4}:9000", "--timeout", "5")
    assert r["result"] in ("eof", "reset") and r["data"] == "", r
    world.wait_log(lambda e: e["reason"].startswith("loop"))
    time.sleep(0.5)
    log = world.log()
    # The app's connection, and one looped copy per try it made: the dial
    # is retried as a connect that failed (each copy is reset at once).
    app = [e for e in log if not e["reason"].startswith("loop")]
    assert len(app) == 1 and app[0]["tries"] >= 1, log
    assert len(log) == 1 + app[0]["tries"], log


def test_e_slow_reader_bounded_rss(proxied):
    total = 200 * MIB
    proxied.server("source", "--listen", f"{EXT_V4}:9001", "--bytes", str(total))
    base = proxied.rss_kib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proxied.rss_kib())
            time.sleep(0.05)

    t = threading.Thread(target=sample)
    t.start()
    try:
        # ~40 MiB/s: the server could send far faster.
        r = proxied.client("c-slowread", "--to", f"{EXT_V4}:9001",
                           "--rate", str(40 * MIB), "--timeout", "30", timeout=120)
    finally:
        done.set()
        t.join()
    assert r["recv"] == total and r["intact"], r
    growth = peak[0] - base
    print(f"\nslow reader: RSS {base} KiB at start, peak {peak[0]} KiB "
          f"(+{growth} KiB) over {total // MIB} MiB in {r['seconds']} s")
    # Two 32 KiB buffers are the design bound; allow libc some slack.
    assert growth < 4096, f"RSS grew by {growth} KiB"


def test_f_refused_destination_prompt_close(proxied):
    r = proxied.client("c-probe", "--to", f"{EXT_V4}:9999", "--timeout", "10")
    assert r["result"] in ("eof", "reset") and r["data"] == "", r
    [line] = proxied.wait_log(lambda e: e["dst"] == f"{EXT_V4}:9999")
    assert line["outcome"] == "connect_failed"
    assert "Connection refused" in line["reason"]


def test_f_silent_destination_connect_timeout(proxied):
    # 198.51.100.99 answers ARP (it is on ext) but ext drops its SYNs.
    subprocess.run(["ip", "-n", proxied.ext, "addr", "add", "198.51.100.99/24",
                    "dev", "veth-ext"], check=True)
    subprocess.run(["ip", "netns", "exec", proxied.ext, "iptables", "-A", "INPUT",
                    "-d", "198.51.100.99", "-j", "DROP"], check=True)
    r = proxied.client("c-probe", "--to", "198.51.100.99:80", "--timeout", "10")
    # attache runs with --connect-timeout 1s; the client's own limit is 10 s.
    assert r["result"] in ("eof", "reset"), r
    [line] = proxied.wait_log(lambda e: e["dst"] == "198.51.100.99:80")
    assert line["outcome"] == "connect_failed"
    assert line["reason"] == "upstream connect timeout"


def test_sigterm_drains_open_connections(proxied):
    proxied.server("sink-reply", "--listen", f"{EXT_V4B}:9000", "--bytes", str(MIB))
    # A client that is mid-exchange when SIGTERM arrives must finish.
    p = subprocess.Popen(["ip", "netns", "exec", proxied.app, "/usr/bin/python3", "-c", f"""
import socket, time, json
s = socket.create_connection(("{EXT_V4B}", 9000), 10)
s.sendall(b"x" * 1000)
print("sent", flush=True)
time.sleep(1.0)
s.shutdown(socket.SHUT_WR)
n = 0
while True:
    d = s.recv(65536)
    if not d: break
    n += len(d)
print(n)
"""], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "sent"
    time.sleep(0.2)
    proxied.attache.terminate()
    out, _ = p.communicate(timeout=30)
    assert int(out.strip()) > MIB        # the whole reply, after SIGTERM
    assert proxied.stop_attache() == 0   # and attache exits 0 after the drain
    [line] = proxied.wait_log(lambda e: e["dst"] == f"{EXT_V4B}:9000")
    assert line["outcome"] == "ok"
    # New connections are refused while draining / after exit.
    r = proxied.client("c-probe", "--to", f"{EXT_V4}:9000", "--timeout", "5")
    assert r["result"] in ("refused", "reset", "eof"), r


def test_drain_timeout_closes_and_logs(world):
    world.server("echo", "--listen", f"{EXT_V4}:9000")
    world.init("--proxy-uid", str(PROXY_UID))
    world.start_attache("--drain-timeout", "500ms")
    p = subprocess.Popen(["ip", "netns", "exec", world.app, "/usr/bin/python3", "-c", f"""
import socket, time
s = socket.create_connection(("{EXT_V4}", 9000), 10)
s.sendall(b"hi"); s.recv(2)
print("up", flush=True)
time.sleep(20)
"""], stdout=subprocess.PIPE, text=True, start_new_session=True)
    world.procs.append(p)
    assert p.stdout.readline().strip() == "up"
    assert world.stop_attache(timeout=10) == 0
    [line] = world.wait_log(lambda e: e["dst"] == f"{EXT_V4}:9000")
    assert line["outcome"] == "drained" and line["reason"] == "drain timeout"


def test_idle_timeout(world):
    world.server("echo", "--listen", f"{EXT_V4}:9000")
    world.init("--proxy-uid", str(PROXY_UID))
    world.start_attache("--idle-timeout", "300ms")
    r = world.client("c-probe", "--to", f"{EXT_V4}:9000", "--timeout", "10")
    # The echo answers "hello\n", then both sides stay silent.
    assert r["result"] in ("eof", "reset") and r["data"] == "hello\n", r
    [line] = world.wait_log(lambda e: e["dst"] == f"{EXT_V4}:9000")
    assert line["outcome"] == "timeout" and line["reason"] == "idle timeout"
    assert line["bytes_up"] == 6 and line["bytes_down"] == 6


def test_accept_survives_fd_exhaustion(world):
    world.server("echo", "--listen", f"{EXT_V4}:9000")
    world.init("--proxy-uid", str(PROXY_UID))
    # 24 fds: 8 for attache itself, 2 per relayed connection, so 8 of the
    # 14 connections fit and the others wait in the backlog.
    world.start_attache(nofile=24)
    holder = world.spawn(world.app, [PYTHON, PEER, "c-hold", "--to", f"{EXT_V4}:9000",
                                     "--count", "14", "--timeout", "10"],
                         stdin=subprocess.PIPE)
    first = json.loads(holder.stdout.readline())
    assert 4 <= first["served_before"] < 14, first
    # Out of fds, with connections waiting: attache must not spin.
    cpu0, t0 = world.cpu_seconds(), time.monotonic()
    time.sleep(1.0)
    cpu = world.cpu_seconds() - cpu0
    wall = time.monotonic() - t0
    assert "pausing accept" in world.stderr()
    assert cpu < 0.5 * wall, f"attache used {cpu:.2f} s CPU in {wall:.2f} s while out of fds"
    holder.stdin.write(b"go\n")
    holder.stdin.flush()
    last = json.loads(holder.stdout.readline())
    # Once the served ones close, every waiting connection is served.
    assert last["waiting"] == 14 - first["served_before"]
    assert last["served_after"] == last["waiting"], last
    # One warning per episode of exhaustion, not one per retry: each is
    # followed by a "resumed" before the next.
    events = [l for l in world.stderr().splitlines() if "accept:" in l]
    assert events and all(("pausing" in e) == (i % 2 == 0) for i, e in enumerate(events)), events
