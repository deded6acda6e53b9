"""Accuracy and speed of the speech server on generated conversations (a benchmark).

Starts the server with the CPU engine (or uses --server URL), makes seeded espeak-ng
conversations with ground truth, sends each to /v1/audio/transcriptions and
/v1/audio/diarize in parallel (as the control plane does), and prints WER, DER
(collar 0.25 s), speaker count, word->speaker accuracy and the real-time factor.

    python bench/speech_accuracy.py --speakers 3 4 --seconds 150
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "image")]

from sim.spark2 import free_ports  # noqa: E402
from testaudio.evaluate import evaluate  # noqa: E402
from testaudio.generate import make_conversation  # noqa: E402


def post_file(url: str, wav: Path, fields: dict[str, str]) -> tuple[dict, float]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             .encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{wav.name}"\r\nContent-Type: audio/wav\r\n\r\n'.encode()
                 + wav.read_bytes() + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=900) as response:
        return json.load(response), time.perf_counter() - started


def run_one(server: str, speakers: int, seconds: float, seed: int, work: Path) -> dict:
    conv = make_conversation(work / f"conv-{speakers}-{seed}", speakers=speakers,
                             seconds=seconds, seed=seed)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        started = time.perf_counter()
        asr = pool.submit(post_file, f"{server}/v1/audio/transcriptions", conv.wav,
                          {"response_format": "verbose_json",
                           "timestamp_granularities[]": "word"})
        diar = pool.submit(post_file, f"{server}/v1/audio/diarize", conv.wav, {})
        (transcription, asr_s), (diarization, diar_s) = asr.result(), diar.result()
        wall = time.perf_counter() - started
    scores = evaluate(conv.wav.parent, transcription, diarization)
    return {**scores, "speakers": speakers, "seed": seed, "duration": conv.duration,
            "asr_s": asr_s, "diar_s": diar_s, "rtf": wall / conv.duration}


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_ports(1)[0]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "main:app", "--app-dir",
         str(REPO / "image" / "parakeet_patches"), "--port", str(port), "--log-level",
         "warning"], env={**os.environ, "ENGINE": "cpu"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if json.load(response)["status"] == "ok":
                    return proc, url
        except OSError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("the speech server did not become ready in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="a running speech server (default: start one)")
    parser.add_argument("--speakers", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    args = parser.parse_args()
    proc, server = (None, args.server) if args.server else start_server()
    print(f"{'spk':>3} {'seed':>4} {'dur s':>6} {'WER':>6} {'DER':>6} {'found':>5} "
          f"{'w->spk':>6} {'asr s':>6} {'diar s':>6} {'RTF':>6}")
    results: list[dict] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for speakers in args.speakers:
                for seed in args.seeds:
                    r = run_one(server, speakers, args.seconds, seed, Path(tmp))
                    results.append(r)
                    print(f"{speakers:>3} {seed:>4} {r['duration']:>6.1f} {r['wer']:>6.1%} "
                          f"{r['der']:>6.1%} {r['speakers_detected']:>5} "
                          f"{r['word_speaker_accuracy']:>6.1%} {r['asr_s']:>6.1f} "
                          f"{r['diar_s']:>6.1f} {r['rtf']:>6.3f}", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
    summarize(results)


def summarize(results: list[dict]) -> None:
    """Per speaker count: mean and range of WER, worst DER, RTF and speaker accuracy."""
    print()
    for speakers in sorted({r["speakers"] for r in results}):
        rs = [r for r in results if r["speakers"] == speakers]
        wers = [r["wer"] for r in rs]
        right = sum(r["speakers_detected"] == speakers for r in rs)
        print(f"{speakers} speakers, {len(rs)} files: WER mean {sum(wers) / len(rs):.1%} "
              f"(range {min(wers):.1%}-{max(wers):.1%}), DER max "
              f"{max(r['der'] for r in rs):.1%}, speaker count right {right}/{len(rs)}, "
              f"words->speaker min {min(r['word_speaker_accuracy'] for r in rs):.1%}, "
              f"RTF max {max(r['rtf'] for r in rs):.3f}")


if __name__ == "__main__":
    main()
