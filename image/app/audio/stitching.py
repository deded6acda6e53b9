"""Long recordings: chunks with overlaps, and one speaker identity across them.

Each chunk is diarized on its own, so its labels are local (chunk 2's Speaker_0 may
be chunk 1's Speaker_2). Adjacent chunks share an overlap in which both heard the
same voices: the Hungarian assignment on co-activity there (seconds both labels were
active together) maps local labels to global ones, and the chunks' voice
fingerprints veto a match between clearly different voices. A label left unmatched
is then compared with every global speaker before a new one is made: one silent in
the overlap (say, back after a silent chunk) is recognised by fingerprint alone
(same_voice), and one whose voice is a global speaker already matched in this chunk
is that speaker, split in two by the chunk's diarizer (split_voice: a stricter bar,
since the chunk's diarizer did hear two voices there). The cosine figures are the
embedding model's (speakers/thresholds.py). Words and turns in an overlap are cut at
its midpoint, so nothing is duplicated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .merge import SpeakerTurn, TimedWord


def plan_chunks(duration: float, max_s: float = 600.0,
                overlap_s: float = 25.0) -> list[tuple[float, float]]:
    """(start, end) spans of at most max_s covering [0, duration], adjacent ones
    sharing overlap_s; one span when the whole fits."""
    if duration <= max_s:
        return [(0.0, duration)]
    step = max_s - overlap_s
    spans, start = [], 0.0
    while start + max_s < duration:
        spans.append((start, start + max_s))
        start += step
    spans.append((start, duration))
    return spans


def cuts(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Per span, the part of the recording it answers for: adjacent spans hand over
    in the middle of their overlap, so every instant belongs to exactly one."""
    edges = [(later[0] + earlier[1]) / 2 for earlier, later in zip(spans, spans[1:])]
    return list(zip([float("-inf"), *edges], [*edges, float("inf")]))


@dataclass
class ChunkResult:
    """One chunk's answers, in the chunk's own times and labels."""

    start: float  # where the chunk begins in the recording
    end: float
    turns: list[SpeakerTurn]
    words: list[TimedWord] = field(default_factory=list)
    fingerprints: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class Stitched:
    turns: list[SpeakerTurn]
    words: list[TimedWord]
    speakers: list[str]
    prints: dict[str, list[float]] = field(default_factory=dict)  # mean, unit length


class _Voices:
    """Global speakers and the running mean of their fingerprints."""

    def __init__(self) -> None:
        self.prints: dict[str, np.ndarray] = {}
        self.names: list[str] = []

    def new(self) -> str:
        name = f"Speaker_{len(self.names)}"
        self.names.append(name)
        return name

    def add(self, name: str, vector: Sequence[float] | None) -> None:
        if vector is not None:
            self.prints[name] = self.prints.get(name, 0) + unit(vector)

    def untaken(self, taken: set[str]) -> list[str]:
        return [name for name in self.names if name not in taken]

    def similarity(self, name: str, vector: Sequence[float] | None) -> float | None:
        if vector is None or name not in self.prints:
            return None
        return float(unit(self.prints[name]) @ unit(vector))


def stitch(chunks: Sequence[ChunkResult], *, min_coactive_s: float = 1.0,
           same_voice: float = 0.75, different_voice: float = 0.4,
           split_voice: float = 0.9) -> Stitched:
    voices = _Voices()
    turns: list[SpeakerTurn] = []
    words: list[TimedWord] = []
    previous: list[SpeakerTurn] = []
    bounds = cuts([(c.start, c.end) for c in chunks])
    for chunk, (lo, hi) in zip(chunks, bounds):
        local = _absolute(chunk)
        names = _match(previous, local, chunk, voices, min_coactive_s,
                       (same_voice, different_voice, split_voice))
        for label, name in names.items():
            voices.add(name, chunk.fingerprints.get(label))
        mapped = [SpeakerTurn(t.start, t.end, names[t.speaker]) for t in local]
        turns += _clip(mapped, lo, hi)
        words += [TimedWord(w.word, w.start + chunk.start, w.end + chunk.start)
                  for w in chunk.words if lo <= w.start + chunk.start < hi]
        previous = mapped
    prints = {name: unit(total).tolist() for name, total in voices.prints.items()}
    return Stitched(_join(turns), words, voices.names, prints)


