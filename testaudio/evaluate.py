"""Score a speech server's output against a generated conversation's ground truth.

Three figures, computed here in plain numpy so the scoring has no heavy dependencies
and no hidden normalisation we cannot see:
- WER on normalised words (lowercase, punctuation stripped);
- DER (missed + false alarm + confusion over reference speech) on a 10 ms grid, with a
  no-score collar around reference boundaries and the best one-to-one speaker mapping;
- word-to-speaker accuracy: of the words recognised correctly, how many were given
  the right speaker, which is what a reader of a speaker-attributed transcript sees.

    python -m testaudio.evaluate CONV_DIR TRANSCRIPTION.json DIARIZATION.json
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from testaudio.generate import Line, load_conversation

Turn = tuple[float, float, str]  # (start, end, speaker), seconds
HypWord = tuple[str, float, float, str | None]  # (word, start, end, speaker)
Pair = tuple[int | None, int | None]  # (reference index, hypothesis index)

FRAME = 0.01  # DER grid step, seconds


# ---------------------------------------------------------------- words

def normalize(text: str) -> list[str]:
    """Words for comparison: lowercase, punctuation gone, hyphens split, apostrophes kept."""
    text = re.sub(r"[^\w\s']", " ", text.lower().replace("-", " "))
    return [w for w in (t.strip("'_") for t in text.split()) if w]


def _distances(ref: Sequence[str], hyp: Sequence[str]) -> np.ndarray:
    """Full Levenshtein table, one numpy row at a time.

    Insertions within a row are a running minimum: d[i, j] = min_k (best[k] + j - k).
    """
    vocab = {w: i for i, w in enumerate(dict.fromkeys([*ref, *hyp]))}
    r = np.array([vocab[w] for w in ref], dtype=np.int64)
    h = np.array([vocab[w] for w in hyp], dtype=np.int64)
    cols = np.arange(len(hyp) + 1, dtype=np.int32)
    d = np.zeros((len(ref) + 1, len(hyp) + 1), dtype=np.int32)  # n*m*4 bytes
    d[0] = cols
    for i in range(1, len(ref) + 1):
        best = np.empty_like(cols)
        best[0] = i
        best[1:] = np.minimum(d[i - 1, 1:] + 1, d[i - 1, :-1] + (h != r[i - 1]))
        d[i] = np.minimum.accumulate(best - cols) + cols
    return d


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[Pair]:
    """A minimal edit-distance alignment; None marks a deletion or insertion side."""
    d = _distances(ref, hyp)
    i, j, pairs = len(ref), len(hyp), []
    while i or j:
        if i and j and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            i, j = i - 1, j - 1
            pairs.append((i, j))
        elif i and d[i, j] == d[i - 1, j] + 1:
            i -= 1
            pairs.append((i, None))
        else:
            j -= 1
            pairs.append((None, j))
    return pairs[::-1]


def wer(ref_text: str, hyp_text: str) -> float:
    """Word error rate (substitutions + deletions + insertions) / reference words.

    An empty reference scores 0.0 against an empty hypothesis and 1.0 otherwise.
    """
    ref, hyp = normalize(ref_text), normalize(hyp_text)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(_distances(ref, hyp)[-1, -1]) / len(ref)


# ---------------------------------------------------------------- DER

@dataclass
class DerBreakdown:
    """DER parts in seconds of scored reference speech, and the mapping used."""

    missed: float
    false_alarm: float
    confusion: float
    total: float
    mapping: dict[str, str] = field(default_factory=dict)  # hypothesis -> reference

    @property
    def der(self) -> float:
        errors = self.missed + self.false_alarm + self.confusion
        if self.total == 0:
            return 0.0 if errors == 0 else float("inf")
        return errors / self.total


def _frame(t: float) -> int:
    return max(0, int(round(t / FRAME)))


def _activity(turns: Sequence[Turn], labels: Sequence[str], frames: int) -> np.ndarray:
    """Boolean frames x speakers matrix: who is talking in each 10 ms frame."""
    column = {label: k for k, label in enumerate(labels)}
    active = np.zeros((frames, len(labels)), dtype=bool)
    for start, end, speaker in turns:
        active[_frame(start):_frame(end), column[speaker]] = True
    return active


def _scored(ref_turns: Sequence[Turn], frames: int, collar: float) -> np.ndarray:
    """Frames outside the collar around every reference turn boundary."""
    mask = np.ones(frames, dtype=bool)
    for start, end, _ in ref_turns:
        for t in (start, end):
            mask[_frame(t - collar):_frame(t + collar)] = False
    return mask


def _best_mapping(overlap: np.ndarray, ref_labels: Sequence[str],
                  hyp_labels: Sequence[str]) -> dict[str, str]:
    """One-to-one hypothesis -> reference mapping maximising overlap (Hungarian)."""
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return {hyp_labels[c]: ref_labels[r] for r, c in zip(rows, cols) if overlap[r, c] > 0}


def der_breakdown(ref_turns: Sequence[Turn], hyp_turns: Sequence[Turn],
                  collar: float = 0.25) -> DerBreakdown:
    """Missed speech, false alarm and confusion on the frame grid (overlaps allowed)."""
    ref_labels = sorted({t[2] for t in ref_turns})
    hyp_labels = sorted({t[2] for t in hyp_turns})
    frames = _frame(max([t[1] for t in [*ref_turns, *hyp_turns]], default=0.0)) + 1
    keep = _scored(ref_turns, frames, collar)
    ref = _activity(ref_turns, ref_labels, frames)[keep]
    hyp = _activity(hyp_turns, hyp_labels, frames)[keep]
    mapping = _best_mapping(ref.T.astype(np.int64) @ hyp.astype(np.int64),
                            ref_labels, hyp_labels)
    correct = np.zeros(len(ref), dtype=np.int64)
    for h, r in mapping.items():
        correct += ref[:, ref_labels.index(r)] & hyp[:, hyp_labels.index(h)]
    n_ref, n_hyp = ref.sum(axis=1), hyp.sum(axis=1)
    return DerBreakdown(
        missed=float(np.maximum(n_ref - n_hyp, 0).sum() * FRAME),
        false_alarm=float(np.maximum(n_hyp - n_ref, 0).sum() * FRAME),
        confusion=float((np.minimum(n_ref, n_hyp) - correct).sum() * FRAME),
        total=float(n_ref.sum() * FRAME), mapping=mapping)


def der(ref_turns: Sequence[Turn], hyp_turns: Sequence[Turn], collar: float = 0.25) -> float:
    """Diarization error rate; see der_breakdown."""
    return der_breakdown(ref_turns, hyp_turns, collar).der


# ---------------------------------------------------------------- words x speakers

def _line_fields(line: Line | Mapping[str, Any]) -> tuple[str, str]:
    if isinstance(line, Mapping):
        return str(line["speaker"]), str(line["text"])
    return line.speaker, line.text


def _matched_speakers(lines: Sequence[Line | Mapping[str, Any]],
                      hyp_words: Sequence[HypWord]) -> list[tuple[str, str | None]]:
    """(reference speaker, hypothesis speaker) for each correctly recognised word."""
    ref: list[tuple[str, str]] = [(w, spk) for spk, text in map(_line_fields, lines)
                                  for w in normalize(text)]
    hyp: list[tuple[str, str | None]] = [(w, spk) for word, _, _, spk in hyp_words
                                         for w in normalize(word)]
    pairs = align([w for w, _ in ref], [w for w, _ in hyp])
    return [(ref[i][1], hyp[j][1]) for i, j in pairs
            if i is not None and j is not None and ref[i][0] == hyp[j][0]]


def word_speaker_accuracy(lines: Sequence[Line | Mapping[str, Any]],
                          hyp_words: Sequence[HypWord],
                          mapping: Mapping[str, str] | None = None) -> float:
    """Share of correctly recognised words whose speaker maps to the true speaker.

    `mapping` (hypothesis -> reference label) defaults to the one-to-one mapping that
    maximises agreement on these words; evaluate() passes the DER mapping instead.
    Returns 0.0 when no word was recognised.
    """
    observed = _matched_speakers(lines, hyp_words)
    if not observed:
        return 0.0
    if mapping is None:
        mapping = _word_mapping(observed)
    return sum(mapping.get(h) == r for r, h in observed if h is not None) / len(observed)


def _word_mapping(observed: Sequence[tuple[str, str | None]]) -> dict[str, str]:
    ref_labels = sorted({r for r, _ in observed})
    hyp_labels = sorted({h for _, h in observed if h is not None})
    counts = np.zeros((len(ref_labels), len(hyp_labels)), dtype=np.int64)
    for r, h in observed:
        if h is not None:
            counts[ref_labels.index(r), hyp_labels.index(h)] += 1
    return _best_mapping(counts, ref_labels, hyp_labels)


# ---------------------------------------------------------------- server responses

def speaker_for(start: float, end: float, turns: Sequence[Turn]) -> str | None:
    """The turn overlapping [start, end] most; else the turn nearest its midpoint."""
    if not turns:
        return None
    overlaps = [min(end, e) - max(start, s) for s, e, _ in turns]
    best = max(range(len(turns)), key=overlaps.__getitem__)
    if overlaps[best] > 0:
        return turns[best][2]
    mid = (start + end) / 2
    return min(turns, key=lambda t: max(t[0] - mid, mid - t[1], 0.0))[2]


def diarization_turns(diarization: Mapping[str, Any]) -> list[Turn]:
    """Turns from a diarization response ({segments: [{start_s, end_s, speaker}]})."""
    return [(float(s.get("start_s", s.get("start"))), float(s.get("end_s", s.get("end"))),
             str(s["speaker"])) for s in diarization.get("segments", [])]


def read_rttm(path: Path) -> list[Turn]:
    turns = []
    for row in Path(path).read_text().splitlines():
        parts = row.split()
        if parts and parts[0] == "SPEAKER":
            start, duration = float(parts[3]), float(parts[4])
            turns.append((start, start + duration, parts[7]))
    return turns


def evaluate(conversation_dir: Path, transcription: Mapping[str, Any],
             diarization: Mapping[str, Any], collar: float = 0.25) -> dict[str, Any]:
    """WER, DER and word-speaker accuracy of one transcription + diarization response."""
    conv = load_conversation(Path(conversation_dir))
    hyp_turns = diarization_turns(diarization)
    breakdown = der_breakdown(read_rttm(conv.rttm), hyp_turns, collar)
    words: list[HypWord] = [(str(w["word"]), float(w["start"]), float(w["end"]),
                             speaker_for(float(w["start"]), float(w["end"]), hyp_turns))
                            for w in transcription.get("words", [])]
    hyp_text = transcription.get("text") or " ".join(w[0] for w in words)
    detected = diarization.get("speakers_detected", len({t[2] for t in hyp_turns}))
    return {
        "wer": wer(" ".join(ln.text for ln in conv.lines), hyp_text),
        "der": breakdown.der,
        "speakers_ref": len(conv.speakers),
        "speakers_detected": len(detected) if isinstance(detected, list) else int(detected),
        "word_speaker_accuracy": word_speaker_accuracy(conv.lines, words, breakdown.mapping),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("conversation_dir", type=Path)
    parser.add_argument("transcription", type=Path, help="verbose_json transcription response")
    parser.add_argument("diarization", type=Path, help="diarization response")
    parser.add_argument("--collar", type=float, default=0.25)
    args = parser.parse_args(argv)
    result = evaluate(args.conversation_dir, json.loads(args.transcription.read_text()),
                      json.loads(args.diarization.read_text()), args.collar)
    for key, value in result.items():
        print(f"{key:22} {value:.4f}" if isinstance(value, float) else f"{key:22} {value}")


if __name__ == "__main__":
    main()
