#!/usr/bin/python3
"""Test peers for the e2e suite: servers for the `ext` namespace and clients
for the `app` namespace. Run as `ip netns exec NS peer.py MODE ...`.
Clients print one JSON object with what they saw; servers run until killed.
Every payload is a deterministic pattern so both ends can checksum it."""
import argparse
import hashlib
import json
import socket
import sys
import threading
import time

CHUNK = 64 * 1024


def pattern(n, seed=0):
    """n bytes of a repeatable non-trivial pattern, yielded in chunks."""
    block = bytes((i * 131 + seed) % 251 for i in range(CHUNK))
    while n > 0:
        k = min(n, CHUNK)
        yield block[:k]
        n -= k


def read_to_eof(read):
    """Reads with read(n) until EOF; returns (byte count, sha256 hex)."""
    h = hashlib.sha256()
    n = 0
    while True:
        d = read(CHUNK)
        if not d:
            return n, h.hexdigest()
        h.update(d)
        n += len(d)


def send_pattern(s, n, seed):
    """Sends n bytes of pattern on s; returns their sha256 hex."""
    h = hashlib.sha256()
    for b in pattern(n, seed=seed):
        h.update(b)
        s.sendall(b)
    return h.hexdigest()


def parse_addr(s):
    host, _, port = s.rpartition(":")
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    return fam, (host, int(port))


# ---------------------------------------------------------------- servers

def serve(addrs, handler):
    socks = []
    for a in addrs:
        fam, sa = parse_addr(a)
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(sa)
        s.listen(512)
        socks.append(s)

    def loop(s):
        while True:
            c, peer = s.accept()
            threading.Thread(target=handler, args=(c, peer), daemon=True).start()

    for s in socks:
        threading.Thread(target=loop, args=(s,), daemon=True).start()
    print("ready", flush=True)
    while True:
        time.sleep(3600)


def h_echo(c, peer):
    """Echoes everything; half-closes after the client's EOF."""
    with c:
        while True:
            d = c.recv(CHUNK)
            if not d:
                c.shutdown(socket.SHUT_WR)
                return
            c.sendall(d)


def h_sink_reply(reply_bytes):
    """Reads to EOF, then answers with the sha256 of what it got and
    reply_bytes of pattern: proves the EOF arrived while the other way
    still works."""
    def h(c, peer):
        with c:
            n, sha = read_to_eof(c.recv)
            c.sendall(json.dumps({"got": n, "sha": sha}).encode() + b"\n")
            for b in pattern(reply_bytes, seed=7):
                c.sendall(b)
    return h


def h_source(nbytes):
    """Sends nbytes of pattern, as fast as the socket takes them."""
    def h(c, peer):
        with c:
            try:
                for b in pattern(nbytes, seed=3):
                    c.sendall(b)
                c.shutdown(socket.SHUT_WR)
                c.recv(1)
            except OSError:
                pass
    return h


def h_banner(c, peer):
    """A server-first protocol: speaks before the client does, then echoes."""
    with c:
        c.sendall(b"220 ext.example ESMTP ready\r\n")
        h_echo(c, peer)


def tls_server_ctx(a):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(a.client_ca)
    if a.max_tls == "1.1":
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


def serve_tls(addrs, a):
    import ssl
    ctx = tls_server_ctx(a)

    def h(c, peer):
        try:
            with ctx.wrap_socket(c, server_side=True) as t:
                while True:
                    d = t.recv(CHUNK)
                    if not d:
                        break
                    t.sendall(d)
                    if a.truncate:   # answer once, then a bare TCP close
                        c.shutdown(socket.SHUT_RDWR)
                        return
                t.unwrap()   # close_notify: a well-behaved end of stream
        except (OSError, ssl.SSLError):
            pass
    serve(addrs, h)


def serve_http(addrs, tls=None):
    """Answers every request with what it saw: method, path, Host."""
    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n else b""
            out = json.dumps({"method": self.command, "path": self.path,
                              "host": self.headers.get("Host"),
                              "body": len(body)}).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
        do_GET = do_POST = do_PUT = do_HEAD = do_any

        def log_message(self, *a):
            pass

    def h(c, peer):
        with c:
            try:
                if tls:
                    c = tls.wrap_socket(c, server_side=True)
                H(c, peer, None)
                if tls:
                    c.unwrap()   # close_notify before the TCP close
            except OSError:
                pass
    serve(addrs, h)


# ---------------------------------------------------------------- clients

def connect(to, timeout):
    fam, sa = parse_addr(to)
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sa)
    return s


def c_echo(a):
    """Sends a.bytes while reading the echo; checks both directions."""
    s = connect(a.to, a.timeout)
    sent = {}

    def writer():
        sent["sha"] = send_pattern(s, a.bytes, seed=1)
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer)
    t.start()
    nrecv, got = read_to_eof(s.recv)
    t.join()
    s.close()
    return {"sent": a.bytes, "recv": nrecv, "intact": sent.get("sha") == got}


def c_halfclose(a):
    s = connect(a.to, a.timeout)
    sent = send_pattern(s, a.bytes, seed=2)
    s.shutdown(socket.SHUT_WR)
    f = s.makefile("rb")
    head = json.loads(f.readline())
    n, sha = read_to_eof(f.read)
    want = hashlib.sha256(b"".join(pattern(a.reply, seed=7))).hexdigest()
    return {"server_got": head["got"], "server_sha_ok": head["sha"] == sent,
            "reply": n, "reply_ok": sha == want}


