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


def read_headers(f):
    """Reads header lines up to the empty one: {lower-case name: value}."""
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            return headers
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()


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


def read_chunked(rfile):
    """Reads a chunked body from rfile; returns (length, sha256 hex)."""
    h, n = hashlib.sha256(), 0
    while True:
        size = int(rfile.readline().split(b";")[0], 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b""):
                pass   # trailers
            return n, h.hexdigest()
        left = size
        while left:
            d = rfile.read(min(left, CHUNK))
            if not d:
                raise OSError("cut chunked body")
            h.update(d)
            left -= len(d)
        n += size
        rfile.readline()


def ws_accept(key):
    import base64
    guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    return base64.b64encode(hashlib.sha1((key + guid).encode()).digest()).decode()


def serve_http(addrs, tls=None):
    """Answers every request with what it saw: method, path, Host, header
    names, Via, the body's length and sha256 (Content-Length or chunked).
    /download?bytes=N&seed=S answers a chunked pattern; /slow?ms=N waits
    first; a websocket upgrade gets its 101, then an echo of raw bytes."""
    import http.server
    import urllib.parse

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_any(self):
            url = urllib.parse.urlsplit(self.path)
            q = dict(urllib.parse.parse_qsl(url.query))
            if self.headers.get("Upgrade", "").lower() == "websocket":
                return self.websocket()
            if url.path == "/slow":
                time.sleep(int(q.get("ms", "1000")) / 1000)
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                n, digest = read_chunked(self.rfile)
            else:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                digest = hashlib.sha256(body).hexdigest()
            if url.path == "/download":
                return self.download(int(q["bytes"]), int(q.get("seed", "0")))
            out = json.dumps({"method": self.command, "path": self.path,
                              "host": self.headers.get("Host"),
                              "headers": [k.lower() for k in self.headers.keys()],
                              "via": self.headers.get("Via"),
                              "body": n, "sha256": digest}).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)
        do_GET = do_POST = do_PUT = do_HEAD = do_any

        def do_CONNECT(self):
            """A forward proxy's answer: 200, then the tunnel (an echo)."""
            if self.path != "tunnel.partner.example:443":
                self.send_error(403)
                return
            self.send_response(200, "Connection established")
            self.end_headers()
            self.wfile.flush()
            self.echo()

        def echo(self):
            """The tunnel's far end: bytes back as they come, to EOF."""
            while True:
                d = self.connection.recv(CHUNK)
                if not d:
                    break
                self.connection.sendall(d)
            self.close_connection = True

        def download(self, n, seed):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for b in pattern(n, seed=seed):
                self.wfile.write(b"%x\r\n" % len(b) + b + b"\r\n")
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")

        def websocket(self):
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept",
                             ws_accept(self.headers.get("Sec-WebSocket-Key", "")))
            self.end_headers()
            self.wfile.flush()
            self.wfile.write(b"hello from the websocket server\n")
            self.wfile.flush()
            self.echo()

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


def serve_faults(addrs, logpath):
    """A plain HTTP/1.1 upstream that misbehaves by path, logging
    "<connection number> <request line>" for every request it reads:
      /extra      a whole response, then a second one nobody asked for
      /closeafter a keep-alive response, then a close
      /early      a response before the body is read, then silence
      /bighead    a 27 KB response head, in two pieces
      /badresponse two Content-Lengths
      /cut        10 bytes of a 100-byte body, then a close
      anything else: 200 with body "real"."""
    lock = threading.Lock()
    counter = [0]
    log = open(logpath, "a")

    def h(c, peer):
        with lock:
            counter[0] += 1
            conn = counter[0]
        f = c.makefile("rb")
        with c:
            while True:
                line = f.readline()
                if not line:
                    return
                while f.readline() not in (b"\r\n", b""):
                    pass
                with lock:
                    log.write(f"{conn} {line.decode().strip()}\n")
                    log.flush()
                path = line.split(b" ")[1]
                ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                if path == b"/extra":
                    c.sendall(ok + b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL")
                elif path == b"/closeafter":
                    c.sendall(ok)
                    return
                elif path == b"/early":
                    c.sendall(ok)
                    time.sleep(30)
                    return
                elif path == b"/badresponse":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                              b"Content-Length: 3\r\n\r\nok")
                elif path == b"/cut":
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                              b"only ten b")
                    return
                elif path == b"/bighead":
                    head = b"HTTP/1.1 200 OK\r\n" + b"".join(
                        b"X-Pad-%04d: %s\r\n" % (i, b"a" * 900) for i in range(30))
                    c.sendall(head[:26000])
                    time.sleep(0.3)
                    c.sendall(head[26000:] + b"Content-Length: 2\r\n\r\nok")
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nreal")
    serve(addrs, h)


