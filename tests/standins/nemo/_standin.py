"""What the stand-in models "hear", and a log of how they were called.

A test resets `state`, scripts it, runs the engine, then reads `state.calls`:

- `heard`: words Parakeet hears, as (word, start_offset, end_offset) in 80 ms encoder
  frames. transcribe() returns those that end inside the clip it was given, shaped
  like NeMo's Hypothesis; `convert_offsets=False` leaves out 'start'/'end' seconds
  (as releases before process_timestamp_outputs did). `asr_output` replaces the
  whole answer with a scripted one (e.g. the old (best, all) tuple).
- `full_attention_limit_s`: longer input under full attention fails like a CUDA OOM.
- `diar_probs`: Sortformer's [frames, speakers] activity (80 ms frames); the segment
  lines are derived from it with a 0.5 threshold unless `diar_lines` scripts them.
- `fail`: call name -> exception to raise ("transcribe", "diarize", "infer_segment",
  "ASRModel.from_pretrained", ...).
- `delay_s`: sleep inside each model call, to expose missing locking (`max_active`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class State:
    heard: list[tuple[str, int, int]] = field(default_factory=list)
    convert_offsets: bool = True
    asr_output: Any = None
    full_attention_limit_s: float | None = None
    diar_probs: Any = None
    diar_lines: list[str] | None = None
    fail: dict[str, BaseException] = field(default_factory=dict)
    delay_s: float = 0.0
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls_to(self, name: str) -> list[dict[str, Any]]:
        return [args for call, args in self.calls if call == name]


state = State()


def reset() -> State:
    """Forget scripts and calls (in place, so every holder of `state` sees it)."""
    state.__dict__.update(State().__dict__)
    return state


def record(name: str, **args: Any) -> None:
    with state.lock:
        state.calls.append((name, args))


def maybe_fail(name: str) -> None:
    error = state.fail.get(name)
    if error is not None:
        raise error


@contextmanager
def busy(name: str) -> Iterator[None]:
    """Count overlapping model calls; fail or dawdle as scripted."""
    with state.lock:
        state.active += 1
        state.max_active = max(state.max_active, state.active)
    try:
        if state.delay_s:
            time.sleep(state.delay_s)
        maybe_fail(name)
        yield
    finally:
        with state.lock:
            state.active -= 1


def load_script(path: str) -> None:
    """Script `heard` and `diar_probs` from a JSON file, for a stand-in run in a server
    process that a test cannot reach into (NEMO_STANDIN_SCRIPT names the file)."""
    import json

    with open(path, encoding="utf-8") as f:
        script = json.load(f)
    state.heard = [tuple(w) for w in script.get("heard", [])]
    state.diar_probs = script.get("diar_probs")


if os.environ.get("NEMO_STANDIN_SCRIPT"):
    load_script(os.environ["NEMO_STANDIN_SCRIPT"])
