"""Known speakers as a person uses them, over many recordings (a benchmark).

The generator's four voices talk in one recording; two of them (spk0, spk1) are
enrolled from it as the API does from a job (their detected speaker's print). Then
other seeded recordings of the same four voices, and recordings of look-alike voices
of two kinds: another voice variant with an enrolled voice's accent, pitch and speed;
and the enrolled voice's own variant with another accent or pitch, which GE2E is
known not to tell apart (bench/speaker_calibration.py), are diarized by the CPU
engine and named by the app's own matching (app/speakers): the counts of right
names, wrong names, enrolled voices left unnamed and look-alikes named are printed,
with the scores. Synthetic voices: real speech may differ.

    python bench/speaker_identification.py --recordings 20 --seconds 100
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "image"), str(REPO / "image" / "parakeet_patches")]

from app.audio.pipeline import VoicePrint  # noqa: E402
from app.audio.stitching import unit  # noqa: E402
from app.speakers.matching import Known, assign  # noqa: E402
from app.speakers.thresholds import GE2E_THRESHOLD, MIN_MATCH_S  # noqa: E402
from audio_io import decode  # noqa: E402
from cpu_diarize import CpuDiarizer  # noqa: E402
from testaudio.generate import Conversation, Voice, make_conversation  # noqa: E402

ENROLLED = {"spk0": "Alice", "spk1": "Bob"}
LOOKALIKES = {"other variant": (Voice("en-us+m1", 35, 150), Voice("en+f4", 70, 175)),
              "same variant": (Voice("en-us+m3", 45, 150), Voice("en-us+f3", 70, 175))}


def detected(conv: Conversation, diarizer: CpuDiarizer) -> dict[str, tuple[str, VoicePrint]]:
    """Detected label -> (the true speaker it covers most, its print)."""
    audio = decode(conv.wav)
    diarization = diarizer.diarize(audio)
    prints = diarizer.fingerprints(audio, diarization)
    out = {}
    for label, vector in prints.items():
        turns = [t for t in diarization.turns if t.speaker == label]
        talk: dict[str, float] = {}
        for turn in turns:
            for line in conv.lines:
                overlap = min(turn.end, line.end) - max(turn.start, line.start)
                if overlap > 0:
                    talk[line.speaker] = talk.get(line.speaker, 0.0) + overlap
        seconds = sum(t.end - t.start for t in turns)
        owner = max(talk, key=talk.__getitem__) if talk else "?"
        out[label] = (owner, VoicePrint(vector=vector, seconds=seconds))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=100.0)
    args = parser.parse_args()
    diarizer = CpuDiarizer()
    diarizer.load()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        root = Path(work)
        source = detected(make_conversation(root / "enroll", speakers=4, seconds=args.seconds,
                                            seed=41), diarizer)
        people = [Known(name, name, unit(p.vector)) for owner, p in source.values()
                  for spk, name in ENROLLED.items() if owner == spk]
        counts = {"speakers": 0, "right": 0, "wrong": 0, "enrolled, unnamed": 0,
                  "others named": 0}
        scores: dict[str, list[float]] = {"right": []}
        for seed in range(100, 100 + args.recordings):
            conv = make_conversation(root / f"t{seed}", speakers=4, seconds=args.seconds, seed=seed)
            found = detected(conv, diarizer)
            names = assign({k: p for k, (_, p) in found.items()}, people, GE2E_THRESHOLD,
                           MIN_MATCH_S)
            for label, (owner, _) in found.items():
                counts["speakers"] += 1
                got = names[label].known.name if label in names else None
                want = ENROLLED.get(owner)
                if got and got == want:
                    counts["right"] += 1
                    scores["right"].append(names[label].score)
                elif got:
                    counts["wrong" if want else "others named"] += 1
                elif want:
                    counts["enrolled, unnamed"] += 1
            for kind, voices in LOOKALIKES.items():
                look = make_conversation(root / f"l{seed}-{kind[:4]}", speakers=2,
                                         seconds=args.seconds / 2, seed=seed, voices=voices)
                prints = {k: p for k, (_, p) in detected(look, diarizer).items()}
                counts[f"{kind} look-alikes"] = counts.get(f"{kind} look-alikes", 0) + len(prints)
                counts[f"{kind}, named"] = counts.get(f"{kind}, named", 0) + len(
                    assign(prints, people, GE2E_THRESHOLD, MIN_MATCH_S))
                scores.setdefault(f"{kind} look-alike, best", []).extend(
                    max(float(unit(p.vector) @ k.vector) for k in people) for p in prints.values())
    print(f"{args.recordings} recordings of the 4 voices, and of each pair of look-alikes; "
          f"{args.seconds:g} s, threshold {GE2E_THRESHOLD}, {time.perf_counter() - started:.0f} s")
    for what, n in counts.items():
        print(f"  {what:20s} {n}")
    for what, values in scores.items():
        if values:
            print(f"  scores, {what}: min {min(values):.4f}  max {max(values):.4f}")


if __name__ == "__main__":
    main()