def serve_fault(addrs, logpath, ctlpath, ctx=None):
    """A scripted upstream for the resilience tests: plain HTTP/1.1, or
    over TLS with ctx. It logs, one JSON line each, every connection it
    accepts ({"conn": N, "ev": "accept"}) and every request it reads
    ({"conn": N, "ev": "request", "method", "path", "id", "body"}; id is
    the X-Req-Id header, body its length).
    The control file, read at each accept, sets what a new connection
    meets: "reset" (reset at once, nothing read), "stall" (never read), or
    anything else: requests are served by path:
      /reset[/N]       read the request, then reset: no response (the
                       first N times for each id, then 200)
      /stall           read the request, never answer
      /status/C/N      C for the first N requests of each id, then 200
                       (?ra=S adds Retry-After: S)
      /flap/N          503 and 200 in turns of N requests (all ids)
      anything else    200, body "ok <id>"."""
    import ssl
    import struct
    lock = threading.Lock()
    seen = {}
    counter = [0, 0]
    log = open(logpath, "a")

    def write(**kw):
        with lock:
            log.write(json.dumps(kw) + "\n")
            log.flush()

    def reset(c):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()

    def control():
        try:
            with open(ctlpath) as f:
                return f.read().strip()
        except OSError:
            return ""

    def h(c, peer):
        with lock:
            counter[0] += 1
            conn = counter[0]
        mode = control()
        write(conn=conn, ev="accept", mode=mode)
        if mode == "reset":
            return reset(c)
        if mode == "stall":
            time.sleep(60)
            return c.close()
        if ctx:
            try:
                c = ctx.wrap_socket(c, server_side=True)
            except (ssl.SSLError, OSError):
                return c.close()
        f = c.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    return c.close()
                headers = read_headers(f)
                body = f.read(int(headers.get("content-length", "0")))
                method, target = line.decode().split(" ")[:2]
                path, _, query = target.partition("?")
                rid = headers.get("x-req-id", "")
                write(conn=conn, ev="request", method=method, path=path, id=rid,
                      body=len(body))
                parts = path.split("/")
                extra = ""
                status = 200
                if parts[1:2] == ["reset"]:
                    with lock:
                        seen[rid] = seen.get(rid, 0) + 1
                        if len(parts) < 3 or seen[rid] <= int(parts[2]):
                            return reset(c)
                elif path == "/stall":
                    time.sleep(60)
                    return c.close()
                elif parts[1:2] == ["status"]:
                    with lock:
                        seen[rid] = seen.get(rid, 0) + 1
                        if seen[rid] <= int(parts[3]):
                            status = int(parts[2])
                    if query.startswith("ra="):
                        extra = f"Retry-After: {query[3:]}\r\n"
                elif parts[1:2] == ["flap"]:
                    with lock:
                        counter[1] += 1
                        n = int(parts[2])
                        status = 503 if (counter[1] - 1) // n % 2 == 0 else 200
                text = f"{'ok' if status == 200 else 'fail'} {rid}".encode()
                c.sendall(f"HTTP/1.1 {status} X\r\nContent-Length: {len(text)}\r\n"
                          f"{extra}\r\n".encode() + text)
        except (OSError, ValueError):
            return c.close()
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


def c_udp(a):
    """Sends one datagram on a connected UDP socket; a rejection comes back
    as ICMP port unreachable, which the next recv reports as refused."""
    fam, sa = parse_addr(a.to)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(min(a.timeout, 1.0))
    s.connect(sa)
    try:
        s.send(b"hello\n")
        s.recv(CHUNK)
        return {"result": "answered"}
    except ConnectionRefusedError:
        return {"result": "refused"}
    except PermissionError:   # EPERM: the local filter refused it at send
        return {"result": "refused"}
    except socket.timeout:
        return {"result": "sent"}


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


