"""What speakers cost: the whole transcribe-with-speakers against Whisper alone, per
speaker encoder (a benchmark; prints figures).

Assembles a long recording of real people (tests/data/real's recordings, 4 at a time,
taking turns, repeated until --minutes), starts the speech server with the CPU engine
once per CPU_SPEAKER_MODEL, and times on the same file:
- Whisper alone: the speech server's /v1/audio/transcriptions;
- the whole pipeline: spark-control's POST /api/audio/transcribe-with-speakers (in this
  process, in front of that server): chunking, transcription and diarization in
  parallel, stitching, merging;
and prints the ratio. The target is 1.3 at most.

    python bench/speaker_speed.py --minutes 27 --models campplus ge2e
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "image"), str(REPO / "tests")]
os.environ.setdefault("ALLOWED_HOSTS", "testserver")  # spark-control runs in process

from app.config import Settings  # noqa: E402
from helpers import authed  # noqa: E402
from speech_server import start  # noqa: E402
from testaudio import real  # noqa: E402


def long_recording(path: Path, minutes: float) -> Path:
    """The 4 VCTK readers taking turns (a conversation per recording of theirs), the
    conversations repeated until `minutes`."""
    pool = real.recordings()
    readers = ["vctk-p225", "vctk-p226", "vctk-p227", "vctk-p228"]
    parts, total = [], 0.0
    for index in itertools.count():
        wav = path.with_name(f"part-{index}.wav")
        real.conversation([pool[r][index % 5] for r in readers], wav, seed=index)
        parts.append(real.read(wav))
        total += len(parts[-1]) / real.RATE
        if total >= minutes * 60:
            return real.write(path, np.concatenate(parts))
    raise AssertionError("unreachable")


def timed(call) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = call()
    assert response.status_code == 200, response.text[:500]
    return time.perf_counter() - started, response


def measure(model: str, wav: Path, tmp: Path) -> tuple[float, float, int]:
    server = start("cpu", tmp, {"CPU_SPEAKER_MODEL": model})
    url = next(server).url
    try:
        with wav.open("rb") as f:
            alone, _ = timed(lambda: httpx.post(f"{url}/v1/audio/transcriptions", timeout=3600,
                                                files={"file": (wav.name, f, "audio/wav")}))
        settings = Settings(_env_file=None, parakeet_url=url, data_dir=tmp / f"data-{model}")
        with authed(settings) as client, wav.open("rb") as f:
            total, response = timed(lambda: client.post(
                "/api/audio/transcribe-with-speakers", files={"file": (wav.name, f, "audio/wav")}))
        return alone, total, response.json()["speakers_detected"]
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=27)
    parser.add_argument("--models", nargs="+", default=["campplus", "ge2e"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wav = long_recording(Path(tmp) / "long.wav", args.minutes)
        seconds = len(real.read(wav)) / real.RATE
        print(f"{seconds / 60:.1f} min: 4 real readers taking turns (VCTK, repeated)")
        for model in args.models:
            alone, total, speakers = measure(model, wav, Path(tmp))
            print(f"{model:9s} Whisper alone {alone:6.1f} s | whole pipeline {total:6.1f} s | "
                  f"ratio {total / alone:.2f} | {speakers} speakers", flush=True)


if __name__ == "__main__":
    main()
