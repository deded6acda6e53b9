"""How many CPUs the speech server sizes its engines by (engine_base.usable_cpus).

os.cpu_count() counts the host's CPUs; a container pinned to one (docker
--cpuset-cpus) or given a quota (docker --cpus) must not run two recogniser threads
that wait on each other. The affinity case runs a real process under taskset."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import engine_base
from engine_base import cpu_quota, usable_cpus

PATCHES = Path(engine_base.__file__).parent


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cpu_quota(tmp_path) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("max 100000\n", None), ("150000 100000\n", 1.5), ("50000 100000\n", 0.5),
    ("garbled\n", None), ("100000 0\n", None)])
def test_cgroup_v2_quota(tmp_path: Path, text: str, expected: float | None) -> None:
    (tmp_path / "cpu.max").write_text(text)
    assert cpu_quota(tmp_path) == expected


@pytest.mark.parametrize(("quota", "expected"), [("-1", None), ("200000", 2.0)])
def test_cgroup_v1_quota(tmp_path: Path, quota: str, expected: float | None) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota(tmp_path) == expected


def test_a_quota_caps_the_affinity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert usable_cpus(tmp_path) == 4
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # --cpus 1.5: two threads
    assert usable_cpus(tmp_path) == 2
    (tmp_path / "cpu.max").write_text("20000 100000\n")  # --cpus 0.2: still one
    assert usable_cpus(tmp_path) == 1


@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (util-linux)")
def test_a_process_pinned_to_one_cpu_counts_one(tmp_path: Path) -> None:
    code = ("import os, engine_base, pathlib; "
            f"print(os.cpu_count(), engine_base.usable_cpus(pathlib.Path({str(tmp_path)!r})))")
    out = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], cwd=PATCHES,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(os.cpu_count()), "1"]
