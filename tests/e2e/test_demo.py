"""The README's demo command works, and shows what it promises."""
import json
import os
import subprocess

from conftest import ROOT


def test_demo_runs_and_shows_the_app_output_and_log_line(bindir):
    r = subprocess.run([os.path.join(ROOT, "examples", "demo", "run")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '{"partner": "api.partner.example", "status": "ok"}' in r.stdout
    line = next(l for l in r.stdout.splitlines() if l.startswith('{"time"'))
    entry = json.loads(line)
    assert entry["dst"] == "203.0.113.7:80" and entry["outcome"] == "ok"
    # and it tore its world down
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "attache-demo" not in ns
