"""Spark 2's own health, read in one shell round trip: memory and swap, load, disk, GPU.

`host_script` is one `sh -c` line whose parts print `/proc/meminfo`, `/proc/loadavg`,
`df` of the watched paths and `nvidia-smi`'s CSV, each after a `@@section` line;
`parse_host` reads that output. A figure the host does not report stays None (the
GB10 prints `[N/A]` for some GPU fields): shown as "not reported", never as 0.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence

from pydantic import BaseModel

GPU_FIELDS = ("name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu",
              "power.draw")
MIB = 1024 * 1024


class Memory(BaseModel):
    total_bytes: int
    available_bytes: int
    swap_total_bytes: int
    swap_used_bytes: int


class Disk(BaseModel):
    path: str
    total_bytes: int
    used_bytes: int
    available_bytes: int


class Gpu(BaseModel):
    name: str
    utilization_pct: float | None
    memory_used_bytes: int | None
    memory_total_bytes: int | None
    temperature_c: float | None
    power_w: float | None


class HostSnapshot(BaseModel):
    at: float  # unix time of the reading
    memory: Memory
    load: list[float]  # 1, 5 and 15 min
    disks: list[Disk]
    gpus: list[Gpu]
    gpu_detail: str  # "ok", or why there is no GPU reading


def host_script(disk_paths: Sequence[str], nvidia_smi: Sequence[str]) -> list[str]:
    """argv of the one command that reads everything (every part quoted)."""
    query = [*nvidia_smi, f"--query-gpu={','.join(GPU_FIELDS)}",
             "--format=csv,noheader,nounits"]
    script = "; ".join([
        "echo @@meminfo", "cat /proc/meminfo", "echo @@loadavg", "cat /proc/loadavg",
        "echo @@df", shlex.join(["df", "-P", "-B1", *disk_paths]) + " 2>/dev/null",
        "echo @@gpu", f"{shlex.join(query)} 2>&1 || echo \"@@gpu-failed $?\"",
    ])
    return ["sh", "-c", script]


def parse_host(text: str, at: float | None = None) -> HostSnapshot:
    sections = _sections(text)
    gpus, detail = parse_gpus(sections.get("gpu", []))
    return HostSnapshot(at=time.time() if at is None else at,
                        memory=parse_meminfo(sections.get("meminfo", [])),
                        load=parse_loadavg(sections.get("loadavg", [])),
                        disks=parse_df(sections.get("df", [])), gpus=gpus, gpu_detail=detail)


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@") and line[2:].isidentifier():
            current = sections.setdefault(line[2:], [])
        elif current is not None and line.strip():
            current.append(line)
    return sections


def parse_meminfo(lines: list[str]) -> Memory:
    kib: dict[str, int] = {}
    for line in lines:
        key, _, rest = line.partition(":")
        value = rest.split()
        if value and value[0].isdigit():
            kib[key.strip()] = int(value[0]) * 1024
    if "MemTotal" not in kib:
        raise ValueError("no MemTotal in /proc/meminfo")
    return Memory(total_bytes=kib["MemTotal"],
                  available_bytes=kib.get("MemAvailable", kib.get("MemFree", 0)),
                  swap_total_bytes=kib.get("SwapTotal", 0),
                  swap_used_bytes=kib.get("SwapTotal", 0) - kib.get("SwapFree", 0))


def parse_loadavg(lines: list[str]) -> list[float]:
    return [float(x) for x in lines[0].split()[:3]] if lines else []


def parse_df(lines: list[str]) -> list[Disk]:
    disks = []
    for line in lines[1:]:  # after the header
        parts = line.split()
        if len(parts) >= 6 and parts[1].isdigit():
            disks.append(Disk(path=parts[5], total_bytes=int(parts[1]), used_bytes=int(parts[2]),
                              available_bytes=int(parts[3])))
    return disks


def parse_gpus(lines: list[str]) -> tuple[list[Gpu], str]:
    failed = next((ln for ln in lines if ln.startswith("@@gpu-failed")), None)
    if failed is not None:
        said = next((ln for ln in lines if not ln.startswith("@@")), "")
        code = failed.split()[-1]
        why = "nvidia-smi is not installed" if code == "127" else f"nvidia-smi exited {code}"
        return [], f"not available: {why}" + (f" ({said.strip()[:200]})" if said else "")
    gpus = [_gpu(line) for line in lines]
    return gpus, "ok" if gpus else "not available: nvidia-smi listed no GPU"


def _gpu(line: str) -> Gpu:
    cells = [c.strip() for c in line.split(",")]
    cells += [""] * (len(GPU_FIELDS) - len(cells))
    name, util, used, total, temp, power = cells[:len(GPU_FIELDS)]
    return Gpu(name=name, utilization_pct=_number(util), memory_used_bytes=_mib(used),
               memory_total_bytes=_mib(total), temperature_c=_number(temp),
               power_w=_number(power))


def _number(cell: str) -> float | None:
    """A figure, or None for what the GPU does not report ([N/A], [Not Supported])."""
    try:
        return float(cell)
    except ValueError:
        return None


def _mib(cell: str) -> int | None:
    value = _number(cell)
    return None if value is None else int(value * MIB)
