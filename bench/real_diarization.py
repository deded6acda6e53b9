"""Diarization of real people by the CPU engine (a benchmark; prints figures).

Runs the speech server's CPU diarizer in this process on
- the real multi-speaker recordings in tests/data/real/multi (a meeting excerpt, a
  3-speaker clip, two radio-style clips), against their reference RTTMs;
- conversations assembled from real single-speaker recordings: 3 or 4 people from
  different sources, one recording each, taking turns clip by clip (seeded);
and prints, per recording and overall: speakers found vs. true, DER (collar 0.25 s)
split into missed / false alarm / confusion, and the seconds it took.

    python bench/real_diarization.py --conversations 20 [--extra /path/to/voices]

--extra DIR adds people from DIR/<person>/<file>.wav (one recording per file, 16 kHz
mono): e.g. the tortoise-tts voices, which have no stated licence and are never
committed. Their files are long single clips, so they are cut into 4-8 s turns.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "image" / "parakeet_patches")]

from cpu_diarize import CpuDiarizer  # noqa: E402
from testaudio import real  # noqa: E402
from testaudio.evaluate import der_breakdown  # noqa: E402


# Folders of the tortoise-tts voices that are one person (pat2 is pat) or one voice
# actress (rainbow and applejack): one person here. A file whose audio repeats another's
# (pat/3.wav is pat/2.wav, re-encoded) counts once.
SAME_PERSON = {"pat2": "pat", "rainbow": "applejack"}


def people_pool(extra: Path | None, tmp: Path) -> dict[str, list[real.Recording]]:
    """Everyone with a recording: the corpus's people, plus --extra's."""
    pool = dict(real.recordings())
    seen: set[tuple[int, float]] = set()
    for person in sorted(p for p in (extra.iterdir() if extra else []) if p.is_dir()):
        name = f"x-{SAME_PERSON.get(person.name, person.name)}"
        for wav in sorted(person.glob("*.wav")):
            audio = real.read(wav)
            if (key := (len(audio), round(float(np.abs(audio).sum()), 0))) not in seen:
                seen.add(key)
                pool.setdefault(name, []).append(_cut(wav, name, tmp))
    return pool


def _cut(wav: Path, speaker: str, tmp: Path, seed: int = 0) -> real.Recording:
    """A long clip as a recording of 4-8 s clips (turns), written under tmp."""
    audio = real.read(wav)
    rng, start, clips = random.Random(seed), 0, []
    while start < len(audio) - 2 * real.RATE:
        end = min(len(audio), start + int(rng.uniform(4, 8) * real.RATE))
        path = real.write(tmp / f"{speaker}-{wav.stem}-{start}.wav", audio[start:end])
        clips.append(real.Clip(path, speaker, f"{speaker}/{wav.stem}", (end - start) / real.RATE))
        start = end
    return real.Recording(speaker, tuple(clips))


def score(diarizer: CpuDiarizer, name: str, wav: Path, turns) -> tuple[bool, float]:
    started = time.perf_counter()
    found = diarizer.diarize(real.read(wav))
    took = time.perf_counter() - started
    hyp = [(t.start, t.end, t.speaker) for t in found.turns]
    parts = der_breakdown(turns, hyp, collar=0.25)
    true_n, found_n = len({t[2] for t in turns}), len(found.speakers)
    share = {k: getattr(parts, k) / max(parts.total, 1e-9)
             for k in ("missed", "false_alarm", "confusion")}
    print(f"{name[:60]:60s} speakers {found_n}/{true_n}  DER {parts.der:6.1%} "
          f"(miss {share['missed']:.1%} fa {share['false_alarm']:.1%} "
          f"conf {share['confusion']:.1%})  {took:5.1f} s", flush=True)
    return found_n == true_n, parts.der


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--extra", type=Path, help="a folder of <person>/<file>.wav")
    args = parser.parse_args()
    diarizer = CpuDiarizer()
    diarizer.load()
    with tempfile.TemporaryDirectory() as tmp:
        groups = {"real multi-speaker clips": [(m.name, m.wav, m.turns) for m in real.multis()],
                  "assembled conversations": list(real.assembled(
                      people_pool(args.extra, Path(tmp)), args.conversations, Path(tmp)))}
        for title, items in groups.items():
            print(f"-- {title}")
            results = [score(diarizer, *item) for item in items]
            right = sum(ok for ok, _ in results)
            mean = sum(d for _, d in results) / max(1, len(results))
            print(f"   right speaker count {right}/{len(results)}, mean DER {mean:.1%}, "
                  f"worst {max((d for _, d in results), default=0):.1%}\n")


if __name__ == "__main__":
    main()
