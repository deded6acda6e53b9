"""What every speech engine provides, and the results it returns.

Audio is always 16 kHz mono float32 in [-1, 1] (a 1-D numpy array): decoding and
resampling happen once, in audio_io.py, before an engine sees it. Times are seconds
from the start of that array.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

SAMPLE_RATE = 16000
T = TypeVar("T")


@dataclass
class Word:
    word: str  # as spoken, punctuation attached ("Hello," "world.")
    start: float
    end: float


@dataclass
class TextSegment:
    start: float
    end: float
    text: str


@dataclass
class Transcript:
    text: str
    words: list[Word]
    segments: list[TextSegment]
    language: str = "en"


@dataclass
class Turn:
    start: float
    end: float
    speaker: str  # "Speaker_0", "Speaker_1", ... numbered by first appearance
    confidence: float  # 0..1


@dataclass
class Diarization:
    turns: list[Turn]
    # one voice embedding per speaker label, L2-normalised; filled by diarize_chunk
    fingerprints: dict[str, list[float]] = field(default_factory=dict)

    @property
    def speakers(self) -> list[str]:
        return sorted({t.speaker for t in self.turns}, key=lambda s: int(s.split("_")[1]))


class EngineError(Exception):
    """An engine failed; `stage` says where (load, transcribe, diarize, fingerprint)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage} failed: {message}")
        self.stage = stage
        self.message = message


def as_stage(stage: str, work: Callable[[], T]) -> T:
    """Run work; any failure that is not already an EngineError becomes one for `stage`."""
    try:
        return work()
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(stage, f"{type(exc).__name__}: {exc}") from exc


class Engine(Protocol):
    name: str  # "cpu" or "nemo"
    asr_model: str
    diarizer_model: str
    embedding_model: str
    asr_loaded: bool
    diarizer_loaded: bool

    def load(self) -> None:
        """Load every model once (blocking; the server runs it in a thread at startup)."""

    def transcribe(self, audio: np.ndarray, language: str | None = None) -> Transcript:
        """Words with start/end times, and sentence-like segments."""

    def diarize(self, audio: np.ndarray, max_speakers: int | None = None) -> Diarization:
        """Speaker turns, labelled Speaker_0.. in order of first appearance."""

    def fingerprints(self, audio: np.ndarray, diarization: Diarization) -> dict[str, list[float]]:
        """One L2-normalised voice embedding per speaker of the diarization."""


def relabel_by_first_appearance(turns: list[Turn]) -> list[Turn]:
    """Rename speakers Speaker_0, Speaker_1... in the order they first speak."""
    order: dict[str, str] = {}
    for turn in sorted(turns, key=lambda t: t.start):
        order.setdefault(turn.speaker, f"Speaker_{len(order)}")
    return sorted((Turn(t.start, t.end, order[t.speaker], t.confidence) for t in turns),
                  key=lambda t: t.start)


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: its affinity (docker --cpuset-cpus), capped by its
    cgroup's CPU quota (docker --cpus), at least 1. os.cpu_count() counts the host's:
    an engine sized by it in a one-CPU container runs threads that wait on each other."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    quota = cpu_quota(cgroup)
    return max(1, min(count, math.ceil(quota)) if quota else count)


def cpu_quota(cgroup: Path) -> float | None:
    """The cgroup's CPU quota in CPUs (v2 cpu.max, v1 cpu.cfs_quota_us); None: none."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1") or not period.isdigit() or int(period) == 0:
        return None
    return int(quota) / int(period)
