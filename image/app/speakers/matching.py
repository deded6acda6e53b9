"""Detected speakers against the voice library: scores, names and suggestions.

A person is scored by the best of their samples (each sample is one recording: one
room, one microphone), not by the mean of them, so a person enrolled from a phone
call and from a meeting is recognised in either kind of recording.

The naming rule, chosen on purpose:
- each detected speaker can only be named after the person they resemble most;
- when two detected speakers resemble the same person most, the closer one gets the
  name (the Hungarian assignment settles it) and the other is far more likely that
  person split in two by the diarizer than anyone else: it gets no name, but a
  suggestion of that person with `same_as` naming the speaker who got the name (a
  merge to confirm). It is never given a weaker second-best name instead;
- a best score at or above the threshold names; one in the band under it suggests
  (`suggested`, never the name); lower is nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..audio.pipeline import VoicePrint
from ..audio.stitching import unit

_FORBIDDEN = -1e3  # a pair the assignment may not use


@dataclass(frozen=True)
class Known:
    """An enrolled person's prints of one model, one row per sample (unit length)."""

    speaker_id: str
    name: str
    vectors: np.ndarray  # (samples, dim)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def score(self, vector: np.ndarray) -> float:
        """Cosine with the closest of the person's samples."""
        return float(np.max(self.vectors @ vector))


@dataclass(frozen=True)
class Match:
    known: Known
    score: float
    same_as: str | None = None  # a suggestion because this label got the name


@dataclass
class Verdict:
    named: dict[str, Match] = field(default_factory=dict)
    suggested: dict[str, Match] = field(default_factory=dict)


def assign(detected: Mapping[str, VoicePrint], known: Sequence[Known], threshold: float,
           min_seconds: float, suggest_from: float | None = None) -> Verdict:
    """Names (score >= threshold) and suggestions (suggest_from <= score, or a likely
    split of a named person) for the detected speakers with min_seconds of speech."""
    labels = [label for label, p in detected.items()
              if p.seconds >= min_seconds and len(p.vector) > 0]
    people = [k for k in known if labels and k.dim == len(detected[labels[0]].vector)]
    if not labels or not people:
        return Verdict()
    scores = np.array([[k.score(unit(detected[label].vector)) for k in people]
                       for label in labels])
    best = scores.argmax(axis=1)
    verdict = Verdict(named=_names(labels, people, scores, best, threshold))
    floor = threshold if suggest_from is None else min(suggest_from, threshold)
    holder = {m.known.speaker_id: label for label, m in verdict.named.items()}
    for row, label in enumerate(labels):
        score, person = float(scores[row, best[row]]), people[best[row]]
        if label in verdict.named or score < floor:
            continue
        verdict.suggested[label] = Match(person, _round(score), holder.get(person.speaker_id))
    return verdict


def _names(labels: list[str], people: list[Known], scores: np.ndarray, best: np.ndarray,
           threshold: float) -> dict[str, Match]:
    """The assignment over each speaker's own best person, at or above the threshold."""
    allowed = np.full(scores.shape, _FORBIDDEN)
    rows = np.arange(len(labels))
    passing = scores[rows, best] >= threshold
    allowed[rows[passing], best[passing]] = scores[rows[passing], best[passing]]
    chosen = zip(*linear_sum_assignment(allowed, maximize=True))
    return {labels[r]: Match(people[c], _round(scores[r, c]))
            for r, c in chosen if allowed[r, c] > _FORBIDDEN}


def _round(score: float) -> float:
    return round(float(score), 4)
