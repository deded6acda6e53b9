"""`scripts/sim-spark2 up|down` and the `spark-control` command, as a person runs them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from helpers import wait_for
from sim.spark2 import _alive, free_ports

pytestmark = pytest.mark.sim
REPO = Path(__file__).resolve().parents[2]
TOKEN = "sim-script-token-0123456789"


def test_up_exports_point_spark_control_at_the_simulation_and_down_stops_it():
    """`up --hosts 2`: two simulated hosts, the second exported as HOSTS; spark-control
    started from the exports sees both, and `down` in that shell stops both."""
    up = subprocess.run([str(REPO / "scripts" / "sim-spark2"), "up", "--hosts", "2"],
                        capture_output=True, text=True, timeout=180)
    assert up.returncode == 0, up.stderr
    env = _exports(up.stdout)
    root = Path(env["SIM_SPARK2_DIR"])
    roots = [Path(r) for r in env["SIM_SPARK2_DIRS"].split()]
    assert roots[0] == root and len(roots) == 2
    assert [h["name"] for h in json.loads(env["HOSTS"])] == ["spark1"]
    pids = [pid for r in roots
            for pid in json.loads((r / "state.json").read_text())["pids"].values()]
    server = None
    try:
        port = free_ports(1)[0]
        server = subprocess.Popen(
            [sys.executable, "-c", "from app.cli import main; main()"],
            env={**os.environ, **env, "BIND_PORT": str(port), "BIND_HOST": "127.0.0.1",
                 "POLL_INTERVAL_S": "0.5", "DATA_DIR": str(root / "control-data"),
                 "SPARK_CONTROL_TOKEN": TOKEN},
            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        body = wait_for(lambda: _healthy(port), timeout=30, what="both services healthy")
        assert [s["name"] for s in body["services"]] == ["parakeet-asr", "magpie-tts"]
        pool = wait_for(lambda: _taking_work(port, 2), timeout=30, what="both hosts active")
        assert [h["pool"]["name"] for h in pool["hosts"]] == ["spark2", "spark1"]
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        down = subprocess.run([str(REPO / "scripts" / "sim-spark2"), "down"],
                              env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=60)
    assert down.returncode == 0, down.stderr
    assert not any(r.exists() for r in roots)
    assert not any(_alive(pid) for pid in pids)


def _exports(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        assert line.startswith("export "), line
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0]
    return env


def _get(port: int, path: str) -> dict | None:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as r:
            return json.load(r)
    except OSError:
        return None


def _healthy(port: int) -> dict | None:
    body = _get(port, "/api/services")
    return body if body and all(s["state"] == "healthy" for s in body["services"]) else None


def _taking_work(port: int, count: int) -> dict | None:
    body = _get(port, "/api/hosts")
    return body if body and body["taking_work"] == count else None


def test_down_from_another_shell_finds_the_running_simulation(tmp_path):
    """A shell that did not run `up` (no SIM_SPARK2_DIR, another TMPDIR) still stops it."""
    up = subprocess.run([str(REPO / "scripts" / "sim-spark2"), "up"], capture_output=True,
                        text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    root = Path(_exports(up.stdout)["SIM_SPARK2_DIR"])
    pids = json.loads((root / "state.json").read_text())["pids"]
    other = {k: v for k, v in os.environ.items() if k != "SIM_SPARK2_DIR"}
    other["TMPDIR"] = str(tmp_path)
    down = subprocess.run([str(REPO / "scripts" / "sim-spark2"), "down"], env=other,
                          capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert f"stopped and removed {root}" in down.stderr
    assert not root.exists() and not any(_alive(pid) for pid in pids.values())
    again = subprocess.run([str(REPO / "scripts" / "sim-spark2"), "down"], env=other,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "nothing to stop" in again.stderr
