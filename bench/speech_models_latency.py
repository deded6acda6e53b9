"""`GET /api/speech-models` latency over a warm SSH connection (a benchmark).

Starts the simulated Spark 2, runs spark-control in-process against it, warms the
SSH connection, then times N sequential requests with the cache off (every request
does its one `docker exec … sha256sum`) and with the default cache.

    python bench/speech_models_latency.py --requests 200
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "image"), str(REPO / "tests")]

from helpers import control, sim_settings  # noqa: E402
from sim.spark2 import SimSpark2  # noqa: E402


def measure(sim: SimSpark2, requests: int, cache_s: float) -> list[float]:
    with control(sim_settings(sim, speech_models_cache_s=cache_s)) as client:
        for _ in range(5):  # connect SSH, first docker poll
            assert client.get("/api/speech-models").status_code == 200
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get("/api/speech-models")
            times.append((time.perf_counter() - started) * 1000)
            assert response.json()["status"] == "in_sync"
    return times


def report(label: str, times: list[float]) -> None:
    q = statistics.quantiles(times, n=100)
    print(f"{label:<28} n={len(times):<4} p50={q[49]:7.1f} ms  p95={q[94]:7.1f} ms  "
          f"max={max(times):7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    sim = SimSpark2.up()
    try:
        report("no cache (exec every time)", measure(sim, args.requests, 0))
        report("default cache (3 s)", measure(sim, args.requests, 3))
    finally:
        sim.down()


if __name__ == "__main__":
    main()
