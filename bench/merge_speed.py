"""Merging words with speaker turns: time for a long meeting (a benchmark).

50,000 words (about 5 hours of speech) and alternating 4-speaker turns; prints the
best of 5 runs. Goal: <= 100 ms.

    python bench/merge_speed.py --words 50000
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "image"))

from app.audio.merge import SpeakerTurn, TimedWord, merge  # noqa: E402


def meeting(words: int, seed: int = 1) -> tuple[list[TimedWord], list[SpeakerTurn]]:
    rng = random.Random(seed)
    out_words, turns, t = [], [], 0.0
    while len(out_words) < words:
        speaker, start = f"Speaker_{rng.randrange(4)}", t
        for _ in range(rng.randint(3, 40)):
            length = rng.uniform(0.15, 0.6)
            out_words.append(TimedWord("word,", t, t + length))
            t += length + rng.uniform(0.02, 0.3)
        turns.append(SpeakerTurn(start - 0.05, t, speaker))
        t += rng.uniform(0.2, 2.0)
    return out_words[:words], turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, default=50_000)
    args = parser.parse_args()
    words, turns = meeting(args.words)
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        result = merge(words, turns)
        text = sum(len(b.text) for b in result)  # joining the text is part of the work
        runs.append((time.perf_counter() - started) * 1000)
    print(f"{len(words)} words, {len(turns)} turns -> {len(result)} blocks "
          f"({text} chars): best {min(runs):.1f} ms, median {sorted(runs)[2]:.1f} ms "
          "(goal <= 100 ms)")


if __name__ == "__main__":
    main()
