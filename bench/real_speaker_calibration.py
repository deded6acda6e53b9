"""Known-speaker thresholds on real people (a benchmark; prints figures).

Every print is made as the speech server makes it: the CPU diarizer runs on the
recording and the print of its main speaker is kept. Recordings are the corpus's
(tests/data/real: clips of one person joined) plus, with --extra DIR, one per file of
DIR/<person>/*.wav (different sources per person: the tortoise-tts voices, never
committed). Per embedding model (CPU_SPEAKER_MODEL: campplus, ge2e):

1. verification: same-person pairs across different recordings, different-person
   pairs; score ranges, EER; people split in two seeded halves, the threshold chosen
   on one (the lowest that accepts no impostor pair there, plus MARGIN) and the
   false-reject / false-accept rates at it on the other, held-out half;
2. identification: half the people enrolled from their first recording (a second
   recording as a second sample where they have three or more), then conversations
   of 3-4 people (enrolled and not) assembled from other recordings, diarized, and
   named by app.speakers.matching at the shipped figures: named right / wrong /
   suggested / unnamed, and strangers named.

    python bench/real_speaker_calibration.py --model campplus [--extra DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "image"), str(REPO / "image" / "parakeet_patches"),
                str(REPO / "bench")]

from app.audio.merge import talk_seconds  # noqa: E402
from app.audio.pipeline import VoicePrint  # noqa: E402
from app.speakers.matching import Known, assign  # noqa: E402
from app.speakers.thresholds import MIN_MATCH_S, scale_for  # noqa: E402
from cpu_diarize import CpuDiarizer  # noqa: E402
from real_diarization import people_pool  # noqa: E402  (bench/real_diarization.py)
from testaudio import real  # noqa: E402
from testaudio.evaluate import der_breakdown  # noqa: E402

MARGIN = 0.02


def half(person: str) -> int:
    return zlib.crc32(person.encode()) % 2


def eer(same: np.ndarray, diff: np.ndarray) -> tuple[float, float]:
    """(EER, the threshold at it): where false rejects and false accepts meet."""
    gaps = [(abs(np.mean(same < t) - np.mean(diff >= t)), t)
            for t in np.unique(np.concatenate([same, diff]))]
    at = min(gaps)[1]
    return float((np.mean(same < at) + np.mean(diff >= at)) / 2), float(at)


def verification(prints: dict[str, list[np.ndarray]]) -> float:
    pairs = {0: ([], []), 1: ([], [])}  # half -> (same, different)
    people = sorted(prints)
    for p in people:
        for a, b in itertools.combinations(prints[p], 2):
            pairs[half(p)][0].append(float(a @ b))
    for p, q in itertools.combinations(people, 2):
        if half(p) == half(q):
            pairs[half(p)][1].extend(float(a @ b) for a in prints[p] for b in prints[q])
    same = np.array(pairs[0][0] + pairs[1][0])
    diff = np.array(pairs[0][1] + pairs[1][1])
    rate, at = eer(same, diff)
    print(f"  same person, other recording: {len(same)} pairs, {same.min():.3f}-{same.max():.3f}"
          f" (median {np.median(same):.3f}); different people: {len(diff)} pairs, "
          f"{diff.min():.3f}-{diff.max():.3f} (median {np.median(diff):.3f})")
    print(f"  EER {rate:.1%} at {at:.3f}")
    chosen = float(np.max(pairs[0][1])) + MARGIN
    held_same, held_diff = np.array(pairs[1][0]), np.array(pairs[1][1])
    print(f"  threshold from half A (max impostor + {MARGIN}): {chosen:.3f}; on held-out half B: "
          f"false rejects {np.sum(held_same < chosen)}/{len(held_same)}, false accepts "
          f"{np.sum(held_diff >= chosen)}/{len(held_diff)}")
    return chosen


def identification(diarizer: CpuDiarizer, pool: dict[str, list[real.Recording]],
                   prints: dict[str, list[np.ndarray | None]], tmp: Path, conversations: int,
                   thresholds: list[float]) -> None:
    scale = scale_for(diarizer.profile.embedding_model)
    several = sorted(p for p, recs in pool.items() if len(recs) >= 2)
    rng = random.Random(5)
    enrolled = {p for p in several if rng.random() < 0.5}
    library = [Known(p, p, np.stack(prints[p][:1 + (len(pool[p]) >= 3)]))
               for p in sorted(enrolled)]
    heard, counts, ders = [], 0, []
    for index in range(conversations):
        chosen = rng.sample(sorted(pool), 3 + index % 2)
        recs = [rng.choice(pool[p][1 + (len(pool[p]) >= 3):] or pool[p]) if p in enrolled
                else rng.choice(pool[p]) for p in chosen]
        wav = tmp / f"ident-{index}.wav"
        turns = real.conversation(recs, wav, seed=100 + index)
        audio = real.read(wav)
        found = diarizer.diarize(audio)
        prints = diarizer.fingerprints(audio, found)
        parts = der_breakdown(turns, [(t.start, t.end, t.speaker) for t in found.turns], 0.25)
        ders.append(parts.der)
        counts += len(found.speakers) == len(chosen)
        seconds = talk_seconds(found.turns)
        heard.append(({label: VoicePrint(vector=v, seconds=seconds.get(label, 0))
                       for label, v in prints.items()}, parts.mapping))
    print(f"  {conversations} conversations of 3-4 people, {len(enrolled)} of {len(pool)} "
          f"people enrolled; speaker count right {counts}/{conversations}, mean DER "
          f"{np.mean(ders):.1%}, worst {np.max(ders):.1%}")
    band = scale.match - scale.suggest
    for threshold in thresholds or [scale.match]:
        print(f"  at {threshold:.3f} (suggestions from {threshold - band:.3f}): "
              + naming_rates(heard, library, enrolled, threshold, threshold - band))


def naming_rates(heard, library, enrolled: set[str], threshold: float, suggest: float) -> str:
    right = wrong = suggested = unnamed = short = strangers = stranger_total = 0
    for detected, truth in heard:
        verdict = assign(detected, library, threshold, MIN_MATCH_S, suggest)
        for label in detected:
            person, name = truth.get(label), verdict.named.get(label)
            if person in enrolled and detected[label].seconds < MIN_MATCH_S:
                short += 1  # never named by design: too little speech
            elif person in enrolled:
                right += name is not None and name.known.name == person
                wrong += name is not None and name.known.name != person
                suggested += name is None and label in verdict.suggested
                unnamed += name is None and label not in verdict.suggested
            elif person is not None:
                stranger_total += 1
                strangers += name is not None
    heard_enrolled = right + wrong + suggested + unnamed
    return (f"enrolled people named right {right}/{heard_enrolled}, wrong {wrong}, suggested "
            f"{suggested}, unnamed {unnamed} (and {short} under {MIN_MATCH_S:g} s of speech); "
            f"strangers named {strangers}/{stranger_total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="campplus", choices=["campplus", "ge2e"])
    parser.add_argument("--extra", type=Path)
    parser.add_argument("--conversations", type=int, default=30)
    parser.add_argument("--thresholds", type=float, nargs="*", default=[],
                        help="naming rates at these thresholds too (default: the shipped one)")
    args = parser.parse_args()
    os.environ["CPU_SPEAKER_MODEL"] = args.model
    diarizer = CpuDiarizer()
    diarizer.load()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        pool = people_pool(args.extra, Path(tmp))
        prints = {p: [real.main_print(diarizer, r.audio()) for r in recs]
                  for p, recs in pool.items()}
        print(f"{args.model} ({diarizer.profile.embedding_model}): {len(pool)} people, "
              f"{sum(v is not None for vs in prints.values() for v in vs)} recordings")
        verification({p: [v for v in vs if v is not None] for p, vs in prints.items()})
        identification(diarizer, pool, prints, Path(tmp), args.conversations, args.thresholds)
    print(f"  {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
