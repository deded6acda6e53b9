"""Sortformer's answer as speaker turns, and the voice clips TitaNet fingerprints.

`diarize(include_tensor_outputs=True)` returns ([["begin end speaker_N", ...]],
[Tensor[1, frames, speakers]]): 80 ms frames; NeMo 3.0 writes the lines "%.3f %.3f
speaker_N" grouped by speaker, not in time order (sortformer_diar_models.py,
_diarize_output_processing).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine_base import SAMPLE_RATE, EngineError, Turn

def _to_numpy(tensor: Any) -> np.ndarray:
    """A torch tensor (any device or dtype) or array as a float32 numpy array."""
    for step in ("detach", "cpu", "float"):
        if hasattr(tensor, step):
            tensor = getattr(tensor, step)()
    if hasattr(tensor, "numpy"):
        tensor = tensor.numpy()
    return np.asarray(tensor, dtype=np.float32)


def parse_segment_line(line: str) -> tuple[float, float, int] | None:
    """Sortformer's "begin end speaker_N" -> (begin, end, N); None if malformed."""
    parts = line.replace(",", " ").split()
    if len(parts) < 3 or "_" not in parts[2]:
        return None
    try:
        return float(parts[0]), float(parts[1]), int(parts[2].rsplit("_", 1)[1])
    except ValueError:
        return None


def frame_probs(probs: Any) -> np.ndarray | None:
    """Speaker activity [frames, speakers] from diarize()'s [1, frames, speakers] tensor."""
    if probs is None:
        return None
    array = _to_numpy(probs)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    return array if array.ndim == 2 else None


def _frames(start: float, end: float, frame_s: float, total: int) -> slice:
    first = min(max(int(math.floor(start / frame_s + 1e-6)), 0), total)
    last = min(max(int(math.ceil(end / frame_s - 1e-6)), first + 1), total)
    return slice(first, last)


def mean_prob(probs: np.ndarray | None, speaker: int, start: float, end: float,
              frame_s: float) -> float:
    """Mean activity of `speaker` over the 80 ms frames the span touches (1.0 if unknown)."""
    if probs is None or not 0 <= speaker < probs.shape[1]:
        return 1.0  # the model asserted the turn but gave no score for it
    window = probs[_frames(start, end, frame_s, probs.shape[0]), speaker]
    return float(np.clip(window.mean(), 0.0, 1.0)) if window.size else 0.0


def raw_turns(lines: list[str], probs: np.ndarray | None, frame_s: float,
              duration_s: float) -> list[Turn]:
    """Turns labelled by Sortformer's own speaker index (as str), before any relabelling;
    clamped to the clip (the last 80 ms frame may end past it)."""
    turns = []
    for line in lines:
        parsed = parse_segment_line(str(line))
        if parsed is None:
            continue
        start, end, spk = parsed[0], min(parsed[1], duration_s), parsed[2]
        if end <= start:
            continue
        turns.append(Turn(start, end, str(spk), mean_prob(probs, spk, start, end, frame_s)))
    return sorted(turns, key=lambda t: t.start)


def _strength(turns: list[Turn], probs: np.ndarray | None, speaker: str,
              frame_s: float) -> float:
    """How much a speaker talks: summed activity probability (turn time if no probs)."""
    own = [t for t in turns if t.speaker == speaker]
    if probs is None or not speaker.isdigit() or int(speaker) >= probs.shape[1]:
        return sum(t.end - t.start for t in own)
    return float(sum(probs[_frames(t.start, t.end, frame_s, probs.shape[0]),
                           int(speaker)].sum() for t in own))


def cap_speakers(turns: list[Turn], max_speakers: int | None, probs: np.ndarray | None,
                 frame_s: float) -> list[Turn]:
    """Keep the `max_speakers` strongest speakers; merge each turn of a dropped one into
    the kept speaker most active over that turn (by frame probability), so no speech
    is lost. Without probabilities the dropped speakers' turns are dropped."""
    speakers = {t.speaker for t in turns}
    if max_speakers is None or len(speakers) <= max(1, max_speakers):
        return turns
    ranked = sorted(speakers, key=lambda s: (-_strength(turns, probs, s, frame_s), s))
    kept = ranked[:max(1, max_speakers)]
    merged = []
    for turn in turns:
        if turn.speaker in kept:
            merged.append(turn)
        elif probs is not None:
            merged.append(_reassign(turn, kept, probs, frame_s))
    return merge_touching(merged)


def _reassign(turn: Turn, kept: list[str], probs: np.ndarray, frame_s: float) -> Turn:
    scores = {s: mean_prob(probs, int(s), turn.start, turn.end, frame_s) for s in kept}
    best = max(kept, key=lambda s: scores[s])
    return Turn(turn.start, turn.end, best, scores[best])


def merge_touching(turns: list[Turn]) -> list[Turn]:
    """Join overlapping turns of one speaker (merging can create them); duration-weighted
    confidence."""
    out: list[Turn] = []
    for turn in sorted(turns, key=lambda t: (t.speaker, t.start)):
        last = out[-1] if out else None
        if last and last.speaker == turn.speaker and turn.start <= last.end:
            a, b = last.end - last.start, turn.end - turn.start
            conf = (last.confidence * a + turn.confidence * b) / max(a + b, 1e-9)
            out[-1] = Turn(last.start, max(last.end, turn.end), last.speaker, conf)
        else:
            out.append(turn)
    return sorted(out, key=lambda t: t.start)


# ---------------------------------------------------------------- fingerprints


def speaker_audio(audio: np.ndarray, turns: list[Turn], max_s: float) -> np.ndarray:
    """A speaker's longest turns, up to max_s in all, concatenated in time order."""
    chosen, total = [], 0.0
    for turn in sorted(turns, key=lambda t: (-(t.end - t.start), t.start)):
        if total >= max_s:
            break
        take = min(turn.end - turn.start, max_s - total)
        chosen.append((turn.start, turn.start + take))
        total += take
    pieces = [audio[int(round(a * SAMPLE_RATE)):int(round(b * SAMPLE_RATE))]
              for a, b in sorted(chosen)]
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def l2_normalised(embedding: Any) -> list[float]:
    vector = _to_numpy(embedding).reshape(-1).astype(np.float64)
    norm = float(np.linalg.norm(vector))
    if not vector.size or not math.isfinite(norm) or norm == 0.0:
        raise EngineError("fingerprint", "TitaNet returned an empty or zero embedding")
    return [float(x) for x in vector / norm]

