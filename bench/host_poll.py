"""Cost of one host-health poll over SSH (a benchmark).

Starts the simulated Spark 2 and times N polls of `HostHealth` through the Docker
client's long-lived shell: one line on an open SSH channel per poll, running
/proc/meminfo, /proc/loadavg, df and the stand-in nvidia-smi in one `sh -c`.

    python bench/host_poll.py --polls 100
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "image"), str(REPO / "tests")]

from app.remote.docker import Docker  # noqa: E402
from app.host.health import HostHealth  # noqa: E402
from app.pool.members import ssh_target  # noqa: E402
from app.remote.ssh import SSHClient  # noqa: E402
from helpers import sim_settings  # noqa: E402
from sim.spark2 import SimSpark2  # noqa: E402


async def measure(sim: SimSpark2, polls: int) -> list[float]:
    settings = sim_settings(sim)
    ssh = SSHClient(ssh_target(settings))
    docker = Docker(ssh, settings.docker_argv)
    health = HostHealth(settings, docker, local=False)
    try:
        await health.poller.refresh()  # connects SSH and opens the shell
        assert health.status().reachable, health.status().error
        times = []
        for _ in range(polls):
            started = time.perf_counter()
            await health.poller.refresh()
            times.append((time.perf_counter() - started) * 1000)
        assert health.status().snapshot is not None
        return times
    finally:
        await docker.close()
        await ssh.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--polls", type=int, default=100)
    args = parser.parse_args()
    sim = SimSpark2.up()
    try:
        times = asyncio.run(measure(sim, args.polls))
    finally:
        sim.down()
    q = statistics.quantiles(times, n=100)
    print(f"host poll over SSH  n={len(times)}  p50={q[49]:.1f} ms  p95={q[94]:.1f} ms  "
          f"max={max(times):.1f} ms  (goal: < 150 ms, one round trip)")


if __name__ == "__main__":
    main()