def _match(previous: list[SpeakerTurn], local: list[SpeakerTurn], chunk: ChunkResult,
           voices: _Voices, min_coactive_s: float,
           figures: tuple[float, float, float]) -> dict[str, str]:
    same_voice, different_voice, split_voice = figures
    labels = sorted({t.speaker for t in local}, key=lambda s: _first(local, s))
    globals_ = sorted({t.speaker for t in previous})
    names: dict[str, str] = {}
    if labels and globals_:
        together = _coactivity(previous, local, globals_, labels, chunk.start)
        for g, l in zip(*linear_sum_assignment(together, maximize=True)):
            similar = voices.similarity(globals_[g], chunk.fingerprints.get(labels[l]))
            if together[g, l] >= min_coactive_s and (similar is None
                                                     or similar >= different_voice):
                names[labels[l]] = globals_[g]
    for label in labels:
        if label not in names:
            taken = set(names.values())
            names[label] = (_returning(label, chunk, voices, voices.untaken(taken), same_voice)
                            or _returning(label, chunk, voices, taken, split_voice)
                            or voices.new())
    return names


def _coactivity(previous: list[SpeakerTurn], local: list[SpeakerTurn],
                globals_: list[str], labels: list[str], window_start: float) -> np.ndarray:
    """Seconds each (global, local) pair was active together inside the overlap."""
    together = np.zeros((len(globals_), len(labels)))
    for a in previous:
        for b in local:
            start = max(a.start, b.start, window_start)
            overlap = min(a.end, b.end) - start
            if overlap > 0:
                together[globals_.index(a.speaker), labels.index(b.speaker)] += overlap
    return together


def _returning(label: str, chunk: ChunkResult, voices: _Voices, candidates: Iterable[str],
               at_least: float) -> str | None:
    """Of the candidate global speakers, the one whose voice this label's fingerprint
    matches best, if it scores at_least."""
    vector = chunk.fingerprints.get(label)
    scored = [(voices.similarity(name, vector) or -1.0, name) for name in candidates]
    best = max(scored, default=(-1.0, None))
    return best[1] if best[0] >= at_least else None


def _absolute(chunk: ChunkResult) -> list[SpeakerTurn]:
    return sorted((SpeakerTurn(t.start + chunk.start, t.end + chunk.start, t.speaker)
                   for t in chunk.turns), key=lambda t: t.start)


def _clip(turns: list[SpeakerTurn], lo: float, hi: float) -> list[SpeakerTurn]:
    return [SpeakerTurn(max(t.start, lo), min(t.end, hi), t.speaker)
            for t in turns if min(t.end, hi) > max(t.start, lo)]


def _join(turns: list[SpeakerTurn], gap_s: float = 0.05) -> list[SpeakerTurn]:
    """Merge a speaker's turns that touch across a cut."""
    out: list[SpeakerTurn] = []
    latest: dict[str, int] = {}  # speaker -> index of their latest turn in out
    for turn in sorted(turns, key=lambda t: (t.start, t.end)):
        i = latest.get(turn.speaker)
        if i is not None and turn.start - out[i].end <= gap_s:
            out[i] = SpeakerTurn(out[i].start, max(out[i].end, turn.end), turn.speaker)
        else:
            latest[turn.speaker] = len(out)
            out.append(turn)
    return out


def _first(turns: list[SpeakerTurn], label: str) -> float:
    return min(t.start for t in turns if t.speaker == label)


def unit(vector: Sequence[float] | np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=float)
    norm = np.linalg.norm(v)
    return v / norm if norm else v
