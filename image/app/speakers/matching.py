"""Detected speakers against the voice library: cosine scores, one name per speaker.

Names are given by an assignment (the Hungarian method on the score matrix), not
greedily: two detected speakers never get the same name, and when two of them
resemble one enrolled voice, the closer one gets it. A pair scoring under the
threshold is never matched, whatever the assignment would gain from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..audio.pipeline import VoicePrint
from ..audio.stitching import unit

_FORBIDDEN = -1e3  # a score below the threshold: the assignment avoids it above all


@dataclass(frozen=True)
class Known:
    """An enrolled person's mean print for one model."""

    speaker_id: str
    name: str
    vector: np.ndarray  # unit length


@dataclass(frozen=True)
class Match:
    known: Known
    score: float


def assign(detected: Mapping[str, VoicePrint], known: Sequence[Known], threshold: float,
           min_seconds: float) -> dict[str, Match]:
    """label -> Match for the detected speakers that match an enrolled voice."""
    labels = [label for label, p in detected.items()
              if p.seconds >= min_seconds and len(p.vector) > 0]
    usable = [k for k in known if labels and k.vector.shape == (len(detected[labels[0]].vector),)]
    if not labels or not usable:
        return {}
    scores = np.array([[float(unit(detected[label].vector) @ k.vector) for k in usable]
                       for label in labels])
    allowed = np.where(scores >= threshold, scores, _FORBIDDEN)
    rows, cols = linear_sum_assignment(allowed, maximize=True)
    return {labels[r]: Match(usable[c], round(float(scores[r, c]), 4))
            for r, c in zip(rows, cols) if scores[r, c] >= threshold}
