"""Throughput of a pool of one host vs two (a benchmark; prints figures).

Two simulated hosts (sim/spark2.py: each a private dockerd + sshd + the real speech
server with its CPU engine), each speech server pinned to one CPU of its own from its
start (`docker create --cpuset-cpus`: it sizes its threads by the CPUs it may use), so
the figure means something on a 2-core machine.
A batch of real people's recordings (testaudio/real.py conversations) is submitted at
once as audio jobs to spark-control (in process, its lifespan and pollers running),
first with SPARK2_HOST alone, then with the second host in HOSTS; the time from the
first submit to the last job done gives the throughput (seconds of audio per second).

    .venv/bin/python bench/pool_throughput.py --recordings 8 --repeat 3
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "image")]

from fastapi.testclient import TestClient  # noqa: E402

from app.config import HostSpec, Settings  # noqa: E402
from app.server import create_app  # noqa: E402
from sim.spark2 import SimSpark2  # noqa: E402
from testaudio import real  # noqa: E402


CORES = os.cpu_count() or 1


def recordings(folder: Path, count: int) -> list[tuple[Path, float]]:
    """`count` conversations of three real people each (different people per file)."""
    recs = real.recordings()
    people = sorted(p for p, r in recs.items() if len(r) >= 2)
    out = []
    for index in range(count):
        chosen = [recs[people[(index * 3 + k) % len(people)]][index % 2] for k in range(3)]
        wav = folder / f"batch-{index}.wav"
        real.conversation(chosen, wav, seed=index)
        out.append((wav, real.read(wav).size / 16000))
    return out


def settings(first: SimSpark2, second: SimSpark2 | None, data: Path,
             in_flight: int) -> Settings:
    env = {k.lower(): v for k, v in first.env().items()
           if k not in ("SIM_SPARK2_DIR", "MAGPIE_URL")}
    hosts = [HostSpec(**second.host_entry("spark1"))] if second else []
    return Settings(_env_file=None, **env, hosts=hosts, data_dir=data,
                    magpie_url=None, jobs_running=32, jobs_queue_max=64, gpu_in_flight=in_flight,
                    deep_check_interval_s=3600, parakeet_memory_limit="2g",
                    allowed_hosts=["testserver"])  # TestClient's Host header


def cpu_seconds() -> float:
    """CPU time of this process (spark-control runs in it) and its children (ffmpeg)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def machine_cpu_s() -> float:
    """CPU seconds the whole machine has been busy (/proc/stat: all but idle, iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(host: SimSpark2) -> float:
    """CPU seconds the host's speech server container has used (its cgroup's
    cpuacct.usage, v1, or cpu.stat usage_usec, v2); 0 when neither is found."""
    cid = host.docker("inspect", "--format", "{{.Id}}", "parakeet-asr").stdout.decode().strip()
    for path in glob.glob(f"/sys/fs/cgroup/**/*{cid}*/cpuacct.usage", recursive=True):
        return int(Path(path).read_text()) / 1e9
    for path in glob.glob(f"/sys/fs/cgroup/**/*{cid}*/cpu.stat", recursive=True):
        usage = dict(line.split() for line in Path(path).read_text().splitlines())
        return int(usage["usage_usec"]) / 1e6
    return 0.0


@dataclass
class Batch:
    took: float  # first submit to the last job done
    served: dict[str, int]  # units per host
    cpu: float  # spark-control's CPU seconds (this process and its ffmpeg)
    busy: list[float]  # each speech server's CPU seconds
    machine: float  # the whole machine's busy CPU seconds
    working: dict[str, list[float]]  # host: [seconds with work in flight, last unit's end]

    def line(self, audio: float) -> str:
        used = ", ".join(f"{b:.1f} s ({b / self.took:.0%} of the run)" for b in self.busy)
        hosts = ", ".join(f"{name} {w[0] / self.took:.0%}, its last unit ended at {w[1]:.1f} s"
                          for name, w in self.working.items())
        return (f"{self.took:6.1f} s  {audio / self.took:5.2f} s of audio per s  served "
                f"{self.served}\n    work in flight: {hosts}\n    CPU: speech server {used}; "
                f"spark-control {self.cpu:.1f} s (with its ffmpeg); the rest "
                f"{self.machine - self.cpu - sum(self.busy):.1f} s; machine idle "
                f"{self.took * CORES - self.machine:.1f} s of {self.took * CORES:.0f}")


def run_batch(config: Settings, batch: list[tuple[Path, float]],
              servers: list[SimSpark2]) -> Batch:
    app = create_app(config)
    with TestClient(app, headers={"Authorization": f"Bearer {app.state.auth.token}"}) as c:
        _wait_active(c, 1 + len(config.hosts))
        started, cpu, machine = time.perf_counter(), cpu_seconds(), machine_cpu_s()
        busy = [server_cpu_s(host) for host in servers]
        ids = []
        for wav, _ in batch:
            with wav.open("rb") as f:
                job = c.post("/api/audio/jobs", files={"file": (wav.name, f, "audio/wav")},
                             params={"match_speakers": "false"})
            job.raise_for_status()
            ids.append(job.json()["id"])
        working = _follow(c, app.state.pool, ids, started)
        took, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        machine = machine_cpu_s() - machine
        busy = [server_cpu_s(host) - before for host, before in zip(servers, busy)]
        served = {h["pool"]["name"]: h["pool"]["served"] for h in c.get("/api/hosts").json()["hosts"]}
    return Batch(took, served, cpu, busy, machine, working)


def _follow(client: TestClient, pool, ids: list[str], started: float) -> dict[str, list[float]]:
    """Waits for every job; meanwhile samples each host's units in flight (read from the
    pool object in this process: no requests, no CPU to speak of). Returns, per host,
    [seconds it had work in flight, when its last unit ended (s from the start)]."""
    working = {name: [0.0, 0.0] for name in pool.members}
    last, pending, next_poll = time.perf_counter(), list(ids), 0.0
    while pending:
        time.sleep(0.05)
        now = time.perf_counter()
        for name, load in pool.load.items():
            if load.in_flight:
                working[name][0] += now - last
                working[name][1] = now - started
        last = now
        if now >= next_poll:  # every job's state every 0.2 s, in one request
            jobs = client.get("/api/audio/jobs", params={"limit": len(ids)}).json()["jobs"]
            for job in (j for j in jobs if j["id"] in pending):
                if job["status"] not in ("queued", "running"):
                    if job["status"] != "done":
                        raise SystemExit(f"job {job['id']} {job['status']}: {job['error']}")
                    pending.remove(job["id"])
            next_poll = now + 0.2
    return working


def _wait_active(client: TestClient, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        hosts = client.get("/api/hosts").json()["hosts"]
        if sum(h["pool"]["state"] == "active" for h in hosts) == count:
            return
        time.sleep(0.3)
    raise SystemExit(f"the hosts did not become active: {hosts}")


def pin(host: SimSpark2, cpu: int) -> None:
    host.reset_containers(cpuset=str(cpu))
    print(f"  parakeet-asr created with --cpuset-cpus {cpu} on {host.root}")


def rounds(folder: Path, args: argparse.Namespace) -> list[float]:
    """Each round's throughput ratio (two / one), its figures printed as it goes."""
    batch = recordings(folder, args.recordings)
    audio = sum(seconds for _, seconds in batch)
    print(f"batch: {len(batch)} recordings of real speech, {audio:.0f} s of audio "
          f"({', '.join(f'{s:.0f}' for _, s in batch)} s)")
    hosts: list[SimSpark2] = []
    ratios = []
    try:
        hosts += [SimSpark2.up(tts=False), SimSpark2.up(tts=False)]
        for cpu, host in enumerate(hosts):
            pin(host, cpu)
        for round_ in range(1, args.repeat + 1):
            one = run_batch(settings(hosts[0], None, folder / f"one-{round_}", args.in_flight),
                            batch, hosts[:1])
            two = run_batch(settings(hosts[0], hosts[1], folder / f"two-{round_}",
                                     args.in_flight), batch, hosts)
            for label, result in (("one", one), ("two", two)):
                print(f"round {round_}, pool of {label}: {result.line(audio)}", flush=True)
            ratios.append(one.took / two.took)
            print(f"round {round_}: throughput ratio (two / one) {ratios[-1]:.2f}x", flush=True)
    finally:
        for host in hosts:
            host.down()
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of one-then-two (the machine's noise shows)")
    parser.add_argument("--in-flight", type=int, default=1,
                        help="GPU_IN_FLIGHT: units (and requests) at once per host")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pool-bench-") as tmp:
        ratios = rounds(Path(tmp), args)
    print(f"throughput ratio (two / one): median {statistics.median(ratios):.2f}x, "
          f"range {min(ratios):.2f}-{max(ratios):.2f}x over {len(ratios)} rounds "
          "(target >= 1.7x)")


if __name__ == "__main__":
    main()
