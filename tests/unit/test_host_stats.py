"""Parsing Spark 2's health readings, and the one command that takes them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.host.stats import host_script, parse_gpus, parse_host

GB10 = "NVIDIA GB10, 37, [N/A], [N/A], 48, 12.41"  # unified memory: no GPU memory figures


def test_the_script_reads_this_machine(tmp_path):
    """The real command, run here: real /proc/meminfo, df, and no nvidia-smi."""
    argv = host_script(["/", str(tmp_path)], ["nvidia-smi-that-is-not-here"])
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    snap = parse_host(out)
    meminfo = Path("/proc/meminfo").read_text().split()
    assert snap.memory.total_bytes == int(meminfo[meminfo.index("MemTotal:") + 1]) * 1024
    assert 0 < snap.memory.available_bytes <= snap.memory.total_bytes
    assert len(snap.load) == 3
    assert [d.path for d in snap.disks][0] == "/" and len(snap.disks) == 2
    assert all(d.total_bytes >= d.used_bytes > 0 for d in snap.disks)
    assert snap.gpus == []
    assert snap.gpu_detail.startswith("not available: nvidia-smi is not installed")


def test_a_quoted_path_stays_one_argument(tmp_path):
    odd = tmp_path / "a dir; echo pwned"
    odd.mkdir()
    out = subprocess.run(host_script([str(odd)], ["true"]), capture_output=True,
                         text=True).stdout
    assert "pwned\n" not in out.replace(str(odd), "")
    assert len(parse_host(out).disks) == 1


def test_gb10_fields_not_reported_stay_none():
    [gpu], detail = parse_gpus([GB10])
    assert detail == "ok"
    assert (gpu.name, gpu.utilization_pct, gpu.temperature_c, gpu.power_w) == (
        "NVIDIA GB10", 37.0, 48.0, 12.41)
    assert gpu.memory_used_bytes is None and gpu.memory_total_bytes is None


def test_a_discrete_gpu_reports_memory_in_bytes():
    [gpu], _ = parse_gpus(["NVIDIA H200, 5, 1024, 143771, 31, [Not Supported]"])
    assert gpu.memory_used_bytes == 1024 * 2**20 and gpu.power_w is None


@pytest.mark.parametrize(("lines", "words"), [
    (["sh: 1: nvidia-smi: not found", "@@gpu-failed 127"], "nvidia-smi is not installed"),
    (["NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
      "@@gpu-failed 9"], "nvidia-smi exited 9 (NVIDIA-SMI has failed"),
    ([], "listed no GPU"),
])
def test_no_gpu_reading_says_why(lines, words):
    gpus, detail = parse_gpus(lines)
    assert gpus == [] and detail.startswith("not available") and words in detail


def test_swap_in_use_is_total_minus_free():
    text = ("@@meminfo\nMemTotal: 131072000 kB\nMemAvailable: 65536000 kB\n"
            "SwapTotal: 16777216 kB\nSwapFree: 15728640 kB\n@@loadavg\n0.5 0.4 0.3 1/200 9\n")
    snap = parse_host(text, at=1.0)
    assert snap.memory.swap_used_bytes == (16777216 - 15728640) * 1024
    assert snap.load == [0.5, 0.4, 0.3] and snap.disks == []


def test_external_mode_has_no_host_to_read(tmp_path):
    from app.config import Settings
    from helpers import authed
    settings = Settings(_env_file=None, parakeet_url="http://asr.test:8000", data_dir=tmp_path)
    with authed(settings) as client:
        body = client.get("/api/host").json()
    assert body == {"source": "none", "reachable": None, "snapshot": None, "error": None,
                    "checked_at": None, "warnings": [], "docker_disk": None,
                    "docker_disk_error": None}