class _File:
    """Lets http.client.HTTPResponse read several responses from one
    buffered file: pipelined responses are not lost to read-ahead, and a
    response done with the file does not close it for the next."""
    def __init__(self, f):
        self.f = f

    def makefile(self, *a, **kw):
        return self

    def close(self):
        pass

    def __getattr__(self, name):
        return getattr(self.f, name)


def read_responses(f, methods):
    """Reads one response per method from f, in order."""
    import http.client
    out = []
    for m in methods:
        r = http.client.HTTPResponse(_File(f), method=m)
        r.begin()
        body = r.read()
        out.append({"status": r.status, "body": body.decode(errors="replace"),
                    "close": r.will_close})
    return out


def request_bytes(method, path, host, extra=b"", body=b""):
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n".encode() + extra
    if body:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def c_http(a):
    """a.count GETs of a.path, a.parallel at a time; each on a connection
    of its own unless --keep-alive. Counts statuses and checks bodies."""
    import concurrent.futures
    import http.client
    fam, (host, port) = parse_addr(a.to)

    def one_conn(n):
        res = []
        c = http.client.HTTPConnection(host, port, timeout=a.timeout)
        c._create_connection = lambda *x, **k: connect(a.to, a.timeout)
        for i in range(n):
            path = a.path + ("&" if "?" in a.path else "?") + f"i={i}"
            c.request("GET", path, headers={"Host": a.host})
            r = c.getresponse()
            body = r.read()
            good = r.status == 200 and json.loads(body)["path"] == path
            res.append(r.status if good else -r.status)
        c.close()
        return res

    jobs = [a.count // a.parallel + (i < a.count % a.parallel) for i in range(a.parallel)]
    statuses = {}
    with concurrent.futures.ThreadPoolExecutor(a.parallel) as ex:
        if a.keep_alive:
            results = ex.map(one_conn, jobs)
        else:
            results = ex.map(lambda n: sum((one_conn(1) for _ in range(n)), []), jobs)
        for res in results:
            for st in res:
                statuses[str(st)] = statuses.get(str(st), 0) + 1
    return {"statuses": statuses}


def c_raw(a):
    """Sends a.data (a Python bytes literal) and a.bytes more of "A" (a
    body), and returns all that came back until the server closed, with
    how it closed."""
    import ast
    s = connect(a.to, a.timeout)
    s.sendall(ast.literal_eval(a.data))
    try:
        s.sendall(b"A" * a.bytes)
    except OSError:
        pass   # the other end may answer and close before taking it all
    got, how = b"", "eof"
    try:
        while True:
            d = s.recv(CHUNK)
            if not d:
                break
            got += d
    except ConnectionResetError:
        how = "reset"
    except socket.timeout:
        how = "open"
    return {"response": got.decode(errors="replace"), "closed": how}


def c_pipeline(a):
    """Sends every request of a.paths in one write (the last one with
    Connection: close, HEAD for paths starting with HEAD:) and reads the
    responses in order."""
    s = connect(a.to, a.timeout)
    paths = a.paths.split(",")
    methods = ["HEAD" if p.startswith("HEAD:") else "GET" for p in paths]
    data = b""
    for i, (m, p) in enumerate(zip(methods, paths)):
        extra = b"Connection: close\r\n" if i == len(paths) - 1 else b""
        data += request_bytes(m, p.replace("HEAD:", ""), a.host, extra)
    s.sendall(data)
    f = s.makefile("rb")
    return {"responses": read_responses(f, methods)}


def c_bulk(a):
    """Uploads a.bytes of pattern chunked (POST /upload), then downloads as
    many chunked (GET /download), on one keep-alive connection; checks both
    sha256s end to end."""
    s = connect(a.to, a.timeout)
    s.sendall(f"POST /upload HTTP/1.1\r\nHost: {a.host}\r\n"
              "Transfer-Encoding: chunked\r\n\r\n".encode())
    h = hashlib.sha256()
    for b in pattern(a.bytes, seed=3):
        h.update(b)
        s.sendall(b"%x\r\n" % len(b) + b + b"\r\n")
    s.sendall(b"0\r\n\r\n")
    f = s.makefile("rb")
    up = read_responses(f, ["POST"])[0]
    seen = json.loads(up["body"])
    upload_ok = seen["body"] == a.bytes and seen["sha256"] == h.hexdigest()
    s.sendall(request_bytes("GET", f"/download?bytes={a.bytes}&seed=5", a.host,
                            b"Connection: close\r\n"))
    import http.client
    r = http.client.HTTPResponse(_File(f), method="GET")
    r.begin()
    chunked = r.chunked
    n, digest = read_to_eof(r.read)
    want = hashlib.sha256()
    for b in pattern(a.bytes, seed=5):
        want.update(b)
    return {"upload_ok": upload_ok, "download_ok": n == a.bytes and digest == want.hexdigest(),
            "download_chunked": chunked, "status": [up["status"], r.status]}


def echo_through(s, n, seed, out):
    """Sends n bytes of pattern through a tunnel to an echo while reading
    them back; out gains what came back and whether it was intact."""
    sent = {}

    def writer():
        sent["sha"] = send_pattern(s, n, seed=seed)
        s.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=writer)
    t.start()
    out["recv"], out["recv_sha"] = read_to_eof(s.recv)
    t.join()
    out["intact"] = out["recv"] == n and out["recv_sha"] == sent["sha"]
    return out