def c_slowread(a):
    """Reads at most a.rate bytes/s; the sender is much faster."""
    s = connect(a.to, a.timeout)
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()
    while True:
        d = s.recv(CHUNK)
        if not d:
            break
        h.update(d)
        n += len(d)
        ahead = n / a.rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    want = hashlib.sha256()
    for b in pattern(n, seed=3):
        want.update(b)
    return {"recv": n, "intact": h.hexdigest() == want.hexdigest(),
            "seconds": round(time.monotonic() - t0, 2)}


def c_probe(a):
    """Connects, sends a line, and says how the connection ended."""
    t0 = time.monotonic()
    try:
        s = connect(a.to, a.timeout)
    except ConnectionRefusedError:
        return {"result": "refused", "seconds": time.monotonic() - t0}
    except ConnectionResetError:   # the reset can beat connect() back
        return {"result": "reset", "data": "", "seconds": time.monotonic() - t0}
    except socket.timeout:
        return {"result": "timeout", "seconds": time.monotonic() - t0}
    data = b""
    try:
        s.sendall(b"hello\n")
        while True:
            d = s.recv(CHUNK)
            if not d:
                result = "eof"
                break
            data += d
    except ConnectionResetError:
        result = "reset"
    except BrokenPipeError:
        result = "reset"
    except socket.timeout:
        result = "timeout"
    return {"result": result, "data": data.decode(errors="replace"),
            "seconds": round(time.monotonic() - t0, 3)}


def c_tls(a):
    """TLS with the given SNI (no verification: the test is about routing),
    sends a line, returns what came back or how it failed."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        s = connect(a.to, a.timeout)
        with ctx.wrap_socket(s, server_hostname=a.sni) as t:
            t.sendall(b"ping over tls\n")
            return {"result": "ok", "data": t.recv(CHUNK).decode()}
    except (ConnectionResetError, BrokenPipeError):
        return {"result": "reset"}
    except ssl.SSLError as e:
        return {"result": "tls-error", "error": str(e)}
    except socket.timeout:
        return {"result": "timeout"}
    except OSError as e:
        return {"result": "closed", "error": str(e)}


def c_banner(a):
    """Connects and waits for the server to speak first."""
    t0 = time.monotonic()
    s = connect(a.to, a.timeout)
    try:
        line = s.makefile("rb").readline().decode()
        return {"result": "ok", "line": line, "seconds": round(time.monotonic() - t0, 3)}
    except socket.timeout:
        return {"result": "timeout", "seconds": round(time.monotonic() - t0, 3)}


def c_line(a):
    """Sends one line, reads one line back (or how the connection ended)."""
    try:
        s = connect(a.to, a.timeout)
        s.sendall(b"hello through attache\n")
        line = s.makefile("rb").readline().decode()
        return {"result": "ok" if line else "eof", "data": line}
    except (ConnectionResetError, BrokenPipeError):
        return {"result": "reset", "data": ""}
    except socket.timeout:
        return {"result": "timeout", "data": ""}


def c_hold(a):
    """fd-exhaustion scenario: opens a.count connections and pings each;
    says how many were served; on 'go' from stdin closes the served ones
    and says whether the others are served now."""
    conns = []
    for _ in range(a.count):
        s = connect(a.to, a.timeout)
        s.sendall(b"ping")
        conns.append(s)

    def served(s, wait):
        s.settimeout(wait)
        try:
            return s.recv(4) == b"ping"
        except (socket.timeout, OSError):
            return False

    first = [served(s, 0.5) for s in conns]
    print(json.dumps({"served_before": sum(first)}), flush=True)
    sys.stdin.readline()
    waiting = [s for ok, s in zip(first, conns) if not ok]
    for ok, s in zip(first, conns):
        if ok:
            s.close()
    late = [served(s, a.timeout) for s in waiting]
    return {"served_before": sum(first), "served_after": sum(late), "waiting": len(waiting)}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    for name in ("echo", "sink-reply", "source", "banner", "tls-echo", "http", "https"):
        sp = sub.add_parser(name)
        sp.add_argument("--listen", action="append", required=True)
        sp.add_argument("--bytes", type=int, default=0)
        sp.add_argument("--cert")
        sp.add_argument("--key")
        sp.add_argument("--client-ca")
        sp.add_argument("--max-tls")
        sp.add_argument("--truncate", action="store_true")
    for name in ("c-echo", "c-halfclose", "c-slowread", "c-probe", "c-hold", "c-tls",
                 "c-banner", "c-line"):
        sp = sub.add_parser(name)
        sp.add_argument("--to", required=True)
        sp.add_argument("--bytes", type=int, default=0)
        sp.add_argument("--reply", type=int, default=0)
        sp.add_argument("--rate", type=float, default=1e9)
        sp.add_argument("--count", type=int, default=0)
        sp.add_argument("--timeout", type=float, default=10.0)
        sp.add_argument("--sni")
    a = p.parse_args()
    if a.mode == "echo":
        serve(a.listen, h_echo)
    elif a.mode == "sink-reply":
        serve(a.listen, h_sink_reply(a.bytes))
    elif a.mode == "source":
        serve(a.listen, h_source(a.bytes))
    elif a.mode == "banner":
        serve(a.listen, h_banner)
    elif a.mode == "tls-echo":
        serve_tls(a.listen, a)
    elif a.mode == "http":
        serve_http(a.listen)
    elif a.mode == "https":
        serve_http(a.listen, tls_server_ctx(a))
    else:
        fn = {"c-echo": c_echo, "c-halfclose": c_halfclose, "c-slowread": c_slowread,
              "c-probe": c_probe, "c-hold": c_hold, "c-tls": c_tls,
              "c-banner": c_banner, "c-line": c_line}[a.mode]
        print(json.dumps(fn(a)), flush=True)


if __name__ == "__main__":
    main()
