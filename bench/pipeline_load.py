"""Memory, overhead and in-flight cap of the audio pipeline (a benchmark; prints figures).

Runs spark-control as its own process (`python -m app.cli`) in front of
bench/fixed_cost_server.py, a speech server whose cost per audio second is fixed,
and submits 48 kHz stereo WAV recordings as audio jobs. For each run it prints the
spark-control process's peak RSS (VmHWM from /proc), the end-to-end time, and for one
length the time of calling the speech server directly with the same file
(transcription and diarization in parallel), and the time with GPU_IN_FLIGHT=1.

    python bench/pipeline_load.py --minutes 10 60 180 --overhead-minutes 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-" + "0" * 26
AUTH = {"Authorization": f"Bearer {TOKEN}"}
sys.path[:0] = [str(REPO)]

from sim.spark2 import free_ports  # noqa: E402


def make_input(path: Path, minutes: float) -> Path:
    """A tone over pink noise, 48 kHz stereo 16-bit WAV, made by ffmpeg."""
    if not path.exists():
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                        "anoisesrc=c=pink:r=48000:a=0.05", "-f", "lavfi", "-i",
                        "sine=f=220:r=48000", "-filter_complex", "amix=inputs=2",
                        "-ac", "2", "-t", str(minutes * 60), "-c:a", "pcm_s16le", "-y",
                        str(path)], check=True)
    return path


def serve(argv: list[str], env: dict[str, str], url: str, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"{argv[:4]} did not start; see {log}")
        time.sleep(0.2)


def speech_server(work: Path, cost_ms: float, parallel: int) -> tuple[subprocess.Popen, str]:
    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "uvicorn", "fixed_cost_server:app", "--app-dir",
            str(REPO / "bench"), "--port", str(port), "--log-level", "warning"]
    env = {"COST_MS_PER_S": str(cost_ms), "PARALLEL": str(parallel)}
    return serve(argv, env, f"{url}/health", work / "speech.log"), url


def control(work: Path, speech_url: str, in_flight: int) -> tuple[subprocess.Popen, str]:
    port = free_ports(1)[0]
    env = {"PARAKEET_URL": speech_url, "DATA_DIR": str(work / f"data-{port}"),
           "MAX_UPLOAD_MB": "4096", "GPU_IN_FLIGHT": str(in_flight), "LOG_LEVEL": "warning",
           "PYTHONPATH": str(REPO / "image"), "SPARK2_HOST": "", "SPARK_CONTROL_TOKEN": TOKEN}
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "app.cli", "--host", "127.0.0.1", "--port", str(port)]
    return serve(argv, env, f"{url}/livez", work / "control.log"), url


def rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_job(url: str, wav: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    with wav.open("rb") as f:
        job = httpx.post(f"{url}/api/audio/jobs", files={"file": (wav.name, f, "audio/wav")},
                         headers=AUTH, timeout=600).json()
    last: dict = {}
    with httpx.stream("GET", f"{url}/api/audio/jobs/{job['id']}/events", headers=AUTH,
                      timeout=None) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                last = json.loads(line[5:])
    elapsed = time.perf_counter() - started
    if last.get("status") != "done":
        raise SystemExit(f"job failed: {last}")
    return elapsed, last


def direct(speech_url: str, wav: Path) -> float:
    """What a client without spark-control does: both calls in parallel, whole file."""
    def post(path: str) -> None:
        with wav.open("rb") as f:
            httpx.post(f"{speech_url}{path}", files={"file": (wav.name, f, "audio/wav")},
                       timeout=3600).raise_for_status()
    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(post, ["/v1/audio/transcriptions", "/v1/audio/diarize"]))
    return time.perf_counter() - started


def measured_job(work: Path, speech_url: str, wav: Path, in_flight: int) -> dict:
    proc, url = control(work, speech_url, in_flight)
    try:
        idle = rss_mb(proc.pid, "VmRSS")
        elapsed, job = run_job(url, wav)
        return {"idle_mb": idle, "peak_mb": rss_mb(proc.pid, "VmHWM"), "seconds": elapsed,
                "chunks": job["chunks"]}
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="*", default=[10, 60, 180])
    parser.add_argument("--overhead-minutes", type=float, default=60)
    parser.add_argument("--cost-ms", type=float, default=10.0,
                        help="speech-server milliseconds per audio second (default 10)")
    parser.add_argument("--parallel", type=int, default=2, help="speech-server capacity")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    work.mkdir(parents=True, exist_ok=True)
    speech, speech_url = speech_server(work, args.cost_ms, args.parallel)
    print(f"speech server: {args.cost_ms:g} ms per audio second, {args.parallel} at a time; "
          f"input 48 kHz stereo s16 WAV; work dir {work}")
    try:
        peaks = {}
        for minutes in args.minutes:
            wav = make_input(work / f"in-{minutes:g}min.wav", minutes)
            r = measured_job(work, speech_url, wav, in_flight=2)
            peaks[minutes] = r["peak_mb"]
            print(f"{minutes:5g} min ({wav.stat().st_size / 2**20:6.0f} MB): "
                  f"{r['chunks']:2d} chunks  end-to-end {r['seconds']:7.1f} s  "
                  f"RSS idle {r['idle_mb']:5.1f} MB  peak {r['peak_mb']:5.1f} MB")
        if len(peaks) > 1:
            lo, hi = min(peaks), max(peaks)
            print(f"peak RSS ratio {hi:g}/{lo:g} min: {peaks[hi] / peaks[lo]:.3f} "
                  f"(goal <= 1.2; goal peak <= 200 MB)")
        overhead(work, speech_url, args.overhead_minutes)
    finally:
        speech.terminate()
        speech.wait(30)


def overhead(work: Path, speech_url: str, minutes: float) -> None:
    wav = make_input(work / f"in-{minutes:g}min.wav", minutes)
    baseline = direct(speech_url, wav)
    capped = measured_job(work, speech_url, wav, in_flight=2)
    serial = measured_job(work, speech_url, wav, in_flight=1)
    print(f"{minutes:g} min direct to the speech server (2 calls in parallel): {baseline:.1f} s")
    print(f"{minutes:g} min through spark-control, GPU_IN_FLIGHT=2: {capped['seconds']:.1f} s "
          f"-> ratio {capped['seconds'] / baseline:.3f} (goal <= 1.10)")
    print(f"{minutes:g} min through spark-control, GPU_IN_FLIGHT=1 (sequential chunks): "
          f"{serial['seconds']:.1f} s ({serial['seconds'] / capped['seconds']:.2f}x the capped "
          "time)")


if __name__ == "__main__":
    main()