def c_ws(a):
    """A websocket upgrade, then a.bytes echoed back through the tunnel."""
    import base64
    s = connect(a.to, a.timeout)
    key = base64.b64encode(b"attache-e2e-key!").decode()
    s.sendall(request_bytes("GET", "/chat", a.host,
                            ("Upgrade: websocket\r\nConnection: Upgrade\r\n"
                             f"Sec-WebSocket-Key: {key}\r\n"
                             "Sec-WebSocket-Version: 13\r\n").encode()))
    f = s.makefile("rb", buffering=0)
    status = f.readline()
    headers = read_headers(f)
    hello = f.readline()
    out = {"status": status.decode().strip(), "accept_ok":
           headers.get("sec-websocket-accept") == ws_accept(key),
           "hello": hello.decode().strip()}
    return echo_through(s, a.bytes, 9, out)


def c_connect(a):
    """CONNECT to a.path (routed by Host: a.host), then a.bytes echoed."""
    s = connect(a.to, a.timeout)
    s.sendall(f"CONNECT {a.path} HTTP/1.1\r\nHost: {a.host}\r\n\r\n".encode())
    f = s.makefile("rb", buffering=0)
    status = f.readline().decode().strip()
    while f.readline() not in (b"\r\n", b""):
        pass
    out = {"status": status}
    if not status.startswith("HTTP/1.1 200"):
        return out
    return echo_through(s, a.bytes, 4, out)


