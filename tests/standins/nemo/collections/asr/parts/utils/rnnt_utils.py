"""Hypothesis, as in nemo/collections/asr/parts/utils/rnnt_utils.py (the fields a
transcribe() caller reads). `timestamp` is a list (or tensor) until timestamps are
computed, then a dict {'word': [...], 'segment': [...], 'char': [...]}."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Hypothesis:
    score: float
    y_sequence: Any
    text: str | None = None
    dec_out: list | None = None
    dec_state: Any = None
    timestamp: list | dict = field(default_factory=list)
    alignments: Any = None
    length: int = 0
    langs: Any = None
