"""The CPU diarizer's speaker encoders and the figures each one's embeddings need
(cpu_diarize.py uses them; CPU_SPEAKER_MODEL picks one, CAM++ by default)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine_base import EngineError


class Encoder(Protocol):
    """Prints of sample ranges; an encoder of a profile with utterance_prints also has
    embed(audio) -> one print of the whole."""

    def embed_windows(self, audio: np.ndarray, windows: list[tuple[int, int]]) -> np.ndarray: ...


@dataclass(frozen=True)
class Profile:
    """An encoder and the figures its embeddings need. Two clusters are different
    voices when their centroids (smoothed embeddings) are more than
    distinct_distance * (1 + distinct_small / windows in the smaller one) apart in
    cosine distance."""

    name: str
    embedding_model: str  # what /health reports; prints of different models never compare
    load: Callable[[], Encoder]
    distinct_distance: float
    distinct_small: float
    fill_gap_s: float  # VAD silences shorter than this are not a region boundary
    hop_s: float  # between the starts of 1.5 s windows
    utterance_prints: bool  # prints from one embedding of a speaker's speech

    @property
    def diarizer_model(self) -> str:
        return f"webrtcvad + {self.embedding_model} + spectral clustering"


def _campplus() -> Encoder:
    from campplus import CamppEncoder
    return CamppEncoder.load()


def _ge2e() -> Encoder:
    from speaker_encoder import SpeakerEncoder
    return SpeakerEncoder.load()


PROFILES = {
    # Chosen on real people (bench/real_diarization.py: 20 conversations of 3-4 people
    # assembled from different recordings, and the real multi-speaker clips), by a grid:
    # 0.3 with a small-cluster term of 1 counted all 20 right and split none of the clean
    # clips; 0.2 split people (14 of 20 right), 0.5 merged them (all 4 real clips
    # wrong). With fill_gap_s 0.15, speakers of short phrases (spoken digits) never got
    # a window long enough to cluster: 3 of 20 right. Held out: 30 of 30 with 27 unseen
    # people (README).
    "campplus": Profile("campplus", "3D-Speaker CAM++ (onnx)", _campplus,
                        distinct_distance=0.3, distinct_small=1.0, fill_gap_s=0.4,
                        hop_s=0.75, utterance_prints=True),
    # Tuned on 140 espeak conversations (35 s and 150 s, 1-4 voices): the closest voices
    # (en-us+m3 / en-gb+m1) sat 0.074-0.11 apart, one voice split in two by what was
    # said ~0.09 with 16 windows and ~0.15 with 3. On real people it merges voices.
    "ge2e": Profile("ge2e", "resemblyzer GE2E (numpy)", _ge2e, distinct_distance=0.062,
                    distinct_small=5.0, fill_gap_s=0.15, hop_s=0.75,
                    utterance_prints=False),
}


def profile_named(name: str | None = None) -> Profile:
    """CPU_SPEAKER_MODEL's profile (campplus unless set)."""
    name = (name or os.environ.get("CPU_SPEAKER_MODEL") or "campplus").strip().lower()
    if name not in PROFILES:
        raise EngineError("load", f"CPU_SPEAKER_MODEL={name!r} is not one of "
                                  f"{', '.join(sorted(PROFILES))}")
    return PROFILES[name]