def c_expect(a):
    """POST with Expect: 100-continue: the body goes only after the 100."""
    s = connect(a.to, a.timeout)
    body = b"x" * a.bytes
    s.sendall(f"POST /expect HTTP/1.1\r\nHost: {a.host}\r\nExpect: 100-continue\r\n"
              f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
    f = s.makefile("rb")
    interim = f.readline().decode().strip()
    while f.readline() not in (b"\r\n", b""):
        pass
    s.sendall(body)
    final = read_responses(f, ["POST"])[0]
    return {"interim": interim, "status": final["status"],
            "body": json.loads(final["body"])["body"]}


def c_req(a):
    """Requests a.method a.path (with --bytes of body), each on a new
    connection with X-Req-Id <a.host-derived prefix><n>; a.count of them,
    or as many as fit in a.seconds, one at a time. Returns each one's
    status (0: no response), circuit header and wall time in ms, or with
    --seconds only the totals."""
    fam, (host, port) = parse_addr(a.to)
    out, totals = [], {}
    t_end = time.monotonic() + a.seconds
    n = 0
    while (n < a.count) if not a.seconds else (time.monotonic() < t_end):
        rid = f"{a.id}{n}"
        body = b"B" * a.bytes
        req = (f"{a.method} {a.path} HTTP/1.1\r\nHost: {a.host}\r\nX-Req-Id: {rid}\r\n"
               f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        t0 = time.monotonic()
        status, circuit, text = 0, None, ""
        try:
            s = connect(a.to, a.timeout)
            if a.rate < 1e9:   # the body at a.rate bytes/s
                s.sendall(req[:len(req) - len(body)])
                for i in range(0, len(body), 500):
                    time.sleep(500 / a.rate)
                    s.sendall(body[i:i + 500])
            else:
                s.sendall(req)
            got = b""
            while True:
                d = s.recv(CHUNK)
                if not d:
                    break
                got += d
            s.close()
            head, _, rest = got.partition(b"\r\n\r\n")
            lines = head.decode(errors="replace").split("\r\n")
            if lines[0].startswith("HTTP/1.1 "):
                status = int(lines[0].split(" ")[1])
            for l in lines[1:]:
                if l.lower().startswith("x-attache-circuit:"):
                    circuit = l.split(":", 1)[1].strip()
            text = rest.decode(errors="replace")
        except OSError as e:
            text = str(e)
        ms = (time.monotonic() - t0) * 1000
        totals[str(status)] = totals.get(str(status), 0) + 1
        if not a.seconds:
            out.append({"id": rid, "status": status, "circuit": circuit,
                        "body": text, "ms": round(ms, 3)})
        n += 1
    return {"requests": out, "totals": totals, "count": n}


def c_resolve(a):
    """Resolves a.host (the netns's resolv.conf) and lists its IPv4s, or
    with --to 6 its IPv6s."""
    fam = socket.AF_INET6 if a.to == "6" else socket.AF_INET
    try:
        infos = socket.getaddrinfo(a.host, None, fam, socket.SOCK_STREAM)
        return {"addrs": sorted({i[4][0] for i in infos})}
    except socket.gaierror as e:
        return {"addrs": [], "error": str(e)}


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    for name in ("echo", "sink-reply", "source", "banner", "tls-echo", "http", "https",
                 "http-faults", "fault", "fault-tls"):
        sp = sub.add_parser(name)
        sp.add_argument("--listen", action="append", required=True)
        sp.add_argument("--bytes", type=int, default=0)
        sp.add_argument("--cert")
        sp.add_argument("--key")
        sp.add_argument("--client-ca")
        sp.add_argument("--max-tls")
        sp.add_argument("--truncate", action="store_true")
        sp.add_argument("--log")
        sp.add_argument("--ctl", default="/nonexistent")
    for name in ("c-echo", "c-halfclose", "c-slowread", "c-probe", "c-hold", "c-tls",
                 "c-banner", "c-line", "c-http", "c-raw", "c-pipeline", "c-bulk", "c-ws",
                 "c-expect", "c-connect", "c-req", "c-resolve", "c-udp"):
        sp = sub.add_parser(name)
        sp.add_argument("--to", required=True)
        sp.add_argument("--bytes", type=int, default=0)
        sp.add_argument("--reply", type=int, default=0)
        sp.add_argument("--rate", type=float, default=1e9)
        sp.add_argument("--count", type=int, default=0)
        sp.add_argument("--timeout", type=float, default=10.0)
        sp.add_argument("--sni")
        sp.add_argument("--host", default="api.partner.example")
        sp.add_argument("--path", default="/")
        sp.add_argument("--paths", default="/")
        sp.add_argument("--parallel", type=int, default=1)
        sp.add_argument("--keep-alive", action="store_true")
        sp.add_argument("--data", default="b''")
        sp.add_argument("--method", default="GET")
        sp.add_argument("--id", default="r")
        sp.add_argument("--seconds", type=float, default=0)
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
    elif a.mode == "http-faults":
        serve_faults(a.listen, a.log)
    elif a.mode == "fault":
        serve_fault(a.listen, a.log, a.ctl)
    elif a.mode == "fault-tls":
        serve_fault(a.listen, a.log, a.ctl, tls_server_ctx(a))
    elif a.mode == "https":
        serve_http(a.listen, tls_server_ctx(a))
    else:
        fn = {"c-echo": c_echo, "c-halfclose": c_halfclose, "c-slowread": c_slowread,
              "c-probe": c_probe, "c-hold": c_hold, "c-tls": c_tls,
              "c-banner": c_banner, "c-line": c_line, "c-http": c_http, "c-raw": c_raw,
              "c-pipeline": c_pipeline, "c-bulk": c_bulk, "c-ws": c_ws,
              "c-expect": c_expect, "c-connect": c_connect, "c-req": c_req,
              "c-resolve": c_resolve, "c-udp": c_udp}[a.mode]
        print(json.dumps(fn(a)), flush=True)


if __name__ == "__main__":
    main()
