"""Calibration of the known-speaker threshold for the CPU engine's GE2E prints.

Makes a seeded pool of espeak-ng voices (accent, voice variant, pitch, speed), several
recordings of each, in 4-voice conversations with different words and partners;
diarizes them with the CPU engine as the speech server does, keeps each detected
speaker's print with the true voice it covers, and scores pairs from different
recordings: the same voice (should match) and different voices (should not), the
latter split into "another variant" and "the same variant" (only the accent or the
pitch differs: for espeak the variant is the voice's timbre, so such a pair is the
closest thing to a look-alike). Half of the voices calibrate, the other half is
held out. Prints the false-reject and false-accept rates per threshold and at the
shipped one (app/speakers/thresholds.py). Synthetic voices: real speech may differ.

    python bench/speaker_calibration.py --voices 48 --recordings 3 --seconds 120
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "image"), str(REPO / "image" / "parakeet_patches")]

from app.speakers.thresholds import GE2E_THRESHOLD  # noqa: E402
from audio_io import decode  # noqa: E402
from cpu_diarize import CpuDiarizer  # noqa: E402
from testaudio.generate import Conversation, Voice, make_conversation  # noqa: E402

ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc")
MALE, FEMALE = ("m1", "m2", "m3", "m4", "m5", "m6", "m7"), ("f1", "f2", "f3", "f4", "f5")


@dataclass
class Print:
    voice: int
    recording: int
    vector: np.ndarray
    purity: float  # share of the detected speaker's talk that is that voice


def voice_pool(count: int, seed: int) -> list[Voice]:
    rng = random.Random(seed)
    voices = []
    while len(voices) < count:
        male = rng.random() < 0.5
        variant = rng.choice(MALE if male else FEMALE)
        pitch = rng.randrange(25, 60) if male else rng.randrange(55, 99)
        voice = Voice(f"{rng.choice(ACCENTS)}+{variant}", pitch, rng.randrange(130, 180))
        if voice not in voices:
            voices.append(voice)
    return voices


def prints_of(conv: Conversation, group: list[int], recording: int,
              diarizer: CpuDiarizer) -> list[Print]:
    audio = decode(conv.wav)
    diarization = diarizer.diarize(audio)
    vectors = diarizer.fingerprints(audio, diarization)
    out = []
    for label, vector in vectors.items():
        talk: dict[str, float] = {}
        for turn in (t for t in diarization.turns if t.speaker == label):
            for line in conv.lines:
                overlap = min(turn.end, line.end) - max(turn.start, line.start)
                if overlap > 0:
                    talk[line.speaker] = talk.get(line.speaker, 0.0) + overlap
        if talk:
            owner = max(talk, key=talk.__getitem__)
            out.append(Print(group[int(owner[3:])], recording, np.asarray(vector),
                             talk[owner] / sum(talk.values())))
    return out


def collect(voices: list[Voice], recordings: int, seconds: float, work: Path) -> list[Print]:
    diarizer = CpuDiarizer()
    diarizer.load()
    prints: list[Print] = []
    for recording in range(recordings):
        order = list(range(len(voices)))
        random.Random(100 + recording).shuffle(order)
        for start in range(0, len(order) - 3, 4):
            group = order[start:start + 4]
            conv = make_conversation(work / f"r{recording}-{start}", speakers=4,
                                     seconds=seconds, seed=1000 + 50 * recording + start,
                                     voices=[voices[i] for i in group])
            prints += prints_of(conv, group, recording, diarizer)
    return prints


def trials(prints: list[Print], voices: list[Voice], keep: set[int]) -> dict[str, np.ndarray]:
    """Scores of print pairs from different recordings, both voices in `keep`."""
    kinds: dict[str, list[float]] = {"same voice": [], "another variant": [],
                                     "same variant": []}
    for a, b in itertools.combinations(prints, 2):
        if a.recording == b.recording or a.voice not in keep or b.voice not in keep:
            continue
        score = float(a.vector @ b.vector)
        if a.voice == b.voice:
            kinds["same voice"].append(score)
        elif voices[a.voice].name.split("+")[1] == voices[b.voice].name.split("+")[1]:
            kinds["same variant"].append(score)
        else:
            kinds["another variant"].append(score)
    return {kind: np.array(scores) for kind, scores in kinds.items()}


def rates(scores: dict[str, np.ndarray], threshold: float) -> str:
    same = scores["same voice"]
    parts = [f"false reject {np.mean(same < threshold):6.1%} ({np.sum(same < threshold)}/{len(same)})"]
    for kind in ("another variant", "same variant"):
        s = scores[kind]
        parts.append(f"false accept, {kind} {np.mean(s >= threshold):6.2%} "
                     f"({np.sum(s >= threshold)}/{len(s)})")
    return " | ".join(parts)


def report(name: str, scores: dict[str, np.ndarray]) -> None:
    print(f"\n{name}:")
    for kind, s in scores.items():
        if len(s):
            print(f"  {kind:16s} n={len(s):5d}  min {s.min():.4f}  p5 {np.percentile(s, 5):.4f}"
                  f"  median {np.median(s):.4f}  p95 {np.percentile(s, 95):.4f}  max {s.max():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voices", type=int, default=48)
    parser.add_argument("--recordings", type=int, default=3, help="of each voice")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--purity", type=float, default=0.9,
                        help="leave out detected speakers mixing voices (a diarization miss)")
    args = parser.parse_args()
    voices = voice_pool(args.voices, args.seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        prints = collect(voices, args.recordings, args.seconds, Path(work))
    pure = [p for p in prints if p.purity >= args.purity]
    print(f"{len(voices)} voices, {len(prints)} detected speakers, {len(pure)} with "
          f"purity >= {args.purity:.0%}, {time.perf_counter() - started:.0f} s")
    halves = {"calibration (even voices)": set(range(0, len(voices), 2)),
              "held out (odd voices)": set(range(1, len(voices), 2))}
    for name, keep in halves.items():
        scores = trials(pure, voices, keep)
        report(name, scores)
        for threshold in np.arange(0.955, 0.9951, 0.005):
            print(f"  {threshold:.3f}  {rates(scores, threshold)}")
        print(f"  shipped {GE2E_THRESHOLD:.3f}: {rates(scores, GE2E_THRESHOLD)}")


if __name__ == "__main__":
    main()
