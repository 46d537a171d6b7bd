"""The e2e world: two network namespaces joined by a veth pair.

  app  203.0.113.1/24 198.51.100.1/24 2001:db8::1/64   attache + the "app"
  ext  203.0.113.7/24 198.51.100.7/24 2001:db8::7/64   the servers

Every test gets a fresh world and the fixture always tears it down
(processes, then namespaces, which takes their rules and links with them),
whatever the test did. Addresses exist only inside these namespaces."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("ATTACHE_BUILD", os.path.join(ROOT, "build"))
PEER = os.path.join(ROOT, "tests", "e2e", "peer.py")
PYTHON = "/usr/bin/python3"
PROXY_UID = 1337
PREFIX = "attache-e2e-"

APP_V4, EXT_V4 = "203.0.113.1", "203.0.113.7"
APP_V4B, EXT_V4B = "198.51.100.1", "198.51.100.7"
APP_V6, EXT_V6 = "2001:db8::1", "2001:db8::7"


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, **kw)


def remove_stale_namespaces():
    """A run that was killed cannot tear down: remove its namespaces."""
    out = sh("ip", "netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            sh("ip", "netns", "del", name, check=False)


@pytest.fixture(scope="session")
def bindir():
    """attache runs as an unprivileged uid, which may not be able to reach
    a checkout under /root: give it a copy it can execute."""
    if os.geteuid() != 0:
        pytest.fail("the e2e tests need root (network namespaces, iptables)")
    remove_stale_namespaces()
    d = tempfile.mkdtemp(prefix="attache-bin-")
    for b in ("attache", "attache-init"):
        shutil.copy(os.path.join(BUILD, b), d)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class World:
    _seq = 0

    def __init__(self, bindir):
        World._seq += 1
        tag = f"{PREFIX}{os.getpid()}-{World._seq}"
        self.app, self.ext = tag + "-app", tag + "-ext"
        self.bindir = bindir
        self.tmp = tempfile.mkdtemp(prefix="attache-e2e-")
        os.chmod(self.tmp, 0o755)   # attache (uid 1337) reads its config here
        self.procs = []
        self.attache = None
        self.attache_stopped = False

    # -- building and tearing down
    def build(self):
        for ns in (self.app, self.ext):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "veth-app", "netns", self.app, "type", "veth",
           "peer", "name", "veth-ext", "netns", self.ext)
        for ns, dev, addrs in ((self.app, "veth-app", (APP_V4, APP_V4B)),
                               (self.ext, "veth-ext", (EXT_V4, EXT_V4B))):
            for a in addrs:
                sh("ip", "-n", ns, "addr", "add", a + "/24", "dev", dev)
            v6 = APP_V6 if ns == self.app else EXT_V6
            sh("ip", "-n", ns, "addr", "add", v6 + "/64", "dev", dev, "nodad")
            sh("ip", "-n", ns, "link", "set", dev, "up")
        # Until the link-local addresses leave DAD, the first IPv6 SYN is
        # lost and retried a second later; wait them out.
        deadline = time.monotonic() + 10
        for ns in (self.app, self.ext):
            while sh("ip", "-n", ns, "-6", "addr", "show", "tentative").stdout:
                assert time.monotonic() < deadline, "IPv6 DAD did not finish"
                time.sleep(0.05)

    def teardown(self):
        # Shown by pytest only when the test failed.
        if self.attache is not None:
            time.sleep(0.1)   # the access log flushes within 50 ms
            print("--- attache stdout:\n" + open(self.log_path, errors="replace").read())
            print("--- attache stderr:\n" + self.stderr())
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            p.wait()
        for ns in (self.app, self.ext):
            sh("ip", "netns", "del", ns, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- processes
    def spawn(self, ns, cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
              stdin=subprocess.DEVNULL):
        p = subprocess.Popen(["ip", "netns", "exec", ns] + cmd, stdout=stdout,
                             stderr=stderr, stdin=stdin, start_new_session=True)
        self.procs.append(p)
        return p

    def server(self, mode, *args):
        p = self.spawn(self.ext, [PYTHON, PEER, mode] + list(args))
        line = p.stdout.readline().decode()
        assert line.strip() == "ready", f"{mode} server did not start: {line!r}"
        return p

    def client(self, mode, *args, timeout=60, uid=None):
        """A client in app; uid: run it as that uid (and gid)."""
        who = [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}",
                                      "--clear-groups"]
        r = sh("ip", "netns", "exec", self.app, *who, PYTHON, PEER, mode, *args,
               timeout=timeout)
        return json.loads(r.stdout.strip().splitlines()[-1])

    def init(self, *args, check=True, env=None, path=None):
        """attache-init in app. env: extra variables; path: a directory put
        first in PATH (a test's shims for the iptables tools)."""
        e = dict(os.environ, **(env or {}))
        if path:
            e["PATH"] = f"{path}:{e['PATH']}"
        return sh("ip", "netns", "exec", self.app,
                  os.path.join(self.bindir, "attache-init"), *args, check=check, env=e)

    def write_config(self, text, name="attache.yaml"):
        path = os.path.join(self.tmp, name)
        with open(path + ".new", "w") as f:
            f.write(text)
        os.chmod(path + ".new", 0o644)
        os.rename(path + ".new", path)   # a reload never sees half a file
        return path

    def reload(self, text):
        """Rewrites the config and sends SIGHUP; waits for attache's answer."""
        before = self.stderr().count("reload")
        self.write_config(text)
        self.attache.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while self.stderr().count("reload") == before:
            assert time.monotonic() < deadline, "no reload message: " + self.stderr()
            time.sleep(0.02)
        return self.stderr()

    def start_attache(self, *args, nofile=None, uid=PROXY_UID, caps=()):
        self.log_path = os.path.join(self.tmp, "attache.log")
        self.err_path = os.path.join(self.tmp, "attache.err")
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        if caps:   # e.g. ("net_admin",) for the DNS snoop's NFQUEUE
            c = ",".join("+" + x for x in caps)
            cmd += [f"--inh-caps={c}", f"--ambient-caps={c}"]
        if nofile:
            cmd = ["prlimit", f"--nofile={nofile}"] + cmd
        cmd += [os.path.join(self.bindir, "attache")] + list(args)
        with open(self.log_path, "wb") as out, open(self.err_path, "wb") as err:
            self.attache = self.spawn(self.app, cmd, stdout=out, stderr=err)
        deadline = time.monotonic() + 10
        while "listening on 127.0.0.1:" not in self.stderr():
            assert self.attache.poll() is None, "attache exited: " + self.stderr()
            assert time.monotonic() < deadline, "attache did not start: " + self.stderr()
            time.sleep(0.02)
        return self.attache

    def stop_attache(self, sig=signal.SIGTERM, timeout=30):
        self.attache_stopped = True
        self.attache.send_signal(sig)
        return self.attache.wait(timeout)

    # -- observing attache
    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def log(self, kind="conn"):
        """The access log's lines of one kind: "conn" (one per connection)
        or "request" (one per request on http routes)."""
        with open(self.log_path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
        return [e for e in lines if e.get("kind", "conn") == kind]

    def wait_log(self, pred, timeout=10, count=1, kind="conn"):
        """Waits until `count` log lines of kind satisfy pred; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [e for e in self.log(kind) if pred(e)]
            if len(hits) >= count:
                return hits
            if time.monotonic() > deadline:
                raise AssertionError(f"log has {len(hits)} of {count} lines wanted:\n"
                                     + open(self.log_path).read())
            time.sleep(0.05)

    def rss_kib(self):
        with open(f"/proc/{self.attache.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def cpu_seconds(self):
        with open(f"/proc/{self.attache.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def module_world(bindir):
    """One world for a whole test module (tests that only add connections)."""
    w = World(bindir)
    try:
        w.build()
        yield w
    finally:
        w.teardown()


@pytest.fixture
def world(bindir):
    w = World(bindir)
    try:
        w.build()
        yield w
        if w.attache is not None and not w.attache_stopped:
            assert w.attache.poll() is None, "attache died during the test: " + w.stderr()
    finally:
        w.teardown()


@pytest.fixture
def proxied(world):
    """A world with the redirect installed and attache running in app."""
    world.init("--proxy-uid", str(PROXY_UID))
    world.start_attache("--connect-timeout", "1s")
    return world
