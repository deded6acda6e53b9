"""Spark 2's host health over real SSH: real /proc/meminfo and df of this machine (the
simulated Spark 2 runs here), GPU figures from the stand-in nvidia-smi."""

from __future__ import annotations

import io
import re
import os
import tarfile
from pathlib import Path

import pytest

from helpers import control, metric, sim_settings, wait_for

pytestmark = pytest.mark.sim


def host(client) -> dict:
    return client.get("/api/host").json()


def _mem_total() -> int:
    fields = Path("/proc/meminfo").read_text().split()
    return int(fields[fields.index("MemTotal:") + 1]) * 1024


def test_host_figures_over_ssh(sim):
    with control(sim_settings(sim, host_poll_interval_s=0.5)) as client:
        now = wait_for(lambda: (h := host(client))["reachable"] and h, what="a host reading")
        prom_total = metric(client, "spark_control_host_memory_bytes", kind="total")
        prom_util = metric(client, "spark_control_host_gpu", gpu="0", figure="utilization_pct")
        exposition = client.get("/metrics").text
    assert prom_total == _mem_total() and prom_util == 3.0
    assert 'figure="memory_used_bytes"' not in exposition  # no sample rather than a fake 0
    assert now["source"] == "spark2" and now["error"] is None
    snap = now["snapshot"]
    assert snap["memory"]["total_bytes"] == _mem_total()
    assert 0 < snap["memory"]["available_bytes"] <= snap["memory"]["total_bytes"]
    assert len(snap["load"]) == 3
    root = next(d for d in snap["disks"] if d["path"] == "/")
    assert root["total_bytes"] > root["used_bytes"] > 0
    [gpu] = snap["gpus"]
    assert gpu["name"] == "NVIDIA GB10" and gpu["utilization_pct"] == 3.0
    assert gpu["temperature_c"] == 41.0 and gpu["power_w"] == 11.52
    assert gpu["memory_used_bytes"] is None  # [N/A] on the GB10: not reported, not 0
    assert snap["gpu_detail"] == "ok"


def test_gpu_changes_and_a_failing_nvidia_smi_leave_the_rest(sim):
    with control(sim_settings(sim, host_poll_interval_s=0.5)) as client:
        sim.set_gpu("NVIDIA GB10, 97, [N/A], [N/A], 88, 95.0\n")
        hot = wait_for(lambda: (h := host(client))["snapshot"] and
                       h["snapshot"]["gpus"][0]["utilization_pct"] == 97 and h,
                       what="the new GPU figures")
        sim.set_gpu(None)
        gone = wait_for(lambda: (h := host(client))["snapshot"] and
                        not h["snapshot"]["gpus"] and h, what="no GPU reading")
    assert hot["snapshot"]["gpus"][0]["temperature_c"] == 88
    assert gone["snapshot"]["gpu_detail"].startswith("not available: nvidia-smi exited 9")
    assert "couldn't communicate with the NVIDIA driver" in gone["snapshot"]["gpu_detail"]
    assert gone["snapshot"]["memory"]["total_bytes"] == _mem_total()


def test_ssh_down_is_unreachable_not_zeros(sim):
    with control(sim_settings(sim, host_poll_interval_s=0.5)) as client:
        wait_for(lambda: host(client)["reachable"], what="a host reading")
        sim.stop_sshd()
        try:
            down = wait_for(lambda: (h := host(client))["reachable"] is False and h,
                            timeout=30, what="the host unreachable")
        finally:
            sim.start_sshd()
        back = wait_for(lambda: (h := host(client))["reachable"] and h, timeout=30,
                        what="the host back")
    assert down["snapshot"] is None and down["error"]
    assert back["snapshot"]["memory"]["total_bytes"] == _mem_total()


def test_a_hot_gpu_raises_a_warning_that_clears_and_history_keeps_the_points(sim):
    with control(sim_settings(sim, host_poll_interval_s=0.3, host_gpu_temp_warn_c=85)) as client:
        wait_for(lambda: host(client)["reachable"], what="a host reading")
        sim.set_gpu("NVIDIA GB10, 99, [N/A], [N/A], 91, 100.5\n")
        hot = wait_for(lambda: (h := host(client))["warnings"] and h, what="a GPU warning")
        sim.set_gpu("NVIDIA GB10, 99, [N/A], [N/A], 83, 100.5\n")  # in the band: stays on
        wait_for(lambda: host(client)["snapshot"]["gpus"][0]["temperature_c"] == 83,
                 what="83 °C read")
        banded = host(client)["warnings"]
        sim.set_gpu("NVIDIA GB10, 5, [N/A], [N/A], 60, 10.0\n")
        wait_for(lambda: not host(client)["warnings"], what="the warning cleared")
        history = client.get("/api/host/history?minutes=5").json()
    assert [w["kind"] for w in hot["warnings"]] == ["gpu_temperature"]
    assert "GPU at 91 °C" in hot["warnings"][0]["message"]
    assert [w["kind"] for w in banded] == ["gpu_temperature"]
    temps = [p["gpu_temp_c"] for p in history["points"]]
    assert {91.0, 83.0, 60.0} <= set(temps) and history["interval_s"] == 0.3
    assert all(p["memory_used_pct"] > 0 for p in history["points"])


def _layer(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        member = tarfile.TarInfo("blob")
        member.size = size
        tar.addfile(member, io.BytesIO(os.urandom(size)))
    return buffer.getvalue()


def test_prune_reclaims_real_dangling_images(sim):
    for _ in range(2):  # the second import takes the tag: the first is left dangling
        sim.docker("import", "-", "sim-dangle:1", input=_layer(3 * 10**6))
    assert sim.docker("images", "-q", "--filter", "dangling=true").stdout.split()
    try:
        with control(sim_settings(sim)) as client:
            before = wait_for(lambda: (h := host(client))["docker_disk"] and h,
                              what="docker system df")
            pruned = client.post("/api/host/docker-prune")
            after = host(client)
    finally:
        sim.docker("rmi", "sim-dangle:1", check=False)
    assert pruned.status_code == 200, pruned.text
    assert pruned.json()["reclaimed_bytes"] >= 3 * 10**6
    assert re.match(r"removed [1-9]\d* dangling image layer\(s\) \(3.0 MB\)", pruned.json()["detail"])
    assert sim.docker("images", "-q", "--filter", "dangling=true").stdout.split() == []
    images = {r["kind"]: r for r in before["docker_disk"]}["Images"]
    assert images["reclaimable_bytes"] >= 3 * 10**6
    left = {r["kind"]: r for r in after["docker_disk"]}["Images"]
    assert left["reclaimable_bytes"] < images["reclaimable_bytes"]
    assert left["count"] == images["count"] - 1  # the tagged image and the sim's own stay
